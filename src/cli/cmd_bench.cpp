// unicorn bench: prompt processing (ppN) and generation (tgN) throughput, markdown and JSON.
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/common.h"
#include "core/error.h"
#include "model/loader.h"
#include "model/synthetic.h"
#include "runtime/bench.h"
#include "runtime/model_writer.h"
#ifdef UNICORN_HAVE_CUDA
#include "backends/cuda/cuda_device.h"
#endif

namespace unicorn::cli {
namespace {
class BenchCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    add_model_options(sub, mo_, 0);
    sub.add_option("-p,--n-prompt", n_prompt_, "prompt tokens for the pp test (0: skip)")
        ->check(CLI::Range(0, 1 << 20));
    sub.add_option("-n,--n-gen", n_gen_, "generated tokens for the tg test (0: skip)")->check(CLI::Range(0, 1 << 20));
    sub.add_option("-d,--depth", depth_, "tokens already in the context before each pp and tg test (repeatable)")
        ->check(CLI::Range(0, 1 << 24));
    sub.add_option("-r,--repetitions", reps_, "repetitions of each test")->check(CLI::Range(1, 1000));
    sub.add_option("-P,--parallel", parallel_,
                   "sequences decoded together in each tg test (batched decode: one forward call of N tokens per "
                   "step, as a server with N requests; the test is named tgN xP and counts every token)")
        ->check(CLI::Range(1, 64));
    sub.add_option("-o,--output", format_, "output format")->check(CLI::IsMember({"md", "json"}));
    sub.add_option("--synthetic", synthetic_, "benchmark random valid weights of a real size instead of a file")
        ->check(CLI::IsMember({"270m", "1b", "4b", "12b", "27b"}));
    sub.add_option("--type", scheme_,
                   "weight scheme for --synthetic: q4_0 (Q6_K embedding), q4_mix, q4_small, q8_0, bf16, f16, q4_k_m, "
                   "q5_k_m (the tensor types of published Q4_K_M / Q5_K_M files)");
    sub.add_option("--json-file", json_file_, "also write the JSON results to this file");
    sub.add_option("--write-gguf", write_gguf_, "with --synthetic: write the weights to this GGUF file and exit");
    sub.add_option("--tokenizer", tokenizer_dir_,
                   "with --write-gguf: also write the tokenizer.* metadata of this Hugging Face tokenizer directory "
                   "(tokenizer.json), so that other engines (llama.cpp) can load the file");
    sub.add_flag("--no-roofline", no_roofline_,
                 "skip the copy-bandwidth probe that gives each tg test as a fraction of the roofline");
  }

  int run() override {
    if (depth_.empty()) depth_ = {0};
    int64_t max_depth = 0;
    for (int d : depth_) max_depth = std::max<int64_t>(max_depth, d);
    const int64_t longest = std::max<int64_t>(n_prompt_, n_gen_), need = max_depth + longest;  // the deepest test
    if (mo_.ctx <= 0) mo_.ctx = need + 16;
    if (mo_.ctx < need)
      fail("-c {} is too small for these tests: depth {} + {} tokens needs {} positions", mo_.ctx, max_depth, longest,
           need);
    mo_.n_seq = parallel_;
    if (!synthetic_.empty()) {
      if (!mo_.model.empty()) fail("pass either -m or --synthetic, not both");
      mo_.model = "synthetic:" + synthetic_ + ":" + scheme_;
    }
    if (!tokenizer_dir_.empty() && write_gguf_.empty()) fail("--tokenizer is for --write-gguf only");
    if (!write_gguf_.empty()) {
      if (synthetic_.empty()) fail("--write-gguf needs --synthetic (a model file is already a file)");
      // The tokenizer first (the size's vocabulary is known without its weights): a bad file is
      // reported before a large model is generated.
      std::vector<MetadataEntry> extra;
      if (!tokenizer_dir_.empty()) {
        extra = tokenizer_metadata_from_hf(tokenizer_dir_, synthetic_config(synthetic_).vocab_size);
        if (extra.empty()) fail("--tokenizer {}: no tokenizer.json there (or not readable)", tokenizer_dir_);
      }
      // The scheme's llama.cpp file type, which llama.cpp prints as the model's type (without it,
      // a mix of types reads as "all F32").
      if (const auto ft = llama_file_type(scheme_))
        extra.push_back({"general.file_type", {GgufValueType::U32, int64_t{*ft}}});
      const LoadedModel m = load_model(mo_.model);
      fmt::print(stderr, "writing {} ({}) to {}\n", m.weights->source, format_bytes(m.weights->weight_bytes()),
                 write_gguf_);
      write_model_gguf(*m.weights, write_gguf_, std::move(extra));
      fmt::print(stderr, "wrote {}\n", write_gguf_);
      return 0;
    }
    auto e = open_engine(mo_);
    fmt::print(stderr, "bench: {} ({}), {} read per generated token\n", e->weights().source,
               format_bytes(e->memory().weights), format_bytes(bytes_per_token(e->weights())));
    const Gemma3Config& c = e->config();
    std::vector<BenchCase> cases;
    // At each depth a prompt test and a generation test, in llama-bench's order and names.
    for (int d : depth_) {
      const std::string at = d ? fmt::format(" @ d{}", d) : "";
      if (n_prompt_ > 0) cases.push_back({fmt::format("pp{}{}", n_prompt_, at), n_prompt_, 0, d});
      const std::string seqs = parallel_ > 1 ? fmt::format(" x{}", parallel_) : "";
      if (n_gen_ > 0) cases.push_back({fmt::format("tg{}{}{}", n_gen_, seqs, at), 0, n_gen_, d, parallel_});
    }
    nlohmann::json out = nlohmann::json::array();
    const std::string backend = e->backends()[0]->name();
    const int threads = backend == "cpu" ? mo_.threads : 0;
    if (format_ == "md") {
      fmt::print("| model | size | params | backend | threads | test | t/s |\n");
      fmt::print("| --- | ---: | ---: | --- | ---: | --- | ---: |\n");
    }
    // Device memory in use after each test (cudaMemGetInfo: the CUDA context included).
    auto gpu_used = [&]() -> size_t {
#ifdef UNICORN_HAVE_CUDA
      if (backend.starts_with("cuda")) return cuda_used_memory(*e->backends()[0]);
#endif
      return 0;
    };
    std::vector<std::pair<std::string, size_t>> used;
    for (const BenchCase& bc : cases) {
      BenchResult r = run_bench(e->model(), e->kv(), bc, reps_, mo_.batch);
      used.emplace_back(bc.name, gpu_used());
      const std::string model_name = fmt::format("gemma3 {}L h{}", c.n_layers, c.hidden);
      if (format_ == "md") {
        fmt::print("| {} | {} | {:.1f} M | {} | {} | {} | {:.2f} ± {:.2f} |\n", model_name,
                   format_bytes(e->memory().weights), static_cast<double>(e->weights().param_count()) / 1e6, backend,
                   threads ? std::to_string(threads) : std::string("all"), bc.name, r.mean(), r.stddev());
        std::fflush(stdout);
      }
      out.push_back({{"model", e->weights().source},
                     {"test", bc.name},
                     {"n_prompt", bc.n_prompt},
                     {"n_gen", bc.n_gen},
                     {"depth", bc.n_depth},
                     {"n_seq", bc.n_seq},
                     {"backend", backend},
                     {"threads", threads},
                     {"weight_bytes", e->memory().weights},
                     {"bytes_per_token", bytes_per_token(e->weights())},
                     {"tok_per_s", r.tok_per_s},
                     {"mean", r.mean()},
                     {"stddev", r.stddev()},
                     {"gpu_memory_used", used.back().second}});
    }
    report_roofline(*e, out);
    if (format_ == "md" && !used.empty() && used.back().second > 0) {
      const MemoryEstimate& m = e->memory();
      fmt::print("\nGPU memory in use (CUDA context included), context {} tokens, batch {}:", e->kv().n_ctx(),
                 mo_.batch);
      // GiB as elsewhere, and decimal GB (how memory targets and cards are usually stated).
      for (const auto& [name, bytes] : used)
        fmt::print(" after {} {} ({:.2f} GB);", name, format_bytes(bytes), static_cast<double>(bytes) / 1e9);
      size_t start = 0;
#ifdef UNICORN_HAVE_CUDA
      start = cuda_start_used_memory(*e->backends()[0]);
#endif
      fmt::print("\nin use before the engine allocated anything (CUDA context): {}\n", format_bytes(start));
      fmt::print("estimate without the CUDA context: weights {} + KV cache {} + scratch {} = {}\n",
                 format_bytes(m.weights), format_bytes(m.kv), format_bytes(m.scratch), format_bytes(m.total()));
    }
    if (format_ == "json") fmt::print("{}\n", out.dump(2));
    if (!json_file_.empty()) {
      std::ofstream f(json_file_);
      if (!f) fail("{}: cannot open for writing", json_file_);
      f << out.dump(2) << "\n";
    }
    return 0;
  }

 private:
  // Decode at batch 1 reads every weight once per token, so its ceiling is the device's copy
  // bandwidth (bytes read + written per second, measured now) over the bytes read per token.
  // Each tg test gets its fraction of that ceiling; the JSON entries get the same fields.
  void report_roofline(Engine& e, nlohmann::json& out) const {
    bool any_tg = false;
    for (const auto& r : out) any_tg = any_tg || r["n_gen"].get<int64_t>() > 0;
    if (no_roofline_ || !any_tg) return;
    if (e.backends().size() != 1) {
      if (format_ == "md") fmt::print("\nroofline: left out (the model spans several devices)\n");
      return;
    }
    Backend& b = *e.backends()[0];
    constexpr size_t kProbe = size_t{256} << 20;
    const double bw = b.copy_bandwidth(kProbe);
    const size_t per_token = bytes_per_token(e.weights());
    if (bw <= 0.0 || per_token == 0) {
      if (format_ == "md") fmt::print("\nroofline: left out ({} could not hold the 2 x 256 MiB probe)\n", b.name());
      return;
    }
    const double ceiling = bw / static_cast<double>(per_token);
    if (format_ == "md")
      fmt::print(
          "\nroofline: {} copies {:.1f} GB/s (read + written, 2 x 256 MiB, best of 3); {} read per token -> at "
          "most {:.1f} tok/s\n",
          b.name(), bw / 1e9, format_bytes(per_token), ceiling);
    // A batched test (tgN xS) reads the weights once per step of S tokens: its fraction is that of
    // its steps per second.
    for (auto& r : out) {
      if (r["n_gen"].get<int64_t>() == 0) continue;
      const int n_seq = r["n_seq"].get<int>();
      const double fraction = r["mean"].get<double>() / n_seq / ceiling;
      r["copy_bandwidth_gbps"] = bw / 1e9;
      r["roofline_tok_per_s"] = ceiling;
      r["roofline_fraction"] = fraction;
      if (format_ == "md")
        fmt::print("  {}: {:.1f} % of the roofline{}\n", r["test"].get<std::string>(), 100.0 * fraction,
                   n_seq > 1 ? fmt::format(" (steps of {} tokens)", n_seq) : "");
    }
  }

  ModelOptions mo_;
  int n_prompt_ = 512, n_gen_ = 128, reps_ = 3, parallel_ = 1;
  std::vector<int> depth_;
  std::string format_ = "md", json_file_;
  std::string synthetic_, scheme_ = "q4_0", write_gguf_, tokenizer_dir_;
  bool no_roofline_ = false;
};
}  // namespace

std::unique_ptr<Command> make_bench_command() { return std::make_unique<BenchCommand>(); }

}  // namespace unicorn::cli
