// Row-level codec entry points: validate, then dispatch by type to the per-block codecs
// (block_codec.h) or the plain float conversions (core/half.h).
#include "quant/codec.h"

#include <cmath>
#include <cstring>
#include <string>

#include "core/error.h"
#include "core/half.h"
#include "quant/block_codec.h"
#include "quant/quantize_weighted.h"

namespace unicorn {
namespace {

// "Q4_K", or "unknown type id 99" for ids this engine does not know (traits() would throw).
std::string describe(GgmlType type) {
  const auto id = static_cast<uint32_t>(type);
  if (auto t = type_traits(id)) return std::string(t->name);
  return fmt::format("unknown type id {}", id);
}

// Checks n against the type's block size; returns the number of blocks.
int64_t count_blocks(const char* what, GgmlType type, int64_t n) {
  const int block = traits(type).block_size;
  if (n < 0 || n % block != 0)
    fail("{}: {} values is not a whole number of {} blocks ({} values each)", what, n, describe(type), block);
  return n / block;
}

// Blocks are copied out with memcpy: tensor rows of 18- or 22-byte blocks are not aligned for
// the struct, and the copy keeps this code free of aliasing questions.
template <typename Block>
void dequantize_blocks(const void* src, float* dst, int64_t n_blocks) {
  const auto* bytes = static_cast<const unsigned char*>(src);
  for (int64_t i = 0; i < n_blocks; ++i) {
    Block b;
    std::memcpy(&b, bytes + i * sizeof(Block), sizeof(Block));
    dequantize_block(b, dst + i * Block::kValues);
  }
}

template <typename Block>
void quantize_blocks(const float* src, void* dst, int64_t n_blocks) {
  auto* bytes = static_cast<unsigned char*>(dst);
  for (int64_t i = 0; i < n_blocks; ++i) {
    Block b{};
    quantize_block(src + i * Block::kValues, b);
    std::memcpy(bytes + i * sizeof(Block), &b, sizeof(Block));
  }
}

template <typename Block>
void quantize_blocks_weighted(const float* src, const float* importance, void* dst, int64_t n_blocks) {
  auto* bytes = static_cast<unsigned char*>(dst);
  for (int64_t i = 0; i < n_blocks; ++i) {
    Block b{};
    const int64_t first = i * Block::kValues;
    quantize_block_weighted(src + first, importance ? importance + first : nullptr, b);
    std::memcpy(bytes + i * sizeof(Block), &b, sizeof(Block));
  }
}

// The K-quant and IQ formats, which have only the searched quantizers.
bool is_searched_only(GgmlType type) {
  switch (type) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

uint16_t load_u16(const unsigned char* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

}  // namespace

bool can_dequantize(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q8_1:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::Q8_K:
    case GgmlType::IQ4_XS:
      return true;
  }
  return false;
}

bool can_quantize(GgmlType type) {
  switch (type) {
    case GgmlType::F32:
    case GgmlType::F16:
    case GgmlType::BF16:
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q8_1:
    case GgmlType::Q8_K:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
    case GgmlType::IQ4_XS:
      return true;
    default:
      return false;
  }
}

void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n) {
  if (!can_dequantize(type)) fail("dequantize_row: no decoder for tensor type {}", describe(type));
  const int64_t nb = count_blocks("dequantize_row", type, n);
  if (n == 0) return;  // src/dst may be null for an empty row
  const auto* bytes = static_cast<const unsigned char*>(src);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(load_u16(bytes + 2 * i));
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(load_u16(bytes + 2 * i));
      return;
    case GgmlType::Q4_0:
      return dequantize_blocks<BlockQ4_0>(src, dst, nb);
    case GgmlType::Q4_1:
      return dequantize_blocks<BlockQ4_1>(src, dst, nb);
    case GgmlType::Q5_0:
      return dequantize_blocks<BlockQ5_0>(src, dst, nb);
    case GgmlType::Q5_1:
      return dequantize_blocks<BlockQ5_1>(src, dst, nb);
    case GgmlType::Q8_0:
      return dequantize_blocks<BlockQ8_0>(src, dst, nb);
    case GgmlType::Q8_1:
      return dequantize_blocks<BlockQ8_1>(src, dst, nb);
    case GgmlType::Q2_K:
      return dequantize_blocks<BlockQ2_K>(src, dst, nb);
    case GgmlType::Q3_K:
      return dequantize_blocks<BlockQ3_K>(src, dst, nb);
    case GgmlType::Q4_K:
      return dequantize_blocks<BlockQ4_K>(src, dst, nb);
    case GgmlType::Q5_K:
      return dequantize_blocks<BlockQ5_K>(src, dst, nb);
    case GgmlType::Q6_K:
      return dequantize_blocks<BlockQ6_K>(src, dst, nb);
    case GgmlType::Q8_K:
      return dequantize_blocks<BlockQ8_K>(src, dst, nb);
    case GgmlType::IQ4_XS:
      return dequantize_blocks<BlockIQ4_XS>(src, dst, nb);
  }
}

void quantize_row(GgmlType type, const float* src, void* dst, int64_t n) {
  if (!can_quantize(type)) fail("quantize_row: no encoder for tensor type {}", describe(type));
  const int64_t nb = count_blocks("quantize_row", type, n);
  if (n == 0) return;
  if (is_searched_only(type)) return quantize_row_weighted(type, src, dst, n, nullptr);
  auto* bytes = static_cast<unsigned char*>(dst);
  switch (type) {
    case GgmlType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::F16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_f16(src[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
      }
      return;
    case GgmlType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(src[i]);
        std::memcpy(bytes + 2 * i, &h, 2);
      }
      return;
    case GgmlType::Q4_0:
      return quantize_blocks<BlockQ4_0>(src, dst, nb);
    case GgmlType::Q4_1:
      return quantize_blocks<BlockQ4_1>(src, dst, nb);
    case GgmlType::Q5_0:
      return quantize_blocks<BlockQ5_0>(src, dst, nb);
    case GgmlType::Q5_1:
      return quantize_blocks<BlockQ5_1>(src, dst, nb);
    case GgmlType::Q8_0:
      return quantize_blocks<BlockQ8_0>(src, dst, nb);
    case GgmlType::Q8_1:
      return quantize_blocks<BlockQ8_1>(src, dst, nb);
    case GgmlType::Q8_K:
      return quantize_blocks<BlockQ8_K>(src, dst, nb);
    default:
      break;  // excluded by can_quantize
  }
}

void quantize_row_weighted(GgmlType type, const float* src, void* dst, int64_t n, const float* importance) {
  if (!can_quantize(type)) fail("quantize_row_weighted: no encoder for tensor type {}", describe(type));
  const int64_t nb = count_blocks("quantize_row_weighted", type, n);
  if (n == 0) return;
  if (importance) {
    for (int64_t i = 0; i < n; ++i)
      if (!(importance[i] >= 0.0f) || std::isinf(importance[i]))
        fail("quantize_row_weighted: importance of column {} is {} (must be finite and >= 0)", i, importance[i]);
  }
  switch (type) {
    case GgmlType::Q2_K:
      return quantize_blocks_weighted<BlockQ2_K>(src, importance, dst, nb);
    case GgmlType::Q3_K:
      return quantize_blocks_weighted<BlockQ3_K>(src, importance, dst, nb);
    case GgmlType::Q4_K:
      return quantize_blocks_weighted<BlockQ4_K>(src, importance, dst, nb);
    case GgmlType::Q5_K:
      return quantize_blocks_weighted<BlockQ5_K>(src, importance, dst, nb);
    case GgmlType::Q6_K:
      return quantize_blocks_weighted<BlockQ6_K>(src, importance, dst, nb);
    case GgmlType::IQ4_XS:
      return quantize_blocks_weighted<BlockIQ4_XS>(src, importance, dst, nb);
    case GgmlType::Q4_0:
      if (importance) return quantize_blocks_weighted<BlockQ4_0>(src, importance, dst, nb);
      break;
    case GgmlType::Q5_0:
      if (importance) return quantize_blocks_weighted<BlockQ5_0>(src, importance, dst, nb);
      break;
    default:
      break;
  }
  quantize_row(type, src, dst, n);  // importance-free types and the reference paths
}

}  // namespace unicorn
