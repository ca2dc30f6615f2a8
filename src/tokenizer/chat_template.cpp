#include "tokenizer/chat_template.h"

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace unicorn {

namespace {

// Python's str.isspace() set, which Jinja's trim uses.
bool is_python_space(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

// The turn name the template writes: "assistant" is rendered as "model" (spec §1.4).
std::string_view turn_name(const ChatMessage& m, std::size_t index) {
  if (m.role == "user") return "user";
  if (m.role == "assistant" || m.role == "model") return "model";
  if (m.role == "system")
    fail("chat template: message {} is a system message; only the first message may be one", index);
  fail("chat template: message {} has unknown role '{}' (expected system, user or assistant)", index, m.role);
}

void append_turn(std::string& out, std::string_view role, std::string_view prefix, std::string_view content) {
  out += "<start_of_turn>";
  out += role;
  out += '\n';
  out += prefix;
  out += trim_whitespace(content);
  out += "<end_of_turn>\n";
}

}  // namespace

std::string_view trim_whitespace(std::string_view text) {
  std::size_t begin = 0, end = text.size();
  while (begin < end) {
    const std::size_t n = utf8_sequence_length(static_cast<unsigned char>(text[begin]));
    if (begin + n > end || !is_python_space(decode_utf8_sequence(text.substr(begin, n)))) break;
    begin += n;
  }
  while (end > begin) {
    std::size_t start = end - 1;
    while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
    const std::string_view last = text.substr(start, end - start);
    if (utf8_sequence_length(static_cast<unsigned char>(last[0])) != last.size() ||
        !is_python_space(decode_utf8_sequence(last)))
      break;
    end = start;
  }
  return text.substr(begin, end - begin);
}

std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  if (messages.empty()) fail("chat template: no messages to render");
  std::string out = "<bos>";
  std::size_t first = 0;
  std::string system_prefix;
  if (messages[0].role == "system") {
    // Gemma 3 has no system turn: the text (untrimmed, as the template does) plus a blank line
    // opens the first user turn.
    system_prefix = messages[0].content + "\n\n";
    first = 1;
    if (messages.size() == 1) fail("chat template: a system message must be followed by a user message");
  }
  for (std::size_t i = first; i < messages.size(); ++i) {
    const std::string_view role = turn_name(messages[i], i);
    const bool user_expected = (i - first) % 2 == 0;
    if ((role == "user") != user_expected)
      fail("chat template: roles must alternate user/assistant starting with user, but message {} is '{}'", i,
           messages[i].role);
    append_turn(out, role, i == first ? std::string_view(system_prefix) : std::string_view(), messages[i].content);
  }
  if (add_generation_prompt) out += "<start_of_turn>model\n";
  return out;
}

std::string render_user_followup(std::string_view content, bool end_of_turn_in_cache) {
  std::string out = end_of_turn_in_cache ? "\n" : "<end_of_turn>\n";
  append_turn(out, "user", {}, content);
  out += "<start_of_turn>model\n";
  return out;
}

}  // namespace unicorn
