// Safetensors reader and Hugging Face checkpoint directories (spec §3): exact read-back, header
// validation, sharded directories, the three text-model prefixes, skipped vision tensors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "formats/hf_checkpoint.h"
#include "formats/safetensors.h"

using namespace unicorn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "unicorn_st_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

void write_raw(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string le_u64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((v >> (8 * i)) & 0xff);
  return s;
}

// A minimal safetensors writer: tensors laid out back to back in the order added.
class SafetensorsBuilder {
 public:
  SafetensorsBuilder& add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                          const void* bytes, size_t n) {
    header_[name] = {{"dtype", dtype}, {"shape", shape}, {"data_offsets", {data_.size(), data_.size() + n}}};
    data_.append(static_cast<const char*>(bytes), n);
    return *this;
  }
  SafetensorsBuilder& add_f32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
    return add(name, "F32", std::move(shape), v.data(), v.size() * 4);
  }
  SafetensorsBuilder& metadata(json m) {
    header_["__metadata__"] = std::move(m);
    return *this;
  }
  json& header() { return header_; }
  std::string bytes() const {
    std::string h = header_.dump();
    while ((8 + h.size()) % 8) h += ' ';  // safetensors pads the header with spaces
    return le_u64(h.size()) + h + data_;
  }
  void write(const std::string& path) const { write_raw(path, bytes()); }

 private:
  json header_ = json::object();
  std::string data_;
};

void expect_error(const std::function<void()>& fn, const std::string& starts_with, const std::string& what) {
  try {
    fn();
    ADD_FAILURE() << "expected an Error containing '" << what << "'";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(starts_with, 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "message: " << msg << "\nexpected: " << what;
  }
}

void write_config(const TempDir& dir) {
  write_raw(dir.file("config.json"), R"({"model_type": "gemma3_text", "hidden_size": 8})");
}

}  // namespace

// ---------------------------------------------------------------- SafetensorsFile

TEST(Safetensors, FloatTensorsReadBackExactly) {
  TempDir dir;
  const std::vector<float> f32 = {1.f, -2.5f, 3.25e-8f, 1e30f, 0.f, -0.f};
  std::vector<uint16_t> f16, bf16;
  for (float v : {0.5f, -65504.f, 6e-8f, 1.f}) f16.push_back(f32_to_f16(v));
  for (float v : {73.5f, -1e38f, 3.f}) bf16.push_back(f32_to_bf16(v));
  SafetensorsBuilder b;
  b.add_f32("a", {2, 3}, f32);
  b.add("h", "F16", {4}, f16.data(), 8);
  b.add("b", "BF16", {3, 1}, bf16.data(), 6);
  b.metadata({{"format", "pt"}});
  b.write(dir.file("m.safetensors"));

  auto f = SafetensorsFile::open(dir.file("m.safetensors"));
  ASSERT_EQ(f->tensors().size(), 3u);  // __metadata__ is not a tensor
  EXPECT_EQ(f->metadata().at("format"), "pt");
  const SafetensorsTensor* a = f->find("a");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->dtype, "F32");
  EXPECT_EQ(f->ggml_type(*a), GgmlType::F32);
  EXPECT_EQ(a->shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a->n_elements(), 6);
  ASSERT_EQ(a->nbytes, 24u);
  EXPECT_EQ(std::memcmp(a->data, f32.data(), 24), 0);
  const SafetensorsTensor* h = f->find("h");
  ASSERT_NE(h, nullptr);
  EXPECT_EQ(f->ggml_type(*h), GgmlType::F16);
  EXPECT_EQ(std::memcmp(h->data, f16.data(), 8), 0);
  const SafetensorsTensor* bt = f->find("b");
  ASSERT_NE(bt, nullptr);
  EXPECT_EQ(f->ggml_type(*bt), GgmlType::BF16);
  EXPECT_EQ(bt->shape, (std::vector<int64_t>{3, 1}));
  uint16_t first;
  std::memcpy(&first, bt->data, 2);
  EXPECT_EQ(bf16_to_f32(first), 73.5f);
  EXPECT_EQ(std::memcmp(bt->data, bf16.data(), 6), 0);
  EXPECT_EQ(f->find("missing"), nullptr);
}

TEST(Safetensors, OtherDtypesFailOnlyWhenRequested) {
  TempDir dir;
  const int64_t ids[2] = {1, 2};
  const uint8_t flags[3] = {1, 0, 1};
  SafetensorsBuilder b;
  b.add_f32("w", {1}, {1.f});
  b.add("ids", "I64", {2}, ids, 16);
  b.add("mask", "BOOL", {3}, flags, 3);
  b.write(dir.file("m.safetensors"));
  auto f = SafetensorsFile::open(dir.file("m.safetensors"));  // opening is fine
  EXPECT_EQ(f->ggml_type(*f->find("w")), GgmlType::F32);
  expect_error([&] { f->ggml_type(*f->find("ids")); }, dir.file("m.safetensors"),
               "tensor 'ids' has dtype I64; Unicorn reads only F32, F16 and BF16");
  EXPECT_THROW(f->ggml_type(*f->find("mask")), Error);
  EXPECT_EQ(safetensors_dtype_to_ggml("F8_E4M3"), std::nullopt);
}

TEST(Safetensors, BadHeaderLengthIsRejected) {
  TempDir dir;
  const std::string p = dir.file("bad.safetensors");
  write_raw(p, "");
  expect_error([&] { SafetensorsFile::open(p); }, p, "not a safetensors file");
  write_raw(p, le_u64(1000) + "{}");
  expect_error([&] { SafetensorsFile::open(p); }, p, "header length 1000 does not fit");
  write_raw(p, le_u64(~uint64_t{0}) + "{}");
  expect_error([&] { SafetensorsFile::open(p); }, p, "does not fit the file size");
  write_raw(p, le_u64(4) + "{abc");
  expect_error([&] { SafetensorsFile::open(p); }, p, "not valid JSON");
  write_raw(p, le_u64(2) + "[]");
  expect_error([&] { SafetensorsFile::open(p); }, p, "not a JSON object");
}

TEST(Safetensors, OffsetsOutsideTheFileAreRejected) {
  TempDir dir;
  const std::string p = dir.file("oob.safetensors");
  SafetensorsBuilder b;
  b.add_f32("w", {2}, {1.f, 2.f});
  b.header()["w"]["data_offsets"] = {0, 16};
  b.write(p);
  expect_error([&] { SafetensorsFile::open(p); }, p, "tensor 'w': data_offsets [0, 16) lie outside the 8 data bytes");
  b.header()["w"]["data_offsets"] = {8, 4};
  b.write(p);
  expect_error([&] { SafetensorsFile::open(p); }, p, "lie outside");
  b.header()["w"]["data_offsets"] = {-1, 4};
  b.write(p);
  expect_error([&] { SafetensorsFile::open(p); }, p, "not a pair of non-negative integers");
}

TEST(Safetensors, ShapeAndSizeMismatchIsRejected) {
  TempDir dir;
  const std::string p = dir.file("mismatch.safetensors");
  SafetensorsBuilder b;
  b.add_f32("w", {3}, {1.f, 2.f});  // 3 floats declared, 8 bytes given
  b.write(p);
  expect_error([&] { SafetensorsFile::open(p); }, p,
               "tensor 'w': shape [3] of F32 needs 12 bytes but data_offsets span 8");
  SafetensorsBuilder n;
  n.add_f32("w", {2}, {1.f, 2.f});
  n.header()["w"]["shape"] = {2, -1};
  n.write(p);
  expect_error([&] { SafetensorsFile::open(p); }, p, "invalid shape");
  SafetensorsBuilder d;
  d.add_f32("w", {2}, {1.f, 2.f});
  d.header()["w"].erase("dtype");
  d.write(p);
  expect_error([&] { SafetensorsFile::open(p); }, p, "'dtype'");
}

TEST(Safetensors, OverlappingTensorsAreRejected) {
  TempDir dir;
  const std::string p = dir.file("overlap.safetensors");
  SafetensorsBuilder b;
  b.add_f32("a", {2}, {1.f, 2.f}).add_f32("b", {2}, {3.f, 4.f});
  b.header()["b"]["data_offsets"] = {4, 12};
  b.write(p);
  expect_error([&] { SafetensorsFile::open(p); }, p, "overlap");
}

TEST(Safetensors, TruncationAndCorruptionThrowErrorOrSucceed) {
  SafetensorsBuilder b;
  b.add_f32("model.layers.0.mlp.up_proj.weight", {2, 2}, {1, 2, 3, 4});
  b.add("h", "F16", {3}, "\x01\x02\x03\x04\x05\x06", 6);
  b.metadata({{"format", "pt"}});
  const std::string good = b.bytes();
  const auto open_bytes = [](const std::string& s) {
    // Exact-size heap buffer: sanitizers see any read past the end.
    return SafetensorsFile::open(MappedFile::from_bytes("m.safetensors", std::vector<uint8_t>(s.begin(), s.end())));
  };
  EXPECT_EQ(open_bytes(good)->tensors().size(), 2u);
  for (size_t n = 0; n < good.size(); ++n) EXPECT_THROW(open_bytes(good.substr(0, n)), Error) << "prefix " << n;
  std::mt19937 rng(99);
  int rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string s = good;
    for (int k = 0; k < 3; ++k) s[rng() % s.size()] = static_cast<char>(rng());
    try {
      auto f = open_bytes(s);
      unsigned sum = 0;
      for (const auto& t : f->tensors())
        for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      (void)sum;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);
}

// ---------------------------------------------------------------- HfCheckpoint

TEST(HfCheckpoint, ShardedDirectoryWithIndexFindsTensorsInEveryShard) {
  TempDir dir;
  write_config(dir);
  SafetensorsBuilder s1, s2;
  s1.add_f32("model.embed_tokens.weight", {2, 2}, {1, 2, 3, 4});
  s1.add_f32("model.layers.0.self_attn.q_proj.weight", {1, 2}, {5, 6});
  s2.add_f32("model.norm.weight", {2}, {7, 8});
  s1.write(dir.file("model-00001-of-00002.safetensors"));
  s2.write(dir.file("model-00002-of-00002.safetensors"));
  write_raw(dir.file("model.safetensors.index.json"),
            json{{"metadata", {{"total_size", 32}}},
                 {"weight_map",
                  {{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                   {"model.layers.0.self_attn.q_proj.weight", "model-00001-of-00002.safetensors"},
                   {"model.norm.weight", "model-00002-of-00002.safetensors"}}}}
                .dump());

  auto c = HfCheckpoint::open(dir.str());
  EXPECT_EQ(c->config()["hidden_size"], 8);
  EXPECT_EQ(c->shard_paths().size(), 2u);
  EXPECT_EQ(c->tensor_names().size(), 3u);
  const HfTensor norm = c->tensor("model.norm.weight");
  EXPECT_EQ(norm.file, dir.file("model-00002-of-00002.safetensors"));
  EXPECT_EQ(norm.dtype, GgmlType::F32);
  EXPECT_EQ(norm.shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(norm.nbytes, 8u);
  EXPECT_EQ(reinterpret_cast<const float*>(norm.data)[1], 8.f);
  EXPECT_EQ(c->text_prefix(), "model.");
  const HfTensor q = c->text_tensor("layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(q.shape, (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(reinterpret_cast<const float*>(q.data)[0], 5.f);
  EXPECT_EQ(q.file, dir.file("model-00001-of-00002.safetensors"));
  EXPECT_FALSE(c->lm_head().has_value());  // tied
  EXPECT_FALSE(c->find("nope").has_value());
  expect_error([&] { c->tensor("nope"); }, dir.str(), "no tensor 'nope'");
  expect_error([&] { c->text_tensor("layers.9.mlp.up_proj.weight"); }, dir.str(),
               "no text tensor 'layers.9.mlp.up_proj.weight'");
}

TEST(HfCheckpoint, IndexPointingAtTheWrongShardIsRejected) {
  TempDir dir;
  write_config(dir);
  SafetensorsBuilder s1;
  s1.add_f32("model.embed_tokens.weight", {1}, {1});
  s1.write(dir.file("a.safetensors"));
  SafetensorsBuilder s2;
  s2.add_f32("model.norm.weight", {1}, {1});
  s2.write(dir.file("b.safetensors"));
  write_raw(
      dir.file("model.safetensors.index.json"),
      json{{"weight_map", {{"model.embed_tokens.weight", "b.safetensors"}, {"model.norm.weight", "b.safetensors"}}}}
          .dump());
  expect_error([&] { HfCheckpoint::open(dir.str()); }, dir.file("model.safetensors.index.json"),
               "weight_map puts 'model.embed_tokens.weight' in b.safetensors");
  write_raw(dir.file("model.safetensors.index.json"),
            json{{"weight_map", {{"model.norm.weight", "../b.safetensors"}}}}.dump());
  expect_error([&] { HfCheckpoint::open(dir.str()); }, dir.file("model.safetensors.index.json"),
               "not a file in this directory");
  write_raw(dir.file("model.safetensors.index.json"),
            json{{"weight_map", {{"model.norm.weight", "c.safetensors"}}}}.dump());
  expect_error([&] { HfCheckpoint::open(dir.str()); }, dir.file("c.safetensors"), "cannot open");
}

TEST(HfCheckpoint, WithoutAnIndexEverySafetensorsFileIsRead) {
  TempDir dir;
  write_config(dir);
  SafetensorsBuilder s1, s2;
  s1.add_f32("model.embed_tokens.weight", {1}, {1});
  s2.add_f32("model.norm.weight", {1}, {2});
  s1.write(dir.file("part-b.safetensors"));
  s2.write(dir.file("part-a.safetensors"));
  auto c = HfCheckpoint::open(dir.str());
  EXPECT_EQ(c->shard_paths(),
            (std::vector<std::string>{dir.file("part-a.safetensors"), dir.file("part-b.safetensors")}));
  EXPECT_EQ(c->tensor("model.embed_tokens.weight").file, dir.file("part-b.safetensors"));

  s1.write(dir.file("part-c.safetensors"));  // same tensor twice
  expect_error([&] { HfCheckpoint::open(dir.str()); }, dir.str(), "tensor 'model.embed_tokens.weight' appears in both");
}

TEST(HfCheckpoint, AllThreeTextPrefixesResolve) {
  // spec §3.2
  for (const std::string prefix : {"model.", "language_model.model.", "model.language_model."}) {
    TempDir dir;
    write_config(dir);
    SafetensorsBuilder b;
    b.add_f32(prefix + "embed_tokens.weight", {2, 1}, {1, 2});
    b.add_f32(prefix + "layers.0.self_attn.q_proj.weight", {1, 1}, {3});
    b.add_f32(prefix + "norm.weight", {1}, {4});
    b.write(dir.file("model.safetensors"));
    auto c = HfCheckpoint::open(dir.str());
    EXPECT_EQ(c->text_prefix(), prefix);
    EXPECT_EQ(c->text_tensor("layers.0.self_attn.q_proj.weight").name, prefix + "layers.0.self_attn.q_proj.weight");
    EXPECT_EQ(reinterpret_cast<const float*>(c->text_tensor("norm.weight").data)[0], 4.f);
    EXPECT_TRUE(c->find_text_tensor("embed_tokens.weight").has_value());
    EXPECT_FALSE(c->find_text_tensor("lm_head.weight").has_value());
  }
}

TEST(HfCheckpoint, UntiedLmHeadIsFoundUnderEitherName) {
  TempDir dir;
  write_config(dir);
  SafetensorsBuilder b;
  b.add_f32("language_model.model.embed_tokens.weight", {1}, {1});
  b.add_f32("language_model.lm_head.weight", {1}, {9});
  b.write(dir.file("model.safetensors"));
  auto c = HfCheckpoint::open(dir.str());
  ASSERT_TRUE(c->lm_head().has_value());
  EXPECT_EQ(c->lm_head()->name, "language_model.lm_head.weight");

  TempDir dir2;
  write_config(dir2);
  SafetensorsBuilder b2;
  b2.add_f32("model.embed_tokens.weight", {1}, {1});
  b2.add_f32("lm_head.weight", {1}, {9});
  b2.write(dir2.file("model.safetensors"));
  EXPECT_EQ(HfCheckpoint::open(dir2.str())->lm_head()->name, "lm_head.weight");
}

TEST(HfCheckpoint, VisionAndProjectorTensorsAreSkippedAndCounted) {
  TempDir dir;
  write_config(dir);
  SafetensorsBuilder b;
  b.add_f32("language_model.model.embed_tokens.weight", {1}, {1});
  b.add_f32("vision_tower.vision_model.embeddings.patch_embedding.weight", {1}, {1});
  b.add_f32("vision_tower.vision_model.post_layernorm.bias", {1}, {1});
  b.add_f32("multi_modal_projector.mm_input_projection_weight", {1}, {1});
  b.add_f32("multi_modal_projector.mm_soft_emb_norm.weight", {1}, {1});
  b.add_f32("model.vision_tower.vision_model.post_layernorm.weight", {1}, {1});
  b.write(dir.file("model.safetensors"));
  auto c = HfCheckpoint::open(dir.str());
  EXPECT_EQ(c->text_prefix(), "language_model.model.");
  EXPECT_EQ(c->skipped_tensors(),
            (std::vector<std::string>{"model.vision_tower.vision_model.post_layernorm.weight",
                                      "multi_modal_projector.mm_input_projection_weight",
                                      "multi_modal_projector.mm_soft_emb_norm.weight",
                                      "vision_tower.vision_model.embeddings.patch_embedding.weight",
                                      "vision_tower.vision_model.post_layernorm.bias"}));
}

TEST(HfCheckpoint, BadDirectoriesAreNamed) {
  TempDir dir;
  expect_error([&] { HfCheckpoint::open(dir.file("absent")); }, dir.file("absent"), "not a directory");
  expect_error([&] { HfCheckpoint::open(dir.str()); }, dir.str(), "no config.json");
  write_config(dir);
  expect_error([&] { HfCheckpoint::open(dir.str()); }, dir.str(), "no *.safetensors files");
  write_raw(dir.file("config.json"), "{not json");
  expect_error([&] { HfCheckpoint::open(dir.str()); }, dir.file("config.json"), "invalid JSON");
}

TEST(HfCheckpoint, MissingTextModelIsReportedWhenAskedFor) {
  TempDir dir;
  write_config(dir);
  SafetensorsBuilder b;
  b.add_f32("encoder.weight", {1}, {1});
  b.write(dir.file("model.safetensors"));
  auto c = HfCheckpoint::open(dir.str());
  expect_error([&] { c->text_prefix(); }, dir.str(), "no text model found");
  expect_error([&] { c->text_tensor("norm.weight"); }, dir.str(), "no text model found");
}

TEST(HfCheckpoint, UnsupportedDtypeIsReportedForThatTensorOnly) {
  TempDir dir;
  write_config(dir);
  const int32_t v = 5;
  SafetensorsBuilder b;
  b.add_f32("model.embed_tokens.weight", {1}, {1});
  b.add("model.layers.0.counter", "I32", {1}, &v, 4);
  b.write(dir.file("model.safetensors"));
  auto c = HfCheckpoint::open(dir.str());
  EXPECT_EQ(c->text_tensor("embed_tokens.weight").dtype, GgmlType::F32);
  expect_error([&] { c->text_tensor("layers.0.counter"); }, dir.file("model.safetensors"), "dtype I32");
}
