// NeoX rotate-half RoPE on every head of x [T, heads * head_dim] (spec §2.4.3): pair
// (x[i], x[i + d/2]) rotated by pos * inv_freq[i], inv_freq[i] = base^(-2i/d) / scale. The
// frequency and the angle are rounded to f32 and cos/sin taken in double, as the CPU reference
// does, so both backends rotate by the same f32 factors. One thread per (token, i), over all heads.
#include "backends/cuda/kernels.h"

namespace unicorn::cuda {
namespace {

__global__ void rope(float* x, int64_t T, int64_t cols, int64_t head_dim, const int32_t* pos, float base, float scale) {
  const int64_t half = head_dim / 2;
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= T * half) return;
  const int64_t r = idx / half, i = idx % half;
  const float inv_freq = static_cast<float>(1.0 / pow(static_cast<double>(base),
                                                      2.0 * static_cast<double>(i) / static_cast<double>(head_dim))) /
                         scale;
  const float angle = static_cast<float>(pos[r]) * inv_freq;
  const float c = static_cast<float>(cos(static_cast<double>(angle)));
  const float s = static_cast<float>(sin(static_cast<double>(angle)));
  float* row = x + r * cols;
  for (int64_t h = 0; h < cols / head_dim; ++h) {
    float* v = row + h * head_dim;
    const float a = v[i], b = v[i + half];
    v[i] = __fsub_rn(__fmul_rn(a, c), __fmul_rn(b, s));
    v[i + half] = __fadd_rn(__fmul_rn(b, c), __fmul_rn(a, s));
  }
}

}  // namespace

cudaError_t launch_rope(float* x, int64_t T, int64_t cols, int64_t head_dim, const int32_t* pos, float base,
                        float scale, cudaStream_t s) {
  const int64_t n = T * (head_dim / 2);
  if (n == 0) return cudaSuccess;
  constexpr int kBlock = 128;
  rope<<<static_cast<unsigned>((n + kBlock - 1) / kBlock), kBlock, 0, s>>>(x, T, cols, head_dim, pos, base, scale);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
