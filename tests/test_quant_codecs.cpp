// Scalar reference codecs (src/quant/codec.h) against the gguf Python package, via fixtures
// written by tools/gen_quant_fixtures.py (format described there), plus round-trip budgets.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/half.h"
#include "quant/block_codec.h"
#include "quant/codec.h"

using namespace unicorn;

namespace {

struct Fixture {
  GgmlType type;
  bool quantize;  // direction 1: floats -> bytes; 0: bytes -> floats
  int64_t n_values;
  std::vector<uint8_t> bytes;  // blocks (input or expected)
  std::vector<float> floats;   // values (input or expected)
};

uint32_t read_u32(const std::vector<uint8_t>& buf, size_t at) {
  uint32_t v;
  std::memcpy(&v, buf.data() + at, 4);
  return v;
}

Fixture load_fixture(const std::string& name) {
  const std::string path = std::string(UNICORN_SOURCE_DIR "/tests/fixtures/quant/") + name;
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing fixture " + path);
  std::vector<uint8_t> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (buf.size() < 20 || std::memcmp(buf.data(), "UQF1", 4) != 0) throw std::runtime_error("bad fixture " + path);
  Fixture f;
  f.type = static_cast<GgmlType>(read_u32(buf, 4));
  f.quantize = read_u32(buf, 8) == 1;
  f.n_values = read_u32(buf, 12);
  const size_t n_bytes = read_u32(buf, 16);
  const size_t float_bytes = static_cast<size_t>(f.n_values) * 4;
  if (buf.size() != 20 + n_bytes + float_bytes) throw std::runtime_error("truncated fixture " + path);
  f.bytes.resize(n_bytes);
  f.floats.resize(static_cast<size_t>(f.n_values));
  const uint8_t* p = buf.data() + 20;
  if (f.quantize) {
    std::memcpy(f.floats.data(), p, float_bytes);
    std::memcpy(f.bytes.data(), p + float_bytes, n_bytes);
  } else {
    std::memcpy(f.bytes.data(), p, n_bytes);
    std::memcpy(f.floats.data(), p + n_bytes, float_bytes);
  }
  return f;
}

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

bool same_float(float a, float b) { return (std::isnan(a) && std::isnan(b)) || bits_of(a) == bits_of(b); }

std::vector<float> gaussian(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = dist(rng);
  return x;
}

double relative_rms_error(const std::vector<float>& ref, const std::vector<float>& got) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err += (double(ref[i]) - got[i]) * (double(ref[i]) - got[i]);
    norm += double(ref[i]) * ref[i];
  }
  return std::sqrt(err / norm);
}

std::vector<float> round_trip(GgmlType type, const std::vector<float>& x) {
  const auto n = static_cast<int64_t>(x.size());
  std::vector<uint8_t> q(row_bytes(type, n));
  quantize_row(type, x.data(), q.data(), n);
  std::vector<float> y(x.size());
  dequantize_row(type, q.data(), y.data(), n);
  return y;
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

}  // namespace

// ---- bit-exact against gguf-py ------------------------------------------------------------------

class DequantizeFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(DequantizeFixture, MatchesGgufDequantizerBitForBit) {
  const Fixture f = load_fixture(GetParam() + "_dequant.bin");
  ASSERT_FALSE(f.quantize);
  ASSERT_EQ(f.bytes.size(), row_bytes(f.type, f.n_values));
  std::vector<float> got(f.floats.size(), -12345.0f);
  dequantize_row(f.type, f.bytes.data(), got.data(), f.n_values);
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!same_float(got[i], f.floats[i]) && ++mismatches <= 5)
      ADD_FAILURE() << type_name(f.type) << " value " << i << ": got " << got[i] << " (0x" << std::hex
                    << bits_of(got[i]) << "), gguf " << f.floats[i] << " (0x" << bits_of(f.floats[i]) << ")"
                    << std::dec;
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(Types, DequantizeFixture,
                         ::testing::Values("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0", "q2_k", "q3_k",
                                           "q4_k", "q5_k", "q6_k", "iq4_xs"));

class QuantizeFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantizeFixture, MatchesGgufQuantizerByteForByte) {
  const Fixture f = load_fixture(GetParam() + "_quant.bin");
  ASSERT_TRUE(f.quantize);
  ASSERT_EQ(f.bytes.size(), row_bytes(f.type, f.n_values));
  std::vector<uint8_t> got(f.bytes.size(), 0xAB);
  quantize_row(f.type, f.floats.data(), got.data(), f.n_values);
  const size_t block_bytes = traits(f.type).block_bytes;
  int mismatches = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (got[i] != f.bytes[i] && ++mismatches <= 5)
      ADD_FAILURE() << type_name(f.type) << " byte " << i << " (block " << i / block_bytes << ", offset "
                    << i % block_bytes << "): got " << int(got[i]) << ", gguf " << int(f.bytes[i]);
  }
  EXPECT_EQ(mismatches, 0);
}

INSTANTIATE_TEST_SUITE_P(Types, QuantizeFixture,
                         ::testing::Values("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1", "q8_0"));

// ---- layout facts checked by hand ---------------------------------------------------------------

TEST(QuantCodec, Q4_0PutsFirstHalfInLowNibbles) {
  BlockQ4_0 b{};
  b.d = f32_to_f16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  float y[32];
  dequantize_row(GgmlType::Q4_0, &b, y, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * (j - 8)) << j;
    EXPECT_EQ(y[j + 16], 0.5f * (15 - j - 8)) << j;
  }
}

TEST(QuantCodec, Q4_KTakesHighMinBitsFromSameScaleByte) {
  // spec §4.5: for sub-block s >= 4 the min's top 2 bits come from scales[s], not scales[s-4].
  BlockQ4_K b{};
  b.d = f32_to_f16(1.0f);
  b.dmin = f32_to_f16(1.0f);
  b.scales[4 + 1] = 0xC0;  // byte 5: top bits of the min of sub-block 5 -> min 48
  b.scales[8 + 1] = 0x01;  // byte 9: scale low nibble 1 for sub-block 5, min low nibble 0
  // all quants zero: sub-block 5 decodes to -dmin*min = -48, scale unused.
  float y[256];
  dequantize_row(GgmlType::Q4_K, &b, y, 256);
  for (int i = 160; i < 192; ++i) EXPECT_EQ(y[i], -48.0f) << i;
  // Sub-block 1's min is scales[5] & 63 = 0, so byte 5's top bits must not leak there.
  for (int i = 32; i < 64; ++i) EXPECT_EQ(y[i], 0.0f) << i;
}

TEST(QuantCodec, DecodesUnalignedSource) {
  std::vector<float> x = gaussian(64, 7);
  std::vector<uint8_t> q(row_bytes(GgmlType::Q8_0, 64) + 1);
  quantize_row(GgmlType::Q8_0, x.data(), q.data() + 1, 64);
  std::vector<float> y(64);
  dequantize_row(GgmlType::Q8_0, q.data() + 1, y.data(), 64);
  EXPECT_LT(relative_rms_error(x, y), 0.01);
}

// ---- round trips --------------------------------------------------------------------------------

struct Budget {
  GgmlType type;
  double max_relative_rms;
};

void PrintTo(const Budget& b, std::ostream* os) { *os << type_name(b.type) << " < " << b.max_relative_rms; }

class RoundTrip : public ::testing::TestWithParam<Budget> {};

TEST_P(RoundTrip, StaysWithinErrorBudgetOnGaussianData) {
  const auto [type, budget] = GetParam();
  const std::vector<float> x = gaussian(8192, 42);
  const double err = relative_rms_error(x, round_trip(type, x));
  EXPECT_LT(err, budget) << type_name(type);
  EXPECT_GT(err, budget / 100) << type_name(type) << " suspiciously exact; is it quantizing at all?";
}

// Budgets sit ~15-30% above the measured error on this data (uniform rounding error of a step
// amax/levels: 8-bit ≈ 0.53% for 32-value blocks, 0.68% for Q8_K's 256), so a codec that loses
// a bit of precision fails.
INSTANTIATE_TEST_SUITE_P(Types, RoundTrip,
                         ::testing::Values(Budget{GgmlType::F16, 3e-4}, Budget{GgmlType::BF16, 2.5e-3},
                                           Budget{GgmlType::Q8_0, 0.0075}, Budget{GgmlType::Q8_1, 0.0075},
                                           Budget{GgmlType::Q8_K, 0.0085}, Budget{GgmlType::Q5_0, 0.05},
                                           Budget{GgmlType::Q5_1, 0.05}, Budget{GgmlType::Q4_0, 0.10},
                                           Budget{GgmlType::Q4_1, 0.10}),
                         [](const auto& info) { return std::string(type_name(info.param.type)); });

TEST(QuantCodec, F32RoundTripIsIdentity) {
  const std::vector<float> x = gaussian(100, 3);
  const std::vector<float> y = round_trip(GgmlType::F32, x);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_EQ(bits_of(x[i]), bits_of(y[i]));
}

TEST(QuantCodec, Q8_KBlockSumsMatchQuantsAndExtremeMapsToMinus127) {
  std::vector<float> x = gaussian(512, 11);
  x[300] = 9.0f;  // the extreme of block 1
  std::vector<BlockQ8_K> q(2);
  quantize_row(GgmlType::Q8_K, x.data(), q.data(), 512);
  for (const auto& b : q) {
    for (int g = 0; g < 16; ++g) {
      int sum = 0;
      for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
      EXPECT_EQ(b.bsums[g], sum) << g;
    }
  }
  // GGML's scale is -127/max, so the signed extreme becomes -127 and d carries the sign.
  EXPECT_EQ(q[1].qs[300 - 256], -127);
  EXPECT_FLOAT_EQ(q[1].d, -9.0f / 127.0f);
}

TEST(QuantCodec, Q8_KAllZeroBlockIsAllZero) {
  std::vector<float> x(256, 0.0f);
  BlockQ8_K b;
  std::memset(&b, 0x5A, sizeof b);
  quantize_row(GgmlType::Q8_K, x.data(), &b, 256);
  EXPECT_EQ(b.d, 0.0f);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(b.qs[i], 0);
  for (int g = 0; g < 16; ++g) EXPECT_EQ(b.bsums[g], 0);
}

TEST(QuantCodec, Q8_1StoresScaledSumOfQuants) {
  const std::vector<float> x = gaussian(32, 5);
  BlockQ8_1 b;
  quantize_row(GgmlType::Q8_1, x.data(), &b, 32);
  int sum = 0;
  for (int j = 0; j < 32; ++j) sum += b.qs[j];
  float amax = 0;
  for (float v : x) amax = std::fmax(amax, std::fabs(v));
  EXPECT_EQ(b.s, f32_to_f16(static_cast<float>(sum) * (amax / 127)));
}

// ---- errors -------------------------------------------------------------------------------------

TEST(QuantCodec, UnknownTypeIdIsNamedInError) {
  const auto bogus = static_cast<GgmlType>(99);
  EXPECT_FALSE(can_dequantize(bogus));
  EXPECT_FALSE(can_quantize(bogus));
  float buf[32] = {};
  EXPECT_NE(error_message([&] { dequantize_row(bogus, buf, buf, 32); }).find("unknown type id 99"), std::string::npos);
  EXPECT_NE(error_message([&] { quantize_row(bogus, buf, buf, 32); }).find("unknown type id 99"), std::string::npos);
}

TEST(QuantCodec, MissingEncoderIsReportedAsSuch) {
  // Every known type has an encoder now (K-quants and IQ4_XS in quantize_weighted.h), so an id
  // the engine does not know (20 is GGML's IQ4_NL) stands in for a type without one.
  const auto iq4_nl = static_cast<GgmlType>(20);
  EXPECT_FALSE(can_quantize(iq4_nl));
  std::vector<float> x(256, 1.0f);
  std::vector<uint8_t> out(256);
  const std::string msg = error_message([&] { quantize_row(iq4_nl, x.data(), out.data(), 256); });
  EXPECT_NE(msg.find("no encoder"), std::string::npos) << msg;
  EXPECT_NE(msg.find("20"), std::string::npos) << msg;
}

TEST(QuantCodec, PartialBlockIsRejected) {
  std::vector<float> x(64, 1.0f);
  std::vector<uint8_t> q(64);
  const std::string msg = error_message([&] { quantize_row(GgmlType::Q4_0, x.data(), q.data(), 33); });
  EXPECT_NE(msg.find("33"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Q4_0"), std::string::npos) << msg;
  EXPECT_THROW(dequantize_row(GgmlType::Q6_K, q.data(), x.data(), 32), Error);
}
