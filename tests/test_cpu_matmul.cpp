// CPU matmul (src/backends/cpu/cpu_matmul.h) against the scalar reference codec: every weight
// type × the Gemma 3 270M shapes × batch sizes on both sides of the tiled-kernel threshold, for
// every kernel set this CPU runs (scalar, AVX2, AVX-512), by normalized mean squared error.
#include <gtest/gtest.h>

#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_matmul.h"
#include "core/half.h"
#include "quant/codec.h"

using namespace unicorn;

namespace {

struct Shape {
  int64_t K, N;  // input features (cols), output features (rows)
};

// Random weight bytes of a type: quantized random floats where a quantizer exists; for K-quants
// random blocks whose f16 scales are overwritten with moderate values.
std::vector<uint8_t> random_weights(GgmlType type, Shape s, std::mt19937& rng) {
  const size_t bytes = row_bytes(type, s.K) * static_cast<size_t>(s.N);
  std::vector<uint8_t> w(bytes);
  if (can_quantize(type)) {
    std::normal_distribution<float> dist(0.0f, 0.05f);
    std::vector<float> f(static_cast<size_t>(s.K));
    for (int64_t r = 0; r < s.N; ++r) {
      for (float& v : f) v = dist(rng);
      quantize_row(type, f.data(), w.data() + row_bytes(type, s.K) * static_cast<size_t>(r), s.K);
    }
    return w;
  }
  std::uniform_int_distribution<int> byte(0, 255);
  for (uint8_t& b : w) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> scale(0.002f, 0.01f);
  auto put_half = [&](uint8_t* p) {
    const uint16_t h = f32_to_f16(scale(rng));
    std::memcpy(p, &h, 2);
  };
  const size_t block = traits(type).block_bytes;
  for (size_t at = 0; at < bytes; at += block) {
    uint8_t* b = w.data() + at;
    switch (type) {
      case GgmlType::Q2_K:
        put_half(b + 80);
        put_half(b + 82);
        break;
      case GgmlType::Q3_K:
        put_half(b + 108);
        break;
      case GgmlType::Q4_K:
      case GgmlType::Q5_K:
        put_half(b);
        put_half(b + 2);
        break;
      case GgmlType::Q6_K:
        put_half(b + 208);
        break;
      case GgmlType::Q8_K: {
        const float d = scale(rng);
        std::memcpy(b, &d, 4);
        break;
      }
      default:
        break;
    }
  }
  return w;
}

std::vector<float> random_acts(int64_t T, int64_t K, std::mt19937& rng) {
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(T * K));
  for (float& v : x) v = dist(rng);
  return x;
}

// dequantize_row + double-precision dots.
std::vector<double> reference(const WeightTensor& w, const std::vector<float>& x, int64_t T) {
  std::vector<float> row(static_cast<size_t>(w.cols));
  std::vector<double> y(static_cast<size_t>(T * w.rows));
  for (int64_t r = 0; r < w.rows; ++r) {
    dequantize_row(w.type, w.row(r), row.data(), w.cols);
    for (int64_t t = 0; t < T; ++t) {
      double s = 0;
      for (int64_t k = 0; k < w.cols; ++k) s += static_cast<double>(row[k]) * x[t * w.cols + k];
      y[t * w.rows + r] = s;
    }
  }
  return y;
}

double nmse(const std::vector<float>& y, const std::vector<double>& ref) {
  double err = 0, norm = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    err += (y[i] - ref[i]) * (y[i] - ref[i]);
    norm += ref[i] * ref[i];
  }
  return norm > 0 ? err / norm : err;
}

bool float_activations(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

std::vector<const MatmulKernels*> available_kernels() {
  std::vector<const MatmulKernels*> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512})
    if (const MatmulKernels* k = matmul_kernels(isa)) out.push_back(k);
  return out;
}

class MatmulByType : public ::testing::TestWithParam<GgmlType> {};

TEST_P(MatmulByType, MatchesReferenceForEveryShapeBatchAndKernelSet) {
  const GgmlType type = GetParam();
  const int block = traits(type).block_size;
  // The 270M's shapes, a bigger row count (several tiles per thread) and an odd one (padding).
  const std::vector<Shape> shapes = {{640, 1024}, {640, 256}, {1024, 640}, {2048, 640}, {640, 4096}, {512, 37}};
  const double limit = float_activations(type) ? 1e-7 : 5e-4;
  ThreadPool pool(2);
  std::mt19937 rng(1234u + static_cast<unsigned>(type));
  int checked = 0;
  for (Shape s : shapes) {
    if (s.K % block != 0) continue;
    std::vector<uint8_t> bytes = random_weights(type, s, rng);
    const WeightTensor w{"w", type, s.N, s.K, bytes.data()};
    for (int64_t T : {1, 2, 5, 7, 64}) {
      const bool big = s.N * s.K * T > 640 * 1024 * 8;
      const std::vector<float> x = random_acts(T, s.K, rng);
      const std::vector<double> ref = reference(w, x, T);
      for (const MatmulKernels* k : available_kernels()) {
        if (k->isa == Isa::Scalar && big) continue;  // keep the scalar run short; it shares the layout code
        std::vector<float> y(static_cast<size_t>(T * s.N), NAN);
        matmul_with(*k, pool, w, x.data(), T, y.data());
        const double e = nmse(y, ref);
        EXPECT_LE(e, limit) << type_name(type) << " " << k->name << " K=" << s.K << " N=" << s.N << " T=" << T;
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(AllWeightTypes, MatmulByType,
                         ::testing::Values(GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                           GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                                           GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                                           GgmlType::Q8_K),
                         [](const auto& info) { return std::string(type_name(info.param)); });

// Batched decode: a row-dot call for T tokens (each weight block unpacked once for all of them)
// gives every token exactly what a call for that token alone gives, for every quantized type,
// kernel set and token count the row dots take (up to kMaxRowDotTokens: chunks of 4 and the rest).
TEST(CpuMatmul, RowDotOfSeveralTokensEqualsOneTokenAtATime) {
  std::mt19937 rng(11);
  const Shape s{512, 19};
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                        GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    std::vector<uint8_t> bytes = random_weights(type, s, rng);
    const size_t stride = row_bytes(type, s.K);
    const int64_t T = kMaxRowDotTokens, nb = s.K / kActBlock;
    const std::vector<float> x = random_acts(T, s.K, rng);
    std::vector<int8_t> q(static_cast<size_t>(T * s.K));
    std::vector<float> d(static_cast<size_t>(T * nb));
    std::vector<int32_t> sum(static_cast<size_t>(T * nb));
    std::vector<QuantRow> rows;
    for (int64_t t = 0; t < T; ++t) {
      quantize_act_row(x.data() + t * s.K, s.K, q.data() + t * s.K, d.data() + t * nb, sum.data() + t * nb);
      rows.push_back({q.data() + t * s.K, d.data() + t * nb, sum.data() + t * nb});
    }
    for (const MatmulKernels* k : available_kernels())
      for (int64_t n = 2; n <= T; ++n) {
        std::vector<float> together(static_cast<size_t>(n * s.N), NAN), alone(static_cast<size_t>(s.N), NAN);
        k->rows_dot_q8(type, bytes.data(), stride, s.N, s.K, rows.data(), n, together.data(), s.N);
        for (int64_t t = 0; t < n; ++t) {
          k->rows_dot_q8(type, bytes.data(), stride, s.N, s.K, &rows[static_cast<size_t>(t)], 1, alone.data(), s.N);
          for (int64_t r = 0; r < s.N; ++r)
            ASSERT_EQ(together[static_cast<size_t>(t * s.N + r)], alone[static_cast<size_t>(r)])
                << type_name(type) << " " << k->name << " T=" << n << " token " << t << " row " << r;
        }
      }
  }
}

// The kernels really differ from each other's arithmetic only in rounding order: the tiled path
// (T >= kTiledMinTokens) and the row-dot path agree on the same token.
TEST(CpuMatmul, TiledAndRowDotPathsAgreeOnTheSameToken) {
  std::mt19937 rng(7);
  const Shape s{640, 256};
  std::vector<uint8_t> bytes = random_weights(GgmlType::Q5_0, s, rng);
  const WeightTensor w{"w", GgmlType::Q5_0, s.N, s.K, bytes.data()};
  const std::vector<float> x = random_acts(kTiledMinTokens, s.K, rng);
  ThreadPool pool(2);
  std::vector<float> batch(static_cast<size_t>(kTiledMinTokens * s.N)), single(static_cast<size_t>(s.N));
  matmul_with(best_matmul_kernels(), pool, w, x.data(), kTiledMinTokens, batch.data());
  matmul_with(best_matmul_kernels(), pool, w, x.data(), 1, single.data());
  for (int64_t r = 0; r < s.N; ++r) EXPECT_NEAR(batch[r], single[r], 1e-4f * (1.0f + std::fabs(single[r])));
}

TEST(CpuMatmul, BackendMatmulWritesEveryOutput) {
  CpuBackend cpu(2);
  std::mt19937 rng(9);
  const Shape s{1024, 640};
  std::vector<uint8_t> bytes = random_weights(GgmlType::Q4_K, s, rng);
  const WeightTensor w{"w", GgmlType::Q4_K, s.N, s.K, bytes.data()};
  for (int64_t T : {1, 5}) {
    const std::vector<float> xs = random_acts(T, s.K, rng);
    Act x = cpu.alloc(T, s.K), y = cpu.alloc(T, s.N);
    cpu.copy_from_host(xs.data(), x);
    std::fill(y.data(), y.data() + T * s.N, NAN);
    cpu.matmul(w, x, y);
    std::vector<float> out(static_cast<size_t>(T * s.N));
    cpu.copy_to_host(y, out.data());
    EXPECT_LE(nmse(out, reference(w, xs, T)), 5e-4);
  }
}

}  // namespace

namespace {

// The SIMD sets' unpacking and activation quantization must equal the portable code exactly
// (the kernels' correctness arguments rely on the same bytes).
TEST(CpuMatmul, SimdUnpackAndQuantizeEqualPortableCode) {
  std::mt19937 rng(11);
  const int64_t K = 1024;
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                        GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}) {
    const std::vector<uint8_t> w = random_weights(type, {K, 1}, rng);
    const int64_t nsub = K / tile_sub_block(type);
    std::vector<int8_t> q0(K), q1(K);
    std::vector<float> s0(nsub), s1(nsub), m0(nsub), m1(nsub);
    std::vector<int32_t> c0(nsub), c1(nsub);
    unpack_row(type, w.data(), K, q0.data(), s0.data(), m0.data(), c0.data());
    for (const MatmulKernels* k : available_kernels()) {
      k->unpack_row(type, w.data(), K, q1.data(), s1.data(), m1.data(), c1.data());
      EXPECT_EQ(q0, q1) << type_name(type) << " " << k->name;
      EXPECT_EQ(s0, s1) << type_name(type) << " " << k->name;
      EXPECT_EQ(m0, m1) << type_name(type) << " " << k->name;
      EXPECT_EQ(c0, c1) << type_name(type) << " " << k->name;
    }
  }
  const int64_t T = 19;
  std::vector<float> x = random_acts(T, K, rng);
  x[5] = 0.0f;
  std::fill(x.begin() + 64, x.begin() + 96, 0.0f);  // an all-zero block
  const int64_t nb = K / kActBlock, groups = 2;
  std::vector<int8_t> q0(K), q1(K);
  std::vector<float> d0(nb), d1(nb);
  std::vector<int32_t> u0(nb), u1(nb);
  quantize_act_row(x.data(), K, q0.data(), d0.data(), u0.data());
  std::vector<PanelBlock> p0(groups * nb), p1(groups * nb);
  pack_act_panel(x.data(), K, K, T, 0, groups, p0.data());
  for (const MatmulKernels* k : available_kernels()) {
    k->quantize_act_row(x.data(), K, q1.data(), d1.data(), u1.data());
    EXPECT_EQ(q0, q1) << k->name;
    EXPECT_EQ(d0, d1) << k->name;
    EXPECT_EQ(u0, u1) << k->name;
    k->pack_act_panel(x.data(), K, K, T, 0, groups, p1.data());
    EXPECT_EQ(0, std::memcmp(p0.data(), p1.data(), p0.size() * sizeof(PanelBlock))) << k->name;
  }
}

}  // namespace

namespace {

// The pool hands out chunks dynamically; every index must still be covered exactly once, in
// chunks that are multiples of the grain, with no thread index running two chunks at once.
TEST(ThreadPool, CoversEveryIndexOnceInGrainMultiplesAcrossManyLoops) {
  ThreadPool pool(3);
  for (int64_t n : {1, 7, 64, 1000, 262144}) {
    for (int64_t grain : {1, 8, 16}) {
      for (int rep = 0; rep < 20; ++rep) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        std::array<std::atomic<int>, 3> busy{};
        std::atomic<bool> bad_chunk{false}, overlap{false};
        pool.parallel_for(
            n,
            [&](int64_t b, int64_t e, int tid) {
              if (busy[static_cast<size_t>(tid)].fetch_add(1) != 0) overlap = true;
              if (b % grain != 0 || (e % grain != 0 && e != n) || b >= e) bad_chunk = true;
              for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
              busy[static_cast<size_t>(tid)].fetch_sub(1);
            },
            grain);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[static_cast<size_t>(i)].load(), 1) << "n=" << n << " i=" << i;
        EXPECT_FALSE(bad_chunk.load());
        EXPECT_FALSE(overlap.load());
      }
    }
  }
}

}  // namespace

namespace {

// Back-to-back tiny loops are where a late thread meets the next job; each loop must still
// run every index exactly once (a double-run chunk used to leave the caller waiting forever).
TEST(ThreadPool, BackToBackTinyLoopsRunEveryIndexOnce) {
  for (int threads : {2, 3}) {
    ThreadPool pool(threads);
    std::atomic<int64_t> total{0};
    int64_t expected = 0;
    for (int rep = 0; rep < 100000; ++rep) {
      const int64_t n = 2 + rep % 7;
      expected += n;
      pool.parallel_for(n, [&](int64_t b, int64_t e, int) { total.fetch_add(e - b); });
    }
    EXPECT_EQ(total.load(), expected) << threads << " threads";
  }
}

}  // namespace
