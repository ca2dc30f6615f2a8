#include "cli/common.h"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "core/error.h"
#include "runtime/memory.h"

namespace unicorn::cli {

void add_model_options(CLI::App& app, ModelOptions& o, int64_t default_ctx) {
  o.ctx = -default_ctx;  // not given: up to default_ctx, capped at the model's trained context
  app.add_option("-m,--model", o.model, "GGUF file or Hugging Face directory (default: the bundled Gemma 3 270M)");
  app.add_option("-t,--threads", o.threads, "CPU threads (default: all cores)")->check(CLI::Range(0, 1024));
  app.add_option("-c,--ctx-size", o.ctx,
                 fmt::format("context size in tokens (0: the model's trained maximum; default {})", default_ctx))
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  app.add_option("-b,--batch-size", o.batch, "tokens per forward call when processing a prompt")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16));
  app.add_option("--kv-type", o.kv_type, "KV cache element type")->check(CLI::IsMember({"f16", "f32"}));
  app.add_option("--device", o.device, "auto (CUDA when present), cpu, cuda or cuda:N");
  app.add_option("--gpu-layers,--n-gpu-layers", o.gpu_layers, "layers on the GPU, the rest on the CPU (-1: all)")
      ->check(CLI::Range(int64_t{-1}, int64_t{100000}));
  app.add_option("--gpu-memory", o.gpu_memory,
                 "GPU memory to use, e.g. 20G: as many leading layers as fit go on the GPU, the rest on the CPU");
  app.add_option("--precision", o.precision,
                 "CPU matmul activations: fast (int8, llama.cpp numerics) or exact (f32, matches the reference)")
      ->check(CLI::IsMember({"fast", "exact"}));
}

void add_sampling_options(CLI::App& app, SamplerParams& s) {
  app.add_option("--temp", s.temperature, "temperature (0: greedy)")->check(CLI::Range(0.0f, 100.0f));
  app.add_option("--top-k", s.top_k, "top-k (0: off)")->check(CLI::Range(0, 1 << 20));
  app.add_option("--top-p", s.top_p, "top-p (1: off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--min-p", s.min_p, "min-p (0: off)")->check(CLI::Range(0.0f, 1.0f));
  app.add_option("--repeat-penalty", s.repeat_penalty, "repetition penalty (1: off)")->check(CLI::Range(0.0f, 10.0f));
  app.add_option("--repeat-last-n", s.repeat_last_n, "tokens the penalties look back at")
      ->check(CLI::Range(0, 1 << 20));
  app.add_option("--presence-penalty", s.presence_penalty, "presence penalty (0: off)")
      ->check(CLI::Range(-10.0f, 10.0f));
  app.add_option("-s,--seed", s.seed, "random seed (default: random)");
}

std::string resolve_model_path(const std::string& given) {
  namespace fs = std::filesystem;
  if (!given.empty()) return given;
  if (const char* env = std::getenv("UNICORN_MODEL"); env && *env) return env;
  const std::string name = "models/gemma-3-270m-q4_k_m.gguf";
  std::vector<fs::path> candidates = {fs::current_path() / name};
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec)
    for (fs::path d = exe.parent_path(); !d.empty() && d != d.root_path(); d = d.parent_path())
      candidates.push_back(d / name);
  for (const auto& c : candidates)
    if (fs::exists(c, ec)) return c.string();
  fail("no model given and the default model ({}) was not found; run scripts/setup.sh or pass -m", name);
}

namespace {
// Weight uploads to a device on stderr: the percentage updated in place on a terminal, then one
// line per device with the size and time (that line alone when stderr is not a terminal).
class LoadReporter {
 public:
  void operator()(const Backend& b, size_t done, size_t total) {
    const std::string backend = b.name();
    using Clock = std::chrono::steady_clock;
    if (done == 0) start_ = Clock::now(), last_pct_ = -1;
    const int pct = total > 0 ? static_cast<int>(100.0 * static_cast<double>(done) / static_cast<double>(total)) : 100;
    if (tty_ && pct != last_pct_) {
      fmt::print(stderr, "\rloading weights onto {}: {:3d}% of {}", backend, pct, format_bytes(total));
      std::fflush(stderr);
      last_pct_ = pct;
    }
    if (done == total) {
      const double s = std::chrono::duration<double>(Clock::now() - start_).count();
      fmt::print(stderr, "{}loaded {} of weights onto {} in {:.1f} s\n", tty_ ? "\r\x1b[K" : "", format_bytes(total),
                 backend, s);
    }
  }

 private:
  bool tty_ = ::isatty(STDERR_FILENO) != 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
  int last_pct_ = -1;
};
}  // namespace

std::unique_ptr<Engine> open_engine(const ModelOptions& o) {
  EngineOptions eo;
  eo.model_path = resolve_model_path(o.model);
  eo.n_threads = o.threads;
  eo.n_ctx = o.ctx;
  eo.n_batch = o.batch;
  eo.logit_rows = o.logit_rows;
  eo.n_seq = o.n_seq;
  eo.kv_type = o.kv_type == "f32" ? GgmlType::F32 : GgmlType::F16;
  eo.precision = o.precision;
  eo.gpu_layers = o.gpu_layers;
  eo.gpu_memory = o.gpu_memory;
  eo.device = o.device;
  eo.load_progress = LoadReporter();
  auto engine = Engine::open(eo);
  if (!engine->device_note().empty()) fmt::print(stderr, "note: {}\n", engine->device_note());
  return engine;
}

namespace {
std::atomic<bool> g_interrupted{false};
void on_sigint(int) {
  if (g_interrupted.load()) _exit(130);
  g_interrupted.store(true);
}
}  // namespace

void install_interrupt_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_sigint;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
}
const std::atomic<bool>& interrupted() { return g_interrupted; }
void clear_interrupted() { g_interrupted.store(false); }

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) fail("{}: cannot open for reading", path);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace unicorn::cli
