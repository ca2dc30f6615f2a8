// Matvec for float weights (F32, F16, BF16) and few tokens (T <= 8), f32 math: one warp per
// weight row, each lane reads 8 consecutive weights per step (one or two 16-byte loads) and the
// matching activations of every token.
#include "backends/cuda/kernels.h"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kWarps = 4;

template <class F, int NT>
__global__ void __launch_bounds__(kWarps * 32) matvec_float(DeviceWeight w, const float* x, int T, float* y) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= w.rows) return;
  const int64_t K = w.cols;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  // Several 8-value groups per lane per pass, so that each lane has several loads in flight.
  constexpr int kUnroll = NT <= 2 ? 4 : 2;
  for (int64_t base = 8 * lane; base < K; base += 8 * 32 * kUnroll) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t k = base + 8 * 32 * u;
      if (k >= K) break;
      float wv[8];
      F::decode8(w, row, k, wv);
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        if (t >= T) break;
        const float4* xp = reinterpret_cast<const float4*>(x + t * K + k);
        const float4 a = __ldg(xp), b = __ldg(xp + 1);
        acc[t] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y +
                  wv[6] * b.z + wv[7] * b.w;
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    float v = acc[t];
#pragma unroll
    for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
    if (lane == 0 && t < T) y[t * w.rows + row] = v;
  }
}

template <class F>
void launch_for(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((w.rows + kWarps - 1) / kWarps));
  const dim3 block(kWarps * 32);
  if (T <= 1) matvec_float<F, 1><<<grid, block, 0, s>>>(w, x, T, y);
  else if (T <= 2) matvec_float<F, 2><<<grid, block, 0, s>>>(w, x, T, y);
  else if (T <= 4) matvec_float<F, 4><<<grid, block, 0, s>>>(w, x, T, y);
  else matvec_float<F, 8><<<grid, block, 0, s>>>(w, x, T, y);
}

}  // namespace

cudaError_t launch_matvec_float(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s) {
  switch (w.type) {
    case GgmlType::F32: launch_for<FormatF32>(w, x, T, y, s); break;
    case GgmlType::F16: launch_for<FormatF16>(w, x, T, y, s); break;
    case GgmlType::BF16: launch_for<FormatBF16>(w, x, T, y, s); break;
    default: return cudaErrorNotSupported;
  }
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
