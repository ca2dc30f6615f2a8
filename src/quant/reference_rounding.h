// Shared scalar steps of the reference quantizers (GGML reference semantics). Included only by
// codec sources that have included quant/fp_exact.h first.
#pragma once
#include <cmath>
#include <cstdint>

namespace unicorn::reference {

// The value of largest magnitude (first one on ties), keeping its sign: the symmetric types
// map it to the extreme level -8 / -16 so that the full negative range is used.
inline float signed_absmax(const float* x, int n) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < n; ++j) {
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  return max;
}

inline float absmax(const float* x, int n) {
  float amax = 0.0f;
  for (int j = 0; j < n; ++j) amax = std::fmax(amax, std::fabs(x[j]));
  return amax;
}

// Truncation toward zero, clamped to 0..top (GGML: MIN(top, (int8_t)v) with v >= 0 for finite
// input). Written as compares so that NaN/inf input cannot hit an undefined float->int cast.
inline uint8_t truncate_level(float v, int top) {
  if (!(v >= 0.0f)) return 0;
  if (v >= static_cast<float>(top)) return static_cast<uint8_t>(top);
  return static_cast<uint8_t>(v);
}

// Saturating float -> int8 for an already-rounded value; NaN becomes 0.
inline int8_t saturate_int8(float r) {
  if (!(r == r)) return 0;
  if (r > 127.0f) return 127;
  if (r < -128.0f) return -128;
  return static_cast<int8_t>(r);
}

// Round half away from zero (C roundf; GGML's Q8_0/Q8_1), clamped to int8.
inline int8_t round_half_away_to_int8(float v) { return saturate_int8(std::round(v)); }

// Round half to even (GGML's nearest_int, used by the K-quants), clamped to int8. nearbyint
// uses the current rounding mode, which nothing in this engine changes from nearest-even.
inline int8_t round_half_even_to_int8(float v) { return saturate_int8(std::nearbyint(v)); }

inline float inverse_or_zero(float d) { return d != 0.0f ? 1.0f / d : 0.0f; }

}  // namespace unicorn::reference
