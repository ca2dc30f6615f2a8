// Attention of each (token, query head) over its slot's cached past plus this batch's own keys
// (spec §2.4.4-2.4.7), same key set as the CPU backend: keys lo .. past-1 from the ring (position
// p at p % capacity), keys max(past, lo) .. pos from the batch, lo = pos - window + 1 on sliding
// layers. One block of 4 warps (8 for 256-wide heads over an f16 cache) per (head, token, split);
// the warps take keys in turn, each lane holds head_dim/32 consecutive dimensions, scores are
// reduced across the warp and folded into an online softmax (running max, sum and weighted V).
// The warps' states are merged in shared memory; with several splits, partial states go to
// `partial` and the last block of each (token, head) to finish merges them (MergeExtras::count:
// one token per sequence), or else a second kernel does, so that one decoding token still spreads
// its keys over many blocks. With an f16 cache the fused kernel scores the cached keys in a loop
// of their own whose next step of loads is in flight during the current step's math
// (Pipelined), then the batch's own keys.
#include <cuda_fp16.h>

#include <atomic>
#include <cmath>
#include <type_traits>

#include "backends/cuda/act_quant.cuh"
#include "backends/cuda/attention_decode.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kShortWarps = 16;    // the short-context kernel's warps: 64 keys per step
constexpr int kShortWarps256 = 8;  // the same for 256-wide heads (launch_d)

// D consecutive f16 values of one lane as loaded (8, 4, 2 or 1 halves in one access), kept raw
// until used so that the next step's loads cost few registers (the pipelined key loop).
template <int D>
struct RawF16 {
  using Word = std::conditional_t<D == 8, uint4,
                                  std::conditional_t<D == 4, uint2, std::conditional_t<D == 2, uint32_t, uint16_t>>>;
  Word w;
};
template <int D>
__device__ __forceinline__ RawF16<D> load_raw_f16(const __half* p) {
  return {*reinterpret_cast<const typename RawF16<D>::Word*>(p)};
}
template <int D>
__device__ __forceinline__ float raw_at(const RawF16<D>& r, int d) {
  return __half2float(reinterpret_cast<const __half*>(&r.w)[d]);
}

// fold_keys over raw f16 keys and values, each half converted where it is used: no float copy of
// a step's K and V stays live beside the next step's loads (the 256-wide heads' split kernel
// held 208 registers with one: 2 blocks per SM; NOTES.md session 22). Keys past j_end come
// zeroed (issue_cached_step), so their weight 0 meets no NaN.
template <int D, int KK>
__device__ __forceinline__ void fold_step_raw(int64_t j0, int64_t j_end, const float* qv, const RawF16<D>* rk,
                                              const RawF16<D>* rv, float scale, float& m, float& l, float* acc) {
  fold_keys<D, KK>(
      j0, j_end, qv, [&](int u, int d) { return raw_at<D>(rk[u], d); },
      [&](int u, int d) { return raw_at<D>(rv[u], d); }, scale, m, l, acc);
}

// Issues the f16 K and V loads of cached keys j0 .. j0 + KK - 1 below j_end (<= n_past); the
// others are zeroed.
template <int D, int KK>
__device__ __forceinline__ void issue_cached_step(int64_t j0, int64_t j_end, int64_t ring_lo, int64_t cache_seq,
                                                  int64_t dim, int64_t kv_row, const void* k_cache, const void* v_cache,
                                                  int64_t capacity, RawF16<D>* rk, RawF16<D>* rv) {
#pragma unroll
  for (int u = 0; u < KK; ++u) {
    const int64_t j = j0 + u;
    if (j < j_end) {
      const int64_t off = cached_offset(j, ring_lo, cache_seq, kv_row, dim, capacity);
      rk[u] = load_raw_f16<D>(static_cast<const __half*>(k_cache) + off);
      rv[u] = load_raw_f16<D>(static_cast<const __half*>(v_cache) + off);
    } else {
      rk[u].w = {};
      rv[u].w = {};
    }
  }
}

// W warps per block: kWarps for the split kernel, kShortWarps for the short-context one (Direct:
// one split whose block also stores k, v and quantizes its output, MergeExtras e, so that no
// merge runs; only for batches of one token per sequence, whose stores cannot hit a slot that
// another block still reads).
template <int D, bool F16, bool Fused, int W = kWarps, bool Direct = false, bool Pipelined = false>
__global__ void __launch_bounds__(W * 32, Pipelined && !Direct ? 16 / W : 0)
    attention(const float* q, const float* k, const float* v, const void* k_cache, const void* v_cache,
              AttentionBatch b, AttentionShape a, float* partial, float* out, QkNormRope qk, MergeExtras e) {
  constexpr int HD = 32 * D;
  pdl_enter();
  __shared__ float s_m[W], s_l[W];
  __shared__ float s_acc[W][HD];
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int64_t h = blockIdx.x, i = blockIdx.y;
  const int split = static_cast<int>(blockIdx.z), n_split = static_cast<int>(gridDim.z);
  const int64_t q_row = a.n_heads * HD, kv_row = a.n_kv_heads * HD;
  // What depends on no earlier load is loaded first: the q head and, with Fused, the q_norm
  // weights and the token's RoPE factors, so that those loads overlap the batch metadata's (the
  // short kernel is latency-bound: NOTES.md session 21).
  float qv[D], nw[D];
  float2 rf[D];
  load_f32<D>(q + i * q_row + h * HD + lane * D, qv);
  if constexpr (Fused) {
    load_f32<D>(qk.q_w + lane * D, nw);
    load_rope_factors<D>(qk.cs + i * (HD / 2), lane, rf);
  }
  const int group = static_cast<int>(a.n_heads) / static_cast<int>(a.n_kv_heads);
  const int64_t kvh = static_cast<int>(h) / group;  // spec §2.4.6: contiguous groups
  const int seq = b.seq[i];
  const KeyRange r = key_range(b, a.window, i);
  const bool whole = Direct || n_split == 1;  // no division for one split
  const int64_t j_begin = whole ? 0 : r.n * split / n_split, j_end = whole ? r.n : r.n * (split + 1) / n_split;
  const int64_t cache_seq = static_cast<int64_t>(seq) * a.capacity;
  // Slot of position lo; later ones follow, wrapping once. lo < capacity needs no division.
  const int64_t ring_lo = r.lo < a.capacity ? r.lo : r.lo % a.capacity;
  const int64_t dim = kvh * HD + lane * D;
  const int64_t j_first = j_begin + warp * kKeys;  // this warp's first step

  if constexpr (Fused) {
    norm_rope_warp_pre<D>(qv, nw, rf, qk.eps, lane);
    load_f32<D>(qk.k_w + lane * D, nw);  // nw: k_norm's weights from here on (the token's own key)
    // (The split kernel reloads them with the RoPE factors for its own key, load_step's null kw:
    // they would cost it 24 registers through the cached keys.)
    // One block per (kv head, token) writes that head's normalized, rotated key for the store:
    // its last warp, whose first keys come last in a step (it has none in rows of at most
    // 4 * (W - 1) keys), so that this work stays off the critical path of short contexts.
    if (split == 0 && static_cast<int>(h) % group == 0 && warp == W - 1) {
      float kn[D];
      load_f32<D>(k + i * kv_row + kvh * HD + lane * D, kn);
      norm_rope_warp_pre<D>(kn, nw, rf, qk.eps, lane);
#pragma unroll
      for (int d = 0; d < D; ++d) qk.k_out[i * kv_row + kvh * HD + lane * D + d] = kn[d];
      if constexpr (Direct) store_kv_head<D, F16>(kn, v, e, i, kvh, kv_row, lane);
    }
  }
  float m = -INFINITY, l = 0.0f, acc[D];
#pragma unroll
  for (int d = 0; d < D; ++d) acc[d] = 0.0f;
  // Direct (short contexts: latency-bound) keeps the own key's k_norm weights and RoPE factors
  // loaded early; the split kernel reloads them for that one key (load_step's null kw).
  const float* const own_kw = Direct ? nw : nullptr;
  if constexpr (Pipelined) {
    // f16 caches: the cached keys first, the loads of a warp's next step issued before the
    // current step's math (raw halves converted where used: few registers), then this batch's
    // keys (a decoding token: its own) with the normalizing step below, the warps taking them in
    // turn again.
    const int64_t cached_end = min(j_end, r.n_past);
    RawF16<D> rk[kKeys], rv[kKeys];
    int64_t j0 = j_first;
    if (j0 < cached_end)
      issue_cached_step<D, kKeys>(j0, cached_end, ring_lo, cache_seq, dim, kv_row, k_cache, v_cache, a.capacity, rk,
                                  rv);
    for (; j0 < cached_end; j0 += W * kKeys) {
      RawF16<D> ck[kKeys], cv[kKeys];
#pragma unroll
      for (int u = 0; u < kKeys; ++u) ck[u] = rk[u], cv[u] = rv[u];
      const int64_t next = j0 + W * kKeys;
      if (next < cached_end)
        issue_cached_step<D, kKeys>(next, cached_end, ring_lo, cache_seq, dim, kv_row, k_cache, v_cache, a.capacity, rk,
                                    rv);
      fold_step_raw<D, kKeys>(j0, cached_end, qv, ck, cv, a.scale, m, l, acc);
    }
    // One key per warp per step: a decoding token has one (its own), and 4 would cost registers.
    for (int64_t jb = max(j_begin, r.n_past) + warp; jb < j_end; jb += W) {
      float kv[1][D], vv[1][D];
      load_step<D, F16, Fused, 1>(jb, j_end, r, ring_lo, cache_seq, dim, k_cache, v_cache, k, v, b, i, seq, a, qk, lane,
                                  own_kw, rf, kv, vv);
      fold_step<D, 1>(jb, j_end, qv, kv, vv, a.scale, m, l, acc);
    }
  } else {
    // kKeys keys per warp per step: their loads are independent and all in flight at once, and
    // the running state is rescaled once per step.
    for (int64_t j0 = j_first; j0 < j_end; j0 += W * kKeys) {
      float kv[kKeys][D], vv[kKeys][D];
      load_step<D, F16, Fused>(j0, j_end, r, ring_lo, cache_seq, dim, k_cache, v_cache, k, v, b, i, seq, a, qk, lane,
                               own_kw, rf, kv, vv);
      fold_step<D, kKeys>(j0, j_end, qv, kv, vv, a.scale, m, l, acc);
    }
  }
  if (lane == 0) {
    s_m[warp] = m;
    s_l[warp] = l;
  }
#pragma unroll
  for (int d = 0; d < D; ++d) s_acc[warp][lane * D + d] = acc[d];
  __syncthreads();
  float mx = -INFINITY;
#pragma unroll
  for (int w = 0; w < W; ++w) mx = fmaxf(mx, s_m[w]);
  float sum = 0.0f, f[W];
#pragma unroll
  for (int w = 0; w < W; ++w) {
    f[w] = s_l[w] > 0.0f ? expf(s_m[w] - mx) : 0.0f;  // a warp that saw no key contributes nothing
    sum += s_l[w] * f[w];
  }
  // HD % 32 == 0: a warp's threads are all in this loop or all out of it (quantize32_warp).
  for (int d = static_cast<int>(threadIdx.x); d < HD; d += W * 32) {
    float o = 0.0f;
#pragma unroll
    for (int w = 0; w < W; ++w) o += s_acc[w][d] * f[w];
    store_result<Direct>(n_split == 1, o, mx, sum, d, i * q_row + h * HD + d,
                         ((i * a.n_heads + h) * n_split + split) * (HD + 2), out, partial, e);
  }
  // The last split block of (token i, head h) merges them (MergeExtras::count); the first head of
  // each group stores its kv head, whose rotated key split 0 of that head wrote above.
  if constexpr (!Direct)
    if (e.count && n_split > 1 && last_of_splits(e.count + i * a.n_heads + h, n_split))
      merge_heads<F16>(partial, a.n_heads, HD, n_split, i, h, 1, static_cast<int>(h) % group == 0 ? kvh : -1, out, e);
}

// Merges the splits' (max, sum, weighted V) states of one (head, token) in one round of loads
// (merge_heads): each thread reads every split's (max, sum) with its dimension's weighted V, 16
// splits at a time, no shared memory, no barrier. (Session 10, H100: 27B Q4_0 tg128 +0.4 %,
// +0.7 % at depth 4096, against the earlier merge, which read the splits' (max, sum) first and
// their values after a barrier.) Block (head h, token i) with h < n_kv_heads also stores kv head h
// of token i.
template <bool F16>
__global__ void merge_splits(const float* partial, int64_t n_heads, int64_t head_dim, int n_split, float* out,
                             MergeExtras e) {
  pdl_enter();
  const int64_t h = blockIdx.x, i = blockIdx.y;
  merge_heads<F16>(partial, n_heads, head_dim, n_split, i, h, 1, h < e.n_kv_heads ? h : -1, out, e);
}

template <bool F16>
__global__ void kv_store(const float* k, const float* v, void* k_cache, void* v_cache, AttentionBatch b, int64_t row,
                         int64_t capacity) {
  pdl_enter();
  store_kv_columns<F16>(k, v, k_cache, v_cache, b, blockIdx.x, row, capacity, 0, row);
}

// The fused f16 split kernel scores the cached keys in a loop of their own that issues a warp's
// next step of loads before the current step's math (NOTES.md session 12, H100, 27B Q4_0 tg64 at
// depth 4096: 134.1 against 127.5 tok/s, +5.2 %). UNICORN_CUDA_ATTN_PIPELINE=0 turns it off.
std::atomic<bool> g_pipelined{true};
std::atomic<int> g_short_warps{kShortWarps256};  // set_short_attention_warps
std::atomic<bool> g_short_pipelined{true};       // set_short_attention_pipelined
std::atomic<int> g_split_warps256{8};            // set_split_attention_warps

template <int D>
void launch_d(const float* q, const float* k, const float* v, const void* kc, const void* vc, const AttentionBatch& b,
              const AttentionShape& a, int n_split, float* partial, float* out, const QkNormRope& qk,
              const MergeExtras& e, bool direct, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>(a.n_heads), static_cast<unsigned>(b.T), static_cast<unsigned>(n_split));
  const dim3 block(kWarps * 32);
  // The fused form is its own instantiation: its norm and RoPE code costs registers that the
  // plain kernel should not carry.
  if (direct) {  // fused only (launch_attention checks)
    // 256-wide heads (every Gemma 3 but 27B) take kShortWarps256 warps: 16 would spill under the
    // 128 registers that 512 threads leave (NOTES.md session 21); 4 and 16 are measurement
    // settings for f16 caches (set_short_attention_warps). On 8 warps over an f16 cache the cached
    // keys take the split kernel's pipelined loop (set_short_attention_pipelined; H200, Q4_0 tg128:
    // 270M +3.5 %, 1B +2.5 %, 4B +2.3 %, 12B +4.7 %).
    if constexpr (D == 8) {
      // set_short_attention_warps keeps 4, 8 (kShortWarps256) or 16.
      const int w = a.kv_f16 ? g_short_warps.load(std::memory_order_relaxed) : kShortWarps256;
      const bool pipelined = g_short_pipelined.load(std::memory_order_relaxed);
      auto* const kernel = !a.kv_f16   ? attention<D, false, true, kShortWarps256, true>
                           : w == 4    ? attention<D, true, true, 4, true>
                           : w == 16   ? attention<D, true, true, 16, true>
                           : pipelined ? attention<D, true, true, kShortWarps256, true, true>
                                       : attention<D, true, true, kShortWarps256, true>;
      launch(kernel, grid, dim3(w * 32), 0, s, q, k, v, kc, vc, b, a, partial, out, qk, e);
    } else {
      const dim3 short_block(kShortWarps * 32);
      if (a.kv_f16)
        launch(attention<D, true, true, kShortWarps, true>, grid, short_block, 0, s, q, k, v, kc, vc, b, a, partial,
               out, qk, e);
      else
        launch(attention<D, false, true, kShortWarps, true>, grid, short_block, 0, s, q, k, v, kc, vc, b, a, partial,
               out, qk, e);
    }
  } else if (qk.q_w) {
    const bool pipelined = a.kv_f16 && g_pipelined.load(std::memory_order_relaxed);
    auto* kernel = pipelined  ? attention<D, true, true, kWarps, false, true>
                   : a.kv_f16 ? attention<D, true, true>
                              : attention<D, false, true>;
    int warps = kWarps;
    // 256-wide heads take 8 warps per split block (set_split_attention_warps; 4 a measurement
    // setting): the same keys in half the steps per warp, 2 blocks per SM instead of 4. H200, tg64
    // at depth 4096 against 4 warps: 270M +7.3 %, 1B +7.8 %, 4B +5.4 %, 12B +0.7 % (NOTES.md
    // session 22).
    if constexpr (D == 8) {
      if (pipelined && g_split_warps256.load(std::memory_order_relaxed) == 8) {
        kernel = attention<D, true, true, 8, false, true>;
        warps = 8;
      }
    }
    launch(kernel, grid, dim3(warps * 32), 0, s, q, k, v, kc, vc, b, a, partial, out, qk, e);
  } else if (a.kv_f16) {
    launch(attention<D, true, false>, grid, block, 0, s, q, k, v, kc, vc, b, a, partial, out, qk, e);
  } else {
    launch(attention<D, false, false>, grid, block, 0, s, q, k, v, kc, vc, b, a, partial, out, qk, e);
  }
}

// The SIMT kernels for a head size (launch_d's D = head_dim / 32); launch errors surface through
// launch_attention's cudaGetLastError.
cudaError_t launch_simt(const float* q, const float* k, const float* v, const void* kc, const void* vc,
                        const AttentionBatch& b, const AttentionShape& a, int n_split, float* partial, float* out,
                        const QkNormRope& qk, const MergeExtras& e, bool direct, cudaStream_t s) {
  auto* const run = a.head_dim == 32    ? launch_d<1>
                    : a.head_dim == 64  ? launch_d<2>
                    : a.head_dim == 128 ? launch_d<4>
                    : a.head_dim == 256 ? launch_d<8>
                                        : nullptr;
  if (!run) return cudaErrorNotSupported;
  run(q, k, v, kc, vc, b, a, n_split, partial, out, qk, e, direct, s);
  return cudaSuccess;
}

}  // namespace

void set_attention_pipelined(bool on) { g_pipelined.store(on); }
void set_short_attention_pipelined(bool on) { g_short_pipelined.store(on); }
void set_short_attention_warps(int warps) { g_short_warps.store(warps == 4 || warps == 16 ? warps : kShortWarps256); }
void set_split_attention_warps(int warps) { g_split_warps256.store(warps == kWarps ? kWarps : 8); }

bool attention_supports_head_dim(int64_t hd) { return hd == 32 || hd == 64 || hd == 128 || hd == 256; }

cudaError_t launch_attention(const float* q, const float* k, const float* v, const void* k_cache, const void* v_cache,
                             const AttentionBatch& b, const AttentionShape& a, int n_split, float* partial, float* out,
                             cudaStream_t s, void* store_k_cache, void* store_v_cache, int8_t* q8, float* ds,
                             const QkNormRope& qk, int* merge_count) {
  if (b.T == 0) return cudaSuccess;
  if (q8 && a.head_dim % 32 != 0) return cudaErrorInvalidValue;  // its blocks would straddle heads
  if (qk.q_w && (!qk.k_w || !qk.k_out || !qk.cs || a.n_heads % a.n_kv_heads != 0)) return cudaErrorInvalidValue;
  MergeExtras e;
  e.k = qk.q_w ? qk.k_out : k, e.v = v, e.k_cache = store_k_cache, e.v_cache = store_v_cache, e.b = b;
  e.n_kv_heads = a.n_kv_heads, e.capacity = a.capacity, e.q8 = q8, e.ds = ds;
  e.count = n_split > 1 ? merge_count : nullptr;
  // One split with a store or a quantized copy asked for: the short-context kernel does both.
  const bool direct = n_split == 1 && (store_k_cache || q8);
  if (direct && !qk.q_w) return cudaErrorInvalidValue;
  const bool tensor_cores = (n_split > 1 || direct) && qk.q_w && attention_decode_mma_fits(a);
  if (const cudaError_t err =
          tensor_cores ? launch_attention_decode_mma(q, k, v, k_cache, v_cache, b, a, n_split, partial, out, qk, e, s)
                       : launch_simt(q, k, v, k_cache, v_cache, b, a, n_split, partial, out, qk, e, direct, s);
      err != cudaSuccess)
    return err;
  if (n_split > 1 && !e.count) {
    const dim3 grid(static_cast<unsigned>(a.n_heads), static_cast<unsigned>(b.T));
    launch(a.kv_f16 ? merge_splits<true> : merge_splits<false>, grid, dim3(128), 0, s, partial, a.n_heads, a.head_dim,
           n_split, out, e);
  }
  return cudaGetLastError();
}

cudaError_t launch_kv_store(const float* k, const float* v, void* k_cache, void* v_cache, const AttentionBatch& b,
                            int64_t row, int64_t capacity, bool kv_f16, cudaStream_t s) {
  if (b.T == 0) return cudaSuccess;
  if (kv_f16)
    launch(kv_store<true>, dim3(static_cast<unsigned>(b.T)), dim3(128), 0, s, k, v, k_cache, v_cache, b, row, capacity);
  else
    launch(kv_store<false>, dim3(static_cast<unsigned>(b.T)), dim3(128), 0, s, k, v, k_cache, v_cache, b, row,
           capacity);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
