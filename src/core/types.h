// Tensor element types. The numeric ids are GGML's (gemma3-spec.md §4.1) so that a GGUF
// tensor's type field maps directly. Block layouts live in src/quant/blocks.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace unicorn {

enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ4_XS = 23,  // 256 values: f16 d, u16 scales_h, u8 scales_l[4], qs[128] (136 bytes)
  BF16 = 30,
};

struct TypeTraits {
  GgmlType type;
  std::string_view name;
  int block_size;      // values per block (1 for plain floats)
  size_t block_bytes;  // bytes per block
  bool quantized;
};

// Traits of a type; nullopt for ids this engine does not know.
std::optional<TypeTraits> type_traits(uint32_t id);
const TypeTraits& traits(GgmlType t);  // for known types only
inline std::string_view type_name(GgmlType t) { return traits(t).name; }
std::optional<GgmlType> type_from_name(std::string_view name);  // case-insensitive "q4_0", "bf16"...

// Bytes of a row of n values (n must be a multiple of the block size).
size_t row_bytes(GgmlType t, int64_t n);

}  // namespace unicorn
