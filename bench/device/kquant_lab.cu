// Standalone lab for the one-token Q4_K matvec (27B decode shapes): compares kernel designs on
// the device without building the engine, as matvec_lab.cu does for Q4_0. Not part of the engine
// or its tests. Build and run (on the GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90a -Isrc -o /tmp/kq bench/device/kquant_lab.cu && /tmp/kq
// Data: random Q4_K super-blocks in the engine's device layout (144 bytes: f16 d, f16 dmin, 12
// bytes of 6-bit scales/mins in the device's pair order, device_weight.h, 128 bytes of nibbles),
// int8 activations with per-32
// (d, d * sum q) pairs. Each variant is checked against a plain reference kernel, then timed over
// copies of the weight that together exceed L2 (so every call reads DRAM).
// Why (NOTES.md session 6): on an H100 the engine's Q4_K matvec (a warp per row, 64-value items,
// 96 registers, 5 blocks per SM) reaches 28-64 % of DRAM throughput, with long-scoreboard stalls.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "backends/cuda/weight_formats.cuh"
#include "lab_check.cuh"

namespace {

constexpr int kBlockBytes = 144;

// Random super-blocks: random scale and quant bytes, small positive f16 d and dmin.
__global__ void fill_blocks(uint8_t* p, size_t n_blocks, uint64_t seed) {
  for (size_t b = blockIdx.x * size_t(blockDim.x) + threadIdx.x; b < n_blocks; b += size_t(gridDim.x) * blockDim.x) {
    uint8_t* blk = p + b * kBlockBytes;
    const uint32_t h = hash32(seed * 0x9E3779B97F4A7C15ULL + b);
    const __half d = __float2half(0.0005f + (h % 1000) * 1e-6f), dmin = __float2half(0.0002f + (h % 777) * 1e-6f);
    *reinterpret_cast<__half*>(blk) = d;
    *reinterpret_cast<__half*>(blk + 2) = dmin;
    for (int i = 4; i < kBlockBytes; i += 4)
      *reinterpret_cast<uint32_t*>(blk + i) = hash32(seed * 31 + b * 64 + static_cast<uint64_t>(i));
  }
}

using unicorn::cuda::FormatQ4_K;

struct Mat {
  const uint8_t* q;  // [rows][K / 256][144]
  int64_t rows;
  int nsb;  // super-blocks per row
};
struct Act {
  const int8_t* q;
  const float2* ds;
};

// One work item (sub-blocks 2c and 2c + 1 of super-block item / 4) through the engine's own
// reader (weight_formats.cuh FormatQ4_K), so that the designs differ only in how they share out
// the items.
using Raw = FormatQ4_K::Raw;
__device__ __forceinline__ unicorn::cuda::DeviceWeight device_weight(const Mat& m) {
  unicorn::cuda::DeviceWeight w;
  w.type = unicorn::GgmlType::Q4_K;
  w.rows = m.rows, w.cols = int64_t{m.nsb} * 256, w.blocks_per_row = m.nsb,
  w.q_row_bytes = int64_t{m.nsb} * kBlockBytes;
  w.q = m.q;
  return w;
}
__device__ __forceinline__ Raw load_item(const Mat& m, int64_t row, int item) {
  return FormatQ4_K::load(device_weight(m), row, item);
}
__device__ __forceinline__ float dot_item(const Raw& r, int item, const Mat& m, const Act& x) {
  float acc = 0.0f;
  FormatQ4_K::dot_raw<1>(r, item, unicorn::cuda::ActQ8{x.q, reinterpret_cast<const float*>(x.ds)}, int64_t{m.nsb} * 256,
                         1, &acc);
  return acc;
}

// Reference: one thread per row, decoded value by value, double accumulation.
__global__ void ref_kernel(Mat m, Act x, float* y) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= m.rows) return;
  double acc = 0;
  for (int sb = 0; sb < m.nsb; ++sb) {
    const uint8_t* blk = m.q + (r * m.nsb + sb) * kBlockBytes;
    const float d = __half2float(*reinterpret_cast<const __half*>(blk));
    const float dmin = __half2float(*reinterpret_cast<const __half*>(blk + 2));
    uint32_t sc[3];
    for (int i = 0; i < 3; ++i) sc[i] = *reinterpret_cast<const uint32_t*>(blk + 4 + 4 * i);
    for (int s = 0; s < 8; ++s) {
      float scale, min;
      FormatQ4_K::scale_min(sc, s, scale, min);
      const int xb = sb * 8 + s;
      long dot = 0, sum = 0;
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = blk[16 + 32 * (s / 2) + l];
        const int q = s % 2 ? byte >> 4 : byte & 15;
        dot += q * x.q[xb * 32 + l];
        sum += x.q[xb * 32 + l];
      }
      const float2 ds = x.ds[xb];
      acc += double(d) * scale * ds.x * dot - double(dmin) * min * ds.x * sum;
    }
  }
  y[r] = static_cast<float>(acc);
}

// A: the engine's design: a warp per row, 4 rows per 128-thread block, U items per lane loaded
// before the dots; MINB > 0 caps registers for MINB blocks per SM.
template <int U, int MINB>
__global__ void __launch_bounds__(128, MINB) kernel_a(Mat m, Act x, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * 4 + threadIdx.x / 32;
  if (row >= m.rows) return;
  const int items = m.nsb * 4;
  float acc = 0;
  for (int base = lane; base < items; base += 32 * U) {
    Raw r[U];
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (base + 32 * u < items) r[u] = load_item(m, row, base + 32 * u);
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (base + 32 * u < items) acc += dot_item(r[u], base + 32 * u, m, x);
  }
  acc = warp_sum(acc);
  if (lane == 0) y[row] = acc;
}

// W: a row split over WPR warps (their lanes take consecutive items), partial sums in shared
// memory.
template <int U, int WPR, int MINB>
__global__ void __launch_bounds__(128, MINB) kernel_w(Mat m, Act x, float* y) {
  __shared__ float part[4];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row = blockIdx.x * (4 / WPR) + warp / WPR;
  const int t = (warp % WPR) * 32 + lane;
  const int items = m.nsb * 4;
  float acc = 0;
  if (row < m.rows) {
    for (int base = t; base < items; base += 32 * WPR * U) {
      Raw r[U];
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (base + 32 * WPR * u < items) r[u] = load_item(m, row, base + 32 * WPR * u);
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (base + 32 * WPR * u < items) acc += dot_item(r[u], base + 32 * WPR * u, m, x);
    }
  }
  acc = warp_sum(acc);
  if (lane == 0) part[warp] = acc;
  __syncthreads();
  if (threadIdx.x < 4 / WPR) {
    const int64_t r0 = blockIdx.x * (4 / WPR) + threadIdx.x;
    float s = 0;
    for (int w = 0; w < WPR; ++w) s += part[threadIdx.x * WPR + w];
    if (r0 < m.rows) y[r0] = s;
  }
}

// P: a warp per row, software-pipelined: the next pass's U loads are issued before the current
// pass's dots (two register buffers).
template <int U>
__global__ void __launch_bounds__(128) kernel_p(Mat m, Act x, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * 4 + threadIdx.x / 32;
  if (row >= m.rows) return;
  const int items = m.nsb * 4;
  Raw cur[U], nxt[U];
#pragma unroll
  for (int u = 0; u < U; ++u)
    if (lane + 32 * u < items) cur[u] = load_item(m, row, lane + 32 * u);
  float acc = 0;
  for (int base = lane; base < items; base += 32 * U) {
    const int next = base + 32 * U;
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (next + 32 * u < items) nxt[u] = load_item(m, row, next + 32 * u);
#pragma unroll
    for (int u = 0; u < U; ++u)
      if (base + 32 * u < items) acc += dot_item(cur[u], base + 32 * u, m, x);
#pragma unroll
    for (int u = 0; u < U; ++u) cur[u] = nxt[u];
  }
  acc = warp_sum(acc);
  if (lane == 0) y[row] = acc;
}

// G: the engine's GeGLU form on the gate+up shape: rows [0, rows / 2) are gate, the rest up, and a
// group of WPR warps computes gate row r and up row r together (both rows' loads in flight at
// once), writing both dot products (the engine writes gelu(gate) * up; the bytes read are the
// same). WPR = 1: a warp per pair.
template <int U, int WPR, int MINB>
__global__ void __launch_bounds__(128, MINB) kernel_g(Mat m, Act x, float* y) {
  __shared__ float part[4][2];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t half = m.rows / 2;
  const int64_t row = blockIdx.x * (4 / WPR) + warp / WPR;
  const int t = (warp % WPR) * 32 + lane;
  const int items = m.nsb * 4;
  float acc[2] = {0, 0};
  if (row < half) {
    for (int base = t; base < items; base += 32 * WPR * U) {
      Raw r[2][U];
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (base + 32 * WPR * u < items) {
          r[0][u] = load_item(m, row, base + 32 * WPR * u);
          r[1][u] = load_item(m, row + half, base + 32 * WPR * u);
        }
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (base + 32 * WPR * u < items) {
          acc[0] += dot_item(r[0][u], base + 32 * WPR * u, m, x);
          acc[1] += dot_item(r[1][u], base + 32 * WPR * u, m, x);
        }
    }
  }
  acc[0] = warp_sum(acc[0]);
  acc[1] = warp_sum(acc[1]);
  if (WPR == 1) {
    if (lane == 0 && row < half) y[row] = acc[0], y[row + half] = acc[1];
    return;
  }
  if (lane == 0) part[warp][0] = acc[0], part[warp][1] = acc[1];
  __syncthreads();
  if (threadIdx.x < 4 / WPR) {
    const int64_t r0 = blockIdx.x * (4 / WPR) + threadIdx.x;
    float g = 0, u = 0;
    for (int w = 0; w < WPR; ++w) g += part[threadIdx.x * WPR + w][0], u += part[threadIdx.x * WPR + w][1];
    if (r0 < half) y[r0] = g, y[r0 + half] = u;
  }
}

struct Shape {
  const char* name;
  int64_t rows;
  int K;
};

}  // namespace

int main() {
  const int sms = lab_print_device();
  const Shape shapes[] = {{"q 5376->4096", 4096, 5376},
                          {"o 4096->5376", 5376, 4096},
                          {"gate+up 5376->43008", 43008, 5376},
                          {"down 21504->5376", 5376, 21504}};
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  for (const Shape& sh : shapes) {
    const int nsb = sh.K / 256;
    const size_t n_blocks = size_t(sh.rows) * nsb, mbytes = n_blocks * kBlockBytes;
    const int copies = std::max<int>(2, int((400ull << 20) / mbytes) + 1);
    std::vector<uint8_t*> qs(copies);
    for (int c = 0; c < copies; ++c) {
      CK(cudaMalloc(&qs[c], mbytes));
      fill_blocks<<<1024, 256, 0, st>>>(qs[c], n_blocks, 17 + c);
    }
    int8_t* xq;
    float2* xds;
    float *y, *yref;
    CK(cudaMalloc(&xq, sh.K));
    CK(cudaMalloc(&xds, (sh.K / 32) * sizeof(float2)));
    CK(cudaMalloc(&y, sh.rows * 4));
    CK(cudaMalloc(&yref, sh.rows * 4));
    lab_upload_activations(sh.K, xq, xds);
    const Act x{xq, xds};
    auto mat = [&](int c) { return Mat{qs[c], sh.rows, nsb}; };
    ref_kernel<<<(sh.rows + 127) / 128, 128, 0, st>>>(mat(0), x, yref);
    CK(cudaStreamSynchronize(st));
    std::vector<float> href(sh.rows);
    CK(cudaMemcpy(href.data(), yref, sh.rows * 4, cudaMemcpyDeviceToHost));

    struct Variant {
      std::string name;
      std::function<void(Mat, cudaStream_t)> run;
    };
    std::vector<Variant> vs;
    auto rows_grid = [](int64_t rows, int per_block) { return unsigned((rows + per_block - 1) / per_block); };
#define VA(U, MINB)                              \
  vs.push_back({"A warp/row U" #U " minB" #MINB, \
                [&](Mat mm, cudaStream_t s) { kernel_a<U, MINB><<<rows_grid(mm.rows, 4), 128, 0, s>>>(mm, x, y); }})
#define VW(U, WPR, MINB)                                                                        \
  vs.push_back({"W wpr" #WPR " U" #U " minB" #MINB, [&](Mat mm, cudaStream_t s) {               \
                  kernel_w<U, WPR, MINB><<<rows_grid(mm.rows, 4 / WPR), 128, 0, s>>>(mm, x, y); \
                }})
#define VP(U)                       \
  vs.push_back({"P pipelined U" #U, \
                [&](Mat mm, cudaStream_t s) { kernel_p<U><<<rows_grid(mm.rows, 4), 128, 0, s>>>(mm, x, y); }})
    VA(4, 1);
    VA(2, 1);
    VA(3, 1);
    VA(4, 6);
    VA(2, 8);
    VA(1, 8);
    VW(2, 2, 1);
    VW(1, 2, 1);
    VW(2, 4, 1);
    VW(1, 4, 1);
    VW(1, 2, 8);
    VW(1, 4, 8);
    VP(1);
    VP(2);
    if (sh.rows == 43008) {  // the GeGLU pair (gate rows, then up rows)
#define VG(U, WPR, MINB)                                                                            \
  vs.push_back({"G pair wpr" #WPR " U" #U " minB" #MINB, [&](Mat mm, cudaStream_t s) {              \
                  kernel_g<U, WPR, MINB><<<rows_grid(mm.rows / 2, 4 / WPR), 128, 0, s>>>(mm, x, y); \
                }})
      VG(2, 1, 1);  // the engine's GeGLU matvec today
      VG(2, 1, 6);
      VG(1, 1, 1);
      VG(1, 1, 8);
      VG(1, 2, 1);
      VG(1, 2, 8);
      VG(1, 1, 6);
    }
    for (auto& v : vs) {
      const LabResult res = lab_check_and_time([&](int c) { v.run(mat(c), st); }, copies, y, href, st);
      const double us = res.us, nmse = res.nmse;
      std::printf("%-24s %-22s %8.2f us %7.0f GB/s  nmse %.1e%s\n", v.name.c_str(), sh.name, us, mbytes / us / 1e3,
                  nmse, nmse > 1e-8 ? "  WRONG" : "");
    }
    for (int c = 0; c < copies; ++c) cudaFree(qs[c]);
    cudaFree(xq), cudaFree(xds), cudaFree(y), cudaFree(yref);
  }
  return 0;
}
