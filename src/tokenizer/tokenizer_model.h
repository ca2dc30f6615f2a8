// The tables behind a Tokenizer, filled by one of the loaders (tokenizer.json or GGUF metadata).
// Internal to src/tokenizer/.
#pragma once
#include <cstdint>

#include "tokenizer/bpe_merges.h"
#include "tokenizer/literal_matcher.h"
#include "tokenizer/vocabulary.h"

namespace unicorn {

struct TokenizerModel {
  Vocabulary vocab;
  BpeMerges merges;
  LiteralMatcher literals;
  bool byte_fallback = true;
  int32_t bos = -1;
  int32_t eos = -1;
  int32_t unk = -1;
  int32_t end_of_turn = -1;
  int32_t space = -1;  // the "▁" piece that a space normalizes to (spec §5)

  // After vocab is indexed: registers every Control and UserDefined piece as a literal to be cut
  // out of raw text before BPE, and looks up the pieces the encoder needs.
  void register_literals_and_specials();
};

}  // namespace unicorn
