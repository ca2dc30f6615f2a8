// NeoX rotate-half RoPE on every head of x [T, heads * head_dim] (spec §2.4.3): pair
// (x[i], x[i + d/2]) rotated by pos * inv_freq[i] (rope.cuh), from the table of the step's
// factors. One thread per (token, i), over all heads.
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/rope.cuh"

namespace unicorn::cuda {
namespace {

__global__ void rope_table(const int32_t* pos, int64_t T, int64_t head_dim, float base, float scale, float2* cs) {
  pdl_enter();
  const int64_t half = head_dim / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= T * half) return;
  float c, s;
  rope_factors(idx % half, head_dim, pos[idx / half], base, scale, c, s);
  cs[idx] = make_float2(c, s);
}

__global__ void rope(float* x, int64_t T, int64_t cols, int64_t head_dim, const float2* cs) {
  pdl_enter();
  const int64_t half = head_dim / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= T * half) return;
  const int64_t r = idx / half, i = idx % half;
  const float2 f = cs[idx];
  float* row = x + r * cols;
  for (int64_t h = 0; h < cols / head_dim; ++h) {
    float* v = row + h * head_dim;
    rotate(v[i], v[i + half], f.x, f.y);
  }
}

constexpr int kBlock = 128;

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kBlock - 1) / kBlock); }

}  // namespace

cudaError_t launch_rope_table(const int32_t* pos, int64_t T, int64_t head_dim, float base, float scale, float2* cs,
                              cudaStream_t s) {
  const int64_t n = T * (head_dim / 2);
  if (n == 0) return cudaSuccess;
  launch(rope_table, dim3(blocks_for(n)), dim3(kBlock), 0, s, pos, T, head_dim, base, scale, cs);
  return cudaGetLastError();
}

cudaError_t launch_rope(float* x, int64_t T, int64_t cols, int64_t head_dim, const float2* cs, cudaStream_t s) {
  const int64_t n = T * (head_dim / 2);
  if (n == 0) return cudaSuccess;
  launch(rope, dim3(blocks_for(n)), dim3(kBlock), 0, s, x, T, cols, head_dim, cs);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
