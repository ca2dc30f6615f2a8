#pragma once
#include <memory>
#include <string>

#include "model/weights.h"

namespace unicorn {
class GgufFile;

// Builds ModelWeights over a GGUF file's mapping (zero copy for matrices). Checks every tensor
// named in spec §4.3 exists with the shape the config implies; errors name the file and tensor.
std::unique_ptr<ModelWeights> load_gguf_weights(std::shared_ptr<const GgufFile> file);
}  // namespace unicorn
