// Elementwise ops of the layer: GeGLU's gelu_tanh(gate) * up (spec §2.5), the residual add, the
// row gather before the logits and the final logit soft-cap (spec §2.6).
#include "backends/cuda/gelu.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kBlock = 256;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kBlock - 1) / kBlock); }

__global__ void gelu_mul(const float* gate, const float* up, float* out, int64_t n) {
  pdl_enter();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  out[i] = gelu_tanh(gate[i]) * up[i];
}

__global__ void add(float* x, const float* y, int64_t n) {
  pdl_enter();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] += y[i];
}

__global__ void softcap(float* x, int64_t n, float cap) {
  pdl_enter();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

__global__ void gather_rows(const float* x, int64_t cols, const int32_t* rows, float* out) {
  pdl_enter();
  const float* src = x + static_cast<int64_t>(rows[blockIdx.x]) * cols;
  float* dst = out + static_cast<int64_t>(blockIdx.x) * cols;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) dst[i] = src[i];
}

}  // namespace

cudaError_t launch_gelu_mul(const float* gate, const float* up, float* out, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  launch(gelu_mul, dim3(blocks_for(n)), dim3(kBlock), 0, s, gate, up, out, n);
  return cudaGetLastError();
}

cudaError_t launch_add(float* x, const float* y, int64_t n, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  launch(add, dim3(blocks_for(n)), dim3(kBlock), 0, s, x, y, n);
  return cudaGetLastError();
}

cudaError_t launch_softcap(float* x, int64_t n, float cap, cudaStream_t s) {
  if (n == 0) return cudaSuccess;
  launch(softcap, dim3(blocks_for(n)), dim3(kBlock), 0, s, x, n, cap);
  return cudaGetLastError();
}

cudaError_t launch_gather_rows(const float* x, int64_t cols, const int32_t* rows, int64_t n_rows, float* out,
                               cudaStream_t s) {
  if (n_rows == 0) return cudaSuccess;
  launch(gather_rows, dim3(static_cast<unsigned>(n_rows)), dim3(kBlock), 0, s, x, cols, rows, out);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
