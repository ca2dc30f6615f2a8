// Float vector primitives for the CPU ops outside matmul (attention, norms): dot, axpy, scale,
// f16 row conversion. Each has an AVX2/F16C path chosen at run time and a portable fallback.
#pragma once
#include <cstdint>

namespace unicorn {

float vec_dot(const float* a, const float* b, int64_t n);
void vec_axpy(float a, const float* x, float* y, int64_t n);  // y += a·x
void vec_scale(float a, float* x, int64_t n);                 // x *= a
// out[i] = gelu_tanh(gate[i]) * up[i]  (spec §2.5), written as x·sigmoid(2u) = x / (1 + e^(−2u)),
// u = √(2/π)(x + 0.044715x³); relative error ~1e-7.
void vec_gelu_mul(const float* gate, const float* up, float* out, int64_t n);
void vec_f16_to_f32(const uint16_t* src, float* dst, int64_t n);
void vec_f32_to_f16(const float* src, uint16_t* dst, int64_t n);

}  // namespace unicorn
