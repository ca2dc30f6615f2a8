// unicorn chat: multi-turn chat with the Gemma template. Reads one user message per line from
// stdin (a terminal or a pipe); the KV cache is kept across turns, so history is never
// re-processed: each turn feeds only the new user text.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <random>

#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "runtime/generator.h"
#include "tokenizer/chat_template.h"

namespace unicorn::cli {
namespace {
class ChatCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    add_model_options(sub, mo_, 8192);
    add_sampling_options(sub, sp_);
    seed_opt_ = sub.get_option("--seed");
    sub.add_option("-n,--n-predict", n_predict_, "max tokens per reply (-1: until end of turn)")
        ->check(CLI::Range(int64_t{-1}, int64_t{1} << 30));
    sub.add_option("--system", system_, "system prompt (folded into the first user turn)");
  }

  int run() override {
    if (seed_opt_->count() == 0) sp_.seed = std::random_device{}();
    auto e = open_engine(mo_);
    const Tokenizer& tok = e->tokenizer();
    sp_.n_allowed = tok.vocab_size();
    const bool tty = isatty(STDIN_FILENO) != 0;
    install_interrupt_handler();
    Generator gen(*e, sp_);
    GenerationStats total;
    bool first = true;
    bool eot_in_cache = false;
    std::string line;
    if (tty) fmt::print(stderr, "unicorn chat: type a message, Ctrl-D to quit, Ctrl-C stops a reply\n");
    for (;;) {
      if (tty) {
        fmt::print("> ");
        std::fflush(stdout);
      }
      if (!std::getline(std::cin, line)) break;
      if (trim_whitespace(line).empty()) continue;
      std::string text;
      if (first) {
        std::vector<ChatMessage> msgs;
        if (!system_.empty()) msgs.push_back({"system", system_});
        msgs.push_back({"user", line});
        text = render_chat(msgs, true);
      } else {
        text = render_user_followup(line, eot_in_cache);
      }
      first = false;
      GenerationStats st;
      gen.feed(tok.encode(text, false), st);
      GenerationLimits lim;
      lim.max_tokens = n_predict_;
      clear_interrupted();
      gen.generate(
          lim,
          [](std::string_view s) {
            std::fwrite(s.data(), 1, s.size(), stdout);
            std::fflush(stdout);
          },
          st, &interrupted());
      std::fputs("\n", stdout);
      std::fflush(stdout);
      eot_in_cache = st.stop == StopReason::EndOfTurn;
      total.n_prompt += st.n_prompt;
      total.n_gen += st.n_gen;
      total.prompt_s += st.prompt_s;
      total.gen_s += st.gen_s;
      total.stop = st.stop;
      if (st.stop == StopReason::ContextFull) {
        fmt::print(stderr, "unicorn: the {}-token context is full; restart with a larger -c to continue\n",
                   e->kv().n_ctx());
        break;
      }
    }
    print_summary(total, *e);
    return 0;
  }

 private:
  ModelOptions mo_;
  SamplerParams sp_;
  CLI::Option* seed_opt_ = nullptr;
  int64_t n_predict_ = -1;
  std::string system_;
};
}  // namespace

std::unique_ptr<Command> make_chat_command() { return std::make_unique<ChatCommand>(); }

}  // namespace unicorn::cli
