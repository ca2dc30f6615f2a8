#include "tokenizer/literal_matcher.h"

namespace unicorn {

namespace {
uint64_t edge_key(uint32_t node, unsigned char byte) { return (uint64_t{node} << 8) | byte; }
}  // namespace

LiteralMatcher::LiteralMatcher() : node_token_(1, -1) {}

void LiteralMatcher::add(std::string_view text, int32_t id) {
  if (text.empty()) return;
  can_start_[static_cast<unsigned char>(text[0])] = true;
  uint32_t node = 0;
  for (char c : text) {
    const auto [it, inserted] =
        edges_.try_emplace(edge_key(node, static_cast<unsigned char>(c)), static_cast<uint32_t>(node_token_.size()));
    if (inserted) node_token_.push_back(-1);
    node = it->second;
  }
  if (node_token_[node] < 0) {
    node_token_[node] = id;
    ++count_;
  }
}

std::optional<LiteralMatcher::Match> LiteralMatcher::longest_at(std::string_view text, std::size_t pos) const {
  if (pos >= text.size() || !can_start_[static_cast<unsigned char>(text[pos])]) return std::nullopt;
  std::optional<Match> best;
  uint32_t node = 0;
  for (std::size_t i = pos; i < text.size(); ++i) {
    const auto it = edges_.find(edge_key(node, static_cast<unsigned char>(text[i])));
    if (it == edges_.end()) break;
    node = it->second;
    if (node_token_[node] >= 0) best = Match{node_token_[node], i + 1 - pos};
  }
  return best;
}

}  // namespace unicorn
