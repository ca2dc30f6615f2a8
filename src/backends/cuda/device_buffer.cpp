#include "backends/cuda/device_buffer.h"

#include <cuda_runtime_api.h>

#include <utility>

#include "backends/cuda/cuda_check.h"

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
  check(cudaMalloc(&ptr_, bytes > 0 ? bytes : 1), "allocating device memory");
  bytes_ = bytes;
  return true;
}

}  // namespace unicorn::cuda
