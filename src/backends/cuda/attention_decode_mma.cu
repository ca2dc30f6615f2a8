// Decode attention on tensor cores (f16 caches, fused QK-norm + RoPE, head_dim 128 or 256, query
// groups of at most 4 heads per kv head): one block of W warps per (kv head, token, split) serves
// the whole query group, so each K/V byte is read once per group, and each warp scores 16 cached
// keys per step with mma.sync.m16n8k16 (f16 operands, f32 accumulators) instead of one shuffle
// reduction per key (spec §2.4.4-2.4.7; the SIMT split kernel in attention.cu issued ~125
// instructions per key and warp, NOTES.md session 12).
//
// Per step of 16 keys, lane (g = lane / 4, t = lane % 4):
//   S = K Qᵀ (16 keys x 8 heads, the group's heads in columns 0..G-1, the rest zero): A is the
//     K tile, lane holding keys g and g + 8 at dimensions [t HD/4, (t + 1) HD/4) (16-byte loads);
//     the dot product's order of dimensions is free, so k-step s takes the lane's dimensions
//     t HD/4 + 4s .. 4s + 3 for its columns (2t, 2t + 1, 2t + 8, 2t + 9), and B (Qᵀ, prescaled by
//     scale·log2 e) is read the same way;
//   the online softmax per head in log2 units (the keys of a column sit in the 8 lanes of one t);
//   Oᵀ += Vᵀ Pᵀ (dimensions x heads): A is Vᵀ, lane holding keys 2t, 2t + 1, 2t + 8, 2t + 9 at
//     dimensions [g HD/8, (g + 1) HD/8) (16-byte loads), m-tile mt taking rows g HD/8 + 2mt (row g)
//     and + 1 (row g + 8), paired across keys with byte permutes; B (Pᵀ) comes from the S
//     fragments through shuffles.
// Q and P enter as f16 plus their f16 remainder (two mma each; K and V are f16 already), so the
// scores and P V come out as with f32 operands: f16 alone moved the tiny checkpoints' logits to
// 1.06e-3 of the CPU's (session 13).
// The batch's own keys (a decoding token: its own, in the last split) take the scalar fold of
// attention_decode.cuh in f32, one warp per query head. The block's states meet in shared memory
// and leave as the split's partial state for merge_heads (max in natural units; the last block of
// the (token, kv head) to finish merges, or attention.cu's merge_splits),
// or, with one split (Direct: the short context), as the output with its int8 copy and the k/v
// store, as attention.cu's short-context kernel writes them.
#include <cuda_fp16.h>

#include <atomic>
#include <cmath>

#include "backends/cuda/attention_decode.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/mma_f16.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kMmaWarps = 4;     // the split kernel's warps
constexpr int kDirectWarps = 8;  // the one-split (short-context) kernel's
constexpr int kMaxGroup = 4;     // query heads per kv head (Gemma 3: 2 or 4); at most kMmaWarps
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// N 16-byte words of an f16 cache row at p (zeros for a key past the range: the cache may hold
// anything there, and 0 * NaN would reach the output).
template <int N>
__device__ __forceinline__ void load_words(const __half* p, bool live, uint4* w) {
#pragma unroll
  for (int n = 0; n < N; ++n) w[n] = live ? reinterpret_cast<const uint4*>(p)[n] : make_uint4(0, 0, 0, 0);
}

__device__ __forceinline__ uint32_t word(const uint4* w, int i) {
  const uint4& x = w[i / 4];
  return i % 4 == 0 ? x.x : (i % 4 == 1 ? x.y : (i % 4 == 2 ? x.z : x.w));
}

// The K and V fragments of cached keys j0 .. j0 + 15 (those below end) for lane (g, t) of a warp:
// K rows g and g + 8 at dimensions [t HD/4, (t + 1) HD/4), V rows 2t, 2t + 1, 2t + 8, 2t + 9 at
// dimensions [g HD/8, (g + 1) HD/8) of kv head kvh.
template <int HD>
__device__ __forceinline__ void load_tile(int64_t j0, int64_t end, int64_t ring_lo, int64_t cache_seq, int64_t kv_row,
                                          int64_t kvh, int64_t capacity, const __half* k_cache, const __half* v_cache,
                                          int g, int t, uint4 (*kw)[HD / 32], uint4 (*vw)[HD / 64]) {
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int64_t j = j0 + g + 8 * h;
    const bool live = j < end;
    const int64_t off = live ? cached_offset(j, ring_lo, cache_seq, kv_row, kvh * HD + t * (HD / 4), capacity) : 0;
    load_words<HD / 32>(k_cache + off, live, kw[h]);
  }
#pragma unroll
  for (int u = 0; u < 4; ++u) {
    const int64_t j = j0 + 2 * t + (u % 2) + 8 * (u / 2);
    const bool live = j < end;
    const int64_t off = live ? cached_offset(j, ring_lo, cache_seq, kv_row, kvh * HD + g * (HD / 8), capacity) : 0;
    load_words<HD / 64>(v_cache + off, live, vw[u]);
  }
}

// MINB: blocks per SM the register allocation must allow (head_dim 128 with 4 warps: 4 gives 128
// registers without spills, 0 gives 162; head_dim 256 takes 250-252 either way). Direct: one
// split, whose block writes the normalized output, its int8 copy and the k/v store itself
// (MergeExtras, as attention.cu's short-context kernel).
template <int HD, int W, int MINB, bool Direct>
__global__ void __launch_bounds__(W * 32, MINB)
    attention_decode_mma(const float* q, const float* k, const float* v, const __half* k_cache, const __half* v_cache,
                         AttentionBatch b, AttentionShape a, float* partial, float* out, QkNormRope qk, MergeExtras e) {
  constexpr int D = HD / 32;   // the scalar path's values per lane
  constexpr int KW = HD / 32;  // 16-byte words of one K row per lane (HD/4 halves)
  constexpr int VW = HD / 64;  // 16-byte words of one V row per lane (HD/8 halves)
  constexpr int MT = HD / 16;  // m-tiles of Oᵀ, k-steps of S
  pdl_enter();
  __shared__ __align__(16) __half s_q[2][8][HD];  // Q as f16 and its f16 remainder (hi + lo)
  __shared__ float s_m[W + 1][kMaxGroup], s_l[W + 1][kMaxGroup];
  __shared__ float s_acc[W + 1][kMaxGroup][HD];
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int g = lane / 4, t = lane % 4;
  const int64_t kvh = blockIdx.x, i = blockIdx.y;
  const int split = static_cast<int>(blockIdx.z), n_split = static_cast<int>(gridDim.z);
  const int G = static_cast<int>(a.n_heads / a.n_kv_heads);
  const int64_t q_row = a.n_heads * HD, kv_row = a.n_kv_heads * HD;
  const int seq = b.seq[i];
  const KeyRange r = key_range(b, a.window, i);
  const int64_t j_begin = r.n * split / n_split, j_end = r.n * (split + 1) / n_split;
  const int64_t cache_seq = static_cast<int64_t>(seq) * a.capacity;
  const int64_t ring_lo = r.lo % a.capacity;
  // The warp's first step of cached keys is loaded first, so that its round trip overlaps the
  // query's normalization and the batch's keys.
  const int64_t cached_end = min(j_end, r.n_past);
  int64_t j0 = j_begin + 16 * warp;
  uint4 kw[2][KW], vw[4][VW];
  if (j0 < cached_end)
    load_tile<HD>(j0, cached_end, ring_lo, cache_seq, kv_row, kvh, a.capacity, k_cache, v_cache, g, t, kw, vw);

  // The group's queries, normalized and rotated (warp w: head kvh G + w), kept in f32 for the
  // batch's keys and in f16, prescaled to log2 units, for the tensor cores; rows G..7 are zero.
  float qv[D];
  if (warp < G) {
    load_f32<D>(q + i * q_row + (kvh * G + warp) * HD + lane * D, qv);
    norm_rope_warp<D>(qv, qk.q_w, qk.eps, qk.cs + i * (HD / 2), lane);
#pragma unroll
    for (int d = 0; d < D; ++d) {
      const float x = qv[d] * a.scale * kLog2e;
      const __half hi = __float2half_rn(x);
      s_q[0][warp][lane * D + d] = hi;
      s_q[1][warp][lane * D + d] = __float2half_rn(x - __half2float(hi));
    }
  }
  for (int x = G * HD + static_cast<int>(threadIdx.x); x < 8 * HD; x += W * 32)
    s_q[0][x / HD][x % HD] = s_q[1][x / HD][x % HD] = __half(0.0f);
  // Split 0 writes the kv head's normalized, rotated key for the merge's store (as attention.cu).
  if (split == 0 && warp == W - 1) {
    float kn[D];
    load_f32<D>(k + i * kv_row + kvh * HD + lane * D, kn);
    norm_rope_warp<D>(kn, qk.k_w, qk.eps, qk.cs + i * (HD / 2), lane);
#pragma unroll
    for (int d = 0; d < D; ++d) qk.k_out[i * kv_row + kvh * HD + lane * D + d] = kn[d];
    if constexpr (Direct) store_kv_head<D, true>(kn, v, e, i, kvh, kv_row, lane);
  }
  // The batch's keys of this split in f32, warp w for head w (its state in row W).
  if (warp < G) {
    float mb = -INFINITY, lb = 0.0f, accb[D];
#pragma unroll
    for (int d = 0; d < D; ++d) accb[d] = 0.0f;
    for (int64_t j = max(j_begin, r.n_past); j < j_end; ++j) {  // one key at a time: few registers
      const int64_t row = batch_key_row(j, r, b, i, seq);
      float kj[1][D], vj[1][D];
      load_f32<D>(k + row * kv_row + kvh * HD + lane * D, kj[0]);
      load_f32<D>(v + row * kv_row + kvh * HD + lane * D, vj[0]);
      norm_rope_warp<D>(kj[0], qk.k_w, qk.eps, qk.cs + row * (HD / 2), lane);
      fold_step<D, 1>(j, j_end, qv, kj, vj, a.scale, mb, lb, accb);
    }
    if (lane == 0) {
      s_m[W][warp] = mb;
      s_l[W][warp] = lb;
    }
#pragma unroll
    for (int d = 0; d < D; ++d) s_acc[W][warp][lane * D + d] = accb[d];
  }
  __syncthreads();
  // Qᵀ's B fragment of k-step s: this lane's head g at its dimensions t HD/4 + 4s .. 4s + 3, read
  // from shared memory where used (registers go to the K and V fragments).
  const uint32_t* qb = reinterpret_cast<const uint32_t*>(&s_q[0][g][t * (HD / 4)]);
  const uint32_t* qr = reinterpret_cast<const uint32_t*>(&s_q[1][g][t * (HD / 4)]);

  // Cached keys, 16 per warp and step; columns 2t and 2t + 1 of S and Oᵀ are this lane's heads.
  float m2[2] = {-INFINITY, -INFINITY}, l2[2] = {0.0f, 0.0f};
  float o[MT][4];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) o[mt][0] = o[mt][1] = o[mt][2] = o[mt][3] = 0.0f;
  for (; j0 < cached_end; j0 += 16 * W) {
    float s[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int ks = 0; ks < MT; ++ks) {
      const uint32_t a0 = word(kw[0], 2 * ks), a1 = word(kw[1], 2 * ks);
      const uint32_t a2 = word(kw[0], 2 * ks + 1), a3 = word(kw[1], 2 * ks + 1);
      mma_m16n8k16_f16(s, a0, a1, a2, a3, qb[2 * ks], qb[2 * ks + 1]);
      mma_m16n8k16_f16(s, a0, a1, a2, a3, qr[2 * ks], qr[2 * ks + 1]);  // Q's remainder: S as with f32 queries
    }
    // s[0], s[1]: key g, heads 2t, 2t + 1; s[2], s[3]: key g + 8.
    if (j0 + g >= cached_end) s[0] = s[1] = -INFINITY;
    if (j0 + g + 8 >= cached_end) s[2] = s[3] = -INFINITY;
    float p[4];
#pragma unroll
    for (int c = 0; c < 2; ++c) {
      float mx = fmaxf(s[c], s[c + 2]);
#pragma unroll
      for (int x = 4; x < 32; x *= 2) mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, x));
      const float m_new = fmaxf(m2[c], mx);  // finite: the step's first key is live
      const float corr = exp2f(m2[c] - m_new);
      p[c] = exp2f(s[c] - m_new);
      p[c + 2] = exp2f(s[c + 2] - m_new);
      l2[c] = l2[c] * corr + p[c] + p[c + 2];
      m2[c] = m_new;
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) o[mt][c] *= corr, o[mt][c + 2] *= corr;
    }
    // Pᵀ's B fragment: b0 = P[keys 2t, 2t + 1][head g], b1 = P[keys 2t + 8, 2t + 9][head g], from
    // the lanes (2t, g / 2) and (2t + 1, g / 2), half g % 2 of their (key, heads) pairs; P as f16
    // (b) and its f16 remainder (r), so that P V is as with f32 weights.
    uint32_t b[2], br[2];
    {
      const int src1 = 4 * (2 * t) + g / 2, src2 = src1 + 4;
      const uint32_t sel = g % 2 == 0 ? 0x5410u : 0x7632u;
#pragma unroll
      for (int h = 0; h < 2; ++h) {  // keys g (h = 0) and g + 8 of this lane, to keys 2t.. and 2t + 8..
        const __half2 ph = __floats2half2_rn(p[2 * h], p[2 * h + 1]);
        const float2 pf = __half22float2(ph);
        const uint32_t x = *reinterpret_cast<const uint32_t*>(&ph);
        const uint32_t xr = pack_half2(p[2 * h] - pf.x, p[2 * h + 1] - pf.y);
        b[h] = __byte_perm(__shfl_sync(0xFFFFFFFFu, x, src1), __shfl_sync(0xFFFFFFFFu, x, src2), sel);
        br[h] = __byte_perm(__shfl_sync(0xFFFFFFFFu, xr, src1), __shfl_sync(0xFFFFFFFFu, xr, src2), sel);
      }
    }
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      // Vᵀ rows g HD/8 + 2mt (low halves) and + 1 (high halves) against keys (2t, 2t + 1), (2t + 8, 2t + 9).
      const uint32_t v0 = word(vw[0], mt), v1 = word(vw[1], mt), v2 = word(vw[2], mt), v3 = word(vw[3], mt);
      const uint32_t a0 = __byte_perm(v0, v1, 0x5410u), a1 = __byte_perm(v0, v1, 0x7632u);
      const uint32_t a2 = __byte_perm(v2, v3, 0x5410u), a3 = __byte_perm(v2, v3, 0x7632u);
      mma_m16n8k16_f16(o[mt], a0, a1, a2, a3, b[0], b[1]);
      mma_m16n8k16_f16(o[mt], a0, a1, a2, a3, br[0], br[1]);
    }
    if (j0 + 16 * W < cached_end)
      load_tile<HD>(j0 + 16 * W, cached_end, ring_lo, cache_seq, kv_row, kvh, a.capacity, k_cache, v_cache, g, t, kw,
                    vw);
  }
  // The warp's state per head: l summed over the 8 lanes of a column, stored in natural units.
#pragma unroll
  for (int c = 0; c < 2; ++c)
#pragma unroll
    for (int x = 4; x < 32; x *= 2) l2[c] += __shfl_xor_sync(0xFFFFFFFFu, l2[c], x);
#pragma unroll
  for (int c = 0; c < 2; ++c) {
    const int head = 2 * t + c;
    if (head < G) {
      if (g == 0) {
        s_m[warp][head] = m2[c] * kLn2;
        s_l[warp][head] = l2[c];
      }
#pragma unroll
      for (int mt = 0; mt < MT; ++mt) {
        s_acc[warp][head][g * (HD / 8) + 2 * mt] = o[mt][c];
        s_acc[warp][head][g * (HD / 8) + 2 * mt + 1] = o[mt][c + 2];
      }
    }
  }
  __syncthreads();
  // The split's partial state per (head, dimension), as attention.cu's split kernel writes it, or
  // (Direct) the output. G HD % 32 == 0: a warp's lanes are all in this loop or all out of it, and
  // hold one 32-value block of one head (store_q8).
  for (int x = static_cast<int>(threadIdx.x); x < G * HD; x += W * 32) {
    const int head = x / HD, d = x % HD;
    float mx = -INFINITY;
#pragma unroll
    for (int w = 0; w <= W; ++w)
      if (s_l[w][head] > 0.0f) mx = fmaxf(mx, s_m[w][head]);
    float sum = 0.0f, acc = 0.0f;
#pragma unroll
    for (int w = 0; w <= W; ++w)
      if (s_l[w][head] > 0.0f) {
        const float f = expf(s_m[w][head] - mx);
        sum += s_l[w][head] * f;
        acc += s_acc[w][head][d] * f;
      }
    const int64_t h = kvh * G + head;
    store_result<Direct>(Direct, acc, mx, sum, d, i * q_row + h * HD + d,
                         ((i * a.n_heads + h) * n_split + split) * (HD + 2), out, partial, e);
  }
  // The last split block of (token i, kv head kvh) merges the group's heads (MergeExtras::count)
  // and stores the kv head, whose rotated key split 0 wrote above.
  if constexpr (!Direct)
    if (e.count && last_of_splits(e.count + i * a.n_kv_heads + kvh, n_split))
      merge_heads<true>(partial, a.n_heads, HD, n_split, i, kvh * G, G, kvh, out, e);
}

// 0 off; 1 on for head_dim 128 (4 blocks per SM); 2 the same without the register cap; 3 on for
// head_dim 128 and 256. 256-wide heads stay on the SIMT kernels by default: 12B Q4_0 on an H100
// (session 13) decoded 1.0 % slower at depth 4096 and 1.6 % slower at depth 0 with the tensor-core
// kernels (252 registers: 2 blocks of 4 warps per SM, or 8 blocks in all for its short context).
std::atomic<int> g_mma_decode{1};

}  // namespace

void set_attention_decode_mma(int mode) { g_mma_decode.store(mode); }

bool attention_decode_mma_fits(const AttentionShape& a) {
  const int mode = g_mma_decode.load(std::memory_order_relaxed);
  if (mode == 0 || !a.kv_f16 || (a.head_dim != 128 && (a.head_dim != 256 || mode != 3))) return false;
  if (a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0 || a.n_heads / a.n_kv_heads > kMaxGroup) return false;
  return sm80_or_later();
}

cudaError_t launch_attention_decode_mma(const float* q, const float* k, const float* v, const void* k_cache,
                                        const void* v_cache, const AttentionBatch& b, const AttentionShape& a,
                                        int n_split, float* partial, float* out, const QkNormRope& qk,
                                        const MergeExtras& e, cudaStream_t s) {
  // The caller checked attention_decode_mma_fits; what the launch itself relies on:
  if (n_split < 1 || !qk.q_w || (a.head_dim != 128 && a.head_dim != 256)) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(a.n_kv_heads), static_cast<unsigned>(b.T), static_cast<unsigned>(n_split));
  const auto* kc = static_cast<const __half*>(k_cache);
  const auto* vc = static_cast<const __half*>(v_cache);
  const bool capped = g_mma_decode.load(std::memory_order_relaxed) != 2;
  // The short context (one split): 8 warps, one step of 16 keys each below 128 positions.
  const dim3 block(static_cast<unsigned>((n_split == 1 ? kDirectWarps : kMmaWarps) * 32));
  if (a.head_dim == 128) {
    const auto kernel = n_split == 1 ? attention_decode_mma<128, kDirectWarps, 1, true>
                                     : (capped ? attention_decode_mma<128, kMmaWarps, 4, false>
                                               : attention_decode_mma<128, kMmaWarps, 0, false>);
    launch(kernel, grid, block, 0, s, q, k, v, kc, vc, b, a, partial, out, qk, e);
  } else {
    const auto kernel = n_split == 1 ? attention_decode_mma<256, kDirectWarps, 1, true>
                                     : (capped ? attention_decode_mma<256, kMmaWarps, 2, false>
                                               : attention_decode_mma<256, kMmaWarps, 0, false>);
    launch(kernel, grid, block, 0, s, q, k, v, kc, vc, b, a, partial, out, qk, e);
  }
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
