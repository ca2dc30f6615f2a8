// Scalar reference codecs, one per block layout (gemma3-spec.md §4.5; layouts in blocks.h).
// These are the ground truth every SIMD/CUDA/GLSL kernel is tested against.
#pragma once
#include <cstdint>

#include "core/types.h"

namespace unicorn {

// Decode n values (a multiple of the type's block size) from src into dst. src needs no
// particular alignment. Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K, Q8_K, IQ4_XS; bit-exact with the gguf Python package's dequantizers.
// Throws Error naming the type for unsupported/unknown types or a partial block.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Encode n floats into blocks of the given type (reference rounding, same as GGML's
// reference quantizers where those exist). Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0 (byte-exact with gguf-py's quantize), Q8_1 and Q8_K (GGML reference rounding; activation
// formats for dot products). The weight formats Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS are
// encoded as by quantize_row_weighted with no importance. dst receives row_bytes(type, n)
// bytes, no alignment needed. Throws Error naming the type for unsupported/unknown types or a
// partial block.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Weight quantization guided by an importance vector: one non-negative weight per column of
// the row (length n; a matrix uses the same vector for every row; typically the mean of x² per
// input feature over calibration text). Scales (and mins) are searched to minimise
// Σ wᵢ·(xᵢ − x̂ᵢ)² with wᵢ = importanceᵢ·sqrt(σ² + xᵢ²) (σ² = the block's mean square); a
// null importance counts as all ones (scale_fit.h).
//   Q4_0, Q5_0: least-squares scale with importance; without it, exactly quantize_row.
//   Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS: always searched.
//   Every other type quantize_row accepts (Q8_0 included): importance is ignored.
// Throws Error for types can_quantize rejects, a partial block, or an importance weight that is
// negative or not finite.
void quantize_row_weighted(GgmlType type, const float* src, void* dst, int64_t n, const float* importance);

bool can_dequantize(GgmlType type);
bool can_quantize(GgmlType type);

}  // namespace unicorn
