// The CPU backend: reference and production path for every op. Weights are read in place from
// the file mapping; matmuls multiply by quantized blocks directly (src/backends/cpu/cpu_matmul.cpp).
#pragma once
#include "backends/backend.h"
#include "core/thread_pool.h"

namespace unicorn {

// How matmuls treat activations. Fast: int8 per 32 values with integer dot products (the
// numerics of llama.cpp's CPU path; ~1e-2 relative logit error on real weights). Exact: f32
// activations against weights decoded by the reference codec (matches the float32 reference to
// ~1e-6; several times slower). See docs/PERFORMANCE.md.
enum class MatmulPrecision { Fast, Exact };

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads, MatmulPrecision precision = MatmulPrecision::Fast);
  std::string name() const override { return "cpu"; }
  bool supports_weight(GgmlType type) const override;
  using Backend::load_weights;
  void load_weights(std::span<const WeightTensor* const>, const UploadProgress&) override {}  // used in place
  double copy_bandwidth(size_t bytes) override;

  Act alloc(int64_t rows, int64_t cols) override;
  void copy_from_host(const float* src, Act& dst) override;
  void copy_to_host(const Act& src, float* dst) override;
  std::unique_ptr<LayerKv> create_kv(const LayerKvSpec& spec) override;

  void embed(const WeightTensor& table, std::span<const int32_t> tokens, float scale, Act& out) override;
  void matmul(const WeightTensor& w, const Act& x, Act& y) override;
  void rms_norm(const Act& x, const WeightTensor& w, float eps, Act& y) override;
  void rope(Act& x, int64_t head_dim, std::span<const int32_t> pos, float base, float scale) override;
  void attention(const Act& q, const Act& k, const Act& v, LayerKv& kv, const BatchView& batch,
                 std::span<const int64_t> past_len, const AttentionParams& p, Act& out) override;
  void gelu_mul(const Act& gate, const Act& up, Act& out) override;
  void add(Act& x, const Act& y) override;
  void gather_rows(const Act& x, std::span<const int64_t> rows, Act& out) override;
  void softcap(Act& x, float cap) override;
  // A batch whose sequences have one token each (a decode step of several sequences) runs its
  // matmuls through the row dots up to kMaxRowDotTokens tokens, so that each sequence's logits are
  // bit for bit those of decoding it alone; other batches (prompts) up to kTiledMinTokens - 1.
  void begin_batch(const BatchView& batch, std::span<const int64_t> past_len,
                   std::span<const int64_t> logit_rows) override;

  ThreadPool& pool() { return pool_; }

 private:
  ThreadPool pool_;
  MatmulPrecision precision_;
  int64_t row_dot_max_;  // the most tokens a matmul gives the row dots (cpu_matmul.h matmul_with)
};

}  // namespace unicorn
