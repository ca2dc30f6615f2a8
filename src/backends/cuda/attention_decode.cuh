// Device helpers of the decode attention kernels (attention.cu: the SIMT split and short-context
// kernels; attention_decode_mma.cu: the tensor-core split kernel): a token's key range, where a
// cached key sits in its ring, the fused QK-norm + RoPE of one head vector held by a warp, and the
// scalar per-warp online softmax step (spec §2.4.4-2.4.7).
#pragma once
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "backends/cuda/act_quant.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/rope.cuh"

namespace unicorn::cuda {

constexpr int kKeys = 4;  // keys a warp scores per step (scalar kernels)

// D consecutive values per lane, loaded with the widest aligned accesses (D * 4 or D * 2 bytes).
template <int D>
__device__ __forceinline__ void load_f32(const float* p, float* v) {
  if constexpr (D % 4 == 0) {
#pragma unroll
    for (int i = 0; i < D; i += 4) {
      const float4 a = *reinterpret_cast<const float4*>(p + i);
      v[i] = a.x, v[i + 1] = a.y, v[i + 2] = a.z, v[i + 3] = a.w;
    }
  } else {
#pragma unroll
    for (int i = 0; i < D; ++i) v[i] = p[i];
  }
}

template <int D>
__device__ __forceinline__ void load_f16(const __half* p, float* v) {
  if constexpr (D % 2 == 0) {
    __half2 h[D / 2];
    if constexpr (D == 8) {
      *reinterpret_cast<uint4*>(h) = *reinterpret_cast<const uint4*>(p);
    } else if constexpr (D == 4) {
      *reinterpret_cast<uint2*>(h) = *reinterpret_cast<const uint2*>(p);
    } else {
      h[0] = *reinterpret_cast<const __half2*>(p);
    }
#pragma unroll
    for (int i = 0; i < D / 2; ++i) {
      const float2 f = __half22float2(h[i]);
      v[2 * i] = f.x, v[2 * i + 1] = f.y;
    }
  } else {
#pragma unroll
    for (int i = 0; i < D; ++i) v[i] = __half2float(p[i]);
  }
}

template <int D, bool F16>
__device__ __forceinline__ void load_cached(const void* base, int64_t off, float* v) {
  if constexpr (F16) {
    load_f16<D>(static_cast<const __half*>(base) + off, v);
  } else {
    load_f32<D>(static_cast<const float*>(base) + off, v);
  }
}

struct KeyRange {
  int64_t lo, n_past, n, first_new;  // n_past cached keys from lo, then batch keys from first_new
  int64_t pos, past;                 // the token's position and its slot's cached length
};

// From the token's own metadata (tok_past: one round of loads, no seq[i] -> past[seq] chain).
__device__ __forceinline__ KeyRange key_range(const AttentionBatch& b, int64_t window, int64_t i) {
  const int64_t pos = b.pos[i];
  const int64_t past = b.tok_past[i];
  KeyRange r;
  r.pos = pos, r.past = past;
  r.lo = window > 0 ? max(int64_t{0}, pos - window + 1) : 0;
  r.n_past = max(int64_t{0}, past - r.lo);
  r.first_new = max(past, r.lo);
  r.n = r.n_past + (pos - r.first_new + 1);
  return r;
}

// The RoPE factors a lane needs for its D values of a head (norm_rope_warp_pre): pair (i, i + hd/2)
// of dimension i = (lane % 16) * D + d takes cs[i] (rope.cuh), D consecutive float2s.
template <int D>
__device__ __forceinline__ void load_rope_factors(const float2* cs, int lane, float2* f) {
  const float2* p = cs + (lane % 16) * D;
  if constexpr (D % 2 == 0) {
#pragma unroll
    for (int d = 0; d < D; d += 2) {
      const float4 a = *reinterpret_cast<const float4*>(p + d);
      f[d] = make_float2(a.x, a.y), f[d + 1] = make_float2(a.z, a.w);
    }
  } else {
#pragma unroll
    for (int d = 0; d < D; ++d) f[d] = p[d];
  }
}

// QK-norm and RoPE of one head vector held by a warp, D consecutive values per lane (spec
// §2.4.2-2.4.3), with launch_qk_norm_rope's formulas: the sum of squares in double (summed in
// another order, so inv may differ in the last bit), y = x * inv * w rounded to f32, then NeoX
// pairs (i, i + hd/2) rotated by rope.cuh's factors; lane l's partner half sits in lane l ^ 16.
// The lane's norm weights wv and RoPE factors f come loaded (load_f32, load_rope_factors), so that
// a kernel can issue those loads before anything it waits on.
template <int D>
__device__ __forceinline__ void norm_rope_warp_pre(float* v, const float* wv, const float2* f, float eps, int lane) {
  constexpr int HD = 32 * D;
  double ss = 0.0;
#pragma unroll
  for (int d = 0; d < D; ++d) ss += static_cast<double>(v[d]) * v[d];
#pragma unroll
  for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
  const float inv = 1.0f / sqrtf(static_cast<float>(ss / HD) + eps);
#pragma unroll
  for (int d = 0; d < D; ++d) v[d] = v[d] * inv * wv[d];
  const bool first = lane < 16;
#pragma unroll
  for (int d = 0; d < D; ++d) {
    const float other = __shfl_xor_sync(0xFFFFFFFFu, v[d], 16);
    float a = first ? v[d] : other, b = first ? other : v[d];
    rotate(a, b, f[d].x, f[d].y);
    v[d] = first ? a : b;
  }
}

// The same, loading the lane's weights from w and factors from cs.
template <int D>
__device__ __forceinline__ void norm_rope_warp(float* v, const float* w, float eps, const float2* cs, int lane) {
  float wv[D];
  float2 f[D];
  load_f32<D>(w + lane * D, wv);
  load_rope_factors<D>(cs, lane, f);
  norm_rope_warp_pre<D>(v, wv, f, eps, lane);
}

// Where this lane's values of cached key j (j < n_past <= capacity) sit in the K and V caches:
// position lo + j is in ring slot (ring_lo + j) % capacity of the sequence's ring.
__device__ __forceinline__ int64_t cached_offset(int64_t j, int64_t ring_lo, int64_t cache_seq, int64_t kv_row,
                                                 int64_t dim, int64_t capacity) {
  int64_t slot = ring_lo + j;
  if (slot >= capacity) slot -= capacity;
  return (cache_seq + slot) * kv_row + dim;
}

// The batch row of batch key j (j >= n_past) of token i of slot seq. The token's own key is its
// own row (a decoding token's only batch key): no lookup.
__device__ __forceinline__ int64_t batch_key_row(int64_t j, const KeyRange& r, const AttentionBatch& b, int64_t i,
                                                 int seq) {
  const int64_t pj = r.first_new + (j - r.n_past);
  return pj == r.pos ? i : b.rows[b.start[seq] + (pj - r.past)];
}

// The K and V values of keys j0 .. j0 + KK - 1 of this lane (zero past j_end): cached ones
// from the ring, this batch's own from k and v (normalized and rotated first with Fused; the
// token's own key, row i, with the lane's k_norm weights kw and the token's RoPE factors rf as
// the caller loaded them, or loaded here where kw is null: the split kernel, whose registers
// should not hold them through its cached keys).
template <int D, bool F16, bool Fused, int KK = kKeys>
__device__ __forceinline__ void load_step(int64_t j0, int64_t j_end, const KeyRange& r, int64_t ring_lo,
                                          int64_t cache_seq, int64_t dim, const void* k_cache, const void* v_cache,
                                          const float* k, const float* v, const AttentionBatch& b, int64_t i, int seq,
                                          const AttentionShape& a, const QkNormRope& qk, int lane, const float* kw,
                                          const float2* rf, float (*kv)[D], float (*vv)[D]) {
  constexpr int HD = 32 * D;
  const int64_t kv_row = a.n_kv_heads * HD;
#pragma unroll
  for (int u = 0; u < KK; ++u) {
    const int64_t j = j0 + u;
    if (j >= j_end) {
#pragma unroll
      for (int d = 0; d < D; ++d) kv[u][d] = vv[u][d] = 0.0f;
    } else if (j < r.n_past) {
      const int64_t off = cached_offset(j, ring_lo, cache_seq, kv_row, dim, a.capacity);
      load_cached<D, F16>(k_cache, off, kv[u]);
      load_cached<D, F16>(v_cache, off, vv[u]);
    } else {
      const int64_t row = batch_key_row(j, r, b, i, seq);
      load_f32<D>(k + row * kv_row + dim, kv[u]);
      load_f32<D>(v + row * kv_row + dim, vv[u]);
      if constexpr (Fused) {
        if (row == i && kw)
          norm_rope_warp_pre<D>(kv[u], kw, rf, qk.eps, lane);
        else
          norm_rope_warp<D>(kv[u], qk.k_w, qk.eps, qk.cs + row * (HD / 2), lane);
      }
    }
  }
}

// Folds keys j0 .. j0 + KK - 1 (those below j_end) into the warp's online softmax state (running
// max m, sum l, weighted V acc): scores reduced across the warp, the state rescaled once per step.
// Key u's K and V values at this lane's dimension d come from k_at(u, d) and v_at(u, d), so that
// a caller may keep them in any form (fold_step: floats; attention.cu's pipelined loop: raw
// halves converted where used). Keys past j_end must read as finite values (their weight is 0).
template <int D, int KK, class KAt, class VAt>
__device__ __forceinline__ void fold_keys(int64_t j0, int64_t j_end, const float* qv, KAt k_at, VAt v_at, float scale,
                                          float& m, float& l, float* acc) {
  float s[KK];
#pragma unroll
  for (int u = 0; u < KK; ++u) {
    s[u] = 0.0f;
#pragma unroll
    for (int d = 0; d < D; ++d) s[u] += qv[d] * k_at(u, d);
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2)
#pragma unroll
    for (int u = 0; u < KK; ++u) s[u] += __shfl_xor_sync(0xFFFFFFFFu, s[u], o);
  float m_new = m;
#pragma unroll
  for (int u = 0; u < KK; ++u) {
    s[u] = j0 + u < j_end ? s[u] * scale : -INFINITY;
    m_new = fmaxf(m_new, s[u]);
  }
  const float corr = expf(m - m_new);  // 0 on the first step (m = -inf)
  l *= corr;
#pragma unroll
  for (int d = 0; d < D; ++d) acc[d] *= corr;
#pragma unroll
  for (int u = 0; u < KK; ++u) {
    const float p = expf(s[u] - m_new);  // 0 for keys past the end
    l += p;
#pragma unroll
    for (int d = 0; d < D; ++d) acc[d] += p * v_at(u, d);
  }
  m = m_new;
}

// fold_keys over keys held as floats, kv[u][d] and vv[u][d].
template <int D, int KK>
__device__ __forceinline__ void fold_step(int64_t j0, int64_t j_end, const float* qv, const float (*kv)[D],
                                          const float (*vv)[D], float scale, float& m, float& l, float* acc) {
  fold_keys<D, KK>(
      j0, j_end, qv, [&](int u, int d) { return kv[u][d]; }, [&](int u, int d) { return vv[u][d]; }, scale, m, l, acc);
}

// The cache row that batch row i's k, v go to (slot * row_values), or -1 where a later position
// of the same chunk takes the ring slot (a chunk longer than the ring; the later one wins, as on
// the CPU).
__device__ __forceinline__ int64_t kv_slot(const AttentionBatch& b, int64_t i, int64_t capacity) {
  if (b.pos[i] + capacity <= b.tok_last[i]) return -1;
  return static_cast<int64_t>(b.seq[i]) * capacity + b.pos[i] % capacity;
}

// One k and one v value into the caches at index at (f16 rounded to nearest, or f32).
template <bool F16>
__device__ __forceinline__ void store_kv_value(void* k_cache, void* v_cache, int64_t at, float k, float v) {
  if constexpr (F16) {
    static_cast<__half*>(k_cache)[at] = __float2half_rn(k);
    static_cast<__half*>(v_cache)[at] = __float2half_rn(v);
  } else {
    static_cast<float*>(k_cache)[at] = k;
    static_cast<float*>(v_cache)[at] = v;
  }
}

// Output value o of flat index at, quantized like launch_quantize_q8 into q8, ds: every lane of
// the warp calls it, each holding one value of a 32-value block (quantize32_warp).
__device__ __forceinline__ void store_q8(float o, int64_t at, int8_t* q8, float* ds) {
  float2 d;
  q8[at] = static_cast<int8_t>(quantize32_warp(o, d));
  if (threadIdx.x % 32 == 0) reinterpret_cast<float2*>(ds)[at / 32] = d;
}

// What the merge also does once every split has read the cache (MergeExtras): store this batch's
// k, v rows into the ring (each block (head h, token i) with h < n_kv_heads stores kv head h of
// token i), and quantize the output for the o matvec like launch_quantize_q8 (each warp holds one
// 32-value block of the head's output). The short-context attention (one split, no merge) does
// both itself, with the same fields.
struct MergeExtras {
  const float* k = nullptr;
  const float* v = nullptr;
  void* k_cache = nullptr;
  void* v_cache = nullptr;
  AttentionBatch b;
  int64_t n_kv_heads = 0, capacity = 0;
  int8_t* q8 = nullptr;
  float* ds = nullptr;
  // Non-null: the split kernel merges its own splits (no merge_splits launch). Each merge unit
  // (the SIMT kernel: a (token, head); the tensor-core kernel: a (token, kv head)) has a count
  // here, zero between launches; the last of the unit's split blocks to finish does the merge and
  // the k/v store, and zeroes the count. Only for batches of one token per sequence: the store
  // then cannot hit a slot that another block still reads (as for the short context).
  int* count = nullptr;
};

// Stores columns [c0, c1) of batch row i's k and v (rows of `row` values) into its slot's ring,
// the block's threads taking columns in turn (kv_store: the whole row; a merge: one kv head). k
// and v are read through L2 (__ldcg): a merging split block reads the k row that another block
// of its kernel wrote.
template <bool F16>
__device__ __forceinline__ void store_kv_columns(const float* k, const float* v, void* k_cache, void* v_cache,
                                                 const AttentionBatch& b, int64_t i, int64_t row, int64_t capacity,
                                                 int64_t c0, int64_t c1) {
  const int64_t slot = kv_slot(b, i, capacity);
  if (slot < 0) return;
  for (int64_t c = c0 + threadIdx.x; c < c1; c += blockDim.x)
    store_kv_value<F16>(k_cache, v_cache, slot * row + c, __ldcg(k + i * row + c), __ldcg(v + i * row + c));
}

// Dimension d of one (token, head) merged from its n_split partial states at p (each `stride`
// floats: max, sum, then the weighted values), 16 splits' loads in flight at a time and folded
// into a running (max, sum, value) like the attention's online softmax. Loads go through L2
// (__ldcg): a merging split block reads states that other blocks of its kernel wrote.
__device__ __forceinline__ float merge_dim(const float* p, int64_t stride, int n_split, int64_t d) {
  constexpr int kChunk = 16;
  float mx = -INFINITY, sum = 0.0f, o = 0.0f;
  for (int s0 = 0; s0 < n_split; s0 += kChunk) {
    float m[kChunk], l[kChunk], a[kChunk];
#pragma unroll
    for (int u = 0; u < kChunk; ++u) {
      const int s = s0 + u;
      l[u] = s < n_split ? __ldcg(p + s * stride + 1) : 0.0f;
      m[u] = s < n_split ? __ldcg(p + s * stride) : -INFINITY;
      a[u] = s < n_split ? __ldcg(p + s * stride + 2 + d) : 0.0f;
    }
    float m_new = mx;
#pragma unroll
    for (int u = 0; u < kChunk; ++u)
      if (l[u] > 0.0f) m_new = fmaxf(m_new, m[u]);  // a split that saw no key contributes nothing
    const float corr = mx == -INFINITY ? 0.0f : expf(mx - m_new);
    sum *= corr;
    o *= corr;
#pragma unroll
    for (int u = 0; u < kChunk; ++u)
      if (l[u] > 0.0f) {
        const float f = expf(m[u] - m_new);
        sum += l[u] * f;
        o += a[u] * f;
      }
    mx = m_new;
  }
  return o / sum;
}

// Heads h0 .. h0 + nh - 1 of token i merged from their split states by the block's threads
// (output, int8 copy), then kv head store_kvh's k/v stored when e.k_cache and store_kvh >= 0
// (merge_splits, and the split kernels that merge themselves). nh * head_dim % 32 == 0 and
// blockDim.x % 32 == 0: a warp's lanes are all in the loop or all out of it (store_q8).
template <bool F16>
__device__ __forceinline__ void merge_heads(const float* partial, int64_t n_heads, int64_t head_dim, int n_split,
                                            int64_t i, int64_t h0, int nh, int64_t store_kvh, float* out,
                                            const MergeExtras& e) {
  const int64_t stride = head_dim + 2, K = n_heads * head_dim;
  for (int64_t x = threadIdx.x; x < nh * head_dim; x += blockDim.x) {
    const int64_t h = h0 + x / head_dim, d = x % head_dim;
    const float o = merge_dim(partial + (i * n_heads + h) * n_split * stride, stride, n_split, d);
    out[i * K + h * head_dim + d] = o;
    if (e.q8) store_q8(o, i * K + h * head_dim + d, e.q8, e.ds);
  }
  if (e.k_cache && store_kvh >= 0)
    store_kv_columns<F16>(e.k, e.v, e.k_cache, e.v_cache, e.b, i, e.n_kv_heads * head_dim, e.capacity,
                          store_kvh * head_dim, (store_kvh + 1) * head_dim);
}

// A split block that merges in its kernel (MergeExtras::count), after it stored its partial
// state: whether it is the last of its unit's n_split blocks to finish (then the count is
// zeroed for the next launch, and the other blocks' states are visible to it). Every thread of
// the block calls it.
__device__ __forceinline__ bool last_of_splits(int* count, int n_split) {
  __shared__ int s_last;
  __threadfence();  // this thread's partial state, visible device-wide before the count moves
  __syncthreads();
  if (threadIdx.x == 0) {
    const int last = atomicAdd(count, 1) == n_split - 1;
    if (last) atomicExch(count, 0);
    s_last = last;
  }
  __syncthreads();
  const bool last = s_last != 0;
  if (last) __threadfence();
  return last;
}

// One dimension of a (token, head) row's attention result from its softmax state (acc: the
// dimension's weighted V sum, mx and sum: the max and sum of the exponentials). With one split
// (`whole`) the output acc / sum goes to out[out_at], and with Q8 its int8 copy for the o matvec
// (every lane of the warp calls it then: store_q8); else the split's partial state goes to
// partial[p_at...] for merge_splits: (max, sum) then the head_dim values, value d at 2 + d.
template <bool Q8>
__device__ __forceinline__ void store_result(bool whole, float acc, float mx, float sum, int d, int64_t out_at,
                                             int64_t p_at, float* out, float* partial, const MergeExtras& e) {
  if (whole) {
    const float o = acc / sum;
    out[out_at] = o;
    if constexpr (Q8)
      if (e.q8) store_q8(o, out_at, e.q8, e.ds);
  } else {
    float* p = partial + p_at;
    p[2 + d] = acc;
    if (d == 0) {
      p[0] = mx;
      p[1] = sum;
    }
  }
}

// Direct attention: the warp that normalized kv head kvh's key of token i (kn, D values per lane)
// stores it, with the head's v row, into token i's ring slot (as store_kv_columns would).
template <int D, bool F16>
__device__ __forceinline__ void store_kv_head(const float* kn, const float* v, const MergeExtras& e, int64_t i,
                                              int64_t kvh, int64_t kv_row, int lane) {
  if (!e.k_cache) return;
  const int64_t slot = kv_slot(e.b, i, e.capacity);
  if (slot < 0) return;
  const int64_t c = kvh * 32 * D + lane * D;
  float vv[D];
  load_f32<D>(v + i * kv_row + c, vv);
#pragma unroll
  for (int d = 0; d < D; ++d) store_kv_value<F16>(e.k_cache, e.v_cache, slot * kv_row + c + d, kn[d], vv[d]);
}

// The decode attention on tensor cores (attention_decode_mma.cu), which launch_attention takes
// where it fits (f16 caches, head_dim 128, or 256 where asked, at most 4 query heads per kv head,
// sm_80+, not turned off: set_attention_decode_mma) and QK-norm is fused (`qk`). One block per (kv head, token,
// split) serves the kv head's query group. n_split > 1 writes `partial` for merge_splits; n_split
// == 1 (direct) writes `out` and does the short-context kernel's extras `e` itself (k/v store,
// int8 copy of the output), for batches of one token per sequence.
bool attention_decode_mma_fits(const AttentionShape& a);
cudaError_t launch_attention_decode_mma(const float* q, const float* k, const float* v, const void* k_cache,
                                        const void* v_cache, const AttentionBatch& b, const AttentionShape& a,
                                        int n_split, float* partial, float* out, const QkNormRope& qk,
                                        const MergeExtras& e, cudaStream_t s);

}  // namespace unicorn::cuda
