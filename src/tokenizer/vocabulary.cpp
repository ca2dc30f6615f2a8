#include "tokenizer/vocabulary.h"

#include <functional>

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
  std::size_t capacity = 16;
  while (capacity < 2 * pieces_.size()) capacity *= 2;
  slots_.assign(capacity, Slot{0, -1});
  byte_ids_.fill(-1);
  byte_values_.assign(pieces_.size(), -1);
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    const auto id = static_cast<int32_t>(i);
    if (!pieces_[i].empty() && !find(pieces_[i])) {  // keeps the first (lowest) id
      const uint32_t h = hash_piece(pieces_[i]);
      std::size_t s = h & (slots_.size() - 1);
      while (slots_[s].id >= 0) s = (s + 1) & (slots_.size() - 1);
      slots_[s] = {h, id};
    }
    if (kinds_[i] != TokenKind::Byte) continue;
    const int b = parse_byte_piece(pieces_[i]);
    if (b < 0) continue;
    byte_values_[i] = static_cast<int16_t>(b);
    if (byte_ids_[b] < 0) byte_ids_[b] = id;
  }
}

uint32_t Vocabulary::hash_piece(std::string_view piece) {
  return static_cast<uint32_t>(std::hash<std::string_view>{}(piece));
}

std::optional<int32_t> Vocabulary::find(std::string_view piece) const {
  if (slots_.empty()) return std::nullopt;
  const uint32_t h = hash_piece(piece);
  for (std::size_t s = h & (slots_.size() - 1);; s = (s + 1) & (slots_.size() - 1)) {
    const Slot& slot = slots_[s];
    if (slot.id < 0) return std::nullopt;
    if (slot.hash == h && pieces_[slot.id] == piece) return slot.id;
  }
}

int Vocabulary::parse_byte_piece(std::string_view piece) {
  if (piece.size() != 6 || piece.substr(0, 3) != "<0x" || piece[5] != '>') return -1;
  int value = 0;
  for (char c : piece.substr(3, 2)) {
    int digit;
    if (c >= '0' && c <= '9')
      digit = c - '0';
    else if (c >= 'A' && c <= 'F')
      digit = c - 'A' + 10;
    else if (c >= 'a' && c <= 'f')
      digit = c - 'a' + 10;
    else
      return -1;
    value = value * 16 + digit;
  }
  return value;
}

}  // namespace unicorn
