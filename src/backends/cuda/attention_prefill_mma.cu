// Prompt attention on tensor cores (spec §2.4.4-2.4.7): the key set, tiles and online softmax of
// attention_prefill.cu, with Q·Kᵀ and P·V as mma.sync.m16n8k16 (f16 operands, f32 accumulators;
// sm_80+), flash-attention style.
//
// A block takes one kv head and a tile of kQ consecutive tokens of one sequence with every query
// head of the kv head's group (M = 64 query vectors, m = token * G + head, as the SIMT kernel).
// Four warps own 16 query rows each. Per step the block stages 32 keys in shared memory as f16:
// K row-major [key][dim] and V transposed [dim][key], so that each thread's B fragments are
// 32-bit loads. A warp's scores S (16 x 32) stay in registers; their accumulator layout is the A
// fragment layout of P for the P·V product (n-tiles 2t and 2t+1 are k-step t), so P never goes
// through memory. Only for f16 caches: the operands are rounded to f16, so results hold the
// 1e-5 budget of fp16 activations, not f32's 1e-7.
//
// Fragment layouts (PTX ISA, m16n8k16, f16): lane l, r = l / 4, c = 2 * (l % 4).
//   A 16x16 (row-major): a0 = A[r][c, c+1], a1 = A[r+8][c, c+1], a2 = A[r][c+8, c+9],
//                         a3 = A[r+8][c+8, c+9]
//   B 16x8 (k x n):      b0 = B[c, c+1][r], b1 = B[c+8, c+9][r]
//   C 16x8 (f32):        c0, c1 = C[r][c, c+1], c2, c3 = C[r+8][c, c+1]
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>

#include "backends/cuda/attention_prompt.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/mma_f16.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kWarps = 4, kThreads = 32 * kWarps, kM = 64, kN = 32;  // queries per block, keys per step

template <int HD>
constexpr int qk_stride() {
  return HD + 8;  // halves per row of Qs and Ks: the 8 rows a fragment load touches hit distinct banks
}
constexpr int kVtStride = kN + 8;  // halves per row of Vt

template <int HD>
constexpr size_t smem_bytes() {
  return sizeof(__half) * (static_cast<size_t>(kM + kN) * qk_stride<HD>() + static_cast<size_t>(HD) * kVtStride);
}

__device__ __forceinline__ uint32_t ld32(const __half* p) { return *reinterpret_cast<const uint32_t*>(p); }

template <int HD, int G, bool F16>
__global__ void __launch_bounds__(kThreads)
    attention_prefill_mma(const float* q, const float* k, const float* v, const void* k_cache, const void* v_cache,
                          AttentionBatch b, AttentionShape a, const int32_t* tiles, float* out) {
  constexpr int kQ = kM / G, QS = qk_stride<HD>(), NT = HD / 8;  // output n-tiles per warp
  extern __shared__ float4 smem4[];
  __half* Qs = reinterpret_cast<__half*>(smem4);
  __half* Ks = Qs + kM * QS;
  __half* Vt = Ks + kN * QS;
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  const int r = lane / 4, c = 2 * (lane % 4);
  const PromptTile t = prompt_tile<HD>(b, a, tiles, kQ);

  for (int e = tid; e < kM * (HD / 4); e += kThreads) {  // the queries as f16
    const int m = e / (HD / 4), d4 = e % (HD / 4);
    const float4 x = prompt_query<HD, G>(t, q, a, m, d4);
    __half2* dst = reinterpret_cast<__half2*>(Qs + m * QS + 4 * d4);
    dst[0] = __floats2half2_rn(x.x, x.y);
    dst[1] = __floats2half2_rn(x.z, x.w);
  }
  // This thread's two query rows (fragment rows r and r + 8 of the warp's 16).
  int64_t pos[2], lo[2];
  bool live[2];
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    const int m = warp * 16 + r + 8 * h;
    pos[h] = t.p0 + m / G;
    live[h] = m / G < t.nq;
    lo[h] = a.window > 0 ? max(int64_t{0}, pos[h] - a.window + 1) : 0;  // keys lo .. pos
  }

  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};
  float o[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;

  for (int64_t j0 = t.tile_lo; j0 <= t.tile_hi; j0 += kN) {
    __syncthreads();  // the previous step is done with Ks and Vt (and Qs is written)
    for (int e = tid; e < kN * (HD / 4); e += kThreads) {
      const int kk = e / (HD / 4), d4 = e % (HD / 4);
      float4 kx, vx;
      prompt_key_value<HD, F16>(t, a, k, v, k_cache, v_cache, j0 + kk, d4, kx, vx);
      __half2* kd = reinterpret_cast<__half2*>(Ks + kk * QS + 4 * d4);
      kd[0] = __floats2half2_rn(kx.x, kx.y);
      kd[1] = __floats2half2_rn(kx.z, kx.w);
      Vt[(4 * d4 + 0) * kVtStride + kk] = __float2half_rn(vx.x);
      Vt[(4 * d4 + 1) * kVtStride + kk] = __float2half_rn(vx.y);
      Vt[(4 * d4 + 2) * kVtStride + kk] = __float2half_rn(vx.z);
      Vt[(4 * d4 + 3) * kVtStride + kk] = __float2half_rn(vx.w);
    }
    __syncthreads();
    // S = Q Kᵀ for the warp's 16 rows and the step's 32 keys: 4 n-tiles of 8 keys.
    float s[kN / 8][4];
#pragma unroll
    for (int n = 0; n < kN / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    const __half* qa = Qs + (warp * 16 + r) * QS + c;
#pragma unroll
    for (int ks = 0; ks < HD / 16; ++ks) {
      const uint32_t a0 = ld32(qa + ks * 16), a1 = ld32(qa + 8 * QS + ks * 16);
      const uint32_t a2 = ld32(qa + ks * 16 + 8), a3 = ld32(qa + 8 * QS + ks * 16 + 8);
#pragma unroll
      for (int n = 0; n < kN / 8; ++n) {
        const __half* kb = Ks + (n * 8 + r) * QS + ks * 16 + c;
        mma_m16n8k16_f16(s[n], a0, a1, a2, a3, ld32(kb), ld32(kb + 8));
      }
    }
    // Masks and the online softmax; a row's 32 scores sit in the 4 threads of a quad.
#pragma unroll
    for (int h = 0; h < 2; ++h) {
      float mx = m_run[h];
#pragma unroll
      for (int n = 0; n < kN / 8; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int64_t j = j0 + n * 8 + c + e;
          float& x = s[n][2 * h + e];
          if (!live[h] || j < lo[h] || j > pos[h]) x = -INFINITY;
          mx = fmaxf(mx, x);
        }
      mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xFFFFFFFFu, mx, 2));
      // A row with no key yet keeps mx = -inf: nothing to add.
      const float corr = mx == -INFINITY ? 1.0f : expf(m_run[h] - mx);
      float sum = 0.0f;
#pragma unroll
      for (int n = 0; n < kN / 8; ++n)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          float& x = s[n][2 * h + e];
          x = x == -INFINITY ? 0.0f : expf(x - mx);
          sum += x;
        }
      sum += __shfl_xor_sync(0xFFFFFFFFu, sum, 1);
      sum += __shfl_xor_sync(0xFFFFFFFFu, sum, 2);
      l_run[h] = l_run[h] * corr + sum;
      m_run[h] = mx;
#pragma unroll
      for (int n = 0; n < NT; ++n) o[n][2 * h] *= corr, o[n][2 * h + 1] *= corr;
    }
    // O += P V: P's k-step t is S's n-tiles 2t and 2t + 1.
#pragma unroll
    for (int t = 0; t < kN / 16; ++t) {
      const uint32_t a0 = pack_half2(s[2 * t][0], s[2 * t][1]), a1 = pack_half2(s[2 * t][2], s[2 * t][3]);
      const uint32_t a2 = pack_half2(s[2 * t + 1][0], s[2 * t + 1][1]),
                     a3 = pack_half2(s[2 * t + 1][2], s[2 * t + 1][3]);
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        const __half* vb = Vt + (n * 8 + r) * kVtStride + t * 16 + c;
        mma_m16n8k16_f16(o[n], a0, a1, a2, a3, ld32(vb), ld32(vb + 8));
      }
    }
  }
#pragma unroll
  for (int h = 0; h < 2; ++h) {
    if (!live[h]) continue;
    const int m = warp * 16 + r + 8 * h;
    const float inv = 1.0f / l_run[h];
    float* dst = out + t.rows[t.first + m / G] * t.q_row + (t.g * G + m % G) * HD + c;
#pragma unroll
    for (int n = 0; n < NT; ++n)
      *reinterpret_cast<float2*>(dst + n * 8) = make_float2(o[n][2 * h] * inv, o[n][2 * h + 1] * inv);
  }
}

template <int HD, int G>
cudaError_t launch_hg(const float* q, const float* k, const float* v, const void* kc, const void* vc,
                      const AttentionBatch& b, const AttentionShape& a, const int32_t* tiles, int n_tiles, float* out,
                      cudaStream_t s) {
  constexpr size_t bytes = smem_bytes<HD>();
  constexpr auto kernel = attention_prefill_mma<HD, G, true>;
  if (const cudaError_t e = allow_dynamic_smem<kernel>(bytes); e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>(a.n_kv_heads), static_cast<unsigned>(n_tiles));
  kernel<<<grid, kThreads, bytes, s>>>(q, k, v, kc, vc, b, a, tiles, out);
  return cudaGetLastError();
}

template <int HD>
cudaError_t launch_h(int G, const float* q, const float* k, const float* v, const void* kc, const void* vc,
                     const AttentionBatch& b, const AttentionShape& a, const int32_t* tiles, int n_tiles, float* out,
                     cudaStream_t s) {
  switch (G) {
    case 1:
      return launch_hg<HD, 1>(q, k, v, kc, vc, b, a, tiles, n_tiles, out, s);
    case 2:
      return launch_hg<HD, 2>(q, k, v, kc, vc, b, a, tiles, n_tiles, out, s);
    case 4:
      return launch_hg<HD, 4>(q, k, v, kc, vc, b, a, tiles, n_tiles, out, s);
    case 8:
      return launch_hg<HD, 8>(q, k, v, kc, vc, b, a, tiles, n_tiles, out, s);
    default:
      return cudaErrorNotSupported;
  }
}

}  // namespace

bool attention_prefill_mma_supports(const AttentionShape& a) {
  return sm80_or_later() && a.kv_f16 && attention_prefill_supports(a);
}

cudaError_t launch_attention_prefill_mma(const float* q, const float* k, const float* v, const void* k_cache,
                                         const void* v_cache, const AttentionBatch& b, const AttentionShape& a,
                                         const int32_t* tiles, int n_tiles, float* out, cudaStream_t s) {
  if (n_tiles == 0) return cudaSuccess;
  if (!attention_prefill_mma_supports(a)) return cudaErrorNotSupported;
  const int G = static_cast<int>(a.n_heads / a.n_kv_heads);
  return a.head_dim == 128 ? launch_h<128>(G, q, k, v, k_cache, v_cache, b, a, tiles, n_tiles, out, s)
                           : launch_h<256>(G, q, k, v, k_cache, v_cache, b, a, tiles, n_tiles, out, s);
}

}  // namespace unicorn::cuda
