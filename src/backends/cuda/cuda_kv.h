// CUDA key/value storage of one layer: per sequence slot a ring of `capacity` positions
// (position p at p % capacity), K and V each [n_seq, capacity, n_kv_heads * head_dim] in F16 or
// F32 on the device, the same layout and ring rule as the CPU cache (backends/cpu/cpu_kv.h).
#pragma once
#include "backends/backend.h"
#include "backends/cuda/device_buffer.h"

namespace unicorn::cuda {

class CudaLayerKv final : public LayerKv {
 public:
  explicit CudaLayerKv(const LayerKvSpec& s)
      : spec(s),
        row(s.n_kv_heads * s.head_dim),
        elem(s.type == GgmlType::F16 ? 2 : 4),
        k(bytes_per_buffer()),
        v(bytes_per_buffer()) {}
  size_t bytes() const override { return k.bytes() + v.bytes(); }

  LayerKvSpec spec;
  int64_t row;
  size_t elem;
  DeviceBuffer k, v;

 private:
  size_t bytes_per_buffer() const {
    return static_cast<size_t>(spec.capacity * row) * elem * static_cast<size_t>(spec.n_seq);
  }
};

}  // namespace unicorn::cuda
