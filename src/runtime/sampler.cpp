#include "runtime/sampler.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <unordered_set>

#include "core/error.h"

namespace unicorn {

Sampler::Sampler(const SamplerParams& p) : p_(p), rng_(p.seed) {
  if (p.top_p <= 0.0f) fail("--top-p must be in (0, 1] (got {})", p.top_p);
  if (p.min_p < 0.0f || p.min_p > 1.0f) fail("--min-p must be in [0, 1] (got {})", p.min_p);
  if (p.repeat_penalty <= 0.0f) fail("--repeat-penalty must be positive (got {})", p.repeat_penalty);
  if (!std::isfinite(p.temperature)) fail("--temp must be a finite number");
}

void Sampler::accept(int32_t token) {
  if (p_.repeat_last_n <= 0) return;
  recent_.push_back(token);
  while (static_cast<int>(recent_.size()) > p_.repeat_last_n) recent_.pop_front();
}

int32_t Sampler::sample(std::span<const float> logits) {
  const int64_t n = p_.n_allowed > 0 ? std::min<int64_t>(p_.n_allowed, static_cast<int64_t>(logits.size()))
                                     : static_cast<int64_t>(logits.size());
  cand_.resize(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    cand_[static_cast<size_t>(i)] = {logits[static_cast<size_t>(i)], static_cast<int32_t>(i)};
  return pick(n);
}

namespace {
constexpr int kMaxCandidates = 256;               // top-k beyond this asks for the whole row
constexpr int kMaxCandidatesWithPenalties = 512;  // k + penalized tokens beyond this, too
}  // namespace

// The top-k after penalties lies within the top (k + r) before them, r = distinct penalized
// tokens: a token with k + r tokens above it keeps at least k unpenalized ones above it. This
// holds while penalties only lower logits (repeat penalty >= 1, presence penalty >= 0).
int Sampler::candidates_needed() const {
  if (p_.repeat_penalty < 1.0f || p_.presence_penalty < 0.0f) return 0;
  const int k = p_.temperature <= 0.0f ? 1 : p_.top_k;
  if (k <= 0 || k > kMaxCandidates) return 0;
  if (p_.repeat_penalty == 1.0f && p_.presence_penalty == 0.0f) return k;
  const int r = static_cast<int>(std::unordered_set<int32_t>(recent_.begin(), recent_.end()).size());
  // More candidates than needed are still exact; rounding up keeps the count (and so a GPU's
  // recorded step) the same from one token to the next.
  const int n = (k + r + 31) / 32 * 32;
  return n <= kMaxCandidatesWithPenalties ? n : 0;
}

int32_t Sampler::sample_candidates(std::span<const std::pair<float, int32_t>> best_first) {
  if (best_first.empty()) fail("internal: sampling from no candidates");
  cand_.assign(best_first.begin(), best_first.end());
  return pick(INT64_MAX);
}

int32_t Sampler::pick(int64_t n) {
  // Penalties on recently generated tokens (each distinct token once).
  if (p_.repeat_penalty != 1.0f || p_.presence_penalty != 0.0f) {
    const std::unordered_set<int32_t> seen(recent_.begin(), recent_.end());
    auto penalize = [&](float& z) {
      z = z > 0 ? z / p_.repeat_penalty : z * p_.repeat_penalty;
      z -= p_.presence_penalty;
    };
    if (static_cast<int64_t>(cand_.size()) == n) {  // the whole row: cand_[t] is token t
      for (int32_t t : seen)
        if (t >= 0 && t < n) penalize(cand_[static_cast<size_t>(t)].first);
    } else {
      for (auto& [z, id] : cand_)
        if (seen.count(id)) penalize(z);
    }
  }
  auto by_logit = [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  if (p_.temperature <= 0.0f) return std::min_element(cand_.begin(), cand_.end(), by_logit)->second;

  size_t k = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < k) {
    k = static_cast<size_t>(p_.top_k);
    std::partial_sort(cand_.begin(), cand_.begin() + static_cast<std::ptrdiff_t>(k), cand_.end(), by_logit);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  cand_.resize(k);
  // Temperature is applied before the top-p / min-p cut-offs, as transformers' warpers do.
  const float inv_t = 1.0f / p_.temperature;
  std::vector<double> prob(k);
  double sum = 0;
  for (size_t i = 0; i < k; ++i) {
    prob[i] = std::exp(static_cast<double>((cand_[i].first - cand_[0].first) * inv_t));
    sum += prob[i];
  }
  size_t keep = k;
  if (p_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < k; ++i) {
      cum += prob[i] / sum;
      if (cum >= p_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (p_.min_p > 0.0f) {
    const double floor = prob[0] * p_.min_p;
    size_t m = 1;
    while (m < keep && prob[m] >= floor) ++m;
    keep = m;
  }
  std::discrete_distribution<size_t> pick(prob.begin(), prob.begin() + static_cast<std::ptrdiff_t>(keep));
  return cand_[pick(rng_)].second;
}

}  // namespace unicorn
