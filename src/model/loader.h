// Opens a model by path: a GGUF file, or a Hugging Face directory (config.json + safetensors).
// Returns the weights and, when the source carries one, the tokenizer.
#pragma once
#include <memory>
#include <optional>
#include <string>

#include "model/weights.h"
#include "tokenizer/tokenizer.h"

namespace unicorn {

struct LoadedModel {
  std::shared_ptr<ModelWeights> weights;
  std::optional<Tokenizer> tokenizer;
  std::string tokenizer_source;
};

// `synthetic:SIZE:SCHEME` builds random valid weights of a real size in memory (model/synthetic.h).
LoadedModel load_model(const std::string& path);

// Tokenizer from a GGUF's tokenizer.ggml.* metadata (spec §4.2, §5).
class GgufFile;
std::optional<Tokenizer> tokenizer_from_gguf(const GgufFile& f);

}  // namespace unicorn
