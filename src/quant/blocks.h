// GGML quant block layouts, defined once (gemma3-spec.md §4.5). Every block is a plain struct
// whose bytes are exactly the on-disk/in-memory GGUF block: little-endian, no padding. Half
// floats are kept as their raw IEEE binary16 bits (`F16Bits`); convert with core/half.h.
//
// Byte offsets are given per field and checked by static_asserts below, together with the
// block sizes from src/core/types.cpp. Layout facts for Q5_0/Q5_1/Q2_K/Q3_K/Q5_K/Q8_1/Q8_K
// (which the spec gives only as sizes) follow GGML's ggml-common.h definitions; IQ4_XS follows the
// gguf Python package's dequantizer (gguf/quants.py, class IQ4_XS).
#pragma once
#include <bit>
#include <cstddef>
#include <cstdint>

namespace unicorn {

// Blocks are read by memcpy into these structs, which is only right on little-endian hosts.
static_assert(std::endian::native == std::endian::little, "GGML blocks are little-endian");

using F16Bits = uint16_t;  // raw IEEE binary16

inline constexpr int kQK32 = 32;         // values per "legacy" block (Q4_0 … Q8_1)
inline constexpr int kQKK = 256;         // values per K-quant super-block
inline constexpr int kKScaleBytes = 12;  // packed 6-bit scales+mins of Q4_K/Q5_K, 6-bit scales of Q3_K

// ---- 32-value blocks -------------------------------------------------------------------------
// In all of them value j (j < 16) is in the low nibble of qs[j] and value j+16 in the high
// nibble of qs[j]; the 5-bit types keep bit 4 of value j in bit j of the 32-bit qh word.

// y = d * (q - 8), q in 0..15.
struct BlockQ4_0 {
  static constexpr int kValues = kQK32;
  F16Bits d;              // @0   scale
  uint8_t qs[kQK32 / 2];  // @2   4-bit quants, two per byte
};

// y = d * q + m, q in 0..15.
struct BlockQ4_1 {
  static constexpr int kValues = kQK32;
  F16Bits d;              // @0   scale
  F16Bits m;              // @2   minimum (offset)
  uint8_t qs[kQK32 / 2];  // @4   4-bit quants
};

// y = d * (q - 16), q in 0..31.
struct BlockQ5_0 {
  static constexpr int kValues = kQK32;
  F16Bits d;              // @0   scale
  uint8_t qh[4];          // @2   bit 4 of each quant; little-endian uint32, bit j = value j
  uint8_t qs[kQK32 / 2];  // @6   low 4 bits of the quants
};

// y = d * q + m, q in 0..31.
struct BlockQ5_1 {
  static constexpr int kValues = kQK32;
  F16Bits d;              // @0   scale
  F16Bits m;              // @2   minimum
  uint8_t qh[4];          // @4   bit 4 of each quant (as Q5_0)
  uint8_t qs[kQK32 / 2];  // @8   low 4 bits
};

// y = d * q, q in -127..127 (also the activation format for Q4_0/Q5_0 dot products).
struct BlockQ8_0 {
  static constexpr int kValues = kQK32;
  F16Bits d;         // @0   scale
  int8_t qs[kQK32];  // @2   quants, value j in qs[j]
};

// Activation format paired with Q4_1/Q5_1: as Q8_0 plus s = d * sum(qs), so that the weight's
// minimum term needs no per-value work.
struct BlockQ8_1 {
  static constexpr int kValues = kQK32;
  F16Bits d;         // @0   scale
  F16Bits s;         // @2   d * sum(qs)
  int8_t qs[kQK32];  // @4   quants
};

// ---- 256-value K-quant super-blocks -------------------------------------------------------------

// 16 sub-blocks of 16 values, 2-bit quants. y = d*(sc&0xF)*q - dmin*(sc>>4), sc = scales[i/16].
// Quant of value i: in each 128-value half h, byte qs[32h + l] holds values
// 128h + 32s + l at bits 2s..2s+1 (s = 0..3).
struct BlockQ2_K {
  static constexpr int kValues = kQKK;
  uint8_t scales[kQKK / 16];  // @0   low nibble: scale, high nibble: min (4 bits each)
  uint8_t qs[kQKK / 4];       // @16  2-bit quants
  F16Bits d;                  // @80  super-block scale of the scales
  F16Bits dmin;               // @82  super-block scale of the mins
};

// 16 sub-blocks of 16 values, 3-bit quants (2 low bits in qs laid out as Q2_K, high bit in hmask:
// value i's high bit is bit i/32 of hmask[i%32]; a CLEAR bit means subtract 4).
// 6-bit signed scales (stored +32): low 4 bits of scale j in scales[j%8] at nibble j/8, high
// 2 bits in scales[8 + j%4] at bits 2*(j/4). y = d * (scale - 32) * q, q in -4..3.
struct BlockQ3_K {
  static constexpr int kValues = kQKK;
  uint8_t hmask[kQKK / 8];       // @0    high bit of each quant
  uint8_t qs[kQKK / 4];          // @32   low 2 bits
  uint8_t scales[kKScaleBytes];  // @96 packed 6-bit scales
  F16Bits d;                     // @108  super-block scale
};

// 8 sub-blocks of 32 values, 4-bit quants; 6-bit scale and min per sub-block (spec §4.5,
// get_scale_min_k4). Chunk c (64 values) uses qs[32c..32c+31]: low nibbles are sub-block 2c,
// high nibbles sub-block 2c+1. y = d*sc*q - dmin*m.
struct BlockQ4_K {
  static constexpr int kValues = kQKK;
  F16Bits d;                     // @0   super-block scale of the scales
  F16Bits dmin;                  // @2   super-block scale of the mins
  uint8_t scales[kKScaleBytes];  // @4  packed 6-bit scales and mins
  uint8_t qs[kQKK / 2];          // @16  4-bit quants
};

// As Q4_K plus a fifth bit: value i's bit 4 is bit i/32 of qh[i%32].
struct BlockQ5_K {
  static constexpr int kValues = kQKK;
  F16Bits d;                     // @0   super-block scale of the scales
  F16Bits dmin;                  // @2   super-block scale of the mins
  uint8_t scales[kKScaleBytes];  // @4  packed 6-bit scales and mins (as Q4_K)
  uint8_t qh[kQKK / 8];          // @16  bit 4 of each quant
  uint8_t qs[kQKK / 2];          // @48  low 4 bits (as Q4_K)
};

// 16 sub-blocks of 16 values, 6-bit quants stored -32; int8 scale per sub-block (spec §4.5).
struct BlockQ6_K {
  static constexpr int kValues = kQKK;
  uint8_t ql[kQKK / 2];      // @0    low 4 bits
  uint8_t qh[kQKK / 4];      // @128  high 2 bits
  int8_t scales[kQKK / 16];  // @192  sub-block scales
  F16Bits d;                 // @208  super-block scale
};

// Activation format for K-quant dot products: y = d * q. bsums[g] = sum of qs[16g..16g+15],
// which lets Q2_K/Q4_K/Q5_K subtract their mins per sub-block without touching each value.
struct BlockQ8_K {
  static constexpr int kValues = kQKK;
  float d;                   // @0    scale (f32, not f16)
  int8_t qs[kQKK];           // @4    quants
  int16_t bsums[kQKK / 16];  // @260  sums of 16 quants
};

// ---- non-linear 4-bit super-block (IQ4_XS) -----------------------------------------------------

// The 16 levels of IQ4_NL/IQ4_XS, ascending: denser near zero, where most weights are.
inline constexpr int8_t kIq4Levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

// 8 sub-blocks of 32 values; 4-bit indices into kIq4Levels. Sub-block s has a signed 6-bit
// scale stored +32: low 4 bits in scales_l[s/2] at nibble s%2, high 2 bits in scales_h at bits
// 2s..2s+1. Sub-block s uses qs[16s..16s+15]: value l (l < 16) in the low nibble of qs[16s+l],
// value l+16 in its high nibble. y = (d * (ls - 32)) * kIq4Levels[q].
struct BlockIQ4_XS {
  static constexpr int kValues = kQKK;
  F16Bits d;                    // @0   super-block scale
  uint16_t scales_h;            // @2   high 2 bits of the 8 scales
  uint8_t scales_l[kQKK / 64];  // @4   low 4 bits of the 8 scales
  uint8_t qs[kQKK / 2];         // @8   4-bit level indices
};

// ---- layout checks (sizes must equal block_bytes in src/core/types.cpp) -------------------------
static_assert(sizeof(BlockQ4_0) == 18 && offsetof(BlockQ4_0, qs) == 2);
static_assert(sizeof(BlockQ4_1) == 20 && offsetof(BlockQ4_1, m) == 2 && offsetof(BlockQ4_1, qs) == 4);
static_assert(sizeof(BlockQ5_0) == 22 && offsetof(BlockQ5_0, qh) == 2 && offsetof(BlockQ5_0, qs) == 6);
static_assert(sizeof(BlockQ5_1) == 24 && offsetof(BlockQ5_1, qh) == 4 && offsetof(BlockQ5_1, qs) == 8);
static_assert(sizeof(BlockQ8_0) == 34 && offsetof(BlockQ8_0, qs) == 2);
static_assert(sizeof(BlockQ8_1) == 36 && offsetof(BlockQ8_1, s) == 2 && offsetof(BlockQ8_1, qs) == 4);
static_assert(sizeof(BlockQ2_K) == 84 && offsetof(BlockQ2_K, qs) == 16 && offsetof(BlockQ2_K, d) == 80 &&
              offsetof(BlockQ2_K, dmin) == 82);
static_assert(sizeof(BlockQ3_K) == 110 && offsetof(BlockQ3_K, qs) == 32 && offsetof(BlockQ3_K, scales) == 96 &&
              offsetof(BlockQ3_K, d) == 108);
static_assert(sizeof(BlockQ4_K) == 144 && offsetof(BlockQ4_K, scales) == 4 && offsetof(BlockQ4_K, qs) == 16);
static_assert(sizeof(BlockQ5_K) == 176 && offsetof(BlockQ5_K, qh) == 16 && offsetof(BlockQ5_K, qs) == 48);
static_assert(sizeof(BlockQ6_K) == 210 && offsetof(BlockQ6_K, qh) == 128 && offsetof(BlockQ6_K, scales) == 192 &&
              offsetof(BlockQ6_K, d) == 208);
static_assert(sizeof(BlockQ8_K) == 292 && offsetof(BlockQ8_K, qs) == 4 && offsetof(BlockQ8_K, bsums) == 260);
static_assert(sizeof(BlockIQ4_XS) == 136 && offsetof(BlockIQ4_XS, scales_h) == 2 &&
              offsetof(BlockIQ4_XS, scales_l) == 4 && offsetof(BlockIQ4_XS, qs) == 8);

// Q4_K/Q5_K: 6-bit scale and min of sub-block s (0..7) from the 12 packed bytes (spec §4.5).
// Bytes 0..3 hold scales 0..3 (low 6 bits), bytes 4..7 mins 0..3; bytes 8..11 hold the low
// nibbles of scales 4..7 and (high nibble) mins 4..7, whose top 2 bits sit in bits 6..7 of
// bytes 0..3 (scales) and 4..7 (mins).
struct ScaleMin {
  uint8_t scale;
  uint8_t min;
};
inline ScaleMin k4_scale_min(const uint8_t* scales, int s) {
  if (s < 4) return {static_cast<uint8_t>(scales[s] & 63), static_cast<uint8_t>(scales[s + 4] & 63)};
  return {static_cast<uint8_t>((scales[s + 4] & 0xF) | ((scales[s - 4] >> 6) << 4)),
          static_cast<uint8_t>((scales[s + 4] >> 4) | ((scales[s] >> 6) << 4))};
}

// Inverse of k4_scale_min for one sub-block; scale and min must be < 64. Bytes shared with other
// sub-blocks are updated with OR, so start from zeroed scales.
inline void k4_set_scale_min(uint8_t* scales, int s, int scale, int min) {
  if (s < 4) {
    scales[s] |= static_cast<uint8_t>(scale);
    scales[s + 4] |= static_cast<uint8_t>(min);
  } else {
    scales[s + 4] = static_cast<uint8_t>((scale & 0xF) | ((min & 0xF) << 4));
    scales[s - 4] |= static_cast<uint8_t>((scale >> 4) << 6);
    scales[s] |= static_cast<uint8_t>((min >> 4) << 6);
  }
}

// Q3_K: signed 6-bit scale of sub-block j (0..15), already minus 32.
inline int q3k_scale(const uint8_t* scales, int j) {
  const int low = (scales[j % 8] >> (4 * (j / 8))) & 0xF;
  const int high = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (low | (high << 4)) - 32;
}

// Inverse of q3k_scale; scale in -32..31; start from zeroed scales (bytes are shared).
inline void q3k_set_scale(uint8_t* scales, int j, int scale) {
  const int u = scale + 32;
  scales[j % 8] |= static_cast<uint8_t>((u & 0xF) << (4 * (j / 8)));
  scales[8 + j % 4] |= static_cast<uint8_t>((u >> 4) << (2 * (j / 4)));
}

// IQ4_XS: signed 6-bit scale of sub-block s (0..7), already minus 32.
inline int iq4xs_scale(const BlockIQ4_XS& b, int s) {
  const int low = (b.scales_l[s / 2] >> (4 * (s % 2))) & 0xF;
  const int high = (b.scales_h >> (2 * s)) & 3;
  return (low | (high << 4)) - 32;
}

// Inverse of iq4xs_scale; scale in -32..31; start from zeroed scale fields.
inline void iq4xs_set_scale(BlockIQ4_XS& b, int s, int scale) {
  const int u = scale + 32;
  b.scales_l[s / 2] |= static_cast<uint8_t>((u & 0xF) << (4 * (s % 2)));
  b.scales_h |= static_cast<uint16_t>((u >> 4) << (2 * s));
}

}  // namespace unicorn
