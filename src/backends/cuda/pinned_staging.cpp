#include "backends/cuda/pinned_staging.h"

namespace unicorn::cuda {

PinnedStaging::~PinnedStaging() {
  if (done_) {
    if (pending_) cudaEventSynchronize(done_);
    cudaEventDestroy(done_);
  }
  if (ptr_) cudaFreeHost(ptr_);
}

void* PinnedStaging::acquire(size_t bytes) {
  if (failed_) return nullptr;
  if (pending_) {
    if (cudaEventSynchronize(done_) != cudaSuccess) return nullptr;
    pending_ = false;
  }
  if (bytes > bytes_) {
    if (ptr_) cudaFreeHost(ptr_);
    ptr_ = nullptr, bytes_ = 0;
    const size_t want = bytes < 4096 ? 4096 : bytes;
    if (cudaHostAlloc(&ptr_, want, cudaHostAllocDefault) != cudaSuccess) {
      (void)cudaGetLastError();  // not sticky: clear it so that the next check does not report it
      ptr_ = nullptr, failed_ = true;
      return nullptr;
    }
    bytes_ = want;
  }
  if (!done_ && cudaEventCreateWithFlags(&done_, cudaEventDisableTiming) != cudaSuccess) {
    (void)cudaGetLastError();
    failed_ = true;
    return nullptr;
  }
  return ptr_;
}

void PinnedStaging::used_by(cudaStream_t s) {
  if (done_ && cudaEventRecord(done_, s) == cudaSuccess) pending_ = true;
}

}  // namespace unicorn::cuda
