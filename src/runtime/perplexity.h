// Perplexity computed as llama.cpp's llama-perplexity does, so numbers are comparable:
// the tokenized text is split into non-overlapping chunks of n_ctx tokens; each chunk is
// evaluated from an empty cache with its first token replaced by BOS; only the second half of
// each chunk is scored: positions n_ctx/2 .. n_ctx-2 predicting the token after them.
// Perplexity = exp(mean negative log-likelihood over all scored tokens).
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "model/gemma3.h"

namespace unicorn {

struct PerplexityResult {
  double ppl = 0;
  double mean_nll = 0;
  int64_t n_scored = 0;
  int64_t n_chunks = 0;
  std::vector<double> running_ppl;  // after each chunk, as llama-perplexity prints
};

// tokens: the whole text (BOS is put at each chunk start). max_chunks <= 0: all.
PerplexityResult perplexity(Gemma3Model& model, KvCache& kv, std::span<const int32_t> tokens, int64_t n_ctx,
                            int32_t bos, int64_t n_batch, int64_t max_chunks,
                            const std::function<void(int64_t chunk, int64_t n_chunks, double ppl)>& progress = {});

// log p(target | logits) with a numerically stable log-softmax in double precision.
double log_prob(std::span<const float> logits, int32_t target);

}  // namespace unicorn
