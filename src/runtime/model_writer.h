// Writes a model held in memory (e.g. synthetic weights, model/synthetic.h) to a GGUF file with
// the gemma3 metadata Unicorn writes (runtime/quant_source.h gemma3_metadata), tensors as they
// are: GGUF names, types and bytes. No tokenizer is written (synthetic models have none).
#pragma once
#include <string>

#include "model/weights.h"

namespace unicorn {

// Through GgufWriter: PATH.tmp, renamed to PATH once complete. Throws Error naming the path.
void write_model_gguf(const ModelWeights& w, const std::string& path);

}  // namespace unicorn
