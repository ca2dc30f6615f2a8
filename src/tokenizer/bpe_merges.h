// BPE merge table and the merge loop (gemma3-spec.md §5: SentencePiece BPE as exported to
// Hugging Face tokenizer.json, where merge order is an explicit rank).
#pragma once
#include <cstdint>
#include <vector>

namespace unicorn {

class BpeMerges {
 public:
  // Adds the merge (left, right) -> result with the next rank (ranks follow insertion order;
  // lower rank merges first). A pair added twice keeps its first rank.
  void add(int32_t left, int32_t right, int32_t result);
  void reserve(std::size_t n);
  std::size_t size() const { return count_; }

  // Rewrites `symbols` (token ids, one per character or fallback byte) by repeatedly merging the
  // adjacent pair with the lowest rank, the leftmost one on ties, until no pair has a merge.
  // O(n log n): a heap of candidate pairs over a linked list of symbols; stale candidates are
  // skipped when popped.
  void apply(std::vector<int32_t>& symbols) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  const Merge* find(int32_t left, int32_t right) const;

  // (left, right) -> merge as an open-addressing table (linear probing, power-of-two size, at most
  // half full): half a million merges are looked up for every pair BPE considers.
  struct Slot {
    uint64_t key;
    Merge merge;  // rank -1: empty
  };
  std::size_t slot_of(uint64_t key) const;
  void grow(std::size_t capacity);

  std::vector<Slot> slots_;
  std::size_t count_ = 0;
};

}  // namespace unicorn
