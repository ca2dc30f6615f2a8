// Synthetic models hold the tensor types of the published files they stand for: a synthetic
// q4_k_m 270M has, tensor by tensor, the types of the real Q4_K_M 270M on PyPI, and at sizes whose
// rows fit 256-value blocks the same rule gives the K-quants a published Q4_K_M file of that size
// holds (Q6_K on the embedding and on attn_v / ffn_down of the "more bits" layers).
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "model/loader.h"
#include "model/synthetic.h"
#include "test_support.h"

using namespace unicorn;

namespace {

std::map<std::string, GgmlType> types_of(const ModelWeights& w) {
  std::map<std::string, GgmlType> t;
  t[w.tok_embd.name] = w.tok_embd.type;
  t[w.output_norm.name] = w.output_norm.type;
  for (const LayerWeights& L : w.layers)
    for (const WeightTensor* x : L.all()) t[x->name] = x->type;
  return t;
}

}  // namespace

TEST(Synthetic, Q4KMOf270mHasTheRealFilesTypesTensorByTensor) {
  const std::string path = test::source_dir() + "/models/gemma-3-270m-q4_k_m.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " not present (scripts/setup.sh fetches it)";
  const auto real = types_of(*load_model(path).weights);
  const auto synth = types_of(*make_synthetic_model("270m", "q4_k_m", 3));
  ASSERT_EQ(real.size(), synth.size());
  int differ = 0;
  for (const auto& [name, type] : real) {
    const auto it = synth.find(name);
    ASSERT_NE(it, synth.end()) << name;
    if (it->second != type) {
      ++differ;
      ADD_FAILURE() << name << ": real " << type_name(type) << ", synthetic " << type_name(it->second);
    }
  }
  EXPECT_EQ(differ, 0);
}

TEST(Synthetic, Q4KMOf27bPutsQ6KOnTheMoreBitsLayers) {
  // 62 layers: an eighth is 7, so layers 0-6 and 54-61, and 9, 12, ..., 51 between them.
  std::set<int64_t> more;
  for (int64_t l = 0; l < 62; ++l)
    if (l < 7 || l >= 54 || (l - 7) % 3 == 2) more.insert(l);
  EXPECT_EQ(more.size(), 7u + 8u + 15u);
  const Gemma3Config c = synthetic_config("27b");
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const GgmlType six_if_more = more.count(l) ? GgmlType::Q6_K : GgmlType::Q4_K;
    EXPECT_EQ(q4_k_m_type("v", l, c.n_layers, c.hidden), six_if_more) << "layer " << l;
    EXPECT_EQ(q4_k_m_type("down", l, c.n_layers, c.ffn), six_if_more) << "layer " << l;
    for (const char* role : {"q", "k", "gate", "up"})
      EXPECT_EQ(q4_k_m_type(role, l, c.n_layers, c.hidden), GgmlType::Q4_K);
    EXPECT_EQ(q4_k_m_type("o", l, c.n_layers, c.q_dim()), GgmlType::Q4_K);
  }
  EXPECT_EQ(q4_k_m_type("embd", 0, c.n_layers, c.hidden), GgmlType::Q6_K);
  // Rows that do not fit 256-value blocks fall back as llama.cpp's quantizer does.
  EXPECT_EQ(q4_k_m_type("embd", 0, 18, 640), GgmlType::Q8_0);
  EXPECT_EQ(q4_k_m_type("q", 3, 18, 640), GgmlType::Q5_0);
  // Q5_K_M: the same layers, around Q5_K.
  for (int64_t l = 0; l < c.n_layers; ++l) {
    EXPECT_EQ(k_m_type(GgmlType::Q5_K, "v", l, c.n_layers, c.hidden), more.count(l) ? GgmlType::Q6_K : GgmlType::Q5_K);
    EXPECT_EQ(k_m_type(GgmlType::Q5_K, "gate", l, c.n_layers, c.hidden), GgmlType::Q5_K);
  }
  EXPECT_EQ(k_m_type(GgmlType::Q5_K, "embd", 0, c.n_layers, c.hidden), GgmlType::Q6_K);
  EXPECT_EQ(k_m_type(GgmlType::Q5_K, "q", 3, 18, 640), GgmlType::Q5_1);
}
