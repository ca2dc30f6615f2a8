// unicorn info: architecture, sizes, tensor types and a memory estimate for a context length.
#include <map>

#include <fmt/format.h>

#include "cli/common.h"
#include "runtime/kv_cache.h"

namespace unicorn::cli {
namespace {
class InfoCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    sub.add_option("-m,--model", model_, "GGUF file or Hugging Face directory (default: the bundled Gemma 3 270M)");
    sub.add_option("-c,--ctx-size", ctx_, "context length for the memory estimate (0: trained maximum)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
    sub.add_option("--kv-type", kv_type_, "KV cache element type")->check(CLI::IsMember({"f16", "f32"}));
  }

  int run() override {
    const std::string path = resolve_model_path(model_);
    LoadedModel lm = load_model(path);
    const ModelWeights& w = *lm.weights;
    const Gemma3Config& c = w.config;
    const int64_t ctx = ctx_ > 0 ? ctx_ : c.context_length;
    const GgmlType kvt = kv_type_ == "f32" ? GgmlType::F32 : GgmlType::F16;
    fmt::print("model:      {} ({})\n", w.source, w.format);
    fmt::print("arch:       gemma3\n{}\n", c.describe());
    std::map<std::string, std::pair<int, size_t>> by_type;
    int64_t params = 0;
    auto count = [&](const WeightTensor& t) {
      auto& e = by_type[std::string(type_name(t.type))];
      e.first++;
      e.second += t.nbytes();
      params += t.rows * t.cols;
    };
    count(w.tok_embd);
    count(w.output_norm);
    for (const auto& L : w.layers)
      for (const WeightTensor* t : L.all()) count(*t);
    fmt::print("parameters: {:.1f} M ({:.2f} bits/weight)\n", static_cast<double>(params) / 1e6,
               8.0 * static_cast<double>(w.weight_bytes()) / static_cast<double>(params));
    fmt::print("tensor types (norms shown as F32 after loading):\n");
    for (const auto& [name, e] : by_type)
      fmt::print("  {:5} {:4} tensors {:>12}\n", name, e.first, format_bytes(e.second));
    if (!w.skipped.empty())
      fmt::print("skipped (not text): {} tensors, e.g. {}\n", w.skipped.size(), w.skipped.front());
    fmt::print("tokenizer:  {}\n",
               lm.tokenizer ? fmt::format("{} tokens from {}", lm.tokenizer->vocab_size(), lm.tokenizer_source)
                            : std::string("none"));
    const size_t kv = KvCache::estimate_bytes(c, 1, ctx, kvt);
    const MemoryEstimate m = estimate_memory(w, ctx, 1, kvt, 512);
    fmt::print("memory at context {} ({} KV): weights {} + KV {} + scratch {} = {}\n", ctx, kv_type_,
               format_bytes(m.weights), format_bytes(kv), format_bytes(m.scratch), format_bytes(m.total()));
    fmt::print("KV cache: {} global layers keep {} positions, {} local layers keep {} (sliding window)\n",
               c.n_global_layers(), ctx, c.n_layers - c.n_global_layers(), std::min(ctx, c.sliding_window));
    return 0;
  }

 private:
  std::string model_;
  int64_t ctx_ = 0;
  std::string kv_type_ = "f16";
};
}  // namespace

std::unique_ptr<Command> make_info_command() { return std::make_unique<InfoCommand>(); }

}  // namespace unicorn::cli
