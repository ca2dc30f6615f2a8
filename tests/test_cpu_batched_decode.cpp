// Batched decode on the CPU backend: a step that decodes several sequences at once (one token
// each) gives every sequence bit for bit the logits it gets decoded alone, so a server's batching
// never changes what a request sees. The matmuls of such a step take the row dots, which treat each
// token alone (cpu_matmul.h kMaxRowDotTokens); every other op of the layer works row by row.
#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_matmul.h"
#include "model/gemma3.h"
#include "model/synthetic.h"
#include "runtime/kv_cache.h"

using namespace unicorn;

namespace {

struct EngineOnCpu {
  CpuBackend cpu{2};
  std::unique_ptr<Gemma3Model> model;
  std::unique_ptr<KvCache> kv;
  EngineOnCpu(const std::shared_ptr<ModelWeights>& w, int n_seq) {
    const Placement pl = Placement::all_on(&cpu, w->config.n_layers);
    model = std::make_unique<Gemma3Model>(w, pl);
    kv = std::make_unique<KvCache>(w->config, pl, n_seq, 64, GgmlType::F16);
  }
};

TEST(CpuBatchedDecode, EachSequenceGetsTheLogitsItGetsDecodedAlone) {
  // The real 270M's tensor types (Q5_0, Q8_0, Q4_K, Q6_K at 640-wide rows) on random weights.
  std::shared_ptr<ModelWeights> w = make_synthetic_model("270m", "q4_k_m", 13);
  const int32_t vocab = static_cast<int32_t>(w->config.vocab_size);
  const int n_seq = static_cast<int>(kMaxRowDotTokens);
  EngineOnCpu together(w, n_seq), alone(w, n_seq);
  const int64_t prompt = 3, steps = 3;
  auto token = [&](int s, int64_t p) { return static_cast<int32_t>((1 + 7919 * s + 104729 * p) % vocab); };
  std::vector<float> logits;
  for (EngineOnCpu* r : {&together, &alone})  // the same prompt per sequence, each alone
    for (int s = 0; s < n_seq; ++s) {
      Batch b;
      for (int64_t p = 0; p < prompt; ++p) b.add(token(s, p), static_cast<int32_t>(p), s, p + 1 == prompt);
      r->model->forward(b, *r->kv, logits);
    }
  const size_t row = static_cast<size_t>(vocab);
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t p = prompt + step;
    // n_seq sequences in one batch, at decreasing counts (8, 7, 6 sequences: the row dots' chunks)
    const int live = n_seq - static_cast<int>(step);
    Batch b;
    for (int s = 0; s < live; ++s) b.add(token(s, p), static_cast<int32_t>(p), s, true);
    std::vector<float> batched;
    together.model->forward(b, *together.kv, batched);
    ASSERT_EQ(batched.size(), row * static_cast<size_t>(live));
    for (int s = 0; s < live; ++s) {
      Batch one;
      one.add(token(s, p), static_cast<int32_t>(p), s, true);
      alone.model->forward(one, *alone.kv, logits);
      ASSERT_EQ(logits.size(), row);
      EXPECT_EQ(std::memcmp(batched.data() + row * static_cast<size_t>(s), logits.data(), row * sizeof(float)), 0)
          << "sequence " << s << " of " << live << " at position " << p;
    }
  }
}

}  // namespace
