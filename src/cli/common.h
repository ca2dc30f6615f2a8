// Options and helpers shared by the unicorn subcommands.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace unicorn::cli {

struct ModelOptions {
  std::string model;
  int threads = 0;
  int64_t ctx = 4096;
  int64_t batch = 512;
  int64_t logit_rows = 1;  // set by commands that ask for many logit rows per call (EngineOptions)
  int n_seq = 1;           // sequences the KV cache holds (set by commands that decode several)
  std::string kv_type = "f16";
  std::string precision = "fast";
  std::string device = "auto";
  int64_t gpu_layers = -1;
  std::string gpu_memory;
};

void add_model_options(CLI::App& app, ModelOptions& o, int64_t default_ctx = 4096);
void add_sampling_options(CLI::App& app, SamplerParams& s);
// Resolves the default model (models/gemma-3-270m-q4_k_m.gguf beside the repo or the binary,
// or $UNICORN_MODEL) when -m is not given.
std::string resolve_model_path(const std::string& given);
std::unique_ptr<Engine> open_engine(const ModelOptions& o);

// Ctrl-C handling: the first SIGINT sets the flag (generation stops cleanly and prints its
// summary); a second one exits at once.
void install_interrupt_handler();
const std::atomic<bool>& interrupted();
void clear_interrupted();

std::string read_file(const std::string& path);

// A subcommand: registers its options on its CLI11 sub-app, then runs after parsing.
class Command {
 public:
  virtual ~Command() = default;
  virtual void setup(CLI::App& sub) = 0;
  virtual int run() = 0;
};

std::unique_ptr<Command> make_run_command();
std::unique_ptr<Command> make_chat_command();
std::unique_ptr<Command> make_info_command();
std::unique_ptr<Command> make_bench_command();
std::unique_ptr<Command> make_perplexity_command();
std::unique_ptr<Command> make_check_command();
std::unique_ptr<Command> make_quantize_command();
std::unique_ptr<Command> make_compare_command();

// Prints the one-line summary after generation (to stderr, so stdout stays the text).
void print_summary(const GenerationStats& st, const Engine& e);
}  // namespace unicorn::cli
