// IQ4_XS weight quantizer: each value becomes the nearest of the 16 non-linear levels
// (kIq4Levels) at its sub-block's scale; the scales are fitted by weighted least squares over
// that codebook (superblock_fit.h) and stored as signed 6-bit integers under one f16 scale.
#include <span>

#include "quant/quantize_weighted.h"
#include "quant/superblock_fit.h"

namespace unicorn {

void quantize_block_weighted(const float* x, const float* importance, BlockIQ4_XS& b) {
  static const fit::LevelGrid levels = fit::LevelGrid::codebook(std::span<const int8_t>(kIq4Levels));
  static const fit::LevelGrid scales = fit::LevelGrid::integers(-32, 31);
  fit::SymmetricSuperBlock f;
  fit::fit_symmetric_superblock(x, importance, 32, levels, scales, f);
  b = BlockIQ4_XS{};
  b.d = f.d;
  for (int s = 0; s < 8; ++s) {
    iq4xs_set_scale(b, s, f.scale[s]);
    for (int l = 0; l < 16; ++l) b.qs[16 * s + l] = static_cast<uint8_t>(f.q[32 * s + l] | (f.q[32 * s + l + 16] << 4));
  }
}

}  // namespace unicorn
