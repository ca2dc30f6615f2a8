// Gemma 3, defined once (spec §2) over the Backend op set and the WeightTensor abstraction.
// Every size, precision and placement runs this one definition.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <vector>

#include "model/weights.h"
#include "runtime/kv_cache.h"
#include "runtime/placement.h"

namespace unicorn {

// A batch of tokens from one or several sequences (the server batches; a prompt is many
// tokens of one sequence). want_logits marks the tokens whose next-token logits are returned.
struct Batch {
  std::vector<int32_t> tokens, pos, seq;
  std::vector<uint8_t> want_logits;
  void add(int32_t token, int32_t position, int32_t seq_slot, bool logits) {
    tokens.push_back(token);
    pos.push_back(position);
    seq.push_back(seq_slot);
    want_logits.push_back(logits ? 1 : 0);
  }
  size_t size() const { return tokens.size(); }
  void clear() {
    tokens.clear();
    pos.clear();
    seq.clear();
    want_logits.clear();
  }
};

// What forward() returns for each row that wants logits: the whole row (top == 0), or only its
// `top` largest logits among ids < n_allowed (0: all), best first, as (logit, id) pairs
// flattened into floats (logit, id, logit, id, ...): found on the backend, so the whole row
// never reaches the host (runtime/sampler.h candidates_needed()).
struct LogitsRequest {
  static constexpr int kMaxTop = 512;
  int top = 0;  // 0 .. kMaxTop
  int64_t n_allowed = 0;
};

class Gemma3Model {
 public:
  // Loads each backend's weights (load_weights); `progress` hears (backend, bytes done, bytes in all).
  using LoadProgress = std::function<void(const Backend& backend, size_t bytes_done, size_t bytes_total)>;
  Gemma3Model(std::shared_ptr<const ModelWeights> weights, Placement placement, const LoadProgress& progress = {});

  const Gemma3Config& config() const { return w_->config; }
  const ModelWeights& weights() const { return *w_; }
  const Placement& placement() const { return placement_; }

  // Runs the batch through every layer, appends its keys/values to `kv` and advances each
  // slot's length. Writes logits [n_wanted, vocab] (row order = batch order) to `logits`.
  // Throws Error for a bad batch (token out of range, positions not continuing the slot,
  // past the context) before touching the cache.
  void forward(const Batch& batch, KvCache& kv, std::vector<float>& logits, const LogitsRequest& request = {});

  // Called with each matmul's weight and input just before the matmul (the output projection
  // included), e.g. to collect importance statistics. x lives on its backend (copy_to_host).
  using MatmulObserver = std::function<void(const WeightTensor& w, const Act& x)>;
  void set_matmul_observer(MatmulObserver f) { observer_ = std::move(f); }

 private:
  void matmul(Backend* b, const WeightTensor& w, const Act& x, Act& y) {
    if (observer_) observer_(w, x);
    b->matmul(w, x, y);
  }
  void validate(const Batch& batch, const KvCache& kv) const;
  // Layers [l0, l1) on backend b over the residual stream x (on b).
  void run_layers(Backend* b, int64_t l0, int64_t l1, const Batch& batch, KvCache& kv, std::span<const int64_t> past,
                  Act& x);
  // Activation buffers are kept between forward calls, per backend and role, and grown when a
  // batch needs more: a GPU backend then allocates nothing in the decode loop.
  enum Slot { kX, kH, kQ, kK, kV, kAtt, kO, kGate, kUp, kSel, kOut, kTop, kSlots };
  Act scratch(Backend* b, Slot slot, int64_t rows, int64_t cols);
  struct ScratchBuf {
    Act buf;
    int64_t capacity = 0;
  };
  std::map<std::pair<Backend*, int>, ScratchBuf> scratch_;
  uint64_t id_;  // unique per model for the process's lifetime: names its buffers in recordings
  std::shared_ptr<const ModelWeights> w_;
  Placement placement_;
  MatmulObserver observer_;
};

}  // namespace unicorn
