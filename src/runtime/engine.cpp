#include "runtime/engine.h"

#include <algorithm>

#include "backends/cpu/cpu_backend.h"
#include "core/error.h"

namespace unicorn {

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
  if (opt.n_batch <= 0) fail("batch size must be positive (got {})", opt.n_batch);
  if (opt.n_threads < 0) fail("thread count must be positive (got {})", opt.n_threads);

  e->mem_ = estimate_memory(*e->weights_, opt.n_ctx, opt.n_seq, opt.kv_type, opt.n_batch);
  if (const size_t avail = available_host_memory(); avail > 0) {
    const size_t need = e->mem_.kv + e->mem_.scratch;
    if (need > avail)
      fail("not enough memory: the KV cache for {} tokens ({}) plus scratch ({}) needs {}, but only {} is "
           "available; lower -c or use --kv-type f16",
           opt.n_ctx, format_bytes(e->mem_.kv), format_bytes(e->mem_.scratch), format_bytes(need),
           format_bytes(avail));
  }
  // One CPU backend for now; the planner (runtime/placement.h) will spread layers over devices.
  e->backends_.push_back(std::make_unique<CpuBackend>(opt.n_threads));
  Placement pl = Placement::all_on(e->backends_[0].get(), c.n_layers);
  e->model_ = std::make_unique<Gemma3Model>(e->weights_, pl);
  e->kv_ = std::make_unique<KvCache>(c, pl, opt.n_seq, opt.n_ctx, opt.kv_type);
  return e;
}

const Tokenizer& Engine::tokenizer() const {
  if (!tokenizer_) fail("{}: the model carries no tokenizer (no tokenizer.ggml.* metadata or tokenizer.json)", opt_.model_path);
  return *tokenizer_;
}

}  // namespace unicorn
