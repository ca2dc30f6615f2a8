// Quantization presets: which GGML type each tensor of a Gemma 3 model is stored as. Policy only;
// the codecs live in codec.h. A preset names a type per tensor role (and layer position); a type
// that the row length or this build's encoders cannot take falls back along a fixed chain
// (Q4_K -> Q5_0, Q6_K -> Q8_0, ...), and `--override REGEX=TYPE` rules win over the preset.
#pragma once
#include <cstdint>
#include <functional>
#include <regex>
#include <string>
#include <string_view>
#include <vector>

#include "core/types.h"

namespace unicorn {

// What a tensor is in the model (GGUF names, spec §4.3).
enum class TensorRole { TokenEmbd, AttnQ, AttnK, AttnV, AttnOut, FfnGate, FfnUp, FfnDown, Norm, Other };

TensorRole role_of(std::string_view gguf_name);
// Block index of "blk.N.*", or -1.
int layer_of(std::string_view gguf_name);

// One `--override REGEX=TYPE` rule; the regex is searched in the GGUF tensor name.
struct TypeOverride {
  std::string spec;  // as given, for messages
  std::regex pattern;
  GgmlType type;
};
// Parses "REGEX=TYPE" (type name case-insensitive: q8_0, Q4_K, f16...). Throws Error on a bad
// regex, an unknown type or a missing '='.
TypeOverride parse_override(std::string_view spec);

struct QuantPreset {
  std::string name;
  std::string summary;
};
// Every preset, in the order `unicorn quantize --help` lists them.
const std::vector<QuantPreset>& quant_presets();

struct TypeChoice {
  GgmlType type;    // what is written
  GgmlType wanted;  // what the preset or override asked for
  std::string why;  // "preset", "override 'attn_v=q8_0'", plus any fallback reason
};

// Can this build encode the type? Defaults to codec.h's can_quantize; plans for shapes ask
// with a predicate that accepts every type, to show the preset as designed.
using EncodableFn = std::function<bool(GgmlType)>;

class QuantPolicy {
 public:
  // Throws Error naming the preset if it is unknown. embedding_share = token_embd's fraction of
  // all weights (0.63 for the 270M, 0.05 for the 27B): where the tied embedding/output head
  // holds most of the model, its error dominates and it gets more bits.
  QuantPolicy(std::string preset, std::vector<TypeOverride> overrides, int64_t n_layers, double embedding_share = 0.0);

  const std::string& preset() const { return preset_; }

  // ne in ggml order (ne[0] = row length). 1-D tensors (norms) are always F32.
  TypeChoice choose(std::string_view name, const std::vector<int64_t>& ne, const EncodableFn& encodable) const;
  TypeChoice choose(std::string_view name, const std::vector<int64_t>& ne) const;

 private:
  GgmlType preset_type(TensorRole role, int layer) const;
  std::string preset_;
  std::vector<TypeOverride> overrides_;
  int64_t n_layers_;
  double embedding_share_;
};

// Above this share of all weights, token_embd gets the preset's "sensitive" type.
inline constexpr double kLargeEmbeddingShare = 0.25;

// Next type to try when `t` cannot be used for a row (length not a multiple of its block, or no
// encoder in this build): Q4_K/Q3_K -> Q5_0/Q4_0 as llama.cpp does for K-incompatible rows,
// Q6_K -> Q8_0, ...; F16 after the 32-blocks, F32 last.
GgmlType fallback_type(GgmlType t);

}  // namespace unicorn
