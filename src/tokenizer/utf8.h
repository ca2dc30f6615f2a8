// UTF-8 helpers shared by the tokenizer, the stream decoder and the chat template.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace unicorn {

// Byte length of the UTF-8 sequence announced by a lead byte (1 for ASCII, 2..4 for multi-byte
// leads), or 1 for a byte that cannot start a sequence. Used to step through text character by
// character; it does not validate the continuation bytes.
std::size_t utf8_sequence_length(unsigned char lead);

// Number of code points in valid UTF-8 text (continuation bytes are not counted).
std::size_t utf8_codepoint_count(std::string_view text);

// Appends `bytes` to `out` as valid UTF-8: every ill-formed sequence becomes U+FFFD, one per maximal
// ill-formed subpart (the Unicode "best practice" rule), so the result does not depend on how the
// bytes were chunked. When `at_end` is false, a trailing sequence that is incomplete but could still
// become valid is left unconsumed. Returns the number of bytes consumed.
std::size_t append_valid_utf8(std::string_view bytes, std::string& out, bool at_end);

// Whole-string form of append_valid_utf8 with at_end = true.
std::string to_valid_utf8(std::string_view bytes);

// The code point of one complete, valid UTF-8 sequence (as produced by append_valid_utf8).
char32_t decode_utf8_sequence(std::string_view sequence);

}  // namespace unicorn
