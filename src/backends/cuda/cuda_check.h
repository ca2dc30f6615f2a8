// CUDA runtime errors become unicorn::Error with what was being done.
#pragma once
#include <cuda_runtime_api.h>

namespace unicorn::cuda {

// Throws Error("CUDA: <what>: <runtime message>") unless e is cudaSuccess.
void check(cudaError_t e, const char* what);

}  // namespace unicorn::cuda
