#include "runtime/gpu_budget.h"

#include <algorithm>
#include <cctype>
#include <cmath>

#include "core/error.h"
#include "runtime/kv_cache.h"
#include "runtime/memory.h"

namespace unicorn {

size_t parse_size(const std::string& text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.')) ++i;
  const std::string number = text.substr(0, i);
  std::string unit = text.substr(i);
  for (char& ch : unit) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  double value = 0;
  try {
    size_t used = 0;
    value = number.empty() ? -1 : std::stod(number, &used);
    if (used != number.size()) value = -1;
  } catch (const std::exception&) {
    value = -1;
  }
  double scale = -1;
  if (unit.empty() || unit == "B") scale = 1;
  for (auto [prefix, s] : {std::pair<const char*, double>{"K", 1024.0},
                           {"M", 1024.0 * 1024},
                           {"G", 1024.0 * 1024 * 1024},
                           {"T", 1024.0 * 1024 * 1024 * 1024}}) {
    const std::string p = prefix;
    if (unit == p || unit == p + "B" || unit == p + "IB") scale = s;
  }
  if (value < 0 || scale < 0 || !std::isfinite(value)) fail("'{}' is not a size (examples: 24G, 16000M, 8.5GiB)", text);
  return static_cast<size_t>(value * scale);
}

GpuPlan plan_gpu_layers(const ModelWeights& w, int64_t n_ctx, int n_seq, GgmlType kv_type, int64_t n_batch,
                        size_t budget) {
  const Gemma3Config& c = w.config;
  const size_t elem = kv_type == GgmlType::F16 ? 2 : 4;
  // Activations of one batch (the same estimate as the host's), plus the prompt GEMM's scratch:
  // one 64 MiB decoded weight chunk, 32 MiB of cuBLAS workspace and the 16-bit activations.
  const MemoryEstimate m = estimate_memory(w, n_ctx, n_seq, kv_type, n_batch);
  const size_t gemm = (size_t{96} << 20) + static_cast<size_t>(n_batch * c.ffn) * 2;
  GpuPlan p;
  p.fixed = w.tok_embd.nbytes() + w.output_norm.nbytes() + m.scratch + gemm;
  if (p.fixed > budget)
    fail("--gpu-memory {} cannot hold even the embedding table and activations ({}); give more or use --device cpu",
         format_bytes(budget), format_bytes(p.fixed));
  p.bytes = p.fixed;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    size_t layer = 0;
    for (const WeightTensor* t : w.layers[static_cast<size_t>(l)].all()) layer += t->nbytes();
    layer +=
        2 * static_cast<size_t>(KvCache::layer_capacity(c, l, n_ctx) * c.kv_dim()) * elem * static_cast<size_t>(n_seq);
    p.per_layer = std::max(p.per_layer, layer);
    if (p.bytes + layer > budget) break;
    p.bytes += layer;
    p.layers = l + 1;
  }
  return p;
}

}  // namespace unicorn
