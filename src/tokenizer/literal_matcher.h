// Finds special and user-defined tokens verbatim in raw text before BPE (gemma3-spec.md §5):
// "<start_of_turn>", "\n\n", "<table>", ... are cut out first so that BPE never sees them.
#pragma once
#include <array>
#include <cstdint>
#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace unicorn {

class LiteralMatcher {
 public:
  LiteralMatcher();

  // Registers `text` (non-empty) as token `id`. A text registered twice keeps its first id.
  void add(std::string_view text, int32_t id);

  struct Match {
    int32_t id;
    std::size_t length;  // bytes
  };
  // The longest registered text that starts at byte `pos` of `text`. Scanning left to right and
  // taking this match gives leftmost-longest matching, as Hugging Face's added-token splitter does.
  std::optional<Match> longest_at(std::string_view text, std::size_t pos) const;

  std::size_t size() const { return count_; }

 private:
  // A byte trie: node 0 is the root; edges are keyed by (node << 8 | byte).
  std::vector<int32_t> node_token_;  // token id ending at this node, or -1
  std::unordered_map<uint64_t, uint32_t> edges_;
  std::array<bool, 256> can_start_{};  // first bytes of any registered text, a fast reject
  std::size_t count_ = 0;
};

}  // namespace unicorn
