#include "runtime/perplexity.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace unicorn {

double log_prob(std::span<const float> logits, int32_t target) {
  float mx = -INFINITY;
  for (float z : logits) mx = std::max(mx, z);
  double sum = 0;
  for (float z : logits) sum += std::exp(static_cast<double>(z - mx));
  return static_cast<double>(logits[static_cast<size_t>(target)] - mx) - std::log(sum);
}

PerplexityResult perplexity(Gemma3Model& model, KvCache& kv, std::span<const int32_t> tokens, int64_t n_ctx,
                            int32_t bos, int64_t n_batch, int64_t max_chunks,
                            const std::function<void(int64_t, int64_t, double)>& progress) {
  if (n_ctx < 4) fail("perplexity needs a context of at least 4 tokens (got {})", n_ctx);
  if (n_ctx > kv.n_ctx()) fail("perplexity context {} is larger than the cache ({})", n_ctx, kv.n_ctx());
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / n_ctx;
  if (n_chunks == 0)
    fail("the text has {} tokens, fewer than one chunk of {} (use a smaller -c or a longer text)", tokens.size(),
         n_ctx);
  if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
  const int64_t V = model.config().vocab_size;
  const int64_t first = n_ctx / 2;
  PerplexityResult r;
  double nll = 0;
  std::vector<float> logits, chunk_logits;
  Batch b;
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    const int64_t start = ch * n_ctx;
    kv.clear(0);
    chunk_logits.clear();
    for (int64_t done = 0; done < n_ctx;) {
      const int64_t m = std::min(n_batch, n_ctx - done);
      b.clear();
      for (int64_t i = 0; i < m; ++i) {
        const int64_t p = done + i;
        const int32_t t = p == 0 ? bos : tokens[static_cast<size_t>(start + p)];
        b.add(t, static_cast<int32_t>(p), 0, p >= first && p < n_ctx - 1);
      }
      model.forward(b, kv, logits);
      chunk_logits.insert(chunk_logits.end(), logits.begin(), logits.end());
      done += m;
    }
    for (int64_t p = first; p < n_ctx - 1; ++p) {
      std::span<const float> row(chunk_logits.data() + (p - first) * V, static_cast<size_t>(V));
      nll -= log_prob(row, tokens[static_cast<size_t>(start + p + 1)]);
      ++r.n_scored;
    }
    r.running_ppl.push_back(std::exp(nll / static_cast<double>(r.n_scored)));
    if (progress) progress(ch + 1, n_chunks, r.running_ppl.back());
  }
  kv.clear(0);
  r.n_chunks = n_chunks;
  r.mean_nll = nll / static_cast<double>(r.n_scored);
  r.ppl = std::exp(r.mean_nll);
  return r;
}

}  // namespace unicorn
