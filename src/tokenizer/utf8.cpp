#include "tokenizer/utf8.h"

namespace unicorn {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Allowed range of the second byte of a sequence; later bytes are always 80..BF. The narrower
// ranges exclude overlong forms, surrogates (ED A0..BF) and code points above U+10FFFF.
struct SecondByteRange {
  unsigned char lo, hi;
};

SecondByteRange second_byte_range(unsigned char lead) {
  switch (lead) {
    case 0xE0:
      return {0xA0, 0xBF};
    case 0xED:
      return {0x80, 0x9F};
    case 0xF0:
      return {0x90, 0xBF};
    case 0xF4:
      return {0x80, 0x8F};
    default:
      return {0x80, 0xBF};
  }
}

// 0 for bytes that can never start a sequence (continuations, C0/C1 overlong leads, F5..FF).
std::size_t valid_sequence_length(unsigned char lead) {
  if (lead < 0x80) return 1;
  if (lead >= 0xC2 && lead <= 0xDF) return 2;
  if (lead >= 0xE0 && lead <= 0xEF) return 3;
  if (lead >= 0xF0 && lead <= 0xF4) return 4;
  return 0;
}

}  // namespace

std::size_t utf8_sequence_length(unsigned char lead) {
  const std::size_t n = valid_sequence_length(lead);
  return n == 0 ? 1 : n;
}

std::size_t utf8_codepoint_count(std::string_view text) {
  std::size_t count = 0;
  for (char c : text) count += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return count;
}

std::size_t append_valid_utf8(std::string_view bytes, std::string& out, bool at_end) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    const auto lead = static_cast<unsigned char>(bytes[i]);
    const std::size_t need = valid_sequence_length(lead);
    if (need == 0) {
      out += kReplacement;
      ++i;
      continue;
    }
    // Count how many bytes of the announced sequence are well-formed.
    std::size_t good = 1;
    while (good < need && i + good < bytes.size()) {
      const auto b = static_cast<unsigned char>(bytes[i + good]);
      const SecondByteRange r = good == 1 ? second_byte_range(lead) : SecondByteRange{0x80, 0xBF};
      if (b < r.lo || b > r.hi) break;
      ++good;
    }
    if (good == need) {
      out.append(bytes.substr(i, need));
    } else if (i + good == bytes.size() && !at_end) {
      return i;  // incomplete but still possibly valid: wait for more bytes
    } else {
      out += kReplacement;  // the maximal ill-formed subpart
    }
    i += good;
  }
  return i;
}

std::string to_valid_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  append_valid_utf8(bytes, out, /*at_end=*/true);
  return out;
}

char32_t decode_utf8_sequence(std::string_view sequence) {
  if (sequence.empty()) return 0;
  const auto lead = static_cast<unsigned char>(sequence[0]);
  const std::size_t n = utf8_sequence_length(lead);
  static constexpr unsigned char kLeadMask[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
  char32_t cp = lead & kLeadMask[n];
  for (std::size_t k = 1; k < n && k < sequence.size(); ++k)
    cp = (cp << 6) | (static_cast<unsigned char>(sequence[k]) & 0x3F);
  return cp;
}

}  // namespace unicorn
