// The CPU float primitives against plain scalar formulas.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backends/cpu/vec_f32.h"

using namespace unicorn;

TEST(CpuVec, GeluMulMatchesTanhFormula) {
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 3.0f);
  const int n = 1003;
  std::vector<float> g(n), u(n), o(n);
  for (int i = 0; i < n; ++i) g[i] = nd(rng), u[i] = nd(rng);
  g[0] = 60.0f, g[1] = -60.0f, g[2] = 0.0f;  // saturation and zero
  vec_gelu_mul(g.data(), u.data(), o.data(), n);
  for (int i = 0; i < n; ++i) {
    const double x = g[i];
    const double want = 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))) * u[i];
    // Absolute slack for large negative x, where the tanh form itself cancels catastrophically.
    EXPECT_NEAR(o[i], want, 2e-6 * std::abs(want) + 1e-9) << i << " x=" << x;
  }
}

TEST(CpuVec, DotAndAxpyMatchScalar) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> ud(-1, 1);
  for (int n : {1, 7, 8, 31, 256, 1000}) {
    std::vector<float> a(n), b(n), y(n), y2(n);
    double want = 0;
    for (int i = 0; i < n; ++i) a[i] = ud(rng), b[i] = ud(rng), y[i] = y2[i] = ud(rng), want += double(a[i]) * b[i];
    EXPECT_NEAR(vec_dot(a.data(), b.data(), n), want, 1e-5 * n);
    vec_axpy(0.5f, a.data(), y.data(), n);
    for (int i = 0; i < n; ++i) EXPECT_FLOAT_EQ(y[i], y2[i] + 0.5f * a[i]);
  }
}

TEST(CpuVec, F16RowConversionRoundTrips) {
  std::vector<float> x = {0.0f, 1.0f, -2.5f, 65504.0f, 1e-7f, 3.14159f, -0.333f, 100.0f, 7.0f};
  std::vector<uint16_t> h(x.size());
  std::vector<float> back(x.size());
  vec_f32_to_f16(x.data(), h.data(), static_cast<int64_t>(x.size()));
  vec_f16_to_f32(h.data(), back.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(back[i], x[i], std::abs(x[i]) * 1e-3 + 1e-7);
}
