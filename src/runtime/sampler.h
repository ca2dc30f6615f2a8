// Token sampling: penalties, then top-k, top-p, min-p, temperature, then a seeded draw.
// temperature <= 0 means greedy (argmax). Defaults are Gemma's generation defaults (spec §1.5).
#pragma once
#include <cstdint>
#include <deque>
#include <random>
#include <span>
#include <vector>

namespace unicorn {

struct SamplerParams {
  float temperature = 1.0f;
  int top_k = 64;               // <= 0: off
  float top_p = 0.95f;          // >= 1: off
  float min_p = 0.0f;           // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off; divides positive / multiplies negative logits of recent tokens
  int repeat_last_n = 64;
  float presence_penalty = 0.0f;  // subtracted once from logits of recent tokens
  uint64_t seed = 0;
  int64_t n_allowed = 0;  // ids >= n_allowed are never sampled (0: all); masks padded vocab rows
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& p);
  // Picks the next token from one logit row; does not record it (call accept()).
  int32_t sample(std::span<const float> logits);

  // Sampling from the row's largest logits only (a GPU finds them, so the whole row need not
  // reach the host). candidates_needed() is how many (0: the whole row is needed); with that
  // many best-first (logit, id) pairs, sample_candidates() returns exactly what sample() would
  // on the whole row: the penalties only lower logits, so at most one candidate per penalized
  // token can drop out of the top-k (see sampler.cpp).
  int candidates_needed() const;
  int32_t sample_candidates(std::span<const std::pair<float, int32_t>> best_first);
  void accept(int32_t token);
  void reset_history() { recent_.clear(); }
  const SamplerParams& params() const { return p_; }

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::deque<int32_t> recent_;
  std::vector<std::pair<float, int32_t>> cand_;
  int32_t pick(int64_t n);  // from cand_ (ids < n), penalties not yet applied
};

}  // namespace unicorn
