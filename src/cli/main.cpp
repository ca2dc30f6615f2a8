// unicorn: one binary for every front end. Subcommands live in cmd_*.cpp.
#include <cstdio>
#include <memory>
#include <vector>

#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"

int main(int argc, char** argv) {
  using namespace unicorn::cli;
  CLI::App app{"unicorn: a Gemma 3 inference engine"};
  app.require_subcommand(1);
  struct Entry {
    const char* name;
    const char* help;
    std::unique_ptr<Command> cmd;
    CLI::App* sub = nullptr;
  };
  std::vector<Entry> cmds;
  cmds.push_back({"run", "generate text from a prompt", make_run_command()});
  cmds.push_back({"chat", "multi-turn chat with the Gemma chat template", make_chat_command()});
  cmds.push_back({"info", "model architecture, tensor types and memory estimate", make_info_command()});
  cmds.push_back({"bench", "prompt-processing and generation throughput", make_bench_command()});
  cmds.push_back({"perplexity", "perplexity of a text file (llama-perplexity rules)", make_perplexity_command()});
  cmds.push_back({"check", "list compute devices and the backend run would choose", make_check_command()});
  cmds.push_back({"quantize", "convert/quantize a model to GGUF under a preset", make_quantize_command()});
  cmds.push_back({"compare", "quality of a quantized model against its reference", make_compare_command()});
  for (auto& c : cmds) {
    c.sub = app.add_subcommand(c.name, c.help);
    c.cmd->setup(*c.sub);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    for (auto& c : cmds)
      if (c.sub->parsed()) return c.cmd->run();
  } catch (const unicorn::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "unicorn: error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    fmt::print(stderr, "unicorn: error: out of memory\n");
    return 1;
  }
  return 0;
}
