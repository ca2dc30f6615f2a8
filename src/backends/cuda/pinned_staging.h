// A grow-only pinned (page-locked) host buffer for the small copies of every decode step: the
// batch metadata going up, the step's result (top-k or logits) coming down. From pinned memory a
// cudaMemcpyAsync is one DMA in stream order; from pageable memory the driver first stages the
// data through its own pinned buffer, which costs host time while the GPU waits between steps.
// acquire() waits until the copy that last used the buffer (marked with used_by) has run, so an
// upload that no later synchronisation covers is never overwritten early.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

namespace unicorn::cuda {

class PinnedStaging {
 public:
  PinnedStaging() = default;
  ~PinnedStaging();
  PinnedStaging(const PinnedStaging&) = delete;
  PinnedStaging& operator=(const PinnedStaging&) = delete;

  // At least `bytes` of pinned memory, free to use; nullptr when pinned memory cannot be had
  // (the caller copies from its pageable memory instead; a failure is not retried).
  void* acquire(size_t bytes);
  // Marks the buffer as in use by the copies enqueued on `s` so far.
  void used_by(cudaStream_t s);

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
  cudaEvent_t done_ = nullptr;
  bool pending_ = false, failed_ = false;
};

}  // namespace unicorn::cuda
