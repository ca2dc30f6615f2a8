// Incremental detokenization for generation: one token in, the text it completes out.
#pragma once
#include <cstdint>
#include <string>

namespace unicorn {

class Tokenizer;

// Byte-fallback tokens can split a character across several tokens (e.g. an emoji as four <0xNN>
// pieces). StreamDecoder holds back an incomplete UTF-8 sequence until its last byte arrives, so
// every returned string is valid UTF-8, and the concatenation of all push() results plus flush()
// equals Tokenizer::decode() of the same ids.
class StreamDecoder {
 public:
  // The tokenizer must outlive the decoder.
  explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_control = false);

  // Adds one token; returns the newly completed text (possibly empty). Throws unicorn::Error on an
  // id outside the vocabulary.
  std::string push(int32_t id);

  // Ends the stream: any held-back incomplete sequence is returned as U+FFFD.
  std::string flush();

  // Bytes currently held back (0..3).
  std::size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  bool skip_control_;
  std::string pending_;
};

}  // namespace unicorn
