// K-quant weight quantizers: fit with superblock_fit.h, then pack the levels and scales into
// the bit positions that the reference decoders (codec_kquants.cpp, blocks.h) read.
#include "quant/quantize_weighted.h"
#include "quant/superblock_fit.h"

namespace unicorn {
namespace {

using fit::LevelGrid;

// Position of value i in the layouts that split 256 values into two 128-value halves of four
// 32-value groups (Q2_K, Q3_K, Q6_K).
struct HalfGroup {
  int half, group, lane;
};
HalfGroup half_group(int i) { return {i / 128, (i % 128) / 32, i % 32}; }

// Two bits of value i at bits 2·group of qs[32·half + lane] (Q2_K quants, Q3_K low bits).
void put_two_bits(uint8_t* qs, int i, int bits) {
  const HalfGroup p = half_group(i);
  qs[32 * p.half + p.lane] |= static_cast<uint8_t>((bits & 3) << (2 * p.group));
}

}  // namespace

void quantize_block_weighted(const float* x, const float* importance, BlockQ2_K& b) {
  fit::AffineSuperBlock f;
  fit::fit_affine_superblock(x, importance, 16, 3, 15, f);
  b = BlockQ2_K{};
  b.d = f.d;
  b.dmin = f.dmin;
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<uint8_t>(f.scale[j] | (f.min[j] << 4));
  for (int i = 0; i < kQKK; ++i) put_two_bits(b.qs, i, f.q[i]);
}

// Levels -4..3 are stored as u = level + 4: low 2 bits in qs, bit 2 in hmask (set = no -4).
void quantize_block_weighted(const float* x, const float* importance, BlockQ3_K& b) {
  static const LevelGrid levels = LevelGrid::integers(-4, 3);
  static const LevelGrid scales = LevelGrid::integers(-32, 31);
  fit::SymmetricSuperBlock f;
  fit::fit_symmetric_superblock(x, importance, 16, levels, scales, f);
  b = BlockQ3_K{};
  b.d = f.d;
  for (int j = 0; j < 16; ++j) q3k_set_scale(b.scales, j, f.scale[j]);
  for (int i = 0; i < kQKK; ++i) {
    put_two_bits(b.qs, i, f.q[i]);
    b.hmask[i % 32] |= static_cast<uint8_t>((f.q[i] >> 2) << (i / 32));
  }
}

void quantize_block_weighted(const float* x, const float* importance, BlockQ4_K& b) {
  fit::AffineSuperBlock f;
  fit::fit_affine_superblock(x, importance, 32, 15, 63, f);
  b = BlockQ4_K{};
  b.d = f.d;
  b.dmin = f.dmin;
  for (int s = 0; s < 8; ++s) k4_set_scale_min(b.scales, s, f.scale[s], f.min[s]);
  for (int i = 0; i < kQKK; ++i) {
    const int sub = i / 32;
    b.qs[32 * (sub / 2) + i % 32] |= static_cast<uint8_t>(f.q[i] << (4 * (sub % 2)));
  }
}

void quantize_block_weighted(const float* x, const float* importance, BlockQ5_K& b) {
  fit::AffineSuperBlock f;
  fit::fit_affine_superblock(x, importance, 32, 31, 63, f);
  b = BlockQ5_K{};
  b.d = f.d;
  b.dmin = f.dmin;
  for (int s = 0; s < 8; ++s) k4_set_scale_min(b.scales, s, f.scale[s], f.min[s]);
  for (int i = 0; i < kQKK; ++i) {
    const int sub = i / 32;
    b.qs[32 * (sub / 2) + i % 32] |= static_cast<uint8_t>((f.q[i] & 0xF) << (4 * (sub % 2)));
    b.qh[i % 32] |= static_cast<uint8_t>((f.q[i] >> 4) << sub);
  }
}

// Levels -32..31 stored as u = level + 32: low nibble in ql, high 2 bits in qh (blocks.h).
void quantize_block_weighted(const float* x, const float* importance, BlockQ6_K& b) {
  static const LevelGrid levels = LevelGrid::integers(-32, 31);
  static const LevelGrid scales = LevelGrid::integers(-128, 127);
  fit::SymmetricSuperBlock f;
  fit::fit_symmetric_superblock(x, importance, 16, levels, scales, f);
  b = BlockQ6_K{};
  b.d = f.d;
  for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<int8_t>(f.scale[j]);
  for (int i = 0; i < kQKK; ++i) {
    const HalfGroup p = half_group(i);
    b.ql[64 * p.half + 32 * (p.group % 2) + p.lane] |= static_cast<uint8_t>((f.q[i] & 0xF) << (4 * (p.group / 2)));
    b.qh[32 * p.half + p.lane] |= static_cast<uint8_t>((f.q[i] >> 4) << (2 * p.group));
  }
}

}  // namespace unicorn
