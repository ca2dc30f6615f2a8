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
  if (value * scale >= 0x1p63) fail("'{}' is too large a size", text);
  return static_cast<size_t>(value * scale);
}

namespace {

size_t weight_bytes(const WeightTensor& t, const WeightBytes& bytes) { return bytes ? bytes(t) : t.nbytes(); }

size_t layer_weight_bytes(const ModelWeights& w, int64_t l, const WeightBytes& bytes) {
  size_t b = 0;
  for (const WeightTensor* t : w.layers[static_cast<size_t>(l)].all()) b += weight_bytes(*t, bytes);
  return b;
}

// Embedding table and output norm, one batch of activations (the host's estimate) and the prompt
// GEMM's scratch: one 64 MiB decoded weight chunk, 32 MiB of cuBLAS workspace, 16-bit activations.
size_t fixed_gpu_bytes(const ModelWeights& w, int64_t n_ctx, int n_seq, GgmlType kv_type, int64_t n_batch,
                       const WeightBytes& bytes, int64_t logit_rows) {
  const MemoryEstimate m = estimate_memory(w, n_ctx, n_seq, kv_type, n_batch, logit_rows);
  const size_t gemm = (size_t{96} << 20) + static_cast<size_t>(n_batch * w.config.ffn) * 2;
  return weight_bytes(w.tok_embd, bytes) + weight_bytes(w.output_norm, bytes) + m.scratch + gemm;
}

}  // namespace

size_t layer_kv_bytes(const Gemma3Config& c, int64_t l, int64_t n_ctx, int n_seq, GgmlType kv_type) {
  const size_t elem = kv_type == GgmlType::F16 ? 2 : 4;
  return 2 * static_cast<size_t>(KvCache::layer_capacity(c, l, n_ctx) * c.kv_dim()) * elem * static_cast<size_t>(n_seq);
}

size_t gpu_bytes_for_layers(const ModelWeights& w, int64_t n_ctx, int n_seq, GgmlType kv_type, int64_t n_batch,
                            int64_t layers, const WeightBytes& bytes, int64_t logit_rows) {
  size_t b = fixed_gpu_bytes(w, n_ctx, n_seq, kv_type, n_batch, bytes, logit_rows);
  for (int64_t l = 0; l < std::min(layers, w.config.n_layers); ++l)
    b += layer_weight_bytes(w, l, bytes) + layer_kv_bytes(w.config, l, n_ctx, n_seq, kv_type);
  return b;
}

GpuPlan plan_gpu_layers(const ModelWeights& w, int64_t n_ctx, int n_seq, GgmlType kv_type, int64_t n_batch,
                        size_t budget, const WeightBytes& bytes, int64_t logit_rows) {
  const Gemma3Config& c = w.config;
  GpuPlan p;
  p.fixed = fixed_gpu_bytes(w, n_ctx, n_seq, kv_type, n_batch, bytes, logit_rows);
  if (p.fixed > budget)
    fail("--gpu-memory {} cannot hold even the embedding table and activations ({}); give more or use --device cpu",
         format_bytes(budget), format_bytes(p.fixed));
  p.bytes = p.fixed;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const size_t layer = layer_weight_bytes(w, l, bytes) + layer_kv_bytes(c, l, n_ctx, n_seq, kv_type);
    p.per_layer = std::max(p.per_layer, layer);
    if (p.bytes + layer > budget) break;
    p.bytes += layer;
    p.layers = l + 1;
  }
  return p;
}

}  // namespace unicorn
