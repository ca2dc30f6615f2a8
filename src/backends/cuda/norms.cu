// RMSNorm over groups of `group` values of each row (a whole row, or one head for QK-norm):
// y = x * rsqrt(mean(x²) + eps) * w, spec §2.2 (w already holds 1 + w). The sum of squares is
// accumulated in double, as the CPU reference does. One block per (row, group); y may alias x.
// Also the fused forms the decode step uses: QK-norm + RoPE of q and k in one launch, and the end
// of a block (post-norm, residual add, next input norm) in one launch.
#include <atomic>

#include "backends/cuda/act_quant.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/rope.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kThreads = 128;

// Sum over the block (blockDim.x == N), every thread gets the total. `scratch` holds N/32 values.
template <int N>
__device__ __forceinline__ double block_sum(double v, double* scratch) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  __syncthreads();  // scratch may still be read by a previous call
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  double total = 0.0;
#pragma unroll
  for (int i = 0; i < N / 32; ++i) total += scratch[i];
  return total;
}

__device__ __forceinline__ float inv_rms(double sum_sq, int64_t n, float eps) {
  return 1.0f / sqrtf(static_cast<float>(sum_sq / static_cast<double>(n)) + eps);
}

__global__ void __launch_bounds__(kThreads)
    rms_norm(const float* x, const float* w, int64_t group, float eps, float* y) {
  __shared__ double partial[kThreads / 32];
  pdl_enter();
  const int64_t base = static_cast<int64_t>(blockIdx.x) * group;
  const float* xs = x + base;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < group; i += kThreads) ss += static_cast<double>(xs[i]) * xs[i];
  const float inv = inv_rms(block_sum<kThreads>(ss, partial), group, eps);
  float* ys = y + base;
  for (int64_t i = threadIdx.x; i < group; i += kThreads) ys[i] = xs[i] * inv * w[i];
}

// One block per (token, head) over the q heads then the k heads: the head's norm, then its RoPE
// pairs, from a copy in shared memory (head_dim <= 512).
__global__ void __launch_bounds__(kThreads)
    qk_norm_rope(float* q, float* k, const float* q_w, const float* k_w, int64_t n_heads, int64_t n_kv_heads,
                 int64_t head_dim, float eps, const float2* cs) {
  __shared__ double partial[kThreads / 32];
  __shared__ float v[512];
  pdl_enter();
  const int64_t t = blockIdx.x, head = blockIdx.y;
  const bool is_q = head < n_heads;
  float* x = is_q ? q + (t * n_heads + head) * head_dim : k + (t * n_kv_heads + (head - n_heads)) * head_dim;
  const float* w = is_q ? q_w : k_w;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < head_dim; i += kThreads) ss += static_cast<double>(x[i]) * x[i];
  const float inv = inv_rms(block_sum<kThreads>(ss, partial), head_dim, eps);
  for (int64_t i = threadIdx.x; i < head_dim; i += kThreads) v[i] = x[i] * inv * w[i];
  __syncthreads();
  const int64_t half = head_dim / 2;
  for (int64_t i = threadIdx.x; i < half; i += kThreads) {
    const float2 f = cs[t * half + i];
    float a = v[i], b = v[i + half];
    rotate(a, b, f.x, f.y);
    x[i] = a;
    x[i + half] = b;
  }
}

// Whole-row kernels keep the row in registers: thread i holds float4s i, i + kRowThreads, ... (at
// most kVec of them, so rows up to 8192 values), every load is issued before the first use and
// nothing is read twice.
constexpr int kRowThreads = 512, kVec = 4;
constexpr int64_t kMaxRowCols = int64_t{kRowThreads} * 4 * kVec;

__device__ __forceinline__ float4 ld4(const float* p, int64_t i) { return reinterpret_cast<const float4*>(p)[i]; }
__device__ __forceinline__ void st4(float* p, int64_t i, float4 v) { reinterpret_cast<float4*>(p)[i] = v; }
__device__ __forceinline__ double sq4(float4 v) {
  return static_cast<double>(v.x) * v.x + static_cast<double>(v.y) * v.y + static_cast<double>(v.z) * v.z +
         static_cast<double>(v.w) * v.w;
}
// x * inv * w per component, the reference's order (spec §2.2).
__device__ __forceinline__ float4 scale4(float4 x, float inv, float4 w) {
  return make_float4(x.x * inv * w.x, x.y * inv * w.y, x.z * inv * w.z, x.w * inv * w.w);
}

// Quantizes the row's float4s to int8 blocks of 32 (act_quant.cuh; 8 consecutive float4s = 8
// consecutive lanes).
template <int TPB>
__device__ __forceinline__ void quantize_row(const float4* v, int64_t n4, int64_t row, int8_t* q, float* ds) {
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * TPB;
    quantize4_store(v[k], i < n4, row * n4 + i, q, ds);
  }
}

__global__ void __launch_bounds__(kRowThreads)
    rms_norm_rows(const float* x, const float* w, int64_t cols, float eps, float* y) {
  __shared__ double partial[kRowThreads / 32];
  pdl_enter();
  const int64_t n4 = cols / 4, row = blockIdx.x;
  const float* xr = x + row * cols;
  float4 v[kVec], wv[kVec];
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * kRowThreads;
    if (i < n4) {
      v[k] = ld4(xr, i);
      wv[k] = ld4(w, i);
      ss += sq4(v[k]);
    }
  }
  const float inv = inv_rms(block_sum<kRowThreads>(ss, partial), cols, eps);
  float* yr = y + row * cols;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * kRowThreads;
    if (i < n4) st4(yr, i, scale4(v[k], inv, wv[k]));
  }
}

// One block per row: x += o * rsqrt(mean(o²) + eps) * post_w; then h = the same norm of the new x
// with next_w, and h quantized to int8 blocks when q is given. TPB threads (add_norm_threads).
template <int TPB>
__global__ void __launch_bounds__(TPB) add_norm(float* x, const float* o, const float* post_w, const float* next_w,
                                                int64_t cols, float eps, float* h, int8_t* q, float* ds) {
  __shared__ double partial[TPB / 32];
  pdl_enter();
  const int64_t n4 = cols / 4, row = blockIdx.x;
  float* xr = x + row * cols;
  const float* orow = o + row * cols;
  float4 xv[kVec], ov[kVec], pw[kVec], nw[kVec];
  double ss = 0.0;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * TPB;
    if (i < n4) {
      ov[k] = ld4(orow, i);
      xv[k] = ld4(xr, i);
      pw[k] = ld4(post_w, i);
      if (next_w) nw[k] = ld4(next_w, i);
      ss += sq4(ov[k]);
    }
  }
  const float inv = inv_rms(block_sum<TPB>(ss, partial), cols, eps);
  double ss2 = 0.0;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * TPB;
    if (i < n4) {
      const float4 on = scale4(ov[k], inv, pw[k]);
      xv[k] = make_float4(xv[k].x + on.x, xv[k].y + on.y, xv[k].z + on.z, xv[k].w + on.w);
      st4(xr, i, xv[k]);
      ss2 += sq4(xv[k]);
    }
  }
  if (next_w == nullptr) return;
  const float inv2 = inv_rms(block_sum<TPB>(ss2, partial), cols, eps);
  float* hr = h + row * cols;
#pragma unroll
  for (int k = 0; k < kVec; ++k) {
    const int64_t i = threadIdx.x + static_cast<int64_t>(k) * TPB;
    if (i < n4) {
      xv[k] = scale4(xv[k], inv2, nw[k]);
      st4(hr, i, xv[k]);
    }
  }
  if (q) quantize_row<TPB>(xv, n4, row, q, ds);
}

// add_norm's threads per row (set_add_norm_threads): 0 picks the fewest of 128, 256 and 512 that
// hold the row in at most kAutoVec float4s per thread; 128, 256 or 512 ask for that many (more
// where the row needs them).
std::atomic<int> g_add_norm_threads{0};
constexpr int kAutoVec = 2;

int add_norm_threads(int64_t n4) {
  const int want = g_add_norm_threads.load(std::memory_order_relaxed);
  const int per_thread = want == 0 ? kAutoVec : kVec;
  for (const int t : {128, 256})
    if (t >= want && n4 <= static_cast<int64_t>(t) * per_thread) return t;
  return kRowThreads;
}

}  // namespace

void set_add_norm_threads(int threads) {
  g_add_norm_threads.store(threads == 128 || threads == 256 || threads == 512 ? threads : 0);
}

cudaError_t launch_rms_norm(const float* x, const float* w, int64_t rows, int64_t cols, int64_t group, float eps,
                            float* y, cudaStream_t s) {
  const int64_t n_groups = rows * (cols / group);
  if (n_groups == 0) return cudaSuccess;
  if (group == cols && cols % 4 == 0 && cols <= kMaxRowCols) {
    launch(rms_norm_rows, dim3(static_cast<unsigned>(rows)), dim3(kRowThreads), 0, s, x, w, cols, eps, y);
    return cudaGetLastError();
  }
  launch(rms_norm, dim3(static_cast<unsigned>(n_groups)), dim3(kThreads), 0, s, x, w, group, eps, y);
  return cudaGetLastError();
}

cudaError_t launch_qk_norm_rope(float* q, float* k, const float* q_w, const float* k_w, int64_t T, int64_t n_heads,
                                int64_t n_kv_heads, int64_t head_dim, float eps, const float2* cs, cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  if (head_dim > 512 || head_dim % 2 != 0) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(T), static_cast<unsigned>(n_heads + n_kv_heads));
  launch(qk_norm_rope, grid, dim3(kThreads), 0, s, q, k, q_w, k_w, n_heads, n_kv_heads, head_dim, eps, cs);
  return cudaGetLastError();
}

cudaError_t launch_add_norm(float* x, const float* o, const float* post_w, const float* next_w, int64_t rows,
                            int64_t cols, float eps, float* h, int8_t* q, float* ds, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  if (cols % 32 != 0 || cols > kMaxRowCols) return cudaErrorInvalidValue;
  const int tpb = add_norm_threads(cols / 4);
  auto* const kernel = tpb == 128 ? add_norm<128> : (tpb == 256 ? add_norm<256> : add_norm<kRowThreads>);
  launch(kernel, dim3(static_cast<unsigned>(rows)), dim3(tpb), 0, s, x, o, post_w, next_w, cols, eps, h, q, ds);
  return cudaGetLastError();
}

bool add_norm_supports(int64_t cols) { return cols % 32 == 0 && cols <= kMaxRowCols; }

}  // namespace unicorn::cuda
