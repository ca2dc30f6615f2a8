#include "tokenizer/vocabulary.h"

namespace unicorn {

void Vocabulary::set(int32_t id, std::string piece, TokenKind kind) {
  const auto i = static_cast<std::size_t>(id);  // callers reject negative ids
  if (i >= pieces_.size()) {
    pieces_.resize(i + 1);
    kinds_.resize(i + 1, TokenKind::Unused);
  }
  pieces_[i] = std::move(piece);
  kinds_[i] = kind;
}

void Vocabulary::index() {
  ids_.clear();
  ids_.reserve(pieces_.size());
  byte_ids_.fill(-1);
  byte_values_.assign(pieces_.size(), -1);
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (!pieces_[i].empty()) ids_.emplace(pieces_[i], id);  // keeps the first (lowest) id
    if (kinds_[i] != TokenKind::Byte) continue;
    const int b = parse_byte_piece(pieces_[i]);
    if (b < 0) continue;
    byte_values_[i] = static_cast<int16_t>(b);
    if (byte_ids_[b] < 0) byte_ids_[b] = id;
  }
}

std::optional<int32_t> Vocabulary::find(std::string_view piece) const {
  const auto it = ids_.find(piece);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

int Vocabulary::parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'A' && c <= 'F') digit = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else return -1;
    value = value * 16 + digit;
  }
  return value;
}

}  // namespace unicorn
