// Preset policy: which type every tensor gets, overrides, fallbacks, and the exact sizes of the
// presets for the 27B shapes (the targets in docs/QUANTIZATION.md).
#include <gtest/gtest.h>

#include "core/error.h"
#include "quant/policy.h"
#include "runtime/quantize_pipeline.h"

using namespace unicorn;

namespace {
const EncodableFn kAll = [](GgmlType) { return true; };
const EncodableFn kLegacyOnly = [](GgmlType t) {
  return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16 || t == GgmlType::Q4_0 ||
         t == GgmlType::Q5_0 || t == GgmlType::Q5_1 || t == GgmlType::Q8_0;
};
// 27B shapes in ggml order (spec §4.3).
const std::vector<int64_t> kQ = {5376, 4096}, kV = {5376, 2048}, kDown = {21504, 5376}, kEmbd = {5376, 262208};

QuantPlan plan27(const std::string& preset) {
  const Gemma3Config c = gemma3_size_config("27b");
  const auto shapes = gemma3_shapes(c);
  return plan_quantization(shapes, gemma3_metadata(c, "27b"),
                           QuantPolicy(preset, {}, c.n_layers, embedding_share(shapes)), kAll);
}
}  // namespace

TEST(QuantPolicy, RolesAndLayersComeFromGgufNames) {
  EXPECT_EQ(role_of("token_embd.weight"), TensorRole::TokenEmbd);
  EXPECT_EQ(role_of("blk.12.attn_v.weight"), TensorRole::AttnV);
  EXPECT_EQ(role_of("blk.0.ffn_down.weight"), TensorRole::FfnDown);
  EXPECT_EQ(role_of("blk.0.ffn_norm.weight"), TensorRole::Norm);
  EXPECT_EQ(role_of("blk.0.attn_q_norm.weight"), TensorRole::Norm);
  EXPECT_EQ(role_of("output_norm.weight"), TensorRole::Norm);
  EXPECT_EQ(layer_of("blk.12.attn_v.weight"), 12);
  EXPECT_EQ(layer_of("token_embd.weight"), -1);
}

TEST(QuantPolicy, Q8PresetQuantizesEveryMatrixAndKeepsNormsF32) {
  QuantPolicy p("q8_0", {}, 62);
  EXPECT_EQ(p.choose("token_embd.weight", kEmbd, kAll).type, GgmlType::Q8_0);
  EXPECT_EQ(p.choose("blk.3.attn_q.weight", kQ, kAll).type, GgmlType::Q8_0);
  EXPECT_EQ(p.choose("blk.3.ffn_down.weight", kDown, kAll).type, GgmlType::Q8_0);
  EXPECT_EQ(p.choose("blk.3.attn_norm.weight", {5376}, kAll).type, GgmlType::F32);
  EXPECT_EQ(p.choose("output_norm.weight", {5376}, kAll).type, GgmlType::F32);
}

TEST(QuantPolicy, Q4MixGivesSensitiveTensorsMoreBits) {
  QuantPolicy p("q4_mix", {}, 62);
  EXPECT_EQ(p.choose("blk.30.attn_q.weight", kQ, kAll).type, GgmlType::Q4_K);
  EXPECT_EQ(p.choose("blk.30.ffn_gate.weight", {5376, 21504}, kAll).type, GgmlType::Q4_K);
  EXPECT_EQ(p.choose("blk.30.ffn_down.weight", kDown, kAll).type, GgmlType::Q4_K);
  EXPECT_EQ(p.choose("token_embd.weight", kEmbd, kAll).type, GgmlType::Q4_K);
  EXPECT_EQ(p.choose("blk.0.attn_v.weight", kV, kAll).type, GgmlType::Q6_K);
  EXPECT_EQ(p.choose("blk.61.attn_v.weight", kV, kAll).type, GgmlType::Q6_K);
  EXPECT_EQ(p.choose("blk.7.attn_k.weight", kV, kAll).type, GgmlType::Q5_K);
}

TEST(QuantPolicy, Q4SmallTradesAttnQBitsForAttnV) {
  QuantPolicy p("q4_small", {}, 62);
  EXPECT_EQ(p.choose("blk.3.attn_q.weight", kQ, kAll).type, GgmlType::Q3_K);
  EXPECT_EQ(p.choose("blk.3.attn_v.weight", kV, kAll).type, GgmlType::Q5_K);
  EXPECT_EQ(p.choose("blk.3.ffn_up.weight", {5376, 21504}, kAll).type, GgmlType::IQ4_XS);
  EXPECT_EQ(p.choose("token_embd.weight", kEmbd, kAll).type, GgmlType::IQ4_XS);
}

TEST(QuantPolicy, AnEmbeddingThatIsMostOfTheModelGetsMoreBits) {
  const auto small = gemma3_shapes(gemma3_size_config("270m"));
  const auto large = gemma3_shapes(gemma3_size_config("27b"));
  EXPECT_GT(embedding_share(small), 0.6);
  EXPECT_LT(embedding_share(large), 0.06);
  EXPECT_EQ(
      QuantPolicy("q4_mix", {}, 18, embedding_share(small)).choose("token_embd.weight", {640, 262144}, kAll).wanted,
      GgmlType::Q6_K);
  EXPECT_EQ(QuantPolicy("q4_mix", {}, 62, embedding_share(large)).choose("token_embd.weight", kEmbd, kAll).type,
            GgmlType::Q4_K);
  EXPECT_EQ(
      QuantPolicy("q4_small", {}, 18, embedding_share(small)).choose("token_embd.weight", {640, 262144}, kAll).wanted,
      GgmlType::Q5_K);
}

TEST(QuantPolicy, KQuantFallsBackWhenRowsAreNotWholeSuperBlocks) {
  // The 270M's 640-wide rows (spec §1.1b): Q4_K -> Q5_0 and Q6_K -> Q8_0, as llama.cpp does.
  QuantPolicy p("q4_mix", {}, 18);
  const TypeChoice q = p.choose("blk.5.attn_q.weight", {640, 1024}, kAll);
  EXPECT_EQ(q.wanted, GgmlType::Q4_K);
  EXPECT_EQ(q.type, GgmlType::Q5_0);
  EXPECT_NE(q.why.find("640 cols"), std::string::npos) << q.why;
  EXPECT_EQ(p.choose("blk.0.attn_v.weight", {640, 256}, kAll).type, GgmlType::Q8_0);
  EXPECT_EQ(p.choose("blk.0.attn_k.weight", {640, 256}, kAll).type, GgmlType::Q5_1);
  // 2048-wide ffn_down rows are whole super-blocks: no fallback.
  EXPECT_EQ(p.choose("blk.5.ffn_down.weight", {2048, 640}, kAll).type, GgmlType::Q4_K);
}

TEST(QuantPolicy, TypeWithoutEncoderFallsBackAndSaysWhy) {
  QuantPolicy p("q4_small", {}, 62);
  const TypeChoice c = p.choose("blk.30.attn_output.weight", {4096, 5376}, kLegacyOnly);
  EXPECT_EQ(c.wanted, GgmlType::IQ4_XS);
  EXPECT_EQ(c.type, GgmlType::Q4_0);
  EXPECT_NE(c.why.find("no IQ4_XS encoder"), std::string::npos) << c.why;
}

TEST(QuantPolicy, LegacyTypesFallBackToF16ForOddRowLengths) {
  QuantPolicy p("q4_0", {}, 4);
  EXPECT_EQ(p.choose("blk.0.attn_q.weight", {16, 32}, kAll).type, GgmlType::F16);
  EXPECT_EQ(p.choose("blk.0.attn_q.weight", {64, 32}, kAll).type, GgmlType::Q4_0);
}

TEST(QuantPolicy, OverridesWinAndTheLastMatchingRuleApplies) {
  QuantPolicy p("q4_0", {parse_override("attn_v=q8_0"), parse_override("blk\\.1\\.attn_v=f16")}, 4);
  const TypeChoice v0 = p.choose("blk.0.attn_v.weight", {64, 32}, kAll);
  EXPECT_EQ(v0.type, GgmlType::Q8_0);
  EXPECT_NE(v0.why.find("attn_v=q8_0"), std::string::npos);
  EXPECT_EQ(p.choose("blk.1.attn_v.weight", {64, 32}, kAll).type, GgmlType::F16);
  EXPECT_EQ(p.choose("blk.1.attn_k.weight", {64, 32}, kAll).type, GgmlType::Q4_0);
  // Norms are never quantized, whatever an override says.
  QuantPolicy all("q8_0", {parse_override(".*=q4_0")}, 4);
  EXPECT_EQ(all.choose("blk.0.attn_norm.weight", {64}, kAll).type, GgmlType::F32);
  EXPECT_EQ(all.choose("token_embd.weight", {64, 512}, kAll).type, GgmlType::Q4_0);
}

TEST(QuantPolicy, BadOverridesAndPresetsAreClearErrors) {
  EXPECT_THROW(parse_override("attn_v"), Error);
  EXPECT_THROW(parse_override("attn_v=q9_9"), Error);
  EXPECT_THROW(parse_override("(=q8_0"), Error);
  try {
    QuantPolicy p("q3_tiny", {}, 4);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("q3_tiny"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("q4_mix"), std::string::npos);  // lists the presets
  }
}

TEST(QuantPlan27B, SizesMatchTheIssueTargets) {
  const QuantPlan q8 = plan27("q8_0");
  // Parameter count of spec §6.1 (text model): 25,599,716,096 + 1,409,630,208.
  EXPECT_EQ(q8.n_elements, 27009346304);
  const QuantPlan mix = plan27("q4_mix");
  EXPECT_LE(mix.bits_per_weight(), 4.6);
  EXPECT_LE(mix.file_bytes, 15'500'000'000u);
  const QuantPlan small = plan27("q4_small");
  EXPECT_LE(small.bits_per_weight(), 4.25);
  EXPECT_LE(small.file_bytes, 14'600'000'000u);
  EXPECT_LT(small.file_bytes, mix.file_bytes);
  EXPECT_LT(mix.file_bytes, q8.file_bytes);
}

TEST(QuantPlan27B, EveryTensorSizeFollowsItsType) {
  for (const auto& t : plan27("q4_mix").tensors) {
    const int64_t rows = t.n_elements / t.ne[0];
    EXPECT_EQ(t.bytes, row_bytes(t.choice.type, t.ne[0]) * static_cast<uint64_t>(rows)) << t.name;
  }
}
