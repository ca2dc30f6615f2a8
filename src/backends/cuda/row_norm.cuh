// RMSNorm pieces shared by the norm kernels (norms.cu) and the matvec's fused block end
// (matvec_quant.cu): sums of squares in double, as the CPU reference accumulates them, and
// x * inv * w per component in the reference's order (spec §2.2).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "backends/cuda/act_quant.cuh"
#include "backends/cuda/device_weight.h"

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

// The end of a block (spec §2.3) over T rows of `cols` values (cols % 32 == 0) by one block of TPB
// threads: x += rms_norm(o)·post_w, then h = rms_norm(x)·next_w and its int8 copy (act_quant.cuh)
// when t.next_w (t.q) is set. Three passes over memory, one float4 per thread at a time, so that
// it needs few registers: it runs at the end of the matvec kernel, whose main loop sets the
// register budget. o is read from the L2 (ld.global.cg): other blocks of the grid wrote it. The
// arithmetic is add_norm's (norms.cu), so the two agree up to the order of the double sums.
template <int TPB>
__device__ __forceinline__ void add_norm_passes(const AddNormTail& t, const float* o, int T, int64_t cols,
                                                double* scratch) {
  const int64_t n4 = cols / 4;
  for (int r = 0; r < T; ++r) {
    const auto* orow = reinterpret_cast<const float4*>(o + r * cols);
    float* xr = t.x + r * cols;
    double ss = 0.0;
    for (int64_t i = threadIdx.x; i < n4; i += TPB) ss += sq4(__ldcg(orow + i));
    const float inv = inv_rms(block_sum<TPB>(ss, scratch), cols, t.eps);
    double ss2 = 0.0;
    for (int64_t i = threadIdx.x; i < n4; i += TPB) {
      const float4 xv = add4(ld4(xr, i), scale4(__ldcg(orow + i), inv, ld4(t.post_w, i)));
      st4(xr, i, xv);
      ss2 += sq4(xv);
    }
    if (t.next_w == nullptr) continue;
    const float inv2 = inv_rms(block_sum<TPB>(ss2, scratch), cols, t.eps);
    float* hr = t.h + r * cols;
    for (int64_t base = 0; base < n4; base += TPB) {  // every lane runs each pass: the quantize shuffles
      const int64_t i = base + threadIdx.x;
      float4 hv = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      if (i < n4) {
        hv = scale4(ld4(xr, i), inv2, ld4(t.next_w, i));  // x as this thread stored it above
        st4(hr, i, hv);
      }
      if (t.q) quantize4_store(hv, i < n4, r * n4 + i, t.q, t.ds);
    }
  }
}

}  // namespace unicorn::cuda
