// Memory estimate before allocating: weights (mapped or loaded) + KV cache at the requested
// context + activation scratch. The engine refuses a configuration that cannot fit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "model/weights.h"

namespace unicorn {

struct MemoryEstimate {
  size_t weights = 0;
  size_t kv = 0;
  size_t scratch = 0;
  size_t total() const { return weights + kv + scratch; }
};

// logit_rows: the most rows of logits one forward call returns (1 when generating; perplexity
// asks for a whole batch).
MemoryEstimate estimate_memory(const ModelWeights& w, int64_t n_ctx, int n_seq, GgmlType kv_type, int64_t n_batch,
                               int64_t logit_rows = 1);
size_t available_host_memory();      // MemAvailable from /proc/meminfo (0 if unknown)
std::string format_bytes(size_t n);  // "1.23 GiB"

}  // namespace unicorn
