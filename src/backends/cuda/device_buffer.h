// Device memory owned by one object: cudaMalloc'd, freed on destruction, grow-only reserve for
// scratch that ops reuse call after call (safe on one stream: a later op runs after an earlier
// one has finished with the old contents; cudaFree waits for the device).
#pragma once
#include <cstddef>

namespace unicorn::cuda {

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes) { reserve(bytes); }
  ~DeviceBuffer();
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr, o.bytes_ = 0; }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  // Makes room for `bytes` (contents are lost when it grows). Returns true when it reallocated.
  bool reserve(size_t bytes);
  void* get() const { return ptr_; }
  template <class T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

}  // namespace unicorn::cuda
