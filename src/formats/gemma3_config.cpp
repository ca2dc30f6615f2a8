#include "formats/gemma3_config.h"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf.h"

namespace unicorn {

int Gemma3Config::n_global_layers() const {
  int n = 0;
  for (bool g : layer_is_global) n += g ? 1 : 0;
  return n;
}

void Gemma3Config::validate(const std::string& source) const {
  auto need = [&](int64_t v, const char* what) {
    if (v <= 0) fail("{}: model config has no valid {} (got {})", source, what, v);
  };
  need(hidden, "hidden size");
  need(n_layers, "layer count");
  need(n_heads, "attention head count");
  need(n_kv_heads, "KV head count");
  need(head_dim, "head dim");
  need(ffn, "feed-forward size");
  need(vocab_size, "vocabulary size");
  need(sliding_window, "sliding window");
  if (n_heads % n_kv_heads != 0)
    fail("{}: {} attention heads is not a multiple of {} KV heads", source, n_heads, n_kv_heads);
  if (head_dim % 2 != 0) fail("{}: head dim {} is odd; RoPE needs pairs", source, head_dim);
  if (static_cast<int64_t>(layer_is_global.size()) != n_layers)
    fail("{}: layer pattern has {} entries for {} layers", source, layer_is_global.size(), n_layers);
  if (!(attn_scale > 0) || !(embed_scale > 0)) fail("{}: invalid attention or embedding scale", source);
}

std::string Gemma3Config::describe() const {
  std::string globals;
  for (size_t i = 0; i < layer_is_global.size(); ++i)
    if (layer_is_global[i]) {
      if (!globals.empty()) globals.push_back(',');
      globals.append(std::to_string(i));
    }
  return fmt::format(
      "hidden {}, layers {} (global: {}), heads {} / kv {} x {}, ffn {}, vocab {}\n"
      "context {}, sliding window {}, rope base {} global (linear x{}) / {} local\n"
      "attention scale {:.7g}, embedding scale {:.7g}, rms eps {:g}",
      hidden, n_layers, globals, n_heads, n_kv_heads, head_dim, ffn, vocab_size, context_length, sliding_window,
      rope_base_global, rope_scale_global, rope_base_local, attn_scale, embed_scale, rms_eps);
}

namespace {
std::vector<bool> default_pattern(int64_t n_layers) {
  std::vector<bool> g(static_cast<size_t>(n_layers));
  for (int64_t i = 0; i < n_layers; ++i) g[static_cast<size_t>(i)] = (i + 1) % 6 == 0;  // spec §1.2
  return g;
}
}  // namespace

Gemma3Config config_from_gguf(const GgufFile& f) {
  const std::string& src = f.path();
  const auto arch = f.get_string("general.architecture");
  if (!arch) fail("{}: no general.architecture key; not a model GGUF", src);
  if (*arch != "gemma3") fail("{}: architecture '{}' is not supported (Unicorn runs gemma3)", src, *arch);
  auto req = [&](const char* key) -> int64_t {
    const auto v = f.get_int(key);
    if (!v) fail("{}: missing metadata key {}", src, key);
    return *v;
  };
  Gemma3Config c;
  c.hidden = req("gemma3.embedding_length");
  c.n_layers = req("gemma3.block_count");
  c.ffn = req("gemma3.feed_forward_length");
  c.n_heads = req("gemma3.attention.head_count");
  c.n_kv_heads = f.get_int("gemma3.attention.head_count_kv").value_or(c.n_heads);
  c.head_dim = f.get_int("gemma3.attention.key_length").value_or(c.n_heads ? c.hidden / c.n_heads : 0);
  if (auto vl = f.get_int("gemma3.attention.value_length"); vl && *vl != c.head_dim)
    fail("{}: key_length {} != value_length {} is not supported", src, c.head_dim, *vl);
  c.context_length = f.get_int("gemma3.context_length").value_or(131072);
  c.sliding_window = f.get_int("gemma3.attention.sliding_window").value_or(0);
  c.rms_eps = static_cast<float>(f.get_float("gemma3.attention.layer_norm_rms_epsilon").value_or(1e-6));
  c.rope_base_global = static_cast<float>(f.get_float("gemma3.rope.freq_base").value_or(1e6));
  c.rope_base_local = static_cast<float>(f.get_float("gemma3.rope.freq_base_swa").value_or(1e4));
  if (auto type = f.get_string("gemma3.rope.scaling.type"); type && *type != "none") {
    if (*type != "linear") fail("{}: rope scaling type '{}' is not supported", src, *type);
    c.rope_scale_global = static_cast<float>(f.get_float("gemma3.rope.scaling.factor").value_or(1.0));
  }
  c.final_softcap = static_cast<float>(f.get_float("gemma3.final_logit_softcapping").value_or(0.0));
  c.layer_is_global = default_pattern(c.n_layers);
  if (auto s = f.get_float(kGgufAttnScaleKey)) {
    c.attn_scale = static_cast<float>(*s);
  } else {
    // llama.cpp's rule (spec §4.2): the 62-layer (27B) type uses hidden/heads, others head_dim.
    const double qpas = c.n_layers == 62 ? static_cast<double>(c.hidden) / c.n_heads : static_cast<double>(c.head_dim);
    c.attn_scale = static_cast<float>(1.0 / std::sqrt(qpas));
  }
  c.embed_scale = round_to_bf16(std::sqrt(static_cast<float>(c.hidden)));
  return c;
}

namespace {
template <typename T>
T json_get(const nlohmann::json& j, const char* key, T dflt) {
  auto it = j.find(key);
  if (it == j.end() || it->is_null()) return dflt;
  return it->get<T>();
}
}  // namespace

Gemma3Config config_from_hf(const nlohmann::json& root, const std::string& src, GgmlType embed_dtype) {
  try {
    const nlohmann::json& j = root.contains("text_config") ? root["text_config"] : root;
    if (auto mt = json_get<std::string>(root, "model_type", ""); !mt.empty() && mt != "gemma3" && mt != "gemma3_text")
      fail("{}: model_type '{}' is not supported (Unicorn runs gemma3)", src, mt);
    Gemma3Config c;
    // Defaults are Gemma3TextConfig's (spec §1.1 notes: hub configs are minimal).
    c.hidden = json_get<int64_t>(j, "hidden_size", 2304);
    c.n_layers = json_get<int64_t>(j, "num_hidden_layers", 26);
    c.n_heads = json_get<int64_t>(j, "num_attention_heads", 8);
    c.n_kv_heads = json_get<int64_t>(j, "num_key_value_heads", 4);
    c.head_dim = json_get<int64_t>(j, "head_dim", 256);
    c.ffn = json_get<int64_t>(j, "intermediate_size", 9216);
    c.vocab_size = json_get<int64_t>(j, "vocab_size", 262208);
    c.context_length = json_get<int64_t>(j, "max_position_embeddings", 131072);
    c.sliding_window = json_get<int64_t>(j, "sliding_window", 4096);
    c.rms_eps = json_get<float>(j, "rms_norm_eps", 1e-6f);
    c.final_softcap = json_get<float>(j, "final_logit_softcapping", 0.0f);
    const float qpas = json_get<float>(j, "query_pre_attn_scalar", 256.0f);
    c.attn_scale = 1.0f / std::sqrt(qpas);
    // RoPE: either the newer per-layer-type rope_parameters or the flat older keys.
    c.rope_base_global = json_get<float>(j, "rope_theta", 1e6f);
    c.rope_base_local = json_get<float>(j, "rope_local_base_freq", 1e4f);
    auto read_scaling = [&](const nlohmann::json& rs) {
      if (rs.is_null()) return;
      std::string type = json_get<std::string>(rs, "rope_type", json_get<std::string>(rs, "type", "default"));
      if (type == "linear") {
        c.rope_scale_global = json_get<float>(rs, "factor", 1.0f);
      } else if (type != "default") {
        fail("{}: rope scaling type '{}' is not supported", src, type);
      }
    };
    if (auto it = j.find("rope_scaling"); it != j.end()) read_scaling(*it);
    if (auto it = j.find("rope_parameters"); it != j.end() && it->is_object()) {
      if (auto full = it->find("full_attention"); full != it->end()) {
        c.rope_base_global = json_get<float>(*full, "rope_theta", c.rope_base_global);
        read_scaling(*full);
      }
      if (auto slide = it->find("sliding_attention"); slide != it->end())
        c.rope_base_local = json_get<float>(*slide, "rope_theta", c.rope_base_local);
    }
    if (auto it = j.find("layer_types"); it != j.end() && it->is_array()) {
      for (const auto& t : *it) c.layer_is_global.push_back(t.get<std::string>() == "full_attention");
    } else {
      const int64_t pattern = json_get<int64_t>(j, "sliding_window_pattern", 6);
      for (int64_t i = 0; i < c.n_layers; ++i) c.layer_is_global.push_back((i + 1) % pattern == 0);
    }
    const float s = std::sqrt(static_cast<float>(c.hidden));
    c.embed_scale = embed_dtype == GgmlType::BF16  ? round_to_bf16(s)
                    : embed_dtype == GgmlType::F16 ? f16_to_f32(f32_to_f16(s))
                                                   : s;
    return c;
  } catch (const nlohmann::json::exception& e) {
    fail("{}: bad config.json: {}", src, e.what());
  }
}

}  // namespace unicorn
