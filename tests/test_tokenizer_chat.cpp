// Gemma chat template rendering (gemma3-spec.md §1.4).
#include <gtest/gtest.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace unicorn::tokenizer_test {

const Tokenizer& gemma3_hf_tokenizer();  // defined in test_tokenizer.cpp

namespace {

std::string error_of(const std::vector<ChatMessage>& messages) {
  try {
    render_chat(messages, true);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ChatTemplate, SingleUserTurnMatchesSpecExample) {
  EXPECT_EQ(render_chat({{"user", "Hi"}}, true), "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
  EXPECT_EQ(render_chat({{"user", "Hi"}}, false), "<bos><start_of_turn>user\nHi<end_of_turn>\n");
}

TEST(ChatTemplate, SystemMessageFoldsIntoFirstUserTurn) {
  EXPECT_EQ(render_chat({{"system", "Be brief."}, {"user", "Hi"}, {"assistant", "Hello."}, {"user", "Bye"}}, true),
            "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
            "<start_of_turn>model\nHello.<end_of_turn>\n"
            "<start_of_turn>user\nBye<end_of_turn>\n"
            "<start_of_turn>model\n");
  // Like the Jinja template, the system text itself is not trimmed, the user text is.
  EXPECT_EQ(render_chat({{"system", "Be brief. "}, {"user", "  Hi\n"}}, false),
            "<bos><start_of_turn>user\nBe brief. \n\nHi<end_of_turn>\n");
}

TEST(ChatTemplate, ContentIsTrimmedLikeJinja) {
  EXPECT_EQ(render_chat({{"user", " \n\tHi there \xC2\xA0\n"}, {"model", "\xE3\x80\x80ok  "}}, false),
            "<bos><start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\nok<end_of_turn>\n");
  EXPECT_EQ(trim_whitespace("  \xE2\x80\x83x y\xE2\x80\xA8 "), "x y");
  EXPECT_EQ(trim_whitespace("\xE2\x96\x81"), "\xE2\x96\x81");  // "▁" is not whitespace
  EXPECT_EQ(trim_whitespace(" \t\n"), "");
}

TEST(ChatTemplate, RejectsBrokenAlternationWithAClearError) {
  EXPECT_NE(error_of({{"user", "a"}, {"user", "b"}}).find("alternate"), std::string::npos);
  EXPECT_NE(error_of({{"assistant", "a"}}).find("alternate"), std::string::npos);
  EXPECT_NE(error_of({{"system", "s"}, {"assistant", "a"}}).find("alternate"), std::string::npos);
  EXPECT_NE(error_of({{"user", "a"}, {"system", "s"}}).find("system"), std::string::npos);
  EXPECT_NE(error_of({{"user", "a"}, {"tool", "t"}}).find("unknown role 'tool'"), std::string::npos);
  EXPECT_NE(error_of({{"system", "s"}}).find("followed by a user"), std::string::npos);
  EXPECT_NE(error_of({}).find("no messages"), std::string::npos);
}

TEST(ChatTemplate, FollowupTurnContinuesARenderedConversation) {
  const std::string first = render_chat({{"user", "Hi"}}, true);
  const std::string reply = "Hello!";
  EXPECT_EQ(first + reply + render_user_followup("  How are you? "),
            render_chat({{"user", "Hi"}, {"assistant", reply}, {"user", "How are you?"}}, true));
  EXPECT_EQ(render_user_followup("x", /*end_of_turn_in_cache=*/true),
            "\n<start_of_turn>user\nx<end_of_turn>\n<start_of_turn>model\n");
}

TEST(ChatTemplate, RenderedTextEncodesWithExactlyOneBos) {
  const Tokenizer& tok = gemma3_hf_tokenizer();
  const auto ids = tok.encode(render_chat({{"user", "Hi"}}, true), /*add_bos=*/false);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], tok.bos());
  EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.bos()), 1);
  EXPECT_EQ(ids[1], *tok.find_token("<start_of_turn>"));
  EXPECT_EQ(ids, (std::vector<int32_t>{2, 105, 2364, 107, 10979, 106, 107, 105, 4368, 107}));
}

}  // namespace
}  // namespace unicorn::tokenizer_test
