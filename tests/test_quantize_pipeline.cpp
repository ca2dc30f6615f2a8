// The quantize pipeline end to end on the tiny checkpoints: read-back of metadata and tokenizer,
// HF conversion, logits within an error budget after quantization, the exact size plan, clean
// failures (bad input, unwritable output, full disk) that leave no partial file, importance
// matrices, and `compare`.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"
#include "formats/gguf.h"
#include "model/gemma3.h"
#include "model/loader.h"
#include "quant/codec.h"
#include "quant/imatrix.h"
#include "runtime/calibrate.h"
#include "runtime/compare.h"
#include "runtime/perplexity.h"
#include "runtime/quantize_pipeline.h"
#include "test_support.h"

using namespace unicorn;
namespace fs = std::filesystem;
using unicorn::test::fixture;

namespace {

const std::string kTinyDir = fixture("tiny/h64_hd128_w16_sharded");
const std::string kTinyGguf = kTinyDir + "/model.gguf";

std::string temp(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / "unicorn_quantize_tests";
  fs::create_directories(dir);
  return (dir / name).string();
}

QuantPlan quantize(const std::string& in, const std::string& out, const std::string& preset,
                   const ImportanceMatrix* im = nullptr, std::vector<TypeOverride> overrides = {}) {
  auto src = QuantSource::open(in);
  QuantizeOptions o;
  o.output = out;
  o.preset = preset;
  o.imatrix = im;
  o.threads = 2;
  o.overrides = std::move(overrides);
  o.slab_bytes = 4096;  // many slabs per tensor, to exercise the streaming path
  return quantize_model(*src, o);
}

bool same_value(const GgufValue& a, const GgufValue& b) {
  if (a.type != b.type) return false;
  if (a.v.index() != b.v.index()) return false;
  if (const auto* i = std::get_if<int64_t>(&a.v)) return *i == std::get<int64_t>(b.v);
  if (const auto* u = std::get_if<uint64_t>(&a.v)) return *u == std::get<uint64_t>(b.v);
  if (const auto* d = std::get_if<double>(&a.v)) return *d == std::get<double>(b.v);
  if (const auto* t = std::get_if<bool>(&a.v)) return *t == std::get<bool>(b.v);
  if (const auto* s = std::get_if<std::string>(&a.v)) return *s == std::get<std::string>(b.v);
  const auto& x = std::get<GgufArray>(a.v);
  const auto& y = std::get<GgufArray>(b.v);
  return x.elem_type == y.elem_type && x.ints == y.ints && x.floats == y.floats && x.strings == y.strings;
}

// Worst relative logit error against the transformers reference of the fixture.
double worst_logit_error(const std::string& model_path) {
  std::ifstream f(kTinyDir + "/reference.json");
  const auto j = nlohmann::json::parse(f);
  const auto seq = j["sequence_ids"].get<std::vector<int32_t>>();
  const auto vocab = j["logits"]["shape"][1].get<int64_t>();
  const std::vector<float> ref = test::read_f32(kTinyDir + "/logits.bin");
  auto w = std::shared_ptr<ModelWeights>(load_model(model_path).weights);
  CpuBackend cpu(2);
  Placement pl = Placement::all_on(&cpu, w->config.n_layers);
  Gemma3Model model(w, pl);
  KvCache kv(w->config, pl, 1, 256, GgmlType::F32);
  Batch b;
  for (size_t i = 0; i < seq.size(); ++i) b.add(seq[i], static_cast<int32_t>(i), 0, true);
  std::vector<float> logits;
  model.forward(b, kv, logits);
  double worst = 0;
  for (size_t i = 0; i < seq.size(); ++i)
    worst = std::max(worst, test::rel_error({logits.data() + i * vocab, static_cast<size_t>(vocab)},
                                            {ref.data() + i * vocab, static_cast<size_t>(vocab)}));
  return worst;
}

std::string write_text(const std::string& name) {
  const std::string path = temp(name);
  std::ofstream f(path);
  for (int i = 0; i < 40; ++i)
    f << "In the beginning was the word, and the word was " << i << " letters long; vanity of vanities.\n";
  return path;
}

}  // namespace

TEST(QuantizePipeline, ReadBackKeepsEveryMetadataAndTokenizerKey) {
  const std::string out = temp("rt_q8.gguf");
  const QuantPlan plan = quantize(kTinyGguf, out, "q8_0");
  auto a = GgufFile::open(kTinyGguf);
  auto b = GgufFile::open(out);
  int tokenizer_keys = 0;
  for (const std::string& k : a->keys()) {
    if (k == "general.file_type") continue;
    const GgufValue* v = b->find(k);
    ASSERT_NE(v, nullptr) << k;
    EXPECT_TRUE(same_value(*a->find(k), *v)) << k;
    tokenizer_keys += k.rfind("tokenizer.", 0) == 0 ? 1 : 0;
  }
  EXPECT_GE(tokenizer_keys, 10);
  EXPECT_EQ(b->get_string("general.architecture"), "gemma3");
  EXPECT_EQ(b->find(kGgufAttnScaleKey)->type, GgufValueType::F32);
  EXPECT_EQ(b->get_int("general.file_type"), 7);
  EXPECT_EQ(b->get_string("unicorn.quantize.preset"), "q8_0");
  // Tensors: same names and shapes; matrices Q8_0, norms F32; the plan's size is the file's.
  ASSERT_EQ(a->tensors().size(), b->tensors().size());
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const GgufTensorInfo* t = b->tensor(plan.tensors[i].name);
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->ne, a->tensor(t->name)->ne);
    EXPECT_EQ(t->type, plan.tensors[i].choice.type);
    EXPECT_EQ(t->type, t->ne.size() == 1 ? GgmlType::F32 : GgmlType::Q8_0) << t->name;
  }
  EXPECT_EQ(fs::file_size(out), plan.file_bytes);
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(QuantizePipeline, HfCheckpointBecomesAGgufThatMatchesTheReference) {
  const std::string out = temp("hf_f32.gguf");
  quantize(kTinyDir + "/hf", out, "f32");
  auto g = GgufFile::open(out);
  EXPECT_EQ(g->get_int("gemma3.block_count"), 6);
  EXPECT_EQ(g->get_int("gemma3.embedding_length"), 64);
  EXPECT_TRUE(g->get_float(kGgufAttnScaleKey).has_value());
  // Norms were stored zero-centred in HF and get +1 (spec §4.4): same as the gguf package wrote.
  auto ref = GgufFile::open(kTinyGguf);
  for (const char* name : {"blk.0.attn_norm.weight", "blk.2.attn_q_norm.weight", "output_norm.weight"}) {
    const GgufTensorInfo* x = g->tensor(name);
    const GgufTensorInfo* y = ref->tensor(name);
    ASSERT_TRUE(x && y) << name;
    ASSERT_EQ(x->nbytes, y->nbytes);
    EXPECT_EQ(std::memcmp(x->data, y->data, x->nbytes), 0) << name;
  }
  EXPECT_LE(worst_logit_error(out), 1e-4);
}

TEST(QuantizePipeline, QuantizedTinyModelsStayWithinTheirLogitBudget) {
  // Relative L2 error of all logits against transformers' float32 run. The tiny models have
  // random weights, which amplify rounding far more than trained ones (Q8_0 tensors are off by
  // 0.5%, the logits by ~7%), so the budgets are loose; more bits must always mean less error.
  struct Case {
    const char* preset;
    double budget;
  };
  double prev = 0;
  for (const Case c : {Case{"f16", 1e-4}, Case{"q8_0", 0.1}, Case{"q4_mix", 0.4}, Case{"q4_0", 1.0}}) {
    const std::string out = temp(std::string("budget_") + c.preset + ".gguf");
    quantize(kTinyDir + "/hf", out, c.preset);
    const double err = worst_logit_error(out);
    std::printf("  %s: worst relative logit error %.4g\n", c.preset, err);
    EXPECT_LE(err, c.budget) << c.preset;
    EXPECT_GT(err, prev) << c.preset;  // fewer bits, more error
    prev = err;
  }
}

TEST(QuantizePipeline, RequantizingAGgufDecodesWithTheReferenceCodec) {
  const std::string q4 = temp("rq_q4.gguf"), back = temp("rq_f32.gguf");
  quantize(kTinyGguf, q4, "q4_0");
  quantize(q4, back, "f32");
  auto a = GgufFile::open(q4);
  auto b = GgufFile::open(back);
  const GgufTensorInfo* t = a->tensor("blk.1.ffn_up.weight");
  ASSERT_EQ(t->type, GgmlType::Q4_0);
  std::vector<float> want(static_cast<size_t>(t->n_elements()));
  dequantize_row(t->type, t->data, want.data(), t->n_elements());
  const GgufTensorInfo* u = b->tensor("blk.1.ffn_up.weight");
  ASSERT_EQ(u->type, GgmlType::F32);
  EXPECT_EQ(std::memcmp(u->data, want.data(), u->nbytes), 0);
}

TEST(QuantizePipeline, MissingInputIsAClearError) {
  const std::string out = temp("never.gguf");
  try {
    quantize("/nonexistent/model-dir", out, "q8_0");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/model-dir"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out));
}

TEST(QuantizePipeline, UnwritableOutputIsAClearErrorAndLeavesNothing) {
  const std::string file = temp("plain_file");
  std::ofstream(file) << "x";
  const std::string out = file + "/model.gguf";  // a path under a regular file
  try {
    quantize(kTinyGguf, out, "q8_0");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(out), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(QuantizePipeline, FullDiskLeavesNoPartialFile) {
  // RLIMIT_FSIZE makes write() fail (EFBIG) past 64 KiB, as a full disk would (ENOSPC).
  const std::string out = temp("full.gguf");
  fs::remove(out);
  struct rlimit old {};
  getrlimit(RLIMIT_FSIZE, &old);
  auto prev = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = old;
  lim.rlim_cur = 64 * 1024;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &lim), 0);
  std::string msg;
  try {
    quantize(kTinyDir + "/hf", out, "f32");
  } catch (const Error& e) {
    msg = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, prev);
  EXPECT_NE(msg.find("cannot write"), std::string::npos) << msg;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".tmp"));
}

TEST(QuantizeCli, BadInputFailsWithOneLineAndPlanPrintsTheSizes) {
  auto run = [](const std::string& args) {
    const std::string cmd = std::string(UNICORN_BINARY) + " " + args + " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int st = pclose(p);
    return std::pair{WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
  };
  const std::string out = temp("cli_never.gguf");
  auto [code, text] = run("quantize /nonexistent.gguf " + out + " --preset q8_0");
  EXPECT_EQ(code, 1);
  EXPECT_NE(text.find("unicorn: error: /nonexistent.gguf: no such file"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(out));
  std::tie(code, text) = run("quantize " + kTinyGguf + " " + out + " --preset q5_tiny");
  EXPECT_EQ(code, 1);
  EXPECT_NE(text.find("unknown quantization preset 'q5_tiny'"), std::string::npos) << text;
  std::tie(code, text) = run("quantize --plan-only --synthetic 27b --preset q4_mix");
  EXPECT_EQ(code, 0) << text;
  EXPECT_NE(text.find("| q4_mix | 27009346304 |"), std::string::npos) << text;
}

TEST(QuantizePipeline, PlanWithoutWritingPredictsTheFileSize) {
  auto src = QuantSource::open(kTinyDir + "/hf");
  std::vector<TensorShapeDesc> shapes;
  for (const auto& t : src->tensors()) shapes.push_back({t.name, t.ne});
  const QuantPlan plan = plan_quantization(shapes, output_metadata(*src, "q4_0", nullptr), QuantPolicy("q4_0", {}, 6),
                                           [](GgmlType t) { return can_quantize(t); });
  const std::string out = temp("plan_q4.gguf");
  quantize(kTinyDir + "/hf", out, "q4_0");
  EXPECT_EQ(fs::file_size(out), plan.file_bytes);
}

TEST(WeightedQuantize, NullImportanceIsTheReferenceQuantizer) {
  std::vector<float> x(256);
  for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.37f * static_cast<float>(i)) * (1 + i % 7);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_0, GgmlType::Q8_0, GgmlType::F16}) {
    std::vector<uint8_t> a(row_bytes(t, 256)), b(a.size());
    quantize_row(t, x.data(), a.data(), 256);
    quantize_row_weighted(t, x.data(), b.data(), 256, nullptr);
    EXPECT_EQ(a, b) << type_name(t);
  }
}

TEST(WeightedQuantize, ImportanceLowersTheWeightedError) {
  const int64_t n = 4096;
  std::vector<float> x(n), imp(n), y(n);
  uint32_t s = 12345;
  auto rnd = [&] {
    s = s * 1664525u + 1013904223u;
    return static_cast<float>(s >> 8) / 16777216.0f - 0.5f;
  };
  for (int64_t i = 0; i < n; ++i) {
    x[i] = rnd();
    imp[i] = (i % 32 < 4) ? 50.0f : 0.1f;  // a few columns dominate, as in real activations
  }
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_0}) {
    auto weighted_error = [&](const float* importance) {
      std::vector<uint8_t> q(row_bytes(t, n));
      quantize_row_weighted(t, x.data(), q.data(), n, importance);
      dequantize_row(t, q.data(), y.data(), n);
      double e = 0;
      for (int64_t i = 0; i < n; ++i) e += imp[i] * (x[i] - y[i]) * (x[i] - y[i]);
      return e;
    };
    EXPECT_LT(weighted_error(imp.data()), 0.8 * weighted_error(nullptr)) << type_name(t);
  }
}

TEST(Imatrix, ObserverSeesEveryMatmulInputIncludingTheOutputProjection) {
  auto w = std::shared_ptr<ModelWeights>(load_model(kTinyGguf).weights);
  CpuBackend cpu(1);
  Placement pl = Placement::all_on(&cpu, w->config.n_layers);
  Gemma3Model model(w, pl);
  KvCache kv(w->config, pl, 1, 64, GgmlType::F32);
  ImportanceMatrix im;
  model.set_matmul_observer([&](const WeightTensor& wt, const Act& x) {
    EXPECT_EQ(x.cols(), wt.cols) << wt.name;
    im.accumulate(wt.name, x.data(), x.rows(), x.cols());
  });
  Batch b;
  for (int i = 0; i < 5; ++i) b.add(10 + i, i, 0, i == 4);
  std::vector<float> logits;
  model.forward(b, kv, logits);
  EXPECT_EQ(im.size(), 7 * 6 + 1u);  // 7 matmuls per layer + the tied output projection
  EXPECT_EQ(im.count("blk.0.attn_q.weight"), 5);
  EXPECT_EQ(im.count("token_embd.weight"), 1);  // only the row that wanted logits
  const auto* m = im.find("blk.3.ffn_down.weight");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(m->size(), 32u);
  EXPECT_GT(*std::max_element(m->begin(), m->end()), 0.0f);
}

TEST(Imatrix, HfWeightNamesMapToGgufNames) {
  EXPECT_EQ(gguf_name_from_hf("model.layers.3.mlp.down_proj.weight"), "blk.3.ffn_down.weight");
  EXPECT_EQ(gguf_name_from_hf("language_model.model.layers.0.pre_feedforward_layernorm.weight"),
            "blk.0.ffn_norm.weight");  // the PRE-FFN norm (spec §4.3 trap)
  EXPECT_EQ(gguf_name_from_hf("model.language_model.embed_tokens.weight"), "token_embd.weight");
  EXPECT_EQ(gguf_name_from_hf("model.norm.weight"), "output_norm.weight");
  EXPECT_EQ(gguf_name_from_hf("vision_tower.vision_model.post_layernorm.weight"), std::nullopt);
  EXPECT_EQ(gguf_name_from_hf("blk.0.attn_q.weight"), std::nullopt);
}

TEST(Imatrix, SavedFileLoadsBackWithTheSameMeans) {
  ImportanceMatrix im;
  const float x[6] = {1, 2, 3, 4, 5, 6};
  im.accumulate("blk.0.attn_q.weight", x, 2, 3);
  im.accumulate("token_embd.weight", x, 3, 2);
  im.dataset = "calib.txt";
  im.chunks = 3;
  const std::string path = temp("im.gguf");
  im.save(path);
  const ImportanceMatrix back = ImportanceMatrix::load(path);
  EXPECT_EQ(back.dataset, "calib.txt");
  EXPECT_EQ(back.chunks, 3);
  EXPECT_EQ(back.count("blk.0.attn_q.weight"), 2);
  const std::vector<float> want = {(1 + 16) / 2.0f, (4 + 25) / 2.0f, (9 + 36) / 2.0f};
  EXPECT_EQ(*back.find("blk.0.attn_q.weight"), want);
  EXPECT_THROW(ImportanceMatrix::load(kTinyGguf), Error);  // a model is not an imatrix
}

TEST(Imatrix, CalibratedImatrixCoversEveryQuantizedTensor) {
  CalibrationOptions o;
  o.model_path = kTinyGguf;
  o.text_path = write_text("calib.txt");
  o.n_ctx = 64;
  o.max_chunks = 2;
  o.threads = 2;
  const ImportanceMatrix im = calibrate(o);
  EXPECT_EQ(im.chunks, 2);
  const std::string out = temp("calibrated_q4.gguf");
  const QuantPlan plan = quantize(kTinyGguf, out, "q4_0", &im);
  for (const auto& t : plan.tensors)
    if (traits(t.choice.type).quantized) {
      EXPECT_EQ(im.count(t.name), 128) << t.name;
    }
  EXPECT_EQ(GgufFile::open(out)->get_string("unicorn.quantize.imatrix_dataset"), "calib.txt");
  // On this random-weight toy model the imatrix must not make things worse; that weighting
  // lowers the weighted error is proven per row in test_quant_kquants.cpp, and the held-out
  // quality gain on the real 270M is measured in docs/QUANTIZATION.md.
  const std::string plain = temp("uncalibrated_q4.gguf");
  quantize(kTinyGguf, plain, "q4_0");
  const double with = worst_logit_error(out), without = worst_logit_error(plain);
  std::printf("  q4_0 worst relative logit error: %.4g with the imatrix, %.4g without\n", with, without);
  EXPECT_LT(with, 1.05 * without);
}

TEST(Compare, AModelAgreesCompletelyWithItsLosslessCopy) {
  const std::string copy = temp("copy_f32.gguf");
  quantize(kTinyGguf, copy, "f32");
  CompareOptions o;
  o.ref_path = kTinyGguf;
  o.quant_path = copy;
  o.text_path = write_text("cmp.txt");
  o.n_ctx = 64;
  o.max_chunks = 3;
  o.threads = 2;
  const CompareReport r = compare_models(o);
  EXPECT_EQ(r.n_scored, 3 * 31);
  EXPECT_NEAR(r.retention, 1.0, 1e-6);
  EXPECT_NEAR(r.mean_kl, 0.0, 1e-9);
  EXPECT_EQ(r.top1_agreement, 1.0);
  for (const auto& t : r.tensors) EXPECT_EQ(t.rel_error, 0.0) << t.name;  // F16 -> F32 is exact
  EXPECT_NEAR(r.quant.bits_per_weight, 32.0, 1e-9);

  // The reference perplexity is llama-perplexity's (runtime/perplexity.h) on the same text.
  auto w = std::shared_ptr<ModelWeights>(load_model(kTinyGguf).weights);
  auto tok = load_model(kTinyGguf).tokenizer;
  CpuBackend cpu(2);
  Placement pl = Placement::all_on(&cpu, w->config.n_layers);
  Gemma3Model model(w, pl);
  KvCache kv(w->config, pl, 1, 64, GgmlType::F32);
  std::ifstream f(o.text_path);
  const std::string text((std::istreambuf_iterator<char>(f)), {});
  const PerplexityResult p = perplexity(model, kv, tok->encode(text, true), 64, tok->bos(), 64, 3);
  EXPECT_NEAR(r.ref.ppl, p.ppl, 1e-9 * p.ppl);
}

TEST(Compare, AQuantizedModelShowsItsLoss) {
  const std::string q4 = temp("cmp_q4.gguf");
  quantize(kTinyGguf, q4, "q4_0");
  CompareOptions o;
  o.ref_path = kTinyGguf;
  o.quant_path = q4;
  o.text_path = write_text("cmp.txt");
  o.n_ctx = 64;
  o.max_chunks = 2;
  const CompareReport r = compare_models(o);
  EXPECT_GT(r.mean_kl, 0.0);
  EXPECT_NEAR(r.retention * r.ppl_ratio, 1.0, 1e-12);
  EXPECT_LT(r.quant.bits_per_weight, 6.0);
  bool saw_quantized = false;
  for (const auto& t : r.tensors) {
    if (t.quant_type == GgmlType::Q4_0) {
      saw_quantized = true;
      EXPECT_GT(t.rel_error, 0.01) << t.name;
      EXPECT_LT(t.rel_error, 0.3) << t.name;
    } else {
      EXPECT_EQ(t.rel_error, 0.0) << t.name;  // norms stay F32
    }
  }
  EXPECT_TRUE(saw_quantized);
  const auto j = compare_json(r);
  EXPECT_EQ(j["n_scored"].get<int64_t>(), r.n_scored);
  EXPECT_NE(compare_markdown(r).find("quality retention"), std::string::npos);
}

TEST(Compare, KlDivergenceOfKnownDistributions) {
  const float p[2] = {0.0f, 0.0f};            // (1/2, 1/2)
  const float q[2] = {0.0f, std::log(3.0f)};  // (1/4, 3/4)
  EXPECT_NEAR(kl_divergence(p, p, 2), 0.0, 1e-12);
  EXPECT_NEAR(kl_divergence(p, q, 2), 0.5 * std::log(2.0) + 0.5 * std::log(2.0 / 3.0), 1e-6);
}

TEST(QuantizePipeline, HfTokenizerAndChatTemplateBecomeGgufKeysThatEncodeTheSame) {
  // A copy of the tiny HF checkpoint with a small SentencePiece-style tokenizer.json: specials,
  // byte pieces, letters, two merged pieces, and a chat template in tokenizer_config.json.
  const fs::path dir = temp("hf_with_tokenizer");
  fs::remove_all(dir);
  fs::create_directories(dir);
  for (const auto& e : fs::directory_iterator(kTinyDir + "/hf")) fs::copy(e.path(), dir / e.path().filename());
  nlohmann::json tj =
      test::small_hf_tokenizer({"\xE2\x96\x81", "h", "e", "l", "o", "w", "r", "d", "he", "ll"}, {"h e", "l l"});
  const auto id = static_cast<int>(tj["model"]["vocab"].size());
  tj["added_tokens"].push_back({{"id", id}, {"content", "<start_of_turn>"}, {"special", true}});
  tj["model"]["vocab"]["<start_of_turn>"] = id;
  std::ofstream(dir / "tokenizer.json") << tj.dump();
  std::ofstream(dir / "tokenizer_config.json") << nlohmann::json{{"chat_template", "{{ bos_token }}T"}}.dump();

  const std::string out = temp("hf_tok.gguf");
  quantize(dir.string(), out, "q8_0");
  auto g = GgufFile::open(out);
  EXPECT_EQ(g->get_string("tokenizer.chat_template"), "{{ bos_token }}T");
  EXPECT_EQ(g->get_string("tokenizer.ggml.model"), "llama");
  EXPECT_EQ(g->get_array("tokenizer.ggml.tokens")->strings.size(), 512u);  // padded to the embedding rows
  EXPECT_EQ(g->get_array("tokenizer.ggml.tokens")->strings[511], "[PAD511]");
  EXPECT_EQ(g->get_int("tokenizer.ggml.bos_token_id"), 2);
  const auto from_gguf = load_model(out).tokenizer;
  ASSERT_TRUE(from_gguf.has_value());
  const Tokenizer from_json = Tokenizer::from_hf_json((dir / "tokenizer.json").string());
  for (const char* text : {"hello world", "<start_of_turn>he llo\n", "déjà vu"})
    EXPECT_EQ(from_gguf->encode(text, true), from_json.encode(text, true)) << text;
  EXPECT_EQ(from_gguf->encode("hell", false).size(), 2u);  // "he" + "ll": the merges survived
}
