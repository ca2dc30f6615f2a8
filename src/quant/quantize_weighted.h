// Importance-aware weight quantizers, one block at a time (row-level entry point:
// quantize_row_weighted in codec.h). `importance` holds one non-negative weight per value of
// the block (the block's slice of an activation importance matrix), or is null. Each quantizer
// searches its scales (and mins) to minimise Σ wᵢ·(xᵢ − x̂ᵢ)² (weights: scale_fit.h) and
// writes a block that the reference decoders in block_codec.h read back.
#pragma once
#include "quant/blocks.h"

namespace unicorn {

// Q4_0/Q5_0 with a least-squares scale; the row-level API uses these only when importance is
// given (without it, the byte-exact reference quantizers of block_codec.h).
void quantize_block_weighted(const float* x, const float* importance, BlockQ4_0& b);
void quantize_block_weighted(const float* x, const float* importance, BlockQ5_0& b);

void quantize_block_weighted(const float* x, const float* importance, BlockQ2_K& b);
void quantize_block_weighted(const float* x, const float* importance, BlockQ3_K& b);
void quantize_block_weighted(const float* x, const float* importance, BlockQ4_K& b);
void quantize_block_weighted(const float* x, const float* importance, BlockQ5_K& b);
void quantize_block_weighted(const float* x, const float* importance, BlockQ6_K& b);
void quantize_block_weighted(const float* x, const float* importance, BlockIQ4_XS& b);

}  // namespace unicorn
