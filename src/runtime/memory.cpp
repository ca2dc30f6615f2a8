#include "runtime/memory.h"

#include <algorithm>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "runtime/kv_cache.h"

namespace unicorn {

MemoryEstimate estimate_memory(const ModelWeights& w, int64_t n_ctx, int n_seq, GgmlType kv_type, int64_t n_batch,
                               int64_t logit_rows) {
  const Gemma3Config& c = w.config;
  MemoryEstimate m;
  m.weights = w.weight_bytes();
  m.kv = KvCache::estimate_bytes(c, n_seq, n_ctx, kv_type);
  // Residual + norm + q/k/v/attn/o + gate/up per token of a batch, plus the logit rows asked for
  // (generation: the last token's; perplexity: every token of a batch).
  const int64_t per_tok = 3 * c.hidden + 2 * c.q_dim() + 2 * c.kv_dim() + 2 * c.ffn;
  m.scratch = static_cast<size_t>(per_tok * n_batch + std::max<int64_t>(1, logit_rows) * c.vocab_size) * sizeof(float);
  return m;
}

size_t available_host_memory() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("MemAvailable:", 0) == 0) {
      std::istringstream is(line.substr(13));
      size_t kb = 0;
      is >> kb;
      return kb * 1024;
    }
  }
  return 0;
}

std::string format_bytes(size_t n) {
  const double d = static_cast<double>(n);
  if (d >= 1024.0 * 1024 * 1024) return fmt::format("{:.2f} GiB", d / (1024.0 * 1024 * 1024));
  if (d >= 1024.0 * 1024) return fmt::format("{:.1f} MiB", d / (1024.0 * 1024));
  if (d >= 1024.0) return fmt::format("{:.1f} KiB", d / 1024.0);
  return fmt::format("{} B", n);
}

}  // namespace unicorn
