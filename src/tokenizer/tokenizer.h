// Gemma 3 tokenizer: SentencePiece BPE with byte fallback (gemma3-spec.md §5), loadable from a
// Hugging Face tokenizer.json or from GGUF tokenizer metadata, giving identical ids either way.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unicorn {

struct TokenizerModel;

class Tokenizer {
 public:
  // Reads a Hugging Face tokenizer.json (BPE model with vocab, ranked merges, byte fallback and
  // added tokens). Throws unicorn::Error naming the file and what is wrong.
  static Tokenizer from_hf_json(const std::string& tokenizer_json_path);

  // Builds the tokenizer from GGUF tokenizer.ggml.* arrays (spec §4.2). `token_types` uses the GGUF
  // codes 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte. When `merges` is null
  // (tokenizer.ggml.model = "llama", as Gemma's GGUFs have), merge ranks are derived from
  // `scores` exactly as Hugging Face's converter derives them, so encode() matches tokenizer.json.
  // `unk` = -1 falls back to the piece "<unk>" if present.
  static Tokenizer from_gguf_metadata(const std::vector<std::string>& tokens, const std::vector<float>& scores,
                                      const std::vector<int32_t>& token_types, const std::vector<std::string>* merges,
                                      int bos, int eos, int unk = -1);

  // Text -> ids. Special and user-defined pieces ("<start_of_turn>", "\n", whitespace runs, ...)
  // are matched verbatim first; the rest has spaces replaced by "▁" (no dummy prefix) and goes
  // through BPE with byte fallback. add_bos prepends bos(). Rendered chat templates already
  // contain "<bos>" as text: encode them with add_bos = false.
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;

  // Ids -> text: "▁" becomes a space, <0xNN> pieces become bytes, other pieces (control ones too,
  // unless skip_control) are emitted as their text. Ill-formed UTF-8 from stray byte pieces
  // becomes U+FFFD. Throws unicorn::Error on an id outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids, bool skip_control = false) const;

  // The raw bytes one token contributes to decoded text (may be part of a UTF-8 sequence).
  void append_token_bytes(int32_t id, std::string& out) const;

  // The piece as stored in the vocabulary ("▁" for spaces, "<0x0A>" for bytes).
  const std::string& token_text(int id) const;
  std::optional<int> find_token(std::string_view piece) const;

  // Control tokens: <bos>, <eos>, <start_of_turn>, ... (special added tokens in tokenizer.json,
  // token_type 2/3 in GGUF).
  bool is_control(int id) const;

  int bos() const;
  int eos() const;
  int end_of_turn() const;  // -1 when the vocabulary has no "<end_of_turn>"
  int vocab_size() const;
  std::size_t merge_count() const;

 private:
  explicit Tokenizer(std::shared_ptr<const TokenizerModel> model);
  void check_id(int id) const;

  // Shared and immutable: copies of a Tokenizer are cheap and thread-safe to use.
  std::shared_ptr<const TokenizerModel> model_;
};

}  // namespace unicorn
