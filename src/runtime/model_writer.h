// Writes a model held in memory (e.g. synthetic weights, model/synthetic.h) to a GGUF file with
// the gemma3 metadata Unicorn writes (runtime/quant_source.h gemma3_metadata), tensors as they
// are: GGUF names, types and bytes. Synthetic models carry no tokenizer: `extra` adds metadata
// (e.g. tokenizer.* keys from tokenizer_metadata_from_hf, so that other engines can load the file).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "model/weights.h"
#include "runtime/quant_source.h"

namespace unicorn {

// Through GgufWriter: PATH.tmp, renamed to PATH once complete. Throws Error naming the path.
void write_model_gguf(const ModelWeights& w, const std::string& path, std::vector<MetadataEntry> extra = {});

// llama.cpp's LLAMA_FTYPE number for a quantize preset or synthetic scheme (general.file_type, which
// llama.cpp shows as the model's type): q4_0 2, q8_0 7, q4_mix and q4_k_m 15 (Q4_K_M), q4_small
// 30 (IQ4_XS), bf16 32, and the single types' "mostly" numbers; nullopt for an unknown name.
std::optional<uint32_t> llama_file_type(const std::string& scheme);

}  // namespace unicorn
