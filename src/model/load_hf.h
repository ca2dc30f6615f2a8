#pragma once
#include <memory>
#include <string>

#include "model/weights.h"

namespace unicorn {
// Builds ModelWeights over a Hugging Face checkpoint directory (config.json + one or many
// safetensors, any of the three text prefixes of spec §3.2). Matrices stay in place in the
// mapping (BF16/F16/F32); norms get the Gemma +1 (spec §2.2). Vision tensors are skipped and
// listed in ModelWeights::skipped.
std::unique_ptr<ModelWeights> load_hf_weights(const std::string& dir);
}  // namespace unicorn
