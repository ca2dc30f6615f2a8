// Conversions to 16-bit floats for the tensor-core prefill matmul (gemm.cpp): rows of any weight
// format, decoded with weight_formats.cuh decode8 (the reference codec's value) and rounded to
// nearest even bf16 or f16, and f32 activations (to bf16, or to f16 scaled by a power of two). One thread per 8 values:
// one 16-byte store each, and a grid of one thread per group, which fills the GPU for any chunk worth a matmul.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backends/cuda/kernels.h"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);  // .x = lo goes to the low half
  uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}

__device__ __forceinline__ uint4 pack8(const float* v) {
  return make_uint4(pack_bf16(v[0], v[1]), pack_bf16(v[2], v[3]), pack_bf16(v[4], v[5]), pack_bf16(v[6], v[7]));
}

__device__ __forceinline__ uint32_t pack_f16(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  uint32_t u;
  memcpy(&u, &h, 4);
  return u;
}

__device__ __forceinline__ uint4 pack8_f16(const float* v) {
  return make_uint4(pack_f16(v[0], v[1]), pack_f16(v[2], v[3]), pack_f16(v[4], v[5]), pack_f16(v[6], v[7]));
}

// Group g (8 values) of the chunk: row r0 + g / (K / 8), columns 8 * (g % (K / 8)) ...
template <class F, bool F16>
__global__ void __launch_bounds__(kThreads) dequantize_rows(DeviceWeight w, int64_t r0, int64_t groups, uint4* out) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g >= groups) return;
  const int64_t per_row = w.cols / 8;
  float v[8];
  F::decode8(w, r0 + g / per_row, (g % per_row) * 8, v);
  out[g] = F16 ? pack8_f16(v) : pack8(v);
}

// Q4_0 and Q8_0 to f16 through shared memory: each thread decodes one 32-value block from its
// 16-byte (Q4_0) or 32-byte (Q8_0) quant load and its scale, into a tile of the block's 256 blocks;
// then the tile is stored with consecutive threads writing consecutive 16 bytes. Values are the
// reference codec's (f32 d * q, then one rounding to f16), as the generic path gives.
constexpr int kTileBlocks = 256;
template <bool Q8>
__global__ void __launch_bounds__(kTileBlocks)
    dequantize_legacy_f16(DeviceWeight w, int64_t r0, int64_t n_blocks, uint4* out) {
  __shared__ uint4 tile[kTileBlocks * 4];
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t b0 = static_cast<int64_t>(blockIdx.x) * kTileBlocks;
  if (b0 + tid < n_blocks) {
    const int64_t b = r0 * w.blocks_per_row + b0 + tid;  // plane index: a chunk's rows are contiguous
    const float d = __half2float(__ushort_as_half(__ldg(w.d + b)));
    float v[32];
    if constexpr (Q8) {
      const uint4* p = reinterpret_cast<const uint4*>(w.q + b * 32);
      const uint4 a0 = __ldg(p), a1 = __ldg(p + 1);
      const uint32_t q[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
#pragma unroll
      for (int j = 0; j < 32; ++j)
        v[j] = __fmul_rn(d, static_cast<float>(static_cast<int8_t>((q[j / 4] >> (8 * (j % 4))) & 0xFFu)));
    } else {
      const uint4 a = __ldg(reinterpret_cast<const uint4*>(w.q + b * 16));
      const uint32_t q[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
      for (int j = 0; j < 16; ++j) {
        const uint32_t byte = (q[j / 4] >> (8 * (j % 4))) & 0xFFu;
        v[j] = __fmul_rn(d, static_cast<float>(static_cast<int>(byte & 0xFu) - 8));
        v[j + 16] = __fmul_rn(d, static_cast<float>(static_cast<int>(byte >> 4) - 8));
      }
    }
#pragma unroll
    for (int k = 0; k < 4; ++k) tile[4 * tid + k] = pack8_f16(v + 8 * k);
  }
  __syncthreads();
  const int64_t n16 = 4 * (n_blocks - b0);  // this tile's 16-byte words
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const int j = tid + k * kTileBlocks;
    if (j < n16) out[4 * b0 + j] = tile[j];
  }
}

// max |x| over the grid into *amax (as float bits: for non-negative floats the unsigned order is
// the float order).
__global__ void __launch_bounds__(kThreads) abs_max(const float4* x, int64_t n4, unsigned* amax) {
  float m = 0.0f;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x; i < n4;
       i += static_cast<int64_t>(gridDim.x) * kThreads) {
    const float4 a = __ldg(x + i);
    m = fmaxf(m, fmaxf(fmaxf(fabsf(a.x), fabsf(a.y)), fmaxf(fabsf(a.z), fabsf(a.w))));
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) m = fmaxf(m, __shfl_xor_sync(0xFFFFFFFFu, m, o));
  if (threadIdx.x % 32 == 0) atomicMax(amax, __float_as_uint(m));
}

// x * 2^s to f16 with s chosen so that max |x| * 2^s lies in [2^13, 2^14): no overflow, full
// precision for small activations. alpha_beta = (2^-s, 0), the GEMM's factors.
__global__ void __launch_bounds__(kThreads)
    f32_to_f16_scaled(const float4* x, int64_t groups, uint4* out, const unsigned* amax, float* alpha_beta) {
  const float a = __uint_as_float(*amax);
  int e = 0;
  frexpf(a, &e);  // a < 2^e
  const bool finite = a > 0.0f && a < INFINITY;
  const float scale = finite ? ldexpf(1.0f, 14 - e) : 1.0f;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g == 0) {
    alpha_beta[0] = finite ? ldexpf(1.0f, e - 14) : 1.0f;
    alpha_beta[1] = 0.0f;
  }
  if (g >= groups) return;
  const float4 p = __ldg(x + 2 * g), q = __ldg(x + 2 * g + 1);
  const float v[8] = {p.x * scale, p.y * scale, p.z * scale, p.w * scale,
                      q.x * scale, q.y * scale, q.z * scale, q.w * scale};
  out[g] = pack8_f16(v);
}

__global__ void __launch_bounds__(kThreads) f32_to_bf16(const float4* x, int64_t groups, uint4* out) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g >= groups) return;
  const float4 a = __ldg(x + 2 * g), b = __ldg(x + 2 * g + 1);
  const float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
  out[g] = pack8(v);
}

unsigned blocks_for(int64_t groups) { return static_cast<unsigned>((groups + kThreads - 1) / kThreads); }

}  // namespace

namespace {

// Rows [r0, r0 + n) of w to 16-bit floats: f16 (F16 = true) or bf16.
template <bool F16>
cudaError_t dequantize_to(const DeviceWeight& w, int64_t r0, int64_t n, uint16_t* out, cudaStream_t s) {
  if (r0 < 0 || n < 0 || r0 + n > w.rows || w.cols % 8 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return cudaErrorInvalidValue;
  const int64_t groups = n * (w.cols / 8);
  if (groups == 0) return cudaSuccess;
  auto* o = reinterpret_cast<uint4*>(out);
  if (F16 && (w.type == GgmlType::Q4_0 || w.type == GgmlType::Q8_0)) {
    const int64_t n_blocks = n * w.blocks_per_row;
    const auto grid = static_cast<unsigned>((n_blocks + kTileBlocks - 1) / kTileBlocks);
    if (w.type == GgmlType::Q4_0)
      dequantize_legacy_f16<false><<<grid, kTileBlocks, 0, s>>>(w, r0, n_blocks, o);
    else
      dequantize_legacy_f16<true><<<grid, kTileBlocks, 0, s>>>(w, r0, n_blocks, o);
    return cudaGetLastError();
  }
  const bool ok = with_format(w.type, [&](auto f) {
    dequantize_rows<decltype(f), F16><<<blocks_for(groups), kThreads, 0, s>>>(w, r0, groups, o);
  });
  return ok ? cudaGetLastError() : cudaErrorNotSupported;
}

}  // namespace

cudaError_t launch_dequantize_bf16(const DeviceWeight& w, int64_t r0, int64_t n, uint16_t* out, cudaStream_t s) {
  return dequantize_to<false>(w, r0, n, out, s);
}

cudaError_t launch_dequantize_f16(const DeviceWeight& w, int64_t r0, int64_t n, uint16_t* out, cudaStream_t s) {
  return dequantize_to<true>(w, r0, n, out, s);
}

cudaError_t launch_f32_to_f16_scaled(const float* x, int64_t n, uint16_t* out, unsigned* amax, float* alpha_beta,
                                     cudaStream_t s) {
  if (n % 8 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return cudaErrorInvalidValue;
  const int64_t groups = n / 8;
  if (groups == 0) return cudaSuccess;
  cudaError_t e = cudaMemsetAsync(amax, 0, sizeof(unsigned), s);
  if (e != cudaSuccess) return e;
  const auto* x4 = reinterpret_cast<const float4*>(x);
  abs_max<<<std::min<unsigned>(blocks_for(n / 4), 1024), kThreads, 0, s>>>(x4, n / 4, amax);
  f32_to_f16_scaled<<<blocks_for(groups), kThreads, 0, s>>>(x4, groups, reinterpret_cast<uint4*>(out), amax,
                                                            alpha_beta);
  return cudaGetLastError();
}

cudaError_t launch_f32_to_bf16(const float* x, int64_t n, uint16_t* out, cudaStream_t s) {
  if (n % 8 != 0 || reinterpret_cast<uintptr_t>(x) % 16 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return cudaErrorInvalidValue;
  const int64_t groups = n / 8;
  if (groups == 0) return cudaSuccess;
  f32_to_bf16<<<blocks_for(groups), kThreads, 0, s>>>(reinterpret_cast<const float4*>(x), groups,
                                                      reinterpret_cast<uint4*>(out));
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
