#include "runtime/kv_cache.h"

#include <atomic>

#include <algorithm>

#include "core/error.h"

namespace unicorn {

int64_t KvCache::layer_capacity(const Gemma3Config& c, int64_t layer, int64_t n_ctx) {
  return c.layer_is_global[static_cast<size_t>(layer)] ? n_ctx : std::min(n_ctx, c.sliding_window);
}

size_t KvCache::estimate_bytes(const Gemma3Config& c, int n_seq, int64_t n_ctx, GgmlType type) {
  const size_t elem = type == GgmlType::F16 ? 2 : 4;
  size_t n = 0;
  for (int64_t l = 0; l < c.n_layers; ++l)
    n += 2 * static_cast<size_t>(layer_capacity(c, l, n_ctx) * c.kv_dim()) * elem * static_cast<size_t>(n_seq);
  return n;
}

namespace {
uint64_t next_id() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}
}  // namespace

KvCache::KvCache(const Gemma3Config& c, const Placement& placement, int n_seq, int64_t n_ctx, GgmlType type)
    : id_(next_id()), n_ctx_(n_ctx), type_(type), len_(static_cast<size_t>(n_seq), 0) {
  if (n_ctx <= 0) fail("context size must be positive (got {})", n_ctx);
  if (n_seq <= 0) fail("number of sequences must be positive (got {})", n_seq);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerKvSpec s;
    s.n_seq = n_seq;
    s.capacity = layer_capacity(c, l, n_ctx);
    s.n_kv_heads = c.n_kv_heads;
    s.head_dim = c.head_dim;
    s.type = type;
    layers_.push_back(placement.layer[static_cast<size_t>(l)]->create_kv(s));
  }
}

size_t KvCache::bytes() const {
  size_t n = 0;
  for (const auto& l : layers_) n += l->bytes();
  return n;
}

}  // namespace unicorn
