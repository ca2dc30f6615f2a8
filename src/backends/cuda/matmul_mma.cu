// Small-batch matmul (9 to 64 tokens) on int8 tensor cores, reading Q4_0 / Q8_0 weights as
// stored: each mma.sync.m16n8k32 multiplies exactly one 32-value block of 16 weight rows by the
// same block of 8 tokens' int8 activations, and its int32 result is scaled by the two blocks' scales
// into f32 accumulators. The weights are read once for all tokens, so a 32-token prompt costs about
// one decode step of weight traffic instead of a decode to f16 plus a GEMM.
//
// Fragments (PTX ISA, mma.m16n8k32 with .s8; g = lane / 4, c = lane % 4):
//   A 16x32, row-major: a0 = row g, k 4c..4c+3; a1 = row g+8, same k; a2, a3 = the same rows at k + 16.
//   B 32x8, column-major: b0 = token g, k 4c..4c+3; b1 = token g, k + 16.
//   C 16x8: c0, c1 = row g, tokens 2c, 2c+1; c2, c3 = row g+8, the same tokens.
// A Q4_0 block holds value j in the low nibble of byte j and value j+16 in its high nibble, so word c
// of the block gives a0 (low nibbles) and a2 (high nibbles) directly; Q8_0 gives words c and c+4.
// Nibbles stay unsigned (0..15): the offset 8 comes back through the activation block's sum.
//
// Activations are quantized (per 32 values, as launch_quantize_q8) straight into fragment order:
// for block b and token tile n, lane l's b0, b1 are the 8 bytes at ((b * tiles + n) * 32 + l) * 8,
// and the scales of its output tokens 2c, 2c+1 are one float4 (d0, d0*sum0, d1, d1*sum1) at
// (b * tiles + n) * 4 + c. Tokens past T are zero.
//
// A block of 4 warps owns 16 * rw rows (rw = 1, 2 or 4 warps along the rows, 4 / rw along K,
// each taking every (4/rw)-th 32-value block). The weight rows and the activation fragments of
// the same 8 blocks stream through shared memory together (cp.async, three tiles in flight), so
// the activations are read from L2 once per block of rows, never through L1 per warp.
#include <cuda_fp16.h>

#include <algorithm>
#include <cstdlib>

#include "backends/cuda/act_quant.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/matvec_shape.h"

namespace unicorn::cuda {
namespace {

constexpr int kStages = 3;
constexpr int kTileBlocks = 8;  // 32-value blocks per pipeline tile (256 values of K)
constexpr int kThreads = 128;

template <GgmlType Type>
struct MmaFormat;
template <>
struct MmaFormat<GgmlType::Q4_0> {
  static constexpr int kBlockBytes = 16;
  static constexpr bool kOffset = true;  // value = d * (q - 8)
  static __device__ __forceinline__ void frag(const uint32_t* blk, int c, uint32_t& lo, uint32_t& hi) {
    const uint32_t w = blk[c];
    lo = w & 0x0F0F0F0Fu;
    hi = (w >> 4) & 0x0F0F0F0Fu;
  }
};
template <>
struct MmaFormat<GgmlType::Q8_0> {
  static constexpr int kBlockBytes = 32;
  static constexpr bool kOffset = false;
  static __device__ __forceinline__ void frag(const uint32_t* blk, int c, uint32_t& lo, uint32_t& hi) {
    lo = blk[c];
    hi = blk[c + 4];
  }
};

// Shared-memory row of a tile: the 8 blocks plus 16 bytes, so that the 8 rows g of a fragment load
// fall in different banks.
template <class F>
constexpr int kRowStride = kTileBlocks* F::kBlockBytes + 16;

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem) {
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(s), "l"(gmem));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N));
}

__device__ __forceinline__ void mma_s8(const uint32_t a[4], uint32_t b0, uint32_t b1, int c[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
      : "=r"(c[0]), "=r"(c[1]), "=r"(c[2]), "=r"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0), "r"(0), "r"(0), "r"(0));
}

// One warp per (token, block): 32 lanes hold the block's 32 values.
__global__ void quantize_mma(const float* x, int64_t T, int64_t K, int tiles, uint8_t* q, float* s) {
  // Launched with PDL (launch.cuh): x is the previous kernel's output, so wait for it first. (This
  // wait was missing until session 6: a predecessor that triggers early, as rms_norm, add_norm,
  // gelu_mul and the attention merge do, let this kernel read x before it was written.) No early
  // trigger: the matmul after it then launches as this kernel's blocks exit.
  pdl_wait();
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t item = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int64_t nb = K / 32;
  if (item >= nb * tiles * 8) return;
  const int64_t b = item % nb, n = item / nb;  // token n (may be past T: zeros)
  float2 ds;
  const int qv = quantize32_warp(n < T ? x[n * K + b * 32 + lane] : 0.0f, ds);
  const int64_t tile = n / 8, g = n % 8;
  const int k = lane, c = (k % 16) / 4;
  const int64_t frag = (b * tiles + tile) * 32 + g * 4 + c;
  q[frag * 8 + (k < 16 ? 0 : 4) + k % 4] = static_cast<uint8_t>(static_cast<int8_t>(qv));
  if (lane == 0) {
    // token n is output column 2c + (n % 2) of its tile's lanes with c = (n % 8) / 2
    float* slot = s + ((b * tiles + tile) * 4 + g / 2) * 4 + 2 * (g % 2);
    slot[0] = ds.x;
    slot[1] = ds.y;
  }
}

// Shared memory of one pipeline stage: the tile's weight rows, their scales, and the activation
// fragments and scales of its 8 blocks for up to NT token tiles.
template <GgmlType Type, int NT>
struct Stage {
  static constexpr int kRow = kRowStride<MmaFormat<Type>>;
  static constexpr int xq_bytes = kTileBlocks * NT * 32 * 8, xs_bytes = kTileBlocks * NT * 4 * 16;
  __host__ __device__ static constexpr int bytes(int rows_tile) {
    return rows_tile * (kRow + 16) + xq_bytes + xs_bytes;
  }
};

template <GgmlType Type, int NT, int RW>
__global__ void __launch_bounds__(kThreads)
    matmul_mma(DeviceWeight w, const uint8_t* xq, const float4* xs, int T, float* y) {
  using F = MmaFormat<Type>;
  using S = Stage<Type, NT>;
  constexpr int kRow = S::kRow, kRowsTile = 16 * RW, KW = kThreads / 32 / RW;
  constexpr int kStageQ = kRowsTile * kRow, kStageD = kStageQ + kRowsTile * 16, kStageX = kStageD + S::xq_bytes;
  constexpr int kStageBytes = S::bytes(kRowsTile);
  extern __shared__ __align__(16) uint8_t smem[];
  pdl_wait();
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int g = lane / 4, c = lane % 4;
  const int wr = warp % RW, wk = warp / RW;  // this warp's 16-row group and K lane
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRowsTile;
  const int64_t nb = w.blocks_per_row, k_tiles = nb / kTileBlocks;
  const int tiles = (T + 7) / 8;

  auto load_stage = [&](int st, int64_t kt) {
    uint8_t* base = smem + st * kStageBytes;
    constexpr int kChunks = kTileBlocks * F::kBlockBytes / 16;  // 16-byte chunks of a row's tile
    for (int i = static_cast<int>(threadIdx.x); i < kRowsTile * (kChunks + 1); i += kThreads) {
      const int r = i / (kChunks + 1), ch = i % (kChunks + 1);
      const int64_t row = min(row0 + r, w.rows - 1);  // rows past the end load a real row, never stored
      if (ch < kChunks)
        cp_async16(base + r * kRow + ch * 16, w.q + row * w.q_row_bytes + kt * kTileBlocks * F::kBlockBytes + ch * 16);
      else  // the tile's 8 scales of this row
        cp_async16(base + kStageQ + r * 16, w.d + row * nb + kt * kTileBlocks);
    }
    // The activation fragments of blocks kt*8 .. kt*8+7 are contiguous: 8 * tiles * 256 bytes,
    // then their scales: 8 * tiles * 64 bytes.
    const uint8_t* gq = xq + kt * kTileBlocks * tiles * 256;
    const uint8_t* gs = reinterpret_cast<const uint8_t*>(xs) + kt * kTileBlocks * tiles * 64;
    const int nq = kTileBlocks * tiles * 16, ns = kTileBlocks * tiles * 4;
    for (int i = static_cast<int>(threadIdx.x); i < nq + ns; i += kThreads) {
      if (i < nq)
        cp_async16(base + kStageD + i * 16, gq + i * 16);
      else
        cp_async16(base + kStageX + (i - nq) * 16, gs + (i - nq) * 16);
    }
  };

  float acc[NT][4];
#pragma unroll
  for (int n = 0; n < NT; ++n)
#pragma unroll
    for (int i = 0; i < 4; ++i) acc[n][i] = 0.0f;

#pragma unroll
  for (int st = 0; st < kStages - 1; ++st) {
    if (st < k_tiles) load_stage(st, st);
    cp_async_commit();
  }
  for (int64_t kt = 0; kt < k_tiles; ++kt) {
    cp_async_wait<kStages - 2>();
    __syncthreads();
    if (kt + kStages - 1 < k_tiles) load_stage(static_cast<int>((kt + kStages - 1) % kStages), kt + kStages - 1);
    cp_async_commit();
    const uint8_t* base = smem + (kt % kStages) * kStageBytes;
    const uint8_t* r_lo = base + (16 * wr + g) * kRow;
    const uint8_t* r_hi = r_lo + 8 * kRow;
    const uint16_t* sc = reinterpret_cast<const uint16_t*>(base + kStageQ);
    const uint2* fq = reinterpret_cast<const uint2*>(base + kStageD);
    const float4* fs = reinterpret_cast<const float4*>(base + kStageX);
#pragma unroll
    for (int jj = 0; jj < kTileBlocks / KW; ++jj) {
      const int j = wk + KW * jj;
      uint32_t a[4];
      F::frag(reinterpret_cast<const uint32_t*>(r_lo + j * F::kBlockBytes), c, a[0], a[2]);
      F::frag(reinterpret_cast<const uint32_t*>(r_hi + j * F::kBlockBytes), c, a[1], a[3]);
      const float d_lo = __half2float(__ushort_as_half(sc[(16 * wr + g) * 8 + j]));
      const float d_hi = __half2float(__ushort_as_half(sc[(16 * wr + g + 8) * 8 + j]));
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        if (n >= tiles) break;
        const uint2 bq = fq[(j * tiles + n) * 32 + lane];
        const float4 s = fs[(j * tiles + n) * 4 + c];
        int r[4];
        mma_s8(a, bq.x, bq.y, r);
        // value = d_w * (d_x * sum q x - 8 * d_x * sum x) for Q4_0; d_w * d_x * sum q x for Q8_0
        const float o0 = F::kOffset ? -8.0f * s.y : 0.0f, o1 = F::kOffset ? -8.0f * s.w : 0.0f;
        acc[n][0] += d_lo * fmaf(s.x, static_cast<float>(r[0]), o0);
        acc[n][1] += d_lo * fmaf(s.z, static_cast<float>(r[1]), o1);
        acc[n][2] += d_hi * fmaf(s.x, static_cast<float>(r[2]), o0);
        acc[n][3] += d_hi * fmaf(s.z, static_cast<float>(r[3]), o1);
      }
    }
  }
  cp_async_wait<0>();
  __syncthreads();  // the stages are free: reuse them for the sums across the K warps
  float* part = reinterpret_cast<float*>(smem);
  if constexpr (KW > 1) {
    if (wk > 0)
#pragma unroll
      for (int n = 0; n < NT; ++n)
#pragma unroll
        for (int i = 0; i < 4; ++i) part[((warp * NT + n) * 4 + i) * 32 + lane] = acc[n][i];
    __syncthreads();
    if (wk == 0)
#pragma unroll
      for (int q = 1; q < KW; ++q)
#pragma unroll
        for (int n = 0; n < NT; ++n)
#pragma unroll
          for (int i = 0; i < 4; ++i) acc[n][i] += part[(((q * RW + wr) * NT + n) * 4 + i) * 32 + lane];
  }
  if (wk == 0) {
    const int64_t r_lo = row0 + 16 * wr + g, r_hi = r_lo + 8;
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const int t0 = 8 * n + 2 * c, t1 = t0 + 1;
      if (r_lo < w.rows) {
        if (t0 < T) y[t0 * w.rows + r_lo] = acc[n][0];
        if (t1 < T) y[t1 * w.rows + r_lo] = acc[n][1];
      }
      if (r_hi < w.rows) {
        if (t0 < T) y[t0 * w.rows + r_hi] = acc[n][2];
        if (t1 < T) y[t1 * w.rows + r_hi] = acc[n][3];
      }
    }
  }
  pdl_trigger();
}

template <GgmlType Type, int NT, int RW>
cudaError_t launch_rw(const DeviceWeight& w, ActMma x, int T, float* y, cudaStream_t s) {
  // The stages, reused at the end for the sums across K warps.
  constexpr int kPartBytes = kThreads / 32 * NT * 4 * 32 * static_cast<int>(sizeof(float));
  constexpr int kSmem = std::max(kStages * Stage<Type, NT>::bytes(16 * RW), kPartBytes);
  if (const cudaError_t e = allow_dynamic_smem<matmul_mma<Type, NT, RW>>(kSmem); e != cudaSuccess) return e;
  const dim3 grid(static_cast<unsigned>((w.rows + 16 * RW - 1) / (16 * RW)));
  return launch(matmul_mma<Type, NT, RW>, grid, dim3(kThreads), static_cast<size_t>(kSmem), s, w, x.q, x.s, T, y);
}

template <GgmlType Type, int NT>
cudaError_t launch_nt(const DeviceWeight& w, ActMma x, int T, float* y, cudaStream_t s) {
  // Warps along the rows (each block re-reads the activations, so as many as keep about two
  // blocks per multiprocessor busy).
  const int sm_count = device_sm_count();
  if ((w.rows + 63) / 64 >= 2 * sm_count) return launch_rw<Type, NT, 4>(w, x, T, y, s);
  if ((w.rows + 31) / 32 >= 2 * sm_count) return launch_rw<Type, NT, 2>(w, x, T, y, s);
  return launch_rw<Type, NT, 1>(w, x, T, y, s);
}

template <GgmlType Type>
cudaError_t launch_type(const DeviceWeight& w, ActMma x, int T, float* y, cudaStream_t s) {
  const int tiles = (T + 7) / 8;
  if (tiles <= 2) return launch_nt<Type, 2>(w, x, T, y, s);
  if (tiles <= 4) return launch_nt<Type, 4>(w, x, T, y, s);
  return launch_nt<Type, 8>(w, x, T, y, s);
}

}  // namespace

int64_t mma_min_tokens() {
  static const int64_t n = [] {
    const char* e = std::getenv("UNICORN_MMA_MIN_TOKENS");
    const long v = e ? std::strtol(e, nullptr, 10) : 0;
    return v >= 1 && v <= kMaxMmaTokens ? static_cast<int64_t>(v) : int64_t{9};
  }();
  return n;
}

bool matmul_mma_supports(GgmlType type, int64_t cols, int64_t T) {
  return T >= mma_min_tokens() && T <= kMaxMmaTokens && (type == GgmlType::Q4_0 || type == GgmlType::Q8_0) &&
         cols % (32 * kTileBlocks) == 0;
}

size_t act_mma_bytes(int64_t T, int64_t K) {
  const int64_t tiles = (T + 7) / 8, nb = K / 32;
  return static_cast<size_t>(nb * tiles * 32 * 8 + nb * tiles * 4 * 16);
}

ActMma act_mma_view(void* buffer, int64_t T, int64_t K) {
  const int64_t tiles = (T + 7) / 8, nb = K / 32;
  auto* q = static_cast<uint8_t*>(buffer);
  return ActMma{q, reinterpret_cast<const float4*>(q + nb * tiles * 32 * 8)};
}

cudaError_t launch_quantize_mma(const float* x, int64_t T, int64_t K, ActMma out, cudaStream_t s) {
  if (K % 32 != 0 || T < 1) return cudaErrorInvalidValue;
  const int tiles = static_cast<int>((T + 7) / 8);
  const int64_t warps = K / 32 * tiles * 8;
  const int threads = 256;
  const dim3 grid(static_cast<unsigned>((warps * 32 + threads - 1) / threads));
  return launch(quantize_mma, grid, dim3(threads), 0, s, x, T, K, tiles, const_cast<uint8_t*>(out.q),
                reinterpret_cast<float*>(const_cast<float4*>(out.s)));
}

cudaError_t launch_matmul_mma(const DeviceWeight& w, ActMma x, int T, float* y, cudaStream_t s) {
  if (!matmul_mma_supports(w.type, w.cols, T)) return cudaErrorInvalidValue;
  return w.type == GgmlType::Q4_0 ? launch_type<GgmlType::Q4_0>(w, x, T, y, s)
                                  : launch_type<GgmlType::Q8_0>(w, x, T, y, s);
}

}  // namespace unicorn::cuda
