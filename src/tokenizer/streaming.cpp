#include "tokenizer/streaming.h"

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace unicorn {

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_control)
    : tokenizer_(&tokenizer), skip_control_(skip_control) {}

std::string StreamDecoder::push(int32_t id) {
  std::string bytes = pending_;  // a copy, so a bad id (which throws) loses nothing
  if (!(skip_control_ && tokenizer_->is_control(id))) tokenizer_->append_token_bytes(id, bytes);
  std::string out;
  const std::size_t used = append_valid_utf8(bytes, out, /*at_end=*/false);
  pending_.assign(bytes, used);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  append_valid_utf8(pending_, out, /*at_end=*/true);
  pending_.clear();
  return out;
}

}  // namespace unicorn
