// Tokenizer::from_gguf_metadata: a small hand-made vocabulary (always runs), and the real Gemma 3
// 270M GGUF against the Hugging Face reference ids (runs when models/ has the file).
#include <gtest/gtest.h>

#include "formats/gguf.h"
#include "model/loader.h"

#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace unicorn::tokenizer_test {

// Defined in test_tokenizer.cpp.
struct TokenizerCase {
  std::string text;
  std::vector<int32_t> ids;
};
struct LongTextExpectation {
  std::size_t min_bytes = 0, bytes = 0, id_count = 0;
  uint64_t ids_fnv1a64 = 0;
};
const std::vector<TokenizerCase>& fixture_cases();
const LongTextExpectation& long_text_expectation();
bool uses_hf_only_token(const std::string& text);
std::string build_long_text();
uint64_t fnv1a64_ids(const std::vector<int32_t>& ids);

namespace {

// ---------------------------------------------------------------------------------------------
// Hand-made vocabulary: proves the score-driven merge order and the GGUF conventions without a
// model file.

struct MiniVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
  int32_t add(std::string piece, float score, int32_t type) {
    tokens.push_back(std::move(piece));
    scores.push_back(score);
    types.push_back(type);
    return static_cast<int32_t>(tokens.size() - 1);
  }
  Tokenizer build() const { return Tokenizer::from_gguf_metadata(tokens, scores, types, nullptr, 2, 1, 3); }
};

constexpr int32_t kNormal = 1, kControl = 3, kUserDefined = 4, kByte = 6;

MiniVocab mini_vocab(float score_ab, float score_bc) {
  MiniVocab v;
  v.add("<pad>", 0, kControl);
  v.add("<eos>", 0, kControl);
  v.add("<bos>", 0, kControl);
  v.add("<unk>", 0, kControl);
  v.add("  ", 0, kUserDefined);  // llama.cpp writes whitespace runs with real spaces
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.add(name, 0, kByte);
  }
  v.add("\xE2\x96\x81", -1, kNormal);  // ▁
  v.add("a", -2, kNormal);
  v.add("b", -3, kNormal);
  v.add("c", -4, kNormal);
  v.add("ab", score_ab, kNormal);
  v.add("bc", score_bc, kNormal);
  v.add(
      "\xE2\x96\x81"
      "a",
      -7, kNormal);
  return v;
}

std::vector<std::string> texts(const Tokenizer& tok, const std::vector<int32_t>& ids) {
  std::vector<std::string> out;
  for (int32_t id : ids) out.push_back(tok.token_text(id));
  return out;
}

using Pieces = std::vector<std::string>;

TEST(TokenizerGguf, MergesFollowPieceScores) {
  const Tokenizer ab_first = mini_vocab(-5, -6).build();
  EXPECT_EQ(texts(ab_first, ab_first.encode("abc", false)), (Pieces{"ab", "c"}));
  const Tokenizer bc_first = mini_vocab(-6, -5).build();
  EXPECT_EQ(texts(bc_first, bc_first.encode("abc", false)), (Pieces{"a", "bc"}));
}

TEST(TokenizerGguf, SpacesBecomeSpaceSymbolWithoutDummyPrefix) {
  const Tokenizer tok = mini_vocab(-5, -6).build();
  EXPECT_EQ(texts(tok, tok.encode("a a", true)), (Pieces{"<bos>", "a",
                                                         "\xE2\x96\x81"
                                                         "a"}));
  // The two-space user-defined piece is stored normalized, as in tokenizer.json, and is reached by
  // merging two "▁" (user-defined pieces rank first, spec §5).
  EXPECT_EQ(tok.find_token("\xE2\x96\x81\xE2\x96\x81"), 4);
  EXPECT_EQ(texts(tok, tok.encode("c  c", false)), (Pieces{"c", "\xE2\x96\x81\xE2\x96\x81", "c"}));
  EXPECT_EQ(tok.decode(tok.encode("c  c", false)), "c  c");
}

TEST(TokenizerGguf, ControlPiecesAreMatchedLiterallyAndUnknownCharactersFallBackToBytes) {
  const Tokenizer tok = mini_vocab(-5, -6).build();
  EXPECT_EQ(texts(tok, tok.encode("a<eos>\xC3\xA9", false)), (Pieces{"a", "<eos>", "<0xC3>", "<0xA9>"}));
  EXPECT_TRUE(tok.is_control(1));
  EXPECT_FALSE(tok.is_control(4));
  EXPECT_EQ(tok.decode(tok.encode("a<eos>\xC3\xA9", false)), "a<eos>\xC3\xA9");
}

TEST(TokenizerGguf, RejectsInconsistentMetadata) {
  MiniVocab v = mini_vocab(-5, -6);
  EXPECT_THROW(Tokenizer::from_gguf_metadata(v.tokens, v.scores, {1, 1}, nullptr, 2, 1), Error);
  EXPECT_THROW(Tokenizer::from_gguf_metadata(v.tokens, {0.0f}, v.types, nullptr, 2, 1), Error);
  EXPECT_THROW(Tokenizer::from_gguf_metadata(v.tokens, v.scores, v.types, nullptr, 999999, 1), Error);
  v.types[10] = 9;
  EXPECT_THROW(v.build(), Error);
  const std::vector<std::string> bad_merges = {"a zz"};
  EXPECT_THROW(Tokenizer::from_gguf_metadata(v.tokens, v.scores, mini_vocab(-5, -6).types, &bad_merges, 2, 1), Error);
}

TEST(TokenizerGguf, ExplicitMergeListIsUsedInOrder) {
  const MiniVocab v = mini_vocab(-5, -6);  // scores say "ab" first; the merge list says "bc"
  const std::vector<std::string> merges = {"b c", "a b"};
  const Tokenizer tok = Tokenizer::from_gguf_metadata(v.tokens, v.scores, v.types, &merges, 2, 1);
  EXPECT_EQ(texts(tok, tok.encode("abc", false)), (Pieces{"a", "bc"}));
  EXPECT_EQ(tok.merge_count(), 2u);
}

// ---------------------------------------------------------------------------------------------
// The real GGUF, read through the engine's own GGUF reader and tokenizer_from_gguf().

const char* const kModelPath = UNICORN_SOURCE_DIR "/models/gemma-3-270m-q4_k_m.gguf";

TEST(TokenizerGguf, RealGemma3VocabEncodesEveryFixtureCaseLikeHuggingFace) {
  if (!std::filesystem::exists(kModelPath)) GTEST_SKIP() << kModelPath << " not present (setup script downloads it)";
  const auto file = GgufFile::open(kModelPath);
  ASSERT_EQ(file->get_array("tokenizer.ggml.tokens")->size(), 262144u);
  ASSERT_EQ(file->get_array("tokenizer.ggml.merges"), nullptr);  // "llama" model: merges come from scores
  const Tokenizer tok = *tokenizer_from_gguf(*file);
  EXPECT_EQ(tok.merge_count(), 514906u);  // the same merge count as tokenizer.json
  EXPECT_EQ(tok.bos(), 2);
  EXPECT_EQ(tok.eos(), 1);
  EXPECT_EQ(tok.end_of_turn(), 106);

  int mismatches = 0, compared = 0;
  for (const auto& c : fixture_cases()) {
    if (uses_hf_only_token(c.text)) continue;  // id 262144 is not in the GGUF vocabulary (spec §7.4)
    ++compared;
    const auto ids = tok.encode(c.text, false);
    mismatches += ids != c.ids;
    EXPECT_EQ(ids, c.ids) << "text: " << c.text;
  }
  EXPECT_EQ(mismatches, 0);
  EXPECT_GE(compared, 500);
  const auto long_ids = tok.encode(build_long_text(), false);
  EXPECT_EQ(long_ids.size(), long_text_expectation().id_count);
  EXPECT_EQ(fnv1a64_ids(long_ids), long_text_expectation().ids_fnv1a64);
}

}  // namespace
}  // namespace unicorn::tokenizer_test
