// The k largest logits of each row (k <= 512), best first, ties by lower column: what the sampler
// needs (runtime/sampler.h), found on the GPU so that the 262k-wide row never crosses to the host.
// One block of 1024 threads per row:
//   1. radix select, 4 passes of 8 bits over order-preserving keys: the key T of the k-th largest
//      value and how many of the values equal to T belong in the top k;
//   2. an ordered pass that keeps every value above T and the lowest-column values equal to T;
//   3. a bitonic sort of those k (value descending, column ascending) in shared memory.
#include <algorithm>
#include <cstdint>

#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kThreads = 1024, kWarps = kThreads / 32, kMaxK = 512;

// Larger float <=> larger key (finite values).
__device__ __forceinline__ uint32_t key_of(float v) {
  if (v == 0.0f) v = 0.0f;  // -0 ties with +0 (the host orders them equal, then by column)
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Calls f(column, key) for every column < n of row z, reading float4s (4 in flight per thread)
// when the row allows it.
template <class F>
__device__ __forceinline__ void for_each_key(const float* z, int64_t n, F&& f) {
  const int tid = static_cast<int>(threadIdx.x);
  if (n % 4 == 0 && reinterpret_cast<uintptr_t>(z) % 16 == 0) {
    const float4* z4 = reinterpret_cast<const float4*>(z);
    const int64_t n4 = n / 4;
    for (int64_t b = tid; b < n4; b += 4 * kThreads) {
      float4 v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (b + u * kThreads < n4) v[u] = z4[b + u * kThreads];
#pragma unroll
      for (int u = 0; u < 4; ++u)
        if (b + u * kThreads < n4) {
          const int64_t c = 4 * (b + u * kThreads);
          f(c, key_of(v[u].x)), f(c + 1, key_of(v[u].y)), f(c + 2, key_of(v[u].z)), f(c + 3, key_of(v[u].w));
        }
    }
  } else {
    for (int64_t i = tid; i < n; i += kThreads) f(i, key_of(z[i]));
  }
}

__global__ void __launch_bounds__(kThreads) top_k_rows(const float* x, int64_t cols, int64_t n, int k, float* out) {
  pdl_enter();
  __shared__ int hist[256];
  __shared__ int warp_total[kWarps];
  __shared__ uint32_t s_prefix;
  __shared__ int s_remaining, s_gt, s_eq_base, s_done;
  __shared__ uint32_t keys[kMaxK];
  __shared__ int32_t ids[kMaxK];
  const int tid = static_cast<int>(threadIdx.x), lane = tid % 32, warp = tid / 32;
  const float* z = x + static_cast<int64_t>(blockIdx.x) * cols;

  // 1. Radix select, most significant byte first.
  if (tid == 0) s_prefix = 0, s_remaining = k;
  uint32_t mask = 0;
  for (int shift = 24; shift >= 0; shift -= 8) {
    if (tid < 256) hist[tid] = 0;
    __syncthreads();
    const uint32_t prefix = s_prefix;
    for_each_key(z, n, [&](int64_t, uint32_t key) {
      if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 0xFFu], 1);
    });
    __syncthreads();
    if (tid < 256) {  // the bin holding the remaining-th largest: counts above it < remaining <= + its own
      const int h = hist[tid];
      int s = h;  // suffix sum within the warp (bins tid .. end of this warp)
#pragma unroll
      for (int o = 1; o < 32; o *= 2) {
        const int v = __shfl_down_sync(0xFFFFFFFFu, s, o);
        if (lane + o < 32) s += v;
      }
      if (lane == 0) warp_total[warp] = s;
      __syncwarp();
      asm volatile("bar.sync 1, 256;");  // the 8 warps of the histogram only
      int above = s - h;
      for (int w = warp + 1; w < 8; ++w) above += warp_total[w];
      const int remaining = s_remaining;
      asm volatile("bar.sync 1, 256;");  // everyone has read s_remaining
      if (above < remaining && remaining <= above + h) {
        s_prefix = prefix | (static_cast<uint32_t>(tid) << shift);
        s_remaining = remaining - above;
      }
    }
    mask |= 0xFFu << shift;
    __syncthreads();
  }
  const uint32_t T = s_prefix;
  const int take_eq = s_remaining;  // values equal to T that belong in the top k
  // 2. Keep every key above T (k - take_eq of them, any order) and the first take_eq keys equal to
  // T in column order.
  if (tid == 0) s_gt = 0, s_eq_base = 0;
  __syncthreads();
  for (int64_t base = 0; base < n; base += kThreads) {
    const int64_t i = base + tid;
    const uint32_t key = i < n ? key_of(z[i]) : 0u;
    if (i < n && key > T) {
      const int slot = atomicAdd(&s_gt, 1);
      keys[slot] = key, ids[slot] = static_cast<int32_t>(i);
    }
    const bool eq = i < n && key == T;
    const unsigned ballot = __ballot_sync(0xFFFFFFFFu, eq);
    if (lane == 0) warp_total[warp] = __popc(ballot);
    __syncthreads();
    int rank = s_eq_base + __popc(ballot & ((1u << lane) - 1u));
    for (int w = 0; w < warp; ++w) rank += warp_total[w];
    if (eq && rank < take_eq) {
      const int slot = (k - take_eq) + rank;
      keys[slot] = key, ids[slot] = static_cast<int32_t>(i);
    }
    __syncthreads();
    if (tid == 0) {
      int total = 0;
      for (int w = 0; w < kWarps; ++w) total += warp_total[w];
      s_eq_base += total;
      // Decided here, not by each thread after the barrier below: a fast warp's next chunk may
      // already be counting into s_gt while a slow one would still read it.
      s_done = s_eq_base >= take_eq && s_gt == k - take_eq;
    }
    __syncthreads();
    if (s_done) break;  // all found (the same for every thread)
  }
  // 3. Bitonic sort of the k entries (padded to a power of two with the smallest key).
  int size = 1;
  while (size < k) size *= 2;
  for (int i = k + tid; i < size; i += kThreads) keys[i] = 0u, ids[i] = INT32_MAX;
  __syncthreads();
  auto before = [&](int a, int b) {  // entry a sorts before entry b: larger key, then lower column
    return keys[a] > keys[b] || (keys[a] == keys[b] && ids[a] < ids[b]);
  };
  for (int len = 2; len <= size; len *= 2) {
    for (int stride = len / 2; stride > 0; stride /= 2) {
      for (int i = tid; i < size; i += kThreads) {
        const int j = i ^ stride;
        if (j > i) {
          const bool ascending_block = (i & len) == 0;  // this half sorts best-first
          if (ascending_block ? before(j, i) : before(i, j)) {
            const uint32_t tk = keys[i];
            const int32_t ti = ids[i];
            keys[i] = keys[j], ids[i] = ids[j];
            keys[j] = tk, ids[j] = ti;
          }
        }
      }
      __syncthreads();
    }
  }
  float* o = out + static_cast<int64_t>(blockIdx.x) * 2 * k;
  for (int i = tid; i < k; i += kThreads) {
    o[2 * i] = z[ids[i]];
    o[2 * i + 1] = static_cast<float>(ids[i]);
  }
}

// k = 1 (greedy): every block folds its columns into one 64-bit word per row, key above and
// ~column below (so the larger word is the larger value, then the lower column), with atomicMax.
__global__ void argmax_rows(const float* x, int64_t cols, int64_t n, unsigned long long* best) {
  pdl_enter();
  const int64_t row = blockIdx.y;
  const float* z = x + row * cols;
  unsigned long long m = 0;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const unsigned long long w =
        (static_cast<unsigned long long>(key_of(z[i])) << 32) | (0xFFFFFFFFu - static_cast<uint32_t>(i));
    m = w > m ? w : m;
  }
#pragma unroll
  for (int o = 16; o > 0; o /= 2) {
    const unsigned long long v = __shfl_xor_sync(0xFFFFFFFFu, m, o);
    m = v > m ? v : m;
  }
  if (threadIdx.x % 32 == 0) atomicMax(best + row, m);
}

__global__ void argmax_write(const float* x, int64_t cols, const unsigned long long* best, int64_t rows, float* out) {
  pdl_enter();
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= rows) return;
  const uint32_t col = 0xFFFFFFFFu - static_cast<uint32_t>(best[row] & 0xFFFFFFFFu);
  out[2 * row] = x[row * cols + col];
  out[2 * row + 1] = static_cast<float>(col);
}

}  // namespace

int top_k_max() { return kMaxK; }

cudaError_t launch_top_k(const float* x, int64_t rows, int64_t cols, int64_t n, int k, float* out,
                         unsigned long long* scratch, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  if (k <= 0 || k > kMaxK || n <= 0 || n > cols || k > n || n >= (int64_t{1} << 24)) return cudaErrorInvalidValue;
  if (k == 1 && scratch != nullptr) {
    cudaError_t e = cudaMemsetAsync(scratch, 0, static_cast<size_t>(rows) * sizeof(unsigned long long), s);
    if (e != cudaSuccess) return e;
    const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 256));
    launch(argmax_rows, dim3(blocks, static_cast<unsigned>(rows)), dim3(256), 0, s, x, cols, n, scratch);
    launch(argmax_write, dim3(static_cast<unsigned>((rows + 127) / 128)), dim3(128), 0, s, x, cols,
           static_cast<const unsigned long long*>(scratch), rows, out);
    return cudaGetLastError();
  }
  launch(top_k_rows, dim3(static_cast<unsigned>(rows)), dim3(kThreads), 0, s, x, cols, n, k, out);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
