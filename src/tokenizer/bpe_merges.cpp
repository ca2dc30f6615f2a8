#include "tokenizer/bpe_merges.h"

#include <queue>

namespace unicorn {

namespace {

uint64_t pair_key(int32_t left, int32_t right) {
  return (uint64_t{static_cast<uint32_t>(left)} << 32) | static_cast<uint32_t>(right);
}

// A pair of adjacent symbols that may merge. `left` is the list index of the left symbol; the ids
// are remembered so that a candidate made stale by an earlier merge can be recognised.
struct Candidate {
  int32_t rank;
  int32_t left;
  int32_t left_id;
  int32_t right_id;
  int32_t result;
};

struct LaterCandidate {  // orders the heap: lowest rank first, then leftmost
  bool operator()(const Candidate& a, const Candidate& b) const {
    return a.rank != b.rank ? a.rank > b.rank : a.left > b.left;
  }
};

struct Symbol {
  int32_t id;  // -1 once merged into its left neighbour
  int32_t prev;
  int32_t next;
};

}  // namespace

std::size_t BpeMerges::slot_of(uint64_t key) const {
  const std::size_t mask = slots_.size() - 1;
  std::size_t s = static_cast<std::size_t>((key * 0x9E3779B97F4A7C15ull) >> 32) & mask;  // Fibonacci hashing
  while (slots_[s].merge.rank >= 0 && slots_[s].key != key) s = (s + 1) & mask;
  return s;
}

void BpeMerges::grow(std::size_t capacity) {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(capacity, Slot{0, Merge{-1, -1}});
  for (const Slot& slot : old)
    if (slot.merge.rank >= 0) slots_[slot_of(slot.key)] = slot;
}

void BpeMerges::reserve(std::size_t n) {
  std::size_t capacity = 16;
  while (capacity < 2 * n) capacity *= 2;
  if (capacity > slots_.size()) grow(capacity);
}

void BpeMerges::add(int32_t left, int32_t right, int32_t result) {
  reserve(count_ + 1);
  const uint64_t key = pair_key(left, right);
  Slot& slot = slots_[slot_of(key)];
  if (slot.merge.rank >= 0) return;  // already present with a lower rank
  slot = {key, Merge{static_cast<int32_t>(count_++), result}};
}

const BpeMerges::Merge* BpeMerges::find(int32_t left, int32_t right) const {
  if (slots_.empty()) return nullptr;
  const Slot& slot = slots_[slot_of(pair_key(left, right))];
  return slot.merge.rank >= 0 ? &slot.merge : nullptr;
}

void BpeMerges::apply(std::vector<int32_t>& ids) const {
  const auto n = static_cast<int32_t>(ids.size());
  if (n < 2) return;
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i) symbols[i] = {ids[i], i - 1, i + 1 < n ? i + 1 : -1};

  std::priority_queue<Candidate, std::vector<Candidate>, LaterCandidate> heap;
  auto consider = [&](int32_t left) {
    if (left < 0) return;
    const Symbol& l = symbols[left];
    if (l.next < 0) return;
    const Symbol& r = symbols[l.next];
    if (const Merge* m = find(l.id, r.id)) heap.push({m->rank, left, l.id, r.id, m->result});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);

  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    Symbol& l = symbols[c.left];
    // A symbol only ever grows, so equal ids mean the same span: the pair is still current.
    if (l.id != c.left_id || l.next < 0) continue;
    Symbol& r = symbols[l.next];
    if (r.id != c.right_id) continue;
    l.id = c.result;
    r.id = -1;
    l.next = r.next;
    if (r.next >= 0) symbols[r.next].prev = c.left;
    consider(l.prev);
    consider(c.left);
  }

  ids.clear();
  for (int32_t i = 0; i >= 0; i = symbols[i].next) ids.push_back(symbols[i].id);
}

}  // namespace unicorn
