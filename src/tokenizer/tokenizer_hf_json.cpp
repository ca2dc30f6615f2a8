// Tokenizer::from_hf_json: reads a Hugging Face tokenizer.json (gemma3-spec.md §5).
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_model.h"

namespace unicorn {

namespace {

using nlohmann::json;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("tokenizer.json '{}': cannot open file", path);
  std::ostringstream buf;
  buf << in.rdbuf();
  return std::move(buf).str();
}

const json& member(const json& obj, const char* key, const std::string& path, const char* where) {
  if (!obj.is_object() || !obj.contains(key)) fail("tokenizer.json '{}': missing {}.{}", path, where, key);
  return obj.at(key);
}

// The encoder implements exactly one normalization, spaces -> "▁" (spec §5). Refuse anything else
// rather than silently tokenizing differently.
void check_normalizer(const json& n, const std::string& path) {
  if (n.is_null()) return;
  const std::string type = n.value("type", "");
  if (type == "Sequence") {
    for (const json& step : n.at("normalizers")) check_normalizer(step, path);
    return;
  }
  if (type == "Replace" && n.at("pattern").value("String", "") == " " && n.value("content", "") == "\xE2\x96\x81")
    return;
  fail("tokenizer.json '{}': unsupported normalizer {} (only Replace(\" \" -> \"\xE2\x96\x81\") is implemented)", path,
       n.dump());
}

// Split on " " is a no-op once the normalizer has turned every space into "▁".
void check_pre_tokenizer(const json& p, const std::string& path) {
  if (p.is_null()) return;
  if (p.value("type", "") == "Split" && p.contains("pattern") && p.at("pattern").value("String", "") == " ") return;
  fail("tokenizer.json '{}': unsupported pre_tokenizer {}", path, p.dump());
}

std::pair<std::string, std::string> merge_operands(const json& entry, const std::string& path, std::size_t rank) {
  if (entry.is_array() && entry.size() == 2) return {entry[0].get<std::string>(), entry[1].get<std::string>()};
  if (entry.is_string()) {  // older files: "left right"
    const std::string s = entry.get<std::string>();
    const auto space = s.find(' ');
    if (space != std::string::npos) return {s.substr(0, space), s.substr(space + 1)};
  }
  fail("tokenizer.json '{}': model.merges[{}] is neither [left, right] nor \"left right\"", path, rank);
}

}  // namespace

Tokenizer Tokenizer::from_hf_json(const std::string& path) {
  json root;
  try {
    root = json::parse(read_file(path));
  } catch (const json::exception& e) {
    fail("tokenizer.json '{}': not valid JSON: {}", path, e.what());
  }

  auto m = std::make_shared<TokenizerModel>();
  try {
    const json& model = member(root, "model", path, "root");
    if (model.value("type", "") != "BPE")
      fail("tokenizer.json '{}': model.type is '{}', expected BPE", path, model.value("type", ""));
    check_normalizer(root.value("normalizer", json()), path);
    check_pre_tokenizer(root.value("pre_tokenizer", json()), path);
    m->byte_fallback = model.value("byte_fallback", false);

    for (const auto& [piece, id_json] : member(model, "vocab", path, "model").items()) {
      const int64_t id = id_json.get<int64_t>();
      if (id < 0 || id > INT32_MAX) fail("tokenizer.json '{}': vocab id {} of '{}' out of range", path, id, piece);
      const bool byte_piece = m->byte_fallback && Vocabulary::parse_byte_piece(piece) >= 0;
      m->vocab.set(static_cast<int32_t>(id), piece, byte_piece ? TokenKind::Byte : TokenKind::Normal);
    }
    for (const json& added : root.value("added_tokens", json::array())) {
      const int64_t id = member(added, "id", path, "added_tokens[]").get<int64_t>();
      const std::string content = member(added, "content", path, "added_tokens[]").get<std::string>();
      if (id < 0 || id > INT32_MAX) fail("tokenizer.json '{}': added token '{}' has id {}", path, content, id);
      for (const char* flag : {"lstrip", "rstrip", "single_word", "normalized"})
        if (added.value(flag, false))
          fail("tokenizer.json '{}': added token '{}' sets {}, which is not supported", path, content, flag);
      m->vocab.set(static_cast<int32_t>(id), content,
                   added.value("special", false) ? TokenKind::Control : TokenKind::UserDefined);
    }
    m->vocab.index();

    const json& merges = member(model, "merges", path, "model");
    m->merges.reserve(merges.size());
    for (std::size_t rank = 0; rank < merges.size(); ++rank) {
      const auto [left, right] = merge_operands(merges[rank], path, rank);
      const auto l = m->vocab.find(left), r = m->vocab.find(right), result = m->vocab.find(left + right);
      if (!l || !r || !result)
        fail("tokenizer.json '{}': merge {} ('{}' + '{}') uses a piece missing from the vocab", path, rank, left,
             right);
      m->merges.add(*l, *r, *result);
    }

    if (model.contains("unk_token") && model.at("unk_token").is_string())
      m->unk = m->vocab.find(model.at("unk_token").get<std::string>()).value_or(-1);
  } catch (const json::exception& e) {
    fail("tokenizer.json '{}': unexpected structure: {}", path, e.what());
  }
  m->bos = m->vocab.find("<bos>").value_or(-1);  // spec §1.3: <bos> = 2, <eos> = 1
  m->eos = m->vocab.find("<eos>").value_or(-1);
  m->register_literals_and_specials();
  return Tokenizer(std::move(m));
}

}  // namespace unicorn
