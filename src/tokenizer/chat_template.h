// Gemma chat template (gemma3-spec.md §1.4), rendered without a Jinja engine.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace unicorn {

struct ChatMessage {
  std::string role;  // "system" (first message only), "user", "assistant" (or "model")
  std::string content;
};

// Renders a whole conversation the way the hub's Jinja template does:
//   <bos><start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n{reply}<end_of_turn>\n...
// A leading system message is folded into the first user turn; contents are trimmed; roles must
// alternate user/assistant starting with user. With add_generation_prompt the text ends with
// "<start_of_turn>model\n". Throws unicorn::Error on an empty list, an unknown role, a misplaced
// system message or broken alternation. The result contains "<bos>" as text: encode it with
// add_bos = false.
std::string render_chat(const std::vector<ChatMessage>& messages, bool add_generation_prompt);

// The text that continues a conversation after the model's reply, for multi-turn chat that keeps
// its KV cache: closes the model turn, adds one user turn and opens the next model turn:
//   <end_of_turn>\n<start_of_turn>user\n{content}<end_of_turn>\n<start_of_turn>model\n
// If the model's <end_of_turn> token is already in the cache, pass end_of_turn_in_cache = true and
// the leading "<end_of_turn>" is left out (the "\n" after it is not).
std::string render_user_followup(std::string_view content, bool end_of_turn_in_cache = false);

// Strips leading and trailing whitespace as Jinja's `trim` filter (Python str.strip) does,
// including Unicode spaces such as U+00A0 and U+3000.
std::string_view trim_whitespace(std::string_view text);

}  // namespace unicorn
