#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/tokenizer_model.h"
#include "tokenizer/utf8.h"

namespace unicorn {

namespace {

constexpr std::string_view kSpacePiece = "\xE2\x96\x81";  // "▁" U+2581, spec §5

// Length of the well-formed UTF-8 character at `pos`, or 1 for a stray byte, so that invalid input
// is tokenized byte by byte instead of swallowing its neighbours.
std::size_t char_length_at(std::string_view text, std::size_t pos) {
  const std::size_t n = utf8_sequence_length(static_cast<unsigned char>(text[pos]));
  if (n == 1 || pos + n > text.size()) return 1;
  for (std::size_t k = 1; k < n; ++k)
    if ((static_cast<unsigned char>(text[pos + k]) & 0xC0) != 0x80) return 1;
  return n;
}

// Appends the ids of one stretch of text that holds no literal piece: characters become their
// pieces (or byte pieces), then BPE merges them.
void encode_plain(const TokenizerModel& m, std::string_view text, std::vector<int32_t>& symbols,
                  std::vector<int32_t>& out) {
  if (text.empty()) return;
  symbols.clear();
  bool last_was_unk = false;
  for (std::size_t pos = 0; pos < text.size();) {
    const std::size_t len = char_length_at(text, pos);
    const std::string_view ch = text.substr(pos, len);
    pos += len;
    const std::optional<int32_t> id = ch == " " ? std::optional<int32_t>(m.space) : m.vocab.find(ch);
    if (id && *id >= 0) {
      symbols.push_back(*id);
      last_was_unk = false;
      continue;
    }
    bool all_bytes = m.byte_fallback;
    for (char b : ch) all_bytes = all_bytes && m.vocab.byte_piece(static_cast<unsigned char>(b)) >= 0;
    if (all_bytes) {
      for (char b : ch) symbols.push_back(m.vocab.byte_piece(static_cast<unsigned char>(b)));
      last_was_unk = false;
    } else if (!last_was_unk) {  // consecutive unknowns fuse into one <unk>
      if (m.unk < 0) fail("tokenizer: cannot encode character '{}': no byte piece and no <unk>", ch);
      symbols.push_back(m.unk);
      last_was_unk = true;
    }
  }
  m.merges.apply(symbols);
  out.insert(out.end(), symbols.begin(), symbols.end());
}

}  // namespace

void TokenizerModel::register_literals_and_specials() {
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const TokenKind k = vocab.kind(id);
    if (k == TokenKind::Control || k == TokenKind::UserDefined) literals.add(vocab.piece(id), id);
  }
  space = vocab.find(kSpacePiece).value_or(-1);
  end_of_turn = vocab.find("<end_of_turn>").value_or(-1);
  if (unk < 0) unk = vocab.find("<unk>").value_or(-1);
}

Tokenizer::Tokenizer(std::shared_ptr<const TokenizerModel> model) : model_(std::move(model)) {}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  const TokenizerModel& m = *model_;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && m.bos >= 0) out.push_back(m.bos);
  std::vector<int32_t> symbols;
  std::size_t plain_start = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    if (const auto hit = m.literals.longest_at(text, pos)) {
      encode_plain(m, text.substr(plain_start, pos - plain_start), symbols, out);
      out.push_back(hit->id);
      pos += hit->length;
      plain_start = pos;
    } else {
      ++pos;
    }
  }
  encode_plain(m, text.substr(plain_start), symbols, out);
  return out;
}

void Tokenizer::append_token_bytes(int32_t id, std::string& out) const {
  check_id(id);
  const Vocabulary& v = model_->vocab;
  if (const int b = v.byte_value(id); b >= 0) {
    out += static_cast<char>(b);
    return;
  }
  const std::string& piece = v.piece(id);
  for (std::size_t pos = 0; pos < piece.size();) {
    if (piece.compare(pos, kSpacePiece.size(), kSpacePiece) == 0) {
      out += ' ';
      pos += kSpacePiece.size();
    } else {
      out += piece[pos++];
    }
  }
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_control) const {
  std::string bytes;
  for (int32_t id : ids) {
    check_id(id);
    if (skip_control && is_control(id)) continue;
    append_token_bytes(id, bytes);
  }
  return to_valid_utf8(bytes);
}

const std::string& Tokenizer::token_text(int id) const {
  check_id(id);
  return model_->vocab.piece(id);
}

std::optional<int> Tokenizer::find_token(std::string_view piece) const { return model_->vocab.find(piece); }

bool Tokenizer::is_control(int id) const {
  return model_->vocab.contains(id) && model_->vocab.kind(id) == TokenKind::Control;
}

int Tokenizer::bos() const { return model_->bos; }
int Tokenizer::eos() const { return model_->eos; }
int Tokenizer::end_of_turn() const { return model_->end_of_turn; }
int Tokenizer::vocab_size() const { return model_->vocab.size(); }
std::size_t Tokenizer::merge_count() const { return model_->merges.size(); }

void Tokenizer::check_id(int id) const {
  if (!model_->vocab.contains(id)) fail("tokenizer: token id {} is outside the vocabulary (size {})", id, vocab_size());
}

}  // namespace unicorn
