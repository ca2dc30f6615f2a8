// Unpacks one quantized weight row into the plain int8 + per-sub-block scale form of WeightTile
// (matmul_kernels.h), written straight from the block layouts (spec §4.5, blocks.h). Every
// scale below is a product of an f16 and a small integer, exact in f32, so the unpacked row
// dequantizes to exactly the reference codec's values.
#include <cstring>

#include "backends/cpu/matmul_kernels.h"
#include "core/bytes.h"
#include "core/error.h"
#include "core/half.h"
#include "quant/blocks.h"

namespace unicorn {
namespace {

template <typename Block>
Block load_block(const uint8_t* src, int64_t i) {
  Block b;
  std::memcpy(&b, src + i * static_cast<int64_t>(sizeof(Block)), sizeof(Block));
  return b;
}

// Output cursor over one row: values, and per sub-block scale / min coefficient.
struct RowOut {
  int8_t* q;
  float* scale;
  float* minc;
};

// Legacy 32-blocks: value j < 16 in the low nibble of qs[j], j + 16 in the high nibble.
void unpack(const BlockQ4_0& b, RowOut o) {
  for (int j = 0; j < 16; ++j) {
    o.q[j] = static_cast<int8_t>((b.qs[j] & 0xF) - 8);
    o.q[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) - 8);
  }
  o.scale[0] = f16_to_f32(b.d);
  o.minc[0] = 0.0f;
}

void unpack(const BlockQ4_1& b, RowOut o) {
  for (int j = 0; j < 16; ++j) {
    o.q[j] = static_cast<int8_t>(b.qs[j] & 0xF);
    o.q[j + 16] = static_cast<int8_t>(b.qs[j] >> 4);
  }
  o.scale[0] = f16_to_f32(b.d);
  o.minc[0] = f16_to_f32(b.m);
}

// Bit 4 of value j is bit j of the little-endian qh word.
void unpack(const BlockQ5_0& b, RowOut o) {
  const uint32_t qh = load_u32(b.qh);
  for (int j = 0; j < 16; ++j) {
    o.q[j] = static_cast<int8_t>(((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - 16);
    o.q[j + 16] = static_cast<int8_t>(((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
  }
  o.scale[0] = f16_to_f32(b.d);
  o.minc[0] = 0.0f;
}

void unpack(const BlockQ5_1& b, RowOut o) {
  const uint32_t qh = load_u32(b.qh);
  for (int j = 0; j < 16; ++j) {
    o.q[j] = static_cast<int8_t>((b.qs[j] & 0xF) | (((qh >> j) & 1) << 4));
    o.q[j + 16] = static_cast<int8_t>((b.qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4));
  }
  o.scale[0] = f16_to_f32(b.d);
  o.minc[0] = f16_to_f32(b.m);
}

void unpack(const BlockQ8_0& b, RowOut o) {
  std::memcpy(o.q, b.qs, 32);
  o.scale[0] = f16_to_f32(b.d);
  o.minc[0] = 0.0f;
}

// K-quants with 16-value sub-blocks. In each 128-value half h, qs[32h + l] holds values
// 128h + 32s + l at bits 2s..2s+1.
int k_low2(const uint8_t* qs, int i) {
  const int half = i / 128, shift = 2 * ((i % 128) / 32), l = i % 32;
  return (qs[32 * half + l] >> shift) & 3;
}

void unpack(const BlockQ2_K& b, RowOut o) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int i = 0; i < kQKK; ++i) o.q[i] = static_cast<int8_t>(k_low2(b.qs, i));
  for (int s = 0; s < 16; ++s) {
    o.scale[s] = d * static_cast<float>(b.scales[s] & 0xF);
    o.minc[s] = -dmin * static_cast<float>(b.scales[s] >> 4);
  }
}

// A clear hmask bit means the value is 4 lower.
void unpack(const BlockQ3_K& b, RowOut o) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < kQKK; ++i) {
    const bool high = (b.hmask[i % 32] >> (i / 32)) & 1;
    o.q[i] = static_cast<int8_t>(k_low2(b.qs, i) - (high ? 0 : 4));
  }
  for (int s = 0; s < 16; ++s) {
    o.scale[s] = d * static_cast<float>(q3k_scale(b.scales, s));
    o.minc[s] = 0.0f;
  }
}

// Sub-block s uses qs[32(s/2) ...], low nibbles for even s.
void unpack(const BlockQ4_K& b, RowOut o) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < 8; ++s) {
    const uint8_t* qs = b.qs + 32 * (s / 2);
    for (int l = 0; l < 32; ++l) o.q[32 * s + l] = static_cast<int8_t>((qs[l] >> (4 * (s % 2))) & 0xF);
    const ScaleMin sm = k4_scale_min(b.scales, s);
    o.scale[s] = d * static_cast<float>(sm.scale);
    o.minc[s] = -dmin * static_cast<float>(sm.min);
  }
}

void unpack(const BlockQ5_K& b, RowOut o) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int s = 0; s < 8; ++s) {
    const uint8_t* qs = b.qs + 32 * (s / 2);
    for (int l = 0; l < 32; ++l) {
      const int low = (qs[l] >> (4 * (s % 2))) & 0xF, high = (b.qh[l] >> s) & 1;
      o.q[32 * s + l] = static_cast<int8_t>(low | (high << 4));
    }
    const ScaleMin sm = k4_scale_min(b.scales, s);
    o.scale[s] = d * static_cast<float>(sm.scale);
    o.minc[s] = -dmin * static_cast<float>(sm.min);
  }
}

// In each half h, 32-value group s: low nibble from ql[64h + 32(s%2) + l] (high nibble for
// s >= 2), top two bits from qh[32h + l] at bits 2s; stored +32.
void unpack(const BlockQ6_K& b, RowOut o) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < kQKK; ++i) {
    const int half = i / 128, s = (i % 128) / 32, l = i % 32;
    const int low = (b.ql[64 * half + 32 * (s % 2) + l] >> (4 * (s / 2))) & 0xF;
    const int high = (b.qh[32 * half + l] >> (2 * s)) & 3;
    o.q[i] = static_cast<int8_t>((low | (high << 4)) - 32);
  }
  for (int s = 0; s < 16; ++s) {
    o.scale[s] = d * static_cast<float>(b.scales[s]);
    o.minc[s] = 0.0f;
  }
}

template <typename Block>
void unpack_blocks(const uint8_t* src, int64_t K, RowOut o, int sub) {
  constexpr int n = Block::kValues;
  for (int64_t i = 0; i < K / n; ++i) {
    const int64_t s0 = i * n / sub;
    unpack(load_block<Block>(src, i), RowOut{o.q + i * n, o.scale + s0, o.minc + s0});
  }
}

}  // namespace

bool tile_supports(GgmlType type) {
  switch (type) {
    case GgmlType::Q4_0:
    case GgmlType::Q4_1:
    case GgmlType::Q5_0:
    case GgmlType::Q5_1:
    case GgmlType::Q8_0:
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
    case GgmlType::Q6_K:
      return true;
    default:
      return false;
  }
}

int tile_sub_block(GgmlType type) {
  switch (type) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::Q6_K:
      return 16;
    default:
      return 32;
  }
}

void unpack_row(GgmlType type, const uint8_t* src, int64_t K, int8_t* q, float* scale, float* minc, int32_t* corr) {
  const int sub = tile_sub_block(type);
  const RowOut o{q, scale, minc};
  switch (type) {
    case GgmlType::Q4_0:
      unpack_blocks<BlockQ4_0>(src, K, o, sub);
      break;
    case GgmlType::Q4_1:
      unpack_blocks<BlockQ4_1>(src, K, o, sub);
      break;
    case GgmlType::Q5_0:
      unpack_blocks<BlockQ5_0>(src, K, o, sub);
      break;
    case GgmlType::Q5_1:
      unpack_blocks<BlockQ5_1>(src, K, o, sub);
      break;
    case GgmlType::Q8_0:
      unpack_blocks<BlockQ8_0>(src, K, o, sub);
      break;
    case GgmlType::Q2_K:
      unpack_blocks<BlockQ2_K>(src, K, o, sub);
      break;
    case GgmlType::Q3_K:
      unpack_blocks<BlockQ3_K>(src, K, o, sub);
      break;
    case GgmlType::Q4_K:
      unpack_blocks<BlockQ4_K>(src, K, o, sub);
      break;
    case GgmlType::Q5_K:
      unpack_blocks<BlockQ5_K>(src, K, o, sub);
      break;
    case GgmlType::Q6_K:
      unpack_blocks<BlockQ6_K>(src, K, o, sub);
      break;
    default:
      fail("matmul: weight type {} cannot be unpacked for integer kernels", type_name(type));
  }
  for (int64_t s = 0; s < K / sub; ++s) {
    int32_t sum = 0;
    for (int i = 0; i < sub; ++i) sum += q[s * sub + i];
    corr[s] = -128 * sum;
  }
}

}  // namespace unicorn
