// Matvec for float weights (F32, F16, BF16) and few tokens (T <= 8), f32 math: one to four warps
// per weight row (as matvec_quant.cu); each lane reads 8 consecutive weights per step (one or two
// 16-byte loads) and the matching activations of every token.
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/matvec_shape.h"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kWarps = 4;

// `wpr` warps share a row (1, 2 or 4), each taking every wpr-th run of 32 x 8 values.
template <class F, int NT>
__global__ void __launch_bounds__(kWarps * 32) matvec_float(DeviceWeight w, const float* x, int T, int wpr, float* y) {
  __shared__ float partial[kWarps][NT];
  pdl_wait();
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarps / wpr) + warp / wpr;
  const int part = warp % wpr;
  const int64_t K = w.cols;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  if (row < w.rows) {
    // Several 8-value groups per lane per pass, so that each lane has several loads in flight.
    constexpr int kUnroll = NT <= 2 ? 4 : 2;
    const int64_t step = 8 * 32 * static_cast<int64_t>(wpr);
    for (int64_t base = 8 * (32 * part + lane); base < K; base += step * kUnroll) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int64_t k = base + step * u;
        if (k >= K) break;
        float wv[8];
        F::decode8(w, row, k, wv);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
          if (t >= T) break;
          const float4* xp = reinterpret_cast<const float4*>(x + t * K + k);
          const float4 a = ld_dep_f4(xp), b = ld_dep_f4(xp + 1);
          acc[t] += wv[0] * a.x + wv[1] * a.y + wv[2] * a.z + wv[3] * a.w + wv[4] * b.x + wv[5] * b.y + wv[6] * b.z +
                    wv[7] * b.w;
        }
      }
    }
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
#pragma unroll
    for (int o = 16; o > 0; o /= 2) acc[t] += __shfl_xor_sync(0xFFFFFFFFu, acc[t], o);
  }
  if (wpr > 1) {
    if (lane == 0)
#pragma unroll
      for (int t = 0; t < NT; ++t) partial[warp][t] = acc[t];
    __syncthreads();
    if (part == 0)
#pragma unroll
      for (int t = 0; t < NT; ++t) {
        acc[t] = 0.0f;
        for (int p = 0; p < wpr; ++p) acc[t] += partial[warp + p][t];
      }
  }
  if (lane == 0 && part == 0 && row < w.rows)
#pragma unroll
    for (int t = 0; t < NT; ++t)
      if (t < T) y[t * w.rows + row] = acc[t];
  pdl_trigger();
}

template <class F>
void launch_for(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s) {
  const int wpr = warps_per_row(w.rows, kWarps);
  const int64_t rows_per_block = kWarps / wpr;
  const dim3 grid(static_cast<unsigned>((w.rows + rows_per_block - 1) / rows_per_block));
  const dim3 block(kWarps * 32);
  if (T <= 1)
    launch(matvec_float<F, 1>, grid, block, 0, s, w, x, T, wpr, y);
  else if (T <= 2)
    launch(matvec_float<F, 2>, grid, block, 0, s, w, x, T, wpr, y);
  else if (T <= 4)
    launch(matvec_float<F, 4>, grid, block, 0, s, w, x, T, wpr, y);
  else
    launch(matvec_float<F, 8>, grid, block, 0, s, w, x, T, wpr, y);
}

}  // namespace

cudaError_t launch_matvec_float(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s) {
  switch (w.type) {
    case GgmlType::F32:
      launch_for<FormatF32>(w, x, T, y, s);
      break;
    case GgmlType::F16:
      launch_for<FormatF16>(w, x, T, y, s);
      break;
    case GgmlType::BF16:
      launch_for<FormatBF16>(w, x, T, y, s);
      break;
    default:
      return cudaErrorNotSupported;
  }
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
