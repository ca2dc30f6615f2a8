// unicorn quantize: HF directory or GGUF -> GGUF under a preset (docs/QUANTIZATION.md).
#include <unistd.h>

#include <chrono>
#include <map>

#include <fmt/format.h>

#include "cli/common.h"
#include "core/error.h"
#include "quant/codec.h"
#include "runtime/calibrate.h"
#include "runtime/quantize_pipeline.h"

namespace unicorn::cli {
namespace {

std::string gb(uint64_t bytes) {
  return fmt::format("{:.3f} GB ({:.3f} GiB)", static_cast<double>(bytes) / 1e9,
                     static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
}

std::string shape_text(const std::vector<int64_t>& ne) {
  std::string s;
  for (int64_t d : ne) s += (s.empty() ? "" : " x ") + std::to_string(d);
  return s;
}

// Per (role, type): how many tensors, elements and bytes; then the totals.
void print_plan(const QuantPlan& p, bool per_tensor, const char* note) {
  fmt::print("## preset {}{}\n\n", p.preset, note);
  if (per_tensor) {
    fmt::print("| tensor | ne | type | bytes | why |\n|---|---|---|---:|---|\n");
    for (const auto& t : p.tensors)
      fmt::print("| {} | {} | {} | {} | {} |\n", t.name, shape_text(t.ne), type_name(t.choice.type), t.bytes,
                 t.choice.why);
    fmt::print("\n");
  }
  struct Group {
    int64_t count = 0, elements = 0;
    uint64_t bytes = 0;
  };
  std::map<std::pair<std::string, std::string>, Group> groups;
  for (const auto& t : p.tensors) {
    std::string role = t.name;
    if (role.rfind("blk.", 0) == 0) role = "blk.*." + role.substr(role.find('.', 4) + 1);
    Group& g = groups[{role, std::string(type_name(t.choice.type))}];
    ++g.count;
    g.elements += t.n_elements;
    g.bytes += t.bytes;
  }
  fmt::print("| tensors | type | count | elements | bytes |\n|---|---|---:|---:|---:|\n");
  for (const auto& [k, g] : groups)
    fmt::print("| {} | {} | {} | {} | {} |\n", k.first, k.second, g.count, g.elements, g.bytes);
  fmt::print(
      "\n| total | value |\n|---|---:|\n| weights | {} |\n| tensor bytes | {} |\n| file bytes | {} = {} |\n"
      "| bits/weight | {:.4f} |\n\n",
      p.n_elements, p.tensor_bytes, p.file_bytes, gb(p.file_bytes), p.bits_per_weight());
}

// A progress bar with ETA on a terminal, one line per tensor when stderr is a pipe or file.
class ProgressReporter {
 public:
  ProgressReporter() : tty_(::isatty(STDERR_FILENO) != 0), start_(Clock::now()) {}
  void operator()(const QuantizeProgress& p) {
    const double elapsed = std::chrono::duration<double>(Clock::now() - start_).count();
    const double frac = static_cast<double>(p.done_elements) / static_cast<double>(p.total_elements);
    const double eta = frac > 0 ? elapsed * (1 - frac) / frac : 0;
    if (!tty_) {
      if (p.tensor_index != last_tensor_) {
        last_tensor_ = p.tensor_index;
        fmt::print(stderr, "quantize: [{}/{}] {} -> {} ({:.0f}%, {:.0f}s elapsed, ETA {:.0f}s)\n", p.tensor_index + 1,
                   p.n_tensors, p.tensor->name, type_name(p.tensor->choice.type), 100 * frac, elapsed, eta);
      }
      return;
    }
    if (elapsed - last_draw_ < 0.1 && p.done_elements < p.total_elements) return;
    last_draw_ = elapsed;
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    fmt::print(stderr, "\r[{}{}] {:5.1f}% {:4.0f}s ETA {:4.0f}s [{}/{}] {:<32.32}", std::string(filled, '#'),
               std::string(kWidth - filled, '.'), 100 * frac, elapsed, eta, p.tensor_index + 1, p.n_tensors,
               p.tensor->name);
    if (p.done_elements == p.total_elements) fmt::print(stderr, "\n");
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool tty_;
  Clock::time_point start_;
  double last_draw_ = -1;
  int64_t last_tensor_ = -1;
};

class QuantizeCommand final : public Command {
 public:
  void setup(CLI::App& sub) override {
    std::string presets;
    for (const auto& p : quant_presets()) presets += fmt::format("\n  {:9} {}", p.name, p.summary);
    sub.add_option("input", in_, "HF checkpoint directory (BF16/F16/F32 safetensors) or GGUF file");
    sub.add_option("output", out_, "output GGUF file");
    sub.add_option("--preset", preset_, "quantization preset:" + presets + "\n  (all: every preset, --plan-only)");
    sub.add_option("--override", overrides_,
                   "REGEX=TYPE: tensors whose GGUF name matches get TYPE (repeatable; "
                   "the last matching rule wins)");
    sub.add_option("--imatrix", imatrix_in_, "importance matrix file to weight the rounding")->check(CLI::ExistingFile);
    sub.add_option("--calibrate", calib_text_, "compute the importance matrix by running the input over this text")
        ->check(CLI::ExistingFile);
    sub.add_option("--imatrix-out", imatrix_out_, "save the computed importance matrix here");
    sub.add_option("--calib-ctx", calib_ctx_, "tokens per calibration chunk")->check(CLI::Range(8, 1 << 20));
    sub.add_option("--calib-chunks", calib_chunks_, "calibration chunks (0: the whole text)")
        ->check(CLI::Range(0, 1 << 30));
    sub.add_option("-t,--threads", threads_, "threads (default: all cores)")->check(CLI::Range(0, 1024));
    sub.add_flag("--plan-only", plan_only_,
                 "print which type each tensor gets and the exact output size; write nothing");
    sub.add_option("--synthetic", synthetic_,
                   "plan for a published size's shapes instead of an input "
                   "(270m, 1b, 4b, 12b, 27b); implies --plan-only");
    sub.add_flag("--per-tensor", per_tensor_, "with --plan-only: one row per tensor");
  }

  int run() override {
    if (!synthetic_.empty()) plan_only_ = true;
    std::vector<TypeOverride> overrides;
    for (const auto& s : overrides_) overrides.push_back(parse_override(s));
    if (plan_only_) return plan(overrides);
    if (in_.empty()) fail("quantize: no input given");
    if (!imatrix_in_.empty() && !calib_text_.empty()) fail("quantize: give --imatrix or --calibrate, not both");
    if (!imatrix_out_.empty() && calib_text_.empty()) fail("quantize: --imatrix-out needs --calibrate TEXT");
    if (out_.empty() && imatrix_out_.empty()) fail("quantize: no output file given");
    if (!out_.empty() && preset_.empty()) fail("quantize: --preset is required (see --help)");
    if (!out_.empty()) QuantPolicy(preset_, {}, 1);  // reject a bad preset before any long work

    std::optional<ImportanceMatrix> im;
    if (!imatrix_in_.empty()) im = ImportanceMatrix::load(imatrix_in_);
    if (!calib_text_.empty()) {
      const auto t0 = std::chrono::steady_clock::now();
      im = calibrate({in_, calib_text_, calib_ctx_, calib_chunks_, threads_}, [&](int64_t i, int64_t n) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        fmt::print(stderr, "calibrate: chunk {}/{} ({:.0f}s)\n", i, n, s);
      });
      fmt::print(stderr, "calibrate: importance of {} weights from {} chunks of {} tokens\n", im->size(), im->chunks,
                 calib_ctx_);
      if (!imatrix_out_.empty()) {
        im->save(imatrix_out_);
        fmt::print(stderr, "calibrate: wrote {}\n", imatrix_out_);
      }
    }
    if (out_.empty()) return 0;

    auto src = QuantSource::open(in_);
    if (src->is_quantized())
      fmt::print(stderr,
                 "warning: {} is already quantized; its tensors are decoded and quantized again, which "
                 "adds error on top of the first quantization\n",
                 in_);
    QuantizeOptions o;
    o.output = out_;
    o.preset = preset_;
    o.overrides = std::move(overrides);
    o.imatrix = im ? &*im : nullptr;
    o.threads = threads_;
    ProgressReporter reporter;
    o.progress = [&](const QuantizeProgress& p) { reporter(p); };
    const auto t0 = std::chrono::steady_clock::now();
    const QuantPlan p = quantize_model(*src, o);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    int64_t missing = 0;
    if (im)
      for (const auto& t : p.tensors)
        if (traits(t.choice.type).quantized && !im->find(t.name)) ++missing;
    if (missing) fmt::print(stderr, "warning: the importance matrix has no entry for {} quantized tensors\n", missing);
    fmt::print(stderr, "quantize: wrote {} ({} tensors, {}, {:.4f} bits/weight) in {:.1f}s\n", out_, p.tensors.size(),
               gb(p.file_bytes), p.bits_per_weight(), s);
    return 0;
  }

 private:
  int plan(const std::vector<TypeOverride>& overrides) {
    std::vector<TensorShapeDesc> shapes;
    std::vector<MetadataEntry> meta;
    EncodableFn encodable = [](GgmlType t) { return can_quantize(t); };
    const char* note = "";
    int64_t n_layers = 0;
    std::unique_ptr<QuantSource> src;
    if (!synthetic_.empty()) {
      const Gemma3Config c = gemma3_size_config(synthetic_);
      shapes = gemma3_shapes(c);
      meta = gemma3_metadata(c, "gemma-3-" + synthetic_);
      n_layers = c.n_layers;
      encodable = [](GgmlType) { return true; };
      note = " (as designed: every type's encoder assumed; header without tokenizer)";
    } else {
      if (in_.empty()) fail("quantize --plan-only: give an input or --synthetic SIZE");
      src = QuantSource::open(in_);
      for (const auto& t : src->tensors()) shapes.push_back({t.name, t.ne});
      n_layers = src->config().n_layers;
    }
    std::vector<std::string> presets;
    if (preset_ == "all" || preset_.empty()) {
      for (const auto& p : quant_presets()) presets.push_back(p.name);
    } else {
      presets.push_back(preset_);
    }
    fmt::print("| preset | weights | tensor bytes | file bytes | GB | bits/weight |\n|---|---:|---:|---:|---:|---:|\n");
    std::vector<QuantPlan> plans;
    for (const auto& name : presets) {
      const QuantPolicy policy(name, overrides, n_layers, embedding_share(shapes));
      auto m = src ? output_metadata(*src, name, nullptr) : meta;
      plans.push_back(plan_quantization(shapes, m, policy, encodable));
      const QuantPlan& p = plans.back();
      fmt::print("| {} | {} | {} | {} | {:.3f} | {:.4f} |\n", name, p.n_elements, p.tensor_bytes, p.file_bytes,
                 static_cast<double>(p.file_bytes) / 1e9, p.bits_per_weight());
    }
    fmt::print("\n");
    for (const auto& p : plans) print_plan(p, per_tensor_, note);
    return 0;
  }

  std::string in_, out_, preset_, imatrix_in_, imatrix_out_, calib_text_, synthetic_;
  std::vector<std::string> overrides_;
  int64_t calib_ctx_ = 512, calib_chunks_ = 0;
  int threads_ = 0;
  bool plan_only_ = false, per_tensor_ = false;
};

}  // namespace

std::unique_ptr<Command> make_quantize_command() { return std::make_unique<QuantizeCommand>(); }

}  // namespace unicorn::cli
