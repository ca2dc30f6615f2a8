// Q4_0/Q5_0 with importance: the same blocks as the reference quantizers (codec_legacy.cpp),
// but the scale is the weighted least-squares fit instead of "extreme value maps to -8/-16".
#include "quant/quantize_weighted.h"
#include "quant/superblock_fit.h"

namespace unicorn {
namespace {

// Value j (< 16) in the low nibble of qs[j], value j+16 in the high nibble (blocks.h); returns
// bit 4 of every value as the qh word.
uint32_t pack_32(const uint8_t* q, uint8_t* qs) {
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((q[j] & 0xF) | ((q[j + 16] & 0xF) << 4));
    qh |= static_cast<uint32_t>(q[j] >> 4) << j;
    qh |= static_cast<uint32_t>(q[j + 16] >> 4) << (j + 16);
  }
  return qh;
}

}  // namespace

// Grid index = level + 8 = the stored nibble.
void quantize_block_weighted(const float* x, const float* importance, BlockQ4_0& b) {
  static const fit::LevelGrid levels = fit::LevelGrid::integers(-8, 7);
  uint8_t q[kQK32];
  b.d = fit::fit_symmetric_block(x, importance, kQK32, levels, q);
  pack_32(q, b.qs);
}

// Grid index = level + 16 = the stored 5-bit value.
void quantize_block_weighted(const float* x, const float* importance, BlockQ5_0& b) {
  static const fit::LevelGrid levels = fit::LevelGrid::integers(-16, 15);
  uint8_t q[kQK32];
  b.d = fit::fit_symmetric_block(x, importance, kQK32, levels, q);
  const uint32_t qh = pack_32(q, b.qs);
  for (int k = 0; k < 4; ++k) b.qh[k] = static_cast<uint8_t>(qh >> (8 * k));
}

}  // namespace unicorn
