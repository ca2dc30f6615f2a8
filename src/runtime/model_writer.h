// Writes a model held in memory (e.g. synthetic weights, model/synthetic.h) to a GGUF file with
// the gemma3 metadata Unicorn writes (runtime/quant_source.h gemma3_metadata), tensors as they
// are: GGUF names, types and bytes. Synthetic models carry no tokenizer: `extra` adds metadata
// (e.g. tokenizer.* keys from tokenizer_metadata_from_hf, so that other engines can load the file).
#pragma once
#include <string>
#include <vector>

#include "model/weights.h"
#include "runtime/quant_source.h"

namespace unicorn {

// Through GgufWriter: PATH.tmp, renamed to PATH once complete. Throws Error naming the path.
void write_model_gguf(const ModelWeights& w, const std::string& path, std::vector<MetadataEntry> extra = {});

}  // namespace unicorn
