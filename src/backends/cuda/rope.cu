// NeoX rotate-half RoPE on every head of x [T, heads * head_dim] (spec §2.4.3): pair
// (x[i], x[i + d/2]) rotated by pos * inv_freq[i] (rope.cuh). One thread per (token, i), over all
// heads.
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/rope.cuh"

namespace unicorn::cuda {
namespace {

__global__ void rope(float* x, int64_t T, int64_t cols, int64_t head_dim, const int32_t* pos, float base, float scale) {
  pdl_wait();
  pdl_trigger();
  const int64_t half = head_dim / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= T * half) return;
  const int64_t r = idx / half, i = idx % half;
  float c, s;
  rope_factors(i, head_dim, pos[r], base, scale, c, s);
  float* row = x + r * cols;
  for (int64_t h = 0; h < cols / head_dim; ++h) {
    float* v = row + h * head_dim;
    rotate(v[i], v[i + half], c, s);
  }
}

}  // namespace

cudaError_t launch_rope(float* x, int64_t T, int64_t cols, int64_t head_dim, const int32_t* pos, float base,
                        float scale, cudaStream_t s) {
  const int64_t n = T * (head_dim / 2);
  if (n == 0) return cudaSuccess;
  constexpr int kBlock = 128;
  launch(rope, dim3(static_cast<unsigned>((n + kBlock - 1) / kBlock)), dim3(kBlock), 0, s, x, T, cols, head_dim, pos,
         base, scale);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
