// The CPU matmul y = x · wᵀ with a chosen kernel set: the backend uses the fastest set
// (best_matmul_kernels()); tests and benchmarks run each set the CPU supports.
#pragma once
#include <cstdint>

#include "backends/cpu/matmul_kernels.h"
#include "core/thread_pool.h"
#include "model/weights.h"

namespace unicorn {

// Batches of at least this many tokens unpack weight tiles once and run the tiled kernel (the
// unpacking costs about as much as 5-7 tokens of row dots, measured on Zen 4 for Q5_0..Q6_K);
// smaller ones (decode) dot weight rows in place.
inline constexpr int64_t kTiledMinTokens = 6;

// x: T rows of w.cols floats; y: T rows of w.rows floats (row-major, contiguous).
// Any type dequantize_row() reads is accepted; those without integer kernels (Q8_1, Q8_K
// weights, or rows not a multiple of 32) take a slow dequantizing path.
void matmul_with(const MatmulKernels& kernels, ThreadPool& pool, const WeightTensor& w, const float* x, int64_t T,
                 float* y);

}  // namespace unicorn
