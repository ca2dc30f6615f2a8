// The KV cache of a model: one LayerKv per layer, on that layer's backend, for `n_seq` sequence
// slots. Local (sliding) layers keep only `sliding_window` positions (a ring); global layers keep
// `n_ctx` (spec §6.2). The sequence lengths live here, shared by all layers.
#pragma once
#include <memory>
#include <vector>

#include "backends/backend.h"
#include "formats/gemma3_config.h"
#include "runtime/placement.h"

namespace unicorn {

class KvCache {
 public:
  KvCache(const Gemma3Config& c, const Placement& placement, int n_seq, int64_t n_ctx, GgmlType type);

  // Bytes the cache will take, before allocating (used by the memory estimate).
  static size_t estimate_bytes(const Gemma3Config& c, int n_seq, int64_t n_ctx, GgmlType type);
  static int64_t layer_capacity(const Gemma3Config& c, int64_t layer, int64_t n_ctx);

  int n_seq() const { return static_cast<int>(len_.size()); }
  int64_t n_ctx() const { return n_ctx_; }
  GgmlType type() const { return type_; }
  int64_t seq_len(int seq) const { return len_[static_cast<size_t>(seq)]; }
  void set_seq_len(int seq, int64_t n) { len_[static_cast<size_t>(seq)] = n; }
  void clear(int seq) { len_[static_cast<size_t>(seq)] = 0; }
  LayerKv& layer(int64_t i) { return *layers_[static_cast<size_t>(i)]; }
  size_t bytes() const;
  // Unique for the process's lifetime (not reused like an address): names this cache's buffers
  // in recorded op graphs.
  uint64_t id() const { return id_; }

 private:
  uint64_t id_;
  int64_t n_ctx_;
  GgmlType type_;
  std::vector<int64_t> len_;
  std::vector<std::unique_ptr<LayerKv>> layers_;
};

}  // namespace unicorn
