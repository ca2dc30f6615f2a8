// Gemma 3 text-model hyper-parameters, read at run time from the file (GGUF metadata or HF
// config.json), never hard-coded per size. gemma3-spec.md §1.1, §1.2, §4.2.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/types.h"

namespace unicorn {

class GgufFile;

struct Gemma3Config {
  int64_t vocab_size = 0;  // rows of the embedding (from the tensor shape, spec §4.3)
  int64_t hidden = 0;
  int64_t n_layers = 0;
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t ffn = 0;
  int64_t context_length = 0;  // trained maximum (max_position_embeddings)
  int64_t sliding_window = 0;  // W: a local layer sees positions p-W+1 .. p (spec §2.4.7)
  float rms_eps = 1e-6f;
  float rope_base_global = 1e6f;
  float rope_base_local = 1e4f;
  float rope_scale_global = 1.0f;  // linear factor (8 for 4B+), divides the angle (spec §2.4.3)
  float attn_scale = 0.0f;         // multiplies q·k; query_pre_attn_scalar^-1/2 (spec §2.4.5)
  float embed_scale = 0.0f;        // sqrt(hidden) rounded as the format's rule says (spec §2.1)
  float final_softcap = 0.0f;      // 0: none (Gemma 3 has none, spec §2.6)
  std::vector<bool> layer_is_global;

  int64_t q_dim() const { return n_heads * head_dim; }
  int64_t kv_dim() const { return n_kv_heads * head_dim; }
  int n_global_layers() const;
  // Throws Error naming `source` if a field is missing or inconsistent.
  void validate(const std::string& source) const;
  std::string describe() const;  // multi-line human summary (unicorn info)
};

// GGUF metadata keys that Unicorn writes in addition to llama.cpp's (documented in docs/FORMATS.md).
inline constexpr const char* kGgufAttnScaleKey = "gemma3.attention.scale";

// §4.2: values GGUF does not store are derived: local rope base 10000 (or rope.freq_base_swa),
// layer pattern (i+1) mod 6 == 0 global, attention scale 1/sqrt(hidden/heads) for the 62-layer
// (27B) shape and 1/sqrt(head_dim) otherwise, unless gemma3.attention.scale is present.
// The embedding scale is sqrt(hidden) rounded to bf16 (the trained value, spec §2.1, §7.3).
// vocab_size must be filled by the caller from token_embd's shape.
Gemma3Config config_from_gguf(const GgufFile& f);

// HF config.json (plain Gemma3ForCausalLM or text_config of Gemma3ForConditionalGeneration).
// HF rounds sqrt(hidden) to the embedding weights' dtype (spec §2.1), so the caller passes it.
// vocab_size is taken from the config and checked against the embedding by the loader.
Gemma3Config config_from_hf(const nlohmann::json& config, const std::string& source, GgmlType embed_dtype);

}  // namespace unicorn
