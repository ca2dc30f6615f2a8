// Weighted least-squares fits of block scales: the math shared by the importance-aware weight
// quantizers (quantize_weighted.h). Each fit minimises  Σ wᵢ·(xᵢ − x̂ᵢ)²  over the scale (and,
// for affine blocks, the minimum) of one block, where x̂ᵢ is xᵢ rounded to the block's grid.
//
// The search: a handful of candidate scales that put the block's extreme value on or near a
// grid end; for each, every value is rounded to its nearest level and the optimal scale for
// those levels is solved in closed form; the best is then refined by alternately re-rounding and
// re-solving until the error stops falling.
#pragma once
#include <cmath>
#include <cstdint>
#include <span>

namespace unicorn::fit {

// The representable levels of a block, ascending: either every integer lo..hi or a codebook.
class LevelGrid {
 public:
  static LevelGrid integers(int lo, int hi);
  static LevelGrid codebook(std::span<const int8_t> levels);  // ascending, at most 16 entries

  int size() const { return count_; }
  float level(int index) const { return integer_ ? static_cast<float>(lo_ + index) : levels_[index]; }
  float lowest() const { return level(0); }
  float highest() const { return level(count_ - 1); }
  // Spacing of the two outermost levels at the end whose value is `end` (for candidate steps).
  float end_spacing(float end) const {
    return end == lowest() ? level(1) - level(0) : level(count_ - 1) - level(count_ - 2);
  }

  // Index of the level nearest to v; values beyond the ends and ±inf clamp to an end, NaN goes
  // to the lowest, so the result is always a valid index. Integer ties round to even.
  int nearest(float v) const {
    if (integer_) {
      const float r = round_to_integer(clamp(v - static_cast<float>(lo_), 0.0f, static_cast<float>(count_ - 1)));
      return static_cast<int>(r);
    }
    // The codebook's neighbours are at least 2 apart, so the unit cell [k, k+1) holds at most one
    // midpoint: look up the level nearest to the cell's start, then step past that midpoint.
    const float u = clamp(v - kCellOrigin, 0.0f, static_cast<float>(kCells) - 0.5f);
    int index = cell_start_[static_cast<int>(u)];
    if (index + 1 < count_ && v > midpoints_[index]) ++index;
    return index;
  }

 private:
  static constexpr float kCellOrigin = -128.0f;  // codebook levels lie in -128..127 (int8)
  static constexpr int kCells = 256;

  // NaN-safe clamp (NaN gives lo).
  static float clamp(float v, float lo, float hi) { return v > lo ? (v < hi ? v : hi) : lo; }
  // Round to nearest, ties to even, for 0 <= v < 2^22: adding 1.5·2^23 leaves no fraction bits.
  // (Without -ffast-math the compiler may not fold the add and subtract away.)
  static float round_to_integer(float v) {
    constexpr float kShift = 12582912.0f;
    return (v + kShift) - kShift;
  }

 private:
  bool integer_ = true;
  int count_ = 0;
  int lo_ = 0;
  float levels_[16] = {};            // codebook only
  float midpoints_[15] = {};         // codebook only: boundaries between neighbouring levels
  uint8_t cell_start_[kCells] = {};  // codebook only: nearest level to each integer -128..127
};

// Per-value error weights of one block whose values are x (any scale: weights are only
// compared with each other): wᵢ = importanceᵢ·sqrt(σ² + xᵢ²), σ² the block's mean square, with
// importance (one non-negative weight per value, from an activation importance matrix) or 1 for
// every value when it is null. The sqrt term keeps the large values, which carry most of the
// signal, a little better than the small ones; σ² keeps a small value with a large importance
// from being ignored. (Pure xᵢ² weights would cost ~5% more RMS error on Gaussian rows.)
void error_weights(const float* x, const float* importance, int n, float* w);

// Best s with x ≈ s·level(qᵢ). s may be negative (that puts the extreme on the grid's long end).
// Returns 0 when x is all zero. Weights summing to zero are treated as all equal.
float fit_scale(const float* x, const float* w, int n, const LevelGrid& grid);

// Best (scale ≥ 0, min ≥ 0) with x ≈ scale·qᵢ − min, qᵢ in 0..top (the K-quant affine form,
// whose offset can only be negative).
struct ScaleMin {
  float scale;
  float min;
};
ScaleMin fit_scale_min(const float* x, const float* w, int n, int top);

}  // namespace unicorn::fit
