// The input of `unicorn quantize` / `unicorn compare` seen as GGUF would see it: tensors under
// their GGUF names (spec §4.3) with ggml ne order, plus the metadata to write. Opens a GGUF file
// or a Hugging Face directory (safetensors + config.json + tokenizer.json); nothing is read
// beyond the headers until a tensor's rows are asked for, and those come from the mapping.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"
#include "formats/gemma3_config.h"
#include "formats/gguf.h"

namespace unicorn {

struct SourceTensor {
  std::string name;         // GGUF name
  std::vector<int64_t> ne;  // ggml order: ne[0] = row length
  GgmlType type;            // as stored
  const uint8_t* data;      // into a mapping owned by the QuantSource
  bool add_one = false;     // HF norm weight: GGUF stores 1+w (spec §4.4)

  int64_t cols() const { return ne[0]; }
  int64_t rows() const;
  int64_t n_elements() const { return cols() * rows(); }
  size_t nbytes() const { return row_bytes(type, cols()) * static_cast<size_t>(rows()); }
  // Decodes rows [r0, r0+n) to f32 (n*cols values), applying the +1 of HF norms.
  void decode_rows(int64_t r0, int64_t n, float* out) const;
};

struct MetadataEntry {
  std::string key;
  GgufValue value;
};

class QuantSource {
 public:
  // Throws Error naming the path if it is neither a GGUF file nor an HF checkpoint directory,
  // or if the model is not Gemma 3.
  static std::unique_ptr<QuantSource> open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::string& format() const { return format_; }  // "gguf" or "safetensors"
  const Gemma3Config& config() const { return config_; }
  const std::vector<SourceTensor>& tensors() const { return tensors_; }
  const SourceTensor* find(std::string_view gguf_name) const;
  // Metadata for the output (architecture, gemma3.* incl. the attention scale, tokenizer.*,
  // chat template), without general.alignment / file_type / quantization_version.
  const std::vector<MetadataEntry>& metadata() const { return metadata_; }
  // True if some tensor is stored in a block-quantized type (re-quantizing loses accuracy).
  bool is_quantized() const;
  uint64_t tensor_bytes() const;

 private:
  std::string path_, format_;
  Gemma3Config config_;
  std::vector<SourceTensor> tensors_;
  std::vector<MetadataEntry> metadata_;
  std::vector<std::shared_ptr<const void>> keep_alive_;
  friend struct QuantSourceBuilder;
};

// GGUF name of an HF text tensor ("model.layers.3.mlp.down_proj.weight" or, after the prefix,
// "layers.3.mlp.down_proj.weight" -> "blk.3.ffn_down.weight"); nullopt for non-text tensors.
std::optional<std::string> gguf_name_from_hf(std::string_view hf_name);

// The gemma3.* keys of spec §4.2 for a config (plus gemma3.attention.scale, Unicorn's key).
std::vector<MetadataEntry> gemma3_metadata(const Gemma3Config& c, const std::string& name);

// tokenizer.* keys (spec §4.2) from an HF tokenizer.json (+ tokenizer_config.json's chat
// template when present in the same directory), padded with [PADn] unused pieces to n_vocab.
std::vector<MetadataEntry> tokenizer_metadata_from_hf(const std::string& dir, int64_t n_vocab);

}  // namespace unicorn
