#include "model/loader.h"

#include <filesystem>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/load_gguf.h"
#include "model/load_hf.h"
#include "model/synthetic.h"

namespace unicorn {

std::optional<Tokenizer> tokenizer_from_gguf(const GgufFile& f) {
  const GgufArray* tokens = f.get_array("tokenizer.ggml.tokens");
  if (!tokens) return std::nullopt;
  const auto model = f.get_string("tokenizer.ggml.model").value_or("llama");
  if (model != "llama")
    fail("{}: tokenizer model '{}' is not supported (Gemma uses 'llama', SentencePiece)", f.path(), model);
  const GgufArray* scores = f.get_array("tokenizer.ggml.scores");
  const GgufArray* types = f.get_array("tokenizer.ggml.token_type");
  const size_t n = tokens->strings.size();
  if (!scores || scores->floats.size() != n) fail("{}: tokenizer.ggml.scores missing or not {} floats", f.path(), n);
  if (!types || types->ints.size() != n) fail("{}: tokenizer.ggml.token_type missing or not {} ints", f.path(), n);
  std::vector<float> sc(scores->floats.begin(), scores->floats.end());
  std::vector<int32_t> ty(types->ints.begin(), types->ints.end());
  const GgufArray* merges = f.get_array("tokenizer.ggml.merges");
  const int bos = static_cast<int>(f.get_int("tokenizer.ggml.bos_token_id").value_or(2));
  const int eos = static_cast<int>(f.get_int("tokenizer.ggml.eos_token_id").value_or(1));
  const int unk = static_cast<int>(f.get_int("tokenizer.ggml.unknown_token_id").value_or(-1));
  return Tokenizer::from_gguf_metadata(tokens->strings, sc, ty, merges ? &merges->strings : nullptr, bos, eos, unk);
}

LoadedModel load_model(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.rfind("synthetic:", 0) == 0) {  // synthetic:SIZE:SCHEME, e.g. synthetic:27b:q4_0
    const std::string rest = path.substr(10);
    const size_t colon = rest.find(':');
    LoadedModel m;
    m.weights =
        make_synthetic_model(rest.substr(0, colon), colon == std::string::npos ? "q4_0" : rest.substr(colon + 1));
    return m;
  }
  if (!fs::exists(path, ec)) fail("{}: no such file or directory", path);
  LoadedModel m;
  if (fs::is_directory(path, ec)) {
    m.weights = load_hf_weights(path);
    const fs::path tj = fs::path(path) / "tokenizer.json";
    if (fs::exists(tj, ec)) {
      m.tokenizer = Tokenizer::from_hf_json(tj.string());
      m.tokenizer_source = tj.string();
    }
    return m;
  }
  std::shared_ptr<const GgufFile> f = GgufFile::open(path);
  m.weights = load_gguf_weights(f);
  m.tokenizer = tokenizer_from_gguf(*f);
  if (m.tokenizer) m.tokenizer_source = path + " (GGUF metadata)";
  return m;
}

}  // namespace unicorn
