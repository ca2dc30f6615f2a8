// Importance-matrix calibration: runs the model (CPU backend) over a text and accumulates, for
// every matmul weight including the tied output projection, the mean of x^2 per input column
// (quant/imatrix.h). Chunks follow perplexity's layout (BOS first, n_ctx tokens each) and every
// position's logits are computed so the output projection sees all tokens.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "quant/imatrix.h"

namespace unicorn {

struct CalibrationOptions {
  std::string model_path;  // GGUF or HF directory
  std::string text_path;
  int64_t n_ctx = 512;
  int64_t max_chunks = 0;  // <= 0: all
  int threads = 0;
};

// Throws Error if the model carries no tokenizer or the text is shorter than one chunk.
ImportanceMatrix calibrate(const CalibrationOptions& o,
                           const std::function<void(int64_t chunk, int64_t n_chunks)>& progress = {});

}  // namespace unicorn
