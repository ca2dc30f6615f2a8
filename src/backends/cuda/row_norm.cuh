// RMSNorm pieces shared by the norm kernels (norms.cu) and the matvec that computes the end of a
// block itself (matvec_quant.cu, fused_add_norm below): spec §2.2, y = x * rsqrt(mean(x²) + eps)
// * w with w already holding 1 + w; the sum of squares in double, as the CPU reference.
#pragma once
#include <cstdint>

#include "backends/cuda/act_quant.cuh"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {

// Sum over the block (blockDim.x == N), every thread gets the total. `scratch` holds N/32 values.
template <int N>
__device__ __forceinline__ double block_sum(double v, double* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  __syncthreads();  // scratch may still be read by a previous call
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  double total = 0.0;
#pragma unroll
  for (int i = 0; i < N / 32; ++i) total += scratch[i];
  return total;
}

__device__ __forceinline__ float inv_rms(double sum_sq, int64_t n, float eps) {
  return 1.0f / sqrtf(static_cast<float>(sum_sq / static_cast<double>(n)) + eps);
}

__device__ __forceinline__ float4 ld4(const float* p, int64_t i) { return reinterpret_cast<const float4*>(p)[i]; }
__device__ __forceinline__ void st4(float* p, int64_t i, float4 v) { reinterpret_cast<float4*>(p)[i] = v; }
__device__ __forceinline__ double sq4(float4 v) {
  return static_cast<double>(v.x) * v.x + static_cast<double>(v.y) * v.y + static_cast<double>(v.z) * v.z +
         static_cast<double>(v.w) * v.w;
}
// x * inv * w per component, the reference's order (spec §2.2).
__device__ __forceinline__ float4 scale4(float4 x, float inv, float4 w) {
  return make_float4(x.x * inv * w.x, x.y * inv * w.y, x.z * inv * w.z, x.w * inv * w.w);
}
__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// The end of a block for one token, computed by every block of the matvec that consumes it (the
// fused add_norm_matmul ops; kernels.h NormIn): x' = x + rms_norm(o)·post_w, h = rms_norm(x')·
// next_w, h quantized to int8 blocks of 32 (act_quant.cuh) into this block's shared memory (q: cols
// bytes, ds: cols / 32 pairs), x' kept there (xs: cols floats) for the block that writes it back.
// The same arithmetic as norms.cu's add_norm, so the same values. Every thread of the TPB-thread
// block calls it after pdl_wait(); rows of at most TPB * 4 * V values.
template <int TPB, int V>
__device__ __forceinline__ void fused_add_norm(const float* x, const float* o, const float* post_w, const float* next_w,
                                               int cols, float eps, int8_t* q, float* ds, float* xs, double* scratch) {
  const int n4 = cols / 4;
  float4 xv[V], ov[V];
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int i = static_cast<int>(threadIdx.x) + k * TPB;
    if (i < n4) {
      ov[k] = ld_dep_f4(o + 4 * i);
      xv[k] = ld_dep_f4(x + 4 * i);
      ss += sq4(ov[k]);
    }
  }
  const float inv = inv_rms(block_sum<TPB>(ss, scratch), cols, eps);
  double ss2 = 0.0;
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int i = static_cast<int>(threadIdx.x) + k * TPB;
    if (i < n4) {
      xv[k] = add4(xv[k], scale4(ov[k], inv, ld4(post_w, i)));
      st4(xs, i, xv[k]);
      ss2 += sq4(xv[k]);
    }
  }
  const float inv2 = inv_rms(block_sum<TPB>(ss2, scratch), cols, eps);
#pragma unroll
  for (int k = 0; k < V; ++k) {
    const int i = static_cast<int>(threadIdx.x) + k * TPB;
    const float4 h = i < n4 ? scale4(xv[k], inv2, ld4(next_w, i)) : make_float4(0, 0, 0, 0);
    quantize4_store(h, i < n4, i, q, ds);
  }
  __syncthreads();  // q, ds and xs complete for every warp
}

}  // namespace unicorn::cuda
