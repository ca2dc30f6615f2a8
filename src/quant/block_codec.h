// Scalar reference codecs for single blocks (gemma3-spec.md §4.5; layouts in blocks.h).
// dequantize_block writes Block::kValues floats; quantize_block reads Block::kValues floats.
// Row-level entry points with type dispatch and validation are in codec.h.
//
// Decoders reproduce the gguf Python package's dequantizers bit for bit (every product of a
// half scale and a small integer is exact in f32, so only the final add/subtract rounds).
// Quantizers for the 32-value types reproduce GGML's reference quantizers (and gguf-py's ports
// of them) byte for byte; Q8_1 and Q8_K follow GGML's reference rounding.
#pragma once
#include "quant/blocks.h"

namespace unicorn {

void dequantize_block(const BlockQ4_0& b, float* y);
void dequantize_block(const BlockQ4_1& b, float* y);
void dequantize_block(const BlockQ5_0& b, float* y);
void dequantize_block(const BlockQ5_1& b, float* y);
void dequantize_block(const BlockQ8_0& b, float* y);
void dequantize_block(const BlockQ8_1& b, float* y);
void dequantize_block(const BlockQ2_K& b, float* y);
void dequantize_block(const BlockQ3_K& b, float* y);
void dequantize_block(const BlockQ4_K& b, float* y);
void dequantize_block(const BlockQ5_K& b, float* y);
void dequantize_block(const BlockQ6_K& b, float* y);
void dequantize_block(const BlockQ8_K& b, float* y);
void dequantize_block(const BlockIQ4_XS& b, float* y);

void quantize_block(const float* x, BlockQ4_0& b);
void quantize_block(const float* x, BlockQ4_1& b);
void quantize_block(const float* x, BlockQ5_0& b);
void quantize_block(const float* x, BlockQ5_1& b);
void quantize_block(const float* x, BlockQ8_0& b);
void quantize_block(const float* x, BlockQ8_1& b);
void quantize_block(const float* x, BlockQ8_K& b);

}  // namespace unicorn
