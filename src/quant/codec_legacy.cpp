// Reference codecs of the 32-value blocks Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 (spec §4.5).
// Quantizers follow GGML's reference rounding exactly (as ported in gguf-py's quants.py), so
// files we write match what the Python converter writes, byte for byte.
#include "quant/fp_exact.h"  // must precede code: no FMA contraction

#include <cfloat>
#include <cstdint>

#include "core/half.h"
#include "quant/block_codec.h"
#include "quant/reference_rounding.h"

namespace unicorn {
namespace {
using namespace reference;

constexpr int kHalf = kQK32 / 2;

uint32_t load_u32_le(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) | (static_cast<uint32_t>(p[2]) << 16) |
         (static_cast<uint32_t>(p[3]) << 24);
}

void store_u32_le(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// Unpack 32 4-bit quants (value j low nibble of qs[j], value j+16 high nibble), adding bit 4
// from qh when given.
void unpack_nibbles(const uint8_t* qs, uint32_t qh, int q[kQK32]) {
  for (int j = 0; j < kHalf; ++j) {
    q[j] = (qs[j] & 0xF) | static_cast<int>(((qh >> j) & 1u) << 4);
    q[j + kHalf] = (qs[j] >> 4) | static_cast<int>(((qh >> (j + kHalf)) & 1u) << 4);
  }
}

// Inverse of unpack_nibbles: low nibbles into qs, bit 4 returned as the qh word.
uint32_t pack_nibbles(const uint8_t q[kQK32], uint8_t* qs) {
  uint32_t qh = 0;
  for (int j = 0; j < kHalf; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + kHalf] & 0xF) << 4));
    qh |= static_cast<uint32_t>(q[j] >> 4) << j;
    qh |= static_cast<uint32_t>(q[j + kHalf] >> 4) << (j + kHalf);
  }
  return qh;
}

}  // namespace

// ---- decoders -----------------------------------------------------------------------------------

void dequantize_block(const BlockQ4_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  int q[kQK32];
  unpack_nibbles(b.qs, 0, q);
  for (int j = 0; j < kQK32; ++j) y[j] = d * static_cast<float>(q[j] - 8);
}

void dequantize_block(const BlockQ4_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  int q[kQK32];
  unpack_nibbles(b.qs, 0, q);
  for (int j = 0; j < kQK32; ++j) y[j] = d * static_cast<float>(q[j]) + m;
}

void dequantize_block(const BlockQ5_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  int q[kQK32];
  unpack_nibbles(b.qs, load_u32_le(b.qh), q);
  for (int j = 0; j < kQK32; ++j) y[j] = d * static_cast<float>(q[j] - 16);
}

void dequantize_block(const BlockQ5_1& b, float* y) {
  const float d = f16_to_f32(b.d), m = f16_to_f32(b.m);
  int q[kQK32];
  unpack_nibbles(b.qs, load_u32_le(b.qh), q);
  for (int j = 0; j < kQK32; ++j) y[j] = d * static_cast<float>(q[j]) + m;
}

void dequantize_block(const BlockQ8_0& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < kQK32; ++j) y[j] = d * static_cast<float>(b.qs[j]);
}

void dequantize_block(const BlockQ8_1& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int j = 0; j < kQK32; ++j) y[j] = d * static_cast<float>(b.qs[j]);
}

// ---- quantizers ---------------------------------------------------------------------------------

// d = max/-8 with max the signed extreme, so the extreme lands on level 0 (= -8) exactly;
// levels are trunc(x/d + 8.5), i.e. round half up, clamped to 15.
void quantize_block(const float* x, BlockQ4_0& b) {
  const float d = signed_absmax(x, kQK32) / -8;
  const float id = inverse_or_zero(d);
  b.d = f32_to_f16(d);
  uint8_t q[kQK32];
  for (int j = 0; j < kQK32; ++j) q[j] = truncate_level(x[j] * id + 8.5f, 15);
  pack_nibbles(q, b.qs);
}

// Affine: m = block minimum, d = (max - min)/15, levels trunc((x - m)/d + 0.5).
void quantize_block(const float* x, BlockQ4_1& b) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < kQK32; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / 15;
  const float id = inverse_or_zero(d);
  b.d = f32_to_f16(d);
  b.m = f32_to_f16(min);
  uint8_t q[kQK32];
  for (int j = 0; j < kQK32; ++j) q[j] = truncate_level((x[j] - min) * id + 0.5f, 15);
  pack_nibbles(q, b.qs);
}

void quantize_block(const float* x, BlockQ5_0& b) {
  const float d = signed_absmax(x, kQK32) / -16;
  const float id = inverse_or_zero(d);
  b.d = f32_to_f16(d);
  uint8_t q[kQK32];
  for (int j = 0; j < kQK32; ++j) q[j] = truncate_level(x[j] * id + 16.5f, 31);
  store_u32_le(b.qh, pack_nibbles(q, b.qs));
}

void quantize_block(const float* x, BlockQ5_1& b) {
  float min = FLT_MAX, max = -FLT_MAX;
  for (int j = 0; j < kQK32; ++j) {
    if (x[j] < min) min = x[j];
    if (x[j] > max) max = x[j];
  }
  const float d = (max - min) / 31;
  const float id = inverse_or_zero(d);
  b.d = f32_to_f16(d);
  b.m = f32_to_f16(min);
  uint8_t q[kQK32];
  for (int j = 0; j < kQK32; ++j) q[j] = truncate_level((x[j] - min) * id + 0.5f, 31);
  store_u32_le(b.qh, pack_nibbles(q, b.qs));
}

// Symmetric: d = amax/127, levels round(x/d) half away from zero. The f32 d (not its f16
// rounding) is used for the levels, as GGML does.
void quantize_block(const float* x, BlockQ8_0& b) {
  const float d = absmax(x, kQK32) / 127;
  const float id = inverse_or_zero(d);
  b.d = f32_to_f16(d);
  for (int j = 0; j < kQK32; ++j) b.qs[j] = round_half_away_to_int8(x[j] * id);
}

void quantize_block(const float* x, BlockQ8_1& b) {
  const float d = absmax(x, kQK32) / 127;
  const float id = inverse_or_zero(d);
  b.d = f32_to_f16(d);
  int sum = 0;
  for (int j = 0; j < kQK32; ++j) {
    b.qs[j] = round_half_away_to_int8(x[j] * id);
    sum += b.qs[j];
  }
  b.s = f32_to_f16(static_cast<float>(sum) * d);
}

}  // namespace unicorn
