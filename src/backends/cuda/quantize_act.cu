// Activations f32 -> int8 blocks of 32 (act_quant.cuh) for the integer dot-product matvec.
// Eight threads per 32-value block, four values each.
#include "backends/cuda/act_quant.cuh"
#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {
namespace {

__global__ void quantize_q8(const float* x, int64_t n_blocks, int8_t* q, float* ds) {
  pdl_enter();
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;  // group of 4 values
  const bool live = i < n_blocks * 8;
  quantize4_store(live ? reinterpret_cast<const float4*>(x)[i] : make_float4(0, 0, 0, 0), live, i, q, ds);
}

}  // namespace

cudaError_t launch_quantize_q8(const float* x, int64_t T, int64_t K, int8_t* q, float* ds, cudaStream_t s) {
  const int64_t n_blocks = T * K / 32;
  const int64_t threads = n_blocks * 8;
  constexpr int kBlock = 256;
  const cudaError_t e = launch(quantize_q8, dim3(static_cast<unsigned>((threads + kBlock - 1) / kBlock)), dim3(kBlock),
                               0, s, x, n_blocks, q, ds);
  if (e != cudaSuccess) return e;
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
