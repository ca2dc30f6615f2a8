// Launchers of the CUDA kernels, one .cu file per family. Plain C++ signatures so that host code
// compiled by the C++ compiler can call them; each returns the launch's error (cudaGetLastError)
// for the caller to check. All run on the given stream and never synchronize.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "backends/cuda/device_weight.h"

namespace unicorn::cuda {

// ---- matmul y[T, N] = x[T, K] · wᵀ --------------------------------------------------------------
// x f32 [T, K] -> int8 blocks of 32 (K % 32 == 0) for the integer dot-product matvec.
cudaError_t launch_quantize_q8(const float* x, int64_t T, int64_t K, int8_t* q, float* ds, cudaStream_t s);
// T <= 8, quantized weights (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K): int8 dot products against ActQ8.
cudaError_t launch_matvec_quant(const DeviceWeight& w, ActQ8 x, int T, float* y, cudaStream_t s);
// One token, two weight rows per warp group (a GeGLU pair; Q4_0/Q8_0/Q4_K/Q6_K row pairs): the rows share
// each activation load (true, the default) or load it once each. Process-wide; CudaBackend sets
// it once from UNICORN_CUDA_SHARED_ACT.
void set_matvec_shared_act(bool on);
bool matvec_shared_act();
// One token of Q4_0 and Q4_K rows of 128-192 items (4096- and 5376-wide inputs): warps per row (2, the
// default, gives a block two row groups and each lane of a 5376-wide row three items in one
// pass; 4 as before session 10), at least what warps_per_row asks. Process-wide; CudaBackend sets
// it once from UNICORN_CUDA_WIDE_WARPS.
void set_matvec_wide_warps(int warps);
int matvec_wide_warps();
// Blocks of a one-token matvec grid that issue their first weight loads before pdl_wait() (all by
// default; a measurement setting, UNICORN_CUDA_PREFETCH_BLOCKS; matvec_mma's blocks always do).
void set_matvec_prefetch_blocks(int64_t blocks);
// Warps per 128-item Q4_0 row pair at one token (12B's and 27B's o; not a GeGLU pair): 1 by
// default, 2 or 4 as measurement settings, 0 the general rule (group_warps) (UNICORN_CUDA_O_WARPS).
void set_matvec_o_warps(int warps);
int matvec_o_warps();
// One token of any quantized format: at most the warps per row that give each lane n items or
// fewer (n > 0, 2 by default; a cap on warps_per_row's pick for matrices of few rows, whose extra
// warps have no items when rows are short: 270M's 20 Q4_0 items), 0 no cap
// (UNICORN_CUDA_ITEM_WARPS). The Q6_K heads' one warp per row pair (65,536+ rows of at most 192
// items) applies after it.
void set_matvec_item_warps(int n);
int matvec_item_warps();
// One weight of a 32-value format (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K) at one token with rows of at most 32
// items and at least min_rows rows (min_rows > 0, 65,536 by default: the 270M's output head, 262,144 rows of 20 items):
// 4 rows per warp instead of a row pair, so each warp has more bytes in flight; 0 off (UNICORN_CUDA_QUAD_ROWS).
void set_matvec_quad_rows(int64_t min_rows);
int64_t matvec_quad_rows();
// One token of a K-quant q/k/v mix (q4_mix's Q4_K/Q5_K/Q6_K) as row pairs that share each
// activation load: 3 (the default) every body of the mix in pairs; 0-2 none, measurement settings
// (UNICORN_CUDA_Q4K_PAIRS; NOTES.md session 18, H200, q4_mix tg128 +1.0 % for the mix's pairs). The
// K-quants' own one-token rows are 32-value items in the 32-value formats' row pairs (Q4_K and
// Q6_K since session 25, Q5_K since session 26).
void set_matvec_q4k_pairs(int mode);
int matvec_q4k_pairs();
// The same for job.n (1..3) weights of one width on the same input, in one launch: of one type,
// or a K-quant mix of q, k, v (Q4_K/Q5_K/Q6_K as in q4_mix, Q4_K/Q4_K/Q6_K, Q5_K/Q5_K/Q6_K), as
// matvec_multi_supports says.
bool matvec_multi_supports(const MatvecJob& job);
// Which of those K-quant mixes a job of three weights is (1, 2, 3 in that order), 0 none.
int matvec_kquant_mix(const MatvecJob& job);
cudaError_t launch_matvec_multi(const MatvecJob& job, ActQ8 x, int T, cudaStream_t s);
// y = gelu_tanh(x · gateᵀ) ⊙ (x · upᵀ) (spec §2.5), gate and up of one type and shape.
cudaError_t launch_matvec_geglu(const DeviceWeight& gate, const DeviceWeight& up, ActQ8 x, int T, float* y,
                                cudaStream_t s);
// 2 to 8 tokens (batched decode) on int8 tensor cores (matvec_mma.cu) for the jobs of
// launch_matvec_quant / _multi (glu false) and launch_matvec_geglu (glu: job.w[0] gate, job.w[1]
// up, job.y[0] the GeGLU output). matvec_mma_supports: the kernel takes the job (what
// matvec_multi_supports takes, with cols % 128 == 0). launch_matvec_quant, _multi and _geglu take it
// by themselves where matvec_mma_wanted says so: from matvec_mma_min_tokens() tokens
// (kMmaDecodeMinTokens by default; UNICORN_CUDA_MMA_DECODE=N, 0 never) and, unless
// matvec_mma_all_formats() (UNICORN_CUDA_MMA_DECODE_ALL=1), for the formats and token counts where
// it is faster (Q4_0, Q4_1, Q5_0, Q5_1 from 5 tokens, Q8_0, Q4_K and Q5_K from 6, Q6_K from 7; a job
// from the bound of its slowest format; matvec_mma.cu). The settings are process-wide, for
// measurements and tests.
inline constexpr int kMmaDecodeMinTokens = 5;
void set_matvec_mma_min_tokens(int n);  // 2..8 (1 counts as 2), anything else 0 (never)
int matvec_mma_min_tokens();
void set_matvec_mma_all_formats(bool on);
bool matvec_mma_all_formats();
bool matvec_mma_supports(const MatvecJob& job, int T);
bool matvec_mma_wanted(const MatvecJob& job, int T);
// How each warp keeps weight loads in flight (UNICORN_CUDA_MMA_PIPELINE): -1 (the default) by
// format: two groups in registers for Q4_0, Q4_1 and Q5_0, the staged quant plane for Q8_0, one
// group for the formats with larger groups; 0 one group for all, 1 two for all, 2 staged for all
// (the quant plane in a shared-memory ring by cp.async, read by ldmatrix); measurement modes: 3
// staged with the side planes as far ahead in registers (Q4_0, Q4_1, Q8_0), 4 staged with the
// activations in the ring too.
void set_matvec_mma_pipeline(int mode);
int matvec_mma_pipeline();
// Warps per block along the items (0: by the launch's shape; -1: by a model of occupancy and
// rounds of blocks; else at most the mode's cap), a measurement setting (UNICORN_CUDA_MMA_WARPS).
void set_matvec_mma_warps(int warps);
// cudaErrorInvalidValue where matvec_mma_supports says no, for a GeGLU pair that is not two weights
// of one shape, or an empty weight.
cudaError_t launch_matvec_mma(const MatvecJob& job, ActQ8 x, int T, bool glu, cudaStream_t s);
// 9 to 64 tokens, Q4_0 / Q8_0 weights with K % 256 == 0: int8 tensor cores (matmul_mma.cu) on
// activations quantized per 32 values into the mma fragment order (act_mma_bytes of scratch).
// From mma_min_tokens() (9, or UNICORN_MMA_MIN_TOKENS for measurements) to kMaxMmaTokens tokens.
inline constexpr int64_t kMaxMmaTokens = 64;
int64_t mma_min_tokens();
struct ActMma {
  const uint8_t* q = nullptr;  // int8 B fragments
  const float4* s = nullptr;   // (d, d * sum q) of each fragment's two output tokens
};
bool matmul_mma_supports(GgmlType type, int64_t cols, int64_t T);
size_t act_mma_bytes(int64_t T, int64_t K);
ActMma act_mma_view(void* buffer, int64_t T, int64_t K);  // buffer: 16-byte aligned, act_mma_bytes
cudaError_t launch_quantize_mma(const float* x, int64_t T, int64_t K, ActMma out, cudaStream_t s);
cudaError_t launch_matmul_mma(const DeviceWeight& w, ActMma x, int T, float* y, cudaStream_t s);
// T <= 8, float weights (F32, F16, BF16): f32 math, K % 8 == 0.
cudaError_t launch_matvec_float(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s);
// Any T, any supported weight type: tiles of the weight dequantized to f32 in shared memory.
cudaError_t launch_matmul_tiled(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s);
bool matvec_quant_supports(GgmlType t);
bool weight_type_supported(GgmlType t);

// ---- bf16 operands of the tensor-core prefill matmul (dequantize.cu, used by gemm.cpp) ----------
// Rows [r0, r0 + n) of w decoded (the reference codec's values) and rounded to nearest-even bf16
// into out [n, w.cols] row-major (bf16 bits; 16-byte aligned).
cudaError_t launch_dequantize_bf16(const DeviceWeight& w, int64_t r0, int64_t n, uint16_t* out, cudaStream_t s);
// n f32 values (n % 8 == 0, both buffers 16-byte aligned) to bf16, round to nearest even.
cudaError_t launch_f32_to_bf16(const float* x, int64_t n, uint16_t* out, cudaStream_t s);
// The same to f16 (quantized and F16 weights: f16 holds their decoded values more exactly).
cudaError_t launch_dequantize_f16(const DeviceWeight& w, int64_t r0, int64_t n, uint16_t* out, cudaStream_t s);
// n f32 values to f16 times 2^s, s chosen on the device so that max |x| * 2^s is in [2^13, 2^14)
// (f16 cannot overflow; exact power-of-two scaling). Writes (2^-s, 0) to alpha_beta for the GEMM;
// amax is one unsigned of device scratch.
cudaError_t launch_f32_to_f16_scaled(const float* x, int64_t n, uint16_t* out, unsigned* amax, float* alpha_beta,
                                     cudaStream_t s);

// ---- the other ops ------------------------------------------------------------------------------
cudaError_t launch_embed(const DeviceWeight& table, const int32_t* tokens, int64_t T, float scale, float* out,
                         cudaStream_t s);
cudaError_t launch_rms_norm(const float* x, const float* w, int64_t rows, int64_t cols, int64_t group, float eps,
                            float* y, cudaStream_t s);
// RoPE factors (cos, sin) of pair i at pos[t] into cs[t * head_dim / 2 + i] (rope.cuh), for the
// kernels below that rotate; the backend makes one table per step and (base, scale).
cudaError_t launch_rope_table(const int32_t* pos, int64_t T, int64_t head_dim, float base, float scale, float2* cs,
                              cudaStream_t s);
cudaError_t launch_rope(float* x, int64_t T, int64_t cols, int64_t head_dim, const float2* cs, cudaStream_t s);
cudaError_t launch_gelu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s);
cudaError_t launch_add(float* x, const float* y, int64_t n, cudaStream_t s);
cudaError_t launch_softcap(float* x, int64_t n, float cap, cudaStream_t s);
// The k (<= top_k_max()) largest values of each row among its first n columns, best first, ties by
// lower column: out [rows, 2k] = (value, column) (top_k.cu). k = 1 takes a multi-block argmax
// that needs `scratch` (rows 64-bit words; may be null for k > 1).
int top_k_max();
cudaError_t launch_top_k(const float* x, int64_t rows, int64_t cols, int64_t n, int k, float* out,
                         unsigned long long* scratch, cudaStream_t s);
// QK-norm of each head of q [T, nh*hd] and k [T, nkv*hd], then RoPE on both with the factors of
// launch_rope_table (norms.cu).
cudaError_t launch_qk_norm_rope(float* q, float* k, const float* q_w, const float* k_w, int64_t T, int64_t n_heads,
                                int64_t n_kv_heads, int64_t head_dim, float eps, const float2* cs, cudaStream_t s);
// x += rms_norm(o)·post_w; then h = rms_norm(x)·next_w when next_w is not null, and h quantized
// like launch_quantize_q8 into q, ds when q is not null (norms.cu). cols % 32 == 0, <= 8192.
cudaError_t launch_add_norm(float* x, const float* o, const float* post_w, const float* next_w, int64_t rows,
                            int64_t cols, float eps, float* h, int8_t* q, float* ds, cudaStream_t s);
bool add_norm_supports(int64_t cols);
// add_norm's threads per row: 0 (the default) the fewest of 128, 256, 512 that hold the row in two
// float4s per thread (the 270M's 640 values: 128; 1B's 1,152: 256; larger rows 512); 128, 256 or
// 512 ask for that many at least (a measurement setting, UNICORN_CUDA_ADD_NORM_THREADS).
void set_add_norm_threads(int threads);
cudaError_t launch_gather_rows(const float* x, int64_t cols, const int32_t* rows, int64_t n_rows, float* out,
                               cudaStream_t s);

// ---- attention (spec §2.4.4-2.4.7) --------------------------------------------------------------
// Batch metadata, int32 on the device: pos[T], seq[T], past[n_seq] (cached length of each slot),
// start[n_seq + 1] (slot s's rows are rows[start[s] .. start[s+1]-1]), rows[T] (batch rows
// grouped by slot, in position order), and per token: tok_past[T] (past[seq[i]]) and tok_last[T]
// (the last position of token i's slot in this batch), so that a decode kernel knows its key range
// and its ring slot from loads of its own token alone, with no second round through seq[i].
struct AttentionBatch {
  const int32_t* pos = nullptr;
  const int32_t* seq = nullptr;
  const int32_t* past = nullptr;
  const int32_t* start = nullptr;
  const int32_t* rows = nullptr;
  const int32_t* tok_past = nullptr;
  const int32_t* tok_last = nullptr;
  int64_t T = 0;
};

struct AttentionShape {
  int64_t n_heads = 0, n_kv_heads = 0, head_dim = 0;
  float scale = 0;
  int64_t window = 0;    // 0: global
  int64_t capacity = 0;  // ring positions per slot
  bool kv_f16 = true;
};

bool attention_supports_head_dim(int64_t head_dim);
// The fused f16 split attention pipelines its cached-key loads (on by default).
void set_attention_pipelined(bool on);
// Warps of the short-context decode attention's block for 256-wide heads over an f16 cache: 8
// (the default), 16 or 4 (a measurement setting, UNICORN_CUDA_SHORT_WARPS).
void set_short_attention_warps(int warps);
// Warps of the fused, pipelined split decode attention's block for 256-wide heads over an f16
// cache: 8 (the default) or 4 (a measurement setting, UNICORN_CUDA_SPLIT_WARPS).
void set_split_attention_warps(int warps);
// The same kernel on 8 warps with the split kernel's pipelined loop over the cached keys (on by
// default; UNICORN_CUDA_SHORT_PIPELINE=0 turns it off).
void set_short_attention_pipelined(bool on);
// out[T, nh*hd] from q[T, nh*hd] over the cache (k_cache/v_cache [n_seq, capacity, nkv*hd]) and
// this batch's k, v [T, nkv*hd]. n_split > 1 splits each row's keys over blocks and needs
// `partial` with T * n_heads * n_split * (head_dim + 2) floats; the kernel that merges the splits
// then also stores k, v into store_k_cache / store_v_cache (when not null, as launch_kv_store) and
// quantizes out like launch_quantize_q8 into q8, ds (when not null). With n_split == 1 and a store
// or q8 asked for, the short-context kernel (one block of 16 warps per head and token, with `qk`
// only) does both itself, so no second kernel runs: only for batches with one token per sequence
// (its store cannot hit a slot that another block still reads). With n_split == 1 and neither,
// the caller does both. With n_split > 1 and `merge_count` (T * n_heads ints, zero, and zero again
// after the kernel), the split kernel merges its own splits (the last block of each unit to
// finish) and no merge kernel runs: also only for batches of one token per sequence.
//
// With `qk` (q_w set), q and the batch's k are read raw and get the QK-norm and RoPE of
// launch_qk_norm_rope inside the kernel (each block normalizes its own q head and the new keys it
// reads); the normalized, rotated k rows go to qk.k_out [T, nkv*hd]: the merge stores those in
// the cache, and with n_split == 1 the caller's launch_kv_store must take k_out for k.
struct QkNormRope {
  const float* q_w = nullptr;  // [hd], 1 + w (spec §2.2)
  const float* k_w = nullptr;
  float eps = 0;
  const float2* cs = nullptr;  // the batch rows' RoPE factors (launch_rope_table)
  float* k_out = nullptr;
};
cudaError_t launch_attention(const float* q, const float* k, const float* v, const void* k_cache, const void* v_cache,
                             const AttentionBatch& b, const AttentionShape& a, int n_split, float* partial, float* out,
                             cudaStream_t s, void* store_k_cache = nullptr, void* store_v_cache = nullptr,
                             int8_t* q8 = nullptr, float* ds = nullptr, const QkNormRope& qk = {},
                             int* merge_count = nullptr);
// The decode attention on tensor cores where it fits (attention_decode.cuh): 0 off, 1 on for
// head_dim 128 (the default), 2 the same without its register cap, 3 on for head_dim 128 and 256
// (measurement settings).
void set_attention_decode_mma(int mode);
// The same for prompts, tiled (attention_prefill.cu): tiles[2 * t] = sequence slot, tiles[2 * t + 1]
// = index of the tile's first token among that slot's batch rows; a tile holds up to
// attention_prefill_tokens_per_tile() consecutive tokens of its slot.
bool attention_prefill_supports(const AttentionShape& a);
int attention_prefill_tokens_per_tile(const AttentionShape& a);
cudaError_t launch_attention_prefill(const float* q, const float* k, const float* v, const void* k_cache,
                                     const void* v_cache, const AttentionBatch& b, const AttentionShape& a,
                                     const int32_t* tiles, int n_tiles, float* out, cudaStream_t s);
// The same on tensor cores (attention_prefill_mma.cu: f16 operands, f32 accumulators, sm_80+),
// for f16 caches only; same tiles.
bool attention_prefill_mma_supports(const AttentionShape& a);
cudaError_t launch_attention_prefill_mma(const float* q, const float* k, const float* v, const void* k_cache,
                                         const void* v_cache, const AttentionBatch& b, const AttentionShape& a,
                                         const int32_t* tiles, int n_tiles, float* out, cudaStream_t s);
// Stores this batch's k, v rows into the ring at (seq, pos % capacity).
cudaError_t launch_kv_store(const float* k, const float* v, void* k_cache, void* v_cache, const AttentionBatch& b,
                            int64_t row, int64_t capacity, bool kv_f16, cudaStream_t s);

}  // namespace unicorn::cuda
