// What the two prompt-attention kernels share (attention_prefill.cu on f32 SIMT,
// attention_prefill_mma.cu on tensor cores): the tile a block takes and where its queries, keys
// and values come from (spec §2.4.4-2.4.7). Block (kv head g, tile y) takes up to kQ consecutive
// tokens of one sequence with every query head of g's group: query vector m = token i * G + head j.
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/cuda/kernels.h"

namespace unicorn::cuda {

struct PromptTile {
  int64_t g;                   // kv head
  int seq, first, nq;          // slot, index of the tile's first token among its batch rows, tokens
  int64_t past, p0;            // the slot's cached length; position of the tile's first token
  int64_t tile_lo, tile_hi;    // the keys any of the tile's queries reads
  int64_t ring_lo, cache_seq;  // oldest position the ring holds; the slot's first ring row
  int64_t q_row, kv_row;       // floats per row of q and of k, v
  const int32_t* rows;         // the slot's batch rows, in position order
};

template <int HD>
__device__ __forceinline__ PromptTile prompt_tile(const AttentionBatch& b, const AttentionShape& a,
                                                  const int32_t* tiles, int kQ) {
  PromptTile t;
  t.g = blockIdx.x;
  t.seq = tiles[2 * blockIdx.y], t.first = tiles[2 * blockIdx.y + 1];
  t.past = b.past[t.seq];
  const int n_rows = b.start[t.seq + 1] - b.start[t.seq];
  t.nq = min(kQ, n_rows - t.first);
  t.p0 = t.past + t.first;
  t.tile_lo = a.window > 0 ? max(int64_t{0}, t.p0 - a.window + 1) : 0;
  t.tile_hi = t.p0 + t.nq - 1;
  t.ring_lo = max(int64_t{0}, t.past - a.capacity);
  t.cache_seq = static_cast<int64_t>(t.seq) * a.capacity;
  t.q_row = a.n_heads * HD, t.kv_row = a.n_kv_heads * HD;
  t.rows = b.rows + b.start[t.seq];
  return t;
}

// float4 d4 of query vector m, times the scale; zero for tokens past the tile's end.
template <int HD, int G>
__device__ __forceinline__ float4 prompt_query(const PromptTile& t, const float* q, const AttentionShape& a, int m,
                                               int d4) {
  const int i = m / G, j = m % G;
  float4 x = make_float4(0, 0, 0, 0);
  if (i < t.nq) {
    x = reinterpret_cast<const float4*>(q + t.rows[t.first + i] * t.q_row + (t.g * G + j) * HD)[d4];
    x.x *= a.scale, x.y *= a.scale, x.z *= a.scale, x.w *= a.scale;
  }
  return x;
}

// float4 d4 of key and value j of the tile's kv head: from the ring before this batch, from the
// batch's k, v after; zero past tile_hi and for positions the ring no longer holds (no query of
// the tile reads those).
template <int HD, bool F16>
__device__ __forceinline__ void prompt_key_value(const PromptTile& t, const AttentionShape& a, const float* k,
                                                 const float* v, const void* k_cache, const void* v_cache, int64_t j,
                                                 int d4, float4& kx, float4& vx) {
  kx = vx = make_float4(0, 0, 0, 0);
  if (j > t.tile_hi) return;
  if (j < t.past) {
    if (j < t.ring_lo) return;
    const int64_t off = (t.cache_seq + j % a.capacity) * t.kv_row + t.g * HD + 4 * d4;
    if constexpr (F16) {
      const __half2* kh = reinterpret_cast<const __half2*>(static_cast<const __half*>(k_cache) + off);
      const __half2* vh = reinterpret_cast<const __half2*>(static_cast<const __half*>(v_cache) + off);
      const float2 k0 = __half22float2(kh[0]), k1 = __half22float2(kh[1]);
      const float2 v0 = __half22float2(vh[0]), v1 = __half22float2(vh[1]);
      kx = make_float4(k0.x, k0.y, k1.x, k1.y);
      vx = make_float4(v0.x, v0.y, v1.x, v1.y);
    } else {
      kx = *reinterpret_cast<const float4*>(static_cast<const float*>(k_cache) + off);
      vx = *reinterpret_cast<const float4*>(static_cast<const float*>(v_cache) + off);
    }
  } else {
    const int64_t row = t.rows[j - t.past];
    kx = reinterpret_cast<const float4*>(k + row * t.kv_row + t.g * HD)[d4];
    vx = reinterpret_cast<const float4*>(v + row * t.kv_row + t.g * HD)[d4];
  }
}

}  // namespace unicorn::cuda
