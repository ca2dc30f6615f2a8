#include "runtime/engine.h"

#include <algorithm>

#include "backends/cpu/cpu_backend.h"
#ifdef UNICORN_HAVE_CUDA
#include "backends/cuda/cuda_device.h"
#endif
#include "core/error.h"
#include "runtime/gpu_budget.h"

namespace unicorn {

namespace {
// EngineOptions::device: "auto" takes CUDA device 0 when there is one, else the CPU. When "auto"
// falls back to the CPU although a CUDA driver is installed, `note` says why.
std::unique_ptr<Backend> make_backend(const std::string& device, int n_threads, MatmulPrecision prec,
                                      std::string& note) {
  if (device == "cpu") return std::make_unique<CpuBackend>(n_threads, prec);
  if (device != "auto" && device != "cuda" && !device.starts_with("cuda:"))
    fail("unknown device '{}' (use auto, cpu, cuda or cuda:N)", device);
#ifdef UNICORN_HAVE_CUDA
  if (device == "auto") {
    if (cuda_device_count() > 0) return make_cuda_backend(0);
    if (cuda_driver_installed()) {
      const std::string why = cuda_unavailable_reason();
      note = fmt::format("--device auto runs on the CPU: a CUDA driver is installed but no CUDA device is usable{}",
                         why.empty() ? std::string() : ": " + why);
    }
    return std::make_unique<CpuBackend>(n_threads, prec);
  }
  int index = 0;
  if (device.size() > 5) {
    const std::string n = device.substr(5);
    if (n.empty() || n.size() > 4 || n.find_first_not_of("0123456789") != std::string::npos)
      fail("device '{}': expected cuda:N with N a device number", device);
    index = std::stoi(n);
  }
  return make_cuda_backend(index);
#else
  (void)note;  // no CUDA in this build: the CPU is the only choice, nothing to explain
  if (device == "auto") return std::make_unique<CpuBackend>(n_threads, prec);
  fail("device '{}': this build has no CUDA backend (configure with -DUNICORN_CUDA=ON)", device);
#endif
}
}  // namespace

std::unique_ptr<Engine> Engine::open(const EngineOptions& opt_in) {
  auto e = std::unique_ptr<Engine>(new Engine());
  e->opt_ = opt_in;
  EngineOptions& opt = e->opt_;
  LoadedModel lm = load_model(opt.model_path);
  e->weights_ = std::move(lm.weights);
  e->tokenizer_ = std::move(lm.tokenizer);
  e->tokenizer_source_ = lm.tokenizer_source;
  const Gemma3Config& c = e->weights_->config;
  if (opt.n_ctx == 0) opt.n_ctx = c.context_length;
  if (opt.n_ctx < 0) opt.n_ctx = std::min(-opt.n_ctx, c.context_length);
  if (opt.n_ctx > c.context_length)
    fail("context {} is larger than the model's trained context {} (-c)", opt.n_ctx, c.context_length);
  if (opt.precision != "fast" && opt.precision != "exact")
    fail("unknown precision '{}' (use fast or exact)", opt.precision);
  if (opt.n_batch <= 0) fail("batch size must be positive (got {})", opt.n_batch);
  if (opt.n_threads < 0) fail("thread count must be positive (got {})", opt.n_threads);
  // No call returns more logit rows than it has tokens, nor more than the context holds.
  opt.logit_rows = std::clamp<int64_t>(opt.logit_rows, 1, std::min(opt.n_batch, opt.n_ctx));

  e->mem_ = estimate_memory(*e->weights_, opt.n_ctx, opt.n_seq, opt.kv_type, opt.n_batch, opt.logit_rows);
  const MatmulPrecision prec = opt.precision == "exact" ? MatmulPrecision::Exact : MatmulPrecision::Fast;
  e->backends_.push_back(make_backend(opt.device, opt.n_threads, prec, e->device_note_));
  Placement pl = Placement::all_on(e->backends_[0].get(), c.n_layers);
  if (!opt.gpu_memory.empty()) {
    if (opt.gpu_layers >= 0) fail("give --gpu-layers or --gpu-memory, not both");
    if (e->backends_[0]->name() == "cpu")
      fail("--gpu-memory {} needs a GPU device, but the chosen device is the CPU", opt.gpu_memory);
    const GpuPlan plan = plan_gpu_layers(*e->weights_, opt.n_ctx, opt.n_seq, opt.kv_type, opt.n_batch,
                                         parse_size(opt.gpu_memory), e->weight_bytes_on(0), opt.logit_rows);
    opt.gpu_layers = plan.layers;
  }
  e->gpu_layers_ = c.n_layers;
  if (opt.gpu_layers >= 0 && opt.gpu_layers < c.n_layers) {
    e->gpu_layers_ = opt.gpu_layers;
    if (e->backends_[0]->name() == "cpu")
      fail("--gpu-layers {} needs a GPU device, but the chosen device is the CPU", opt.gpu_layers);
    // Partial offload (per-layer placement): the first layers on the GPU, the rest on the CPU.
    e->backends_.push_back(std::make_unique<CpuBackend>(opt.n_threads, prec));
    pl = Placement::split(e->backends_[0].get(), e->backends_[1].get(), c.n_layers, opt.gpu_layers);
  }
  e->check_memory(opt, c);
  e->model_ = std::make_unique<Gemma3Model>(e->weights_, pl, opt.load_progress);
  e->kv_ = std::make_unique<KvCache>(c, pl, opt.n_seq, opt.n_ctx, opt.kv_type);
  return e;
}

WeightBytes Engine::weight_bytes_on(size_t i) const {
  const Backend* b = backends_[i].get();
  return [b](const WeightTensor& t) { return b->weight_device_bytes(t); };
}

// Before anything is uploaded or allocated: the KV cache of the CPU layers plus scratch against
// the host's available memory (weights are mapped from the file), and, on a GPU, what its
// layers need (runtime/gpu_budget.h) against the device's free memory.
void Engine::check_memory(const EngineOptions& opt, const Gemma3Config& c) const {
  const bool gpu = backends_[0]->name() != "cpu";
  const int64_t n_gpu = gpu ? gpu_layers_ : 0;
  size_t host_kv = 0;
  for (int64_t l = n_gpu; l < c.n_layers; ++l) host_kv += layer_kv_bytes(c, l, opt.n_ctx, opt.n_seq, opt.kv_type);
  if (const size_t avail = available_host_memory(); avail > 0 && host_kv + mem_.scratch > avail)
    fail(
        "not enough memory: the KV cache for {} tokens ({}) plus scratch ({}) needs {}, but only {} is "
        "available; lower -c or use --kv-type f16",
        opt.n_ctx, format_bytes(host_kv), format_bytes(mem_.scratch), format_bytes(host_kv + mem_.scratch),
        format_bytes(avail));
#ifdef UNICORN_HAVE_CUDA
  if (!gpu || n_gpu == 0) return;  // no layer on the GPU: the embedding and head are on the CPU too
  const size_t free = cuda_free_memory(*backends_[0]);
  const WeightBytes bytes = weight_bytes_on(0);
  const auto need_for = [&](int64_t layers) {
    return gpu_bytes_for_layers(*weights_, opt.n_ctx, opt.n_seq, opt.kv_type, opt.n_batch, layers, bytes,
                                opt.logit_rows);
  };
  const size_t need = need_for(n_gpu);
  if (need > free) {
    if (free < need_for(0))
      fail(
          "not enough GPU memory on {}: {} is free, less than the embedding table and activations need; use --device "
          "cpu",
          backends_[0]->name(), format_bytes(free));
    const GpuPlan fit =
        plan_gpu_layers(*weights_, opt.n_ctx, opt.n_seq, opt.kv_type, opt.n_batch, free, bytes, opt.logit_rows);
    fail(
        "not enough GPU memory on {}: {} layers with a {}-token KV cache need {}, but {} is free; use --gpu-layers {} "
        "(or --gpu-memory) to run the rest on the CPU, or lower -c",
        backends_[0]->name(), n_gpu, opt.n_ctx, format_bytes(need), format_bytes(free), fit.layers);
  }
#endif
}

const Tokenizer& Engine::tokenizer() const {
  if (!tokenizer_)
    fail("{}: the model carries no tokenizer (no tokenizer.ggml.* metadata or tokenizer.json)", opt_.model_path);
  return *tokenizer_;
}

}  // namespace unicorn
