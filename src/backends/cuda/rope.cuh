// The rotation of RoPE pair i at position p (spec §2.4.3): inv_freq = base^(-2i/d) / scale and the
// angle rounded to f32, cos/sin in double, as the CPU reference does. The rope_table kernel
// (rope.cu) evaluates it once per (batch row, pair) and step; the kernels that rotate (rope,
// qk_norm_rope, the fused decode attention) read that table, so the double-precision pow and
// sincos stay off every layer's critical path and every kernel rotates by the same f32 factors.
#pragma once
#include <cstdint>

namespace unicorn::cuda {

__device__ __forceinline__ void rope_factors(int64_t i, int64_t head_dim, int32_t pos, float base, float scale,
                                             float& c, float& s) {
  const float inv_freq = static_cast<float>(1.0 / pow(static_cast<double>(base),
                                                      2.0 * static_cast<double>(i) / static_cast<double>(head_dim))) /
                         scale;
  const float angle = static_cast<float>(pos) * inv_freq;
  double sd, cd;
  sincos(static_cast<double>(angle), &sd, &cd);
  c = static_cast<float>(cd);
  s = static_cast<float>(sd);
}

// (a, b) = (a c - b s, b c + a s) with the reference's rounding.
__device__ __forceinline__ void rotate(float& a, float& b, float c, float s) {
  const float x = a, y = b;
  a = __fsub_rn(__fmul_rn(x, c), __fmul_rn(y, s));
  b = __fadd_rn(__fmul_rn(y, c), __fmul_rn(x, s));
}

}  // namespace unicorn::cuda
