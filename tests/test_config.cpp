// Config derivation (spec §1.1, §1.2, §2.1, §4.2, §6.2): values GGUF does not store, the embedding
// scale rule, and the KV cache size with sliding-window rings.
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "formats/gemma3_config.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"
#include "runtime/kv_cache.h"

using namespace unicorn;

namespace {
// A metadata-only GGUF with the llama.cpp keys for a Gemma 3 size.
Gemma3Config gguf_config(int64_t hidden, int64_t layers, int64_t heads, int64_t kv, int64_t hd, int64_t ffn,
                         int64_t window, float rope_scale) {
  // ctest runs tests as parallel processes: one file per process.
  const std::string path =
      (std::filesystem::temp_directory_path() / ("unicorn_cfg_" + std::to_string(::getpid()) + ".gguf")).string();
  GgufWriter w(path);
  w.add_string("general.architecture", "gemma3");
  w.add_u32("gemma3.context_length", 131072);
  w.add_u32("gemma3.embedding_length", static_cast<uint32_t>(hidden));
  w.add_u32("gemma3.block_count", static_cast<uint32_t>(layers));
  w.add_u32("gemma3.feed_forward_length", static_cast<uint32_t>(ffn));
  w.add_u32("gemma3.attention.head_count", static_cast<uint32_t>(heads));
  w.add_u32("gemma3.attention.head_count_kv", static_cast<uint32_t>(kv));
  w.add_u32("gemma3.attention.key_length", static_cast<uint32_t>(hd));
  w.add_u32("gemma3.attention.value_length", static_cast<uint32_t>(hd));
  w.add_f32("gemma3.attention.layer_norm_rms_epsilon", 1e-6f);
  w.add_u32("gemma3.attention.sliding_window", static_cast<uint32_t>(window));
  w.add_f32("gemma3.rope.freq_base", 1e6f);
  if (rope_scale != 1.0f) {
    w.add_string("gemma3.rope.scaling.type", "linear");
    w.add_f32("gemma3.rope.scaling.factor", rope_scale);
  }
  w.write();
  Gemma3Config c;
  {
    auto f = GgufFile::open(path);
    c = config_from_gguf(*f);
  }
  std::filesystem::remove(path);
  c.vocab_size = 262208;
  return c;
}
}  // namespace

TEST(Config, Gemma3_27BFromGgufDerivesScalesAndPattern) {
  const Gemma3Config c = gguf_config(5376, 62, 32, 16, 128, 21504, 1024, 8.0f);
  EXPECT_EQ(c.embed_scale, 73.5f);                          // sqrt(5376) = 73.32 rounded to bf16 (spec §2.1)
  EXPECT_FLOAT_EQ(c.attn_scale, 1.0f / std::sqrt(168.0f));  // 27B: hidden/heads (spec §1.1, §7.1)
  EXPECT_EQ(c.rope_base_local, 10000.0f);
  EXPECT_EQ(c.rope_scale_global, 8.0f);
  EXPECT_EQ(c.n_global_layers(), 10);
  EXPECT_TRUE(c.layer_is_global[5]);
  EXPECT_TRUE(c.layer_is_global[59]);
  EXPECT_FALSE(c.layer_is_global[61]);
}

TEST(Config, Gemma3_1BUsesHeadDimForAttentionScale) {
  const Gemma3Config c = gguf_config(1152, 26, 4, 1, 256, 6912, 512, 1.0f);
  EXPECT_EQ(c.embed_scale, 34.0f);
  EXPECT_FLOAT_EQ(c.attn_scale, 0.0625f);
  EXPECT_EQ(c.rope_scale_global, 1.0f);
  EXPECT_EQ(c.n_global_layers(), 4);
}

TEST(Config, HfEmbeddingScaleIsRoundedToTheWeightDtype) {
  const nlohmann::json j = {{"model_type", "gemma3_text"}, {"hidden_size", 3072},      {"num_hidden_layers", 2},
                            {"num_attention_heads", 2},    {"num_key_value_heads", 1}, {"head_dim", 256},
                            {"intermediate_size", 64},     {"vocab_size", 16},         {"sliding_window", 8},
                            {"query_pre_attn_scalar", 168}};
  EXPECT_EQ(config_from_hf(j, "cfg", GgmlType::BF16).embed_scale, 55.5f);  // HF's own example, spec §2.1
  EXPECT_FLOAT_EQ(config_from_hf(j, "cfg", GgmlType::F32).embed_scale, std::sqrt(3072.0f));
  EXPECT_FLOAT_EQ(config_from_hf(j, "cfg", GgmlType::F32).attn_scale, 1.0f / std::sqrt(168.0f));
}

TEST(KvCacheSize, Gemma3_27BAt32KIsAbout2_9GiBIn16Bit) {
  const Gemma3Config c = gguf_config(5376, 62, 32, 16, 128, 21504, 1024, 8.0f);
  const size_t bytes = KvCache::estimate_bytes(c, 1, 32768, GgmlType::F16);
  // spec §6.2: 8 KiB per token per layer; 10 global layers hold 32768, 52 local hold 1024.
  EXPECT_EQ(bytes, size_t{8192} * (10 * 32768 + 52 * 1024));
  EXPECT_NEAR(static_cast<double>(bytes) / (1u << 30), 2.91, 0.01);
}

TEST(KvCacheSize, MatchesSpecTableForOtherSizes) {
  const Gemma3Config c1 = gguf_config(1152, 26, 4, 1, 256, 6912, 512, 1.0f);
  EXPECT_NEAR(static_cast<double>(KvCache::estimate_bytes(c1, 1, 32768, GgmlType::F16)) / (1u << 30), 0.136, 0.001);
  const Gemma3Config c12 = gguf_config(3840, 48, 16, 8, 256, 15360, 1024, 8.0f);
  EXPECT_NEAR(static_cast<double>(KvCache::estimate_bytes(c12, 1, 8192, GgmlType::F16)) / (1u << 30), 0.812, 0.001);
}
