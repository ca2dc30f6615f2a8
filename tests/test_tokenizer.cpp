// Gemma 3 tokenizer against Hugging Face `tokenizers` reference ids (tests/fixtures/tokenizer,
// written by tools/gen_tokenizer_fixtures.py) and the real tokenizer.json from ../shared.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tokenizer/streaming.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace unicorn::tokenizer_test {

namespace fs = std::filesystem;

// Shared with test_tokenizer_gguf.cpp and test_tokenizer_chat.cpp.
struct TokenizerCase {
  std::string text;
  std::vector<int32_t> ids;  // HF encode(text, add_special_tokens=False)
};
struct LongTextExpectation {
  std::size_t min_bytes = 0, bytes = 0, id_count = 0;
  uint64_t ids_fnv1a64 = 0;
};
const std::vector<TokenizerCase>& fixture_cases();
const LongTextExpectation& long_text_expectation();
// "<image_soft_token>" (id 262144) is added by HF and absent from 262,144-piece GGUF vocabularies
// (spec §7.4), so GGUF-path checks leave out texts that contain it.
constexpr const char* kImageSoftToken = "<image_soft_token>";
bool uses_hf_only_token(const std::string& text);
std::string build_long_text();
uint64_t fnv1a64_ids(const std::vector<int32_t>& ids);
const Tokenizer& gemma3_hf_tokenizer();

namespace {

constexpr std::size_t kTokenizerJsonBytes = 33'384'568;  // per shared/data/gemma3-tokenizer/README.md

nlohmann::json load_fixture() {
  const std::string path = UNICORN_SOURCE_DIR "/tests/fixtures/tokenizer/cases.json";
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("cannot open fixture " + path);
  return nlohmann::json::parse(in);
}

const nlohmann::json& fixture() {
  static const nlohmann::json j = load_fixture();
  return j;
}

// The tokenizer.json ships xz-compressed beside the repository (../shared). Decompress it once
// into the temp directory; later test processes (ctest runs each test alone) reuse the file.
std::string decompressed_tokenizer_json() {
  const fs::path xz = UNICORN_SOURCE_DIR "/../shared/data/gemma3-tokenizer/tokenizer.json.xz";
  const fs::path target = fs::temp_directory_path() / "unicorn-test-gemma3-tokenizer.json";
  std::error_code ec;
  if (fs::exists(target, ec) && fs::file_size(target, ec) == kTokenizerJsonBytes) return target.string();
  if (!fs::exists(xz)) throw Error("missing " + xz.string() + " (the shared data folder must sit beside the repo)");
  const fs::path partial = target.string() + fmt::format(".{}.part", static_cast<long>(::getpid()));
  const std::string cmd = fmt::format("xz -dc '{}' > '{}'", xz.string(), partial.string());
  if (std::system(cmd.c_str()) != 0) throw Error("failed: " + cmd);
  fs::rename(partial, target);  // atomic: concurrent test processes never see a half-written file
  return target.string();
}

bool is_valid_utf8(const std::string& s) { return to_valid_utf8(s) == s; }

// A literal "▁" (U+2581) in input is the space symbol itself, so it decodes as a space, exactly as
// Hugging Face's decoder does; this is the text decode() must give back.
std::string with_space_symbols_as_spaces(const std::string& text) {
  std::string out;
  for (std::size_t pos = 0; pos < text.size();) {
    if (text.compare(pos, 3, "\xE2\x96\x81") == 0) {
      out += ' ';
      pos += 3;
    } else {
      out += text[pos++];
    }
  }
  return out;
}

}  // namespace

const std::vector<TokenizerCase>& fixture_cases() {
  static const std::vector<TokenizerCase> cases = [] {
    std::vector<TokenizerCase> out;
    for (const auto& c : fixture().at("cases")) out.push_back({c.at("text"), c.at("ids")});
    return out;
  }();
  return cases;
}

const LongTextExpectation& long_text_expectation() {
  static const LongTextExpectation e = [] {
    const auto& j = fixture().at("long_text");
    return LongTextExpectation{j.at("min_bytes"), j.at("bytes"), j.at("id_count"),
                               std::stoull(j.at("ids_fnv1a64").get<std::string>(), nullptr, 16)};
  }();
  return e;
}

bool uses_hf_only_token(const std::string& text) { return text.find(kImageSoftToken) != std::string::npos; }

// Same recipe as tools/gen_tokenizer_fixtures.py.
std::string build_long_text() {
  std::string joined;
  bool first = true;
  for (const auto& c : fixture_cases()) {
    if (uses_hf_only_token(c.text)) continue;
    if (!first) joined += '\n';
    joined += c.text;
    first = false;
  }
  std::string text = joined;
  while (text.size() < long_text_expectation().min_bytes) text += "\n" + joined;
  return text;
}

uint64_t fnv1a64_ids(const std::vector<int32_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int shift = 0; shift < 32; shift += 8) {
      h ^= (u >> shift) & 0xFF;
      h *= 0x100000001B3ull;
    }
  }
  return h;
}

const Tokenizer& gemma3_hf_tokenizer() {
  static const Tokenizer tok = Tokenizer::from_hf_json(decompressed_tokenizer_json());
  return tok;
}

namespace {

TEST(Tokenizer, FixtureHasAtLeastFiveHundredCases) { EXPECT_GE(fixture_cases().size(), 500u); }

TEST(Tokenizer, HfJsonEncodesEveryFixtureCaseLikeHuggingFace) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  int mismatches = 0;
  for (const auto& c : fixture_cases()) {
    const auto ids = tok.encode(c.text, /*add_bos=*/false);
    if (ids != c.ids) ++mismatches;
    EXPECT_EQ(ids, c.ids) << "text: " << nlohmann::json(c.text).dump();
    auto with_bos = c.ids;
    with_bos.insert(with_bos.begin(), 2);
    EXPECT_EQ(tok.encode(c.text, /*add_bos=*/true), with_bos);
  }
  EXPECT_EQ(mismatches, 0);
}

TEST(Tokenizer, HfJsonMatchesReadmeSample) {
  EXPECT_EQ(gemma3_hf_tokenizer().encode("Hello world, this is Gemma 3!", true),
            (std::vector<int32_t>{2, 9259, 1902, 236764, 672, 563, 147224, 236743, 236800, 236888}));
}

TEST(Tokenizer, DecodeRoundTripsEveryFixtureCase) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  for (const auto& c : fixture_cases())
    EXPECT_EQ(tok.decode(tok.encode(c.text, false)), with_space_symbols_as_spaces(c.text));
}

TEST(Tokenizer, EncodesHundredKilobytesExactlyInWellUnderASecond) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  const std::string text = build_long_text();
  ASSERT_EQ(text.size(), long_text_expectation().bytes);
  const auto start = std::chrono::steady_clock::now();
  const auto ids = tok.encode(text, false);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(ids.size(), long_text_expectation().id_count);
  EXPECT_EQ(fnv1a64_ids(ids), long_text_expectation().ids_fnv1a64);
  EXPECT_LT(seconds, 0.5) << "encoding " << text.size() << " bytes took " << seconds << " s";
  EXPECT_EQ(tok.decode(ids), with_space_symbols_as_spaces(text));
  std::cout << "[ info     ] encoded " << text.size() << " bytes into " << ids.size() << " ids in " << seconds * 1e3
            << " ms\n";
}

TEST(Tokenizer, SpecialTokenIdsFollowSpec) {
  const Tokenizer& tok = gemma3_hf_tokenizer();  // spec §1.3
  EXPECT_EQ(tok.bos(), 2);
  EXPECT_EQ(tok.eos(), 1);
  EXPECT_EQ(tok.end_of_turn(), 106);
  EXPECT_EQ(tok.find_token("<start_of_turn>"), 105);
  EXPECT_EQ(tok.find_token("<image_soft_token>"), 262144);
  EXPECT_EQ(tok.vocab_size(), 262145);  // 262,144 pieces + <image_soft_token> added by HF
  EXPECT_EQ(tok.find_token("\n"), 107);
  EXPECT_EQ(tok.find_token("\xE2\x96\x81\xE2\x96\x81"), 138);  // two spaces
  EXPECT_FALSE(tok.find_token("no such piece"));
  EXPECT_EQ(tok.token_text(2), "<bos>");
  EXPECT_TRUE(tok.is_control(2));
  EXPECT_TRUE(tok.is_control(106));
  EXPECT_FALSE(tok.is_control(107));
  EXPECT_FALSE(tok.is_control(9259));
  EXPECT_EQ(tok.merge_count(), 514906u);
}

TEST(Tokenizer, SpecialTokenTextIsMatchedBeforeBpe) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  EXPECT_EQ(tok.encode("<start_of_turn>user\nhi<end_of_turn>", false),
            (std::vector<int32_t>{105, 2364, 107, 2202, 106}));
  // A piece that is merely similar is not special.
  const auto almost = tok.encode("<start_of_turn", false);
  EXPECT_EQ(std::count(almost.begin(), almost.end(), 105), 0);
}

TEST(Tokenizer, DecodeSkipsControlTokensOnRequest) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  const auto ids = tok.encode("<start_of_turn>user\nhi<end_of_turn>", true);
  EXPECT_EQ(tok.decode(ids), "<bos><start_of_turn>user\nhi<end_of_turn>");
  EXPECT_EQ(tok.decode(ids, /*skip_control=*/true), "user\nhi");
}

TEST(Tokenizer, RejectsOutOfRangeIds) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  EXPECT_THROW(tok.decode({1, -1}), Error);
  EXPECT_THROW(tok.decode({tok.vocab_size()}), Error);
  EXPECT_THROW((void)tok.token_text(tok.vocab_size()), Error);
  EXPECT_FALSE(tok.is_control(-5));
}

TEST(Tokenizer, ByteFallbackCoversCharactersOutsideTheVocabulary) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  const auto ids = tok.encode("\xF4\x8F\xBF\xBF", false);  // U+10FFFF
  ASSERT_EQ(ids.size(), 4u);
  EXPECT_EQ(tok.token_text(ids[0]), "<0xF4>");
  EXPECT_EQ(tok.decode(ids), "\xF4\x8F\xBF\xBF");
  // Invalid UTF-8 input still encodes (byte by byte) and decodes to U+FFFD.
  const auto bad = tok.encode(
      "a\xC3"
      "b",
      false);
  EXPECT_EQ(tok.decode(bad),
            "a\xEF\xBF\xBD"
            "b");
}

TEST(StreamDecoder, EmitsOnlyValidUtf8AndConcatenatesToDecode) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  std::vector<int32_t> all;
  for (const auto& c : fixture_cases()) all.insert(all.end(), c.ids.begin(), c.ids.end());
  StreamDecoder stream(tok);
  std::string streamed;
  for (int32_t id : all) {
    const std::string piece = stream.push(id);
    ASSERT_TRUE(is_valid_utf8(piece)) << "after id " << id;
    streamed += piece;
  }
  streamed += stream.flush();
  EXPECT_EQ(streamed, tok.decode(all));
}

TEST(StreamDecoder, HoldsBackSplitCharacterUntilItsLastByte) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  const auto ids = tok.encode("x\xF4\x8F\xBF\xBFy", false);  // x, 4 byte pieces, y
  ASSERT_EQ(ids.size(), 6u);
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(ids[0]), "x");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.push(ids[2]), "");
  EXPECT_EQ(stream.push(ids[3]), "");
  EXPECT_EQ(stream.pending_bytes(), 3u);
  EXPECT_EQ(stream.push(ids[4]), "\xF4\x8F\xBF\xBF");
  EXPECT_EQ(stream.push(ids[5]), "y");
  EXPECT_EQ(stream.flush(), "");
}

TEST(StreamDecoder, FlushTurnsATruncatedCharacterIntoReplacement) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  const auto ids = tok.encode("\xF4\x8F\xBF\xBF", false);
  StreamDecoder stream(tok);
  EXPECT_EQ(stream.push(ids[0]), "");
  EXPECT_EQ(stream.push(ids[1]), "");
  EXPECT_EQ(stream.flush(), "\xEF\xBF\xBD");
  EXPECT_EQ(tok.decode({ids[0], ids[1]}), "\xEF\xBF\xBD");
  // A stray continuation byte is ill-formed at once, nothing is held back.
  StreamDecoder stray(tok);
  EXPECT_EQ(stray.push(*tok.find_token("<0x80>")), "\xEF\xBF\xBD");
  EXPECT_EQ(stray.pending_bytes(), 0u);
}

TEST(StreamDecoder, KeepsPendingBytesWhenGivenABadId) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  const auto ids = tok.encode("\xF4\x8F\xBF\xBF", false);
  StreamDecoder stream(tok);
  stream.push(ids[0]);
  EXPECT_THROW(stream.push(-3), Error);
  std::string text = stream.push(ids[1]);
  text += stream.push(ids[2]);
  text += stream.push(ids[3]);
  EXPECT_EQ(text, "\xF4\x8F\xBF\xBF");
}

TEST(Utf8, ReplacesEachMaximalIllFormedSubpartOnce) {
  // Unicode's best-practice examples: overlong, surrogate, truncated and out-of-range sequences.
  EXPECT_EQ(to_valid_utf8("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(to_valid_utf8("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(to_valid_utf8("\xE2\x82"
                          "A"),
            "\xEF\xBF\xBD"
            "A");
  EXPECT_EQ(to_valid_utf8("\xF4\x90\x80\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  std::string out;
  EXPECT_EQ(append_valid_utf8("ok\xE2\x82", out, /*at_end=*/false), 2u);
  EXPECT_EQ(out, "ok");
}

TEST(Tokenizer, HfJsonLoaderReportsMissingAndMalformedFiles) {
  EXPECT_THROW(Tokenizer::from_hf_json("/nonexistent/tokenizer.json"), Error);
  const fs::path bad =
      fs::temp_directory_path() / fmt::format("unicorn-bad-tokenizer-{}.json", static_cast<long>(::getpid()));
  { std::ofstream(bad) << R"({"model": {"type": "Unigram", "vocab": []}})"; }
  try {
    Tokenizer::from_hf_json(bad.string());
    ADD_FAILURE() << "expected unicorn::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Unigram"), std::string::npos) << e.what();
  }
  fs::remove(bad);
}

}  // namespace
}  // namespace unicorn::tokenizer_test
