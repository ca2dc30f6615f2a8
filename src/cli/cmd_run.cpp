// unicorn run: prompt in, streamed text out, then a one-line summary.
#include <cstdio>
#include <random>

#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "runtime/generator.h"
#include "tokenizer/chat_template.h"

namespace unicorn::cli {

void print_summary(const GenerationStats& st, const Engine& e) {
  fmt::print(stderr,
             "\n[prompt {} tok, {:.1f} tok/s | generated {} tok, {:.1f} tok/s | stop: {} | memory: weights {}, "
             "KV {}]\n",
             st.n_prompt, st.prompt_tps(), st.n_gen, st.gen_tps(), stop_reason_text(st.stop),
             format_bytes(e.memory().weights), format_bytes(e.kv().bytes()));
}

namespace {
class RunCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    add_model_options(sub, mo_);
    add_sampling_options(sub, sp_);
    seed_opt_ = sub.get_option("--seed");
    sub.add_option("-p,--prompt", prompt_, "prompt text");
    sub.add_option("-f,--file", file_, "read the prompt from a file")->check(CLI::ExistingFile);
    sub.add_option("-n,--n-predict", n_predict_, "tokens to generate (-1: until a stop or the context end)")
        ->check(CLI::Range(int64_t{-1}, int64_t{1} << 30));
    sub.add_option("--stop", stops_, "stop string (repeatable)");
    sub.add_flag("--chat-template", chat_, "wrap the prompt in the Gemma chat template (one user turn)");
    sub.add_flag("--no-bos", no_bos_, "do not add <bos> before the prompt");
  }

  int run() override {
    if (!file_.empty()) prompt_ = read_file(file_);
    if (prompt_.empty()) fail("no prompt: pass -p TEXT or -f FILE");
    if (seed_opt_->count() == 0) sp_.seed = std::random_device{}();
    auto e = open_engine(mo_);
    const Tokenizer& tok = e->tokenizer();
    sp_.n_allowed = tok.vocab_size();
    std::vector<int32_t> ids;
    if (chat_) {
      ids = tok.encode(render_chat({{"user", prompt_}}, true), false);  // the template holds <bos>
    } else {
      ids = tok.encode(prompt_, !no_bos_);
    }
    install_interrupt_handler();
    Generator gen(*e, sp_);
    GenerationStats st;
    gen.feed(ids, st);
    if (!chat_) {
      std::fwrite(prompt_.data(), 1, prompt_.size(), stdout);
    }
    std::fflush(stdout);
    GenerationLimits lim;
    lim.max_tokens = n_predict_;
    lim.stop_strings = stops_;
    gen.generate(
        lim,
        [](std::string_view s) {
          std::fwrite(s.data(), 1, s.size(), stdout);
          std::fflush(stdout);
        },
        st, &interrupted());
    std::fputs("\n", stdout);
    print_summary(st, *e);
    if (st.stop == StopReason::ContextFull)
      fmt::print(stderr, "unicorn: generation stopped at the end of the {}-token context (raise -c for more)\n",
                 e->kv().n_ctx());
    return 0;
  }

 private:
  ModelOptions mo_;
  SamplerParams sp_;
  CLI::Option* seed_opt_ = nullptr;
  std::string prompt_, file_;
  int64_t n_predict_ = 256;
  std::vector<std::string> stops_;
  bool chat_ = false, no_bos_ = false;
};
}  // namespace

std::unique_ptr<Command> make_run_command() { return std::make_unique<RunCommand>(); }

}  // namespace unicorn::cli
