// Prompt-processing and generation throughput, llama-bench style: ppN processes N prompt tokens
// in one batch from an empty cache; tgN decodes N tokens one at a time after an empty cache.
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
};

struct BenchResult {
  BenchCase c;
  std::vector<double> tok_per_s;  // one per repetition
  double mean() const;
  double stddev() const;
};

BenchResult run_bench(Gemma3Model& model, KvCache& kv, const BenchCase& c, int reps, int64_t n_batch);

}  // namespace unicorn
