// Embedding lookup (spec §2.1): out[i] = table[tokens[i]] * scale, the row decoded by the same
// readers as the matmul (weight_formats.cuh), 8 values per thread.
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

template <class F>
__global__ void embed(DeviceWeight table, const int32_t* tokens, float scale, float* out) {
  pdl_enter();
  const int64_t row = tokens[blockIdx.x];
  float* o = out + static_cast<int64_t>(blockIdx.x) * table.cols;
  for (int64_t k = 8 * static_cast<int64_t>(threadIdx.x); k < table.cols; k += 8 * blockDim.x) {
    float v[8];
    F::decode8(table, row, k, v);
#pragma unroll
    for (int i = 0; i < 8; ++i) o[k + i] = v[i] * scale;
  }
}

}  // namespace

cudaError_t launch_embed(const DeviceWeight& table, const int32_t* tokens, int64_t T, float scale, float* out,
                         cudaStream_t s) {
  if (T == 0) return cudaSuccess;
  const bool ok = with_format(table.type, [&](auto f) {
    launch(embed<decltype(f)>, dim3(static_cast<unsigned>(T)), dim3(128), 0, s, table, tokens, scale, out);
  });
  return ok ? cudaGetLastError() : cudaErrorNotSupported;
}

}  // namespace unicorn::cuda
