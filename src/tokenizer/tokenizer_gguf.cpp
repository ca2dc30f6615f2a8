// Tokenizer::from_gguf_metadata: builds the tokenizer from GGUF tokenizer.ggml.* arrays
// (gemma3-spec.md §4.2, §5).
#include <algorithm>

#include "core/error.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/tokenizer_model.h"
#include "tokenizer/utf8.h"

namespace unicorn {

namespace {

TokenKind kind_from_gguf(int32_t type, std::size_t id) {
  switch (type) {  // GGUF token_type codes, spec §4.2
    case 1:
      return TokenKind::Normal;
    case 2:
      return TokenKind::Control;  // unknown (<unk>): special, matched verbatim like control pieces
    case 3:
      return TokenKind::Control;
    case 4:
      return TokenKind::UserDefined;
    case 5:
      return TokenKind::Unused;
    case 6:
      return TokenKind::Byte;
    default:
      fail("GGUF tokenizer.ggml.token_type[{}] = {} is not a known token type (1..6)", id, type);
  }
}

// llama.cpp's converter writes the user-defined whitespace pieces (ids 138..167) with literal
// spaces, while tokenizer.json stores every piece normalized (" " -> "▁"). Storing the normalized
// form makes both sources hold the same pieces.
std::string normalized_piece(const std::string& piece) {
  std::string out;
  out.reserve(piece.size());
  for (char c : piece) {
    if (c == ' ')
      out += "\xE2\x96\x81";
    else
      out += c;
  }
  return out;
}

// SentencePiece BPE has no merge list; it merges the adjacent pair whose concatenation is the
// best-scoring piece. Hugging Face's converter turns that into ranked merges: every split of every
// normal or user-defined piece into two vocabulary pieces, ordered by the piece's score
// (descending), then by the left part's length in code points (descending), then the right part's,
// then by piece id. User-defined pieces count as score 0 (their SentencePiece score; llama.cpp
// writes -1000 instead). Checked against Gemma 3's tokenizer.json: all 514,906 merges come out in
// the same order, which makes encode() identical for both sources.
void derive_merges_from_scores(const Vocabulary& vocab, const std::vector<float>& scores, BpeMerges& merges) {
  struct Split {
    float score;
    uint32_t left_len, right_len;
    int32_t piece, left, right;
  };
  std::vector<Split> splits;
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const TokenKind kind = vocab.kind(id);
    if (kind != TokenKind::Normal && kind != TokenKind::UserDefined) continue;
    const std::string_view piece = vocab.piece(id);
    if (piece.empty()) continue;
    const float score = kind == TokenKind::UserDefined ? 0.0f : scores[id];
    for (std::size_t cut = utf8_sequence_length(static_cast<unsigned char>(piece[0])); cut < piece.size();
         cut += utf8_sequence_length(static_cast<unsigned char>(piece[cut]))) {
      const auto left = vocab.find(piece.substr(0, cut));
      if (!left) continue;
      const auto right = vocab.find(piece.substr(cut));
      if (!right) continue;
      splits.push_back({score, static_cast<uint32_t>(utf8_codepoint_count(piece.substr(0, cut))),
                        static_cast<uint32_t>(utf8_codepoint_count(piece.substr(cut))), id, *left, *right});
    }
  }
  std::sort(splits.begin(), splits.end(), [](const Split& a, const Split& b) {
    if (a.score != b.score) return a.score > b.score;
    if (a.left_len != b.left_len) return a.left_len > b.left_len;
    if (a.right_len != b.right_len) return a.right_len > b.right_len;
    return a.piece < b.piece;
  });
  merges.reserve(splits.size());
  for (const Split& s : splits) merges.add(s.left, s.right, s.piece);
}

void check_special_id(int id, std::size_t n, const char* key) {
  if (id < -1 || id >= static_cast<int64_t>(n)) fail("GGUF {} = {} is outside the vocabulary (size {})", key, id, n);
}

}  // namespace

Tokenizer Tokenizer::from_gguf_metadata(const std::vector<std::string>& tokens, const std::vector<float>& scores,
                                        const std::vector<int32_t>& token_types, const std::vector<std::string>* merges,
                                        int bos, int eos, int unk) {
  const std::size_t n = tokens.size();
  if (n == 0) fail("GGUF tokenizer.ggml.tokens is empty");
  if (n > INT32_MAX) fail("GGUF tokenizer.ggml.tokens has {} entries, too many", n);
  if (token_types.size() != n)
    fail("GGUF tokenizer.ggml.token_type has {} entries, tokenizer.ggml.tokens has {}", token_types.size(), n);
  if (merges == nullptr && scores.size() != n)
    fail(
        "GGUF tokenizer.ggml.scores has {} entries, tokenizer.ggml.tokens has {} (scores are needed when the "
        "file has no tokenizer.ggml.merges)",
        scores.size(), n);
  check_special_id(bos, n, "tokenizer.ggml.bos_token_id");
  check_special_id(eos, n, "tokenizer.ggml.eos_token_id");
  check_special_id(unk, n, "tokenizer.ggml.unknown_token_id");

  auto m = std::make_shared<TokenizerModel>();
  for (std::size_t i = 0; i < n; ++i)
    m->vocab.set(static_cast<int32_t>(i), normalized_piece(tokens[i]), kind_from_gguf(token_types[i], i));
  m->vocab.index();

  if (merges != nullptr) {
    m->merges.reserve(merges->size());
    for (std::size_t rank = 0; rank < merges->size(); ++rank) {
      const std::string& entry = (*merges)[rank];
      const auto space = entry.find(' ');
      if (space == std::string::npos) fail("GGUF tokenizer.ggml.merges[{}] = '{}' has no space", rank, entry);
      const std::string left = entry.substr(0, space), right = entry.substr(space + 1);
      const auto l = m->vocab.find(left), r = m->vocab.find(right), result = m->vocab.find(left + right);
      if (!l || !r || !result)
        fail("GGUF tokenizer.ggml.merges[{}] = '{}' uses a piece missing from tokenizer.ggml.tokens", rank, entry);
      m->merges.add(*l, *r, *result);
    }
  } else {
    derive_merges_from_scores(m->vocab, scores, m->merges);
  }

  m->bos = bos;
  m->eos = eos;
  m->unk = unk;
  m->register_literals_and_specials();
  return Tokenizer(std::move(m));
}

}  // namespace unicorn
