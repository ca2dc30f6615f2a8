// Matvec for quantized weights and few tokens (T <= 8): memory-bound, so each weight byte is read
// once with 16-byte loads and decoded in registers; the activations were quantized to int8 per 32
// values (quantize_act.cu) so that 4 products take one dp4a. One to four warps per weight row (and
// two rows per warp group for one token); lanes take consecutive work items (weight_formats.cuh),
// so a warp's loads are contiguous.
//
// One launch serves a MatvecJob: up to three weights on the same input (q, k and v in one grid),
// of one format or of a K-quant mix (matvec_kquant_mix: each block runs its own weight's format), or a
// GeGLU pair whose warps compute row r of gate and of up together and write gelu_tanh(gate) * up
// (spec §2.5), so the pair's outputs never go through memory. Batched decode of 5-8 tokens goes to
// the int8 tensor cores (matvec_mma.cu) for the formats where they measured faster
// (matvec_mma_wanted, launch_job).
#include <algorithm>
#include <atomic>
#include <limits>
#include <type_traits>

#include "backends/cuda/gelu.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/matvec_shape.h"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kWarps = 4;

// Formats whose item loads can be issued apart from their dot product (weight_formats.cuh Raw).
template <class F>
concept HasRaw = requires {
  typename F::Raw;
};

template <int NT>
__device__ __forceinline__ void warp_sum(float* acc) {
#pragma unroll
  for (int t = 0; t < NT; ++t) {
#pragma unroll
    for (int o = 16; o > 0; o /= 2) acc[t] += __shfl_xor_sync(0xFFFFFFFFu, acc[t], o);
  }
}

// Which of the job's weights grid block blk computes (first_block ranges).
__device__ __forceinline__ int weight_of_block(const MatvecJob& job, int blk) {
  return job.n > 1 && blk >= job.first_block[1] ? (job.n > 2 && blk >= job.first_block[2] ? 2 : 1) : 0;
}

// w with its planes moved to row r (device_weight.h: plane element (r, b) at r * blocks_per_row +
// b; the qh plane has F::kQhWords words per entry), so that a loop's loads index by item alone
// (F::load(row, 0, item)) and their addresses step by a constant.
// Only the planes that F reads (F::kPlanes) are moved, with no null checks.
template <class F>
__device__ __forceinline__ DeviceWeight weight_row(const DeviceWeight& w, uint32_t r) {
  DeviceWeight o = w;
  const int64_t b = static_cast<int64_t>(r) * w.blocks_per_row;  // r unsigned: no sign extension
  o.q = w.q + static_cast<int64_t>(r) * w.q_row_bytes;
  if constexpr ((F::kPlanes & kPlaneD) != 0) {
    if constexpr (requires { F::kDWords; })
      o.d = w.d + b * F::kDWords;  // Q4_1's and Q5_1's (d, m)
    else
      o.d = w.d + b;
  }
  if constexpr ((F::kPlanes & kPlaneQh) != 0) o.qh = w.qh + b * F::kQhWords;
  if constexpr ((F::kPlanes & kPlaneSc) != 0) o.sc = w.sc + b * F::kScBytes;
  return o;
}

// Rows per warp group: two rows of one matrix share every activation load for one token (formats
// whose items take few registers); a GeGLU pair already reads gate and up rows together.
// Only the formats with a separate load (all quantized ones since session 26: Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0, and the K-quants' 32-value sub-blocks) use
// the block-wide split and the row pairs at one token (measured there; T > 1 was slower or even
// with the block-wide split, so it keeps one warp per row, or the few warps per row that
// warps_per_row asks for matrices of few rows, with kBatchRows rows per warp since session 27).
template <class F, int NT>
constexpr bool kWideRows = NT == 1 && HasRaw<F>&& F::kItem == 32;

// Batched decode (2-8 tokens) of a 32-value format: each activation load serves kBatchRows rows.
// One row per warp read every token's 32 activation bytes per weight item from L1 (at 8 tokens 320
// bytes per 18-byte Q4_0 item). CudaBench on the H200, 27B gate / up at 2 / 4 / 8 tokens, one row
// per warp -> row pairs (us): Q4_0 29.1 / 45.0 / 82.1 -> 25.6 / 31.7 / 54.6, Q4_K 30.6 / 46.3 /
// 81.7 -> 27.6 / 35.5 / 56.2, Q6_K 36.3 / 46.6 / 82.1 -> 33.2 / 41.5 / 66.4, Q5_K, Q5_0, Q4_1
// alike; Q5_1 even at 2 tokens; Q8_0 39.5 -> 45.4 at 2 tokens (its 34-byte items, 4 per lane and
// pass, twice the registers for a pair), 52.9 / 90.5 -> 42.2 / 65.2 at 4 / 8. Q8_0 keeps one row
// per warp at 2 tokens.
constexpr int kBatchRows = 2;
template <class F, int NT>
constexpr bool kBatchPairs = NT > 1 && HasRaw<F>&& F::kItem == 32 && !(NT == 2 && std::is_same_v<F, FormatQ8_0>);

template <class F, int NT, bool GLU>
constexpr int rows_per_group() {
  if constexpr (GLU) return 1;
  if constexpr (kWideRows<F, NT>) return 2;
  if constexpr (kBatchPairs<F, NT>) return kBatchRows;
  return 1;
}

// Rows per group of a job of formats F0, F1, F2: a K-quant mix's bodies share one grid layout, so
// they take 2 (pairs that share each activation load, SA at one token: q4k_pairs, the default) or
// 1 (each row its own activation loads; session 18 on the H200, when the K-quants had 64-value
// items: q4_mix tg128 +1.0 % with the pairs, the mix 14.8 -> 13.9 us under ncu); one format takes
// rows_per_group. matvec_quant's blocks and launch_nt's grid both read it.
template <class F0, class F1, class F2, int NT, bool GLU, bool SA>
constexpr int job_rows_per_group() {
  if constexpr (!std::is_same_v<F0, F1> || !std::is_same_v<F0, F2>) return NT == 1 && SA ? 2 : 1;
  return rows_per_group<F0, NT, GLU>();
}

// Loads in flight per lane and stream, per pass (weight_formats.cuh Raw).
template <class F, int NT, bool GLU>
constexpr int unroll() {
  constexpr int U1 = F::kUnrollOne;  // sized to the format's loads per item
  if constexpr (kWideRows<F, NT>) return 2;
  if constexpr (NT == 1 && !GLU) return U1;
  return NT <= 2 && U1 >= 4 ? U1 / 2 : 2;
}

// A group of `wpr` warps (1, 2 or 4) computes R rows (or a GeGLU pair of rows) over the whole
// input width: its 32 * wpr lanes take consecutive items (a group's loads are contiguous), each
// lane U items per pass, and the warps' sums meet in shared memory. Splitting a row over a whole
// 4-warp block and giving each lane few items keeps the grid fine-grained, so that blocks finish
// evenly and the memory pipe stays full (bench/device/matvec_lab.cu, H100: 27B Q4_0 layer
// 87 vs 97 us for one warp per row with 8 items per lane).
// One block's rows of weight m (of format F). UO > 0 overrides the loads per lane and pass.
// SA: the P rows of a group share each activation load (F::dot_rows) instead of loading it once
// per row (F::dot_raw), for each of the NT tokens. WPR > 0: the warps per row as a constant (it must equal
// job.wpr), so that a pass's items sit at constant offsets from its first (immediate offsets in
// the loads instead of address arithmetic per item); 0 reads job.wpr. A GeGLU pair's launch has
// one weight (gate; up rides along), so its blocks skip the selection of the block's weight.
// (The same for o, down and the head, i.e. every one-weight job, measured slower on the H200:
// NOTES.md session 17.)
// RO > 0 overrides the rows per group (launch_nt's 4 rows per warp).
template <class F, int NT, bool GLU, int UO = 0, bool SA = false, int WPR = 0, int RO = 0>
__device__ __forceinline__ void matvec_block(const MatvecJob& job, int m, ActQ8 x, int T) {
  constexpr int R = RO > 0 ? RO : rows_per_group<F, NT, GLU>();
  constexpr int P = GLU ? 2 : R;  // weight rows read per group
  __shared__ float partial[kWarps][P][NT];
  // Weights do not depend on the previous kernel: formats with a Raw load issue their first pass
  // of weight loads before pdl_wait(), so the loads of the blocks scheduled early (PDL) overlap
  // the previous kernel's tail. Everything else (activations, stores) comes after the wait.
  const int blk = static_cast<int>(blockIdx.x);
  bool waited = !HasRaw<F> || blk >= job.prefetch_blocks;
  if (waited) pdl_wait();
  // Few instructions before the first load and per item (32-bit indices, shifts for the warp
  // split, no per-item checks of T or of rows past the end): a block that starts late issues its
  // loads sooner, and the issue slots keep up with the H200's bandwidth (NOTES.md session 16).
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  static_assert(WPR == 0 || WPR == 1 || WPR == 2 || WPR == 4);
  const int shift = WPR > 0 ? WPR / 2 : job.wpr >> 1;  // log2 of the warps per row (1, 2 or 4)
  // The job is a __grid_constant__ parameter, so job.w[m] is read from the parameter bank at a
  // run-time offset (no copy to local memory, no selects over each field).
  const DeviceWeight& w = job.w[GLU ? 0 : m];
  float* const y = job.y[GLU ? 0 : m];
  const int first = GLU ? 0 : job.first_block[m];
  const int row = (((blk - first) << (2 - shift)) + (warp >> shift)) * R;
  const int part = warp & ((1 << shift) - 1);
  const int64_t K = w.cols;
  const int rows = static_cast<int>(w.rows);
  const int items = static_cast<int>(static_cast<uint32_t>(K) / F::kItem);  // unsigned: a shift
  float acc[P][NT];
#pragma unroll
  for (int p = 0; p < P; ++p)
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[p][t] = 0.0f;
  if (row < rows) {
    const int step = 32 << shift;
    if constexpr (HasRaw<F>) {
      // Every weight load of a pass is issued before the first dot product. A row past the end
      // (the last group of an odd row count) reads the last row again and is not stored.
      constexpr int U = UO > 0 ? UO : unroll<F, NT, GLU>();
      DeviceWeight row_w[P];
#pragma unroll
      for (int p = 0; p < P; ++p)
        row_w[p] = weight_row<F>(GLU && p == 1 ? job.w[1] : w,
                                 static_cast<uint32_t>(GLU ? row : (row + p < rows ? row + p : rows - 1)));
      for (int base = 32 * part + lane; base < items; base += step * U) {
        typename F::Raw raw[P][U];
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int it = base + step * u;
          if (it < items) {
#pragma unroll
            for (int p = 0; p < P; ++p) raw[p][u] = F::load(row_w[p], 0, it);
          }
        }
        if (!waited) {
          pdl_wait();
          waited = true;
        }
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int it = base + step * u;
          if (it < items) {
            if constexpr (SA && P > 1) {
              typename F::Raw rows[P];
#pragma unroll
              for (int p = 0; p < P; ++p) rows[p] = raw[p][u];
              F::template dot_rows<NT, P>(rows, it, x, K, T, acc);
            } else {
#pragma unroll
              for (int p = 0; p < P; ++p) F::template dot_raw<NT>(raw[p][u], it, x, K, T, acc[p]);
            }
          }
        }
      }
    } else {
      // Several items per lane per pass, so that each lane has several 16-byte loads in flight.
      constexpr int kUnroll = NT <= 2 ? 4 : 2;
      for (int base = 32 * part + lane; base < items; base += step * kUnroll) {
#pragma unroll
        for (int u = 0; u < kUnroll; ++u)
          if (base + step * u < items) {
            F::template dot<NT>(w, row, base + step * u, x, K, T, acc[0]);
            if constexpr (GLU) F::template dot<NT>(job.w[1], row, base + step * u, x, K, T, acc[1]);
          }
      }
    }
  }
  if (!waited) pdl_wait();  // groups past the last row: their block still stores
#pragma unroll
  for (int p = 0; p < P; ++p) warp_sum<NT>(acc[p]);
  if (shift > 0) {
    if (lane == 0)
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int t = 0; t < NT; ++t) partial[warp][p][t] = acc[p][t];
    __syncthreads();
    if (part == 0)
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          acc[p][t] = 0.0f;
          for (int q = 0; q < (1 << shift); ++q) acc[p][t] += partial[warp + q][p][t];
        }
  }
  if (lane == 0 && part == 0)
#pragma unroll
    for (int t = 0; t < NT; ++t)
      if (t < T) {
        if constexpr (GLU) {
          if (row < rows) y[t * rows + row] = gelu_tanh(acc[0][t]) * acc[1][t];
        } else {
#pragma unroll
          for (int p = 0; p < P; ++p)
            if (row + p < rows) y[t * rows + row + p] = acc[p][t];
        }
      }
  pdl_trigger();  // after this block's stores: the next kernel may be scheduled as blocks finish
}

// Loads per lane and pass of one body of a K-quant mix: 3 sub-blocks at one token
// (kquant_planes_lab.cu, H200, 27B's Q4_K q alone over one warp per row pair: 6.9 us against 7.4
// over 2 warps), else the body's own unroll.
template <int NT>
constexpr int mix_unroll() {
  return NT == 1 ? 3 : 0;
}

// F0, F1, F2: the formats of job.w[0..2] (all F0 but for the mixed K-quant job). UO > 0: loads
// per lane and pass of every weight whose format has a separate load. MINB > 0: blocks per SM the
// register allocation must allow (__launch_bounds__), 0 leaves it to the compiler. RO > 0: rows
// per group, for one weight at one token (launch_nt's 4 rows per warp).
template <class F0, class F1, class F2, int NT, bool GLU, int UO = 0, int MINB = 0, bool SA = false, int WPR = 0,
          int RO = 0>
__global__ void __launch_bounds__(kWarps * 32, MINB)
    matvec_quant(const __grid_constant__ MatvecJob job, ActQ8 x, int T) {
  if constexpr (RO > 0) {  // one weight at one token (launch_nt's 4 rows per warp)
    matvec_block<F0, 1, false, UO, SA, WPR, RO>(job, 0, x, 1);
  } else if constexpr (GLU) {
    matvec_block<F0, NT, GLU, UO, SA, WPR>(job, 0, x, T);
  } else if constexpr (std::is_same_v<F0, F1> && std::is_same_v<F0, F2>) {
    matvec_block<F0, NT, GLU, UO, SA, WPR>(job, weight_of_block(job, static_cast<int>(blockIdx.x)), x, T);
  } else {
    // A K-quant mix (matvec_kquant_mix): every body takes the job's rows per group (launch_nt's grid).
    constexpr int kR = job_rows_per_group<F0, F1, F2, NT, GLU, SA>();
    const int m = weight_of_block(job, static_cast<int>(blockIdx.x));
    if (m == 0)
      matvec_block<F0, NT, GLU, mix_unroll<NT>(), SA, WPR, kR>(job, 0, x, T);
    else if (m == 1)
      matvec_block<F1, NT, GLU, mix_unroll<NT>(), SA, WPR, kR>(job, 1, x, T);
    else
      matvec_block<F2, NT, GLU, mix_unroll<NT>(), SA, WPR, kR>(job, 2, x, T);
  }
}

// Warps per row: for wide rows, the whole block for rows of at least 128 items (so that each lane
// has one or two), fewer for short rows; always at least what warps_per_row asks, so that
// matrices of few rows still fill the machine.
// wide_warps (Q4_0 only; 2 by default, 4 a measurement setting): rows of 128 to 192 items
// (4096- and 5376-wide inputs) take that many warps instead of 4, so a block holds more rows and
// bytes (launch_nt gives each lane all of its items in one pass).
// o_warps (Q4_0 rows that are not a GeGLU pair; 1 by default, 0 none): rows of exactly 128 items
// take that many warps, whatever warps_per_row asks (see pick_kernel).
inline int group_warps(int64_t rows, int64_t items, bool wide, int wide_warps = kWarps, int o_warps = 0) {
  if (wide && items == 128 && o_warps > 0) return o_warps;
  int wpr = !wide ? 1 : (items >= 128 ? 4 : (items >= 64 ? 2 : 1));
  if (wide && items >= 128 && items <= 192) wpr = std::min(wpr, wide_warps);
  return std::max(wpr, warps_per_row(rows, kWarps));
}

std::atomic<bool> g_shared_act{true};
std::atomic<int> g_wide_warps{2};
// MatvecJob.prefetch_blocks (set_matvec_prefetch_blocks clamps it to int).
std::atomic<int> g_prefetch_blocks{std::numeric_limits<int>::max()};
std::atomic<int> g_q4k_pairs{3};          // set_matvec_q4k_pairs
std::atomic<int> g_o_warps{1};            // warps per 128-item Q4_0 row pair at one token (set_matvec_o_warps)
std::atomic<int> g_item_warps{2};         // set_matvec_item_warps
std::atomic<int64_t> g_quad_rows{65536};  // set_matvec_quad_rows

// At most the warps that a one-token row gives items to at n items per lane (set_matvec_item_warps;
// 0: no cap). warps_per_row asks 4 warps per row of matrices of few rows, but the warps past a
// short row's items have nothing to load and only add a reduction (NOTES.md session 24, H200
// tg64 at n = 2: Q4_0 270M +13 %, 1B +3.5 %, 4B +4.6 %; 4B q4_mix +6.5 %, q4_k_m +5.6 %; 12B and
// 27B Q4_0 have no such rows, 27B q4_mix even). The K-quant heads' layout comes after it.
inline int item_warps_cap(int wpr, int64_t items, int n) {
  if (n <= 0) return wpr;
  int cap = 1;
  while (cap < kWarps && int64_t{32} * cap * n < items) cap *= 2;
  return std::min(wpr, cap);
}

// One token of Q4_0 (one format for every weight of the job): the rows that o_warps applies to.
template <class F, class F1, class F2, int NT>
constexpr bool kWideQ4_0 =
    kWideRows<F, NT>&& std::is_same_v<F, FormatQ4_0>&& std::is_same_v<F, F1>&& std::is_same_v<F, F2>;
// One token of Q4_0, Q4_K or Q5_K (a 32-value sub-block per item, weight_formats.cuh), one format
// for every weight of the job: the rows that wide_warps and the one-pass layout of 129-192 items
// apply to (kquant_planes_lab.cu, H200: Q4_K's GeGLU pair over 2 warps per row with 3 items per
// lane 35.2-35.8 us against 43.6 over 4 warps with 2; Q5_K, 4 bytes more per item, taken alike).
template <class F, class F1, class F2, int NT>
constexpr bool kWideQ4 = kWideRows<F, NT> &&
                         (std::is_same_v<F, FormatQ4_0> || std::is_same_v<F, FormatQ4_K> ||
                          std::is_same_v<F, FormatQ5_K>)&&std::is_same_v<F, F1>&& std::is_same_v<F, F2>;

// Weights of more than one format in one job (q4_mix's q/k/v: matvec_kquant_mix).
template <class F, class F1, class F2>
constexpr bool kMixed = !std::is_same_v<F, F1> || !std::is_same_v<F, F2>;
// One token of a K-quant weight alone (the output heads when their rows are short: kquant_head).
template <class F, int NT, bool GLU, class F1, class F2>
constexpr bool kKQuantAlone =
    NT == 1 && !GLU && !kMixed<F, F1, F2> &&
    (std::is_same_v<F, FormatQ4_K> || std::is_same_v<F, FormatQ5_K> || std::is_same_v<F, FormatQ6_K>);
// Whether a one-token K-quant weight alone takes the heads' layout: 65,536+ rows of at most 192
// items (27B's head: 168; 12B's 120; 4B's 80) over one warp per row pair, 3 items per lane and pass
// (kquant_planes_lab.cu, H200, the 27B head alone in Q6_K: 268.8 us against 359.5 over 4 warps
// with 2 items, what the 32-value formats' general rule gives it, and 360.3 over 2 warps with 3;
// Q4_K's and Q5_K's heads (q4_mix's, q5_k's) since session 26, in the lab Q4_K at 2 warps read
// 3.3 TB/s against Q4_0's 4.3).
inline bool kquant_head(int64_t rows, int64_t items) { return rows >= 65536 && items <= 192; }

// The kernel for a job whose groups have WPR warps (job.wpr; 0: read at run time, for more than
// one token); head: kquant_head's layout (launch_nt set job.wpr to 1 for it).
// At one token every one-format kernel takes its warps per row as a constant (matvec_block's WPR: NOTES.md
// session 16, H200, 27B tg128 Q4_0 188.6 -> 197.0, q4_mix 151.1 -> 161.5, Q8_0 115.9 -> 123.1
// with the lean loop).
template <class F, int NT, bool GLU, class F1, class F2, bool SA, int WPR>
auto pick_kernel(int64_t items, bool head) {
  auto* kernel = matvec_quant<F, F1, F2, NT, GLU, 0, 0, SA, WPR>;
  if constexpr (kKQuantAlone<F, NT, GLU, F1, F2> && WPR == 1) {
    if (head) kernel = matvec_quant<F, F1, F2, NT, GLU, 3, 0, SA, WPR>;
  }
  // Two warps per row of 129-192 items (27B's q/k/v and GeGLU pair): each lane's three items in
  // one pass (NOTES.md session 10, H100, 27B Q4_0 tg128 +0.6 % and +1.3 % with the one-pass merge,
  // against 4 warps per row with two items per lane). Measured slower, so not kept: one warp per
  // row with six items in one pass (-0.5 % against 2 warps; with two per pass -0.7 % against 4),
  // 3 or 6 items per lane and pass of the 672-item down rows (-1.3 %, -0.7 %), and Q8_0 rows over
  // 2 warps (-1.2 %).
  // Q4_K's GeGLU pair under a cap of 80 registers (6 blocks per SM instead of 5 at 85;
  // kquant_planes_lab.cu, H200: 35.2 against 35.8 us). Q5_K's rows (GeGLU pair or not) under 5
  // blocks per SM (89 and 95 registers instead of 109-121, no spill; NOTES.md session 26, H200,
  // tg64 two rounds each: 27B q5_k +0.6 %, 4B +0.3 / +1.4 %, a weak gain).
  if constexpr (kWideQ4<F, F1, F2, NT> && WPR == 2) {
    constexpr int kMinBlocks = GLU && std::is_same_v<F, FormatQ4_K> ? 6 : (std::is_same_v<F, FormatQ5_K> ? 5 : 0);
    if (items > 128) kernel = matvec_quant<F, F1, F2, NT, GLU, 3, kMinBlocks, SA, WPR>;
  }
  // 128-item Q4_0 rows (4096-wide inputs: the o projection of 12B and 27B) over one warp per row
  // pair, each lane its 4 items in one pass, under a cap of 80 registers: 27B's o is then 672
  // blocks, one wave at 6 blocks per SM, instead of 2,688 blocks of 2 rows over 4 warps (2.55 waves
  // at 8 per SM). NOTES.md session 12, H100, 27B Q4_0 tg128 +0.3 % (seven alternations, five of
  // them ahead; a weak gain); 2 warps per row (1.27 waves) was noise. Q4_K's o spills under that
  // cap (kquant_planes_lab.cu: 8.9 us against 7.0 over 2 warps), so it keeps wide_warps.
  if constexpr (kWideQ4_0<F, F1, F2, NT> && !GLU && WPR == 1) {
    if (items == 128) kernel = matvec_quant<F, F1, F2, NT, GLU, 4, 6, SA, WPR>;
  }
  return kernel;
}

// pick_kernel with job.wpr as a constant at one token. A K-quant q/k/v mix takes it only for one
// warp per row (27B's q/k/v; every body of the mix then runs with it), other widths read job.wpr.
template <class F, int NT, bool GLU, class F1, class F2, bool SA>
auto pick_for_wpr(const MatvecJob& job, int64_t items, bool head) {
  if constexpr (NT == 1 && kMixed<F, F1, F2>) {
    if (job.wpr == 1) return pick_kernel<F, NT, GLU, F1, F2, SA, 1>(items, head);
    return pick_kernel<F, NT, GLU, F1, F2, SA, 0>(items, head);
  } else if constexpr (NT == 1) {
    if (job.wpr == 1) return pick_kernel<F, NT, GLU, F1, F2, SA, 1>(items, head);
    if (job.wpr == 2) return pick_kernel<F, NT, GLU, F1, F2, SA, 2>(items, head);
    return pick_kernel<F, NT, GLU, F1, F2, SA, kWarps>(items, head);
  } else {
    return pick_kernel<F, NT, GLU, F1, F2, SA, 0>(items, head);
  }
}

// One token of a K-quant q/k/v mix whose every body has a separate load (q4_mix's Q4_K/Q5_K/Q6_K).
template <class F, int NT, bool GLU, class F1, class F2>
constexpr bool kPairableMix = NT == 1 && !GLU && kMixed<F, F1, F2> && HasRaw<F> && HasRaw<F1> && HasRaw<F2>;

// Whether a K-quant q/k/v mix asks for row pairs (g_q4k_pairs: 3, the default; 0-2 none; the
// K-quants' own one-format rows are pairs of 32-value items as every format with a separate load).
template <class F, int NT, bool GLU, class F1, class F2>
bool q4k_pairs() {
  if constexpr (kPairableMix<F, NT, GLU, F1, F2>) return g_q4k_pairs.load(std::memory_order_relaxed) == 3;
  return false;
}

template <class F, int NT, bool GLU, class F1 = F, class F2 = F>
void launch_nt(MatvecJob job, ActQ8 x, int T, cudaStream_t s) {
  int64_t rows = 0;
  for (int i = 0; i < (GLU ? 1 : job.n); ++i) rows += job.w[i].rows;
  // A K-quant mix's bodies (q4_mix's Q4_K q, Q5_K k and Q6_K v, all of 32-value items) share one
  // grid layout: the same rows per group (matvec_quant's mix branch) and warps per row.
  constexpr bool kMix = kMixed<F, F1, F2>;
  constexpr int R = job_rows_per_group<F, F1, F2, NT, GLU, false>();
  static_assert(F::kItem == F1::kItem && F::kItem == F2::kItem, "a mix's bodies share the item width");
  const int64_t items = job.w[0].cols / F::kItem;
  const int wide_warps = kWideQ4<F, F1, F2, NT> ? g_wide_warps.load(std::memory_order_relaxed) : kWarps;
  const int o_warps = kWideQ4_0<F, F1, F2, NT> && !GLU ? g_o_warps.load(std::memory_order_relaxed) : 0;
  job.wpr = group_warps(rows / R, items, kWideRows<F, NT> && !kMix, wide_warps, o_warps);
  if constexpr (NT == 1) {
    int n = g_item_warps.load(std::memory_order_relaxed);
    // A mix's lanes take 3 sub-blocks per pass (mix_unroll), so its cap counts that many per lane:
    // 4B's q/k/v (80 sub-blocks a row) then keeps one warp per row, as when the cap counted its
    // Q5_K body's 64-value items (at 2 warps per row, 4B q4_mix tg64 on the H200 703.6 against
    // 741.2; session 26).
    if constexpr (kMix) n = n > 0 ? std::max(n, mix_unroll<NT>()) : 0;
    job.wpr = item_warps_cap(job.wpr, items, n);
  }
  bool head = false;  // kquant_head's layout: one warp per row pair
  if constexpr (kKQuantAlone<F, NT, GLU, F1, F2>) {
    head = kquant_head(job.w[0].rows, items);
    if (head) job.wpr = 1;
  }
  // A format with a separate load and 2 rows per group (a GeGLU pair, a pair of rows of the 32-value
  // formats at any token count, or a K-quant mix's row pairs at one token when q4k_pairs asks): the
  // rows share each activation load, or (shared_act off) load it once per row (no mix pairs then).
  constexpr bool kShareable = kPairableMix<F, NT, GLU, F1, F2> || ((GLU || R > 1) && HasRaw<F> && !kMix);
  bool shared = false;
  auto* kernel = pick_for_wpr<F, NT, GLU, F1, F2, false>(job, items, head);
  if constexpr (kShareable) {  // the process-wide switches, read once: they may change between launches
    shared = g_shared_act.load(std::memory_order_relaxed) && (GLU || R > 1 || q4k_pairs<F, NT, GLU, F1, F2>());
    if (shared) kernel = pick_for_wpr<F, NT, GLU, F1, F2, true>(job, items, head);
  }
  int64_t group_rows = shared ? job_rows_per_group<F, F1, F2, NT, GLU, true>() : R;
  // One weight of a 32-value format at one token with many rows of at most 32 items (the 270M's
  // output head: 262,144 rows of 20): one warp per 4 rows that share each activation load, each
  // lane its one item of each row in one pass, so a warp has twice a row pair's bytes in flight
  // (set_matvec_quad_rows). A row pair of 20 Q8_0 items is 1.4 KB per warp, ~33 KB per SM at 24
  // warps, below what the H200's bandwidth-latency product asks (~50 KB per SM): the 270M head ran
  // at ~3.1 TB/s (NOTES.md session 24: tg64 +3 % for the head alone; the 270M's o, 640 rows of 32
  // items, in quads too was mixed).
  if constexpr (kWideRows<F, NT> && !GLU && !kMix) {
    const int64_t quad = g_quad_rows.load(std::memory_order_relaxed);
    if (quad > 0 && job.n == 1 && job.wpr == 1 && shared && items <= 32 && job.w[0].rows >= quad) {
      kernel = matvec_quant<F, F, F, 1, false, 1, 0, true, 1, 4>;
      group_rows = 4;
    }
  }
  const int64_t rows_per_block = kWarps / job.wpr * group_rows;
  int64_t blocks = 0;
  const int n = GLU ? 1 : job.n;
  for (int i = 0; i < n; ++i) {
    job.first_block[i] = static_cast<int>(blocks);
    blocks += (job.w[i].rows + rows_per_block - 1) / rows_per_block;
  }
  for (int i = n; i < 4; ++i) job.first_block[i] = static_cast<int>(blocks);
  job.n = n;
  job.prefetch_blocks = g_prefetch_blocks.load(std::memory_order_relaxed);
  const dim3 grid(static_cast<unsigned>(blocks)), block(kWarps * 32);
  launch(kernel, grid, block, 0, s, job, x, T);
}

template <class F, bool GLU, class F1 = F, class F2 = F>
void launch_for(const MatvecJob& job, ActQ8 x, int T, cudaStream_t s) {
  if (T <= 1)
    launch_nt<F, 1, GLU, F1, F2>(job, x, T, s);
  else if (T <= 2)
    launch_nt<F, 2, GLU, F1, F2>(job, x, T, s);
  else if (T <= 4)
    launch_nt<F, 4, GLU, F1, F2>(job, x, T, s);
  else
    launch_nt<F, 8, GLU, F1, F2>(job, x, T, s);
}

template <bool GLU>
cudaError_t launch_job(const MatvecJob& job, ActQ8 x, int T, cudaStream_t s) {
  if (job.n < 1 || job.n > 3 || (GLU && job.n != 2)) return cudaErrorInvalidValue;
  if (T < 1) return cudaSuccess;  // no tokens: nothing to compute (the one-token kernels assume T == 1)
  for (int i = 1; i < job.n; ++i)
    if (job.w[i].cols != job.w[0].cols) return cudaErrorInvalidValue;
  if (GLU && job.w[1].rows != job.w[0].rows) return cudaErrorInvalidValue;
  // 5-8 tokens on int8 tensor cores where the shapes and formats allow (matvec_mma.cu).
  if (matvec_mma_wanted(job, T)) return launch_matvec_mma(job, x, T, GLU, s);
  if constexpr (!GLU) {
    switch (matvec_kquant_mix(job)) {
      case 1:
        launch_for<FormatQ4_K, false, FormatQ5_K, FormatQ6_K>(job, x, T, s);
        return cudaGetLastError();
      case 2:
        launch_for<FormatQ4_K, false, FormatQ4_K, FormatQ6_K>(job, x, T, s);
        return cudaGetLastError();
      case 3:
        launch_for<FormatQ5_K, false, FormatQ5_K, FormatQ6_K>(job, x, T, s);
        return cudaGetLastError();
      default:
        break;
    }
  }
  for (int i = 1; i < job.n; ++i)
    if (job.w[i].type != job.w[0].type) return cudaErrorInvalidValue;
  switch (job.w[0].type) {
    case GgmlType::Q8_0:
      launch_for<FormatQ8_0, GLU>(job, x, T, s);
      break;
    case GgmlType::Q4_0:
      launch_for<FormatQ4_0, GLU>(job, x, T, s);
      break;
    case GgmlType::Q4_1:
      launch_for<FormatQ4_1, GLU>(job, x, T, s);
      break;
    case GgmlType::Q5_0:
      launch_for<FormatQ5_0, GLU>(job, x, T, s);
      break;
    case GgmlType::Q5_1:
      launch_for<FormatQ5_1, GLU>(job, x, T, s);
      break;
    case GgmlType::Q4_K:
      launch_for<FormatQ4_K, GLU>(job, x, T, s);
      break;
    case GgmlType::Q5_K:
      launch_for<FormatQ5_K, GLU>(job, x, T, s);
      break;
    case GgmlType::Q6_K:
      launch_for<FormatQ6_K, GLU>(job, x, T, s);
      break;
    default:
      return cudaErrorNotSupported;
  }
  return cudaGetLastError();
}

}  // namespace

void set_matvec_shared_act(bool on) { g_shared_act.store(on, std::memory_order_relaxed); }
void set_matvec_wide_warps(int warps) { g_wide_warps.store(warps == 2 ? 2 : kWarps, std::memory_order_relaxed); }
void set_matvec_o_warps(int warps) {
  g_o_warps.store(warps == 1 || warps == 2 || warps == 4 ? warps : 0, std::memory_order_relaxed);
}
void set_matvec_q4k_pairs(int mode) { g_q4k_pairs.store(mode >= 0 && mode <= 3 ? mode : 0); }
int matvec_q4k_pairs() { return g_q4k_pairs.load(std::memory_order_relaxed); }
int matvec_o_warps() { return g_o_warps.load(std::memory_order_relaxed); }
void set_matvec_quad_rows(int64_t min_rows) { g_quad_rows.store(std::max<int64_t>(min_rows, 0)); }
int64_t matvec_quad_rows() { return g_quad_rows.load(std::memory_order_relaxed); }
void set_matvec_item_warps(int n) { g_item_warps.store(std::max(n, 0), std::memory_order_relaxed); }
int matvec_item_warps() { return g_item_warps.load(std::memory_order_relaxed); }
void set_matvec_prefetch_blocks(int64_t blocks) {
  g_prefetch_blocks.store(static_cast<int>(std::min<int64_t>(blocks, std::numeric_limits<int>::max())),
                          std::memory_order_relaxed);
}
int matvec_wide_warps() { return g_wide_warps.load(std::memory_order_relaxed); }
bool matvec_shared_act() { return g_shared_act.load(std::memory_order_relaxed); }

bool matvec_quant_supports(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q4_1 || t == GgmlType::Q5_0 ||
         t == GgmlType::Q5_1 || t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q6_K;
}

cudaError_t launch_matvec_quant(const DeviceWeight& w, ActQ8 x, int T, float* y, cudaStream_t s) {
  MatvecJob job;
  job.w[0] = w;
  job.y[0] = y;
  job.n = 1;
  return launch_job<false>(job, x, T, s);
}

bool matvec_multi_supports(const MatvecJob& job) {
  if (job.n < 1 || job.n > 3) return false;
  for (int i = 0; i < job.n; ++i)
    if (!matvec_quant_supports(job.w[i].type) || job.w[i].cols != job.w[0].cols) return false;
  bool same = true;
  for (int i = 1; i < job.n; ++i) same = same && job.w[i].type == job.w[0].type;
  return same || matvec_kquant_mix(job) != 0;
}

int matvec_kquant_mix(const MatvecJob& job) {
  if (job.n != 3) return 0;
  const GgmlType q = job.w[0].type, k = job.w[1].type, v = job.w[2].type;
  if (q == GgmlType::Q4_K && k == GgmlType::Q5_K && v == GgmlType::Q6_K) return 1;
  if (q == GgmlType::Q4_K && k == GgmlType::Q4_K && v == GgmlType::Q6_K) return 2;
  if (q == GgmlType::Q5_K && k == GgmlType::Q5_K && v == GgmlType::Q6_K) return 3;
  return 0;
}

cudaError_t launch_matvec_multi(const MatvecJob& job, ActQ8 x, int T, cudaStream_t s) {
  return launch_job<false>(job, x, T, s);
}

cudaError_t launch_matvec_geglu(const DeviceWeight& gate, const DeviceWeight& up, ActQ8 x, int T, float* y,
                                cudaStream_t s) {
  MatvecJob job;
  job.w[0] = gate;
  job.w[1] = up;
  job.y[0] = y;
  job.n = 2;
  return launch_job<true>(job, x, T, s);
}

}  // namespace unicorn::cuda
