#include <cstdlib>
#include <cstring>

#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {
namespace {

// Compiled like every kernel of this library: its PTX version says whether pdl_wait() and
// pdl_trigger() were compiled in (they are for sm_90 and later only).
__global__ void pdl_probe() {}

}  // namespace

bool sm80_or_later() {
  static const bool yes = [] {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
    return major >= 8;
  }();
  return yes;
}

bool pdl_enabled() {
  static const bool on = [] {
    const char* env = std::getenv("UNICORN_PDL");
    if (env && std::strcmp(env, "0") == 0) return false;
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
    if (major < 9) return false;
    // A build for an older architecture (say compute_80, run on an H100 through the driver's PTX
    // JIT) has kernels without griddepcontrol.wait: launched with the attribute, a kernel could
    // then read its input before the previous kernel wrote it. So the kernels must have been
    // compiled for sm_90 or later.
    cudaFuncAttributes attr{};
    if (cudaFuncGetAttributes(&attr, pdl_probe) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return attr.ptxVersion >= 90;
  }();
  return on;
}

}  // namespace unicorn::cuda
