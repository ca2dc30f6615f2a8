// Reference decoder of IQ4_XS (layout in blocks.h): 4-bit indices into a fixed non-linear
// codebook, scaled per 32-value sub-block. Bit-exact with gguf-py, which forms the sub-block
// scale d * (ls - 32) first (exact in f32) and then multiplies by the level (one rounding).
#include "quant/fp_exact.h"  // must precede code: no FMA contraction

#include "core/half.h"
#include "quant/block_codec.h"

namespace unicorn {

void dequantize_block(const BlockIQ4_XS& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int s = 0; s < kQKK / 32; ++s) {
    const float dl = d * static_cast<float>(iq4xs_scale(b, s));
    const uint8_t* qs = b.qs + 16 * s;
    for (int l = 0; l < 16; ++l) {
      y[32 * s + l] = dl * static_cast<float>(kIq4Levels[qs[l] & 0xF]);
      y[32 * s + l + 16] = dl * static_cast<float>(kIq4Levels[qs[l] >> 4]);
    }
  }
}

}  // namespace unicorn
