// A model held in memory (synthetic weights) written to GGUF and read back: same configuration,
// same tensors byte for byte, and the same logits from the same forward pass.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "model/gemma3.h"
#include "model/loader.h"
#include "model/synthetic.h"
#include "runtime/model_writer.h"
#include "test_support.h"
#include "tokenizer/tokenizer.h"

using namespace unicorn;

TEST(ModelWriter, SyntheticModelRoundTripsThroughGguf) {
  std::shared_ptr<ModelWeights> mem = make_synthetic_model("270m", "q4_k_m", 21);
  const std::string path = (std::filesystem::temp_directory_path() / "unicorn_synthetic_270m.gguf").string();
  write_model_gguf(*mem, path);
  const LoadedModel file = load_model(path);
  const ModelWeights& a = *mem;
  const ModelWeights& b = *file.weights;
  EXPECT_EQ(b.config.n_layers, a.config.n_layers);
  EXPECT_EQ(b.config.hidden, a.config.hidden);
  EXPECT_EQ(b.config.sliding_window, a.config.sliding_window);
  EXPECT_EQ(b.config.layer_is_global, a.config.layer_is_global);
  EXPECT_FLOAT_EQ(b.config.attn_scale, a.config.attn_scale);
  EXPECT_FLOAT_EQ(b.config.embed_scale, a.config.embed_scale);
  auto same = [](const WeightTensor& x, const WeightTensor& y) {
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.type, y.type) << x.name;
    EXPECT_EQ(x.rows, y.rows) << x.name;
    EXPECT_EQ(x.cols, y.cols) << x.name;
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes()), 0) << x.name;
  };
  same(a.tok_embd, b.tok_embd);
  same(a.output_norm, b.output_norm);
  for (size_t l = 0; l < a.layers.size(); ++l)
    for (size_t i = 0; i < a.layers[l].all().size(); ++i) same(*a.layers[l].all()[i], *b.layers[l].all()[i]);

  CpuBackend cpu(0, MatmulPrecision::Exact);
  const Placement p = Placement::all_on(&cpu, a.config.n_layers);
  Gemma3Model ma(mem, p), mb(file.weights, p);
  KvCache ka(a.config, p, 1, 64, GgmlType::F16), kb(b.config, p, 1, 64, GgmlType::F16);
  Batch batch;
  for (int i = 0; i < 6; ++i) batch.add(100 + 37 * i, i, 0, i == 5);
  std::vector<float> la, lb;
  ma.forward(batch, ka, la);
  mb.forward(batch, kb, lb);
  EXPECT_EQ(la, lb);
  std::filesystem::remove(path);
}

TEST(SyntheticModel, Q4_0EmbeddingFallsBackToQ8_0WhereQ6_KBlocksDoNotFit) {
  // 270M: hidden 640 is not a multiple of 256, so no Q6_K embedding (27B's 5376 takes Q6_K, as
  // the CUDA benchmarks show); every projection stays Q4_0.
  std::unique_ptr<ModelWeights> w = make_synthetic_model("270m", "q4_0", 3);
  EXPECT_EQ(w->tok_embd.type, GgmlType::Q8_0);
  EXPECT_EQ(w->layers[0].down.type, GgmlType::Q4_0);
  EXPECT_EQ(w->layers[0].q.type, GgmlType::Q4_0);
  EXPECT_THROW(make_synthetic_model("270m", "q4_k", 3), Error);  // an explicit type is not swapped
}

TEST(ModelWriter, SyntheticModelCarriesAGivenTokenizerWithOneTokenPerEmbeddingRow) {
  // A small SentencePiece-style tokenizer.json with one added token past the 270M's 262144
  // embedding rows (as HF's <image_soft_token>): it is left out, and the rest is padded to the
  // rows, so that the file's token count equals the embedding's rows (llama.cpp requires it).
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("unicorn_writer_tokenizer_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  nlohmann::json tj = test::small_hf_tokenizer({"\xE2\x96\x81", "h", "i", "hi"}, {"h i"});
  tj["added_tokens"].push_back({{"id", 262144}, {"content", "<image_soft_token>"}, {"special", true}});
  std::ofstream(dir / "tokenizer.json") << tj.dump();

  std::shared_ptr<ModelWeights> mem = make_synthetic_model("270m", "q8_0", 4);
  const std::string path =
      (fs::temp_directory_path() / ("unicorn_synthetic_tok_" + std::to_string(::getpid()) + ".gguf")).string();
  write_model_gguf(*mem, path, tokenizer_metadata_from_hf(dir.string(), mem->config.vocab_size));
  auto g = GgufFile::open(path);
  const GgufArray* tokens = g->get_array("tokenizer.ggml.tokens");
  ASSERT_NE(tokens, nullptr);
  EXPECT_EQ(static_cast<int64_t>(tokens->strings.size()), mem->tok_embd.rows);
  EXPECT_EQ(tokens->strings[262143], "[PAD262143]");
  const LoadedModel file = load_model(path);
  ASSERT_TRUE(file.tokenizer.has_value());
  const Tokenizer from_json = Tokenizer::from_hf_json((dir / "tokenizer.json").string());
  for (const char* text : {"hi hi", "ih h"})
    EXPECT_EQ(file.tokenizer->encode(text, true), from_json.encode(text, true));
  EXPECT_EQ(file.tokenizer->encode("hi", false).size(), 1u);  // the merge survived
  fs::remove(path);

  // A vocabulary piece past the rows: not this model's tokenizer, said with the piece and the id.
  nlohmann::json bad = tj;
  bad["model"]["vocab"]["hello"] = 300000;
  std::ofstream(dir / "tokenizer.json") << bad.dump();
  try {
    tokenizer_metadata_from_hf(dir.string(), mem->config.vocab_size);
    ADD_FAILURE() << "a piece past the embedding rows was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'hello' has id 300000"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}
