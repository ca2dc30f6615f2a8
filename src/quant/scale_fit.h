// Weighted least-squares fits of block scales: the math shared by the importance-aware weight
// quantizers (quantize_weighted.h). Each fit minimises  Σ wᵢ·(xᵢ − x̂ᵢ)²  over the scale (and,
// for affine blocks, the minimum) of one block, where x̂ᵢ is xᵢ rounded to the block's grid.
//
// The search: a handful of candidate scales that put the block's extreme value on or near a
// grid end; for each, every value is rounded to its nearest level and the optimal scale for
// those levels is solved in closed form; the best is then refined by alternately re-rounding and
// re-solving until the error stops falling.
#pragma once
#include <cstdint>
#include <span>

namespace unicorn::fit {

// The representable levels of a block, ascending: either every integer lo..hi or a codebook.
class LevelGrid {
 public:
  static LevelGrid integers(int lo, int hi);
  static LevelGrid codebook(std::span<const int8_t> levels);  // ascending, at most 16 entries

  int size() const { return count_; }
  float level(int index) const { return levels_[index]; }
  float lowest() const { return levels_[0]; }
  float highest() const { return levels_[count_ - 1]; }
  // Index of the level nearest to v (ties go up); values beyond the ends, ±inf and NaN clamp to
  // an end (NaN to the lowest), so the result is always a valid index.
  int nearest(float v) const;

 private:
  bool integer_ = true;
  int count_ = 0;
  int lo_ = 0;
  float levels_[256] = {};
  float midpoints_[15] = {};  // codebook only: boundaries between neighbouring levels
};

// Per-value error weights of one block whose values are x (any scale: weights are only
// compared with each other). With importance (one non-negative weight per value, from an
// activation importance matrix) wᵢ = importanceᵢ·sqrt(σ² + xᵢ²), σ² the block's mean square; a
// large weight still matters even where its value is small. Without, wᵢ = xᵢ²: the values
// that carry most of the signal are kept best.
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
