#include <cstdlib>
#include <cstring>

#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {

bool pdl_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("UNICORN_PDL");
    if (env && std::strcmp(env, "0") == 0) return false;
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
    return major >= 9;
  }();
  return on;
}

}  // namespace unicorn::cuda
