// One-token matvec with the activations held in registers (Q4_0 and Q8_0 weights): a warp group
// loads its share of the int8 activations and their block scales once, then sweeps kRows weight
// rows over them, so that a row costs only its weight loads (a 16-byte quant load and a 2-byte
// scale load per 32 values). matvec_quant.cu's layout instead walks one row (or a row pair) over
// the whole width and loads the activations again for every row or pair; on an H100 its
// decode matvecs were partly bound by load instructions, not by HBM (NOTES.md, session 7: fewer
// loads per weight byte gave +2.8 % on 27B Q4_0 decode).
//
// Layout: a block of kWarps warps; a group of `wpr` warps (1, 2 or 4) shares kRows consecutive
// rows; its 32 * wpr lanes take consecutive items (so each warp load is 512 contiguous bytes),
// lane i of part p holding items p * 32 + i + s * 32 * wpr for s < S. Rows go in chunks (chunk_rows):
// the next chunk's weight loads are issued before the current chunk's dot products, the first
// chunk's before pdl_wait(), since weights do not depend on the previous kernel. A group's row sums leave a warp in one
// transposed reduction (9 shuffles for 8 rows), and the parts of a group meet in shared memory.
//
// A GeGLU pair sweeps rows r of gate and of up together and writes gelu_tanh(gate) * up
// (spec §2.5).
#include <atomic>
#include <type_traits>

#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kRows = 8;  // rows per warp group

__device__ __forceinline__ float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

// The warp sums of 8 values per lane: each step halves the values a lane holds, sending one half
// to its partner and adding the half it receives. Lane i ends with the sum of value
// reduced_row(i) over the warp.
__device__ __forceinline__ float warp_sum8(float (&v)[kRows], int lane) {
  constexpr unsigned kAll = 0xFFFFFFFFu;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const bool hi = lane & 16;
    const float send = hi ? v[i] : v[i + 4], keep = hi ? v[i + 4] : v[i];
    v[i] = keep + __shfl_xor_sync(kAll, send, 16);
  }
#pragma unroll
  for (int i = 0; i < 2; ++i) {
    const bool hi = lane & 8;
    const float send = hi ? v[i] : v[i + 2], keep = hi ? v[i + 2] : v[i];
    v[i] = keep + __shfl_xor_sync(kAll, send, 8);
  }
  {
    const bool hi = lane & 4;
    const float send = hi ? v[0] : v[1], keep = hi ? v[1] : v[0];
    v[0] = keep + __shfl_xor_sync(kAll, send, 4);
  }
  v[0] += __shfl_xor_sync(kAll, v[0], 2);
  v[0] += __shfl_xor_sync(kAll, v[0], 1);
  return v[0];
}
__device__ __forceinline__ int reduced_row(int lane) {
  return ((lane >> 4) & 1) * 4 + ((lane >> 3) & 1) * 2 + ((lane >> 2) & 1);
}

// Rows whose loads are issued together (a chunk; the next chunk's loads go out before the
// current chunk's dot products): about 16 registers' worth of 16-byte loads per chunk.
template <class F, int P, int S>
constexpr int chunk_rows() {
  constexpr int regs = static_cast<int>(sizeof(typename F::Raw) / 4), a = 80 / (2 * P * S * regs);
  return a >= 4 ? 4 : (a >= 2 ? 2 : 1);
}

// S: items per lane (the most; lanes past the row's end skip theirs).
template <class F, bool GLU, int S>
__global__ void __launch_bounds__(kWarps * 32) matvec_resident(MatvecJob job, ActQ8 x) {
  constexpr int P = GLU ? 2 : 1;  // weight rows read per row step
  __shared__ float partial[kWarps][P][kRows];
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int64_t blk = blockIdx.x;
  const int m = job.n > 1 && blk >= job.first_block[1] ? (job.n > 2 && blk >= job.first_block[2] ? 2 : 1) : 0;
  // Static indices only: a dynamic index into the parameter block would copy it to local memory.
  const DeviceWeight w = m == 0 ? job.w[0] : (m == 1 ? job.w[1] : job.w[2]);
  const DeviceWeight w1 = job.w[1];  // GeGLU: up
  float* y = m == 0 ? job.y[0] : (m == 1 ? job.y[1] : job.y[2]);
  const int wpr = job.wpr, part = warp % wpr;
  const int64_t row0 = ((blk - job.first_block[m]) * (kWarps / wpr) + warp / wpr) * kRows;
  const int64_t items = w.cols / 32, step = 32 * static_cast<int64_t>(wpr), first = 32 * part + lane;

  using Raw = typename F::Raw;
  constexpr int A = chunk_rows<F, P, S>();
  auto load_chunk = [&](Raw(&raw)[A][P][S], int64_t r0) {
#pragma unroll
    for (int a = 0; a < A; ++a) {
      if (r0 + a >= w.rows) break;
#pragma unroll
      for (int s = 0; s < S; ++s) {
        const int64_t it = first + step * s;
        if (it < items) {
          raw[a][0][s] = F::load(w, r0 + a, it);
          if constexpr (GLU) raw[a][1][s] = F::load(w1, r0 + a, it);
        }
      }
    }
  };
  Raw cur[A][P][S];
  load_chunk(cur, row0);
  pdl_wait();
  ActWords xa[S];
  float2 ds[S];
#pragma unroll
  for (int s = 0; s < S; ++s) {
    const int64_t it = first + step * s;
    if (it < items) {
      xa[s] = load_act32(x.q, it * 32);
      ds[s] = load_ds(x.ds, it);
    }
  }
  float acc[P][kRows];
#pragma unroll
  for (int c = 0; c < kRows / A; ++c) {
    Raw next[A][P][S];
    if (c + 1 < kRows / A) load_chunk(next, row0 + (c + 1) * A);
#pragma unroll
    for (int a = 0; a < A; ++a) {
      const int g = c * A + a;
#pragma unroll
      for (int p = 0; p < P; ++p) {
        acc[p][g] = 0.0f;
        if (row0 + g < w.rows)
#pragma unroll
          for (int s = 0; s < S; ++s)
            if (first + step * s < items) acc[p][g] += F::dot_act(cur[a][p][s], xa[s], ds[s]);
      }
    }
    if (c + 1 < kRows / A)
#pragma unroll
      for (int a = 0; a < A; ++a)
#pragma unroll
        for (int p = 0; p < P; ++p)
#pragma unroll
          for (int s = 0; s < S; ++s) cur[a][p][s] = next[a][p][s];
  }
  float sum[P];
#pragma unroll
  for (int p = 0; p < P; ++p) sum[p] = warp_sum8(acc[p], lane);
  const int r = reduced_row(lane);
  const bool writer = lane % 4 == 0;  // four lanes hold each row's sum
  if (wpr > 1) {
    if (writer)
#pragma unroll
      for (int p = 0; p < P; ++p) partial[warp][p][r] = sum[p];
    __syncthreads();
    if (part == 0 && writer)
#pragma unroll
      for (int p = 0; p < P; ++p) {
        sum[p] = 0.0f;
        for (int q = 0; q < wpr; ++q) sum[p] += partial[warp + q][p][r];
      }
  }
  if (part == 0 && writer && row0 + r < w.rows) {
    if constexpr (GLU)
      y[row0 + r] = gelu_tanh(sum[0]) * sum[1];
    else
      y[row0 + r] = sum[0];
  }
  pdl_trigger();  // after this block's stores
}

// The most items per lane each format and job kind is instantiated for (registers: the current
// and next row's loads and the activations; checked with -Xptxas -v for no spills).
template <class F, bool GLU>
constexpr int kMaxItems = std::is_same_v<F, FormatQ4_0> ? (GLU ? 4 : 6) : (GLU ? 2 : 4);

std::atomic<bool> g_resident{false};
std::atomic<int> g_resident_wpr{0};

template <class F, bool GLU, int S>
cudaError_t launch_s(MatvecJob job, ActQ8 x, int64_t blocks, cudaStream_t s) {
  return launch(matvec_resident<F, GLU, S>, dim3(static_cast<unsigned>(blocks)), dim3(kWarps * 32), 0, s, job, x);
}

// Items per lane for a group of wpr warps.
int64_t items_per_lane(int64_t items, int wpr) { return (items + 32 * wpr - 1) / (32 * wpr); }

// Warps per group: the whole block for rows of 128+ items, fewer for short rows (as
// matvec_quant.cu's wide rows), more where a lane would hold more items than its kernel has
// room for; 0 if even 4 warps would be too few. set_matvec_resident_wpr's choice, if it fits.
int pick_wpr(int64_t items, int max_items) {
  const int forced = g_resident_wpr.load(std::memory_order_relaxed);
  if ((forced == 1 || forced == 2 || forced == 4) && items_per_lane(items, forced) <= max_items) return forced;
  for (int wpr = items >= 128 ? 4 : (items >= 64 ? 2 : 1); wpr <= kWarps; wpr *= 2)
    if (items_per_lane(items, wpr) <= max_items) return wpr;
  return 0;
}

template <class F, bool GLU>
cudaError_t launch_format(MatvecJob job, ActQ8 x, cudaStream_t s) {
  const int64_t items = job.w[0].cols / 32;
  job.wpr = pick_wpr(items, kMaxItems<F, GLU>);
  if (job.wpr == 0) return cudaErrorNotSupported;
  const int64_t rows_per_block = kRows * (kWarps / job.wpr);
  int64_t blocks = 0;
  const int n = GLU ? 1 : job.n;
  for (int i = 0; i < n; ++i) {
    job.first_block[i] = blocks;
    blocks += (job.w[i].rows + rows_per_block - 1) / rows_per_block;
  }
  for (int i = n; i < 4; ++i) job.first_block[i] = blocks;
  job.n = GLU ? 2 : job.n;
  const int64_t per_lane = items_per_lane(items, job.wpr);
  constexpr int kMax = kMaxItems<F, GLU>;
  if (per_lane <= 2) return launch_s<F, GLU, 2>(job, x, blocks, s);
  if constexpr (kMax >= 3)
    if (per_lane <= 3) return launch_s<F, GLU, 3>(job, x, blocks, s);
  if constexpr (kMax >= 4)
    if (per_lane <= 4) return launch_s<F, GLU, 4>(job, x, blocks, s);
  if constexpr (kMax >= 6)
    if (per_lane <= 6) return launch_s<F, GLU, 6>(job, x, blocks, s);
  return cudaErrorNotSupported;
}

}  // namespace

void set_matvec_resident(bool on) { g_resident.store(on, std::memory_order_relaxed); }
bool matvec_resident() { return g_resident.load(std::memory_order_relaxed); }
void set_matvec_resident_wpr(int wpr) { g_resident_wpr.store(wpr, std::memory_order_relaxed); }

bool matvec_resident_takes(const MatvecJob& job, int T, bool glu) {
  if (T != 1 || !matvec_resident() || job.n < 1 || job.n > 3 || (glu && job.n != 2)) return false;
  const GgmlType t = job.w[0].type;
  if (t != GgmlType::Q4_0 && t != GgmlType::Q8_0) return false;
  for (int i = 1; i < job.n; ++i)
    if (job.w[i].type != t || job.w[i].cols != job.w[0].cols) return false;
  if (glu && job.w[1].rows != job.w[0].rows) return false;
  const int64_t items = job.w[0].cols / 32;
  const int max_items = t == GgmlType::Q4_0 ? (glu ? kMaxItems<FormatQ4_0, true> : kMaxItems<FormatQ4_0, false>)
                                            : (glu ? kMaxItems<FormatQ8_0, true> : kMaxItems<FormatQ8_0, false>);
  return pick_wpr(items, max_items) != 0;
}

cudaError_t launch_matvec_resident(const MatvecJob& job, ActQ8 x, bool glu, cudaStream_t s) {
  cudaError_t e = cudaErrorNotSupported;
  if (job.w[0].type == GgmlType::Q4_0)
    e = glu ? launch_format<FormatQ4_0, true>(job, x, s) : launch_format<FormatQ4_0, false>(job, x, s);
  else if (job.w[0].type == GgmlType::Q8_0)
    e = glu ? launch_format<FormatQ8_0, true>(job, x, s) : launch_format<FormatQ8_0, false>(job, x, s);
  return e != cudaSuccess ? e : cudaGetLastError();
}

}  // namespace unicorn::cuda
