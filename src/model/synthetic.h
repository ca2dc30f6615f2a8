// Synthetic Gemma 3 models: the real shapes of a published size with random but valid weights,
// built in memory, for benchmarks on machines where real weights cannot be fetched.
// Shapes: gemma3-spec.md §1.1 / §1.1b. Types follow common published files of each kind.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "model/weights.h"

namespace unicorn {

// size: "270m", "1b", "4b", "12b", "27b"; scheme: "f32", "bf16", "f16", "q8_0", "q4_0" (Q6_K
// embedding, Q8_0 where the hidden size is not a multiple of 256, as published Q4_0 files have),
// "q4_k_m" (the types of a published Q4_K_M file of that size: q4_k_m_type), "q5_k_m" (the same
// around Q5_K: k_m_type), or any single type name. Throws Error for unknown
// names or a type the row length cannot hold.
std::unique_ptr<ModelWeights> make_synthetic_model(const std::string& size, const std::string& scheme,
                                                   uint64_t seed = 1);
Gemma3Config synthetic_config(const std::string& size);
// The type llama.cpp's Q4_K_M gives a matrix of `role` ("embd", "q", "k", "v", "o", "gate", "up",
// "down") in layer `layer` of `n_layers`, with rows of `cols` values (synthetic.cpp).
GgmlType q4_k_m_type(std::string_view role, int64_t layer, int64_t n_layers, int64_t cols);
// The same for a Q<n>_K_M file of base type `base` (Q4_K: Q4_K_M, Q5_K: Q5_K_M): Q6_K for the
// tied embedding and for attn_v and ffn_down on the more-bits layers, base elsewhere.
GgmlType k_m_type(GgmlType base, std::string_view role, int64_t layer, int64_t n_layers, int64_t cols);
std::vector<std::string> synthetic_sizes();

// Bytes a decode step reads: every matrix once, plus the tied embedding as the output head.
size_t bytes_per_token(const ModelWeights& w);

}  // namespace unicorn
