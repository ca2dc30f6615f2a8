// Scalar reference codecs, one per block layout (gemma3-spec.md §4.5; layouts in blocks.h).
// These are the ground truth every SIMD/CUDA/GLSL kernel is tested against.
#pragma once
#include <cstdint>

#include "core/types.h"

namespace unicorn {

// Decode n values (a multiple of the type's block size) from src into dst. src needs no
// particular alignment. Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1, Q2_K, Q3_K,
// Q4_K, Q5_K, Q6_K, Q8_K; bit-exact with the gguf Python package's dequantizers.
// Throws Error naming the type for unsupported/unknown types or a partial block.
void dequantize_row(GgmlType type, const void* src, float* dst, int64_t n);

// Encode n floats into blocks of the given type (reference rounding, same as GGML's
// reference quantizers where those exist). Supports F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1,
// Q8_0 (byte-exact with gguf-py's quantize), Q8_1 and Q8_K (GGML reference rounding; activation
// formats for dot products). dst receives row_bytes(type, n) bytes, no alignment needed.
// Throws Error naming the type for unsupported/unknown types or a partial block.
void quantize_row(GgmlType type, const float* src, void* dst, int64_t n);

// Encode n floats like quantize_row, choosing block scales to minimise the importance-weighted
// squared error sum_i importance[i] * (x[i] - q[i])^2 (importance: one non-negative weight per
// value of the row, e.g. the mean of x^2 of the matmul input column it multiplies; null: plain
// squared error). Supports the types can_quantize() reports. Throws Error like quantize_row.
void quantize_row_weighted(GgmlType type, const float* src, void* dst, int64_t n, const float* importance);

bool can_dequantize(GgmlType type);
bool can_quantize(GgmlType type);

}  // namespace unicorn
