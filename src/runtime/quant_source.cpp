#include "runtime/quant_source.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "formats/hf_checkpoint.h"
#include "quant/codec.h"

namespace unicorn {

int64_t SourceTensor::rows() const {
  int64_t r = 1;
  for (size_t i = 1; i < ne.size(); ++i) r *= ne[i];
  return r;
}

void SourceTensor::decode_rows(int64_t r0, int64_t n, float* out) const {
  const size_t stride = row_bytes(type, cols());
  for (int64_t r = 0; r < n; ++r)
    dequantize_row(type, data + static_cast<size_t>(r0 + r) * stride, out + r * cols(), cols());
  if (add_one)
    for (int64_t i = 0; i < n * cols(); ++i) out[i] += 1.0f;
}

const SourceTensor* QuantSource::find(std::string_view name) const {
  for (const auto& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

bool QuantSource::is_quantized() const {
  return std::any_of(tensors_.begin(), tensors_.end(), [](const SourceTensor& t) { return traits(t.type).quantized; });
}

uint64_t QuantSource::tensor_bytes() const {
  uint64_t n = 0;
  for (const auto& t : tensors_) n += t.nbytes();
  return n;
}

std::optional<std::string> gguf_name_from_hf(std::string_view name) {
  for (std::string_view prefix : {"model.language_model.", "language_model.model.", "model."})
    if (name.substr(0, prefix.size()) == prefix) {
      name.remove_prefix(prefix.size());
      break;
    }
  if (name == "embed_tokens.weight") return "token_embd.weight";
  if (name == "norm.weight") return "output_norm.weight";
  if (name.substr(0, 7) != "layers.") return std::nullopt;
  const auto dot = name.find('.', 7);
  if (dot == std::string_view::npos) return std::nullopt;
  const std::string layer(name.substr(7, dot - 7));
  const std::string_view rest = name.substr(dot + 1);
  // spec §4.3 (note ffn_norm is the PRE-feed-forward norm).
  static const std::map<std::string_view, std::string_view> kMap = {
      {"input_layernorm.weight", "attn_norm.weight"},
      {"self_attn.q_proj.weight", "attn_q.weight"},
      {"self_attn.k_proj.weight", "attn_k.weight"},
      {"self_attn.v_proj.weight", "attn_v.weight"},
      {"self_attn.o_proj.weight", "attn_output.weight"},
      {"self_attn.q_norm.weight", "attn_q_norm.weight"},
      {"self_attn.k_norm.weight", "attn_k_norm.weight"},
      {"post_attention_layernorm.weight", "post_attention_norm.weight"},
      {"pre_feedforward_layernorm.weight", "ffn_norm.weight"},
      {"mlp.gate_proj.weight", "ffn_gate.weight"},
      {"mlp.up_proj.weight", "ffn_up.weight"},
      {"mlp.down_proj.weight", "ffn_down.weight"},
      {"post_feedforward_layernorm.weight", "post_ffw_norm.weight"},
  };
  auto it = kMap.find(rest);
  if (it == kMap.end() || layer.empty() || !std::all_of(layer.begin(), layer.end(), ::isdigit)) return std::nullopt;
  return fmt::format("blk.{}.{}", layer, it->second);
}

namespace {

GgufValue u32(int64_t v) { return {GgufValueType::U32, v}; }
GgufValue f32(double v) { return {GgufValueType::F32, v}; }
GgufValue str(std::string v) { return {GgufValueType::STRING, std::move(v)}; }

}  // namespace

std::vector<MetadataEntry> gemma3_metadata(const Gemma3Config& c, const std::string& name) {
  std::vector<MetadataEntry> m = {
      {"general.architecture", str("gemma3")},
      {"general.name", str(name)},
      {"gemma3.context_length", u32(c.context_length)},
      {"gemma3.embedding_length", u32(c.hidden)},
      {"gemma3.block_count", u32(c.n_layers)},
      {"gemma3.feed_forward_length", u32(c.ffn)},
      {"gemma3.attention.head_count", u32(c.n_heads)},
      {"gemma3.attention.head_count_kv", u32(c.n_kv_heads)},
      {"gemma3.attention.key_length", u32(c.head_dim)},
      {"gemma3.attention.value_length", u32(c.head_dim)},
      {"gemma3.attention.layer_norm_rms_epsilon", f32(c.rms_eps)},
      {"gemma3.attention.sliding_window", u32(c.sliding_window)},
      {"gemma3.rope.freq_base", f32(c.rope_base_global)},
      {"gemma3.rope.freq_base_swa", f32(c.rope_base_local)},
  };
  if (c.rope_scale_global != 1.0f) {
    m.push_back({"gemma3.rope.scaling.type", str("linear")});
    m.push_back({"gemma3.rope.scaling.factor", f32(c.rope_scale_global)});
  }
  if (c.final_softcap > 0) m.push_back({"gemma3.final_logit_softcapping", f32(c.final_softcap)});
  m.push_back({kGgufAttnScaleKey, f32(c.attn_scale)});
  return m;
}

std::vector<MetadataEntry> tokenizer_metadata_from_hf(const std::string& dir, int64_t n_vocab) {
  namespace fs = std::filesystem;
  using nlohmann::json;
  const std::string path = (fs::path(dir) / "tokenizer.json").string();
  std::ifstream in(path);
  if (!in) return {};
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    fail("{}: bad JSON: {}", path, e.what());
  }
  // GGUF token_type codes (spec §4.2): 1 normal, 3 control, 4 user-defined, 5 unused, 6 byte.
  std::vector<std::string> tokens;
  std::vector<int64_t> types;
  auto put = [&](int64_t id, const std::string& piece, int64_t type) {
    if (id < 0 || id >= (int64_t{1} << 24)) fail("{}: token '{}' has id {}", path, piece, id);
    if (id >= static_cast<int64_t>(tokens.size())) {
      tokens.resize(static_cast<size_t>(id + 1));
      types.resize(static_cast<size_t>(id + 1), 5);
    }
    tokens[static_cast<size_t>(id)] = piece;
    types[static_cast<size_t>(id)] = type;
  };
  try {
    for (const auto& [piece, id] : root.at("model").at("vocab").items()) {
      const bool byte = piece.size() == 6 && piece.rfind("<0x", 0) == 0 && piece.back() == '>';
      put(id.get<int64_t>(), piece, byte ? 6 : 1);
    }
    for (const json& a : root.value("added_tokens", json::array()))
      put(a.at("id").get<int64_t>(), a.at("content").get<std::string>(), a.value("special", false) ? 3 : 4);
  } catch (const json::exception& e) {
    fail("{}: unexpected tokenizer.json layout: {}", path, e.what());
  }
  // Ids past the embedding's rows have no embedding: the 270M's 262144 rows leave out HF's
  // <image_soft_token> (262144, spec §1.3), as the published GGUF does. Pad to the rows as
  // llama.cpp's converter does (spec §4.3), so that the token count always equals the rows.
  // Only added tokens may go: a vocabulary piece or a special token the engine uses past the rows
  // means that the tokenizer does not belong to this model.
  if (n_vocab > 0 && static_cast<int64_t>(tokens.size()) > n_vocab) {
    for (auto i = static_cast<size_t>(n_vocab); i < tokens.size(); ++i) {
      const bool piece = types[i] == 1 || types[i] == 6;
      bool used = false;
      for (const char* special : {"<bos>", "<eos>", "<unk>", "<pad>", "<start_of_turn>", "<end_of_turn>"})
        used = used || tokens[i] == special;
      if (piece || used)
        fail("{}: token '{}' has id {}, past the model's {} embedding rows: not this model's tokenizer?", path,
             tokens[i], i, n_vocab);
    }
    tokens.resize(static_cast<size_t>(n_vocab));
    types.resize(static_cast<size_t>(n_vocab));
  }
  for (auto i = static_cast<int64_t>(tokens.size()); i < n_vocab; ++i) put(i, fmt::format("[PAD{}]", i), 5);
  for (size_t i = 0; i < tokens.size(); ++i)
    if (tokens[i].empty()) tokens[i] = fmt::format("[PAD{}]", i);
  // SentencePiece BPE scores fall with the id for normal pieces; their order is all the GGUF
  // tokenizer derives merges from (tokenizer_gguf.cpp). Others get llama.cpp's values.
  std::vector<double> scores(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i)
    scores[i] = types[i] == 1 ? -static_cast<double>(i) : types[i] == 6 ? 0.0 : -1000.0;
  auto id_of = [&](const char* piece, int64_t dflt) {
    for (size_t i = 0; i < tokens.size(); ++i)
      if (tokens[i] == piece) return static_cast<int64_t>(i);
    return dflt;
  };
  std::vector<MetadataEntry> m;
  m.push_back({"tokenizer.ggml.model", str("llama")});
  m.push_back({"tokenizer.ggml.pre", str("default")});
  m.push_back({"tokenizer.ggml.tokens", {GgufValueType::ARRAY, GgufArray{GgufValueType::STRING, {}, {}, tokens}}});
  m.push_back({"tokenizer.ggml.scores", {GgufValueType::ARRAY, GgufArray{GgufValueType::F32, {}, scores, {}}}});
  m.push_back({"tokenizer.ggml.token_type", {GgufValueType::ARRAY, GgufArray{GgufValueType::I32, types, {}, {}}}});
  m.push_back({"tokenizer.ggml.bos_token_id", u32(id_of("<bos>", 2))});
  m.push_back({"tokenizer.ggml.eos_token_id", u32(id_of("<eos>", 1))});
  m.push_back({"tokenizer.ggml.unknown_token_id", u32(id_of("<unk>", 3))});
  m.push_back({"tokenizer.ggml.padding_token_id", u32(id_of("<pad>", 0))});
  m.push_back({"tokenizer.ggml.add_bos_token", {GgufValueType::BOOL, true}});
  m.push_back({"tokenizer.ggml.add_eos_token", {GgufValueType::BOOL, false}});
  m.push_back({"tokenizer.ggml.add_space_prefix", {GgufValueType::BOOL, false}});
  // Chat template: tokenizer_config.json's chat_template, or chat_template.jinja.
  std::string tmpl;
  if (std::ifstream cfg(fs::path(dir) / "tokenizer_config.json"); cfg) {
    try {
      const json j = json::parse(cfg);
      if (auto it = j.find("chat_template"); it != j.end() && it->is_string()) tmpl = it->get<std::string>();
    } catch (const json::exception& e) {
      fail("{}/tokenizer_config.json: bad JSON: {}", dir, e.what());
    }
  }
  if (tmpl.empty())
    if (std::ifstream jinja(fs::path(dir) / "chat_template.jinja"); jinja)
      tmpl.assign(std::istreambuf_iterator<char>(jinja), std::istreambuf_iterator<char>());
  if (!tmpl.empty()) m.push_back({"tokenizer.chat_template", str(tmpl)});
  return m;
}

struct QuantSourceBuilder {
  static std::unique_ptr<QuantSource> from_gguf(const std::string& path) {
    auto src = std::make_unique<QuantSource>();
    std::shared_ptr<const GgufFile> f = GgufFile::open(path);
    src->path_ = path;
    src->format_ = "gguf";
    src->keep_alive_.push_back(f);
    Gemma3Config c = config_from_gguf(*f);
    const GgufTensorInfo* embd = f->tensor("token_embd.weight");
    if (!embd || embd->ne.size() < 2) fail("{}: missing tensor 'token_embd.weight'", path);
    c.vocab_size = embd->ne[1];
    c.validate(path);
    src->config_ = c;
    for (const std::string& key : f->keys()) {
      if (key == "general.alignment" || key == "general.file_type" || key == "general.quantization_version") continue;
      src->metadata_.push_back({key, *f->find(key)});
    }
    // Files Unicorn writes record the attention scale (gguf_writer.h convention).
    if (!f->find(kGgufAttnScaleKey)) src->metadata_.push_back({kGgufAttnScaleKey, f32(c.attn_scale)});
    for (const GgufTensorInfo& t : f->tensors()) {
      if (!can_dequantize(t.type))
        fail("{}: tensor '{}' is stored as {}, which Unicorn cannot decode", path, t.name, type_name(t.type));
      src->tensors_.push_back({t.name, t.ne, t.type, t.data, false});
    }
    return src;
  }

  static std::unique_ptr<QuantSource> from_hf(const std::string& dir) {
    auto src = std::make_unique<QuantSource>();
    std::shared_ptr<HfCheckpoint> ck = HfCheckpoint::open(dir);
    src->path_ = dir;
    src->format_ = "safetensors";
    src->keep_alive_.push_back(ck);
    const HfTensor embd = ck->text_tensor("embed_tokens.weight");
    Gemma3Config c = config_from_hf(ck->config(), dir + "/config.json", embd.dtype);
    c.vocab_size = embd.shape.at(0);  // the embedding is the truth (spec §4.3)
    c.validate(dir + "/config.json");
    if (auto head = ck->lm_head())
      fail("{}: has a separate {}; Gemma 3 ties the output to embed_tokens", dir, head->name);
    src->config_ = c;
    const std::string name = std::filesystem::path(dir).filename().string();
    src->metadata_ = gemma3_metadata(c, name.empty() ? "gemma3" : name);
    for (auto& e : tokenizer_metadata_from_hf(dir, c.vocab_size)) src->metadata_.push_back(std::move(e));
    // Output order: token_embd, the blocks in order, output_norm (as llama.cpp's converter).
    std::vector<std::pair<std::string, HfTensor>> found;
    for (const std::string& n : ck->tensor_names()) {
      const auto g = gguf_name_from_hf(n);
      if (!g) continue;
      if (n.find("vision") != std::string::npos || n.find("multi_modal") != std::string::npos) continue;
      found.emplace_back(*g, *ck->find(n));
    }
    auto rank = [](const std::string& g) {
      if (g == "token_embd.weight") return int64_t{-1};
      if (g == "output_norm.weight") return int64_t{1} << 40;
      return static_cast<int64_t>(std::stol(g.substr(4)));
    };
    std::stable_sort(found.begin(), found.end(),
                     [&](const auto& a, const auto& b) { return rank(a.first) < rank(b.first); });
    for (auto& [g, t] : found) {
      std::vector<int64_t> ne(t.shape.rbegin(), t.shape.rend());  // PyTorch [out, in] -> ggml [in, out]
      const bool norm = g.size() >= 11 && g.compare(g.size() - 11, 11, "norm.weight") == 0;
      src->tensors_.push_back({g, ne, t.dtype, t.data, norm});  // HF norms are zero-centred (spec §4.4)
    }
    return src;
  }
};

std::unique_ptr<QuantSource> QuantSource::open(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail("{}: no such file or directory", path);
  if (fs::is_directory(path, ec)) return QuantSourceBuilder::from_hf(path);
  return QuantSourceBuilder::from_gguf(path);
}

}  // namespace unicorn
