#include "runtime/compare.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "runtime/engine.h"
#include "runtime/perplexity.h"
#include "runtime/quant_source.h"

namespace unicorn {
namespace {

uint64_t path_bytes(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return fs::file_size(path, ec);
  uint64_t n = 0;
  for (const auto& e : fs::directory_iterator(path, ec))
    if (e.path().extension() == ".safetensors") n += e.file_size(ec);
  return n;
}

ModelSummary summarize(const QuantSource& s) {
  ModelSummary m;
  m.path = s.path();
  m.file_bytes = path_bytes(s.path());
  for (const auto& t : s.tensors()) {
    m.tensor_bytes += t.nbytes();
    m.n_elements += t.n_elements();
  }
  m.bits_per_weight = 8.0 * static_cast<double>(m.tensor_bytes) / static_cast<double>(m.n_elements);
  return m;
}

std::vector<TensorError> tensor_errors(const QuantSource& ref, const QuantSource& q) {
  std::vector<TensorError> out;
  std::vector<float> a, b;
  for (const SourceTensor& rt : ref.tensors()) {
    const SourceTensor* qt = q.find(rt.name);
    if (!qt || qt->ne != rt.ne) continue;
    const int64_t cols = rt.cols(), rows = rt.rows();
    const int64_t slab = std::max<int64_t>(1, (int64_t{4} << 20) / cols);
    double num = 0, den = 0;
    for (int64_t r0 = 0; r0 < rows; r0 += slab) {
      const int64_t n = std::min(slab, rows - r0);
      a.resize(static_cast<size_t>(n * cols));
      b.resize(a.size());
      rt.decode_rows(r0, n, a.data());
      qt->decode_rows(r0, n, b.data());
      for (size_t i = 0; i < a.size(); ++i) {
        const double d = static_cast<double>(b[i]) - a[i];
        num += d * d;
        den += static_cast<double>(a[i]) * a[i];
      }
    }
    out.push_back({rt.name, rt.type, qt->type, rt.n_elements(), den > 0 ? std::sqrt(num / den) : std::sqrt(num)});
  }
  return out;
}

std::unique_ptr<Engine> open_for_compare(const std::string& path, const CompareOptions& o) {
  EngineOptions eo;
  eo.model_path = path;
  eo.n_threads = o.threads;
  eo.n_ctx = o.n_ctx;
  eo.n_batch = o.n_ctx;
  eo.logit_rows = o.n_ctx;  // a chunk's scored half comes back in one call
  eo.kv_type = GgmlType::F32;
  // The quality instrument measures the weights alone: f32 activations on the CPU (exact).
  eo.device = "cpu";
  eo.precision = "exact";
  return Engine::open(eo);
}

// Logits of the scored positions (n_ctx/2 .. n_ctx-2) of one chunk, perplexity's rules.
void chunk_logits(Engine& e, std::span<const int32_t> chunk, int32_t bos, std::vector<float>& logits) {
  const auto n_ctx = static_cast<int64_t>(chunk.size());
  Batch b;
  for (int64_t p = 0; p < n_ctx; ++p)
    b.add(p == 0 ? bos : chunk[static_cast<size_t>(p)], static_cast<int32_t>(p), 0, p >= n_ctx / 2 && p < n_ctx - 1);
  e.kv().clear(0);
  e.model().forward(b, e.kv(), logits);
}

}  // namespace

double kl_divergence(const float* p, const float* q, int64_t n) {
  const float pm = *std::max_element(p, p + n), qm = *std::max_element(q, q + n);
  double ps = 0, qs = 0;
  for (int64_t i = 0; i < n; ++i) {
    ps += std::exp(static_cast<double>(p[i] - pm));
    qs += std::exp(static_cast<double>(q[i] - qm));
  }
  const double lps = std::log(ps), lqs = std::log(qs);
  double kl = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double lp = static_cast<double>(p[i] - pm) - lps, lq = static_cast<double>(q[i] - qm) - lqs;
    kl += std::exp(lp) * (lp - lq);
  }
  return std::max(kl, 0.0);
}

CompareReport compare_models(const CompareOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  if (o.n_ctx < 4) fail("compare needs a context of at least 4 tokens (got {})", o.n_ctx);
  std::ifstream in(o.text_path, std::ios::binary);
  if (!in) fail("{}: cannot open the text", o.text_path);
  std::stringstream ss;
  ss << in.rdbuf();

  CompareReport r;
  r.text_path = o.text_path;
  r.n_ctx = o.n_ctx;
  {
    auto rs = QuantSource::open(o.ref_path);
    auto qs = QuantSource::open(o.quant_path);
    r.ref = summarize(*rs);
    r.quant = summarize(*qs);
    if (o.tensor_errors) r.tensors = tensor_errors(*rs, *qs);
  }
  auto ref = open_for_compare(o.ref_path, o);
  auto quant = open_for_compare(o.quant_path, o);
  const int64_t V = ref->config().vocab_size;
  if (quant->config().vocab_size != V)
    fail("{} has {} vocabulary rows, {} has {}: not the same model", o.ref_path, V, o.quant_path,
         quant->config().vocab_size);
  const Tokenizer& tok = ref->has_tokenizer() ? ref->tokenizer() : quant->tokenizer();
  const std::vector<int32_t> tokens = tok.encode(ss.str(), true);
  r.n_chunks = static_cast<int64_t>(tokens.size()) / o.n_ctx;
  if (r.n_chunks == 0)
    fail("{}: {} tokens, fewer than one chunk of {} (use a smaller -c or a longer text)", o.text_path, tokens.size(),
         o.n_ctx);
  if (o.max_chunks > 0) r.n_chunks = std::min(r.n_chunks, o.max_chunks);

  double nll_ref = 0, nll_q = 0, kl_sum = 0;
  int64_t agree = 0;
  std::vector<float> lr, lq;
  for (int64_t ch = 0; ch < r.n_chunks; ++ch) {
    std::span<const int32_t> chunk(tokens.data() + ch * o.n_ctx, static_cast<size_t>(o.n_ctx));
    chunk_logits(*ref, chunk, tok.bos(), lr);
    chunk_logits(*quant, chunk, tok.bos(), lq);
    for (int64_t p = o.n_ctx / 2, row = 0; p < o.n_ctx - 1; ++p, ++row) {
      const float* a = lr.data() + row * V;
      const float* b = lq.data() + row * V;
      const int32_t next = chunk[static_cast<size_t>(p + 1)];
      nll_ref -= log_prob({a, static_cast<size_t>(V)}, next);
      nll_q -= log_prob({b, static_cast<size_t>(V)}, next);
      const double kl = kl_divergence(a, b, V);
      kl_sum += kl;
      r.max_kl = std::max(r.max_kl, kl);
      agree += std::max_element(a, a + V) - a == std::max_element(b, b + V) - b ? 1 : 0;
      ++r.n_scored;
    }
    if (progress) progress(ch + 1, r.n_chunks);
  }
  const auto n = static_cast<double>(r.n_scored);
  r.ref.ppl = std::exp(nll_ref / n);
  r.quant.ppl = std::exp(nll_q / n);
  r.ppl_ratio = r.quant.ppl / r.ref.ppl;
  r.retention = r.ref.ppl / r.quant.ppl;
  r.mean_kl = kl_sum / n;
  r.top1_agreement = static_cast<double>(agree) / n;
  return r;
}

std::string compare_markdown(const CompareReport& r) {
  std::string s;
  s += fmt::format("Text: {} ({} chunks of {} tokens, {} scored positions)\n\n", r.text_path, r.n_chunks, r.n_ctx,
                   r.n_scored);
  s += "| model | file size | bits/weight | perplexity |\n|---|---:|---:|---:|\n";
  for (const ModelSummary* m : {&r.ref, &r.quant})
    s += fmt::format("| {} | {:.1f} MB | {:.3f} | {:.4f} |\n", m->path, static_cast<double>(m->file_bytes) / 1e6,
                     m->bits_per_weight, m->ppl);
  s += fmt::format(
      "\n| metric | value |\n|---|---:|\n| ppl ratio (quant/ref) | {:.4f} |\n| quality retention (ref ppl / quant "
      "ppl) | {:.2f}% |\n| mean KL(ref ‖ quant) | {:.5f} nats |\n| max KL | {:.4f} nats |\n| top-1 agreement | "
      "{:.2f}% |\n",
      r.ppl_ratio, 100 * r.retention, r.mean_kl, r.max_kl, 100 * r.top1_agreement);
  if (!r.tensors.empty()) {
    s += "\n| tensor | ref type | quant type | elements | relative error |\n|---|---|---|---:|---:|\n";
    for (const auto& t : r.tensors)
      s += fmt::format("| {} | {} | {} | {} | {:.3e} |\n", t.name, type_name(t.ref_type), type_name(t.quant_type),
                       t.n_elements, t.rel_error);
  }
  return s;
}

nlohmann::json compare_json(const CompareReport& r) {
  auto model = [](const ModelSummary& m) {
    return nlohmann::json{{"path", m.path},
                          {"file_bytes", m.file_bytes},
                          {"tensor_bytes", m.tensor_bytes},
                          {"n_elements", m.n_elements},
                          {"bits_per_weight", m.bits_per_weight},
                          {"ppl", m.ppl}};
  };
  nlohmann::json tensors = nlohmann::json::array();
  for (const auto& t : r.tensors)
    tensors.push_back({{"name", t.name},
                       {"ref_type", type_name(t.ref_type)},
                       {"quant_type", type_name(t.quant_type)},
                       {"n_elements", t.n_elements},
                       {"rel_error", t.rel_error}});
  return {{"text", r.text_path},
          {"n_ctx", r.n_ctx},
          {"n_chunks", r.n_chunks},
          {"n_scored", r.n_scored},
          {"ref", model(r.ref)},
          {"quant", model(r.quant)},
          {"ppl_ratio", r.ppl_ratio},
          {"retention", r.retention},
          {"mean_kl", r.mean_kl},
          {"max_kl", r.max_kl},
          {"top1_agreement", r.top1_agreement},
          {"tensors", tensors}};
}

}  // namespace unicorn
