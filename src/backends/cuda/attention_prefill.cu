// Attention for prompts (many tokens of a sequence at once), spec §2.4.4-2.4.7, with the same key
// set and the same online softmax as attention.cu, tiled so that keys and values are read once per
// tile of queries instead of once per (query, head).
//
// A block takes one kv head and a tile of kQ consecutive tokens of one sequence, with every query
// head of the kv head's group: M = 64 query vectors (kQ = 64 / group). Per step it loads 32 keys
// and values (from the cache ring for positions before this batch, from the batch's k, v after)
// into shared memory; a quad of 4 threads owns one query vector: it scores 8 keys per thread,
// folds the 32 scores into the running max and sum, and accumulates HD / 4 output dimensions per
// thread. f32 math throughout (no tensor cores yet).
#include <cuda_fp16.h>

#include <cmath>

#include "backends/cuda/attention_prompt.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kThreads = 256, kM = 64, kKeys = 32;
constexpr int kPs = kKeys + 1;  // row stride of the probabilities: the 8 quads of a warp read distinct banks

template <int HD>
constexpr int row_stride() {
  return HD + 4;  // float4 reads of 4 consecutive rows fall in distinct banks
}

template <int HD>
constexpr size_t smem_bytes() {
  return sizeof(float) * (static_cast<size_t>(kM) * row_stride<HD>() + 2 * kKeys * row_stride<HD>() + kM * kPs);
}

template <int HD, int G, bool F16>
__global__ void __launch_bounds__(kThreads)
    attention_prefill(const float* q, const float* k, const float* v, const void* k_cache, const void* v_cache,
                      AttentionBatch b, AttentionShape a, const int32_t* tiles, float* out) {
  constexpr int kQ = kM / G, S = row_stride<HD>(), D4 = HD / 16;  // float4s of output per thread
  extern __shared__ float4 smem4[];
  float* Qs = reinterpret_cast<float*>(smem4);
  float* Ks = Qs + kM * S;
  float* Vs = Ks + kKeys * S;
  float* Ps = Vs + kKeys * S;
  const int tid = static_cast<int>(threadIdx.x);
  const PromptTile t = prompt_tile<HD>(b, a, tiles, kQ);

  for (int e = tid; e < kM * (HD / 4); e += kThreads) {
    const int m = e / (HD / 4), d4 = e % (HD / 4);
    reinterpret_cast<float4*>(Qs + m * S)[d4] = prompt_query<HD, G>(t, q, a, m, d4);
  }
  const int m = tid / 4, lane4 = tid % 4;  // this quad's query vector, this thread's part
  const int64_t pos = t.p0 + m / G;
  const bool live = m / G < t.nq;
  const int64_t lo = a.window > 0 ? max(int64_t{0}, pos - a.window + 1) : 0;  // keys lo .. pos

  float m_run = -INFINITY, l_run = 0.0f;
  float4 acc[D4];
#pragma unroll
  for (int d = 0; d < D4; ++d) acc[d] = make_float4(0, 0, 0, 0);

  for (int64_t j0 = t.tile_lo; j0 <= t.tile_hi; j0 += kKeys) {
    __syncthreads();  // the previous step is done with Ks, Vs, Ps (and Qs is written)
    for (int e = tid; e < kKeys * (HD / 4); e += kThreads) {
      const int kk = e / (HD / 4), d4 = e % (HD / 4);
      float4 kx, vx;
      prompt_key_value<HD, F16>(t, a, k, v, k_cache, v_cache, j0 + kk, d4, kx, vx);
      reinterpret_cast<float4*>(Ks + kk * S)[d4] = kx;
      reinterpret_cast<float4*>(Vs + kk * S)[d4] = vx;
    }
    __syncthreads();
    // Scores of keys lane4 + 4u, u = 0..7.
    float s[8];
#pragma unroll
    for (int u = 0; u < 8; ++u) s[u] = 0.0f;
    const float4* qv = reinterpret_cast<const float4*>(Qs + m * S);
#pragma unroll 4
    for (int d4 = 0; d4 < HD / 4; ++d4) {
      const float4 x = qv[d4];
#pragma unroll
      for (int u = 0; u < 8; ++u) {
        const float4 y = reinterpret_cast<const float4*>(Ks + (lane4 + 4 * u) * S)[d4];
        s[u] += x.x * y.x + x.y * y.y + x.z * y.z + x.w * y.w;
      }
    }
    float mx = m_run;
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const int64_t j = j0 + lane4 + 4 * u;
      if (!live || j < lo || j > pos) s[u] = -INFINITY;
      mx = fmaxf(mx, s[u]);
    }
    mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, 1));
    mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, 2));
    // A query with no key yet in this step keeps mx = -inf: nothing to add.
    const float corr = mx == -INFINITY ? 1.0f : expf(m_run - mx);
    float sum = 0.0f;
#pragma unroll
    for (int u = 0; u < 8; ++u) {
      const float p = s[u] == -INFINITY ? 0.0f : expf(s[u] - mx);
      sum += p;
      Ps[m * kPs + lane4 + 4 * u] = p;
    }
    sum += __shfl_xor_sync(0xFFFFFFFFu, sum, 1);
    sum += __shfl_xor_sync(0xFFFFFFFFu, sum, 2);
    l_run = l_run * corr + sum;
    m_run = mx;
    __syncwarp();  // the quad's P values are in Ps
#pragma unroll
    for (int d = 0; d < D4; ++d) acc[d].x *= corr, acc[d].y *= corr, acc[d].z *= corr, acc[d].w *= corr;
    for (int kk = 0; kk < kKeys; ++kk) {
      const float p = Ps[m * kPs + kk];
      const float4* vr = reinterpret_cast<const float4*>(Vs + kk * S);
#pragma unroll
      for (int d = 0; d < D4; ++d) {
        const float4 y = vr[lane4 + 4 * d];
        acc[d].x += p * y.x, acc[d].y += p * y.y, acc[d].z += p * y.z, acc[d].w += p * y.w;
      }
    }
  }
  if (!live) return;
  const float inv = 1.0f / l_run;
  float4* o = reinterpret_cast<float4*>(out + t.rows[t.first + m / G] * t.q_row + (t.g * G + m % G) * HD);
#pragma unroll
  for (int d = 0; d < D4; ++d)
    o[lane4 + 4 * d] = make_float4(acc[d].x * inv, acc[d].y * inv, acc[d].z * inv, acc[d].w * inv);
}

template <int HD, int G, bool F16>
cudaError_t launch_hg(const float* q, const float* k, const float* v, const void* kc, const void* vc,
                      const AttentionBatch& b, const AttentionShape& a, const int32_t* tiles, int n_tiles, float* out,
                      cudaStream_t s) {
  constexpr size_t bytes = smem_bytes<HD>();
  if (const cudaError_t e = allow_dynamic_smem<attention_prefill<HD, G, F16>>(bytes); e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(a.n_kv_heads), static_cast<unsigned>(n_tiles));
  attention_prefill<HD, G, F16><<<grid, kThreads, bytes, s>>>(q, k, v, kc, vc, b, a, tiles, out);
  return cudaGetLastError();
}

template <int HD, bool F16>
cudaError_t launch_h(int G, const float* q, const float* k, const float* v, const void* kc, const void* vc,
                     const AttentionBatch& b, const AttentionShape& a, const int32_t* tiles, int n_tiles, float* out,
                     cudaStream_t s) {
  switch (G) {
    case 1:
      return launch_hg<HD, 1, F16>(q, k, v, kc, vc, b, a, tiles, n_tiles, out, s);
    case 2:
      return launch_hg<HD, 2, F16>(q, k, v, kc, vc, b, a, tiles, n_tiles, out, s);
    case 4:
      return launch_hg<HD, 4, F16>(q, k, v, kc, vc, b, a, tiles, n_tiles, out, s);
    case 8:
      return launch_hg<HD, 8, F16>(q, k, v, kc, vc, b, a, tiles, n_tiles, out, s);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace

bool attention_prefill_supports(const AttentionShape& a) {
  if (a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0) return false;
  const int64_t G = a.n_heads / a.n_kv_heads;
  return (a.head_dim == 128 || a.head_dim == 256) && (G == 1 || G == 2 || G == 4 || G == 8);
}

int attention_prefill_tokens_per_tile(const AttentionShape& a) {
  return static_cast<int>(kM / (a.n_heads / a.n_kv_heads));
}

cudaError_t launch_attention_prefill(const float* q, const float* k, const float* v, const void* k_cache,
                                     const void* v_cache, const AttentionBatch& b, const AttentionShape& a,
                                     const int32_t* tiles, int n_tiles, float* out, cudaStream_t s) {
  if (n_tiles == 0) return cudaSuccess;
  if (!attention_prefill_supports(a)) return cudaErrorNotSupported;
  const int G = static_cast<int>(a.n_heads / a.n_kv_heads);
  if (a.head_dim == 128)
    return a.kv_f16 ? launch_h<128, true>(G, q, k, v, k_cache, v_cache, b, a, tiles, n_tiles, out, s)
                    : launch_h<128, false>(G, q, k, v, k_cache, v_cache, b, a, tiles, n_tiles, out, s);
  return a.kv_f16 ? launch_h<256, true>(G, q, k, v, k_cache, v_cache, b, a, tiles, n_tiles, out, s)
                  : launch_h<256, false>(G, q, k, v, k_cache, v_cache, b, a, tiles, n_tiles, out, s);
}

}  // namespace unicorn::cuda
