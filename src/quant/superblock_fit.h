// Fitting whole blocks for the importance-aware quantizers: normalise, weigh, fit each
// sub-block's scale (scale_fit.h), quantize those scales to integers under one f16 scale, then
// round every value with the scales exactly as the decoder will rebuild them. The per-format
// bit packing is left to quantize_kquants.cpp / quantize_iq4.cpp / quantize_legacy_weighted.cpp.
#pragma once
#include <cstdint>

#include "quant/blocks.h"
#include "quant/scale_fit.h"

namespace unicorn::fit {

inline constexpr int kMaxSubBlocks = 16;

// x̂ᵢ = (d·scaleⱼ)·grid.level(qᵢ) for value i of sub-block j; scaleⱼ a level of scale_grid
// (Q3_K, Q6_K, IQ4_XS).
struct SymmetricSuperBlock {
  F16Bits d = 0;
  int scale[kMaxSubBlocks] = {};
  uint8_t q[kQKK] = {};  // grid indices
};
void fit_symmetric_superblock(const float* x, const float* importance, int sub_size, const LevelGrid& grid,
                              const LevelGrid& scale_grid, SymmetricSuperBlock& out);

// x̂ᵢ = (d·scaleⱼ)·qᵢ − dmin·minⱼ, qᵢ in 0..top, scaleⱼ and minⱼ in 0..scale_top (Q2_K, Q4_K, Q5_K).
struct AffineSuperBlock {
  F16Bits d = 0, dmin = 0;
  uint8_t scale[kMaxSubBlocks] = {};
  uint8_t min[kMaxSubBlocks] = {};
  uint8_t q[kQKK] = {};
};
void fit_affine_superblock(const float* x, const float* importance, int sub_size, int top, int scale_top,
                           AffineSuperBlock& out);

// One scale for n (<= 256) values: x̂ᵢ = d·grid.level(qᵢ) (Q4_0/Q5_0 with importance). Returns d.
F16Bits fit_symmetric_block(const float* x, const float* importance, int n, const LevelGrid& grid, uint8_t* q);

}  // namespace unicorn::fit
