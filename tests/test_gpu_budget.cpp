// --gpu-memory: size parsing and the layer planner (pure arithmetic, no GPU needed).
#include <gtest/gtest.h>

#include "core/error.h"
#include "model/synthetic.h"
#include "runtime/gpu_budget.h"
#include "runtime/kv_cache.h"
#include "runtime/memory.h"

using namespace unicorn;

TEST(GpuBudget, SizesParseWithBinaryUnits) {
  EXPECT_EQ(parse_size("1024"), 1024u);
  EXPECT_EQ(parse_size("2K"), 2048u);
  EXPECT_EQ(parse_size("16000M"), size_t{16000} << 20);
  EXPECT_EQ(parse_size("24G"), size_t{24} << 30);
  EXPECT_EQ(parse_size("24GiB"), size_t{24} << 30);
  EXPECT_EQ(parse_size("24gb"), size_t{24} << 30);
  EXPECT_EQ(parse_size("1.5G"), size_t{3} << 29);
  for (const char* bad : {"", "G", "abc", "12X", "1.2.3G", "-5G", "5 G", "20000000T"})
    EXPECT_THROW(parse_size(bad), Error) << bad;
}

TEST(GpuBudget, PlanTakesTheLeadingLayersThatFit) {
  std::shared_ptr<ModelWeights> w = make_synthetic_model("270m", "q8_0", 3);
  const Gemma3Config& c = w->config;
  const int64_t n_ctx = 2048, n_batch = 512;
  const GpuPlan all = plan_gpu_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, size_t{1} << 40);
  EXPECT_EQ(all.layers, c.n_layers);
  // Layer l costs its weights plus its keys and values (a ring of the window on local layers).
  auto layer_bytes = [&](int64_t l) {
    size_t b = 0;
    for (const WeightTensor* t : w->layers[static_cast<size_t>(l)].all()) b += t->nbytes();
    return b + 2 * static_cast<size_t>(KvCache::layer_capacity(c, l, n_ctx) * c.kv_dim()) * 2;
  };
  size_t budget = all.fixed;
  for (int64_t l = 0; l < 5; ++l) budget += layer_bytes(l);
  EXPECT_EQ(all.bytes, [&] {
    size_t b = all.fixed;
    for (int64_t l = 0; l < c.n_layers; ++l) b += layer_bytes(l);
    return b;
  }());
  const GpuPlan five = plan_gpu_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, budget);
  EXPECT_EQ(five.layers, 5);
  EXPECT_EQ(five.bytes, budget);
  EXPECT_EQ(plan_gpu_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, budget - 1).layers, 4);
  EXPECT_EQ(plan_gpu_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, all.fixed).layers, 0);
  // A longer context or more slots leave room for fewer layers.
  EXPECT_LT(plan_gpu_layers(*w, 32768, 4, GgmlType::F32, n_batch, budget).layers, 5);
  try {
    plan_gpu_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, all.fixed - 1);
    FAIL() << "a budget below the embedding table must be refused";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--gpu-memory"), std::string::npos) << e.what();
  }
}

TEST(GpuBudget, PlanCountsTheBackendsOwnWeightLayout) {
  // A GPU backend may hold a weight in more bytes than the file (CUDA aligns each weight's planes;
  // until session 14 it padded Q6_K blocks from 210 to 224 bytes): the plan counts what the
  // backend says, so the same budget holds fewer layers.
  std::shared_ptr<ModelWeights> w = make_synthetic_model("270m", "q8_0", 3);
  const int64_t n_ctx = 2048, n_batch = 512;
  const WeightBytes padded = [](const WeightTensor& t) { return t.nbytes() + t.nbytes() / 10; };
  const size_t budget = gpu_bytes_for_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, 5);
  EXPECT_EQ(plan_gpu_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, budget).layers, 5);
  const GpuPlan p = plan_gpu_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, budget, padded);
  EXPECT_LT(p.layers, 5);
  EXPECT_EQ(p.bytes, gpu_bytes_for_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, p.layers, padded));
  EXPECT_GT(gpu_bytes_for_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, 5, padded), budget);
  // With no sizer, and with the file's own sizes, the counts agree.
  const WeightBytes file = [](const WeightTensor& t) { return t.nbytes(); };
  EXPECT_EQ(gpu_bytes_for_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, 7, file),
            gpu_bytes_for_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, 7));
}

TEST(GpuBudget, ManyLogitRowsPerCallAreBudgeted) {
  // Perplexity takes the logits of every token of a batch at once (EngineOptions::logit_rows):
  // the estimate and the GPU plan count those rows, not only the one generation needs.
  std::shared_ptr<ModelWeights> w = make_synthetic_model("270m", "q8_0", 3);
  const Gemma3Config& c = w->config;
  const int64_t n_ctx = 1024, n_batch = 256;
  const size_t extra = static_cast<size_t>((n_batch - 1) * c.vocab_size) * sizeof(float);
  EXPECT_EQ(estimate_memory(*w, n_ctx, 1, GgmlType::F16, n_batch, n_batch).scratch,
            estimate_memory(*w, n_ctx, 1, GgmlType::F16, n_batch).scratch + extra);
  EXPECT_EQ(gpu_bytes_for_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, 3, {}, n_batch),
            gpu_bytes_for_layers(*w, n_ctx, 1, GgmlType::F16, n_batch, 3) + extra);
}
