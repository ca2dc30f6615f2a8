// Standalone lab: Q4_K in sub-block planes against the engine's Q4_K layout and against Q4_0, on
// 27B's one-token shapes (not part of the engine or its tests). Build and run on the GPU machine:
//   nvcc -O3 -std=c++20 -arch=sm_90a -Isrc -o /tmp/kp bench/device/kquant_planes_lab.cu && /tmp/kp [head|all]
// (no argument: the four layer shapes; head: the 262,144-row output head in Q6_K, the 27B Q4_0
// file's, as the old 64-value planes and as the engine's 32-value planes, in Q4_K planes, q4_mix's,
// and in Q4_0, each at several block shapes).
// Why (NOTES.md session 18): Q4_0 and Q4_K read the same bytes per value (0.5625), yet q4_mix's
// Q4_K matvecs took 7-9 % longer than Q4_0's (ncu, H200: GeGLU 38.1 / 35.4 us, down 23.1 / 21.5,
// o 8.4 / 7.7), when the engine's Q4_K item was 64 values (a 16-byte header and two 16-byte quant
// loads per lane) of 144-byte blocks that keep the header among the quants (FormatQ4_KBlocks
// here). Session 25 measured this lab (run 1, dfa3811) and moved the engine to the planes layout
// (weight_formats.cuh FormatQ4_K, which the variants of kind 1 now run).
// The planes layout: the quant plane holds each 32-value sub-block's nibbles in 16 bytes in
// Q4_0's order (value j in the low nibble of byte j, value j + 16 in its high nibble), the header
// plane one 16-byte entry per super-block: word 0 the f16 pair (d, dmin), words 1-3 the eight
// sub-blocks' 12-bit (scale | min << 6) fields, field s at bit 12 s. The same bytes as the file
// (144 per 256 values). An item is one sub-block, as a Q4_0 block, so Q4_0's layouts apply.
// Every variant runs the same generic kernel (one token; loads of a pass issued before its dots;
// the rows of a group share each activation load; a GeGLU pair reads gate and up rows together).
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

using unicorn::cuda::ActQ8;
using unicorn::cuda::DeviceWeight;
using unicorn::cuda::FormatQ4_0;
using unicorn::cuda::FormatQ4_K;  // the engine's planes (since session 25)
using unicorn::cuda::FormatQ6_K;
using unicorn::cuda::kQ6KScaleBytes;
using unicorn::cuda::load_act32;
using unicorn::cuda::load_ds;

// The scale bytes of the 144-byte blocks (FormatQ4_KBlocks; the engine's Q4_K and Q5_K blocks until
// sessions 25 and 26): the four values of sub-block pair c (scale 2c, min 2c, scale 2c+1, min
// 2c+1, 6 bits each) are the 24 bits at byte 3c of the 12.
struct K4PairScales {
  static __device__ __forceinline__ uint32_t field(const uint32_t* sc, int c) {
    const uint32_t lo = c < 2 ? sc[0] : (c == 2 ? sc[1] : sc[2]);
    const uint32_t hi = c < 2 ? sc[1] : sc[2];
    return __funnelshift_r(lo, hi, 8 * ((3 * c) % 4));
  }
  static __device__ __forceinline__ void scale_min(const uint32_t* sc, int s, float& scale, float& min) {
    const uint32_t f = field(sc, s / 2) >> (12 * (s % 2));
    scale = static_cast<float>(f & 63u);
    min = static_cast<float>((f >> 6) & 63u);
  }
  static __device__ __forceinline__ void pair(const uint32_t* sc, int c, float& s0, float& m0, float& s1, float& m1) {
    const uint32_t f = field(sc, c);
    s0 = static_cast<float>(f & 63u);
    m0 = static_cast<float>((f >> 6) & 63u);
    s1 = static_cast<float>((f >> 12) & 63u);
    m1 = static_cast<float>((f >> 18) & 63u);
  }
};

constexpr int kBlockBytes = 144;

// Random Q4_K super-blocks in the 144-byte layout (FormatQ4_KBlocks).
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

// The 144-byte blocks into the planes layout (one thread per super-block; the engine does this on
// the host at upload, weight_upload.cpp).
__global__ void to_planes(const uint8_t* in, uint8_t* q, uint4* hdr, size_t n_blocks) {
  for (size_t b = blockIdx.x * size_t(blockDim.x) + threadIdx.x; b < n_blocks; b += size_t(gridDim.x) * blockDim.x) {
    const uint8_t* blk = in + b * kBlockBytes;
    uint32_t sc[3];
    for (int i = 0; i < 3; ++i) sc[i] = *reinterpret_cast<const uint32_t*>(blk + 4 + 4 * i);
    uint32_t f[3] = {0, 0, 0};
    for (int s = 0; s < 8; ++s) {
      float scale, min;
      K4PairScales::scale_min(sc, s, scale, min);
      const uint32_t v = static_cast<uint32_t>(scale) | (static_cast<uint32_t>(min) << 6);
      const int bit = 12 * s;
      f[bit / 32] |= v << (bit % 32);
      if (bit % 32 > 20) f[bit / 32 + 1] |= v >> (32 - bit % 32);
    }
    hdr[b] = make_uint4(*reinterpret_cast<const uint32_t*>(blk), f[0], f[1], f[2]);
    for (int s = 0; s < 8; ++s) {
      uint8_t v[32];
      for (int l = 0; l < 32; ++l) v[l] = (blk[16 + 32 * (s / 2) + l] >> (4 * (s % 2))) & 15;
      for (int j = 0; j < 16; ++j) q[b * 128 + s * 16 + j] = static_cast<uint8_t>(v[j] | (v[j + 16] << 4));
    }
  }
}

// The 144-byte blocks that the engine held until session 25 (the file's block with its scale bytes
// in K4PairScales' order, as Q5_K's were until session 26): an item is a sub-block pair (64 values), three
// 16-byte loads per lane (header, the pair's 32 quant bytes).
struct FormatQ4_KBlocks {
  static constexpr int kItem = 64;
  struct Raw {
    uint4 h, a0, a1;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t item) {
    const uint8_t* blk = w.q + r * w.q_row_bytes + (item / 4) * kBlockBytes;
    const int c = static_cast<int>(item % 4);
    return {unicorn::cuda::ldw16(blk), unicorn::cuda::ldw16(blk + 16 + 32 * c),
            unicorn::cuda::ldw16(blk + 32 + 32 * c)};
  }
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* rw, int64_t item, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    uint4 h[P];
    uint32_t q0[P][8], q1[P][8];
#pragma unroll
    for (int p = 0; p < P; ++p) {
      h[p] = rw[p].h;
      const uint32_t raw[8] = {rw[p].a0.x, rw[p].a0.y, rw[p].a0.z, rw[p].a0.w,
                               rw[p].a1.x, rw[p].a1.y, rw[p].a1.z, rw[p].a1.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        q0[p][i] = raw[i] & 0x0F0F0F0Fu;
        q1[p][i] = (raw[i] >> 4) & 0x0F0F0F0Fu;
      }
    }
    // Sub-blocks 2c and 2c + 1 of super-block item / 4: d * (scale * x_d * dot) - dmin * min *
    // (x_d * sum x) each, one activation load for the P rows.
    const int c = static_cast<int>(item % 4);
    float s0[P], m0[P], s1[P], m1[P], d[P], dmin[P];
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const uint32_t sc[3] = {h[p].y, h[p].z, h[p].w};
      K4PairScales::pair(sc, c, s0[p], m0[p], s1[p], m1[p]);
      d[p] = __half2float(__ushort_as_half(static_cast<uint16_t>(h[p].x & 0xFFFFu)));
      dmin[p] = __half2float(__ushort_as_half(static_cast<uint16_t>(h[p].x >> 16)));
    }
    const int64_t xb = (item / 4) * 8 + 2 * c;  // activation block of sub-block 2c
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (NT > 1 && t >= T) break;
      const auto x0 = load_act32(x.q + t * K, xb * 32), x1 = load_act32(x.q + t * K, xb * 32 + 32);
      const float2 ds0 = load_ds(x.ds, t * (K / 32) + xb), ds1 = load_ds(x.ds, t * (K / 32) + xb + 1);
#pragma unroll
      for (int p = 0; p < P; ++p) {
        int lo = 0, hi = 0;
#pragma unroll
        for (int i = 0; i < 8; ++i) {
          lo = unicorn::cuda::dot4(q0[p][i], x0.w[i], lo);
          hi = unicorn::cuda::dot4(q1[p][i], x1.w[i], hi);
        }
        acc[p][t] += d[p] * (s0[p] * ds0.x * static_cast<float>(lo) + s1[p] * ds1.x * static_cast<float>(hi)) -
                     dmin[p] * (m0[p] * ds0.y + m1[p] * ds1.y);
      }
    }
  }
};

// Reference: one thread per row from the 144-byte blocks, value by value, double accumulation.
__global__ void ref_q4k(const uint8_t* q, int64_t rows, int nsb, const int8_t* xq, const float2* xds, float* y) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  double acc = 0;
  for (int sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = q + (r * nsb + sb) * kBlockBytes;
    const float d = __half2float(*reinterpret_cast<const __half*>(blk));
    const float dmin = __half2float(*reinterpret_cast<const __half*>(blk + 2));
    uint32_t sc[3];
    for (int i = 0; i < 3; ++i) sc[i] = *reinterpret_cast<const uint32_t*>(blk + 4 + 4 * i);
    for (int s = 0; s < 8; ++s) {
      float scale, min;
      K4PairScales::scale_min(sc, s, scale, min);
      const int xb = sb * 8 + s;
      long dot = 0, sum = 0;
      for (int l = 0; l < 32; ++l) {
        const uint8_t byte = blk[16 + 32 * (s / 2) + l];
        const int v = s % 2 ? byte >> 4 : byte & 15;
        dot += v * xq[xb * 32 + l];
        sum += xq[xb * 32 + l];
      }
      acc += double(d) * scale * xds[xb].x * dot - double(dmin) * min * xds[xb].x * sum;
    }
  }
  y[r] = static_cast<float>(acc);
}
__global__ void ref_q40(const uint8_t* q, const uint16_t* dp, int64_t rows, int nb, const int8_t* xq, const float2* xds,
                        float* y) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= rows) return;
  double acc = 0;
  for (int b = 0; b < nb; ++b) {
    const float d = __half2float(__ushort_as_half(dp[r * nb + b]));
    long dot = 0;
    for (int l = 0; l < 32; ++l) {
      const uint8_t byte = q[(r * nb + b) * 16 + l % 16];
      dot += ((l < 16 ? byte & 15 : byte >> 4) - 8) * xq[b * 32 + l];
    }
    acc += double(d) * xds[b].x * dot;
  }
  y[r] = static_cast<float>(acc);
}

// The Q6_K planes that the engine held until session 25 (ql + qh, 192 bytes per block; the 16
// int8 scales; d), with 64-value items: the engine's reader of that time.
constexpr int64_t kOldQ6KQuantBytes = 192;
struct FormatQ6_KBlocks {
  static constexpr int kItem = 64;
  // The 16 int8 sub-block scales of plane block b (row r, block k: b = r * blocks_per_row + k).
  static __device__ __forceinline__ const uint8_t* scales(const DeviceWeight& w, int64_t b) {
    return reinterpret_cast<const uint8_t*>(w.qh) + b * kQ6KScaleBytes;
  }
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t b = r * w.blocks_per_row + k / 256;
    const uint8_t* blk = w.q + r * w.q_row_bytes + (k / 256) * kOldQ6KQuantBytes;
    const int i = static_cast<int>(k % 256), half = i / 128, s = (i % 128) / 32, l = i % 32;
    const uint2 ql = __ldg(reinterpret_cast<const uint2*>(blk + 64 * half + 32 * (s % 2) + l));
    const uint2 qh = __ldg(reinterpret_cast<const uint2*>(blk + 128 + 32 * half + l));
    const float d = unicorn::cuda::half_to_float(__ldg(w.d + b));
    const float dl = __fmul_rn(d, static_cast<float>(static_cast<int8_t>(__ldg(scales(w, b) + i / 16))));
    const uint32_t lw[2] = {ql.x, ql.y}, hw[2] = {qh.x, qh.y};
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int lo = static_cast<int>((lw[j / 4] >> (8 * (j % 4) + 4 * (s / 2))) & 0xFu);
      const int hi = static_cast<int>((hw[j / 4] >> (8 * (j % 4) + 2 * s)) & 3u);
      y[j] = __fmul_rn(dl, static_cast<float>((lo | (hi << 4)) - 32));
    }
  }
  // Item = (super-block item/4, p = item%4): half h = p/2, groups s0 = p%2 and s0 + 2, which
  // share the same ql bytes (low / high nibble).
  struct Raw {
    uint4 l0, l1, h0, h1, scw;
    uint16_t d;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t item) {
    const int p = static_cast<int>(item % 4), h = p / 2, s0 = p % 2;
    const int64_t b = r * w.blocks_per_row + item / 4;
    const uint8_t* blk = w.q + r * w.q_row_bytes + (item / 4) * kOldQ6KQuantBytes;
    return {unicorn::cuda::ldw16(blk + 64 * h + 32 * s0), unicorn::cuda::ldw16(blk + 64 * h + 32 * s0 + 16),
            unicorn::cuda::ldw16(blk + 128 + 32 * h),     unicorn::cuda::ldw16(blk + 128 + 32 * h + 16),
            unicorn::cuda::ldw16(scales(w, b)),           unicorn::cuda::ldw2(w.d + b)};
  }
  template <int NT>
  static __device__ __forceinline__ void dot(const DeviceWeight& w, int64_t r, int64_t item, ActQ8 x, int64_t K, int T,
                                             float* acc) {
    dot_raw<NT>(load(w, r, item), item, x, K, T, acc);
  }
  // P rows' items at the same position (one activation load for all; FormatQ8_0::dot_rows).
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* rw, int64_t item, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    const int64_t sb = item / 4;
    const int p4 = static_cast<int>(item % 4), h = p4 / 2, s0 = p4 % 2;
    const int ja = 8 * h + 2 * s0, jb = 8 * h + 2 * (s0 + 2);  // first 16-value sub-block of each group
    uint32_t qa[P][8], qb[P][8];                               // groups s0 and s0 + 2, as signed bytes q - 32
    float d[P], sa0[P], sa1[P], sb0[P], sb1[P];
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const uint4 l0 = rw[p].l0, l1 = rw[p].l1, h0 = rw[p].h0, h1 = rw[p].h1, scw = rw[p].scw;
      d[p] = unicorn::cuda::half_to_float(rw[p].d);
      const uint32_t ql[8] = {l0.x, l0.y, l0.z, l0.w, l1.x, l1.y, l1.z, l1.w};
      const uint32_t qh[8] = {h0.x, h0.y, h0.z, h0.w, h1.x, h1.y, h1.z, h1.w};
      const uint32_t scales[4] = {scw.x, scw.y, scw.z, scw.w};
#pragma unroll
      for (int i = 0; i < 8; ++i) {
        qa[p][i] = __vsub4((ql[i] & 0x0F0F0F0Fu) | (((qh[i] >> (2 * s0)) & 0x03030303u) << 4), 0x20202020u);
        qb[p][i] = __vsub4(((ql[i] >> 4) & 0x0F0F0F0Fu) | (((qh[i] >> (2 * s0 + 4)) & 0x03030303u) << 4), 0x20202020u);
      }
      auto scale = [&](int j) {
        const uint32_t w = j < 8 ? (j < 4 ? scales[0] : scales[1]) : (j < 12 ? scales[2] : scales[3]);
        return static_cast<float>(static_cast<int8_t>((w >> (8 * (j % 4))) & 0xFFu));
      };
      sa0[p] = scale(ja), sa1[p] = scale(ja + 1), sb0[p] = scale(jb), sb1[p] = scale(jb + 1);
    }
    const int64_t xa_blk = sb * 8 + 4 * h + s0, xb_blk = xa_blk + 2;
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (NT > 1 && t >= T) break;  // one token: T is 1 (launch_job)
      const unicorn::cuda::ActWords xa = unicorn::cuda::load_act32(x.q + t * K, xa_blk * 32);
      const unicorn::cuda::ActWords xb = unicorn::cuda::load_act32(x.q + t * K, xb_blk * 32);
      const float dxa = unicorn::cuda::load_ds(x.ds, t * (K / 32) + xa_blk).x,
                  dxb = unicorn::cuda::load_ds(x.ds, t * (K / 32) + xb_blk).x;
#pragma unroll
      for (int p = 0; p < P; ++p) {
        int a0 = 0, a1 = 0, b0 = 0, b1 = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          a0 = unicorn::cuda::dot4(qa[p][i], xa.w[i], a0);
          a1 = unicorn::cuda::dot4(qa[p][i + 4], xa.w[i + 4], a1);
          b0 = unicorn::cuda::dot4(qb[p][i], xb.w[i], b0);
          b1 = unicorn::cuda::dot4(qb[p][i + 4], xb.w[i + 4], b1);
        }
        acc[p][t] += d[p] * (dxa * (sa0[p] * static_cast<float>(a0) + sa1[p] * static_cast<float>(a1)) +
                             dxb * (sb0[p] * static_cast<float>(b0) + sb1[p] * static_cast<float>(b1)));
      }
    }
  }
  template <int NT>
  static __device__ __forceinline__ void dot_raw(const Raw& rw, int64_t item, ActQ8 x, int64_t K, int T, float* acc) {
    dot_rows<NT, 1>(&rw, item, x, K, T, reinterpret_cast<float(*)[NT]>(acc));
  }
};

// The old Q6_K planes (FormatQ6_KBlocks) into the engine's (FormatQ6_K since session 25; one thread
// per block): quant plane at q, highs plane at hi, the scale plane at sc (the same 16 bytes per
// block), d unchanged.
__global__ void q6_to_planes(const uint8_t* qq, const uint8_t* scales, uint8_t* q, uint8_t* hi, uint8_t* sc,
                             size_t n_blocks) {
  for (size_t b = blockIdx.x * size_t(blockDim.x) + threadIdx.x; b < n_blocks; b += size_t(gridDim.x) * blockDim.x) {
    const uint8_t* ql = qq + b * 192;
    const uint8_t* qh = ql + 128;
    for (int i = 0; i < 128; ++i) q[b * 128 + i] = 0;
    for (int i = 0; i < 64; ++i) hi[b * 64 + i] = 0;
    for (int v = 0; v < 256; ++v) {
      const int h = v / 128, s = (v % 128) / 32, l = v % 32;
      const int low = (ql[64 * h + 32 * (s % 2) + l] >> (4 * (s / 2))) & 0xF;
      const int high = (qh[32 * h + l] >> (2 * s)) & 3;
      const int S = v / 32, j = v % 32, half = j / 16, i = (j % 16) / 4, k = j % 4;
      q[b * 128 + S * 16 + j % 16] |= static_cast<uint8_t>(low << (4 * half));
      hi[b * 64 + S * 8 + 4 * (i / 2) + k] |= static_cast<uint8_t>(high << (2 * (i % 2) + 4 * half));
    }
    for (int i = 0; i < 16; ++i) sc[b * 16 + i] = scales[b * 16 + i];
  }
}

// Reference for any engine format: one thread per row, its values from F::decode8 (equal to the
// reference codec), double accumulation against the dequantized activations.
template <class F>
__global__ void ref_decode(DeviceWeight w, const int8_t* xq, const float2* xds, float* y) {
  const int64_t r = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (r >= w.rows) return;
  double acc = 0;
  for (int64_t k = 0; k < w.cols; k += 8) {
    float v[8];
    F::decode8(w, r, k, v);
    for (int j = 0; j < 8; ++j) acc += double(v[j]) * xq[k + j] * xds[(k + j) / 32].x;
  }
  y[r] = static_cast<float>(acc);
}

// One token: a group of WPR warps computes P rows (GLU: row r of w and of w2) over the whole
// input; its lanes take consecutive items, U per lane and pass, all loaded before the dots.
// Outputs: y[row] (GLU: gate dots at y[r], up dots at y[rows + r]).
template <class F, int WPR, int U, int P, bool GLU, int MINB>
__global__ void __launch_bounds__(128, MINB) kern(DeviceWeight w, DeviceWeight w2, ActQ8 x, float* y) {
  constexpr int R = GLU ? 1 : P;
  __shared__ float part[4][P];
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, sub = warp % WPR;
  const int rows = static_cast<int>(w.rows);
  const int row = (blockIdx.x * (4 / WPR) + warp / WPR) * R;
  const int items = static_cast<int>(w.cols / F::kItem);
  float acc[P][1];
#pragma unroll
  for (int p = 0; p < P; ++p) acc[p][0] = 0.0f;
  if (row < rows) {
    constexpr int step = 32 * WPR;
    for (int base = sub * 32 + lane; base < items; base += step * U) {
      typename F::Raw raw[U][P];
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (base + step * u < items)
#pragma unroll
          for (int p = 0; p < P; ++p)
            raw[u][p] =
                F::load(GLU && p == 1 ? w2 : w, GLU ? row : (row + p < rows ? row + p : rows - 1), base + step * u);
#pragma unroll
      for (int u = 0; u < U; ++u)
        if (base + step * u < items) F::template dot_rows<1, P>(raw[u], base + step * u, x, w.cols, 1, acc);
    }
  }
#pragma unroll
  for (int p = 0; p < P; ++p) acc[p][0] = warp_sum(acc[p][0]);
  if (WPR > 1) {
    if (lane == 0)
#pragma unroll
      for (int p = 0; p < P; ++p) part[warp][p] = acc[p][0];
    __syncthreads();
    if (sub != 0 || lane != 0) return;
#pragma unroll
    for (int p = 0; p < P; ++p) {
      acc[p][0] = 0;
      for (int k = 0; k < WPR; ++k) acc[p][0] += part[warp + k][p];
    }
  } else if (lane != 0) {
    return;
  }
  if (row >= rows) return;
  if (GLU) {
    y[row] = acc[0][0], y[rows + row] = acc[1][0];
  } else {
#pragma unroll
    for (int p = 0; p < P; ++p)
      if (row + p < rows) y[row + p] = acc[p][0];
  }
}

struct Shape {
  const char* name;
  int64_t rows;  // GeGLU: gate rows + up rows
  int K;
  bool glu;
};

template <class F, int WPR, int U, int P, bool GLU, int MINB>
void launch(const DeviceWeight& w, const DeviceWeight& w2, ActQ8 x, float* y, cudaStream_t s) {
  constexpr int R = GLU ? 1 : P;
  const int64_t groups = (w.rows + R - 1) / R;
  const unsigned blocks = static_cast<unsigned>((groups + 4 / WPR - 1) / (4 / WPR));
  kern<F, WPR, U, P, GLU, MINB><<<blocks, 128, 0, s>>>(w, w2, x, y);
}

}  // namespace

// Argument: "head" runs only the output head's shape (Q6_K, the 27B Q4_0 file's head, against Q4_K
// and Q4_0 on that shape), "all" every shape; none, the four layer shapes.
int main(int argc, char** argv) {
  lab_print_device();
  const std::string which = argc > 1 ? argv[1] : "layer";
  const Shape shapes[] = {{"q 5376->4096", 4096, 5376, false},
                          {"o 4096->5376", 5376, 4096, false},
                          {"gate+up 5376->2x21504", 43008, 5376, true},
                          {"down 21504->5376", 5376, 21504, false},
                          {"head 5376->262144", 262144, 5376, false}};
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  for (const Shape& sh : shapes) {
    const bool head = sh.rows == 262144;
    if (which != "all" && head != (which == "head")) continue;
    const int nsb = sh.K / 256, nb = sh.K / 32;
    const size_t n_blocks = size_t(sh.rows) * nsb, mbytes = n_blocks * kBlockBytes;
    const int copies = std::max<int>(2, int((400ull << 20) / mbytes) + 1);
    // Each copy: engine Q4_K blocks, the same weights in planes, and a Q4_0 matrix of the same bytes.
    std::vector<uint8_t*> k4(copies), pq(copies), q40(copies);
    std::vector<uint4*> ph(copies);
    std::vector<uint16_t*> q40d(copies);
    for (int c = 0; c < copies; ++c) {
      CK(cudaMalloc(&k4[c], mbytes));
      CK(cudaMalloc(&pq[c], n_blocks * 128));
      CK(cudaMalloc(&ph[c], n_blocks * 16));
      CK(cudaMalloc(&q40[c], size_t(sh.rows) * nb * 16));
      CK(cudaMalloc(&q40d[c], size_t(sh.rows) * nb * 2));
      fill_blocks<<<1024, 256, 0, st>>>(k4[c], n_blocks, 17 + c);
      to_planes<<<1024, 256, 0, st>>>(k4[c], pq[c], ph[c], n_blocks);
      fill_bytes<<<1024, 256, 0, st>>>(q40[c], size_t(sh.rows) * nb * 16, 5 + c);
      fill_scales<<<1024, 256, 0, st>>>(q40d[c], size_t(sh.rows) * nb, 7 + c);
    }
    // The head also in Q6_K (the old planes, FormatQ6_KBlocks: ql + qh, the int8 scales, d; random bytes).
    const size_t q6_bytes = n_blocks * (kOldQ6KQuantBytes + kQ6KScaleBytes + 2);
    std::vector<uint8_t*> q6(head ? copies : 0);
    for (auto& p : q6) {
      CK(cudaMalloc(&p, q6_bytes));
      fill_bytes<<<1024, 256, 0, st>>>(p, n_blocks * (kOldQ6KQuantBytes + kQ6KScaleBytes), 9);
      fill_scales<<<1024, 256, 0, st>>>(
          reinterpret_cast<uint16_t*>(p + n_blocks * (kOldQ6KQuantBytes + kQ6KScaleBytes)), n_blocks, 11);
    }
    // The same Q6_K weights in the engine's planes: quant (128 bytes per block), highs (64), scales (16).
    std::vector<uint8_t*> q6p(head ? copies : 0);
    for (int c = 0; c < int(q6p.size()); ++c) {
      CK(cudaMalloc(&q6p[c], n_blocks * (128 + 64 + 16)));
      q6_to_planes<<<1024, 256, 0, st>>>(q6[c], q6[c] + n_blocks * kOldQ6KQuantBytes, q6p[c], q6p[c] + n_blocks * 128,
                                         q6p[c] + n_blocks * 192, n_blocks);
    }
    auto q6_kp = [&](int c) {
      DeviceWeight w;
      w.rows = sh.rows, w.cols = sh.K, w.blocks_per_row = nsb, w.q_row_bytes = int64_t{nsb} * 128;
      w.q = q6p[c];
      w.qh = reinterpret_cast<const uint32_t*>(q6p[c] + n_blocks * 128);
      w.sc = q6p[c] + n_blocks * 192;
      w.d = reinterpret_cast<const uint16_t*>(q6[c] + n_blocks * (kOldQ6KQuantBytes + kQ6KScaleBytes));
      return w;
    };
    auto q6_k = [&](int c) {
      DeviceWeight w;
      w.rows = sh.rows, w.cols = sh.K, w.blocks_per_row = nsb, w.q_row_bytes = int64_t{nsb} * kOldQ6KQuantBytes;
      w.q = q6[c];
      w.qh = reinterpret_cast<const uint32_t*>(q6[c] + n_blocks * kOldQ6KQuantBytes);
      w.d = reinterpret_cast<const uint16_t*>(q6[c] + n_blocks * (kOldQ6KQuantBytes + kQ6KScaleBytes));
      return w;
    };
    int8_t* xq;
    float2* xds;
    float *y, *yk, *y0;
    CK(cudaMalloc(&xq, sh.K));
    CK(cudaMalloc(&xds, nb * sizeof(float2)));
    CK(cudaMalloc(&y, sh.rows * 4));
    CK(cudaMalloc(&yk, sh.rows * 4));
    CK(cudaMalloc(&y0, sh.rows * 4));
    lab_upload_activations(sh.K, xq, xds);
    const ActQ8 x{xq, reinterpret_cast<const float*>(xds)};
    ref_q4k<<<(sh.rows + 127) / 128, 128, 0, st>>>(k4[0], sh.rows, nsb, xq, xds, yk);
    ref_q40<<<(sh.rows + 127) / 128, 128, 0, st>>>(q40[0], q40d[0], sh.rows, nb, xq, xds, y0);
    CK(cudaStreamSynchronize(st));
    std::vector<float> hk(sh.rows), h0(sh.rows), h6;
    CK(cudaMemcpy(hk.data(), yk, sh.rows * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(h0.data(), y0, sh.rows * 4, cudaMemcpyDeviceToHost));
    if (head) {
      ref_decode<FormatQ6_KBlocks><<<(sh.rows + 127) / 128, 128, 0, st>>>(q6_k(0), xq, xds, y0);
      CK(cudaStreamSynchronize(st));
      h6.resize(sh.rows);
      CK(cudaMemcpy(h6.data(), y0, sh.rows * 4, cudaMemcpyDeviceToHost));
    }

    // Weights of copy c: a GeGLU shape's gate is rows [0, rows / 2), its up the rest.
    const int64_t wrows = sh.glu ? sh.rows / 2 : sh.rows;
    auto engine_k = [&](int c, int64_t r0) {
      DeviceWeight w;
      w.rows = wrows, w.cols = sh.K, w.blocks_per_row = nsb, w.q_row_bytes = int64_t{nsb} * kBlockBytes;
      w.q = k4[c] + r0 * w.q_row_bytes;
      return w;
    };
    auto planes = [&](int c, int64_t r0) {
      DeviceWeight w;
      w.rows = wrows, w.cols = sh.K, w.blocks_per_row = nsb, w.q_row_bytes = int64_t{nsb} * 128;
      w.q = pq[c] + r0 * w.q_row_bytes;
      w.qh = reinterpret_cast<const uint32_t*>(ph[c] + r0 * nsb);
      return w;
    };
    auto q4_0 = [&](int c, int64_t r0) {
      DeviceWeight w;
      w.rows = wrows, w.cols = sh.K, w.blocks_per_row = nb, w.q_row_bytes = int64_t{nb} * 16;
      w.q = q40[c] + r0 * w.q_row_bytes;
      w.d = q40d[c] + r0 * nb;
      return w;
    };
    struct Variant {
      std::string name;
      int kind;  // 0 the 144-byte blocks, 1 the engine's planes, 2 Q4_0, 3 the old Q6_K planes, 4 the engine's Q6_K
      std::function<void(const DeviceWeight&, const DeviceWeight&)> run;
    };
    std::vector<Variant> vs;
#define V(KIND, F, WPR, U, P, MINB)                        \
  vs.push_back(                                            \
      {#F " wpr" #WPR " U" #U " P" #P " minB" #MINB, KIND, \
       [&](const DeviceWeight& a, const DeviceWeight& b) { launch<F, WPR, U, P, false, MINB>(a, b, x, y, st); }})
#define VG(KIND, F, WPR, U, MINB)                                                                                   \
  vs.push_back({#F " GLU wpr" #WPR " U" #U " minB" #MINB, KIND, [&](const DeviceWeight& a, const DeviceWeight& b) { \
                  launch<F, WPR, U, 2, true, MINB>(a, b, x, y, st);                                                 \
                }})
    if (sh.glu) {
      VG(0, FormatQ4_KBlocks, 1, 1, 6);  // session 24's q4_mix GeGLU pair
      VG(0, FormatQ4_KBlocks, 1, 2, 1);
      VG(1, FormatQ4_K, 2, 3, 1);  // Q4_0's layout
      VG(1, FormatQ4_K, 2, 2, 1);
      VG(1, FormatQ4_K, 2, 3, 5);
      VG(1, FormatQ4_K, 4, 2, 1);
      VG(1, FormatQ4_K, 1, 3, 1);
      VG(2, FormatQ4_0, 2, 3, 1);  // the engine's Q4_0 GeGLU pair
    } else if (sh.K == 21504) {
      V(0, FormatQ4_KBlocks, 4, 1, 2, 1);  // session 24's q4_mix down: split over the block, row pairs
      V(0, FormatQ4_KBlocks, 4, 1, 2, 8);
      V(1, FormatQ4_K, 4, 2, 2, 1);  // Q4_0's down layout
      V(1, FormatQ4_K, 4, 1, 2, 1);
      V(1, FormatQ4_K, 4, 3, 2, 1);
      V(1, FormatQ4_K, 4, 2, 1, 1);
      V(2, FormatQ4_0, 4, 2, 2, 1);  // the engine's Q4_0 down
    } else if (head) {
      V(3, FormatQ6_KBlocks, 1, 3, 1, 1);  // session 24's Q6_K head (q6k_layout 1)
      V(3, FormatQ6_KBlocks, 1, 2, 1, 1);
      V(3, FormatQ6_KBlocks, 1, 2, 2, 1);  // row pairs sharing each activation load
      V(3, FormatQ6_KBlocks, 2, 2, 1, 1);
      V(3, FormatQ6_KBlocks, 2, 1, 2, 1);  // layout 3 (session 25)
      V(3, FormatQ6_KBlocks, 4, 1, 2, 1);
      V(3, FormatQ6_KBlocks, 1, 1, 2, 1);
      V(3, FormatQ6_KBlocks, 2, 2, 2, 1);
      V(3, FormatQ6_KBlocks, 2, 1, 4, 1);
      V(4, FormatQ6_K, 1, 3, 2, 1);  // the engine's head layout since session 25
      V(4, FormatQ6_K, 2, 3, 2, 1);  // 32-value planes in Q4_0's head shape
      V(4, FormatQ6_K, 2, 2, 2, 1);
      V(4, FormatQ6_K, 4, 2, 2, 1);
      V(4, FormatQ6_K, 2, 3, 1, 1);
      V(1, FormatQ4_K, 2, 3, 2, 1);  // q4_mix's Q4_K head (Q4_0's layout)
      V(2, FormatQ4_0, 2, 3, 2, 1);  // Q4_0 rows of this shape
    } else if (sh.K == 4096) {
      V(0, FormatQ4_KBlocks, 1, 1, 2, 8);  // session 24's q4_mix o: row pairs, one load per lane
      V(1, FormatQ4_K, 1, 4, 2, 6);        // Q4_0's o layout
      V(1, FormatQ4_K, 1, 4, 2, 1);
      V(1, FormatQ4_K, 2, 2, 2, 1);
      V(2, FormatQ4_0, 1, 4, 2, 6);  // the engine's Q4_0 o
    } else {
      V(0, FormatQ4_KBlocks, 1, 1, 2, 8);  // q alone, as session 24's Q4_K pairs
      V(1, FormatQ4_K, 2, 3, 2, 1);        // Q4_0's q/k/v layout
      V(1, FormatQ4_K, 2, 3, 2, 5);
      V(1, FormatQ4_K, 1, 3, 2, 1);
      V(2, FormatQ4_0, 2, 3, 2, 1);
    }
    for (auto& v : vs) {
      auto weights = [&](int c) {
        const int64_t up = sh.glu ? sh.rows / 2 : 0;
        if (v.kind == 0) return std::pair{engine_k(c, 0), engine_k(c, up)};
        if (v.kind == 1) return std::pair{planes(c, 0), planes(c, up)};
        if (v.kind == 3) return std::pair{q6_k(c), q6_k(c)};
        if (v.kind == 4) return std::pair{q6_kp(c), q6_kp(c)};
        return std::pair{q4_0(c, 0), q4_0(c, up)};
      };
      const LabResult res = lab_check_and_time(
          [&](int c) {
            auto [a, b] = weights(c);
            v.run(a, b);
          },
          copies, y, v.kind == 2 ? h0 : (v.kind >= 3 ? h6 : hk), st);
      const double bytes = v.kind >= 3 ? double(n_blocks) * 210 : double(mbytes);
      std::printf("%-36s %-22s %8.2f us %7.0f GB/s  nmse %.1e%s\n", v.name.c_str(), sh.name, res.us,
                  bytes / res.us / 1e3, res.nmse, res.nmse > 1e-8 ? "  WRONG" : "");
    }
    for (int c = 0; c < copies; ++c)
      cudaFree(k4[c]), cudaFree(pq[c]), cudaFree(ph[c]), cudaFree(q40[c]), cudaFree(q40d[c]);
    for (auto p : q6) cudaFree(p);
    for (auto p : q6p) cudaFree(p);
    cudaFree(xq), cudaFree(xds), cudaFree(y), cudaFree(yk), cudaFree(y0);
  }
  return 0;
}
