// Builds a weight's device layout (device_weight.h) from its file bytes and copies it to the GPU.
#pragma once
#include "backends/cuda/device_buffer.h"
#include "backends/cuda/device_weight.h"
#include "model/weights.h"

namespace unicorn::cuda {

struct UploadedWeight {
  DeviceBuffer memory;
  DeviceWeight view;
};

// Throws Error naming the tensor for types without a device reader or unsuitable shapes.
UploadedWeight upload_weight(const WeightTensor& w);

}  // namespace unicorn::cuda
