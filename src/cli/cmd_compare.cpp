// unicorn compare: perplexity, KL divergence, top-1 agreement and per-tensor error of a quantized
// model against its reference (runtime/compare.h, docs/QUANTIZATION.md).
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/error.h"
#include "runtime/compare.h"

namespace unicorn::cli {
namespace {
class CompareCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("reference", o_.ref_path, "reference model (GGUF or HF directory)")->required();
    sub.add_option("quantized", o_.quant_path, "quantized model")->required();
    sub.add_option("-f,--file", o_.text_path, "text to evaluate on")->required()->check(CLI::ExistingFile);
    sub.add_option("-c,--ctx-size", o_.n_ctx, "tokens per chunk")->check(CLI::Range(int64_t{4}, int64_t{1} << 20));
    sub.add_option("--chunks", o_.max_chunks, "evaluate at most this many chunks (0: all)")
        ->check(CLI::Range(0, 1 << 30));
    sub.add_option("-t,--threads", o_.threads, "CPU threads (default: all cores)")->check(CLI::Range(0, 1024));
    sub.add_option("--format", format_, "output format")->check(CLI::IsMember({"md", "json"}));
    sub.add_option("--json-out", json_out_, "also write the JSON report to this file");
    sub.add_flag("--no-tensors", no_tensors_, "skip the per-tensor error table");
  }

  int run() override {
    o_.tensor_errors = !no_tensors_;
    const CompareReport r =
        compare_models(o_, [](int64_t i, int64_t n) { fmt::print(stderr, "compare: chunk {}/{}\n", i, n); });
    const nlohmann::json j = compare_json(r);
    if (format_ == "json")
      fmt::print("{}\n", j.dump(2));
    else
      fmt::print("{}", compare_markdown(r));
    if (!json_out_.empty()) {
      std::ofstream f(json_out_);
      if (!(f << j.dump(2) << "\n")) fail("{}: cannot write the JSON report", json_out_);
    }
    return 0;
  }

 private:
  CompareOptions o_;
  std::string format_ = "md", json_out_;
  bool no_tensors_ = false;
};
}  // namespace

std::unique_ptr<Command> make_compare_command() { return std::make_unique<CompareCommand>(); }

}  // namespace unicorn::cli
