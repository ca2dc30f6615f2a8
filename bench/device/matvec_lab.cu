// Standalone lab for the one-token Q4_0 matvec (27B decode shapes): compares kernel designs on
// the device without building the engine. Not part of the engine or its tests; the winning
// design is moved into src/backends/cuda. Build and run (on the GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90a -Isrc -o /tmp/lab bench/device/matvec_lab.cu && /tmp/lab
// Data: Q4_0 planes as the engine uploads them (16-byte quant plane + f16 scale plane, or the
// interleaved tile layout below), int8 activations with per-32 (d, d*sum) pairs. Each variant is
// checked against a plain reference kernel, then timed over copies of the weight that together
// exceed L2 (so every call reads DRAM).
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backends/cuda/weight_formats.cuh"  // the engine's weight loads (ldw16, ldw2)
#include "lab_check.cuh"

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }

template <bool NA>
__device__ __forceinline__ uint4 ldq(const uint8_t* p) {
  if constexpr (NA) return unicorn::cuda::ldw16(p);
  else return __ldg(reinterpret_cast<const uint4*>(p));
}
template <bool NA>
__device__ __forceinline__ uint16_t ldd(const uint16_t* p) {
  if constexpr (NA) return unicorn::cuda::ldw2(p);
  else return __ldg(p);
}

// sum over the 32 values of block b of (q - 8) * xq, as d_x * (sum q*xq) - 8 * (d_x * sum xq).
__device__ __forceinline__ float q4_dot(uint4 w, const uint32_t* a, float2 ds) {
  const uint32_t v[4] = {w.x, w.y, w.z, w.w};
  int s = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    s = __dp4a(static_cast<int>(v[i] & 0x0F0F0F0Fu), static_cast<int>(a[i]), s);
    s = __dp4a(static_cast<int>((v[i] >> 4) & 0x0F0F0F0Fu), static_cast<int>(a[i + 4]), s);
  }
  return ds.x * static_cast<float>(s) - 8.0f * ds.y;
}

__device__ __forceinline__ void load_act(const int8_t* xq, int64_t b, uint32_t* a) {
  const uint4* p = reinterpret_cast<const uint4*>(xq + b * 32);
  const uint4 u = __ldg(p), v = __ldg(p + 1);
  a[0] = u.x, a[1] = u.y, a[2] = u.z, a[3] = u.w, a[4] = v.x, a[5] = v.y, a[6] = v.z, a[7] = v.w;
}


struct Mat {
  const uint8_t* q;   // [rows][nb][16]
  const uint16_t* d;  // [rows][nb]
  int64_t rows;
  int nb;
};
struct Act {
  const int8_t* q;
  const float2* ds;
};

// Reference: one thread per row, plain loops.
__global__ void ref_kernel(Mat m, Act x, float* y) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= m.rows) return;
  double acc = 0;
  for (int b = 0; b < m.nb; ++b) {
    const uint8_t* q = m.q + (r * m.nb + b) * 16;
    const float dw = h2f(m.d[r * m.nb + b]);
    int s = 0;
    for (int j = 0; j < 16; ++j) {
      s += ((q[j] & 15) - 8) * x.q[b * 32 + j];
      s += ((q[j] >> 4) - 8) * x.q[b * 32 + 16 + j];
    }
    acc += double(dw) * x.ds[b].x * s;
  }
  y[r] = static_cast<float>(acc);
}

// A: the engine's current design (one warp per row, 4 rows per 128-thread block, U loads issued
// before the dots).
template <int U, bool NA>
__global__ void __launch_bounds__(128) kernel_a(Mat m, Act x, float* y) {
  const int lane = threadIdx.x % 32;
  const int64_t row = blockIdx.x * 4 + threadIdx.x / 32;
  if (row >= m.rows) return;
  float acc = 0;
  for (int base = lane; base < m.nb; base += 32 * U) {
    uint4 w[U];
    uint16_t d[U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int b = base + 32 * u;
      if (b < m.nb) {
        w[u] = ldq<NA>(m.q + (row * m.nb + b) * 16);
        d[u] = ldd<NA>(m.d + row * m.nb + b);
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int b = base + 32 * u;
      if (b < m.nb) {
        uint32_t a[8];
        load_act(x.q, b, a);
        acc += h2f(d[u]) * q4_dot(w[u], a, __ldg(x.ds + b));
      }
    }
  }
  acc = warp_sum(acc);
  if (lane == 0) y[row] = acc;
}

// B: persistent warps, R rows per job, jobs strided over all warps of the grid; the loads of the
// next job are issued before the current job's dots (double buffering in registers). Optional
// activations in shared memory (SM: loaded once per block).
template <int U, int R, bool NA, bool SM>
__global__ void __launch_bounds__(128) kernel_b(Mat m, Act x, float* y) {
  extern __shared__ uint8_t smem[];
  const int lane = threadIdx.x % 32;
  const int64_t gw = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int64_t nw = (gridDim.x * int64_t(blockDim.x)) / 32;
  const int64_t jobs = (m.rows + R - 1) / R;
  const int8_t* xq = x.q;
  const float2* xds = x.ds;
  if constexpr (SM) {
    const int K = m.nb * 32;
    int8_t* sq = reinterpret_cast<int8_t*>(smem);
    float2* sds = reinterpret_cast<float2*>(smem + K);
    for (int i = threadIdx.x; i < K / 16; i += blockDim.x)
      reinterpret_cast<uint4*>(sq)[i] = __ldg(reinterpret_cast<const uint4*>(x.q) + i);
    for (int i = threadIdx.x; i < m.nb; i += blockDim.x) sds[i] = __ldg(x.ds + i);
    __syncthreads();
    xq = sq;
    xds = sds;
  }
  // Job j, pass p: rows j*R .. j*R+R-1, blocks lane + 32*(U*p + u).
  const int passes = (m.nb + 32 * U - 1) / (32 * U);
  uint4 w[2][R][U];
  uint16_t d[2][R][U];
  auto issue = [&](int buf, int64_t job, int p) {
#pragma unroll
    for (int r = 0; r < R; ++r) {
      const int64_t row = job * R + r;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int b = lane + 32 * (U * p + u);
        if (b < m.nb && row < m.rows) {
          w[buf][r][u] = ldq<NA>(m.q + (row * m.nb + b) * 16);
          d[buf][r][u] = ldd<NA>(m.d + row * m.nb + b);
        }
      }
    }
  };
  int64_t job = gw;
  int p = 0;
  if (job >= jobs) return;
  issue(0, job, 0);
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0;
  constexpr int cur = 0;
  while (true) {
    int64_t njob = job;
    int np = p + 1;
    if (np == passes) np = 0, njob = job + nw;
    const bool more = njob < jobs;
    if (more) issue(1, njob, np);
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int b = lane + 32 * (U * p + u);
      if (b < m.nb) {
        uint32_t a[8];
        if constexpr (SM) {
          const uint4* pp = reinterpret_cast<const uint4*>(xq + b * 32);
          const uint4 s0 = pp[0], s1 = pp[1];
          a[0] = s0.x, a[1] = s0.y, a[2] = s0.z, a[3] = s0.w, a[4] = s1.x, a[5] = s1.y, a[6] = s1.z, a[7] = s1.w;
        } else {
          load_act(xq, b, a);
        }
        const float2 ds = SM ? xds[b] : __ldg(xds + b);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r] += h2f(d[cur][r][u]) * q4_dot(w[cur][r][u], a, ds);
      }
    }
    if (np == 0) {
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float s = warp_sum(acc[r]);
        if (lane == 0 && job * R + r < m.rows) y[job * R + r] = s;
        acc[r] = 0;
      }
    }
    if (!more) break;
    // The compiler needs static buffer indices: swap by copying.
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int u = 0; u < U; ++u) w[0][r][u] = w[1][r][u], d[0][r][u] = d[1][r][u];
    job = njob;
    p = np;
  }
}

// C: one block per R-row tile; the tile is the whole K range split over the block's warps
// (split-K inside the block), activations read straight from global (L1).
template <int U, int R, bool NA, int NW = 4>
__global__ void __launch_bounds__(NW * 32) kernel_c(Mat m, Act x, float* y) {
  __shared__ float part[NW][R];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const int64_t row0 = blockIdx.x * int64_t(R);
  float acc[R];
#pragma unroll
  for (int r = 0; r < R; ++r) acc[r] = 0;
  constexpr int NT = NW * 32;
  for (int base = threadIdx.x; base < m.nb; base += NT * U) {
    uint4 w[R][U];
    uint16_t d[R][U];
#pragma unroll
    for (int r = 0; r < R; ++r)
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int b = base + NT * u;
        if (b < m.nb && row0 + r < m.rows) {
          w[r][u] = ldq<NA>(m.q + ((row0 + r) * m.nb + b) * 16);
          d[r][u] = ldd<NA>(m.d + (row0 + r) * m.nb + b);
        }
      }
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int b = base + NT * u;
      if (b < m.nb) {
        uint32_t a[8];
        load_act(x.q, b, a);
        const float2 ds = __ldg(x.ds + b);
#pragma unroll
        for (int r = 0; r < R; ++r) acc[r] += h2f(d[r][u]) * q4_dot(w[r][u], a, ds);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < R; ++r) {
    const float s = warp_sum(acc[r]);
    if (lane == 0) part[warp][r] = s;
  }
  __syncthreads();
  if (threadIdx.x < R && row0 + threadIdx.x < m.rows) {
    float s = 0;
#pragma unroll
    for (int w2 = 0; w2 < NW; ++w2) s += part[w2][threadIdx.x];
    y[row0 + threadIdx.x] = s;
  }
}


// D (sm_90): bulk copies (cp.async.bulk, the TMA's 1-D form) stream tiles of R whole rows (quant
// bytes and scales, each contiguous) into an S-stage shared-memory ring; one producer warp issues
// them, NW consumer warps compute a row each from shared memory and release the stage through an
// mbarrier (lab_check.cuh's bulk-copy helpers). Persistent: BPS blocks per SM, tiles strided over
// the grid.
template <int R, int NW, int UN>
__global__ void __launch_bounds__((NW + 1) * 32) kernel_d(Mat m, Act x, float* y, int S) {
  extern __shared__ __align__(128) uint8_t smem[];
  const int nb = m.nb;
  const uint32_t qb = uint32_t(R) * nb * 16, db = uint32_t(R) * nb * 2;
  const uint32_t stage = (qb + db + 127) / 128 * 128;
  uint64_t* full = reinterpret_cast<uint64_t*>(smem + size_t(S) * stage);
  uint64_t* empty = full + S;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t tiles = m.rows / R;
  if (threadIdx.x == 0) {
    for (int s = 0; s < S; ++s) mbar_init(full + s, 1), mbar_init(empty + s, NW);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
  }
  __syncthreads();
  if (warp == NW) {  // producer
    if (lane == 0) {
      int k = 0;
      for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x, ++k) {
        const int s = k % S, u = k / S;
        if (u > 0) mbar_wait(empty + s, (u - 1) & 1);
        uint8_t* dst = smem + size_t(s) * stage;
        mbar_expect_tx(full + s, qb + db);
        bulk_load(dst, m.q + t * R * nb * 16, qb, full + s);
        bulk_load(dst + qb, m.d + t * R * nb, db, full + s);
      }
    }
    return;
  }
  int k = 0;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x, ++k) {
    const int s = k % S, u = k / S;
    mbar_wait(full + s, u & 1);
    const uint8_t* sq = smem + size_t(s) * stage;
    const uint16_t* sd = reinterpret_cast<const uint16_t*>(sq + qb);
    for (int r = warp; r < R; r += NW) {
      float acc = 0;
      for (int base = lane; base < nb; base += 32 * UN) {
        uint4 w[UN];
        uint16_t d[UN];
#pragma unroll
        for (int v = 0; v < UN; ++v) {
          const int b = base + 32 * v;
          if (b < nb) {
            w[v] = *reinterpret_cast<const uint4*>(sq + (size_t(r) * nb + b) * 16);
            d[v] = sd[r * nb + b];
          }
        }
#pragma unroll
        for (int v = 0; v < UN; ++v) {
          const int b = base + 32 * v;
          if (b < nb) {
            uint32_t a[8];
            load_act(x.q, b, a);
            acc += h2f(d[v]) * q4_dot(w[v], a, __ldg(x.ds + b));
          }
        }
      }
      acc = warp_sum(acc);
      if (lane == 0) y[t * R + r] = acc;
    }
    __syncwarp();
    if (lane == 0) mbar_arrive(empty + s);
  }
}

struct Shape {
  const char* name;
  int64_t rows;
  int K;
  int per_layer;  // how many such matrices per layer
};

int main() {
  const int sms = lab_print_device();
  const Shape shapes[] = {{"qkv 5376->8192", 8192, 5376, 1},
                          {"o 4096->5376", 5376, 4096, 1},
                          {"gate+up 5376->43008", 43008, 5376, 1},
                          {"down 21504->5376", 5376, 21504, 1}};
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  std::vector<std::string> names;
  std::vector<std::vector<double>> us_table;
  bool header = false;
  std::vector<double> best_shape(4, 1e30);
  std::vector<std::string> best_name(4);
  int si = 0;
  for (const Shape& sh : shapes) {
    const int nb = sh.K / 32;
    const size_t qbytes = size_t(sh.rows) * nb * 16, dbytes = size_t(sh.rows) * nb * 2;
    const size_t mbytes = qbytes + dbytes;
    const int copies = std::max<int>(2, int((400ull << 20) / mbytes) + 1);
    std::vector<uint8_t*> qs(copies);
    std::vector<uint16_t*> ds(copies);
    for (int c = 0; c < copies; ++c) {
      CK(cudaMalloc(&qs[c], qbytes));
      CK(cudaMalloc(&ds[c], dbytes));
      fill_bytes<<<1024, 256, 0, st>>>(qs[c], qbytes, 17 + c);
      fill_scales<<<1024, 256, 0, st>>>(ds[c], dbytes / 2, 5 + c);
    }
    int8_t* xq;
    float2* xds;
    float *y, *yref;
    CK(cudaMalloc(&xq, sh.K));
    CK(cudaMalloc(&xds, nb * sizeof(float2)));
    CK(cudaMalloc(&y, sh.rows * 4));
    CK(cudaMalloc(&yref, sh.rows * 4));
    lab_upload_activations(sh.K, xq, xds);
    Act x{xq, xds};
    auto mat = [&](int c) { return Mat{qs[c], ds[c], sh.rows, nb}; };
    ref_kernel<<<(sh.rows + 127) / 128, 128, 0, st>>>(mat(0), x, yref);
    CK(cudaStreamSynchronize(st));
    std::vector<float> href(sh.rows), hy(sh.rows);
    CK(cudaMemcpy(href.data(), yref, sh.rows * 4, cudaMemcpyDeviceToHost));

    struct Variant {
      std::string name;
      std::function<void(Mat, cudaStream_t)> run;
    };
    std::vector<Variant> vs;
    auto occ = [&](auto kern, size_t smem) {
      int n = 0;
      CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&n, kern, 128, smem));
      return n;
    };
#define VA(U, NA)                                                                          \
  vs.push_back({"A U" #U " na" #NA, [&](Mat mm, cudaStream_t s) {                          \
                  kernel_a<U, NA><<<(mm.rows + 3) / 4, 128, 0, s>>>(mm, x, y);            \
                }});
    VA(8, true)
#define VB(U, R, NA, SMF, BPS)                                                                         \
  vs.push_back({"B U" #U " R" #R " na" #NA " sm" #SMF " bps" #BPS, [&](Mat mm, cudaStream_t s) {         \
                  const size_t smem = SMF ? mm.nb * 32 + mm.nb * 8 : 0;                                   \
                  int o = 0;                                                                       \
                  if (SMF && smem > 48 * 1024)                                                            \
                    cudaFuncSetAttribute(kernel_b<U, R, NA, SMF>, cudaFuncAttributeMaxDynamicSharedMemorySize, \
                                         int(smem));                                                      \
                  o = occ(kernel_b<U, R, NA, SMF>, smem);                                                 \
                  const int bps = BPS > 0 ? std::min(BPS, o) : o;                                         \
                  kernel_b<U, R, NA, SMF><<<sms * bps, 128, smem, s>>>(mm, x, y);                        \
                }});
    if (nb <= 192) {
      VB(6, 1, true, false, 0)
    } else {
      VB(7, 1, true, false, 0)
    }
#define VC(U, R, NA, NW) \
  vs.push_back({"C U" #U " R" #R " na" #NA " w" #NW, [&](Mat mm, cudaStream_t s) { kernel_c<U, R, NA, NW><<<(mm.rows + R - 1) / R, NW * 32, 0, s>>>(mm, x, y); }});
    VC(2, 1, true, 4) VC(2, 2, true, 4) VC(2, 4, true, 4) VC(4, 1, true, 4) VC(6, 1, true, 4) VC(3, 1, true, 8)
    VC(3, 2, true, 8) VC(4, 2, true, 4) VC(2, 2, true, 8)
    // D: R rows per tile, NW consumer warps, UN items per lane per pass, BPS blocks per SM; the
    // stage count fills KB kilobytes of shared memory per block.
#define VD(R, NW, UN, BPS, KB)                                                                                  \
  vs.push_back({"D R" #R " w" #NW " u" #UN " bps" #BPS " " #KB "K", [&](Mat mm, cudaStream_t s) {                  \
                  const size_t stage = (size_t(R) * mm.nb * 18 + 127) / 128 * 128;                                \
                  const int S = std::max<int>(2, std::min<size_t>(16, (size_t(KB) * 1024) / stage));               \
                  const size_t smem = S * stage + 2 * S * 8;                                                      \
                  CK(cudaFuncSetAttribute(kernel_d<R, NW, UN>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem))); \
                  kernel_d<R, NW, UN><<<sms * BPS, (NW + 1) * 32, smem, s>>>(mm, x, y, S);                          \
                }});
    if (nb <= 192) {
      VD(16, 16, 2, 1, 200)
    } else {
      VD(8, 8, 4, 1, 200)
    }
    if (!header) {
      std::printf("| variant |");
      for (const Shape& s2 : shapes) std::printf(" %s us (GB/s) |", s2.name);
      std::printf("\n");
      header = true;
      names.clear();
      for (auto& v : vs) names.push_back(v.name);
      us_table.assign(vs.size(), std::vector<double>(4, 0));
    }
    for (size_t vi = 0; vi < vs.size(); ++vi) {
      auto& v = vs[vi];
      const LabResult res = lab_check_and_time([&](int c) { v.run(mat(c), st); }, copies, y, href, st);
      const double us = res.us, nmse = res.nmse;
      us_table[vi][si] = nmse > 1e-8 ? 1e9 : us;
      std::printf("%-28s %-22s %8.2f us %7.0f GB/s  nmse %.1e%s\n", v.name.c_str(), sh.name, us, mbytes / us / 1e3, nmse,
                  nmse > 1e-8 ? "  WRONG" : "");
    }
    {
      size_t bi = 0;
      for (size_t vi = 1; vi < vs.size(); ++vi)
        if (us_table[vi][si] < us_table[bi][si]) bi = vi;
      best_name[si] = vs[bi].name;
    }
    for (int c = 0; c < copies; ++c) cudaFree(qs[c]), cudaFree(ds[c]);
    cudaFree(xq), cudaFree(xds), cudaFree(y), cudaFree(yref);
    ++si;
  }
  // Per-layer matmul time per variant, and the best per shape.
  double best_total = 0;
  for (int s = 0; s < 4; ++s) {
    double b = 1e30;
    for (size_t v = 0; v < names.size(); ++v) b = std::min(b, us_table[v][s]);
    best_total += b;
    std::printf("best %-22s %s %.2f us (%.0f GB/s)\n", shapes[s].name, best_name[s].c_str(), b,
                shapes[s].rows * (shapes[s].K / 32) * 18.0 / b / 1e3);
  }
  for (size_t v = 0; v < names.size(); ++v) {
    double t = 0;
    for (int s = 0; s < 4; ++s) t += us_table[v][s];
    std::printf("layer total %-28s %8.1f us -> 62 layers %.2f ms\n", names[v].c_str(), t, t * 62 / 1000);
  }
  std::printf("layer total best-per-shape %.1f us -> 62 layers %.2f ms\n", best_total, best_total * 62 / 1000);
  return 0;
}
