// RMSNorm over groups of `group` values of each row (a whole row, or one head for QK-norm):
// y = x * rsqrt(mean(x²) + eps) * w, spec §2.2 (w already holds 1 + w). The sum of squares is
// accumulated in double, as the CPU reference does. One block per (row, group); y may alias x.
// Also the fused forms the decode step uses: QK-norm + RoPE of q and k in one launch, and the end
// of a block (post-norm, residual add, next input norm) in one launch.
#include "backends/cuda/kernels.h"
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
                 int64_t head_dim, float eps, const int32_t* pos, float base, float scale) {
  __shared__ double partial[kThreads / 32];
  __shared__ float v[512];
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
    float c, s;
    rope_factors(i, head_dim, pos[t], base, scale, c, s);
    float a = v[i], b = v[i + half];
    rotate(a, b, c, s);
    x[i] = a;
    x[i + half] = b;
  }
}

// One block per row: x += o * rsqrt(mean(o²) + eps) * post_w, then h = the same norm of the new
// x with next_w. Each thread re-reads the x values it wrote itself.
constexpr int kRowThreads = 256;
__global__ void __launch_bounds__(kRowThreads)
    add_norm(float* x, const float* o, const float* post_w, const float* next_w, int64_t cols, float eps, float* h) {
  __shared__ double partial[kRowThreads / 32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * cols;
  float* xr = x + base;
  const float* orow = o + base;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < cols; i += kRowThreads) ss += static_cast<double>(orow[i]) * orow[i];
  const float inv = inv_rms(block_sum<kRowThreads>(ss, partial), cols, eps);
  double ss2 = 0.0;
  for (int64_t i = threadIdx.x; i < cols; i += kRowThreads) {
    const float v = xr[i] + orow[i] * inv * post_w[i];
    xr[i] = v;
    ss2 += static_cast<double>(v) * v;
  }
  if (next_w == nullptr) return;
  const float inv2 = inv_rms(block_sum<kRowThreads>(ss2, partial), cols, eps);
  float* hr = h + base;
  for (int64_t i = threadIdx.x; i < cols; i += kRowThreads) hr[i] = xr[i] * inv2 * next_w[i];
}

}  // namespace

cudaError_t launch_rms_norm(const float* x, const float* w, int64_t rows, int64_t cols, int64_t group, float eps,
                            float* y, cudaStream_t s) {
  const int64_t n_groups = rows * (cols / group);
  if (n_groups == 0) return cudaSuccess;
  rms_norm<<<static_cast<unsigned>(n_groups), kThreads, 0, s>>>(x, w, group, eps, y);
  return cudaGetLastError();
}

cudaError_t launch_qk_norm_rope(float* q, float* k, const float* q_w, const float* k_w, int64_t T, int64_t n_heads,
                                int64_t n_kv_heads, int64_t head_dim, float eps, const int32_t* pos, float base,
                                float scale, cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  if (head_dim > 512 || head_dim % 2 != 0) return cudaErrorInvalidValue;
  const dim3 grid(static_cast<unsigned>(T), static_cast<unsigned>(n_heads + n_kv_heads));
  qk_norm_rope<<<grid, kThreads, 0, s>>>(q, k, q_w, k_w, n_heads, n_kv_heads, head_dim, eps, pos, base, scale);
  return cudaGetLastError();
}

cudaError_t launch_add_norm(float* x, const float* o, const float* post_w, const float* next_w, int64_t rows,
                            int64_t cols, float eps, float* h, cudaStream_t s) {
  if (rows == 0) return cudaSuccess;
  add_norm<<<static_cast<unsigned>(rows), kRowThreads, 0, s>>>(x, o, post_w, next_w, cols, eps, h);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
