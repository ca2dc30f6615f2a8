#include "backends/cuda/device_buffer.h"

#include <cuda_runtime_api.h>

#include <utility>

#include "backends/cuda/cuda_check.h"
#include "core/error.h"

namespace unicorn::cuda {

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) cudaFree(ptr_);
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  std::swap(ptr_, o.ptr_);
  std::swap(bytes_, o.bytes_);
  return *this;
}

bool DeviceBuffer::reserve(size_t bytes) {
  if (bytes <= bytes_ && ptr_) return false;
  if (ptr_) cudaFree(ptr_);
  ptr_ = nullptr;
  bytes_ = 0;
  const cudaError_t e = cudaMalloc(&ptr_, bytes > 0 ? bytes : 1);
  if (e == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it, so that the next launch check does not report it
    size_t free = 0, total = 0;
    cudaMemGetInfo(&free, &total);
    int dev = 0;
    cudaGetDevice(&dev);
    fail(
        "CUDA: out of memory on cuda:{} allocating {:.1f} MiB ({:.1f} of {:.1f} MiB free): use a shorter context "
        "(-c), a smaller batch (-b) or fewer GPU layers (--gpu-layers / --gpu-memory)",
        dev, static_cast<double>(bytes) / (1 << 20), static_cast<double>(free) / (1 << 20),
        static_cast<double>(total) / (1 << 20));
  }
  check(e, "allocating device memory");
  bytes_ = bytes;
  return true;
}

}  // namespace unicorn::cuda
