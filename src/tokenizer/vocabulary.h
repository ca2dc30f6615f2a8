// The id <-> piece tables of a SentencePiece-style vocabulary (gemma3-spec.md §5).
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace unicorn {

// What a vocabulary entry is, in SentencePiece terms (GGUF token_type 1..6, spec §4.2).
enum class TokenKind : uint8_t {
  Normal,       // ordinary piece, produced by BPE merges
  Control,      // <bos>, <eos>, <start_of_turn>, ...: matched verbatim in text, never merged
  UserDefined,  // whitespace runs, "\n", HTML tags, ...: matched verbatim in text before BPE
  Byte,         // <0xNN> byte-fallback piece
  Unused,       // reserved slot: never produced by encode
};

// Pieces are stored as the tokenizer sees them after normalization: a space is "▁" (U+2581).
class Vocabulary {
 public:
  // Appends or overwrites entry `id` (the table grows as needed; gaps become Unused).
  void set(int32_t id, std::string piece, TokenKind kind);

  // Builds the piece -> id index and the byte-fallback table. Call once after the last set().
  // A piece that occurs twice maps to its lowest id.
  void index();

  int32_t size() const { return static_cast<int32_t>(pieces_.size()); }
  bool contains(int32_t id) const { return id >= 0 && id < size(); }
  const std::string& piece(int32_t id) const { return pieces_[id]; }
  TokenKind kind(int32_t id) const { return kinds_[id]; }
  std::optional<int32_t> find(std::string_view piece) const;

  // Id of the <0xNN> piece for byte b, or -1 when the vocabulary lacks it.
  int32_t byte_piece(unsigned char b) const { return byte_ids_[b]; }
  // The byte a <0xNN> piece stands for, or -1 for any other id.
  int byte_value(int32_t id) const { return byte_values_[id]; }

  // Parses "<0xNN>" (uppercase or lowercase hex); -1 when `piece` is not a byte piece.
  static int parse_byte_piece(std::string_view piece);

 private:
  static uint32_t hash_piece(std::string_view piece);

  std::vector<std::string> pieces_;
  std::vector<TokenKind> kinds_;
  std::vector<int16_t> byte_values_;
  std::array<int32_t, 256> byte_ids_{};
  // piece -> id as an open-addressing table (linear probing, power-of-two size). Each slot keeps
  // the piece's hash next to its id so most probes settle without touching the piece text; with
  // 262k pieces this is about twice as fast as std::unordered_map, which dominates load time.
  struct Slot {
    uint32_t hash;
    int32_t id;  // -1: empty
  };
  std::vector<Slot> slots_;
};

}  // namespace unicorn
