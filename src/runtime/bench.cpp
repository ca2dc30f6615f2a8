#include "runtime/bench.h"

#include <chrono>
#include <cmath>
#include <random>
#include <set>

#include "core/error.h"

namespace unicorn {

double BenchResult::mean() const {
  double s = 0;
  for (double v : tok_per_s) s += v;
  return tok_per_s.empty() ? 0 : s / static_cast<double>(tok_per_s.size());
}

double BenchResult::stddev() const {
  if (tok_per_s.size() < 2) return 0;
  const double m = mean();
  double s = 0;
  for (double v : tok_per_s) s += (v - m) * (v - m);
  return std::sqrt(s / static_cast<double>(tok_per_s.size() - 1));
}

namespace {
void fill(Gemma3Model& model, KvCache& kv, int seq, int64_t n, int64_t n_batch, std::mt19937& rng, bool logits_last) {
  std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model.config().vocab_size - 1));
  std::vector<float> logits;
  Batch b;
  for (int64_t done = 0; done < n;) {
    b.clear();
    const int64_t m = std::min(n_batch, n - done);
    for (int64_t i = 0; i < m; ++i)
      b.add(tok(rng), static_cast<int32_t>(kv.seq_len(seq) + i), seq, logits_last && done + i == n - 1);
    // The prompt's last token ends with the greedy pick on the model's output backend, as the
    // first generated token of `unicorn run --temp 0` does (time to first token).
    model.forward(b, kv, logits, logits_last ? LogitsRequest{1, 0} : LogitsRequest{});
    done += m;
  }
}

void wait_for_devices(const Placement& p) {
  std::set<Backend*> devices(p.layer.begin(), p.layer.end());
  devices.insert(p.input);
  devices.insert(p.output);
  for (Backend* b : devices)
    if (b) b->synchronize();
}
}  // namespace

BenchResult run_bench(Gemma3Model& model, KvCache& kv, const BenchCase& c, int reps, int64_t n_batch) {
  BenchResult r;
  r.c = c;
  std::mt19937 rng(1234);
  using clock = std::chrono::steady_clock;
  if (c.n_seq < 1 || c.n_seq > kv.n_seq() || (c.n_seq > 1 && c.n_prompt > 0))
    fail("bench {}: {} sequences (the cache holds {}; only tg tests decode several)", c.name, c.n_seq, kv.n_seq());
  auto clear = [&] {
    for (int s = 0; s < c.n_seq; ++s) kv.clear(s);
  };
  for (int rep = -1; rep < reps; ++rep) {  // rep -1 warms up caches and threads
    clear();
    // The clock starts when the devices have finished the depth: its prompt batches read nothing
    // back, so without the wait a GPU still runs the last of them when the clock starts, and a
    // test at depth pays for them (27B on an H200 at depth 4096: tg32 157.8 and tg128 175.9
    // tok/s, i.e. ~28 ms of depth in each repetition; docs/PERFORMANCE.md session 20).
    if (c.n_depth > 0) {
      for (int s = 0; s < c.n_seq; ++s) fill(model, kv, s, c.n_depth, n_batch, rng, false);
      wait_for_devices(model.placement());
    }
    const auto t0 = clock::now();
    if (c.n_prompt > 0) fill(model, kv, 0, c.n_prompt, n_batch, rng, true);
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(model.config().vocab_size - 1));
    std::vector<float> logits;
    Batch b;
    // Each generated token ends with the greedy pick on the model's output backend, as
    // `unicorn run --temp 0` does (Generator asks for the best logit only, see sampler.h).
    const LogitsRequest greedy{1, 0};
    for (int64_t i = 0; i < c.n_gen; ++i) {
      b.clear();
      for (int s = 0; s < c.n_seq; ++s) b.add(tok(rng), static_cast<int32_t>(kv.seq_len(s)), s, true);
      model.forward(b, kv, logits, greedy);
    }
    const double s = std::chrono::duration<double>(clock::now() - t0).count();
    if (rep >= 0) r.tok_per_s.push_back(static_cast<double>(c.n_prompt + c.n_gen * c.n_seq) / s);
  }
  clear();
  return r;
}

}  // namespace unicorn
