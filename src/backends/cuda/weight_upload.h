// Builds a weight's device layout (device_weight.h) from its file bytes and copies it to the GPU,
// either into its own allocation or at a place the caller chose (the backend packs every weight
// of a model into one allocation: cudaMalloc rounds each allocation up to 2 MiB, which cost
// ~400 MiB over the 434 matrices of 27B).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "backends/cuda/device_buffer.h"
#include "backends/cuda/device_weight.h"
#include "core/thread_pool.h"
#include "model/weights.h"

namespace unicorn::cuda {

// Alignment of each weight (and of each plane inside one) in device memory.
inline constexpr size_t kWeightAlign = 256;

struct UploadedWeight {
  DeviceBuffer memory;
  DeviceWeight view;
};

// Bytes of w's device layout. Throws Error naming the tensor for types without a device reader
// or unsuitable shapes.
size_t device_bytes(const WeightTensor& w);

// Building the layout in pieces: stage_rows writes rows [r0, r1) of w's device layout to `staging`
// (staged_bytes(w, r1 - r0) bytes, linear in the rows) and returns where each piece goes: bytes
// [src, src + bytes) of the staging to [dst, dst + bytes) of the layout. Between its planes the
// layout has alignment gaps that no piece covers (never read).
struct StagedRegion {
  size_t dst = 0, src = 0, bytes = 0;
};
size_t staged_bytes(const WeightTensor& w, int64_t rows);
std::vector<StagedRegion> stage_rows(const WeightTensor& w, int64_t r0, int64_t r1, uint8_t* staging);
// The same with the rows split over the pool's threads (one contiguous share each).
std::vector<StagedRegion> stage_rows_parallel(const WeightTensor& w, int64_t r0, int64_t r1, uint8_t* staging,
                                              ThreadPool& pool);

// Uploads weights through two pinned staging buffers: a chunk of rows is staged by a thread pool
// while the previous chunk's copies run on `stream` (pageable buffers where pinned memory cannot
// be had). upload() returns once its last chunk is queued; finish() waits for every copy.
// `total` (the bytes about to be uploaded) sizes the buffers and the pool: small uploads (tests,
// single weights) get small buffers and one thread, a model every hardware thread (loading runs
// before any inference, so it does not follow the engine's thread count). pinned = false stages
// in pageable buffers (each copy then completes its staging before cudaMemcpyAsync returns).
class WeightUploader {
 public:
  WeightUploader(cudaStream_t stream, size_t total, bool pinned = true);
  ~WeightUploader();
  WeightUploader(const WeightUploader&) = delete;
  WeightUploader& operator=(const WeightUploader&) = delete;
  // Writes w's device layout to `dst` (device memory of device_bytes(w) bytes, kWeightAlign-
  // aligned) and returns its view.
  DeviceWeight upload(const WeightTensor& w, void* dst);
  void finish();

 private:
  void release();
  static constexpr int kBuffers = 2;
  static constexpr size_t kStagingBytes = size_t{64} << 20;
  struct Staging {
    uint8_t* data = nullptr;
    size_t bytes = 0;
    bool pinned = false;
    std::vector<uint8_t> pageable;
    cudaEvent_t copied = nullptr;  // recorded after the buffer's last copies
  };
  cudaStream_t stream_;
  ThreadPool pool_;
  Staging staging_[kBuffers];
  int next_ = 0;
};

// One weight into an allocation of its own.
UploadedWeight upload_weight(const WeightTensor& w);

}  // namespace unicorn::cuda
