// Reference decoders of the 256-value K-quants Q2_K … Q6_K and the Q8_K activation codec
// (spec §4.5; bit positions documented on the structs in blocks.h). Each value is decoded on
// its own from its index, which is slower than GGML's loops but reads like the layout.
#include "quant/fp_exact.h"  // must precede code: no FMA contraction

#include <cstdint>

#include "core/half.h"
#include "quant/block_codec.h"
#include "quant/reference_rounding.h"

namespace unicorn {

// Sub-blocks of 16 values; 2-bit quants, 4-bit scale and min per sub-block.
void dequantize_block(const BlockQ2_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int i = 0; i < kQKK; ++i) {
    const int half = i / 128, shift = 2 * ((i % 128) / 32), l = i % 32;
    const int q = (b.qs[32 * half + l] >> shift) & 3;
    const uint8_t sc = b.scales[i / 16];
    const float dl = d * static_cast<float>(sc & 0xF);
    const float ml = dmin * static_cast<float>(sc >> 4);
    y[i] = dl * static_cast<float>(q) - ml;
  }
}

// Sub-blocks of 16 values; low 2 bits laid out as Q2_K, the third bit in hmask.
void dequantize_block(const BlockQ3_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < kQKK; ++i) {
    const int half = i / 128, shift = 2 * ((i % 128) / 32), l = i % 32;
    const int low = (b.qs[32 * half + l] >> shift) & 3;
    const bool high = (b.hmask[l] >> (i / 32)) & 1;
    const int q = low - (high ? 0 : 4);  // a clear high bit means negative (GGML layout)
    const float dl = d * static_cast<float>(q3k_scale(b.scales, i / 16));
    y[i] = dl * static_cast<float>(q);
  }
}

// Sub-blocks of 32 values; chunk c of 64 values shares qs[32c..32c+31] (low nibble first).
void dequantize_block(const BlockQ4_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int i = 0; i < kQKK; ++i) {
    const int sub = i / 32, l = i % 32;
    const int q = (b.qs[32 * (sub / 2) + l] >> (4 * (sub % 2))) & 0xF;
    const ScaleMin sm = k4_scale_min(b.scales, sub);
    const float dl = d * static_cast<float>(sm.scale);
    const float ml = dmin * static_cast<float>(sm.min);
    y[i] = dl * static_cast<float>(q) - ml;
  }
}

// As Q4_K with bit 4 of value i in bit i/32 of qh[i%32].
void dequantize_block(const BlockQ5_K& b, float* y) {
  const float d = f16_to_f32(b.d), dmin = f16_to_f32(b.dmin);
  for (int i = 0; i < kQKK; ++i) {
    const int sub = i / 32, l = i % 32;
    const int low = (b.qs[32 * (sub / 2) + l] >> (4 * (sub % 2))) & 0xF;
    const int high = (b.qh[l] >> sub) & 1;
    const int q = low | (high << 4);
    const ScaleMin sm = k4_scale_min(b.scales, sub);
    const float dl = d * static_cast<float>(sm.scale);
    const float ml = dmin * static_cast<float>(sm.min);
    y[i] = dl * static_cast<float>(q) - ml;
  }
}

// Two 128-value halves; in each, 32-value group s takes its low nibble from ql (bytes 0..31 for
// s = 0,2 and 32..63 for s = 1,3; low nibble for s < 2) and its high 2 bits from qh at bits 2s.
void dequantize_block(const BlockQ6_K& b, float* y) {
  const float d = f16_to_f32(b.d);
  for (int i = 0; i < kQKK; ++i) {
    const int half = i / 128, s = (i % 128) / 32, l = i % 32;
    const int low = (b.ql[64 * half + 32 * (s % 2) + l] >> (4 * (s / 2))) & 0xF;
    const int high = (b.qh[32 * half + l] >> (2 * s)) & 3;
    const int q = (low | (high << 4)) - 32;
    const float dl = d * static_cast<float>(b.scales[i / 16]);
    y[i] = dl * static_cast<float>(q);
  }
}

void dequantize_block(const BlockQ8_K& b, float* y) {
  for (int i = 0; i < kQKK; ++i) y[i] = b.d * static_cast<float>(b.qs[i]);
}

// GGML's reference Q8_K: the signed extreme maps to -127 (scale -127/max), levels rounded to
// nearest even, clamped to 127 above; d = 1/scale in f32. An all-zero block is all zeros.
void quantize_block(const float* x, BlockQ8_K& b) {
  const float max = reference::signed_absmax(x, kQKK);
  if (max == 0.0f) {
    b = BlockQ8_K{};
    return;
  }
  const float iscale = -127.0f / max;
  for (int i = 0; i < kQKK; ++i) {
    b.qs[i] = reference::round_half_even_to_int8(iscale * x[i]);
  }
  for (int g = 0; g < kQKK / 16; ++g) {
    int sum = 0;
    for (int j = 0; j < 16; ++j) sum += b.qs[16 * g + j];
    b.bsums[g] = static_cast<int16_t>(sum);
  }
  b.d = 1.0f / iscale;
}

}  // namespace unicorn
