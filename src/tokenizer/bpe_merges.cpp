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

void BpeMerges::add(int32_t left, int32_t right, int32_t result) {
  table_.try_emplace(pair_key(left, right), Merge{static_cast<int32_t>(table_.size()), result});
}

const BpeMerges::Merge* BpeMerges::find(int32_t left, int32_t right) const {
  const auto it = table_.find(pair_key(left, right));
  return it == table_.end() ? nullptr : &it->second;
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
