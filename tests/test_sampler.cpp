// Sampler behaviour: greedy, temperature, top-k, top-p, min-p, penalties, seeding, masking.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "runtime/sampler.h"

using namespace unicorn;

namespace {
std::map<int32_t, int> histogram(SamplerParams p, const std::vector<float>& logits, int n) {
  Sampler s(p);
  std::map<int32_t, int> h;
  for (int i = 0; i < n; ++i) h[s.sample(logits)]++;
  return h;
}
const std::vector<float> kLogits = {1.0f, 3.0f, 2.9f, -1.0f, 0.5f, 2.0f};
}  // namespace

TEST(Sampler, ZeroTemperatureIsArgmax) {
  SamplerParams p;
  p.temperature = 0;
  Sampler s(p);
  EXPECT_EQ(s.sample(kLogits), 1);
}

TEST(Sampler, TopKOneIsArgmaxEvenAtHighTemperature) {
  SamplerParams p;
  p.temperature = 5;
  p.top_k = 1;
  const auto h = histogram(p, kLogits, 200);
  ASSERT_EQ(h.size(), 1u);
  EXPECT_EQ(h.begin()->first, 1);
}

TEST(Sampler, TopKLimitsTheCandidates) {
  SamplerParams p;
  p.top_k = 2;
  p.top_p = 1;
  const auto h = histogram(p, kLogits, 2000);
  for (const auto& [tok, n] : h) EXPECT_TRUE(tok == 1 || tok == 2) << tok;
  EXPECT_GT(h.at(1), 700);  // p(1) ~ 0.525 vs p(2) ~ 0.475
  EXPECT_GT(h.at(2), 700);
}

TEST(Sampler, TopPKeepsTheSmallestNucleus) {
  SamplerParams p;
  p.top_k = 0;
  p.top_p = 0.5f;  // token 1 alone has ~0.37 of the mass; with token 2 the nucleus passes 0.5
  const auto h = histogram(p, kLogits, 2000);
  for (const auto& [tok, n] : h) EXPECT_TRUE(tok == 1 || tok == 2) << tok;
}

TEST(Sampler, MinPDropsUnlikelyTokens) {
  SamplerParams p;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0.5f;  // keeps tokens with p >= 0.5 * p_max: 1, 2 (e^-0.1) and 5 (e^-1 = 0.37: dropped)
  const auto h = histogram(p, kLogits, 2000);
  for (const auto& [tok, n] : h) EXPECT_TRUE(tok == 1 || tok == 2) << tok;
}

TEST(Sampler, SameSeedSameTokens) {
  SamplerParams p;
  p.seed = 42;
  p.top_k = 0;
  p.top_p = 1;
  Sampler a(p), b(p);
  std::vector<int32_t> ta, tb;
  for (int i = 0; i < 50; ++i) {
    ta.push_back(a.sample(kLogits));
    tb.push_back(b.sample(kLogits));
  }
  EXPECT_EQ(ta, tb);
  p.seed = 43;
  Sampler c(p);
  std::vector<int32_t> tc;
  for (int i = 0; i < 50; ++i) tc.push_back(c.sample(kLogits));
  EXPECT_NE(ta, tc);
}

TEST(Sampler, RepetitionPenaltyMovesGreedyAwayFromRecentTokens) {
  SamplerParams p;
  p.temperature = 0;
  p.repeat_penalty = 1.5f;  // 3.0 / 1.5 = 2.0 < 2.9
  Sampler s(p);
  s.accept(1);
  EXPECT_EQ(s.sample(kLogits), 2);
}

TEST(Sampler, PresencePenaltySubtracts) {
  SamplerParams p;
  p.temperature = 0;
  p.presence_penalty = 0.2f;  // 3.0 - 0.2 = 2.8 < 2.9
  Sampler s(p);
  s.accept(1);
  EXPECT_EQ(s.sample(kLogits), 2);
  s.reset_history();
  EXPECT_EQ(s.sample(kLogits), 1);
}

TEST(Sampler, PaddedVocabularyRowsAreNeverSampled) {
  SamplerParams p;
  p.temperature = 0;
  p.n_allowed = 1;  // only id 0 is a real token
  Sampler s(p);
  EXPECT_EQ(s.sample(kLogits), 0);
}

TEST(Sampler, BadParametersAreClearErrors) {
  SamplerParams p;
  p.top_p = 0;
  EXPECT_THROW(Sampler{p}, Error);
  p = {};
  p.min_p = 2;
  EXPECT_THROW(Sampler{p}, Error);
}

// ---- sampling from the best candidates only (what a GPU sends back) -----------------------------

namespace {

// Best-first (logit, id) pairs of a row through the backend op the model uses (Backend::top_k).
std::vector<std::pair<float, int32_t>> best_of(CpuBackend& cpu, const std::vector<float>& row, int k, int64_t allowed) {
  Act x = cpu.alloc(1, static_cast<int64_t>(row.size()));
  cpu.copy_from_host(row.data(), x);
  Act out = cpu.alloc(1, 2 * k);
  cpu.top_k(x, k, allowed, out);
  std::vector<std::pair<float, int32_t>> v;
  for (int i = 0; i < k; ++i) v.push_back({out.data()[2 * i], static_cast<int32_t>(out.data()[2 * i + 1])});
  return v;
}

}  // namespace

TEST(SamplerCandidates, PickExactlyWhatTheWholeRowPicks) {
  CpuBackend cpu(1, MatmulPrecision::Exact);
  std::mt19937 gen(17);
  std::normal_distribution<float> logit(0.0f, 3.0f);
  struct Case {
    float temp;
    int top_k;
    float top_p, min_p, repeat, presence;
    int64_t allowed;
  };
  const Case cases[] = {{0.0f, 64, 1.0f, 0.0f, 1.0f, 0.0f, 0},    {0.0f, 0, 1.0f, 0.0f, 1.3f, 0.5f, 0},
                        {0.8f, 40, 0.95f, 0.0f, 1.0f, 0.0f, 0},   {1.0f, 64, 0.9f, 0.05f, 1.5f, 0.0f, 0},
                        {0.7f, 20, 1.0f, 0.0f, 1.1f, 1.0f, 1900}, {1.2f, 256, 0.99f, 0.0f, 2.0f, 0.2f, 0}};
  for (const Case& c : cases) {
    SamplerParams p;
    p.temperature = c.temp, p.top_k = c.top_k, p.top_p = c.top_p, p.min_p = c.min_p;
    p.repeat_penalty = c.repeat, p.presence_penalty = c.presence, p.repeat_last_n = 32, p.seed = 5;
    p.n_allowed = c.allowed;
    Sampler whole(p), best(p);
    for (int step = 0; step < 200; ++step) {
      std::vector<float> row(2000);
      for (float& z : row) z = logit(gen);
      row[static_cast<size_t>(step % 7)] = row[static_cast<size_t>(step % 5)];  // ties, broken by the lower id
      const int need = best.candidates_needed();
      ASSERT_GT(need, 0) << "temp " << c.temp << " top_k " << c.top_k;
      const int64_t allowed = c.allowed > 0 ? c.allowed : 2000;
      const int32_t a = whole.sample(row);
      const int32_t b =
          best.sample_candidates(best_of(cpu, row, std::min<int>(need, static_cast<int>(allowed)), c.allowed));
      ASSERT_EQ(a, b) << "step " << step << " temp " << c.temp << " top_k " << c.top_k;
      whole.accept(a);
      best.accept(b);
    }
  }
}

TEST(SamplerCandidates, RaisingPenaltiesOrNoTopKNeedTheWholeRow) {
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  EXPECT_EQ(Sampler(p).candidates_needed(), 0);  // every token can be drawn
  p.top_k = 40;
  EXPECT_EQ(Sampler(p).candidates_needed(), 40);
  p.repeat_penalty = 0.9f;  // raises the logits of recent tokens: any token may climb into the top-k
  EXPECT_EQ(Sampler(p).candidates_needed(), 0);
  p.repeat_penalty = 1.2f;
  Sampler s(p);
  s.accept(3), s.accept(9), s.accept(3);
  EXPECT_EQ(s.candidates_needed(), 64);  // 40 + 2 penalized tokens, rounded up to a multiple of 32
  p.repeat_last_n = 1024;
  Sampler many(p);
  for (int t = 0; t < 600; ++t) many.accept(t);
  EXPECT_EQ(many.candidates_needed(), 0);  // 40 + 600 candidates: the whole row is cheaper
  p.temperature = 0.0f;
  p.top_k = 0;
  EXPECT_EQ(Sampler(p).candidates_needed(), 32);  // greedy with penalties: 1 + r, rounded up
  p.repeat_penalty = 1.0f;
  EXPECT_EQ(Sampler(p).candidates_needed(), 1);  // plain greedy
}
