// RMSNorm over groups of `group` values of each row (a whole row, or one head for QK-norm):
// y = x * rsqrt(mean(x²) + eps) * w, spec §2.2 (w already holds 1 + w). The sum of squares is
// accumulated in double, as the CPU reference does. One block per (row, group); y may alias x.
#include "backends/cuda/kernels.h"

namespace unicorn::cuda {
namespace {

constexpr int kThreads = 128;

__global__ void __launch_bounds__(kThreads)
    rms_norm(const float* x, const float* w, int64_t group, float eps, float* y) {
  __shared__ double partial[kThreads / 32];
  const int64_t base = static_cast<int64_t>(blockIdx.x) * group;
  const float* xs = x + base;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < group; i += kThreads) ss += static_cast<double>(xs[i]) * xs[i];
#pragma unroll
  for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xFFFFFFFFu, ss, o);
  if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = ss;
  __syncthreads();
  double total = 0.0;
#pragma unroll
  for (int i = 0; i < kThreads / 32; ++i) total += partial[i];
  const float inv = 1.0f / sqrtf(static_cast<float>(total / static_cast<double>(group)) + eps);
  float* ys = y + base;
  for (int64_t i = threadIdx.x; i < group; i += kThreads) ys[i] = xs[i] * inv * w[i];
}

}  // namespace

cudaError_t launch_rms_norm(const float* x, const float* w, int64_t rows, int64_t cols, int64_t group, float eps,
                            float* y, cudaStream_t s) {
  const int64_t n_groups = rows * (cols / group);
  if (n_groups == 0) return cudaSuccess;
  rms_norm<<<static_cast<unsigned>(n_groups), kThreads, 0, s>>>(x, w, group, eps, y);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
