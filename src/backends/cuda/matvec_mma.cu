// Batched decode (2 to 8 tokens) of the quantized matvec on int8 tensor cores: each
// mma.sync.m16n8k32 multiplies one 32-value item of 16 weight rows by the same item of the 8 token
// rows' int8 activations (ActQ8, as the dp4a matvec reads them; tokens past T are zeros), and its
// int32 results are scaled into f32 accumulators as the dp4a matvec scales its dot products
// (mma_frag.cuh). The dp4a matvec reads each activation word once per row (per row pair since
// session 27), so at 8 tokens it issued 8 dp4a and 8 activation loads per weight word and took
// ~3x its one-token time; here one mma serves 16 rows x 8 tokens, and a lane's activation loads
// serve RT x 16 rows. Weights and activations are read as whole 16-byte items per lane and put in
// fragment order by shuffles within each quad of lanes (mma_frag.cuh quad_transpose).
//
// Layout: a block of kw warps owns 16 * RT consecutive rows of one weight of the job (a GeGLU pair:
// the same rows of gate and up); its warps split the row's items in groups of 4 (warp w takes
// groups w, w + kw, ...), each lane loading its fragment words of 4 items per row at once
// (MmaGroup), in one of the modes below: kOneGroup and kTwoGroups hold the group's planes in
// registers and put them in fragment order by shuffles; kStaged (and the measurement modes built on
// it) copies the quant plane into a per-warp shared-memory ring (cp.async, S - 1 groups ahead: 3,
// Q8_0 2) and reads it in fragment order by ldmatrix. The warps' partial sums meet in shared
// memory, and the block writes y[t * rows + r] (for a GeGLU pair gelu_tanh(gate) * up, spec §2.5).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <type_traits>

#include "backends/cuda/gelu.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/matvec_shape.h"
#include "backends/cuda/mma_frag.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kGroup = 4;  // items per lane and load group (MmaGroup)
// How a warp keeps weight loads in flight (UNICORN_CUDA_MMA_PIPELINE): one group of 4 items in
// registers, two groups in registers, or the quant plane staged in shared memory (cp.async, kStages
// groups deep; the side planes one group ahead in registers) and read in fragment order by ldmatrix.
// kStagedDeep: as kStaged, with the side planes S - 1 groups ahead in registers too (a measurement
// mode, session 29: does the one-group look-ahead of the side planes bound kStaged?).
// kStagedAll: as kStaged, with each group's activations and their scales in the ring too (copied
// after pdl_wait(), read by ldmatrix), and the side planes S - 1 groups ahead for the formats with
// small ones (kDeepSide); a measurement mode.
constexpr int kOneGroup = 0, kTwoGroups = 1, kStaged = 2, kStagedDeep = 3, kStagedAll = 4;
// The formats whose side planes fit S - 1 groups ahead in registers without spilling.
template <class F>
constexpr bool kDeepSide =
    std::is_same_v<F, FormatQ4_0> || std::is_same_v<F, FormatQ4_1> || std::is_same_v<F, FormatQ8_0>;
// Warps per block along the items: 8 with two groups of weight loads in flight per warp in
// registers (up to 255 registers a thread), 16 else (up to 128).
template <int MODE>
constexpr int kMaxWarps = MODE == kTwoGroups || MODE == kStagedAll ? 8 : 16;
// Groups of the staged quant plane per warp (kStaged), by the plane's item bytes.
template <int IB>
constexpr int kStages = IB == 16 ? 4 : 3;

std::atomic<int> g_mma_min_tokens{kMmaDecodeMinTokens};
std::atomic<bool> g_mma_all_formats{false};
std::atomic<int> g_mma_pipeline{-1};  // -1 by format (kDefaultMode), else a mode (kOneGroup .. kStagedAll)
std::atomic<int> g_mma_warps{0};      // 0: by shape

// C[16x8] = A[16x32] B[32x8] in int32 (fragments: mma_frag.cuh).
__device__ __forceinline__ void mma_k32(const uint32_t a[4], uint32_t b0, uint32_t b1, int r[4]) {
  asm volatile(
      "mma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1), "r"(0), "r"(0), "r"(0), "r"(0));
}
// C[16x8] = A[16x16] B[16x8]: a0 row g, a1 row g + 8, values 4c..4c+3; b0 token g.
__device__ __forceinline__ void mma_k16(uint32_t a0, uint32_t a1, uint32_t b0, int r[4]) {
  asm volatile("mma.sync.aligned.m16n8k16.row.col.s32.s8.s8.s32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%7,%8,%9,%10};"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(a0), "r"(a1), "r"(b0), "r"(0), "r"(0), "r"(0), "r"(0));
}

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes from global to shared memory, past L1 (cp.async.cg: a weight copy that may precede
// pdl_wait(), tools/check_pdl_order.py).
__device__ __forceinline__ void cp_async16(uint32_t dst, const void* src) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(src) : "memory");
}
// The same, or 16 zero bytes where !live (cp.async's src-size 0: nothing is read).
__device__ __forceinline__ void cp_async16_or_zero(uint32_t dst, const void* src, bool live) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" ::"r"(dst), "l"(src), "r"(live ? 16 : 0) : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;" ::: "memory"); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
// Four 8x8 matrices of 16-bit values (here: 8 rows of 16 bytes each): lanes 8 m .. 8 m + 7 give
// the rows of matrix m, and lane 4 g + c gets bytes 4c..4c+3 of row g of matrix m in v[m].
__device__ __forceinline__ void ldmatrix_x4(uint32_t addr, uint32_t (&v)[4]) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
               : "=r"(v[0]), "=r"(v[1]), "=r"(v[2]), "=r"(v[3])
               : "r"(addr));
}
// Byte offset of 16-byte chunk k of staged row R (a row: one weight row's 4 items of IB bytes). The
// chunks of a row are rotated by an XOR of its position so that the 8 rows an ldmatrix reads at one
// chunk fall into distinct banks.
template <int IB>
__device__ __forceinline__ uint32_t staged_chunk(int R, int k) {
  constexpr int kRowBytes = 4 * IB, kChunks = kRowBytes / 16;
  return static_cast<uint32_t>(R * kRowBytes + ((k ^ (((R & 7) * kRowBytes >> 7) & (kChunks - 1))) * 16));
}

// The quant plane's item bytes of format F (16, Q8_0 32) and one warp's ring of kStages groups.
template <class F>
constexpr int item_bytes() {
  if constexpr (requires { MmaGroup<F>::kItemBytes; })
    return MmaGroup<F>::kItemBytes;
  else
    return 16;
}
// kStagedAll's activations of one group: 8 token rows of 4 items (32 bytes each), then their (d,
// d * sum) (8 tokens x 4 items x 8 bytes).
constexpr int kActBytes = 8 * 4 * 32, kActScaleBytes = 8 * 4 * 8;
template <class F, int P, int RT, bool ACTS = false>
constexpr size_t ring_bytes() {
  return static_cast<size_t>(kStages<item_bytes<F>()>) *
         (P * RT * 16 * 4 * item_bytes<F>() + (ACTS ? kActBytes + kActScaleBytes : 0));
}

// One block's rows [row0, row0 + 16 RT) of the P weights w[0..P) (P = 2: a GeGLU pair) against
// the T tokens of x: acc[p][rt][i] is C fragment entry i of row tile rt (rows row0 + 16 rt + g
// (+ 8 for i >= 2), tokens 2c + i % 2).
template <class F, int P, int RT, int MODE>
__device__ __forceinline__ void mma_rows(const DeviceWeight* const* w, int64_t row0, ActQ8 x, int T, int wk, int kw,
                                         float (&acc)[P][RT][4], uint8_t* ring) {
  constexpr bool PIPE = MODE != kOneGroup, STAGED = MODE >= kStaged, ACTS = MODE == kStagedAll;
  using M = MmaGroup<F>;
  const int lane = static_cast<int>(threadIdx.x % 32), g = lane / 4, c = lane % 4;
  const int64_t rows = w[0]->rows, K = w[0]->cols, items = K / 32;
  int64_t r[RT][2];  // rows past the end read the last row and are not stored
#pragma unroll
  for (int rt = 0; rt < RT; ++rt)
#pragma unroll
    for (int h = 0; h < 2; ++h) r[rt][h] = min(row0 + 16 * rt + 8 * h + g, rows - 1);
  // Activations: lane c reads token g's item i0 + c (its 32 bytes; quad_transpose puts word c of
  // each item in place for the B fragment), and the (d, d * sum) of tokens 2c and 2c + 1 (for the
  // C fragment's columns) for the group's 4 items.
  const bool live_b = g < T, live0 = 2 * c < T, live1 = 2 * c + 1 < T;
  const int8_t* xb = x.q + static_cast<int64_t>(g) * K + 32 * c;
  const float* ds0 = x.ds + 2 * static_cast<int64_t>(2 * c) * items;
  const float* ds1 = ds0 + 2 * items;
#pragma unroll
  for (int p = 0; p < P; ++p)
#pragma unroll
    for (int rt = 0; rt < RT; ++rt)
#pragma unroll
      for (int i = 0; i < 4; ++i) acc[p][rt][i] = 0.0f;

  using Groups = typename M::G[P][RT][2];
  // Every plane of a group into registers, or (STAGED) its side planes only.
  auto load = [&](Groups& grp, int64_t at) {
#pragma unroll
    for (int p = 0; p < P; ++p)
#pragma unroll
      for (int rt = 0; rt < RT; ++rt)
#pragma unroll
        for (int h = 0; h < 2; ++h)
          grp[p][rt][h] = STAGED ? M::side(*w[p], r[rt][h], at, c) : M::fetch(*w[p], r[rt][h], at, c);
  };
  // STAGED: the quant plane's items of the group at `at` into ring slot `slot`: lane c copies item at + c
  // of each of its rows (staged row R = 8 (2 (p RT + rt) + h) + g).
  constexpr int IB = item_bytes<F>();
  constexpr int S = kStages<IB>, kWeightBytes = P * RT * 16 * 4 * IB;
  constexpr int kStageBytes = kWeightBytes + (ACTS ? kActBytes + kActScaleBytes : 0);
  // Groups whose side planes are in registers ahead of the one in use (PIPE).
  constexpr int kAhead = MODE == kStagedDeep || (ACTS && kDeepSide<F>) ? S - 1 : 1;
  const uint32_t ring_at = STAGED ? smem_addr(ring) : 0u;
  auto issue = [&](int64_t at, int slot) {
#pragma unroll
    for (int p = 0; p < P; ++p)
#pragma unroll
      for (int rt = 0; rt < RT; ++rt)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          const int R = 8 * (2 * (p * RT + rt) + h) + g;
          const uint8_t* src = w[p]->q + r[rt][h] * w[p]->q_row_bytes + (at + c) * IB;
#pragma unroll
          for (int k = 0; k < IB / 16; ++k)
            cp_async16(ring_at + slot * kStageBytes + staged_chunk<IB>(R, c * (IB / 16) + k), src + 16 * k);
        }
  };
  // ACTS: the activations of the group at `at` (after pdl_wait()): lane c copies token g's item at +
  // c (row g of 128 bytes, as a Q8_0 row), lanes 0-15 the (d, d * sum) of token lane / 2's 4 items
  // (32 bytes a token); tokens past T are zeros.
  auto issue_acts = [&](int64_t at, int slot) {
    const uint32_t base = ring_at + slot * kStageBytes + kWeightBytes;
    const int8_t* src = x.q + static_cast<int64_t>(live_b ? g : 0) * K + (at + c) * 32;
#pragma unroll
    for (int k = 0; k < 2; ++k) cp_async16_or_zero(base + staged_chunk<32>(g, 2 * c + k), src + 16 * k, live_b);
    if (lane < 16) {
      const int t = lane / 2;
      const float* ds = x.ds + 2 * (static_cast<int64_t>(t < T ? t : 0) * items + at) + 4 * (lane % 2);
      cp_async16_or_zero(base + kActBytes + 16 * lane, ds, t < T);
    }
  };
  // ldmatrix row of this lane: matrix m = lane / 8 reads half m % 2 (rows + 8) of a tile.
  const int lm = lane / 8, lrow = lane % 8;
  int step_no = 0;  // ACTS: the groups done (the first two wait for the activations' prologue group)
  int slot = 0;
  const uint4 zero = make_uint4(0, 0, 0, 0);
  const float4 zf = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
  const int64_t stride = static_cast<int64_t>(kw) * kGroup;
  int64_t i0 = static_cast<int64_t>(wk) * kGroup;
  // The group at i0 from cur. PIPE: the next group's weight loads go into nxt first, so that two
  // groups per warp are in flight (one alone leaves the warp waiting on each group's latency,
  // but the second costs registers: session 28, faster for Q4_0 / Q4_1 / Q5_0, slower for the
  // formats with large groups); else they go into cur once it is used. STAGED: the quant plane is
  // S - 1 groups ahead in shared memory, and nxt holds the next group's side planes.
  auto step = [&](Groups& cur, Groups& nxt) {
    // (ACTS: from the ring below)
    uint4 xlo = !ACTS && live_b ? ld_dep_u4(xb + i0 * 32) : zero,
          xhi = !ACTS && live_b ? ld_dep_u4(xb + i0 * 32 + 16) : zero;
    float4 s0a = !ACTS && live0 ? ld_dep_f4(ds0 + 2 * i0) : zf, s0b = !ACTS && live0 ? ld_dep_f4(ds0 + 2 * i0 + 4) : zf;
    float4 s1a = !ACTS && live1 ? ld_dep_f4(ds1 + 2 * i0) : zf, s1b = !ACTS && live1 ? ld_dep_f4(ds1 + 2 * i0 + 4) : zf;
    if (PIPE && i0 + kAhead * stride < items) load(nxt, i0 + kAhead * stride);
    if constexpr (STAGED) {
      // This group's slot has landed (S - 2 later groups may still be pending; ACTS: the first two
      // groups also wait for the activations' prologue group, committed after the weights'); the
      // slot of the previous group, read by every lane before this point, takes the group S - 1
      // ahead.
      if constexpr (ACTS) {
        if (step_no == 0)
          cp_async_wait<0>();
        else if (step_no == 1)
          cp_async_wait<1>();
        else
          cp_async_wait<S - 2>();
        ++step_no;
      } else {
        cp_async_wait<S - 2>();
      }
      __syncwarp();
      const int64_t ahead = i0 + (S - 1) * stride;
      if (ahead < items) {
        issue(ahead, (slot + S - 1) % S);
        if constexpr (ACTS) issue_acts(ahead, (slot + S - 1) % S);
      }
      cp_async_commit();
    } else {
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int rt = 0; rt < RT; ++rt)
#pragma unroll
          for (int h = 0; h < 2; ++h) M::arrange(cur[p][rt][h], c);
    }
    uint32_t bv[4];  // ACTS: b0, b1 of items u, u + 1 (u even)
    if constexpr (ACTS) {
      const uint8_t* sc = ring + slot * kStageBytes + kWeightBytes + kActBytes;
      s0a = *reinterpret_cast<const float4*>(sc + 64 * c), s0b = *reinterpret_cast<const float4*>(sc + 64 * c + 16);
      s1a = *reinterpret_cast<const float4*>(sc + 64 * c + 32),
      s1b = *reinterpret_cast<const float4*>(sc + 64 * c + 48);
    } else {
      quad_transpose(xlo, c);
      quad_transpose(xhi, c);
    }
    uint32_t qv[P][RT][4];  // STAGED nibble planes: words of rows g, g + 8 at items u, u + 1 (u even)
#pragma unroll
    for (int u = 0; u < kGroup; ++u) {
      uint32_t b0, b1;
      if constexpr (ACTS) {
        if (u % 2 == 0)
          ldmatrix_x4(ring_at + slot * kStageBytes + kWeightBytes + staged_chunk<32>(lrow, 2 * u + lm), bv);
        b0 = bv[2 * (u % 2)], b1 = bv[2 * (u % 2) + 1];
      } else {
        b0 = word_of(xlo, u), b1 = word_of(xhi, u);
      }
      const float4 s0 = u < 2 ? s0a : s0b, s1 = u < 2 ? s1a : s1b;
      const float2 d0 = u % 2 == 0 ? make_float2(s0.x, s0.y) : make_float2(s0.z, s0.w);
      const float2 d1 = u % 2 == 0 ? make_float2(s1.x, s1.y) : make_float2(s1.z, s1.w);
#pragma unroll
      for (int p = 0; p < P; ++p)
#pragma unroll
        for (int rt = 0; rt < RT; ++rt) {
          uint32_t a[4];  // rows g, g + 8 at values 4c.. (a0, a1) and 16 + 4c.. (a2, a3)
          if constexpr (STAGED) {
            const int R = 8 * (2 * (p * RT + rt) + lm % 2) + lrow;
            const uint32_t base = ring_at + slot * kStageBytes;
            if constexpr (IB == 32) {  // Q8_0: matrices (row half, 16-byte half of item u)
              ldmatrix_x4(base + staged_chunk<IB>(R, 2 * u + lm / 2), a);
            } else {
              if (u % 2 == 0) ldmatrix_x4(base + staged_chunk<IB>(R, u + lm / 2), qv[p][rt]);
              M::words_q(qv[p][rt][2 * (u % 2)], cur[p][rt][0], u, c, a[0], a[2]);
              M::words_q(qv[p][rt][2 * (u % 2) + 1], cur[p][rt][1], u, c, a[1], a[3]);
            }
          } else {
            M::words(cur[p][rt][0], u, c, a[0], a[2]);
            M::words(cur[p][rt][1], u, c, a[1], a[3]);
          }
          const auto s_lo = M::scale(cur[p][rt][0], u, i0), s_hi = M::scale(cur[p][rt][1], u, i0);
          float* o = acc[p][rt];
          if constexpr (M::kHalves) {
            int e[4], f[4];
            mma_k16(a[0], a[1], b0, e);
            mma_k16(a[2], a[3], b1, f);
            o[0] += M::scaled_halves(s_lo, d0.x, e[0], f[0]);
            o[1] += M::scaled_halves(s_lo, d1.x, e[1], f[1]);
            o[2] += M::scaled_halves(s_hi, d0.x, e[2], f[2]);
            o[3] += M::scaled_halves(s_hi, d1.x, e[3], f[3]);
          } else {
            int e[4];
            mma_k32(a, b0, b1, e);
            o[0] += M::scaled(s_lo, d0, e[0]);
            o[1] += M::scaled(s_lo, d1, e[1]);
            o[2] += M::scaled(s_hi, d0, e[2]);
            o[3] += M::scaled(s_hi, d1, e[3]);
          }
        }
    }
    i0 += stride;
    slot = slot + 1 == S ? 0 : slot + 1;
    if (!PIPE && i0 < items) load(cur, i0);
  };
  // Weights do not depend on the previous kernel: the first group's loads (STAGED: the first S - 1
  // groups' quant planes, the first kAhead groups' side planes) go before pdl_wait().
  if constexpr (STAGED) {
#pragma unroll
    for (int k = 0; k < S - 1; ++k) {
      if (i0 + k * stride < items) issue(i0 + k * stride, k);
      cp_async_commit();
    }
  }
  // ACTS: the first S - 1 groups' activations, once the previous kernel's output is there (one
  // commit group after the weights').
  auto after_wait = [&] {
    if constexpr (ACTS) {
#pragma unroll
      for (int k = 0; k < S - 1; ++k)
        if (i0 + k * stride < items) issue_acts(i0 + k * stride, k);
      cp_async_commit();
    }
  };
  if constexpr (kAhead > 1) {
    Groups gr[kAhead + 1];  // a ring: the group in use and the kAhead after it
#pragma unroll
    for (int k = 0; k < kAhead; ++k)
      if (i0 + k * stride < items) load(gr[k], i0 + k * stride);
    pdl_wait();
    after_wait();
    for (bool more = i0 < items; more;) {
#pragma unroll
      for (int k = 0; k <= kAhead; ++k) {
        step(gr[k], gr[(k + kAhead) % (kAhead + 1)]);
        if (i0 >= items) {
          more = false;
          break;
        }
      }
    }
    return;
  }
  Groups ga, gb;
  if (i0 < items) load(ga, i0);
  pdl_wait();
  after_wait();
  if constexpr (PIPE) {
    while (i0 < items) {
      step(ga, gb);
      if (i0 >= items) break;
      step(gb, ga);
    }
  } else {
    while (i0 < items) step(ga, gb);
  }
}

// The job's weight m (first_block ranges) of format F: the block's rows, their sums across the
// block's warps, and the stores.
template <class F, bool GLU, int RT, int MODE>
__device__ __forceinline__ void mma_block(const MatvecJob& job, int m, ActQ8 x, int T) {
  constexpr int P = GLU ? 2 : 1;
  extern __shared__ float part[];  // [kw][P][RT][4][32], then (kStaged) each warp's ring of staged groups
  const int lane = static_cast<int>(threadIdx.x % 32), wk = static_cast<int>(threadIdx.x / 32);
  const int kw = static_cast<int>(blockDim.x / 32);
  const DeviceWeight* w[P];
  w[0] = &job.w[m];
  if constexpr (GLU) w[1] = &job.w[1];
  const int64_t row0 = static_cast<int64_t>(blockIdx.x - job.first_block[m]) * 16 * RT;
  float acc[P][RT][4];
  uint8_t* ring =
      reinterpret_cast<uint8_t*>(part + kw * P * RT * 4 * 32) + wk * ring_bytes<F, P, RT, MODE == kStagedAll>();
  mma_rows<F, P, RT, MODE>(w, row0, x, T, wk, kw, acc, ring);
#pragma unroll
  for (int p = 0; p < P; ++p)
#pragma unroll
    for (int rt = 0; rt < RT; ++rt)
#pragma unroll
      for (int i = 0; i < 4; ++i) part[((wk * P + p) * RT * 4 + rt * 4 + i) * 32 + lane] = acc[p][rt][i];
  __syncthreads();
  pdl_trigger();
  const int64_t rows = job.w[m].rows;
  float* y = job.y[m];
  for (int e = static_cast<int>(threadIdx.x); e < RT * 4 * 32; e += static_cast<int>(blockDim.x)) {
    const int rt = e / 128, i = (e / 32) % 4, l = e % 32;
    float s[P];
#pragma unroll
    for (int p = 0; p < P; ++p) {
      s[p] = 0.0f;
      for (int q = 0; q < kw; ++q) s[p] += part[((q * P + p) * RT * 4 + rt * 4 + i) * 32 + l];
    }
    const int64_t row = row0 + 16 * rt + l / 4 + 8 * (i / 2);
    const int t = 2 * (l % 4) + i % 2;
    if (row < rows && t < T) {
      if constexpr (GLU)
        y[t * rows + row] = gelu_tanh(s[0]) * s[1];
      else
        y[t * rows + row] = s[0];
    }
  }
}

template <class F0, class F1, class F2, bool GLU, int RT, int MODE>
__global__ void __launch_bounds__(kMaxWarps<MODE> * 32)
    matvec_mma(const __grid_constant__ MatvecJob job, ActQ8 x, int T) {
  const int blk = static_cast<int>(blockIdx.x);
  const int m =
      GLU ? 0 : (job.n > 1 && blk >= job.first_block[1] ? (job.n > 2 && blk >= job.first_block[2] ? 2 : 1) : 0);
  if constexpr (GLU || (std::is_same_v<F0, F1> && std::is_same_v<F0, F2>)) {
    mma_block<F0, GLU, RT, MODE>(job, m, x, T);
  } else {
    if (m == 0)
      mma_block<F0, GLU, RT, MODE>(job, 0, x, T);
    else if (m == 1)
      mma_block<F1, GLU, RT, MODE>(job, 1, x, T);
    else
      mma_block<F2, GLU, RT, MODE>(job, 2, x, T);
  }
}

template <class F0, bool GLU, class F1, class F2, int MODE>
cudaError_t launch_pipe(MatvecJob job, ActQ8 x, int T, cudaStream_t s) {
  // A row tile per warp for a GeGLU pair (its gate and up words are two tiles' worth), two else.
  constexpr int RT = GLU ? 1 : 2;
  const int n = GLU ? 1 : job.n;
  int64_t blocks = 0;
  for (int i = 0; i < n; ++i) {
    job.first_block[i] = static_cast<int>(blocks);
    blocks += (job.w[i].rows + 16 * RT - 1) / (16 * RT);
  }
  for (int i = n; i < 4; ++i) job.first_block[i] = static_cast<int>(blocks);
  job.n = n;
  constexpr int P = GLU ? 2 : 1;
  // The ring of the block's widest format (the K-quant mixes' formats all stage 16-byte items).
  constexpr size_t ring =
      MODE >= kStaged
          ? std::max({ring_bytes<F0, P, RT, MODE == kStagedAll>(), ring_bytes<F1, P, RT, MODE == kStagedAll>(),
                      ring_bytes<F2, P, RT, MODE == kStagedAll>()})
          : 0;
  constexpr size_t kWarpSmem = P * RT * 4 * 32 * sizeof(float) + ring;
  constexpr auto kernel = matvec_mma<F0, F1, F2, GLU, RT, MODE>;
  // The staged rings take 8-17 KB a warp: as many warps as the device lets a block hold (sm_86 /
  // sm_89 opt into 99 KiB, sm_80 163, sm_90 227).
  const int max_warps = MODE >= kStaged
                            ? static_cast<int>(std::clamp<size_t>(device_smem_optin() / kWarpSmem, 1, kMaxWarps<MODE>))
                            : kMaxWarps<MODE>;
  if constexpr (MODE >= kStaged) {
    const cudaError_t e = allow_dynamic_smem<kernel>(max_warps * kWarpSmem);
    if (e != cudaSuccess) return e;
  }
  // Warps along the items: enough for about 16 warps per multiprocessor, while each warp keeps at
  // least two groups of items.
  const int64_t groups = job.w[0].cols / 32 / kGroup, want = 16 * static_cast<int64_t>(device_sm_count());
  int kw = 1;
  while (2 * kw <= max_warps && blocks * kw < want && groups >= 4 * kw) kw *= 2;
  if (const int forced = g_mma_warps.load(std::memory_order_relaxed); forced > 0) {
    kw = static_cast<int>(std::min<int64_t>({forced, max_warps, groups}));
  } else if (forced < 0) {
    // By occupancy (a measurement setting, UNICORN_CUDA_MMA_WARPS=-1): the fewest rounds of resident
    // blocks times the groups each warp walks (plus ~2 groups' worth for its start and its sums).
    static std::atomic<int> per_sm[kMaxWarps<MODE> + 1];  // blocks per SM by warps (+1: 0 unknown)
    int64_t best = INT64_MAX;
    for (int k = 1; k <= max_warps && groups >= 2 * k; k *= 2) {
      int fit = per_sm[k].load(std::memory_order_relaxed) - 1;
      if (fit < 0) {
        if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&fit, kernel, k * 32, k * kWarpSmem) != cudaSuccess) {
          fit = 0;
          (void)cudaGetLastError();  // a measurement setting: do not leave the error to a later check
        }
        per_sm[k].store(fit + 1, std::memory_order_relaxed);
      }
      if (fit < 1) continue;
      const int64_t slots = static_cast<int64_t>(fit) * device_sm_count();
      const int64_t cost = (blocks + slots - 1) / slots * ((groups + k - 1) / k + 2);
      if (cost < best) best = cost, kw = k;
    }
  }
  const size_t smem = static_cast<size_t>(kw) * kWarpSmem;
  return launch(kernel, dim3(static_cast<unsigned>(blocks)), dim3(kw * 32), smem, s, job, x, T);
}

// Whether a format's groups take two in flight per warp by default (session 28, H200, 27B gate /
// up at 2 / 4 / 8 tokens, us, one group -> two: Q4_0 34.5 / 36.5 / 39.9 -> 33.1 / 33.3 / 34.2,
// Q4_1 36.6 / 37.8 / 41.5 -> 35.3 / 35.5 / 37.2, Q5_0 39.4 / 40.6 / 43.5 -> 38.8 / 39.1 / 40.1,
// Q8_0 49.1 / 50.0 / 50.9 -> 50.1 / 50.1 / 50.1; but Q5_1 41.5 / 42.3 / 44.9 -> 51.4 / 51.8 / 53.0,
// Q4_K 43.1 / 43.5 / 44.7 -> 47.2 / 47.3 / 47.7, Q5_K 47.6 / 48.3 / 49.2 -> 58.7 / 58.7 / 59.1, Q6_K
// 55.0 / 55.5 / 56.5 -> 70.1 / 70.2 / 70.1: 170-207 registers a thread). Session 29 (run 3, 2 / 8
// tokens, two groups -> staged): Q8_0 50.0 / 49.5 -> 46.0 / 48.3, so Q8_0 takes the staged mode; the
// others do not gain (Q4_0 33.0 / 34.1 -> 32.0 / 36.0, Q4_K one group 43 / 45 -> 43.7 / 44.6, Q6_K one
// group 55 / 57 -> 62.4 / -).
template <class F>
constexpr int kDefaultMode =
    std::is_same_v<F, FormatQ8_0>                                                                     ? kStaged
    : std::is_same_v<F, FormatQ4_0> || std::is_same_v<F, FormatQ4_1> || std::is_same_v<F, FormatQ5_0> ? kTwoGroups
                                                                                                      : kOneGroup;

template <class F0, bool GLU, class F1 = F0, class F2 = F0>
cudaError_t launch_formats(const MatvecJob& job, ActQ8 x, int T, cudaStream_t s) {
  int mode = g_mma_pipeline.load(std::memory_order_relaxed);
  if (mode < 0) mode = std::min({kDefaultMode<F0>, kDefaultMode<F1>, kDefaultMode<F2>});
  switch (mode) {
    case kStagedAll:
      return launch_pipe<F0, GLU, F1, F2, kStagedAll>(job, x, T, s);
    case kStagedDeep:  // the formats with small side planes (the others spill there: staged instead)
      if constexpr (std::is_same_v<F0, F1> && std::is_same_v<F0, F2> && kDeepSide<F0>)
        return launch_pipe<F0, GLU, F1, F2, kStagedDeep>(job, x, T, s);
      return launch_pipe<F0, GLU, F1, F2, kStaged>(job, x, T, s);
    case kStaged:
      return launch_pipe<F0, GLU, F1, F2, kStaged>(job, x, T, s);
    case kTwoGroups:
      return launch_pipe<F0, GLU, F1, F2, kTwoGroups>(job, x, T, s);
    default:
      return launch_pipe<F0, GLU, F1, F2, kOneGroup>(job, x, T, s);
  }
}

// The fewest tokens from which the launchers give format t to the mma by default (0: never).
// Session 28 on the H200 (CudaBench, 27B gate / up, us, dp4a matvec -> mma as launch_formats picks
// it): at 8 tokens Q4_0 54.7 -> 34.2, Q4_1 53.7 -> 37.2, Q5_0 56.5 -> 40.1, Q8_0 66.0 -> 50.1,
// Q5_1 57.3 -> 44.9, Q4_K 56.0 -> 44.7, Q5_K 57.2 -> 49.2, Q6_K 66.6 -> 56.5. The mma takes about
// the same time at 2-8 tokens, the dp4a matvec grows with them: Q4_0 25.4 / 31.8 / 40.8 / 45.5 at 2
// / 4 / 5 / 6 tokens against 33.1 / 33.4 / 33.4 / 33.7, so from 5 tokens the mma. The other
// formats' 5-7 token rows (session 29 run 1, dp4a / mma): Q4_1 5: 40.1 / 35.5, Q5_0 5: 43.5 / 39.0,
// Q5_1 5: 44.5 / 42.8, Q8_0 5: 49.4 / 50.0 and 6: 54.0 / 50.2, Q4_K 5: 42.7 / 43.6 and 6: 47.1 /
// 43.8, Q5_K 6: 48.7 / 48.5, Q6_K 6: 55.7 / 55.9 and 7: 60.8 / 56.2. 27B Q4_0 tg64 of N sequences together
// (bench -P, every weight through the mma): x4 479.5 with the dp4a matvec against 435.5 through the
// mma, x5 436.8 -> 540.8, x6 478.9 -> 643.3, x8 501.4 -> 845.1 tok/s.
int mma_decode_from(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
      return 5;
    case GgmlType::Q8_0:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      return 6;
    case GgmlType::Q6_K:
      return 7;
    default:
      return 0;
  }
}

}  // namespace

void set_matvec_mma_min_tokens(int n) {
  g_mma_min_tokens.store(n >= 1 && n <= 8 ? std::max(n, 2) : 0, std::memory_order_relaxed);
}
int matvec_mma_min_tokens() { return g_mma_min_tokens.load(std::memory_order_relaxed); }
void set_matvec_mma_all_formats(bool on) { g_mma_all_formats.store(on, std::memory_order_relaxed); }
void set_matvec_mma_pipeline(int mode) {
  g_mma_pipeline.store(mode >= kOneGroup && mode <= kStagedAll ? mode : -1, std::memory_order_relaxed);
}
void set_matvec_mma_warps(int warps) { g_mma_warps.store(std::clamp(warps, -1, 16), std::memory_order_relaxed); }
int matvec_mma_pipeline() { return g_mma_pipeline.load(std::memory_order_relaxed); }
bool matvec_mma_all_formats() { return g_mma_all_formats.load(std::memory_order_relaxed); }

bool matvec_mma_supports(const MatvecJob& job, int T) {
  return T >= 2 && T <= 8 && matvec_multi_supports(job) && job.w[0].cols % (32 * kGroup) == 0 && sm80_or_later();
}

bool matvec_mma_wanted(const MatvecJob& job, int T) {
  const int min_tokens = matvec_mma_min_tokens();
  if (min_tokens == 0 || T < min_tokens || !matvec_mma_supports(job, T)) return false;
  if (matvec_mma_all_formats()) return true;
  for (int i = 0; i < job.n; ++i) {
    const int from = mma_decode_from(job.w[i].type);
    if (from == 0 || T < from) return false;
  }
  return true;
}

cudaError_t launch_matvec_mma(const MatvecJob& job, ActQ8 x, int T, bool glu, cudaStream_t s) {
  if (!matvec_mma_supports(job, T)) return cudaErrorInvalidValue;
  // A GeGLU pair is gate and up of one shape (the kernel reads up's rows by gate's count).
  if (glu && (job.n != 2 || job.w[1].rows != job.w[0].rows)) return cudaErrorInvalidValue;
  for (int i = 0; i < job.n; ++i)
    if (job.w[i].rows < 1) return cudaErrorInvalidValue;
  switch (glu ? 0 : matvec_kquant_mix(job)) {
    case 1:
      return launch_formats<FormatQ4_K, false, FormatQ5_K, FormatQ6_K>(job, x, T, s);
    case 2:
      return launch_formats<FormatQ4_K, false, FormatQ4_K, FormatQ6_K>(job, x, T, s);
    case 3:
      return launch_formats<FormatQ5_K, false, FormatQ5_K, FormatQ6_K>(job, x, T, s);
    default:
      break;
  }
  // One type (matvec_mma_supports).
  cudaError_t e = cudaErrorNotSupported;
  with_format(job.w[0].type, [&](auto f) {
    using F = decltype(f);
    if constexpr (requires { MmaGroup<F>::kHalves; })
      e = glu ? launch_formats<F, true>(job, x, T, s) : launch_formats<F, false>(job, x, T, s);
  });
  return e;
}

}  // namespace unicorn::cuda
