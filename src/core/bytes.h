// Unaligned little-endian loads from byte buffers (file blocks, staging). The engine runs on
// little-endian hosts (x86-64, arm64), as the file formats are, so a memcpy is the load.
// Not for ISA-specific translation units (backends/cpu/rows_dot_x86.inl keeps its own copies).
#pragma once
#include <cstdint>
#include <cstring>

namespace unicorn {

inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

inline uint64_t load_u64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}

}  // namespace unicorn
