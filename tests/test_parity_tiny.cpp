// Reference parity: the engine's logits on tiny random-weight Gemma 3 checkpoints against
// transformers' float32 eager implementation (fixtures from tools/gen_tiny_checkpoints.py).
// Both the safetensors and the GGUF (written by the gguf package) forms, over a prefill and 63
// decode steps that cross the sliding window.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backends/cpu/cpu_backend.h"
#include "model/gemma3.h"
#include "model/loader.h"
#include "test_support.h"

using namespace unicorn;
using unicorn::test::fixture;

namespace {

struct Reference {
  std::vector<int32_t> sequence;
  int64_t prompt_len = 0;
  int64_t vocab = 0;
  std::vector<float> logits;  // [sequence.size(), vocab]
};

Reference load_reference(const std::string& dir) {
  std::ifstream f(dir + "/reference.json");
  const auto j = nlohmann::json::parse(f);
  Reference r;
  r.sequence = j["sequence_ids"].get<std::vector<int32_t>>();
  r.prompt_len = j["prompt_len"].get<int64_t>();
  r.vocab = j["logits"]["shape"][1].get<int64_t>();
  r.logits = test::read_f32(dir + "/logits.bin");
  return r;
}

struct EngineRun {
  std::shared_ptr<ModelWeights> w;
  CpuBackend cpu{2};
  std::unique_ptr<Gemma3Model> model;
  std::unique_ptr<KvCache> kv;
  EngineRun(const std::string& path, int n_seq = 1) {
    w = load_model(path).weights;
    Placement pl = Placement::all_on(&cpu, w->config.n_layers);
    model = std::make_unique<Gemma3Model>(w, pl);
    kv = std::make_unique<KvCache>(w->config, pl, n_seq, 256, GgmlType::F32);
  }
};

// Feeds the reference sequence in chunks of `chunk` tokens (asking for every row's logits) and
// returns the worst relative error over all positions.
double worst_error(EngineRun& run, const Reference& ref, int64_t chunk) {
  double worst = 0;
  const auto n = static_cast<int64_t>(ref.sequence.size());
  std::vector<float> logits;
  for (int64_t start = 0; start < n;) {
    const int64_t m = start < ref.prompt_len ? std::min(chunk, ref.prompt_len - start) : 1;
    Batch b;
    for (int64_t i = 0; i < m; ++i)
      b.add(ref.sequence[static_cast<size_t>(start + i)], static_cast<int32_t>(start + i), 0, true);
    run.model->forward(b, *run.kv, logits);
    for (int64_t i = 0; i < m; ++i) {
      std::span<const float> got(logits.data() + i * ref.vocab, static_cast<size_t>(ref.vocab));
      std::span<const float> want(ref.logits.data() + (start + i) * ref.vocab, static_cast<size_t>(ref.vocab));
      worst = std::max(worst, test::rel_error(got, want));
      if (start + i + 1 < n && start + i + 1 >= ref.prompt_len) {
        // Greedy decoding reproduces the reference's next token.
        EXPECT_EQ(test::argmax(got), ref.sequence[static_cast<size_t>(start + i + 1)]) << "position " << start + i;
      }
    }
    start += m;
  }
  std::printf("  worst relative logit error over %lld positions: %.3g\n", static_cast<long long>(n), worst);
  return worst;
}

std::vector<std::string> tiny_dirs() {
  std::vector<std::string> v;
  for (const auto& e : std::filesystem::directory_iterator(fixture("tiny")))
    if (e.is_directory()) v.push_back(e.path().string());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

class TinyParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyParity, GgufLogitsMatchTransformers) {
  const std::string dir = GetParam();
  const Reference ref = load_reference(dir);
  EngineRun run(dir + "/model.gguf");
  EXPECT_LE(worst_error(run, ref, 64), 1e-4);
}

TEST_P(TinyParity, SafetensorsLogitsMatchTransformers) {
  const std::string dir = GetParam();
  const Reference ref = load_reference(dir);
  EngineRun run(dir + "/hf");
  EXPECT_LE(worst_error(run, ref, 64), 1e-4);
}

TEST_P(TinyParity, ChunkedPrefillMatchesTransformers) {
  // Prompt chunks of 5 make the ring of a local layer serve keys from earlier chunks.
  const std::string dir = GetParam();
  const Reference ref = load_reference(dir);
  EngineRun run(dir + "/model.gguf");
  EXPECT_LE(worst_error(run, ref, 5), 1e-4);
}

TEST_P(TinyParity, TwoSequencesInOneBatchMatchTransformers) {
  // The batch API: two slots decode the same sequence interleaved in each forward call, one
  // offset by a few tokens, and both must match the reference at their positions.
  const std::string dir = GetParam();
  const Reference ref = load_reference(dir);
  EngineRun run(dir + "/model.gguf", 2);
  const auto n = static_cast<int64_t>(ref.sequence.size());
  const int64_t lag = 3;
  std::vector<float> logits;
  double worst = 0;
  for (int64_t step = 0; step < n + lag; ++step) {
    Batch b;
    const int64_t p0 = step, p1 = step - lag;
    if (p0 < n) b.add(ref.sequence[static_cast<size_t>(p0)], static_cast<int32_t>(p0), 0, true);
    if (p1 >= 0 && p1 < n) b.add(ref.sequence[static_cast<size_t>(p1)], static_cast<int32_t>(p1), 1, true);
    run.model->forward(b, *run.kv, logits);
    size_t row = 0;
    for (int64_t p : {p0, p1}) {
      if (p < 0 || p >= n) continue;
      std::span<const float> got(logits.data() + row * static_cast<size_t>(ref.vocab), static_cast<size_t>(ref.vocab));
      std::span<const float> want(ref.logits.data() + p * ref.vocab, static_cast<size_t>(ref.vocab));
      worst = std::max(worst, test::rel_error(got, want));
      ++row;
    }
  }
  EXPECT_LE(worst, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TinyParity, ::testing::ValuesIn(tiny_dirs()),
                         [](const auto& info) { return std::filesystem::path(info.param).filename().string(); });

TEST(TinyParityBf16, Bf16SafetensorsMatchesTransformers) {
  const std::string dir = fixture("tiny/h64_hd128_w16_sharded");
  if (!std::filesystem::exists(dir + "/hf_bf16")) GTEST_SKIP() << "no bf16 copy in this fixture set";
  const Reference ref = load_reference(dir);
  EngineRun run(dir + "/hf_bf16");
  EXPECT_EQ(run.w->tok_embd.type, GgmlType::BF16);
  EXPECT_LE(worst_error(run, ref, 64), 1e-4);
}
