// The backend interface: a device with memory and a small op set. The model (src/model/gemma3.cpp)
// is written once against it; placement (src/runtime/placement.h) gives each layer one backend,
// and activations cross between backends only at layer boundaries. See docs/ARCHITECTURE.md.
//
// Conventions: activations are row-major float32 matrices [rows = tokens, cols = features] in the
// backend's memory. Ops are issued in order and may run asynchronously (a GPU backend queues them
// on a stream); copy_to_host / synchronize are the only points where the host waits.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "core/types.h"
#include "model/weights.h"

namespace unicorn {

class Backend;

// An activation matrix owned by a backend.
class Act {
 public:
  Act() = default;
  Act(Backend* owner, std::shared_ptr<float> mem, int64_t rows, int64_t cols)
      : owner_(owner), mem_(std::move(mem)), rows_(rows), cols_(cols) {}
  float* data() const { return mem_.get(); }
  float* row(int64_t r) const { return mem_.get() + r * cols_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  Backend* owner() const { return owner_; }
  explicit operator bool() const { return mem_ != nullptr; }
  // The first rows*cols values of this buffer seen as a [rows, cols] matrix (shares memory).
  Act view(int64_t rows, int64_t cols) const { return Act(owner_, mem_, rows, cols); }

 private:
  Backend* owner_ = nullptr;
  std::shared_ptr<float> mem_;
  int64_t rows_ = 0, cols_ = 0;
};

// Which tokens a forward call carries: token i belongs to sequence slot seq[i] at position pos[i].
// Within one slot, positions are consecutive and continue that slot's cache.
struct BatchView {
  std::span<const int32_t> tokens;
  std::span<const int32_t> pos;
  std::span<const int32_t> seq;
};

// Attention parameters of one layer (spec §2.4).
struct AttentionParams {
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0.0f;
  int64_t window = 0;  // 0: global (causal only); else sliding, p - j < window (spec §2.4.7)
};

// Key/value storage of one layer for every sequence slot, in a backend's memory. Local layers
// keep a ring of `window` positions; global layers keep the whole context.
class LayerKv {
 public:
  virtual ~LayerKv() = default;
  virtual size_t bytes() const = 0;
};

struct LayerKvSpec {
  int n_seq = 1;
  int64_t capacity = 0;  // positions kept per sequence (ring size for local layers)
  int64_t n_kv_heads = 0, head_dim = 0;
  GgmlType type = GgmlType::F16;  // F32 or F16
};

using UploadProgress = std::function<void(size_t bytes_done, size_t bytes_total)>;

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Can matmul() use a weight of this type directly?
  virtual bool supports_weight(GgmlType type) const = 0;
  // Called with the weights placed on this backend before use, all of a model's at once (a GPU
  // backend uploads/repacks them into one allocation and keeps its copies keyed by each
  // WeightTensor's address; the CPU backend reads them in place). Weights already loaded are
  // skipped; loading the same bytes as a different tensor is an error.
  // `progress` (may be empty) hears the bytes uploaded (or queued for upload) so far and in all:
  // (0, total) first, then after each weight, ending with (total, total) once every byte is on
  // the device. A backend that uploads nothing calls it never.
  virtual void load_weights(std::span<const WeightTensor* const> ws, const UploadProgress& progress) = 0;
  void load_weights(std::span<const WeightTensor* const> ws) { load_weights(ws, {}); }
  void load_weight(const WeightTensor& w) {
    const WeightTensor* p = &w;
    load_weights({&p, 1}, {});
  }

  virtual Act alloc(int64_t rows, int64_t cols) = 0;
  virtual void copy_from_host(const float* src, Act& dst) = 0;
  virtual void copy_to_host(const Act& src, float* dst) = 0;
  virtual std::unique_ptr<LayerKv> create_kv(const LayerKvSpec& spec) = 0;
  virtual void synchronize() {}
  // Bytes read plus bytes written per second by copies of `bytes` within this device's memory,
  // measured now (the best of a few): the denominator of the decode roofline, since decoding one
  // token reads every weight once (docs/PERFORMANCE.md). 0 when it cannot be measured, e.g. for
  // lack of free memory.
  virtual double copy_bandwidth(size_t bytes) = 0;
  // Bytes this backend will hold for weight w in its own layout, for memory planning: the file's
  // bytes by default (the CPU even reads the mapped file in place).
  virtual size_t weight_device_bytes(const WeightTensor& w) const { return w.nbytes(); }

  // ---- ops ----
  // out[i] = table[tokens[i]] * scale
  virtual void embed(const WeightTensor& table, std::span<const int32_t> tokens, float scale, Act& out) = 0;
  // y = x · wᵀ  (x [T, w.cols] -> y [T, w.rows])
  virtual void matmul(const WeightTensor& w, const Act& x, Act& y) = 0;
  // RMSNorm over groups of w.cols values of each row (w.cols == x.cols for a row norm, head_dim for
  // QK-norm): y = x · rsqrt(mean(x²) + eps) · w  (w already holds 1+w, spec §2.2). y may alias x.
  virtual void rms_norm(const Act& x, const WeightTensor& w, float eps, Act& y) = 0;
  // NeoX rotate-half RoPE on every head of x [T, n_heads*head_dim] (spec §2.4.3).
  virtual void rope(Act& x, int64_t head_dim, std::span<const int32_t> pos, float base, float scale) = 0;
  // Attention of this batch's q [T, nh*hd] over the slot's cached past plus this batch's own k, v
  // [T, nkv*hd]; out [T, nh*hd]. Then stores k, v into the cache (spec §2.4.4).
  virtual void attention(const Act& q, const Act& k, const Act& v, LayerKv& kv, const BatchView& batch,
                         std::span<const int64_t> past_len, const AttentionParams& p, Act& out) = 0;
  // out = gelu_tanh(gate) ⊙ up (spec §2.5). out may alias gate.
  virtual void gelu_mul(const Act& gate, const Act& up, Act& out) = 0;
  // x += y
  virtual void add(Act& x, const Act& y) = 0;
  // out[i] = x[rows[i]]
  virtual void gather_rows(const Act& x, std::span<const int64_t> rows, Act& out) = 0;
  // x = cap · tanh(x / cap), the final logit soft-cap (spec §2.6).
  virtual void softcap(Act& x, float cap) = 0;
  // The k largest values of each row among columns < n_allowed (0: all), best first, ties by
  // lower column: out [rows, 2k] = (value, column as float) pairs (columns < 2^24 are exact).
  // The default copies the rows to the host (backend.cpp); a GPU selects them in place.
  virtual void top_k(const Act& x, int k, int64_t n_allowed, Act& out);

  // ---- composite ops ----
  // Each has a default made of the ops above (backend.cpp); a backend overrides it with fused
  // kernels. Results must equal the default's up to the backend's own rounding.
  // ys[i] = x · ws[i]ᵀ for weights that share their input (q, k, v).
  virtual void matmul_many(std::span<const WeightTensor* const> ws, const Act& x, std::span<Act* const> ys);
  // gate = gelu_tanh(x · gate_wᵀ) ⊙ (x · up_wᵀ) (spec §2.5); `up` is scratch of gate's shape.
  virtual void matmul_geglu(const WeightTensor& gate_w, const WeightTensor& up_w, const Act& x, Act& gate, Act& up);
  // QK-norm of every head of q and k, then RoPE on both (spec §2.4.2-2.4.3).
  virtual void qk_norm_rope(Act& q, Act& k, const WeightTensor& q_norm, const WeightTensor& k_norm, float eps,
                            int64_t head_dim, std::span<const int32_t> pos, float base, float scale);
  // The end of a block (spec §2.3, §2.5): x += rms_norm(o)·post_w (o is overwritten); then, when
  // next_w is given, h = rms_norm(x)·next_w, the next block's input norm.
  virtual void add_norm(Act& x, Act& o, const WeightTensor& post_w, const WeightTensor* next_w, float eps, Act& h);
  // qk_norm_rope(q, k, ..., p.head_dim, pos, base, scale), then attention(q, k, v, ...): a backend
  // may fuse the two and read q and k raw, so both are scratch afterwards. (pos[i] is the position
  // of batch row i, normally batch.pos.)
  virtual void qk_norm_rope_attention(Act& q, Act& k, const Act& v, const WeightTensor& q_norm,
                                      const WeightTensor& k_norm, float eps, std::span<const int32_t> pos, float base,
                                      float scale, LayerKv& kv, const BatchView& batch,
                                      std::span<const int64_t> past_len, const AttentionParams& p, Act& out);

  // ---- forward-pass hooks (a GPU backend uses them; the defaults do nothing) ----
  // Called once per forward pass before the pass's ops on this backend, with the whole batch,
  // each slot's cached length and the batch rows whose logits are wanted. A GPU backend uploads
  // them here, once, so that its ops and recorded graphs read them from device memory.
  virtual void begin_batch(const BatchView& /*batch*/, std::span<const int64_t> /*past_len*/,
                           std::span<const int64_t> /*logit_rows*/) {}
  // Recording a run of ops and replaying it (CUDA graphs). replay(key) returns true when a
  // recording of `key` exists and was queued: the caller then skips those ops. Otherwise the
  // caller issues them between record_begin(key) and record_end(). record_end() returns false
  // when a recording failed and the ops did not run: the caller issues them again. A key names
  // everything the recorded ops depend on except the values passed to begin_batch.
  virtual bool replay(const std::string& /*key*/) { return false; }
  virtual void record_begin(const std::string& /*key*/) {}
  virtual bool record_end() { return true; }
  // Ends a recording that an error interrupted (an exception between record_begin and
  // record_end): nothing recorded is kept and the backend takes ops eagerly again.
  virtual void record_abort() {}
  // Drops every recording (the caller's buffers moved).
  virtual void forget_recordings() {}
};

}  // namespace unicorn
