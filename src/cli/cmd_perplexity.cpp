// unicorn perplexity: computed as llama-perplexity does (see runtime/perplexity.h, docs/PERPLEXITY.md).
#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "runtime/perplexity.h"

namespace unicorn::cli {
namespace {
class PerplexityCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    add_model_options(sub, mo_, 512);
    sub.add_option("-f,--file", file_, "text file")->required()->check(CLI::ExistingFile);
    sub.add_option("--chunks", chunks_, "evaluate at most this many chunks (0: all)")->check(CLI::Range(0, 1 << 30));
  }

  int run() override {
    mo_.logit_rows = mo_.batch;  // every token of a batch is scored: its logits come back together
    auto e = open_engine(mo_);
    const Tokenizer& tok = e->tokenizer();
    std::string text = read_file(file_);
    if (!text.empty() && text.back() == '\n') text.pop_back();  // llama's -f drops one trailing newline
    // llama-perplexity tokenizes the whole text with the model's add-BOS setting (true for Gemma).
    const std::vector<int32_t> tokens = tok.encode(text, true);
    const int64_t n_ctx = e->kv().n_ctx();
    fmt::print(stderr, "perplexity: {} tokens, chunks of {} (scoring the second half of each)\n", tokens.size(), n_ctx);
    PerplexityResult r =
        perplexity(e->model(), e->kv(), tokens, n_ctx, tok.bos(), mo_.batch, chunks_,
                   [](int64_t i, int64_t n, double ppl) { fmt::print(stderr, "[{}/{}] {:.4f}\n", i, n, ppl); });
    fmt::print("Final estimate: PPL = {:.4f} over {} chunks ({} scored tokens, mean NLL {:.6f})\n", r.ppl, r.n_chunks,
               r.n_scored, r.mean_nll);
    return 0;
  }

 private:
  ModelOptions mo_;
  std::string file_;
  int64_t chunks_ = 0;
};
}  // namespace

std::unique_ptr<Command> make_perplexity_command() { return std::make_unique<PerplexityCommand>(); }

}  // namespace unicorn::cli
