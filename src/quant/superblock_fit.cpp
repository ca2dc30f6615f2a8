// Block fitting pipeline shared by the weight quantizers (superblock_fit.h).
//
// Values are divided by the block's largest magnitude before fitting, so the search works on
// |x| <= 1 whatever the input (1e30 or subnormal); the f16 super-scale is formed at the end,
// clamped to the largest finite half so that no decoded value can be inf or NaN.
#include "quant/superblock_fit.h"

#include <algorithm>
#include <cfloat>
#include <cmath>

#include "core/half.h"

namespace unicorn::fit {
namespace {

constexpr float kMaxHalf = 65504.0f;

// Largest finite magnitude in x; 0 for an all-zero (or all-NaN) block. Infinities count as the
// largest float, so they normalise to ±1 like any other extreme.
float magnitude(const float* x, int n) {
  float amax = 0.0f;
  for (int i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  return std::fmin(amax, FLT_MAX);
}

void normalise(const float* x, int n, float amax, float* xn) {
  for (int i = 0; i < n; ++i) {
    const float v = x[i] / amax;
    xn[i] = v == v ? std::clamp(v, -1.0f, 1.0f) : 0.0f;
  }
}

F16Bits to_half_scale(double scale) {
  return f32_to_f16(static_cast<float>(std::clamp(scale, -double{kMaxHalf}, double{kMaxHalf})));
}

// The stored integer for a fitted (normalised) sub-block scale, given the decoded super-scale.
int integer_scale(float fitted, float amax, float super, const LevelGrid& grid) {
  if (super == 0.0f) return 0;
  const double ratio = static_cast<double>(fitted) * amax / super;
  return static_cast<int>(grid.level(grid.nearest(static_cast<float>(ratio))));
}

// Sum of the error weights of each sub-block: how much its scale's rounding error costs.
void sub_block_weights(const float* w, int n_sub, int sub_size, float* weight) {
  for (int j = 0; j < n_sub; ++j) {
    double sum = 0;
    for (int i = 0; i < sub_size; ++i) sum += w[j * sub_size + i];
    weight[j] = static_cast<float>(sum);
  }
}

}  // namespace

void fit_symmetric_superblock(const float* x, const float* importance, int sub_size, const LevelGrid& grid,
                              const LevelGrid& scale_grid, SymmetricSuperBlock& out) {
  out = SymmetricSuperBlock{};
  const int n_sub = kQKK / sub_size;
  const uint8_t zero_level = static_cast<uint8_t>(grid.nearest(0.0f));
  const float amax = magnitude(x, kQKK);
  if (amax == 0.0f) {
    std::fill(out.q, out.q + kQKK, zero_level);
    return;
  }
  float xn[kQKK], w[kQKK], fitted[kMaxSubBlocks], weight[kMaxSubBlocks];
  normalise(x, kQKK, amax, xn);
  error_weights(xn, importance, kQKK, w);
  for (int j = 0; j < n_sub; ++j) fitted[j] = fit_scale(xn + j * sub_size, w + j * sub_size, sub_size, grid);
  sub_block_weights(w, n_sub, sub_size, weight);

  out.d = to_half_scale(static_cast<double>(fit_scale(fitted, weight, n_sub, scale_grid)) * amax);
  const float d = f16_to_f32(out.d);
  for (int j = 0; j < n_sub; ++j) {
    out.scale[j] = integer_scale(fitted[j], amax, d, scale_grid);
    const float s = d * static_cast<float>(out.scale[j]);  // as the decoder forms it
    for (int i = j * sub_size; i < (j + 1) * sub_size; ++i)
      out.q[i] = s != 0.0f ? static_cast<uint8_t>(grid.nearest(x[i] / s)) : zero_level;
  }
}

void fit_affine_superblock(const float* x, const float* importance, int sub_size, int top, int scale_top,
                           AffineSuperBlock& out) {
  out = AffineSuperBlock{};
  const int n_sub = kQKK / sub_size;
  const float amax = magnitude(x, kQKK);
  if (amax == 0.0f) return;
  float xn[kQKK], w[kQKK], scale[kMaxSubBlocks], min[kMaxSubBlocks], weight[kMaxSubBlocks];
  normalise(x, kQKK, amax, xn);
  error_weights(xn, importance, kQKK, w);
  for (int j = 0; j < n_sub; ++j) {
    const ScaleMin f = fit_scale_min(xn + j * sub_size, w + j * sub_size, sub_size, top);
    scale[j] = f.scale;
    min[j] = f.min;
  }
  sub_block_weights(w, n_sub, sub_size, weight);

  const LevelGrid scale_grid = LevelGrid::integers(0, scale_top);
  out.d = to_half_scale(static_cast<double>(fit_scale(scale, weight, n_sub, scale_grid)) * amax);
  out.dmin = to_half_scale(static_cast<double>(fit_scale(min, weight, n_sub, scale_grid)) * amax);
  const float d = f16_to_f32(out.d), dmin = f16_to_f32(out.dmin);
  const LevelGrid levels = LevelGrid::integers(0, top);
  for (int j = 0; j < n_sub; ++j) {
    out.scale[j] = static_cast<uint8_t>(integer_scale(scale[j], amax, d, scale_grid));
    out.min[j] = static_cast<uint8_t>(integer_scale(min[j], amax, dmin, scale_grid));
    const float s = d * static_cast<float>(out.scale[j]);  // as the decoder forms them
    const float m = dmin * static_cast<float>(out.min[j]);
    for (int i = j * sub_size; i < (j + 1) * sub_size; ++i)
      out.q[i] = s != 0.0f ? static_cast<uint8_t>(levels.nearest((x[i] + m) / s)) : 0;
  }
}

F16Bits fit_symmetric_block(const float* x, const float* importance, int n, const LevelGrid& grid, uint8_t* q) {
  const uint8_t zero_level = static_cast<uint8_t>(grid.nearest(0.0f));
  const float amax = magnitude(x, n);
  if (amax == 0.0f) {
    std::fill(q, q + n, zero_level);
    return 0;
  }
  float xn[kQKK], w[kQKK];
  normalise(x, n, amax, xn);
  error_weights(xn, importance, n, w);
  const F16Bits d_bits = to_half_scale(static_cast<double>(fit_scale(xn, w, n, grid)) * amax);
  const float d = f16_to_f32(d_bits);
  for (int i = 0; i < n; ++i) q[i] = d != 0.0f ? static_cast<uint8_t>(grid.nearest(x[i] / d)) : zero_level;
  return d_bits;
}

}  // namespace unicorn::fit
