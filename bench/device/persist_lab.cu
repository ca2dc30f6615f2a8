// Standalone lab: the 27B decode step's matvec chain (62 layers x q/k/v, o, gate+up, down; Q4_0,
// one token), to price the kernel boundaries that NOTES.md blames for the last 12 % of the
// matvecs-only chain:
//   K: one kernel per matvec, chained with programmatic dependent launch in a CUDA graph, each
//      block loading its first pass of weights before griddepcontrol.wait (the engine's scheme),
//      under several block shapes per matrix ("lab shape": 2 rows per 4-warp block everywhere;
//      the engine's), alone and with a small kernel after each matvec (the engine's add_norm /
//      attention slot) that is trivial, works ~1 or ~2 us, or reads cold memory;
//   P: one persistent kernel, every block looping over the matvecs with a grid barrier between
//      them, issuing the loads of its first job of the next matvec before the barrier, so that
//      the barrier's latency hides behind weight streaming (static job striding, or jobs taken
//      from a counter); its job is the lab shape's;
//   E: the engine's own launchers (launch_matvec_multi for q/k/v as three weights,
//      launch_matvec_geglu, launch_matvec_quant) on the same bytes, with one activation buffer
//      for all or one per matrix as in the engine: whether the engine's matvecs-only chain (~87 us
//      per layer in the engine, session 15) is slower than the lab's engine-like shapes (~85) in
//      its kernels or elsewhere.
//   C: gate+up -> down streamed through per-chunk ready counters (down starting on the rows
//      already written instead of after the whole grid), and what each half of that handshake costs;
//   T: where each matvec triggers its dependent (block end or start), alone and with small ops;
//   G: gate+up with its own int8 quantize (32 output rows a block), followed directly by down.
// Not part of the engine. Every block job issues a pass's loads before its dot products;
// activations are a fixed int8 vector (a real chain would make each matvec's input from the
// previous output; here the wait or barrier stands for that dependency). Outputs are checked
// against the first K chain, its job code against a one-thread-per-row reference. Build and run (GPU machine):
//   nvcc -O3 -std=c++20 --expt-relaxed-constexpr -arch=sm_90a -Isrc -o /tmp/persist bench/device/persist_lab.cu &&
//   /tmp/persist [sections: any of K S E B C T G P Q; all by default]
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "backends/cuda/weight_formats.cuh"  // the engine's weight loads (ldw16, ldw2)
// E: the engine's own one-token matvec launchers and their kernels, compiled into this program
// (no engine library needed), for the chain of the engine's exact launches.
#include "backends/cuda/launch.cu"
#include "backends/cuda/matvec_quant.cu"
#include "lab_check.cuh"

namespace {

using unicorn::cuda::ldw16;
using unicorn::cuda::ldw2;

constexpr int kThreads = 128;

using unicorn::cuda::pdl_trigger;
using unicorn::cuda::pdl_wait;

struct Mat {
  const uint8_t* q;   // [rows][nb][16]: Q4_0 nibbles
  const uint16_t* d;  // [rows][nb]: f16 scales
  int rows, nb;
};
struct Act {
  const int8_t* q;
  const float2* ds;  // per 32 values: (d, d * sum)
};
struct Phase {
  Mat m;
  float* y;
};

__device__ __forceinline__ float h2f(uint16_t h) { return __half2float(__ushort_as_half(h)); }

__device__ __forceinline__ float q4_dot(uint4 w, const int8_t* xq, int it, float2 ds) {
  const uint4* p = reinterpret_cast<const uint4*>(xq + int64_t(it) * 32);
  const uint4 u = p[0], v = p[1];
  const uint32_t a[8] = {u.x, u.y, u.z, u.w, v.x, v.y, v.z, v.w};
  const uint32_t wv[4] = {w.x, w.y, w.z, w.w};
  int s = 0;
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    s = __dp4a(static_cast<int>(wv[i] & 0x0F0F0F0Fu), static_cast<int>(a[i]), s);
    s = __dp4a(static_cast<int>((wv[i] >> 4) & 0x0F0F0F0Fu), static_cast<int>(a[i + 4]), s);
  }
  return ds.x * static_cast<float>(s) - 8.0f * ds.y;
}

// One pass of a job: items base + 128 u (u < U) of rows row, row + 1.
template <int U>
struct Pass {
  uint4 q[2][U];
  uint16_t d[2][U];
};
template <int U>
__device__ __forceinline__ void load_pass(const Mat& m, int row, int base, Pass<U>& p) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int it = base + kThreads * u;
    if (it < m.nb)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const size_t o = size_t(row + r) * m.nb + it;
        p.q[r][u] = ldw16(m.q + o * 16);
        p.d[r][u] = ldw2(m.d + o);
      }
  }
}
template <int U>
__device__ __forceinline__ void dot_pass(const Pass<U>& p, Act x, int base, int nb, float* acc) {
#pragma unroll
  for (int u = 0; u < U; ++u) {
    const int it = base + kThreads * u;
    if (it < nb) {
      const float2 ds = x.ds[it];
#pragma unroll
      for (int r = 0; r < 2; ++r) acc[r] += h2f(p.d[r][u]) * q4_dot(p.q[r][u], x.q, it, ds);
    }
  }
}

// Job j: rows 2j and 2j + 1, the first pass already loaded into `first`; sync() runs between the
// first pass's loads and its dot products (the wait on the previous matvec).
// Thread t's (of kThreads) warp sums of job j's two rows, its first pass already loaded.
template <int U>
__device__ __forceinline__ void job_warp_sums(const Mat& m, Act x, int j, const Pass<U>& first, int t, float* acc) {
  acc[0] = acc[1] = 0.0f;
  dot_pass<U>(first, x, t, m.nb, acc);
  for (int base = t + kThreads * U; base < m.nb; base += kThreads * U) {
    Pass<U> p;
    load_pass<U>(m, 2 * j, base, p);
    dot_pass<U>(p, x, base, m.nb, acc);
  }
  acc[0] = warp_sum(acc[0]);
  acc[1] = warp_sum(acc[1]);
}
template <int U, class Sync>
__device__ __forceinline__ void run_job(const Mat& m, Act x, float* y, int j, const Pass<U>& first, Sync sync) {
  __shared__ float part[kThreads / 32][2];
  const int row = 2 * j, t = static_cast<int>(threadIdx.x);
  float acc[2];
  sync();
  job_warp_sums<U>(m, x, j, first, t, acc);
  if (t % 32 == 0) part[t / 32][0] = acc[0], part[t / 32][1] = acc[1];
  __syncthreads();
  if (t < 2) {
    float s = 0.0f;
#pragma unroll
    for (int w = 0; w < kThreads / 32; ++w) s += part[w][t];
    y[row + t] = s;
  }
  __syncthreads();  // part is reused by the block's next job
}

// C (streaming) roles of a matvec kernel: kPlain waits on the previous kernel and triggers its
// dependent at the end (K); kProducer triggers at block start, so that its dependent is scheduled
// as soon as its last wave is resident, and after writing its rows counts them into its chunk's
// ready counter (release); kConsumer never waits on the previous kernel: before the dot products of
// each 32-item chunk of its input (a producer chunk of 1,024 rows), its warps poll that chunk's
// counter (acquire) until the producer's blocks have counted all its rows for this token;
// kProducerLate counts as kProducer but triggers at its end (as K); kEarly triggers at block start
// as kProducer but counts nothing (its dependent waits as in K); kConsumerRelaxed polls with
// relaxed loads (not a correct handshake: it prices the acquire's cost in the consumer).
enum Role { kPlain, kProducer, kProducerLate, kConsumer, kConsumerRelaxed, kEarly };
struct Flow {
  unsigned* ready = nullptr;        // per chunk of 32 consumer items (1,024 producer rows)
  const unsigned* epoch = nullptr;  // tokens so far: a chunk is ready at epoch x 1,024 rows
};
constexpr int kChunkItems = 32, kChunkRows = kChunkItems * 32;

__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
  unsigned v;
  asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
__device__ __forceinline__ void red_release_add(unsigned* p, unsigned v) {
  asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
// Consumer: the chunks (bit per chunk, at most 32) whose counters reached `target`, read by the
// warp's lanes at once (lane c reads chunk c).
__device__ __forceinline__ unsigned ld_relaxed(const unsigned* p) {
  unsigned v;
  asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
}
template <bool Acquire>
__device__ __forceinline__ uint32_t ready_chunks(const Flow& f, int chunks, unsigned target) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const bool ok = lane < chunks && (Acquire ? ld_acquire(f.ready + lane) : ld_relaxed(f.ready + lane)) >= target;
  return __ballot_sync(0xFFFFFFFFu, ok);
}

// K: one block per job of R rows: groups of WPR warps (4 / WPR groups per 128-thread
// block), each group R rows (rows row0 + p * pair: pair 1 for adjacent rows, the matrix half for a
// GeGLU pair of gate and up rows), each lane U items per pass. MINB: blocks per SM to allow.
template <int WPR, int R, int U, Role Ro>
__device__ __forceinline__ void shape_body(Mat m, Act x, float* y, int pair, Flow f) {
  constexpr int G = 4 / WPR;
  __shared__ float part[4][R];
  if (Ro == kProducer || Ro == kEarly) pdl_trigger();
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int gi = static_cast<int>(blockIdx.x) * G + warp / WPR, pw = warp % WPR;
  const int row0 = pair == 1 ? gi * R : gi;
  const bool live = row0 + (R - 1) * pair < m.rows;
  const int glane = pw * 32 + lane, stride = 32 * WPR;
  float acc[R];
#pragma unroll
  for (int p = 0; p < R; ++p) acc[p] = 0.0f;
  bool waited = false;
  // Consumer: chunks known ready (refreshed when an item's chunk is not among them).
  const int chunks = (m.nb + kChunkItems - 1) / kChunkItems;
  constexpr bool kPolls = Ro == kConsumer || Ro == kConsumerRelaxed;
  const unsigned target = kPolls ? *f.epoch * kChunkRows : 0u;
  uint32_t known = 0;
  if (live) {
    for (int base = glane; base < m.nb; base += stride * U) {
      uint4 q[R][U];
      uint16_t d[R][U];
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int it = base + stride * u;
        if (it < m.nb)
#pragma unroll
          for (int p = 0; p < R; ++p) {
            const size_t o = size_t(row0 + p * pair) * m.nb + it;
            q[p][u] = ldw16(m.q + o * 16);
            d[p][u] = ldw2(m.d + o);
          }
      }
      if (!kPolls && !waited) pdl_wait(), waited = true;
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int it = base + stride * u;
        if (kPolls) {  // warp-uniform: a warp's 32 lanes take 32 consecutive items
          const int c = (base - lane + stride * u) / kChunkItems;
          if (c < chunks && !(known >> c & 1u)) {
            for (long spins = 0;; ++spins) {
              known = ready_chunks<Ro == kConsumer>(f, chunks, target);
              if (known >> c & 1u) break;
              if (spins > (1L << 26)) __trap();  // a lab bug, not a hang of the device call
            }
            __syncwarp();
          }
        }
        if (it < m.nb) {
          const float2 ds = x.ds[it];
#pragma unroll
          for (int p = 0; p < R; ++p) acc[p] += h2f(d[p][u]) * q4_dot(q[p][u], x.q, it, ds);
        }
      }
    }
  }
  if (!kPolls && !waited) pdl_wait();
#pragma unroll
  for (int p = 0; p < R; ++p) acc[p] = warp_sum(acc[p]);
  if (WPR > 1) {
    if (lane == 0)
#pragma unroll
      for (int p = 0; p < R; ++p) part[warp][p] = acc[p];
    __syncthreads();
    if (pw == 0)
#pragma unroll
      for (int p = 0; p < R; ++p) {
        acc[p] = 0.0f;
        for (int w = 0; w < WPR; ++w) acc[p] += part[warp + w][p];
      }
  }
  if (live && lane == 0 && pw == 0)
#pragma unroll
    for (int p = 0; p < R; ++p) y[row0 + p * pair] = acc[p];
  if (Ro == kProducer || Ro == kProducerLate) {  // the block's output rows gi (GeGLU pairs: one output row per group)
    __syncthreads();
    const int first = static_cast<int>(blockIdx.x) * G;
    if (threadIdx.x == 0) red_release_add(f.ready + first / kChunkRows, G);
  }
  if (Ro != kProducer && Ro != kEarly) pdl_trigger();
}
template <int WPR, int R, int U, int MINB>
__global__ void __launch_bounds__(kThreads, MINB) k_shape(Mat m, Act x, float* y, int pair) {
  shape_body<WPR, R, U, kPlain>(m, x, y, pair, Flow{});
}
template <int WPR, int R, int U, int MINB, Role Ro>
__global__ void __launch_bounds__(kThreads, MINB) k_flow(Mat m, Act x, float* y, int pair, Flow f) {
  shape_body<WPR, R, U, Ro>(m, x, y, pair, f);
}
__global__ void bump_epoch(unsigned* epoch) { *epoch += 1; }

// KS: the lab shape (one 4-warp group of 2 rows per block, 2 items per lane and pass), but before
// griddepcontrol.wait each block asks for the first PI items of both rows (quants and scales: PI
// x 18 bytes a row, at most PB bytes for the pair) with bulk copies (cp.async.bulk, the TMA's 1-D
// form) into shared memory, and reads those items from there. The register prefetch (K) holds one
// pass (2 items a lane: 9.2 KB a block); this holds a block's first PB bytes, so that the HBM
// keeps streaming the next matvec's weights through a small op and a kernel boundary. Whether an
// L2 prefetch lost (sessions 5, 13, 14) because the running matvec's stream evicts the prefetched
// lines before use can be told apart here: shared memory cannot be evicted.
template <int PB>
__global__ void __launch_bounds__(kThreads) ks_shape(Mat m, Act x, float* y, int pair) {
  extern __shared__ __align__(128) uint8_t sm[];
  __shared__ __align__(8) uint64_t bar;
  __shared__ float part[4][2];
  const int t = static_cast<int>(threadIdx.x), warp = t / 32, lane = t % 32;
  const int gi = static_cast<int>(blockIdx.x);
  const int row0 = pair == 1 ? gi * 2 : gi;
  const bool live = row0 + pair < m.rows;
  // Items in shared memory: a multiple of 8 (16-byte aligned scale runs), at most PB bytes for both.
  const int pi = std::min(m.nb, (PB / 36) / 8 * 8);
  uint8_t* sq = sm;                                              // [2][pi][16]
  uint16_t* sd = reinterpret_cast<uint16_t*>(sm + 2 * pi * 16);  // [2][pi]
  if (t == 0) {
    mbar_init(&bar, 1);
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    if (live) {
      mbar_expect_tx(&bar, 2 * pi * 18);
      for (int p = 0; p < 2; ++p) {
        const size_t o = size_t(row0 + p * pair) * m.nb;
        bulk_load(sq + p * pi * 16, m.q + o * 16, pi * 16, &bar);
        bulk_load(sd + p * pi, m.d + o, pi * 2, &bar);
      }
    }
  }
  __syncthreads();  // the barrier is initialized before anyone waits on it
  pdl_wait();
  float acc[2] = {0.0f, 0.0f};
  if (live) {
    mbar_wait(&bar, 0);
    for (int it = t; it < pi; it += kThreads) {
      const float2 ds = x.ds[it];
#pragma unroll
      for (int p = 0; p < 2; ++p)
        acc[p] += h2f(sd[p * pi + it]) *
                  q4_dot(*reinterpret_cast<const uint4*>(sq + (size_t(p) * pi + it) * 16), x.q, it, ds);
    }
    for (int base = pi + t; base < m.nb; base += kThreads * 2) {
      uint4 q[2][2];
      uint16_t d[2][2];
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const int it = base + kThreads * u;
        if (it < m.nb)
#pragma unroll
          for (int p = 0; p < 2; ++p) {
            const size_t o = size_t(row0 + p * pair) * m.nb + it;
            q[p][u] = ldw16(m.q + o * 16);
            d[p][u] = ldw2(m.d + o);
          }
      }
#pragma unroll
      for (int u = 0; u < 2; ++u) {
        const int it = base + kThreads * u;
        if (it < m.nb) {
          const float2 ds = x.ds[it];
#pragma unroll
          for (int p = 0; p < 2; ++p) acc[p] += h2f(d[p][u]) * q4_dot(q[p][u], x.q, it, ds);
        }
      }
    }
  }
  acc[0] = warp_sum(acc[0]);
  acc[1] = warp_sum(acc[1]);
  if (lane == 0) part[warp][0] = acc[0], part[warp][1] = acc[1];
  __syncthreads();
  if (live && t < 2) y[row0 + t * pair] = part[0][t] + part[1][t] + part[2][t] + part[3][t];
  pdl_trigger();
}

// G: a GeGLU pair (gate rows [0, H), up rows [H, 2 H) of m) whose block owns 32 consecutive output
// rows, so that it can quantize them to int8 itself (a 32-value activation block: d = max |h| /
// 127, q, (d, d * sum q)) and no quantize kernel is needed before down: W warps of RPW output rows
// each (W x RPW = 32), each lane U items of its 2 RPW weight rows per pass. It writes the gate and
// up dots to y (checked against the first chain) and the int8 block to hq / hds. Early: trigger
// at block start (down, directly after it, is scheduled during its last wave).
template <int W, int RPW, int U, bool Early>
__global__ void __launch_bounds__(W * 32) k_glu32(Mat m, Act x, float* y, int8_t* hq, float2* hds) {
  static_assert(W * RPW == 32);
  if (Early) pdl_trigger();
  __shared__ float h[32];
  const int warp = static_cast<int>(threadIdx.x / 32), lane = static_cast<int>(threadIdx.x % 32);
  const int H = m.rows / 2, r0 = static_cast<int>(blockIdx.x) * 32 + warp * RPW;
  float acc[RPW][2] = {};
  bool waited = false;
  for (int base = lane; base < m.nb; base += 32 * U) {
    uint4 q[RPW][2][U];
    uint16_t d[RPW][2][U];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int it = base + 32 * u;
      if (it < m.nb)
#pragma unroll
        for (int j = 0; j < RPW; ++j)
#pragma unroll
          for (int g = 0; g < 2; ++g) {
            const size_t o = size_t(r0 + j + g * H) * m.nb + it;
            q[j][g][u] = ldw16(m.q + o * 16);
            d[j][g][u] = ldw2(m.d + o);
          }
    }
    if (!waited) pdl_wait(), waited = true;
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int it = base + 32 * u;
      if (it < m.nb) {
        const float2 ds = x.ds[it];
#pragma unroll
        for (int j = 0; j < RPW; ++j)
#pragma unroll
          for (int g = 0; g < 2; ++g) acc[j][g] += h2f(d[j][g][u]) * q4_dot(q[j][g][u], x.q, it, ds);
      }
    }
  }
  if (!waited) pdl_wait();
#pragma unroll
  for (int j = 0; j < RPW; ++j) {
    const float gs = warp_sum(acc[j][0]), us = warp_sum(acc[j][1]);
    if (lane == 0) {
      y[r0 + j] = gs, y[r0 + j + H] = us;
      h[warp * RPW + j] = 0.5f * gs * (1.0f + tanhf(0.7978845608f * (gs + 0.044715f * gs * gs * gs))) * us;
    }
  }
  __syncthreads();
  if (warp == 0) {
    const float v = h[lane];
    float a = fabsf(v);
#pragma unroll
    for (int o = 16; o > 0; o /= 2) a = fmaxf(a, __shfl_xor_sync(0xFFFFFFFFu, a, o));
    const float dq = a / 127.0f;
    const int qv = dq > 0.0f ? __float2int_rn(v / dq) : 0;
    int sq = qv;
#pragma unroll
    for (int o = 16; o > 0; o /= 2) sq += __shfl_xor_sync(0xFFFFFFFFu, sq, o);
    hq[blockIdx.x * 32 + lane] = static_cast<int8_t>(qv);
    if (lane == 0) hds[blockIdx.x] = make_float2(dq, dq * static_cast<float>(sq));
  }
  if (!Early) pdl_trigger();
}

// The small op of K+S: one block that reads what the matvec wrote and writes a value.
template <bool EarlyTrigger = false>
__global__ void small_op(const float* y, float* sink, long long spin_cycles) {
  if (EarlyTrigger) pdl_trigger();  // the next matvec is scheduled before this op's wait
  pdl_wait();
  if (!EarlyTrigger) pdl_trigger();
  if (spin_cycles > 0) {  // a small op that takes this long (the engine's take 1-2 us)
    const long long t0 = clock64();
    while (clock64() - t0 < spin_cycles) {
    }
  }
  __shared__ float s[kThreads];
  s[threadIdx.x] = y[threadIdx.x];
  __syncthreads();
  if (threadIdx.x == 0) {
    float a = 0.0f;
    for (int i = 0; i < kThreads; ++i) a += s[i];
    *sink = a;
  }
}

// A small op that reads `per_block` 16-byte words per block from memory no recent kernel touched
// (the attention's K/V cache, add_norm's residual and norm weights): `blocks` blocks of 256
// threads, each thread's loads issued before their sum.
__global__ void small_mem(const uint4* cold, int per_thread, float* sink) {
  pdl_wait();
  pdl_trigger();
  const uint4* p = cold + (size_t(blockIdx.x) * blockDim.x + threadIdx.x) * per_thread;
  uint32_t acc = 0;
  for (int i = 0; i < per_thread; i += 8) {
    uint4 v[8];
#pragma unroll
    for (int u = 0; u < 8; ++u)
      if (i + u < per_thread) v[u] = p[i + u];
#pragma unroll
    for (int u = 0; u < 8; ++u)
      if (i + u < per_thread) acc += v[u].x ^ v[u].w;
  }
  if (acc == 0x12345678u) *sink = 1.0f;  // keeps the loads
}

// Grid barrier (all blocks co-resident): one arrival counter, one generation word.
__device__ __forceinline__ void grid_barrier(unsigned* count, unsigned* generation, unsigned target) {
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    if (atomicAdd(count, 1u) == gridDim.x - 1) {
      *count = 0;
      __threadfence();
      atomicExch(generation, target);
    } else {
      while (*static_cast<volatile unsigned*>(generation) < target) {
      }
    }
    __threadfence();
  }
  __syncthreads();
}

// P: every block loops over the phases; jobs strided over the grid (Dyn = false) or taken from a
// per-phase counter (Dyn = true: the next job's index is fetched while the current one runs).
template <int U, bool Dyn>
__global__ void __launch_bounds__(kThreads, 8) p_chain(const Phase* phases, int n, Act x, unsigned* count,
                                                       unsigned* generation, unsigned gen0, unsigned* next_job) {
  __shared__ int s_next;
  for (int ph = 0; ph < n; ++ph) {
    const Phase P = phases[ph];
    const int jobs = P.m.rows / 2;
    int j = static_cast<int>(blockIdx.x);
    Pass<U> first;
    if (j < jobs) load_pass<U>(P.m, 2 * j, static_cast<int>(threadIdx.x), first);
    if (ph > 0) grid_barrier(count, generation, gen0 + ph);
    bool preloaded = true;
    while (j < jobs) {
      if (Dyn) {
        if (threadIdx.x == 0) s_next = static_cast<int>(gridDim.x) + static_cast<int>(atomicAdd(next_job + ph, 1u));
      }
      if (!preloaded) load_pass<U>(P.m, 2 * j, static_cast<int>(threadIdx.x), first);
      run_job<U>(P.m, x, P.y, j, first, [] {});
      preloaded = false;
      if (Dyn) {
        j = s_next;  // written before run_job's barriers
        __syncthreads();
      } else {
        j += static_cast<int>(gridDim.x);
      }
    }
  }
}

// Q: persistent with one block of G 4-warp groups per SM (G = 8: 1,024 threads), so that a grid
// barrier has one arrival and one poller per SM (132 on an H100) instead of one per 128-thread
// block (P's 1,056): session 15 priced P's barrier at ~4.4 us under full HBM load. Each group runs
// P's job (2 rows, 128 threads), synchronizing on its own named barrier; before each barrier every
// group loads the first pass of its first job of the next matvec (as P), so that the HBM streams
// during the barrier.
__device__ __forceinline__ void group_sync(int g) {
  asm volatile("bar.sync %0, %1;" ::"r"(g + 1), "r"(kThreads) : "memory");
}
template <int U>
__device__ __forceinline__ void run_job_group(const Mat& m, Act x, float* y, int j, const Pass<U>& first, int t, int g,
                                              float (*part)[2]) {
  const int row = 2 * j;
  float acc[2];
  job_warp_sums<U>(m, x, j, first, t, acc);
  if (t % 32 == 0) part[t / 32][0] = acc[0], part[t / 32][1] = acc[1];
  group_sync(g);
  if (t < 2) y[row + t] = part[0][t] + part[1][t] + part[2][t] + part[3][t];
  group_sync(g);  // part is reused by the group's next job
}
template <int U, int G>
__global__ void __launch_bounds__(kThreads* G, 1)
    q_chain(const Phase* phases, int n, Act x, unsigned* count, unsigned* generation, unsigned gen0) {
  __shared__ float part[G][kThreads / 32][2];
  const int g = static_cast<int>(threadIdx.x) / kThreads, t = static_cast<int>(threadIdx.x) % kThreads;
  const int stride = static_cast<int>(gridDim.x) * G, j0 = static_cast<int>(blockIdx.x) * G + g;
  for (int ph = 0; ph < n; ++ph) {
    const Phase P = phases[ph];
    const int jobs = P.m.rows / 2;
    Pass<U> first;
    if (j0 < jobs) load_pass<U>(P.m, 2 * j0, t, first);
    if (ph > 0) grid_barrier(count, generation, gen0 + ph);
    bool preloaded = true;
    for (int j = j0; j < jobs; j += stride) {
      if (!preloaded) load_pass<U>(P.m, 2 * j, t, first);
      run_job_group<U>(P.m, x, P.y, j, first, t, g, part[g]);
      preloaded = false;
    }
  }
}

__global__ void ref_matvec(Mat m, Act x, float* y) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= m.rows) return;
  float acc = 0.0f;
  for (int it = 0; it < m.nb; ++it) {
    const size_t o = size_t(r) * m.nb + it;
    acc += h2f(m.d[o]) * q4_dot(*reinterpret_cast<const uint4*>(m.q + o * 16), x.q, it, x.ds[it]);
  }
  y[r] = acc;
}

// Every chain kernel is launched as the engine launches its kernels (launch.cuh: programmatic
// dependent launch where the device has it).
template <class... Params, class... Args>
void launch_pdl(void (*kernel)(Params...), int blocks, int threads, cudaStream_t s, Args... args) {
  CK(unicorn::cuda::launch(kernel, dim3(blocks), dim3(threads), 0, s, args...));
}

double nmse(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += double(a[i] - b[i]) * (a[i] - b[i]), den += double(b[i]) * b[i];
  return num / std::max(den, 1e-30);
}

}  // namespace

int main(int argc, char** argv) {
  const int sms = lab_print_device();
  constexpr int kLayers = 62;
  // 27B: q/k/v 5376 -> 4096 + 2 x 2048, o 4096 -> 5376, gate+up 5376 -> 2 x 21504, down 21504 -> 5376.
  const int shapes[4][2] = {{8192, 5376}, {5376, 4096}, {43008, 5376}, {5376, 21504}};
  std::vector<Phase> phases;
  size_t bytes = 0, y_total = 0;
  for (int l = 0; l < kLayers; ++l)
    for (auto& s : shapes) bytes += size_t(s[0]) * (s[1] / 32) * 18, y_total += s[0];
  uint8_t* wq;
  uint16_t* wd;
  size_t q_total = 0, d_total = 0;
  for (auto& s : shapes) q_total += size_t(s[0]) * (s[1] / 32) * 16, d_total += size_t(s[0]) * (s[1] / 32);
  q_total *= kLayers, d_total *= kLayers;
  CK(cudaMalloc(&wq, q_total));
  CK(cudaMalloc(&wd, d_total * 2));
  fill_bytes<<<4096, 256>>>(wq, q_total, 1);
  fill_scales<<<4096, 256>>>(wd, d_total, 2);
  float *yk, *yp, *yr, *sink;
  CK(cudaMalloc(&yk, y_total * 4));
  CK(cudaMalloc(&yp, y_total * 4));
  CK(cudaMalloc(&yr, 43008 * 4));
  CK(cudaMalloc(&sink, 4));
  {
    size_t qo = 0, dof = 0, yo = 0;
    for (int l = 0; l < kLayers; ++l)
      for (auto& s : shapes) {
        const int nb = s[1] / 32;
        phases.push_back({{wq + qo, wd + dof, s[0], nb}, yk + yo});
        qo += size_t(s[0]) * nb * 16, dof += size_t(s[0]) * nb, yo += s[0];
      }
  }
  const int n = static_cast<int>(phases.size());
  int8_t* xq;
  float2* xds;
  CK(cudaMalloc(&xq, 21504));
  CK(cudaMalloc(&xds, 21504 / 32 * sizeof(float2)));
  lab_upload_activations(21504, xq, xds);
  const Act x{xq, xds};
  std::printf("%d matvecs, %.3f GB of weights per token\n", n, bytes / 1e9);

  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  // Best and mean µs of `reps` timed runs of body() after one warm-up run.
  auto time_us = [&](auto&& body, int reps) {
    body();
    CK(cudaStreamSynchronize(st));
    CK(cudaGetLastError());
    double best = 1e30, sum = 0;
    for (int r = 0; r < reps; ++r) {
      const double us = lab_stream_ms(st, body) * 1000.0;
      best = std::min(best, us), sum += us;
    }
    return std::make_pair(best, sum / reps);
  };

  // Copy bandwidth as run_gpu.sh counts it (read + write), over 4 GiB.
  {
    void *a, *b;
    const size_t cb = size_t(1) << 32;
    CK(cudaMalloc(&a, cb));
    CK(cudaMalloc(&b, cb));
    const auto t = time_us([&] { CK(cudaMemcpyAsync(b, a, cb, cudaMemcpyDeviceToDevice, st)); }, 5);
    const double gbs = 2.0 * cb / (t.first * 1e3);
    std::printf("copy bandwidth %.1f GB/s (best of 5): the chain's roofline %.1f us per token\n", gbs,
                bytes / (gbs * 1e3));
    CK(cudaFree(a));
    CK(cudaFree(b));
  }

  // Reference for one matrix of each shape (layer 0).
  for (int i = 0; i < 4; ++i) {
    Phase p = phases[i];
    ref_matvec<<<(p.m.rows + 127) / 128, 128, 0, st>>>(p.m, x, yr);
    k_shape<4, 2, 2, 0><<<p.m.rows / 2, kThreads, 0, st>>>(p.m, x, p.y, 1);
    CK(cudaStreamSynchronize(st));
    std::vector<float> a(p.m.rows), b(p.m.rows);
    CK(cudaMemcpy(a.data(), p.y, a.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(b.data(), yr, b.size() * 4, cudaMemcpyDeviceToHost));
    std::printf("job code vs reference, %d x %d: nmse %.2e\n", p.m.rows, p.m.nb * 32, nmse(a, b));
  }

  auto report = [&](const char* name, std::pair<double, double> t) {
    std::printf("%-44s best %8.1f us (%6.1f tok/s at this alone, %5.0f GB/s), mean %8.1f us, %.2f us per layer\n", name,
                t.first, 1e6 / t.first, bytes / (t.first * 1e3), t.second, t.first / kLayers);
  };
  // Records one token's chain as a graph, times it, and checks its outputs against the first chain
  // (ref_y, filled by the first call); `glu_differs`: its GeGLU pair writes gelu(gate) * up.
  std::vector<float> ref_y;
  auto time_chain = [&](const std::string& name, auto&& record, bool glu_differs) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
    for (int i = 0; i < n; ++i) record(i);
    CK(cudaStreamEndCapture(st, &graph));
    CK(cudaGraphInstantiate(&exec, graph, 0));
    CK(cudaMemset(yk, 0, y_total * 4));
    report(name.c_str(), time_us([&] { CK(cudaGraphLaunch(exec, st)); }, 10));
    std::vector<float> got(y_total), a, b;
    CK(cudaMemcpy(got.data(), yk, y_total * 4, cudaMemcpyDeviceToHost));
    if (ref_y.empty()) ref_y = got;
    for (int i = 0; i < n; ++i) {
      if (glu_differs && i % 4 == 2) continue;
      const size_t off = size_t(phases[i].y - yk);
      a.insert(a.end(), got.begin() + off, got.begin() + off + phases[i].m.rows);
      b.insert(b.end(), ref_y.begin() + off, ref_y.begin() + off + phases[i].m.rows);
    }
    std::printf("    outputs vs the first chain%s: nmse %.2e\n", glu_differs ? " (but gate+up)" : "", nmse(a, b));
    CK(cudaGraphExecDestroy(exec));
    CK(cudaGraphDestroy(graph));
  };

  // The small kernel after each matvec: none (blocks 0); a one-block op that spins `spin` cycles
  // (1.98 GHz); or `blocks` blocks of 256 threads reading per_thread 16-byte words of cold memory.
  struct Small {
    const char* name;
    long long spin;
    int blocks, per_thread;
  };
  const Small smalls[] = {{"", 0, 0, 0},
                          {" +S trivial", 0, 1, 0},
                          {" +S 1us", 2000, 1, 0},
                          {" +S 2us", 4000, 1, 0},
                          {" +S 1MiB/16 blocks", 0, 16, 16},  // 27B's K/V at ~128 positions
                          {" +S 128KiB/1 block", 0, 1, 32}};
  uint4* cold;  // one region per matvec of the token, 1 MiB each: 248 MiB, so each is cold when read
  CK(cudaMalloc(&cold, size_t(n) << 20));
  CK(cudaMemset(cold, 1, size_t(n) << 20));
  auto small_after = [&](const Small& sm, int i) {
    if (sm.blocks == 0) return;
    if (sm.per_thread > 0)
      launch_pdl(small_mem, sm.blocks, 256, st, static_cast<const uint4*>(cold + (size_t(i) << 16)), sm.per_thread,
                 sink);
    else
      launch_pdl(small_op<false>, 1, kThreads, st, static_cast<const float*>(phases[i].y), sink, sm.spin);
  };

  // K block shapes per matrix; the engine's: q/k/v wide, o o_eng, gate+up wide_pair, down lab.
  struct Shape {
    void (*kernel)(Mat, Act, float*, int);
    int groups_per_block, rows_per_group;
    bool glu;  // gate+up as a GeGLU pair (row r of each half in one group)
  };
  const Shape lab{k_shape<4, 2, 2, 0>, 1, 2, false}, lab_pair{k_shape<4, 2, 2, 0>, 1, 2, true};
  const Shape wide{k_shape<2, 2, 3, 0>, 2, 2, false}, wide_pair{k_shape<2, 2, 3, 0>, 2, 2, true};
  const Shape o_eng{k_shape<1, 2, 4, 6>, 4, 2, false};
  const Shape engine_shapes[4] = {wide, o_eng, wide_pair, lab};
  auto launch_k = [&](const Shape& sh, int i) {
    const int rows_per_block = sh.groups_per_block * sh.rows_per_group;
    launch_pdl(sh.kernel, (phases[i].m.rows + rows_per_block - 1) / rows_per_block, kThreads, st, phases[i].m, x,
               phases[i].y, sh.glu ? phases[i].m.rows / 2 : 1);
  };
  // Sections to run (argv[1], default all): K, E (engine launchers), B (bisect: engine launcher
  // for some matrices, K's engine shape for the rest), P (persistent), Q (persistent, one block per SM).
  const std::string sections = argc > 1 ? argv[1] : "KSEBCTGPQ";
  auto run_section = [&](char c) { return sections.find(c) != std::string::npos; };

  // K with per-matrix block shapes: which of the engine's choices cost in the chain.
  if (run_section('K')) {
    struct Config {
      const char* name;
      Shape s[4];  // q/k/v, o, gate+up, down
    };
    const Config configs[] = {
        {"K lab shape everywhere", {lab, lab, lab, lab}},
        {"K engine (wide 2w U3, o 1w U4, pair, down lab)", {wide, o_eng, wide_pair, lab}},
        {"K lab shape everywhere", {lab, lab, lab, lab}},
        {"K engine (wide 2w U3, o 1w U4, pair, down lab)", {wide, o_eng, wide_pair, lab}},
        {"K lab shape, gate+up as a pair", {lab, lab, lab_pair, lab}},
    };
    for (const Small& sm : smalls)
      for (const Config& c : configs)
        time_chain(
            std::string(c.name) + sm.name,
            [&](int i) {
              launch_k(c.s[i % 4], i);
              small_after(sm, i);
            },
            false);
  }

  // S: KS (shared-memory prefetch of each block's first PB bytes) against K's lab shape, alone and
  // with small ops between the matvecs.
  if (run_section('S')) {
    auto ks_launch = [&](auto kernel, int pb, int i, bool glu) {
      const size_t smem = size_t(pb);
      CK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
      const int pair = glu ? phases[i].m.rows / 2 : 1;
      CK(unicorn::cuda::launch(kernel, dim3(phases[i].m.rows / 2), dim3(kThreads), smem, st, phases[i].m, x,
                               phases[i].y, pair));
    };
    for (int si : {0, 1, 2, 4})
      for (int rep = 0; rep < 2; ++rep) {
        time_chain(
            std::string("S: K lab shape") + smalls[si].name,
            [&](int i) {
              launch_k(lab, i);
              small_after(smalls[si], i);
            },
            false);
        auto ks = [&](auto kernel, int pb, const char* name) {
          time_chain(
              std::string(name) + smalls[si].name,
              [&](int i) {
                ks_launch(kernel, pb, i, false);
                small_after(smalls[si], i);
              },
              false);
        };
        ks(ks_shape<6144>, 6144, "S: KS prefetch 6 KB");
        ks(ks_shape<12288>, 12288, "S: KS prefetch 12 KB");
        ks(ks_shape<24576>, 24576, "S: KS prefetch 24 KB");
      }
  }

  // E: the engine's launchers, one graph per activation layout.
  using unicorn::GgmlType;
  namespace uc = unicorn::cuda;
  auto dw = [](const Mat& m, int row0, int rows) {
    uc::DeviceWeight w;
    w.type = GgmlType::Q4_0;
    w.rows = rows;
    w.cols = int64_t(m.nb) * 32;
    w.blocks_per_row = m.nb;
    w.q_row_bytes = int64_t(m.nb) * 16;
    w.q = m.q + size_t(row0) * m.nb * 16;
    w.d = m.d + size_t(row0) * m.nb;
    return w;
  };
  // One copy of the activations per matrix (q/k/v, o, gate+up, down), as the engine's separate buffers.
  int8_t* xs_q[4];
  float2* xs_ds[4];
  for (int m = 0; m < 4; ++m) {
    CK(cudaMalloc(&xs_q[m], 21504));
    CK(cudaMalloc(&xs_ds[m], 21504 / 32 * sizeof(float2)));
    CK(cudaMemcpy(xs_q[m], xq, 21504, cudaMemcpyDeviceToDevice));
    CK(cudaMemcpy(xs_ds[m], xds, 21504 / 32 * sizeof(float2), cudaMemcpyDeviceToDevice));
  }
  // Matvec i through the engine's launcher for its matrix.
  auto launch_e = [&](int i, bool separate) {
    const int m = i % 4;
    const Phase& p = phases[i];
    const uc::ActQ8 a{separate ? xs_q[m] : xq, reinterpret_cast<const float*>(separate ? xs_ds[m] : xds)};
    if (m == 0) {
      uc::MatvecJob job;
      job.w[0] = dw(p.m, 0, 4096), job.w[1] = dw(p.m, 4096, 2048), job.w[2] = dw(p.m, 6144, 2048);
      job.y[0] = p.y, job.y[1] = p.y + 4096, job.y[2] = p.y + 6144;
      job.n = 3;
      CK(uc::launch_matvec_multi(job, a, 1, st));
    } else if (m == 2) {
      CK(uc::launch_matvec_geglu(dw(p.m, 0, p.m.rows / 2), dw(p.m, p.m.rows / 2, p.m.rows / 2), a, 1, p.y, st));
    } else {
      CK(uc::launch_matvec_quant(dw(p.m, 0, p.m.rows), a, 1, p.y, st));
    }
  };
  if (run_section('E'))
    for (int rep = 0; rep < 2; ++rep)
      for (int separate = 0; separate < 2; ++separate)
        for (int si : {0, 2}) {  // alone, and with a ~1 us small op after each matvec
          const std::string name = std::string("E: engine launchers, ") + (separate ? "per-matrix" : "shared") +
                                   " activations" + smalls[si].name;
          time_chain(
              name,
              [&](int i) {
                launch_e(i, separate);
                small_after(smalls[si], i);
              },
              true);
        }
  // B: the engine's launcher for the matrices in a mask (bit 0 q/k/v, 1 o, 2 gate+up, 3 down), K's
  // engine shape for the rest; shared activations. Which matrix holds the E - K gap.
  if (run_section('B')) {
    const char* names[4] = {"q/k/v", "o", "gate+up", "down"};
    for (int rep = 0; rep < 2; ++rep)
      for (int mask : {0, 1, 2, 4, 8, 15}) {
        std::string name = "B: engine for";
        for (int m = 0; m < 4; ++m)
          if (mask >> m & 1) name += std::string(" ") + names[m];
        if (mask == 0) name += " none";
        time_chain(
            name, [&](int i) { (mask >> (i % 4) & 1) ? launch_e(i, false) : launch_k(engine_shapes[i % 4], i); },
            (mask & 4) != 0);
      }
  }
  // C: the gate+up -> down boundary streamed (see Role): down's blocks start during gate+up's last
  // wave and take each 1,024-row chunk of its output as soon as the counters say it is written,
  // instead of after the whole grid. Engine shapes for every matrix; small ops (~1 us) after q/k/v,
  // o and down in the "+S" rows, and in the K rows optionally a trivial op after gate+up (the
  // engine's int8 quantize, which a streaming producer would do itself).
  if (run_section('C')) {
    unsigned *ready, *epoch;
    CK(cudaMalloc(&ready, size_t(kLayers) * 32 * 4));
    CK(cudaMalloc(&epoch, 4));
    CK(cudaMemset(ready, 0, size_t(kLayers) * 32 * 4));
    CK(cudaMemset(epoch, 0, 4));
    enum Mode {
      kK,
      kKQuant,
      kStream,
      kStreamLate,
      kEarlyOnly,
      kStreamRelaxed,
      kStreamLateRelaxed,
      kCountOnly,
      kPollOnly
    };
    const char* mode_names[] = {"C: K engine shapes",
                                "C: K engine shapes, trivial op after gate+up",
                                "C: streamed gate+up -> down",
                                "C: streamed, producer triggers at its end",
                                "C: gate+up triggers at block start only",
                                "C: streamed, relaxed polls",
                                "C: streamed, late trigger, relaxed polls",
                                "C: gate+up counts (late), down waits as K",
                                "C: down polls ready counters, gate+up as K"};
    unsigned* zero;  // the epoch of kPollOnly: every chunk ready at once
    CK(cudaMalloc(&zero, 4));
    CK(cudaMemset(zero, 0, 4));
    auto launch_flow = [&](auto kernel, int i, int rows_per_block, int pair, bool at_once = false) {
      const Flow f{ready + size_t(i / 4) * 32, at_once ? zero : epoch};
      launch_pdl(kernel, (phases[i].m.rows + rows_per_block - 1) / rows_per_block, kThreads, st, phases[i].m, x,
                 phases[i].y, pair, f);
    };
    auto record = [&](Mode mode, const Small& sm, int i) {
      const bool counts = mode == kStream || mode == kStreamLate || mode == kStreamRelaxed ||
                          mode == kStreamLateRelaxed || mode == kCountOnly;
      if (i == 0 && counts) bump_epoch<<<1, 1, 0, st>>>(epoch);  // the counters' token
      const int m = i % 4, half = phases[i].m.rows / 2;
      if (m == 2 && mode == kEarlyOnly) {
        launch_flow(k_flow<2, 2, 3, 0, kEarly>, i, 4, half);
      } else if (m == 2 && (mode == kStream || mode == kStreamRelaxed)) {
        launch_flow(k_flow<2, 2, 3, 0, kProducer>, i, 4, half);
      } else if (m == 2 && (mode == kStreamLate || mode == kStreamLateRelaxed || mode == kCountOnly)) {
        launch_flow(k_flow<2, 2, 3, 0, kProducerLate>, i, 4, half);
      } else if (m == 3 && (mode == kStream || mode == kStreamLate)) {
        launch_flow(k_flow<4, 2, 2, 0, kConsumer>, i, 2, 1);
      } else if (m == 3 && (mode == kStreamRelaxed || mode == kStreamLateRelaxed)) {
        launch_flow(k_flow<4, 2, 2, 0, kConsumerRelaxed>, i, 2, 1);
      } else if (m == 3 && mode == kPollOnly) {
        launch_flow(k_flow<4, 2, 2, 0, kConsumer>, i, 2, 1, true);
      } else {
        launch_k(engine_shapes[m], i);
      }
      if (m != 2) small_after(sm, i);
      if (m == 2 && mode == kKQuant) small_after(smalls[1], i);
    };
    for (int si : {0})
      for (int rep = 0; rep < 2; ++rep)
        for (Mode mode :
             {kK, kEarlyOnly, kStream, kStreamLate, kStreamRelaxed, kStreamLateRelaxed, kCountOnly, kPollOnly})
          time_chain(
              std::string(mode_names[mode]) + smalls[si].name, [&](int i) { record(mode, smalls[si], i); }, false);
  }
  // T: where each matvec triggers its dependent: at its blocks' end (K) or at block start (kEarly,
  // so that the next kernel is scheduled once its last wave is resident), per matrix; with a ~1 us
  // small op after every matvec ("+S"), which waits then triggers, or triggers then waits ("+S
  // early": the next matvec is then scheduled during the small op's wait).
  if (run_section('T')) {
    auto early = [&](int i) {
      const Phase& p = phases[i];
      switch (i % 4) {
        case 0:
          launch_pdl(k_flow<2, 2, 3, 0, kEarly>, (p.m.rows + 3) / 4, kThreads, st, p.m, x, p.y, 1, Flow{});
          break;
        case 1:
          launch_pdl(k_flow<1, 2, 4, 6, kEarly>, (p.m.rows + 7) / 8, kThreads, st, p.m, x, p.y, 1, Flow{});
          break;
        case 2:
          launch_pdl(k_flow<2, 2, 3, 0, kEarly>, p.m.rows / 4, kThreads, st, p.m, x, p.y, p.m.rows / 2, Flow{});
          break;
        default:
          launch_pdl(k_flow<4, 2, 2, 0, kEarly>, p.m.rows / 2, kThreads, st, p.m, x, p.y, 1, Flow{});
      }
    };
    const char* names[4] = {"q/k/v", "o", "gate+up", "down"};
    for (int small = 0; small < 3; ++small)
      for (int rep = 0; rep < 2; ++rep)
        for (int mask : {0, 1, 2, 4, 8, 15}) {
          std::string name = "T: early trigger in";
          for (int m = 0; m < 4; ++m)
            if (mask >> m & 1) name += std::string(" ") + names[m];
          if (mask == 0) name += " none";
          name += small == 0 ? "" : small == 1 ? " +S 1us" : " +S 1us early";
          time_chain(
              name,
              [&](int i) {
                (mask >> (i % 4) & 1) ? early(i) : launch_k(engine_shapes[i % 4], i);
                if (small == 1) small_after(smalls[2], i);
                if (small == 2)
                  launch_pdl(small_op<true>, 1, kThreads, st, static_cast<const float*>(phases[i].y), sink, 2000LL);
              },
              false);
        }
  }
  // G: gate+up as k_glu32 (its own int8 quantize, 32 output rows a block) followed directly by down,
  // against the engine shapes with and without a trivial op in the quantize's place.
  if (run_section('G')) {
    int8_t* hq;
    float2* hds;
    CK(cudaMalloc(&hq, 21504));
    CK(cudaMalloc(&hds, 21504 / 32 * sizeof(float2)));
    struct Glu {
      const char* name;
      void (*kernel)(Mat, Act, float*, int8_t*, float2*);
      int threads;
    };
    // Run 5 (session 27), us per layer: the engine shapes 65.5-65.7, with a trivial op in the
    // quantize's place 66.4-66.5; 8w x 4 rows U1 68.1-68.3, early 66.8 (80 registers: 3 blocks per
    // SM, 1.7 waves; under a bound of 5-6 blocks per SM it spills); 16w x 2 rows U1 75.1, U2
    // early 69.1; 32w x 1 row U2 early 73.0, U3 69.7.
    const Glu glus[] = {{"G: glu32 8w x 4 rows U1", k_glu32<8, 4, 1, false>, 256},
                        {"G: glu32 8w x 4 rows U1, early", k_glu32<8, 4, 1, true>, 256},
                        {"G: glu32 16w x 2 rows U1", k_glu32<16, 2, 1, false>, 512},
                        {"G: glu32 16w x 2 rows U1, early", k_glu32<16, 2, 1, true>, 512},
                        {"G: glu32 16w x 2 rows U2, early", k_glu32<16, 2, 2, true>, 512},
                        {"G: glu32 32w x 1 row U2, early", k_glu32<32, 1, 2, true>, 1024},
                        {"G: glu32 32w x 1 row U3, early", k_glu32<32, 1, 3, true>, 1024}};
    for (int rep = 0; rep < 2; ++rep) {
      time_chain(
          "G: K engine shapes", [&](int i) { launch_k(engine_shapes[i % 4], i); }, false);
      time_chain(
          "G: K engine shapes, trivial op after gate+up",
          [&](int i) {
            launch_k(engine_shapes[i % 4], i);
            if (i % 4 == 2) small_after(smalls[1], i);
          },
          false);
      for (const Glu& g : glus)
        time_chain(
            g.name,
            [&](int i) {
              if (i % 4 == 2)
                launch_pdl(g.kernel, phases[i].m.rows / 64, g.threads, st, phases[i].m, x, phases[i].y, hq, hds);
              else
                launch_k(engine_shapes[i % 4], i);
            },
            false);
    }
  }
  if (!run_section('P') && !run_section('Q')) return 0;

  // P and Q: persistent, writing yp.
  std::vector<Phase> pp = phases;
  for (auto& p : pp) p.y = yp + (p.y - yk);
  Phase* dphases;
  CK(cudaMalloc(&dphases, pp.size() * sizeof(Phase)));
  CK(cudaMemcpy(dphases, pp.data(), pp.size() * sizeof(Phase), cudaMemcpyHostToDevice));
  unsigned *count, *generation, *next_job;
  CK(cudaMalloc(&count, 4));
  CK(cudaMalloc(&generation, 4));
  CK(cudaMalloc(&next_job, n * 4));
  CK(cudaMemset(count, 0, 4));
  CK(cudaMemset(generation, 0, 4));
  unsigned gen = 0;
  auto run_p = [&](auto kernel, int blocks) {
    CK(cudaMemsetAsync(next_job, 0, n * 4, st));
    unsigned g0 = gen;
    gen += n - 1;
    void* args[] = {&dphases, const_cast<int*>(&n), const_cast<Act*>(&x), &count, &generation, &g0, &next_job};
    CK(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(kernel), blocks, kThreads, args, 0, st));
  };
  auto try_p = [&](auto kernel, const char* name) {
    int occ = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, kThreads, 0));
    for (int per_sm : {occ, occ - 2, occ / 2}) {
      if (per_sm < 1) continue;
      CK(cudaMemset(yp, 0, y_total * 4));
      const auto t = time_us([&] { run_p(kernel, per_sm * sms); }, 10);
      std::vector<float> got(y_total);
      CK(cudaMemcpy(got.data(), yp, y_total * 4, cudaMemcpyDeviceToHost));
      char label[96];
      std::snprintf(label, sizeof label, "%s, %d blocks/SM (of %d)", name, per_sm, occ);
      report(label, t);
      std::printf("    outputs vs the first chain: nmse %.2e\n", nmse(got, ref_y));
    }
  };
  if (run_section('P')) {
    try_p(p_chain<2, false>, "P: persistent, static jobs");
    try_p(p_chain<2, true>, "P: persistent, counter jobs");
  }
  // Q: one block per SM of G groups (see q_chain).
  auto try_q = [&](auto kernel, int groups, const char* name) {
    const int threads = kThreads * groups;
    int occ = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kernel, threads, 0));
    if (occ < 1) {
      std::printf("%s: does not fit one block per SM\n", name);
      return;
    }
    CK(cudaMemset(yp, 0, y_total * 4));
    const auto t = time_us(
        [&] {
          unsigned g0 = gen;
          gen += n - 1;
          void* args[] = {&dphases, const_cast<int*>(&n), const_cast<Act*>(&x), &count, &generation, &g0};
          CK(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(kernel), sms, threads, args, 0, st));
        },
        10);
    std::vector<float> got(y_total);
    CK(cudaMemcpy(got.data(), yp, y_total * 4, cudaMemcpyDeviceToHost));
    report(name, t);
    std::printf("    outputs vs the first chain: nmse %.2e\n", nmse(got, ref_y));
  };
  if (run_section('Q')) {
    for (int rep = 0; rep < 2; ++rep) {
      try_q(q_chain<2, 8>, 8, "Q: 1 block/SM x 8 groups");
      try_q(q_chain<2, 6>, 6, "Q: 1 block/SM x 6 groups");
    }
  }
  return 0;
}
