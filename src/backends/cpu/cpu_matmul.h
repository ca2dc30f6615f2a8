// The CPU matmul y = x · wᵀ with a chosen kernel set: the backend uses the fastest set
// (best_matmul_kernels()); tests and benchmarks run each set the CPU supports.
#pragma once
#include <cstdint>

#include "backends/cpu/matmul_kernels.h"
#include "core/thread_pool.h"
#include "model/weights.h"

namespace unicorn {

// Batches of at least this many tokens unpack weight tiles once and run the tiled kernel; smaller
// ones (decode, also of several sequences at once) dot weight rows in place, each weight block
// unpacked once for up to 4 tokens. (bench_matmul's 270M decode step on Zen 4, 2 threads: 6 tokens
// 105 ms tiled against 84 ms in row dots, 8 tokens 104-106 either way. A threshold of 8 changed
// the rounding of 6- and 7-token prompts, and the real 270M's "capital" prompt then left
// transformers' greedy path at a near-tie, 11 of 48 tokens instead of 48 (test_real270m.cpp): so
// the prompt numerics stay as they were.)
inline constexpr int64_t kTiledMinTokens = 6;
// The most tokens a call may give the row dots (row_dot_max below): a decode step of several
// sequences takes them up to here (CpuBackend::begin_batch), so that each sequence's logits are
// bit for bit those it gets decoded alone.
inline constexpr int64_t kMaxRowDotTokens = 8;

// x: T rows of w.cols floats; y: T rows of w.rows floats (row-major, contiguous).
// Any type dequantize_row() reads is accepted; those without integer kernels (Q8_1, Q8_K
// weights, or rows not a multiple of 32) take a slow dequantizing path. Up to row_dot_max tokens
// (at most kMaxRowDotTokens) take the row dots, more the tiled kernel.
void matmul_with(const MatmulKernels& kernels, ThreadPool& pool, const WeightTensor& w, const float* x, int64_t T,
                 float* y, int64_t row_dot_max = kTiledMinTokens - 1);

}  // namespace unicorn
