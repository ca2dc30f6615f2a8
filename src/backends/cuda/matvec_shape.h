// How many warps share one weight row in the matvec kernels: enough warps overall to keep about
// 48 per multiprocessor busy, so that matrices of few rows still have enough loads in flight.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace unicorn::cuda {

// Multiprocessors of the device current at the first call (132 if it cannot be read).
inline int device_sm_count() {
  static const int sm_count = [] {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev);
    return n > 0 ? n : 132;
  }();
  return sm_count;
}

// Shared memory a block may opt into on the device current at the first call (bytes; 48 KiB if it
// cannot be read): 227 KiB on sm_90, 163 KiB on sm_80, 99 KiB on sm_86 / sm_89.
inline size_t device_smem_optin() {
  static const size_t bytes = [] {
    int dev = 0, n = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&n, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    return n > 0 ? static_cast<size_t>(n) : size_t{48} << 10;
  }();
  return bytes;
}

inline int warps_per_row(int64_t rows, int max_warps) {
  const int64_t want = 48 * static_cast<int64_t>(device_sm_count());
  int wpr = 1;
  while (wpr < max_warps && rows * wpr < want) wpr *= 2;
  return wpr;
}

}  // namespace unicorn::cuda
