// CPU key/value storage: per sequence slot a ring of `capacity` positions (position p lives at
// p % capacity), K and V each [capacity, n_kv_heads * head_dim], in F32 or F16.
#pragma once
#include <cstring>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/vec_f32.h"

namespace unicorn {

class CpuLayerKv final : public LayerKv {
 public:
  explicit CpuLayerKv(const LayerKvSpec& s)
      : spec(s), row(s.n_kv_heads * s.head_dim), elem(s.type == GgmlType::F16 ? 2 : 4) {
    const size_t per_slot = static_cast<size_t>(s.capacity * row) * elem;
    k.resize(per_slot * static_cast<size_t>(s.n_seq));
    v.resize(per_slot * static_cast<size_t>(s.n_seq));
  }
  size_t bytes() const override { return k.size() + v.size(); }

  uint8_t* k_at(int seq, int64_t pos) { return at(k, seq, pos); }
  uint8_t* v_at(int seq, int64_t pos) { return at(v, seq, pos); }
  void store(uint8_t* dst, const float* src) const {
    if (elem == 4) {
      std::memcpy(dst, src, static_cast<size_t>(row) * 4);
    } else {
      vec_f32_to_f16(src, reinterpret_cast<uint16_t*>(dst), row);
    }
  }
  // Reads `n` values starting at value offset `off` of a stored row into f32.
  void load(const uint8_t* src, int64_t off, int64_t n, float* dst) const {
    if (elem == 4) {
      std::memcpy(dst, reinterpret_cast<const float*>(src) + off, static_cast<size_t>(n) * 4);
    } else {
      vec_f16_to_f32(reinterpret_cast<const uint16_t*>(src) + off, dst, n);
    }
  }

  LayerKvSpec spec;
  int64_t row;
  size_t elem;

 private:
  uint8_t* at(std::vector<uint8_t>& buf, int seq, int64_t pos) {
    const int64_t slot = pos % spec.capacity;
    return buf.data() + (static_cast<size_t>(seq) * spec.capacity + slot) * row * elem;
  }
  std::vector<uint8_t> k, v;
};

}  // namespace unicorn
