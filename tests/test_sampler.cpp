// Sampler behaviour: greedy, temperature, top-k, top-p, min-p, penalties, seeding, masking.
#include <gtest/gtest.h>

#include <map>
#include <vector>

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
