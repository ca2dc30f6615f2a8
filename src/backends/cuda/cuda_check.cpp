#include "backends/cuda/cuda_check.h"

#include "core/error.h"

namespace unicorn::cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) fail("CUDA: {}: {} ({})", what, cudaGetErrorString(e), cudaGetErrorName(e));
}

}  // namespace unicorn::cuda
