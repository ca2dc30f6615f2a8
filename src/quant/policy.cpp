#include "quant/policy.h"

#include <cstdlib>

#include <fmt/format.h>

#include "core/error.h"
#include "quant/codec.h"

namespace unicorn {
namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Role names after "blk.N." (spec §4.3).
struct RoleName {
  std::string_view suffix;
  TensorRole role;
};
constexpr RoleName kRoles[] = {
    {"attn_q.weight", TensorRole::AttnQ},     {"attn_k.weight", TensorRole::AttnK},
    {"attn_v.weight", TensorRole::AttnV},     {"attn_output.weight", TensorRole::AttnOut},
    {"ffn_gate.weight", TensorRole::FfnGate}, {"ffn_up.weight", TensorRole::FfnUp},
    {"ffn_down.weight", TensorRole::FfnDown},
};

}  // namespace

TensorRole role_of(std::string_view name) {
  if (name == "token_embd.weight") return TensorRole::TokenEmbd;
  if (ends_with(name, "norm.weight")) return TensorRole::Norm;
  if (name.substr(0, 4) == "blk.")
    for (const auto& r : kRoles)
      if (ends_with(name, r.suffix)) return r.role;
  return TensorRole::Other;
}

int layer_of(std::string_view name) {
  if (name.substr(0, 4) != "blk.") return -1;
  const std::string rest(name.substr(4));
  char* end = nullptr;
  const long v = std::strtol(rest.c_str(), &end, 10);
  if (end == rest.c_str() || *end != '.') return -1;
  return static_cast<int>(v);
}

TypeOverride parse_override(std::string_view spec) {
  const auto eq = spec.rfind('=');
  if (eq == std::string_view::npos || eq == 0 || eq + 1 == spec.size())
    fail("--override '{}': expected REGEX=TYPE, e.g. 'attn_v=q8_0'", spec);
  const std::string re(spec.substr(0, eq));
  const auto type = type_from_name(spec.substr(eq + 1));
  if (!type) fail("--override '{}': unknown tensor type '{}'", spec, spec.substr(eq + 1));
  try {
    return TypeOverride{std::string(spec), std::regex(re, std::regex::ECMAScript), *type};
  } catch (const std::regex_error& e) {
    fail("--override '{}': bad regular expression '{}': {}", spec, re, e.what());
  }
}

const std::vector<QuantPreset>& quant_presets() {
  static const std::vector<QuantPreset> presets = {
      {"f32", "every matrix F32 (reference copies)"},
      {"f16", "every matrix F16"},
      {"bf16", "every matrix BF16"},
      {"q8_0", "every matrix Q8_0 (8.5 bits/weight)"},
      {"q4_0", "every matrix Q4_0 (4.5 bits/weight)"},
      {"q4_mix",
       "Q4_K for most matrices, Q6_K attn_v, Q5_K attn_k; Q6_K token_embd when it is over a "
       "quarter of the model (4.58 bits/weight at 27B)"},
      {"q4_small",
       "IQ4_XS for most matrices, Q5_K attn_v, Q3_K attn_q; Q5_K token_embd when it is over a "
       "quarter of the model (4.24 bits/weight at 27B)"},
  };
  return presets;
}

QuantPolicy::QuantPolicy(std::string preset, std::vector<TypeOverride> overrides, int64_t n_layers,
                         double embedding_share)
    : preset_(std::move(preset)),
      overrides_(std::move(overrides)),
      n_layers_(n_layers),
      embedding_share_(embedding_share) {
  bool known = false;
  std::string names;
  for (const auto& p : quant_presets()) {
    known = known || p.name == preset_;
    names += (names.empty() ? "" : ", ") + p.name;
  }
  if (!known) fail("unknown quantization preset '{}' (presets: {})", preset_, names);
}

// The preset tables, chosen by measurement (docs/QUANTIZATION.md, "Choosing the mixes"): per
// parameter, attn_v is by far the most sensitive tensor to 4-bit rounding, then attn_k and the
// FFN matrices; token_embd (also the tied output head) is the least sensitive per parameter.
// q4_mix spends its extra bits on attn_v (Q6_K) and attn_k (Q5_K); q4_small keeps attn_v at
// Q5_K and pays for it with Q3_K on attn_q, the least sensitive block matrix. In small models
// the embedding is most of the weights, so its total error dominates: it then gets Q6_K / Q5_K.
GgmlType QuantPolicy::preset_type(TensorRole role, int layer) const {
  (void)layer;  // an outer-layer rule was measured and did not pay (see the docs)
  const bool big_embedding = embedding_share_ > kLargeEmbeddingShare;
  if (preset_ == "f32") return GgmlType::F32;
  if (preset_ == "f16") return GgmlType::F16;
  if (preset_ == "bf16") return GgmlType::BF16;
  if (preset_ == "q8_0") return GgmlType::Q8_0;
  if (preset_ == "q4_0") return GgmlType::Q4_0;
  if (preset_ == "q4_mix") {
    switch (role) {
      case TensorRole::AttnV:
        return GgmlType::Q6_K;
      case TensorRole::AttnK:
        return GgmlType::Q5_K;
      case TensorRole::TokenEmbd:
        return big_embedding ? GgmlType::Q6_K : GgmlType::Q4_K;
      default:
        return GgmlType::Q4_K;
    }
  }
  // q4_small
  switch (role) {
    case TensorRole::AttnV:
      return GgmlType::Q5_K;
    case TensorRole::AttnQ:
      return GgmlType::Q3_K;
    case TensorRole::TokenEmbd:
      return big_embedding ? GgmlType::Q5_K : GgmlType::IQ4_XS;
    default:
      return GgmlType::IQ4_XS;
  }
}

GgmlType fallback_type(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K:
    case GgmlType::Q3_K:
    case GgmlType::IQ4_XS:
      return GgmlType::Q4_0;
    case GgmlType::Q4_K:
      return GgmlType::Q5_0;
    case GgmlType::Q5_K:
      return GgmlType::Q5_1;
    case GgmlType::Q6_K:
    case GgmlType::Q8_K:
      return GgmlType::Q8_0;
    case GgmlType::F32:
      return GgmlType::F32;
    case GgmlType::F16:
    case GgmlType::BF16:
      return GgmlType::F32;
    default:
      return GgmlType::F16;  // the 32-value blocks
  }
}

TypeChoice QuantPolicy::choose(std::string_view name, const std::vector<int64_t>& ne) const {
  return choose(name, ne, [](GgmlType t) { return can_quantize(t); });
}

TypeChoice QuantPolicy::choose(std::string_view name, const std::vector<int64_t>& ne,
                               const EncodableFn& encodable) const {
  const TensorRole role = role_of(name);
  const bool matrix = ne.size() >= 2 && ne[1] > 1;
  // Norms and other vectors stay F32: they are tiny and multiply every activation (spec §4.3).
  if (!matrix || role == TensorRole::Norm) return {GgmlType::F32, GgmlType::F32, "vector"};
  TypeChoice c{preset_type(role, layer_of(name)), GgmlType::F32, "preset"};
  for (const auto& o : overrides_)
    if (std::regex_search(name.begin(), name.end(), o.pattern)) {
      c.type = o.type;
      c.why = fmt::format("override '{}'", o.spec);  // the last matching rule wins
    }
  c.wanted = c.type;
  const int64_t cols = ne[0];
  for (int guard = 0; guard < 8; ++guard) {
    const auto& tr = traits(c.type);
    if (cols % tr.block_size != 0) {
      c.why += fmt::format("; {} cols not a multiple of {} ({})", cols, tr.block_size, tr.name);
    } else if (!encodable(c.type)) {
      c.why += fmt::format("; no {} encoder in this build", tr.name);
    } else {
      return c;
    }
    c.type = fallback_type(c.type);
    c.why += fmt::format(" -> {}", type_name(c.type));
  }
  fail("internal: no usable type for tensor '{}'", name);
}

}  // namespace unicorn
