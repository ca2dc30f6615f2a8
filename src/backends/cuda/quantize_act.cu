// Activations f32 -> int8 per 32 values (d = max|x| / 127, q = round(x / d)) for the integer
// dot-product matvec. Also stores d * sum(q), which Q4_K needs for its per-sub-block minimum.
// Eight threads per 32-value block, four values each.
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {
namespace {

__global__ void quantize_q8(const float* x, int64_t n_blocks, int8_t* q, float* ds) {
  pdl_wait();
  pdl_trigger();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // group of 4 values
  const bool live = i < n_blocks * 8;
  float4 v = make_float4(0, 0, 0, 0);
  if (live) v = reinterpret_cast<const float4*>(x)[i];
  float amax = fmaxf(fmaxf(fabsf(v.x), fabsf(v.y)), fmaxf(fabsf(v.z), fabsf(v.w)));
#pragma unroll
  for (int o = 4; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o, 8));
  const float d = amax / 127.0f;
  const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
  const int a = __float2int_rn(v.x * id), b = __float2int_rn(v.y * id);
  const int c = __float2int_rn(v.z * id), e = __float2int_rn(v.w * id);
  int sum = a + b + c + e;
#pragma unroll
  for (int o = 4; o > 0; o /= 2) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, o, 8);
  if (!live) return;
  reinterpret_cast<char4*>(q)[i] = make_char4(static_cast<signed char>(a), static_cast<signed char>(b),
                                              static_cast<signed char>(c), static_cast<signed char>(e));
  if (i % 8 == 0) reinterpret_cast<float2*>(ds)[i / 8] = make_float2(d, d * static_cast<float>(sum));
}

}  // namespace

cudaError_t launch_quantize_q8(const float* x, int64_t T, int64_t K, int8_t* q, float* ds, cudaStream_t s) {
  const int64_t n_blocks = T * K / 32;
  const int64_t threads = n_blocks * 8;
  constexpr int kBlock = 256;
  const cudaError_t e = launch(quantize_q8, dim3(static_cast<unsigned>((threads + kBlock - 1) / kBlock)), dim3(kBlock),
                               0, s, x, n_blocks, q, ds);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
