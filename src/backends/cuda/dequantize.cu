// Conversions to bf16 for the tensor-core prefill matmul (gemm.cpp): rows of any weight format,
// decoded with weight_formats.cuh decode8 (the reference codec's value) and rounded to nearest
// even, and f32 activations. One thread per 8 values: one 16-byte store each, and a grid of one
// thread per group, which fills the GPU for any chunk worth a matmul.
#include <cuda_bf16.h>

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

// Group g (8 values) of the chunk: row r0 + g / (K / 8), columns 8 * (g % (K / 8)) ...
template <class F>
__global__ void __launch_bounds__(kThreads)
    dequantize_rows_bf16(DeviceWeight w, int64_t r0, int64_t groups, uint4* out) {
  const int64_t g = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (g >= groups) return;
  const int64_t per_row = w.cols / 8;
  float v[8];
  F::decode8(w, r0 + g / per_row, (g % per_row) * 8, v);
  out[g] = pack8(v);
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

cudaError_t launch_dequantize_bf16(const DeviceWeight& w, int64_t r0, int64_t n, uint16_t* out, cudaStream_t s) {
  if (r0 < 0 || n < 0 || r0 + n > w.rows || w.cols % 8 != 0 || reinterpret_cast<uintptr_t>(out) % 16 != 0)
    return cudaErrorInvalidValue;
  const int64_t groups = n * (w.cols / 8);
  if (groups == 0) return cudaSuccess;
  auto* o = reinterpret_cast<uint4*>(out);
  const bool ok = with_format(w.type, [&](auto f) {
    dequantize_rows_bf16<decltype(f)><<<blocks_for(groups), kThreads, 0, s>>>(w, r0, groups, o);
  });
  return ok ? cudaGetLastError() : cudaErrorNotSupported;
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
