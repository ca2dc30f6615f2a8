// Prompt-processing and generation throughput, llama-bench style: ppN processes N prompt tokens
// in one batch from an empty cache; tgN decodes N tokens one at a time after an empty cache;
// "tgN xS" decodes N tokens in each of S sequences together, one forward call of S tokens per
// step (batched decode, as a server serving S requests), and counts all S x N tokens.
// Token ids are random (seeded): throughput does not depend on them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "model/gemma3.h"

namespace unicorn {

struct BenchCase {
  std::string name;  // "pp512", "tg128"
  int64_t n_prompt = 0;
  int64_t n_gen = 0;
  int64_t n_depth = 0;  // tokens already in the context before the measurement (pp or tg at depth)
  int n_seq = 1;        // tg: sequences decoded together (KV slots 0 .. n_seq - 1; each at n_depth)
};

struct BenchResult {
  BenchCase c;
  std::vector<double> tok_per_s;  // one per repetition
  double mean() const;
  double stddev() const;
};

BenchResult run_bench(Gemma3Model& model, KvCache& kv, const BenchCase& c, int reps, int64_t n_batch);

}  // namespace unicorn
