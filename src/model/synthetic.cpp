#include "model/synthetic.h"

#include <cmath>
#include <cstddef>
#include <cstring>
#include <optional>
#include <thread>

#include <fmt/format.h>

#include "core/error.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "model/weight_checks.h"
#include "quant/blocks.h"
#include "quant/policy.h"

namespace unicorn {

std::vector<std::string> synthetic_sizes() { return {"270m", "1b", "4b", "12b", "27b"}; }

Gemma3Config synthetic_config(const std::string& size) {
  Gemma3Config c;
  struct Row {
    const char* name;
    int64_t hidden, layers, heads, kv, hd, ffn, vocab, ctx, window;
    float qpas, rope_scale;
  };
  // spec §1.1 (vocab of the text GGUF conversions: 262144) and §1.1b for the 270M.
  static const Row rows[] = {
      {"270m", 640, 18, 4, 1, 256, 2048, 262144, 32768, 512, 256, 1},
      {"1b", 1152, 26, 4, 1, 256, 6912, 262144, 32768, 512, 256, 1},
      {"4b", 2560, 34, 8, 4, 256, 10240, 262144, 131072, 1024, 256, 8},
      {"12b", 3840, 48, 16, 8, 256, 15360, 262144, 131072, 1024, 256, 8},
      {"27b", 5376, 62, 32, 16, 128, 21504, 262144, 131072, 1024, 168, 8},
  };
  for (const Row& r : rows) {
    if (size != r.name) continue;
    c.hidden = r.hidden;
    c.n_layers = r.layers;
    c.n_heads = r.heads;
    c.n_kv_heads = r.kv;
    c.head_dim = r.hd;
    c.ffn = r.ffn;
    c.vocab_size = r.vocab;
    c.context_length = r.ctx;
    c.sliding_window = r.window;
    c.rope_scale_global = r.rope_scale;
    c.attn_scale = 1.0f / std::sqrt(r.qpas);
    c.embed_scale = round_to_bf16(std::sqrt(static_cast<float>(r.hidden)));
    for (int64_t i = 0; i < r.layers; ++i) c.layer_is_global.push_back((i + 1) % 6 == 0);
    return c;
  }
  fail("unknown synthetic model size '{}' (known: 270m, 1b, 4b, 12b, 27b)", size);
}

namespace {

uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

// Offsets of the f16 scale fields of each block type (from the layouts in quant/blocks.h),
// which must be finite; every other byte of these layouts is valid whatever its value.
std::vector<size_t> f16_fields(GgmlType t) {
  switch (t) {
    case GgmlType::Q4_0:
      return {offsetof(BlockQ4_0, d)};
    case GgmlType::Q5_0:
      return {offsetof(BlockQ5_0, d)};
    case GgmlType::Q8_0:
      return {offsetof(BlockQ8_0, d)};
    case GgmlType::Q4_1:
      return {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)};
    case GgmlType::Q5_1:
      return {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)};
    case GgmlType::Q2_K:
      return {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)};
    case GgmlType::Q3_K:
      return {offsetof(BlockQ3_K, d)};
    case GgmlType::Q4_K:
      return {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)};
    case GgmlType::Q5_K:
      return {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)};
    case GgmlType::Q6_K:
      return {offsetof(BlockQ6_K, d)};
    case GgmlType::IQ4_XS:
      return {offsetof(BlockIQ4_XS, d)};
    default:
      return {};
  }
}

// Fills rows [r0, r1) of w with random valid data whose decoded values are small (~1e-2).
void fill_rows(const WeightTensor& w, uint8_t* base, int64_t r0, int64_t r1, uint64_t seed) {
  const size_t stride = w.row_stride();
  uint64_t s = seed ^ (static_cast<uint64_t>(r0) * 0x2545f4914f6cdd1dull);
  const TypeTraits& tr = traits(w.type);
  if (!tr.quantized) {
    for (int64_t r = r0; r < r1; ++r) {
      uint8_t* row = base + static_cast<size_t>(r) * stride;
      for (int64_t i = 0; i < w.cols; ++i) {
        // Sum of uniforms: roughly normal, std ~0.02.
        const uint64_t z = splitmix(s);
        const float v = (static_cast<float>(z & 0xffff) + static_cast<float>((z >> 16) & 0xffff) -
                         static_cast<float>((z >> 32) & 0xffff) - static_cast<float>((z >> 48) & 0xffff)) /
                        65536.0f * 0.03f;
        if (w.type == GgmlType::F32)
          std::memcpy(row + i * 4, &v, 4);
        else {
          const uint16_t h = w.type == GgmlType::F16 ? f32_to_f16(v) : f32_to_bf16(v);
          std::memcpy(row + i * 2, &h, 2);
        }
      }
    }
    return;
  }
  const std::vector<size_t> fields = f16_fields(w.type);
  if (fields.empty()) fail("synthetic weights: no generator for type {}", tr.name);
  const size_t bb = tr.block_bytes;
  for (int64_t r = r0; r < r1; ++r) {
    uint8_t* row = base + static_cast<size_t>(r) * stride;
    size_t i = 0;
    for (; i + 8 <= stride; i += 8) {
      const uint64_t z = splitmix(s);
      std::memcpy(row + i, &z, 8);
    }
    for (; i < stride; ++i) row[i] = static_cast<uint8_t>(splitmix(s));
    for (size_t b = 0; b < stride; b += bb)
      for (size_t off : fields) {
        const uint16_t h = f32_to_f16(0.002f + static_cast<float>(splitmix(s) & 0xff) * 1e-5f);
        std::memcpy(row + b + off, &h, 2);
      }
  }
}

}  // namespace

// The tensor types of a published Q4_K_M file (llama.cpp's quantizer, as the real 270M on PyPI
// shows: spec §1.1b): Q4_K everywhere but the tied embedding (Q6_K, it is also the output head)
// and attn_v and ffn_down on the "more bits" layers (Q6_K): the first and last eighth of the layers
// and every third layer between them. A K-quant whose rows are not a multiple of 256 values falls
// back to a 32-value type (quant/policy.h fallback_type: Q4_K -> Q5_0, Q6_K -> Q8_0), which is why
// the 270M (hidden 640) holds mostly Q5_0 and Q8_0.
// A published Q5_K_M file has the same rule around Q5_K (k_m_type's base).
GgmlType k_m_type(GgmlType base, std::string_view role, int64_t layer, int64_t n_layers, int64_t cols) {
  const int64_t eighth = n_layers / 8;
  const bool more_bits = layer < eighth || layer >= 7 * n_layers / 8 || (layer - eighth) % 3 == 2;
  GgmlType t = base;
  if (role == "embd" || ((role == "v" || role == "down") && more_bits)) t = GgmlType::Q6_K;
  return cols % 256 == 0 ? t : fallback_type(t);
}

GgmlType q4_k_m_type(std::string_view role, int64_t layer, int64_t n_layers, int64_t cols) {
  return k_m_type(GgmlType::Q4_K, role, layer, n_layers, cols);
}

std::unique_ptr<ModelWeights> make_synthetic_model(const std::string& size, const std::string& scheme, uint64_t seed) {
  const Gemma3Config c = synthetic_config(size);
  auto mw = std::make_unique<ModelWeights>();
  mw->config = c;
  mw->source = fmt::format("synthetic:{}:{}", size, scheme);
  mw->format = "synthetic";

  // Type of each tensor role under the scheme. The mixed presets of `unicorn quantize` take
  // their types from the same policy (quant/policy.h), so a synthetic q4_mix is what a real
  // q4_mix file of that size holds.
  std::optional<QuantPolicy> policy;
  if (scheme == "q4_mix" || scheme == "q4_small") {
    const double embd = static_cast<double>(c.vocab_size * c.hidden);
    const double layer =
        static_cast<double>(2 * c.q_dim() * c.hidden + 2 * c.kv_dim() * c.hidden + 3 * c.hidden * c.ffn);
    policy.emplace(scheme, std::vector<TypeOverride>{}, c.n_layers,
                   embd / (embd + layer * static_cast<double>(c.n_layers)));
  }
  auto pick = [&](const std::string& name, const std::string& role, int64_t layer, int64_t rows,
                  int64_t cols) -> GgmlType {
    if (role == "norm") return GgmlType::F32;
    if (policy) return policy->choose(name, {cols, rows}).type;
    // Q6_K embedding where its rows fit 256-value blocks, else Q8_0 (the 270M's 640), as
    // published Q4_0 files fall back.
    if (scheme == "q4_0") return role != "embd" ? GgmlType::Q4_0 : (cols % 256 == 0 ? GgmlType::Q6_K : GgmlType::Q8_0);
    if (scheme == "q4_k_m") return q4_k_m_type(role, layer, c.n_layers, cols);
    if (scheme == "q5_k_m") return k_m_type(GgmlType::Q5_K, role, layer, c.n_layers, cols);
    auto t = type_from_name(scheme);
    if (!t)
      fail(
          "unknown synthetic weight scheme '{}' (f32, bf16, f16, q8_0, q4_0, q4_k_m, q5_k_m, q4_mix, q4_small or a "
          "type name)",
          scheme);
    return *t;
  };
  ThreadPool pool(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  uint64_t tensor_seed = seed;
  auto make = [&](const std::string& name, const std::string& role, int64_t layer, int64_t rows, int64_t cols) {
    WeightTensor w;
    w.name = name;
    w.type = pick(name, role, layer, rows, cols);
    w.rows = rows;
    w.cols = cols;
    if (cols % traits(w.type).block_size != 0)
      fail("synthetic {}: {} rows of {} values do not fit {} blocks", size, name, cols, type_name(w.type));
    auto buf = std::make_unique_for_overwrite<uint8_t[]>(w.nbytes());  // every byte written below
    uint8_t* base = buf.get();
    const uint64_t ts = splitmix(tensor_seed);
    if (role == "norm") {
      auto* f = reinterpret_cast<float*>(base);
      for (int64_t i = 0; i < cols; ++i) f[i] = 1.0f;  // already 1 + w
    } else {
      pool.parallel_for(
          rows, [&](int64_t b, int64_t e, int) { fill_rows(w, base, b, e, ts); }, 64);
    }
    w.data = base;
    mw->owned.push_back(std::move(buf));
    return w;
  };
  mw->tok_embd = make("token_embd.weight", "embd", 0, c.vocab_size, c.hidden);
  mw->output_norm = make("output_norm.weight", "norm", 0, 1, c.hidden);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    LayerWeights L;
    const std::string p = fmt::format("blk.{}.", l);
    L.attn_norm = make(p + "attn_norm.weight", "norm", l, 1, c.hidden);
    L.q = make(p + "attn_q.weight", "q", l, c.q_dim(), c.hidden);
    L.k = make(p + "attn_k.weight", "k", l, c.kv_dim(), c.hidden);
    L.v = make(p + "attn_v.weight", "v", l, c.kv_dim(), c.hidden);
    L.o = make(p + "attn_output.weight", "o", l, c.hidden, c.q_dim());
    L.q_norm = make(p + "attn_q_norm.weight", "norm", l, 1, c.head_dim);
    L.k_norm = make(p + "attn_k_norm.weight", "norm", l, 1, c.head_dim);
    L.post_attn_norm = make(p + "post_attention_norm.weight", "norm", l, 1, c.hidden);
    L.ffn_norm = make(p + "ffn_norm.weight", "norm", l, 1, c.hidden);
    L.gate = make(p + "ffn_gate.weight", "gate", l, c.ffn, c.hidden);
    L.up = make(p + "ffn_up.weight", "up", l, c.ffn, c.hidden);
    L.down = make(p + "ffn_down.weight", "down", l, c.hidden, c.ffn);
    L.post_ffw_norm = make(p + "post_ffw_norm.weight", "norm", l, 1, c.hidden);
    mw->layers.push_back(L);
  }
  check_weight_shapes(*mw);
  return mw;
}

size_t bytes_per_token(const ModelWeights& w) { return w.weight_bytes(); }

}  // namespace unicorn
