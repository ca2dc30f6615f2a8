// The CUDA backend: every op of backends/backend.h on one device and one stream. Weights are
// uploaded once in load_weights (keyed by the WeightTensor's data address) in their quantized
// form; activations and the KV cache live in device memory; ops are queued on the stream and
// the host waits only in copy_to_host / synchronize.
#pragma once
#include <cuda_runtime_api.h>

#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "backends/backend.h"
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/gemm.h"
#include "backends/cuda/kernels.h"
#include "backends/cuda/step_gap.h"
#include "backends/cuda/weight_upload.h"

namespace unicorn::cuda {

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(int device);
  ~CudaBackend() override;
  CudaBackend(const CudaBackend&) = delete;
  CudaBackend& operator=(const CudaBackend&) = delete;

  std::string name() const override { return name_; }
  cudaStream_t stream() const { return stream_; }
  bool supports_weight(GgmlType type) const override;
  using Backend::load_weights;
  void load_weights(std::span<const WeightTensor* const> ws, const UploadProgress& progress) override;

  Act alloc(int64_t rows, int64_t cols) override;
  void copy_from_host(const float* src, Act& dst) override;
  void copy_to_host(const Act& src, float* dst) override;
  std::unique_ptr<LayerKv> create_kv(const LayerKvSpec& spec) override;
  void synchronize() override;
  double copy_bandwidth(size_t bytes) override;
  size_t weight_device_bytes(const WeightTensor& w) const override;

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
  void top_k(const Act& x, int k, int64_t n_allowed, Act& out) override;

  void matmul_many(std::span<const WeightTensor* const> ws, const Act& x, std::span<Act* const> ys) override;
  void matmul_geglu(const WeightTensor& gate_w, const WeightTensor& up_w, const Act& x, Act& gate, Act& up) override;
  void qk_norm_rope(Act& q, Act& k, const WeightTensor& q_norm, const WeightTensor& k_norm, float eps, int64_t head_dim,
                    std::span<const int32_t> pos, float base, float scale) override;
  void add_norm(Act& x, Act& o, const WeightTensor& post_w, const WeightTensor* next_w, float eps, Act& h) override;
  void qk_norm_rope_attention(Act& q, Act& k, const Act& v, const WeightTensor& q_norm, const WeightTensor& k_norm,
                              float eps, std::span<const int32_t> pos, float base, float scale, LayerKv& kv,
                              const BatchView& batch, std::span<const int64_t> past_len, const AttentionParams& p,
                              Act& out) override;

  void begin_batch(const BatchView& batch, std::span<const int64_t> past_len,
                   std::span<const int64_t> logit_rows) override;
  bool replay(const std::string& key) override;
  void record_begin(const std::string& key) override;
  bool record_end() override;
  void record_abort() override { abort_recording(); }
  void forget_recordings() override;
  struct DeviceMemory {
    size_t free = 0, total = 0;
  };
  DeviceMemory memory() const;                       // the device's memory now (cudaMemGetInfo)
  size_t start_used() const { return start_used_; }  // in use once the context and stream existed
  // Recordings held (tests and the bench report use it).
  size_t recordings() const { return graphs_.size(); }
  // Tests: the tiled prompt attention for every batch of 32+ tokens, even where too few blocks
  // would fill the GPU (then the per-(token, head) kernel is used).
  void force_tiled_prompt_attention(bool on) { force_tiled_prompt_attention_ = on; }
  // QK-norm + RoPE inside the decode attention kernel (qk_norm_rope_attention); on by default,
  // UNICORN_FUSE_QK_ATTENTION=0 turns it off (the two kernels).
  void fuse_qk_attention(bool on) { fuse_qk_attention_ = on; }
  // Prompt attention on tensor cores (attention_prefill_mma.cu) for f16 caches; on by default
  // (H100: 27B Q4_0 pp512 5,292 -> 5,892 tok/s), UNICORN_MMA_PROMPT_ATTENTION=0 turns it off.
  void tensor_core_prompt_attention(bool on) { tc_prompt_attention_ = on; }
  // Tests and measurements: decode attention's split bounds (attn_min_keys_, attn_blocks_per_sm_).
  void attention_splits(int64_t min_keys, int64_t blocks_per_sm) {
    attn_min_keys_ = min_keys, attn_blocks_per_sm_ = blocks_per_sm;
  }
  // Tests and measurements: the short-context decode attention's bound (short_keys_; 0: off).
  void short_attention_keys(int64_t n) { short_keys_ = n; }
  // Tests and measurements: whether the split decode attention merges its own splits for batches
  // of one token per sequence (attn_self_merge_), instead of a merge kernel.
  void attention_self_merge(bool on) {
    attn_self_merge_ = on;
    forget_recordings();
  }

 private:
  // Small int arrays the ops take from the host (tokens, positions, attention metadata, rows).
  // Each kind has its own device buffer; an upload is skipped when the values equal the last
  // ones sent (every layer passes the same positions and batch layout).
  enum class Staged { Tokens, Positions, Attention, Rows, Tiles, kCount };
  const int32_t* stage(Staged kind, std::span<const int32_t> values);
  const DeviceWeight& device_weight(const WeightTensor& w) const;
  void check_launch(cudaError_t e, const char* op);
  // Grows a scratch buffer; a move forgets the recordings that used the old address. True when b
  // is a new allocation (its contents undefined).
  bool grow(DeviceBuffer& b, size_t bytes);
  // n zeroed ints for the self-merging split attention (merge_count_; the kernels leave them zero).
  int* merge_counts(int64_t n);
  // x quantized to int8 blocks in act_q8_ (T <= 8 matvec input); skipped when act_q8_ already
  // holds x's quantization (a fused producer wrote it, see add_norm).
  ActQ8 quantize(const Act& x);
  ActQ8 q8_buffer(int64_t T, int64_t K);
  // x quantized into the mma fragment order in act_mma_ (9 to 64 tokens, matmul_mma.cu); skipped
  // when act_mma_ already holds x's.
  ActMma quantize_mma(const Act& x);
  // Every op calls this for the activation it writes: act_q8_ no longer matches that memory.
  void wrote(const Act& a);
  // Device copies of the values begin_batch received, when `values` equals them; else null.
  const int32_t* batch_tokens(std::span<const int32_t> values) const;
  const int32_t* batch_positions(std::span<const int32_t> values) const;
  // Attention metadata of a batch (kernels.h AttentionBatch), from begin_batch's upload or staged.
  AttentionBatch attention_batch(const BatchView& batch, std::span<const int64_t> past_len, int n_seq);
  void abort_recording();
  // The RoPE factors (kernels.h launch_rope_table) of these positions: one table per (head_dim,
  // base, scale), made by a kernel when the positions differ from its last ones, and after every
  // record_begin, record_end, abort_recording and replay, so that a recording always holds the
  // kernels that fill its tables and an op after a failed recording does not trust a table that
  // was never filled.
  // `rows`: the activation rows the table serves (one per position; a mismatch is an error).
  const float2* rope_cos_sin(std::span<const int32_t> pos, int64_t rows, int64_t head_dim, float base, float scale);
  void forget_rope_tables();
  // The graph key of a recorded run: the model's key, plus which attention the batch takes.
  std::string recording_key(const std::string& key) const;
  // attention(), or with qk the decode kernel that applies QK-norm and RoPE itself (kernels.h).
  void attention_impl(const Act& q, const Act& k, const Act& v, LayerKv& kv, const BatchView& batch,
                      std::span<const int64_t> past_len, const AttentionParams& p, Act& out, const QkNormRope* qk);

  // Measurement only (bench/device/run_gpu.sh SKIP_BREAKDOWN): UNICORN_CUDA_SKIP lists ops whose
  // launches are left out (qk_norm_rope, attention, add_norm, quantize), so that a decode
  // benchmark shows what each costs inside the recorded step. The results are then wrong.
  struct Skip {
    bool qk_norm_rope = false, attention = false, add_norm = false, quantize = false;
  };
  static Skip skip_from_env();
  // An on/off environment switch: `fallback` when unset or empty, off for "0", else on.
  static bool env_switch(const char* name, bool fallback);
  // An integer setting from the environment in [lo, hi]; fallback when unset, and (with a note on
  // stderr) when malformed or out of range.
  static int64_t env_int(const char* name, int64_t fallback, int64_t lo, int64_t hi);
  const Skip skip_ = skip_from_env();

  int device_ = 0;
  std::string name_;
  int sm_count_ = 0;
  size_t start_used_ = 0;
  cudaStream_t stream_ = nullptr;
  std::unordered_map<const uint8_t*, DeviceWeight> weights_;
  std::vector<DeviceBuffer> weight_memory_;  // one allocation per load_weights call
  struct StagedInts {
    DeviceBuffer device;
    std::vector<int32_t> last;
  };
  StagedInts staged_[static_cast<int>(Staged::kCount)];
  // Which activation a quantized copy was made from; forgotten once that memory is written.
  struct QuantizedFrom {
    const float* src = nullptr;
    int64_t rows = 0, cols = 0;
    bool holds(const Act& a) const { return src == a.data() && rows == a.rows() && cols == a.cols(); }
    void set(const Act& a) { src = a.data(), rows = a.rows(), cols = a.cols(); }
    void forget_overlap(const float* lo, const float* hi) {
      if (src && lo < src + rows * cols && src < hi) src = nullptr;
    }
  };
  DeviceBuffer act_q8_;    // quantized activations for the int8 matvec
  DeviceBuffer partial_;   // attention split states
  DeviceBuffer k_rot_;     // the normalized, rotated k rows of the fused decode attention
  DeviceBuffer argmax_;    // top_k's k = 1 words
  QuantizedFrom q8_from_;  // what act_q8_ holds

  DeviceBuffer merge_count_;         // the self-merging split attention's counts
  bool merge_count_zeroed_ = false;  // whether merge_count_'s allocation was zeroed (merge_counts)
  struct RopeTable {
    int64_t head_dim = 0;
    float base = 0, scale = 0;
    std::vector<int32_t> pos;  // the positions the table holds; empty: none to trust
    DeviceBuffer cs;
  };
  std::vector<RopeTable> rope_tables_;
  DeviceBuffer act_mma_;    // quantized activations for the tensor-core small-batch matmul
  QuantizedFrom mma_from_;  // what act_mma_ holds

  // The batch of the current forward pass (begin_batch): host copies to match op arguments
  // against, and the device layout tokens[T] pos[T] | attention metadata | logit rows.
  struct CurrentBatch {
    std::vector<int32_t> tokens, pos, seq, past, rows;
    int n_seq = 0;
    bool valid = false;
  } batch_;
  DeviceBuffer batch_dev_;
  std::vector<int32_t> batch_host_;
  const int32_t* batch_attention_ = nullptr;  // AttentionBatch layout, see attention_batch()
  const int32_t* batch_rows_ = nullptr;

  // CUDA graphs of recorded runs, by key; how often each key was seen unrecorded.
  std::unordered_map<std::string, cudaGraphExec_t> graphs_;
  std::unordered_map<std::string, int> seen_;
  std::string recording_key_;
  std::vector<DeviceBuffer> graveyard_;  // buffers replaced during a capture, freed after it
  bool capturing_ = false, capture_ok_ = false;
  bool force_tiled_prompt_attention_ = false;
  bool tc_prompt_attention_ = env_switch("UNICORN_MMA_PROMPT_ATTENTION", true);
  bool fuse_qk_attention_ = env_switch("UNICORN_FUSE_QK_ATTENTION", true);
  StepGapMeter step_gap_{env_switch("UNICORN_CUDA_STEP_GAP", false)};  // a measurement (step_gap.h)
  // Weights staged in pinned buffers for upload; UNICORN_CUDA_PINNED_UPLOAD=0 stages in pageable
  // ones (the load-time comparison, or a way around the pinned path).
  bool pinned_upload_ = env_switch("UNICORN_CUDA_PINNED_UPLOAD", true);
  // Decode attention's key splits (attention_impl): at least this many cache positions per split,
  // and up to this many blocks per SM (0: by head size, attention_impl).
  // UNICORN_CUDA_ATTN_MIN_KEYS / UNICORN_CUDA_ATTN_BLOCKS_PER_SM change them for measurements.
  int64_t attn_min_keys_ = env_int("UNICORN_CUDA_ATTN_MIN_KEYS", 64, 1, 4096);
  int64_t attn_blocks_per_sm_ = env_int("UNICORN_CUDA_ATTN_BLOCKS_PER_SM", 0, 0, 64);
  // Decode batches of one token per sequence, every position below this, take the short-context
  // attention: one kernel per layer with no split merge (a recorded step per side of the bound,
  // recording_key). UNICORN_CUDA_SHORT_KEYS changes it for measurements (0: never).
  int64_t short_keys_ = env_int("UNICORN_CUDA_SHORT_KEYS", 128, 0, 4096);
  // Split decode attention of batches of one token per sequence: the last block of each unit
  // merges the splits, so no merge kernel runs (a recorded step per kind of batch,
  // recording_key). UNICORN_CUDA_ATTN_SELF_MERGE=0 launches the merge kernel instead.
  bool attn_self_merge_ = env_switch("UNICORN_CUDA_ATTN_SELF_MERGE", true);
  Gemm gemm_;  // matmuls of more than kMaxMatvecTokens tokens
};

}  // namespace unicorn::cuda
