// The weight abstraction the one model definition runs over: a matrix may be dense (F32, F16,
// BF16) or quantized (any GGML block type); backends decide how to multiply by it.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/types.h"
#include "formats/gemma3_config.h"

namespace unicorn {

// A 2-D weight [rows = output features, cols = input features] (PyTorch [out, in]; GGUF ne =
// [cols, rows]), row-major, each row `row_bytes(type, cols)` bytes; or a vector (rows == 1).
// The bytes are borrowed: from a file mapping or from ModelWeights::owned.
struct WeightTensor {
  std::string name;
  GgmlType type = GgmlType::F32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;

  size_t row_stride() const { return row_bytes(type, cols); }
  size_t nbytes() const { return row_stride() * static_cast<size_t>(rows); }
  const uint8_t* row(int64_t r) const { return data + row_stride() * static_cast<size_t>(r); }
};

// Per-layer weights, spec §2.3-2.5. Norm vectors are F32 multipliers with the Gemma +1 already
// applied (GGUF stores 1+w, spec §4.4; the HF loader adds 1 at load).
struct LayerWeights {
  WeightTensor attn_norm, q, k, v, o, q_norm, k_norm, post_attn_norm;
  WeightTensor ffn_norm, gate, up, down, post_ffw_norm;

  // Every tensor of the layer, for loops that treat them alike (upload, size, counts).
  std::array<const WeightTensor*, 13> all() const {
    return {&attn_norm,      &q,        &k,    &v,  &o,    &q_norm,       &k_norm,
            &post_attn_norm, &ffn_norm, &gate, &up, &down, &post_ffw_norm};
  }
};

struct ModelWeights {
  Gemma3Config config;
  WeightTensor tok_embd;     // [vocab, hidden]; also the tied output projection (spec §2.6)
  WeightTensor output_norm;  // [hidden]
  std::vector<LayerWeights> layers;

  // Storage the weights may point into: file mappings and converted tensors.
  std::vector<std::shared_ptr<const void>> keep_alive;
  // Left uninitialised when made (make_unique_for_overwrite): the maker writes every byte, and a
  // 27B synthetic model's 14.5 GiB need not be zeroed on one thread first.
  std::vector<std::unique_ptr<uint8_t[]>> owned;

  std::string source;  // file or directory the weights came from
  std::string format;  // "gguf" or "safetensors"
  size_t weight_bytes() const;
  int64_t param_count() const;
  // Tensors that were present but not used (e.g. vision tower), for reporting.
  std::vector<std::string> skipped;
};

}  // namespace unicorn
