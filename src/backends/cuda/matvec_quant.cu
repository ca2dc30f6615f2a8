// Matvec for quantized weights and few tokens (T <= 8): memory-bound, so each weight byte is read
// once with 16-byte loads and decoded in registers; the activations were quantized to int8 per 32
// values (quantize_act.cu) so that 4 products take one dp4a. One warp per weight row; lanes take
// consecutive work items (weight_formats.cuh), so a warp's loads are contiguous.
#include "backends/cuda/kernels.h"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kWarps = 4;  // rows per block

template <class F, int NT>
__global__ void __launch_bounds__(kWarps * 32) matvec_quant(DeviceWeight w, ActQ8 x, int T, float* y) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarps + threadIdx.x / 32;
  if (row >= w.rows) return;
  const int64_t K = w.cols, items = K / F::kItem;
  float acc[NT];
#pragma unroll
  for (int t = 0; t < NT; ++t) acc[t] = 0.0f;
  // Several items per lane per pass, so that each lane has several 16-byte loads in flight.
  constexpr int kUnroll = NT <= 2 ? 4 : 2;
  for (int64_t base = lane; base < items; base += 32 * kUnroll) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (base + 32 * u < items) F::template dot<NT>(w, row, base + 32 * u, x, K, T, acc);
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
void launch_for(const DeviceWeight& w, ActQ8 x, int T, float* y, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((w.rows + kWarps - 1) / kWarps));
  const dim3 block(kWarps * 32);
  if (T <= 1) matvec_quant<F, 1><<<grid, block, 0, s>>>(w, x, T, y);
  else if (T <= 2) matvec_quant<F, 2><<<grid, block, 0, s>>>(w, x, T, y);
  else if (T <= 4) matvec_quant<F, 4><<<grid, block, 0, s>>>(w, x, T, y);
  else matvec_quant<F, 8><<<grid, block, 0, s>>>(w, x, T, y);
}

}  // namespace

bool matvec_quant_supports(GgmlType t) {
  return t == GgmlType::Q8_0 || t == GgmlType::Q4_0 || t == GgmlType::Q5_0 || t == GgmlType::Q4_K ||
         t == GgmlType::Q6_K;
}

cudaError_t launch_matvec_quant(const DeviceWeight& w, ActQ8 x, int T, float* y, cudaStream_t s) {
  switch (w.type) {
    case GgmlType::Q8_0: launch_for<FormatQ8_0>(w, x, T, y, s); break;
    case GgmlType::Q4_0: launch_for<FormatQ4_0>(w, x, T, y, s); break;
    case GgmlType::Q5_0: launch_for<FormatQ5_0>(w, x, T, y, s); break;
    case GgmlType::Q4_K: launch_for<FormatQ4_K>(w, x, T, y, s); break;
    case GgmlType::Q6_K: launch_for<FormatQ6_K>(w, x, T, y, s); break;
    default: return cudaErrorNotSupported;
  }
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
