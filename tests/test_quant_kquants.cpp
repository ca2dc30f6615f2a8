// Weight quantizers (quantize_row_weighted, src/quant/quantize_weighted.h): round trips through
// the reference decoders, which are bit-exact with gguf-py (test_quant_codecs.cpp), so an error
// budget met here is met by any GGUF reader of our files.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "quant/blocks.h"
#include "quant/codec.h"
#include "quant/scale_fit.h"

using namespace unicorn;

namespace {

constexpr int64_t kRow = 4096;

std::vector<float> gaussian_row(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = dist(rng);
  return x;
}

// Student-t with 3 degrees of freedom: finite variance, but outliers tens of σ out, as in the
// projection matrices of real checkpoints.
std::vector<float> heavy_tailed_row(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> dist(3.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = dist(rng);
  return x;
}

std::vector<uint8_t> encode(GgmlType type, const std::vector<float>& x, const float* importance) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(row_bytes(type, n));
  quantize_row_weighted(type, x.data(), q.data(), n, importance);
  return q;
}

std::vector<float> decode(GgmlType type, const std::vector<uint8_t>& q, size_t n) {
  std::vector<float> y(n);
  dequantize_row(type, q.data(), y.data(), static_cast<int64_t>(n));
  return y;
}

std::vector<float> round_trip(GgmlType type, const std::vector<float>& x, const float* importance = nullptr) {
  return decode(type, encode(type, x, importance), x.size());
}

// sqrt(Σ wᵢ(xᵢ − yᵢ)² / Σ wᵢxᵢ²); w null = unweighted relative RMS error.
double relative_error(const std::vector<float>& x, const std::vector<float>& y, const float* w = nullptr) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double wi = w ? w[i] : 1.0;
    err += wi * (double(x[i]) - y[i]) * (double(x[i]) - y[i]);
    norm += wi * double(x[i]) * x[i];
  }
  return std::sqrt(err / norm);
}

// One importance per column: 1 everywhere, 100 on every 97th column (a few outlier features,
// as an activation importance matrix has).
std::vector<float> spiky_importance(int64_t n) {
  std::vector<float> imp(static_cast<size_t>(n), 1.0f);
  for (int64_t i = 13; i < n; i += 97) imp[static_cast<size_t>(i)] = 100.0f;
  return imp;
}

template <typename Fn>
std::string error_message(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error thrown)";
}

bool all_finite(const std::vector<float>& y) {
  for (float v : y)
    if (!std::isfinite(v)) return false;
  return true;
}

const GgmlType kSearched[] = {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K,
                              GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::IQ4_XS};

std::string param_name(GgmlType t) { return std::string(type_name(t)); }

}  // namespace

// ---- error budgets ------------------------------------------------------------------------------

struct WeightBudget {
  GgmlType type;
  double gaussian;      // max relative RMS error on N(0,1) rows
  double heavy_tailed;  // ... on Student-t(3) rows
};

void PrintTo(const WeightBudget& b, std::ostream* os) { *os << type_name(b.type); }

class WeightQuantizer : public ::testing::TestWithParam<WeightBudget> {};

// Budgets sit ~5-10% above the errors measured with this code (printed), which are within ~3%
// of a brute-force floor for each layout on Gaussian data (dense scale grid, unquantized
// scales): Q3_K 14.4%, IQ4_XS 7.3%, Q4_K 6.9%, Q5_K 3.3%, Q6_K 1.6%.
TEST_P(WeightQuantizer, StaysWithinErrorBudgetOnGaussianAndHeavyTailedRows) {
  const WeightBudget b = GetParam();
  // Q4_0/Q5_0 are searched only with importance; all ones is the neutral choice.
  const std::vector<float> ones(kRow, 1.0f);
  const float* importance = b.type == GgmlType::Q4_0 || b.type == GgmlType::Q5_0 ? ones.data() : nullptr;
  const std::vector<float> g = gaussian_row(kRow, 1), t = heavy_tailed_row(kRow, 2);
  const double err_g = relative_error(g, round_trip(b.type, g, importance));
  const double err_t = relative_error(t, round_trip(b.type, t, importance));
  std::printf("  %-6s relative RMS error: gaussian %.4f  student-t(3) %.4f\n", param_name(b.type).c_str(), err_g,
              err_t);
  EXPECT_LT(err_g, b.gaussian);
  EXPECT_LT(err_t, b.heavy_tailed);
  EXPECT_GT(err_g, b.gaussian / 4) << "suspiciously exact for this many bits";
}

INSTANTIATE_TEST_SUITE_P(
    Types, WeightQuantizer,
    ::testing::Values(WeightBudget{GgmlType::Q2_K, 0.29, 0.33}, WeightBudget{GgmlType::Q3_K, 0.155, 0.20},
                      WeightBudget{GgmlType::Q4_K, 0.077, 0.10}, WeightBudget{GgmlType::Q5_K, 0.038, 0.056},
                      WeightBudget{GgmlType::Q6_K, 0.0185, 0.032}, WeightBudget{GgmlType::IQ4_XS, 0.080, 0.108},
                      WeightBudget{GgmlType::Q4_0, 0.09, 0.125}, WeightBudget{GgmlType::Q5_0, 0.044, 0.069}),
    [](const auto& info) { return param_name(info.param.type); });

// ---- importance ---------------------------------------------------------------------------------

class ImportanceAware : public ::testing::TestWithParam<GgmlType> {};

TEST_P(ImportanceAware, ReducesImportanceWeightedErrorWhereFewColumnsDominate) {
  const GgmlType type = GetParam();
  const std::vector<float> imp = spiky_importance(kRow);
  for (uint32_t seed : {3u, 4u}) {
    const std::vector<float> x = seed == 3 ? gaussian_row(kRow, seed) : heavy_tailed_row(kRow, seed);
    const double plain = relative_error(x, round_trip(type, x), imp.data());
    const double guided = relative_error(x, round_trip(type, x, imp.data()), imp.data());
    std::printf("  %-6s importance-weighted error: plain %.4f  with importance %.4f  (seed %u)\n",
                param_name(type).c_str(), plain, guided, seed);
    EXPECT_LT(guided, 0.9 * plain) << "seed " << seed;
  }
}

TEST_P(ImportanceAware, UniformImportanceIsTheSameAsNone) {
  const GgmlType type = GetParam();
  if (type == GgmlType::Q4_0 || type == GgmlType::Q5_0) GTEST_SKIP() << "no importance = reference quantizer";
  const std::vector<float> x = heavy_tailed_row(1024, 5);
  const std::vector<float> ones(1024, 1.0f);
  EXPECT_EQ(encode(type, x, ones.data()), encode(type, x, nullptr));
}

TEST_P(ImportanceAware, OutputIsDeterministic) {
  const GgmlType type = GetParam();
  const std::vector<float> x = gaussian_row(1024, 6);
  const std::vector<float> imp = spiky_importance(1024);
  EXPECT_EQ(encode(type, x, imp.data()), encode(type, x, imp.data()));
  EXPECT_EQ(encode(type, x, nullptr), encode(type, x, nullptr));
}

TEST_P(ImportanceAware, AllZeroRowDecodesToZeros) {
  const GgmlType type = GetParam();
  const std::vector<float> x(512, 0.0f);
  const std::vector<float> imp = spiky_importance(512);
  for (const float* importance : {static_cast<const float*>(nullptr), imp.data()}) {
    const std::vector<float> y = round_trip(type, x, importance);
    for (size_t i = 0; i < y.size(); ++i) ASSERT_EQ(y[i], 0.0f) << i;
  }
}

TEST_P(ImportanceAware, ExtremeInputsDecodeToFiniteValues) {
  const GgmlType type = GetParam();
  std::vector<float> huge = gaussian_row(512, 7), tiny = gaussian_row(512, 8), mixed = gaussian_row(512, 9);
  for (auto& v : huge) v *= 1e30f;
  for (auto& v : tiny) v *= 1e-40f;  // float subnormals
  mixed[3] = 3e38f;
  mixed[300] = -1e30f;
  const std::vector<float> imp = spiky_importance(512);
  // Without importance Q4_0/Q5_0 are GGML's reference quantizers, whose f16 scale overflows to
  // inf beyond ~5e5 exactly as gguf-py's does; only the searched paths clamp it.
  const bool reference_without_importance = type == GgmlType::Q4_0 || type == GgmlType::Q5_0;
  for (const auto* x : {&huge, &tiny, &mixed}) {
    for (const float* importance : {static_cast<const float*>(nullptr), imp.data()}) {
      if (!importance && reference_without_importance) continue;
      const std::vector<float> y = round_trip(type, *x, importance);
      EXPECT_TRUE(all_finite(y)) << type_name(type) << (importance ? " with" : " without") << " importance";
    }
  }
  // Values well inside the f16 scale range keep their usual precision.
  std::vector<float> large = gaussian_row(512, 10);
  for (auto& v : large) v *= 1000.0f;
  EXPECT_LT(relative_error(large, round_trip(type, large)), 0.35) << type_name(type);
}

TEST_P(ImportanceAware, PartialBlockIsAClearError) {
  const GgmlType type = GetParam();
  const int64_t n = traits(type).block_size + 7;
  std::vector<float> x(static_cast<size_t>(n), 1.0f);
  std::vector<uint8_t> out(4096);
  const std::string msg = error_message([&] { quantize_row_weighted(type, x.data(), out.data(), n, x.data()); });
  EXPECT_NE(msg.find(std::to_string(n)), std::string::npos) << msg;
  EXPECT_NE(msg.find(param_name(type)), std::string::npos) << msg;
}

INSTANTIATE_TEST_SUITE_P(Types, ImportanceAware,
                         ::testing::Values(GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K,
                                           GgmlType::Q6_K, GgmlType::IQ4_XS, GgmlType::Q4_0, GgmlType::Q5_0),
                         [](const auto& info) { return param_name(info.param); });

TEST(WeightQuantizerApi, BitsPerWeightOfEachFormat) {
  const std::pair<GgmlType, double> expected[] = {
      {GgmlType::Q2_K, 2.625}, {GgmlType::Q3_K, 3.4375}, {GgmlType::Q4_K, 4.5},
      {GgmlType::Q5_K, 5.5},   {GgmlType::Q6_K, 6.5625}, {GgmlType::IQ4_XS, 4.25},
      {GgmlType::Q4_0, 4.5},   {GgmlType::Q5_0, 5.5},    {GgmlType::Q8_0, 8.5}};
  for (const auto& [type, bpw] : expected) {
    EXPECT_TRUE(can_quantize(type)) << type_name(type);
    EXPECT_EQ(8.0 * static_cast<double>(row_bytes(type, 256)) / 256, bpw) << type_name(type);
  }
}

TEST(WeightQuantizerApi, WithoutImportanceLegacyTypesUseTheReferenceQuantizer) {
  // quantize_row for these is byte-exact with gguf-py (test_quant_codecs.cpp).
  const std::vector<float> x = heavy_tailed_row(1024, 11);
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0}) {
    std::vector<uint8_t> reference(row_bytes(type, 1024));
    quantize_row(type, x.data(), reference.data(), 1024);
    EXPECT_EQ(encode(type, x, nullptr), reference) << type_name(type);
  }
}

TEST(WeightQuantizerApi, Q8_0IgnoresImportance) {
  const std::vector<float> x = gaussian_row(1024, 12);
  const std::vector<float> imp = spiky_importance(1024);
  EXPECT_EQ(encode(GgmlType::Q8_0, x, imp.data()), encode(GgmlType::Q8_0, x, nullptr));
}

TEST(WeightQuantizerApi, QuantizeRowOfSearchedFormatsEqualsNoImportance) {
  const std::vector<float> x = gaussian_row(512, 13);
  for (GgmlType type : kSearched) {
    std::vector<uint8_t> plain(row_bytes(type, 512));
    quantize_row(type, x.data(), plain.data(), 512);
    EXPECT_EQ(plain, encode(type, x, nullptr)) << type_name(type);
  }
}

TEST(WeightQuantizerApi, SearchedQ4_0BeatsReferenceRounding) {
  // The reference maps each block's extreme to level -8; the least-squares search must do
  // better on the plain error when every column matters equally.
  const std::vector<float> x = gaussian_row(kRow, 14);
  const std::vector<float> ones(kRow, 1.0f);
  const double reference = relative_error(x, round_trip(GgmlType::Q4_0, x));
  const double searched = relative_error(x, round_trip(GgmlType::Q4_0, x, ones.data()));
  std::printf("  Q4_0 relative RMS error: reference %.4f  searched %.4f\n", reference, searched);
  EXPECT_LT(searched, 0.97 * reference);
}

TEST(WeightQuantizerApi, BadImportanceIsAClearError) {
  const std::vector<float> x = gaussian_row(256, 15);
  std::vector<uint8_t> out(row_bytes(GgmlType::Q4_K, 256));
  for (float bad : {-1.0f, NAN, INFINITY}) {
    std::vector<float> imp(256, 1.0f);
    imp[77] = bad;
    const std::string msg =
        error_message([&] { quantize_row_weighted(GgmlType::Q4_K, x.data(), out.data(), 256, imp.data()); });
    EXPECT_NE(msg.find("importance of column 77"), std::string::npos) << msg;
  }
}

TEST(WeightQuantizerApi, ZeroImportanceEverywhereStillQuantizes) {
  const std::vector<float> x = gaussian_row(512, 16);
  const std::vector<float> zeros(512, 0.0f);
  for (GgmlType type : kSearched) {
    const double err = relative_error(x, round_trip(type, x, zeros.data()));
    EXPECT_LT(err, 0.35) << type_name(type);
  }
}

// ---- packing helpers and level grids ------------------------------------------------------------

TEST(WeightQuantizerPacking, ScaleSettersInvertTheDecoderAccessors) {
  for (int s = 0; s < 8; ++s) {
    for (int scale : {0, 1, 17, 42, 63}) {
      for (int min : {0, 5, 31, 48, 63}) {
        uint8_t packed[kKScaleBytes] = {};
        k4_set_scale_min(packed, s, scale, min);
        const ScaleMin got = k4_scale_min(packed, s);
        EXPECT_EQ(got.scale, scale) << s;
        EXPECT_EQ(got.min, min) << s;
        for (int other = 0; other < 8; ++other) {  // neighbours sharing bytes stay zero
          if (other == s) continue;
          EXPECT_EQ(k4_scale_min(packed, other).scale, 0) << s << " leaks into " << other;
          EXPECT_EQ(k4_scale_min(packed, other).min, 0) << s << " leaks into " << other;
        }
      }
    }
  }
  for (int j = 0; j < 16; ++j) {
    for (int scale = -32; scale < 32; ++scale) {
      uint8_t packed[kKScaleBytes] = {};
      q3k_set_scale(packed, j, scale);
      EXPECT_EQ(q3k_scale(packed, j), scale);
      EXPECT_EQ(q3k_scale(packed, (j + 5) % 16), -32) << "only sub-block " << j << " was set";
    }
  }
  for (int s = 0; s < 8; ++s) {
    for (int scale = -32; scale < 32; ++scale) {
      BlockIQ4_XS b{};
      iq4xs_set_scale(b, s, scale);
      EXPECT_EQ(iq4xs_scale(b, s), scale);
      EXPECT_EQ(iq4xs_scale(b, (s + 3) % 8), -32) << "only sub-block " << s << " was set";
    }
  }
}

TEST(WeightQuantizerPacking, LevelGridFindsTheNearestLevel) {
  const fit::LevelGrid codebook = fit::LevelGrid::codebook(kIq4Levels);
  const fit::LevelGrid integers = fit::LevelGrid::integers(-4, 3);
  for (float v = -140.0f; v <= 140.0f; v += 0.25f) {
    int best = 0;
    for (int k = 1; k < 16; ++k)
      if (std::fabs(v - kIq4Levels[k]) < std::fabs(v - kIq4Levels[best])) best = k;
    EXPECT_EQ(std::fabs(v - codebook.level(codebook.nearest(v))), std::fabs(v - kIq4Levels[best])) << v;
  }
  EXPECT_EQ(integers.level(integers.nearest(2.5f)), 2.0f);  // ties to even
  EXPECT_EQ(integers.level(integers.nearest(-3.5f)), -4.0f);
  EXPECT_EQ(integers.level(integers.nearest(1e30f)), 3.0f);
  EXPECT_EQ(integers.level(integers.nearest(-INFINITY)), -4.0f);
  EXPECT_EQ(codebook.level(codebook.nearest(INFINITY)), 113.0f);
  EXPECT_EQ(codebook.nearest(NAN), 0);
  EXPECT_EQ(integers.nearest(NAN), 0);
}
