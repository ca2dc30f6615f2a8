// Builds a weight's device layout (device_weight.h) from its file bytes and copies it to the GPU,
// either into its own allocation or at a place the caller chose (the backend packs every weight
// of a model into one allocation: cudaMalloc rounds each allocation up to 2 MiB, which cost
// ~400 MiB over the 434 matrices of 27B).
#pragma once
#include <cstddef>

#include "backends/cuda/device_buffer.h"
#include "backends/cuda/device_weight.h"
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
// Writes w's device layout to `dst` (device memory of device_bytes(w) bytes, kWeightAlign-aligned)
// and returns its view.
DeviceWeight upload_weight_to(const WeightTensor& w, void* dst);
// The same into an allocation of its own.
UploadedWeight upload_weight(const WeightTensor& w);

}  // namespace unicorn::cuda
