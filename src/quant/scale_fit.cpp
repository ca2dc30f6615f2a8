// Weighted least-squares scale fits (scale_fit.h). Sums are kept in double: the callers pass
// values normalised to |x| <= 1, but importance weights span many decades.
#include "quant/scale_fit.h"

#include <algorithm>

#include "core/error.h"

namespace unicorn::fit {
namespace {

// Candidate scales put the block's extreme at a grid end moved by t·(a tenth of the outermost
// level spacing), t in -kSteps..kSteps: slightly beyond the end (clipping it, finer steps for
// the rest) or slightly inside. On Gaussian rows 6 steps come within 0.5% of the error of 9
// or 14 at 1.5-2x the speed.
constexpr int kSteps = 6;
constexpr int kRefinements = 4;
constexpr int kMaxBlock = 256;

// Weights summing to zero (importance zero on the whole block, or an all-zero block) carry no
// preference; use equal weights then so that the fit is still defined.
const float* usable_weights(const float* w, int n, float* uniform) {
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += w[i];
  if (sum > 0) return w;
  std::fill(uniform, uniform + n, 1.0f);
  return uniform;
}

float signed_extreme(const float* x, int n) {
  float amax = 0.0f, mx = 0.0f;
  for (int i = 0; i < n; ++i) {
    if (std::fabs(x[i]) > amax) {
      amax = std::fabs(x[i]);
      mx = x[i];
    }
  }
  return mx;
}

// Σ w·x·q and Σ w·q² with every value rounded to its nearest level at inverse scale inv. The
// optimal scale for those levels is xq/qq; it removes xq²/qq from Σ w·x², so larger is better.
struct Projection {
  double xq = 0, qq = 0;
  double gain() const { return qq > 0 ? xq * xq / qq : 0.0; }
  double scale() const { return qq > 0 ? xq / qq : 0.0; }
};

// wx holds wᵢ·xᵢ, which does not change between candidates.
Projection project(const float* x, const float* w, const float* wx, int n, const LevelGrid& grid, float inv) {
  float xq = 0, qq = 0;  // |x| <= 1 and n <= 256: float sums are ample for ranking candidates
  for (int i = 0; i < n; ++i) {
    const float q = grid.level(grid.nearest(inv * x[i]));
    xq += wx[i] * q;
    qq += w[i] * q * q;
  }
  return {xq, qq};
}

// Affine least squares x ≈ a·q + b over the weighted sums, constrained to a >= 0 and b <= 0
// (the K-quant formats store the offset as a non-negative min that is subtracted).
struct AffineSums {
  double s = 0, sx = 0, sxx = 0;    // fixed by the block
  double sq = 0, sqq = 0, sqx = 0;  // depend on the levels
};

struct Affine {
  double a = 0, b = 0, error = 0;
};

Affine solve_affine(const AffineSums& m) {
  Affine f;
  const double det = m.s * m.sqq - m.sq * m.sq;
  if (det > 1e-12 * m.s * m.sqq) {
    f.a = (m.s * m.sqx - m.sq * m.sx) / det;
    f.b = (m.sqq * m.sx - m.sq * m.sqx) / det;
  } else {  // all levels equal: a single value, put it in the scale unless the levels are all 0
    f.a = m.sqq > 0 ? m.sqx / m.sqq : 0.0;
    f.b = m.sqq > 0 ? 0.0 : m.sx / m.s;
  }
  if (f.b > 0) {
    f.b = 0;
    f.a = m.sqq > 0 ? m.sqx / m.sqq : 0.0;
  }
  if (f.a < 0) {
    f.a = 0;
    f.b = std::min(m.sx / m.s, 0.0);
  }
  f.error = m.sxx - 2 * f.a * m.sqx - 2 * f.b * m.sx + f.a * f.a * m.sqq + 2 * f.a * f.b * m.sq + f.b * f.b * m.s;
  return f;
}

Affine affine_for_levels(AffineSums m, const float* x, const float* w, int n, const uint8_t* q) {
  m.sq = m.sqq = m.sqx = 0;
  for (int i = 0; i < n; ++i) {
    const double wq = static_cast<double>(w[i]) * q[i];
    m.sq += wq;
    m.sqq += wq * q[i];
    m.sqx += wq * x[i];
  }
  return solve_affine(m);
}

// Rounds (x - offset)·inv to the grid 0..top.
void affine_levels(const float* x, int n, float offset, float inv, const LevelGrid& grid, uint8_t* q) {
  for (int i = 0; i < n; ++i) q[i] = static_cast<uint8_t>(grid.nearest((x[i] - offset) * inv));
}

}  // namespace

LevelGrid LevelGrid::integers(int lo, int hi) {
  LevelGrid g;
  g.integer_ = true;
  g.lo_ = lo;
  g.count_ = hi - lo + 1;
  return g;
}

LevelGrid LevelGrid::codebook(std::span<const int8_t> levels) {
  if (levels.size() < 2 || levels.size() > 16) fail("internal: codebook of {} levels", levels.size());
  LevelGrid g;
  g.integer_ = false;
  g.count_ = static_cast<int>(levels.size());
  for (int k = 0; k < g.count_; ++k) g.levels_[k] = levels[k];
  for (int k = 0; k + 1 < g.count_; ++k) {
    if (!(g.levels_[k + 1] - g.levels_[k] >= 2.0f)) fail("internal: codebook levels must ascend by >= 2");
    g.midpoints_[k] = 0.5f * (g.levels_[k] + g.levels_[k + 1]);
  }
  for (int cell = 0; cell < kCells; ++cell) {
    const float start = kCellOrigin + static_cast<float>(cell);
    int index = 0;
    while (index + 1 < g.count_ && start > g.midpoints_[index]) ++index;
    g.cell_start_[cell] = static_cast<uint8_t>(index);
  }
  return g;
}

void error_weights(const float* x, const float* importance, int n, float* w) {
  double sum_sq = 0;
  for (int i = 0; i < n; ++i) sum_sq += static_cast<double>(x[i]) * x[i];
  const double sigma2 = n > 0 ? sum_sq / n : 0.0;
  for (int i = 0; i < n; ++i) {
    const double importance_i = importance ? importance[i] : 1.0;
    w[i] = static_cast<float>(importance_i * std::sqrt(sigma2 + static_cast<double>(x[i]) * x[i]));
  }
}

float fit_scale(const float* x, const float* w_in, int n, const LevelGrid& grid) {
  const float mx = signed_extreme(x, n);
  if (mx == 0.0f) return 0.0f;
  float uniform[kMaxBlock], wx[kMaxBlock];
  const float* w = usable_weights(w_in, n, uniform);
  for (int i = 0; i < n; ++i) wx[i] = w[i] * x[i];

  Projection best;
  for (const float end : {grid.lowest(), grid.highest()}) {
    if (end == 0.0f) continue;
    const float step = 0.1f * grid.end_spacing(end) * (end > 0 ? 1.0f : -1.0f);
    for (int t = -kSteps; t <= kSteps; ++t) {
      const Projection p = project(x, w, wx, n, grid, (end + static_cast<float>(t) * step) / mx);
      if (p.gain() > best.gain()) best = p;
    }
  }
  for (int r = 0; r < kRefinements && best.scale() != 0.0; ++r) {
    const Projection p = project(x, w, wx, n, grid, static_cast<float>(1.0 / best.scale()));
    if (!(p.gain() > best.gain())) break;
    best = p;
  }
  return static_cast<float>(best.scale());
}

ScaleMin fit_scale_min(const float* x, const float* w_in, int n, int top) {
  float lo = 0.0f, hi = x[0];
  for (int i = 0; i < n; ++i) {
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  if (!(hi > lo)) return {0.0f, -lo};  // constant block (<= 0; positives leave lo = 0 < hi)
  float uniform[kMaxBlock];
  const float* w = usable_weights(w_in, n, uniform);

  AffineSums fixed;
  for (int i = 0; i < n; ++i) {
    fixed.s += w[i];
    fixed.sx += static_cast<double>(w[i]) * x[i];
    fixed.sxx += static_cast<double>(w[i]) * x[i] * x[i];
  }
  const LevelGrid grid = LevelGrid::integers(0, top);
  uint8_t q[kMaxBlock];
  Affine best;
  best.error = fixed.sxx + 1.0;  // worse than any fit (a = b = 0 gives sxx)
  for (int t = -kSteps; t <= kSteps; ++t) {
    affine_levels(x, n, lo, (static_cast<float>(top) + 0.1f * static_cast<float>(t)) / (hi - lo), grid, q);
    const Affine f = affine_for_levels(fixed, x, w, n, q);
    if (f.error < best.error) best = f;
  }
  for (int r = 0; r < kRefinements && best.a > 0; ++r) {
    affine_levels(x, n, static_cast<float>(best.b), static_cast<float>(1.0 / best.a), grid, q);
    const Affine f = affine_for_levels(fixed, x, w, n, q);
    if (!(f.error < best.error)) break;
    best = f;
  }
  return {static_cast<float>(best.a), static_cast<float>(-best.b)};
}

}  // namespace unicorn::fit
