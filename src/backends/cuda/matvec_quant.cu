// Matvec for quantized weights and few tokens (T <= 8): memory-bound, so each weight byte is read
// once with 16-byte loads and decoded in registers; the activations were quantized to int8 per 32
// values (quantize_act.cu) so that 4 products take one dp4a. One to four warps per weight row;
// lanes take consecutive work items (weight_formats.cuh), so a warp's loads are contiguous.
#include "backends/cuda/kernels.h"
#include "backends/cuda/matvec_shape.h"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kWarps = 4;

// `wpr` warps share a row (1, 2 or 4), each taking every wpr-th group of 32 items, so that a
// matrix of few rows still puts enough loads in flight; their sums meet in shared memory.
template <class F, int NT>
__global__ void __launch_bounds__(kWarps * 32) matvec_quant(DeviceWeight w, ActQ8 x, int T, int wpr, float* y) {
  __shared__ float partial[kWarps][NT];
  const int lane = static_cast<int>(threadIdx.x % 32), warp = static_cast<int>(threadIdx.x / 32);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * (kWarps / wpr) + warp / wpr;
  const int part = warp % wpr;
  const int64_t K = w.cols, items = K / F::kItem;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  if (row < w.rows) {
    // Several items per lane per pass, so that each lane has several 16-byte loads in flight.
    constexpr int kUnroll = NT <= 2 ? 4 : 2;
    const int64_t step = 32 * static_cast<int64_t>(wpr);
    for (int64_t base = 32 * part + lane; base < items; base += step * kUnroll) {
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (base + step * u < items) F::template dot<NT>(w, row, base + step * u, x, K, T, acc);
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
}

template <class F>
void launch_for(const DeviceWeight& w, ActQ8 x, int T, float* y, cudaStream_t s) {
  const int wpr = warps_per_row(w.rows, kWarps);
  const int64_t rows_per_block = kWarps / wpr;
  const dim3 grid(static_cast<unsigned>((w.rows + rows_per_block - 1) / rows_per_block));
  const dim3 block(kWarps * 32);
  if (T <= 1)
    matvec_quant<F, 1><<<grid, block, 0, s>>>(w, x, T, wpr, y);
  else if (T <= 2)
    matvec_quant<F, 2><<<grid, block, 0, s>>>(w, x, T, wpr, y);
  else if (T <= 4)
    matvec_quant<F, 4><<<grid, block, 0, s>>>(w, x, T, wpr, y);
  else
    matvec_quant<F, 8><<<grid, block, 0, s>>>(w, x, T, wpr, y);
}

}  // namespace

bool matvec_quant_supports(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q5_0 || t == GgmlType::Q4_K ||
         t == GgmlType::Q6_K;
}

cudaError_t launch_matvec_quant(const DeviceWeight& w, ActQ8 x, int T, float* y, cudaStream_t s) {
  switch (w.type) {
    case GgmlType::Q8_0:
      launch_for<FormatQ8_0>(w, x, T, y, s);
      break;
    case GgmlType::Q4_0:
      launch_for<FormatQ4_0>(w, x, T, y, s);
      break;
    case GgmlType::Q5_0:
      launch_for<FormatQ5_0>(w, x, T, y, s);
      break;
    case GgmlType::Q4_K:
      launch_for<FormatQ4_K>(w, x, T, y, s);
      break;
    case GgmlType::Q6_K:
      launch_for<FormatQ6_K>(w, x, T, y, s);
      break;
    default:
      return cudaErrorNotSupported;
  }
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
