// The int8 activation blocks of the matvec (device_weight.h ActQ8), defined once: 32 values per
// block, d = max|x| / 127, q = round(x / d), stored with (d, d * sum q) (Q4_K needs the sum for
// its minimums). Eight consecutive lanes hold a block's eight float4s; every lane of the warp
// must call this (it shuffles), `live` says whether its float4 exists.
#pragma once
#include <cstdint>

namespace unicorn::cuda {

// v: float4 number g of the [T, K] activation matrix (so block g / 8).
__device__ __forceinline__ void quantize4_store(float4 v, bool live, int64_t g, int8_t* q, float* ds) {
  if (!live) v = make_float4(0, 0, 0, 0);
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
  reinterpret_cast<char4*>(q)[g] = make_char4(static_cast<signed char>(a), static_cast<signed char>(b),
                                              static_cast<signed char>(c), static_cast<signed char>(e));
  if (g % 8 == 0) reinterpret_cast<float2*>(ds)[g / 8] = make_float2(d, d * static_cast<float>(sum));
}

// The same block when each of a warp's 32 lanes holds one of its values (every lane calls it):
// the lane's int8 value, and the block's (d, d * sum q) in ds.
__device__ __forceinline__ int quantize32_warp(float v, float2& ds) {
  float amax = fabsf(v);
#pragma unroll
  for (int o = 16; o > 0; o /= 2) amax = fmaxf(amax, __shfl_xor_sync(0xFFFFFFFFu, amax, o));
  const float d = amax / 127.0f;
  const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
  const int q = __float2int_rn(v * id);
  int sum = q;
#pragma unroll
  for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xFFFFFFFFu, sum, o);
  ds = make_float2(d, d * static_cast<float>(sum));
  return q;
}

}  // namespace unicorn::cuda
