#include "model/weight_checks.h"

#include <cstring>

#include "core/error.h"
#include "quant/codec.h"

namespace unicorn {
namespace {
void expect(const ModelWeights& mw, const WeightTensor& w, int64_t rows, int64_t cols) {
  if (w.rows != rows || w.cols != cols)
    fail("{}: tensor '{}' has shape [{}, {}] (rows x cols), expected [{}, {}]", mw.source, w.name, w.rows, w.cols, rows,
         cols);
  if (!can_dequantize(w.type))
    fail("{}: tensor '{}' has type {}, which Unicorn cannot read", mw.source, w.name, type_name(w.type));
  if (cols % traits(w.type).block_size != 0)
    fail("{}: tensor '{}' row of {} is not a multiple of the {} block", mw.source, w.name, cols, type_name(w.type));
}
}  // namespace

void check_weight_shapes(const ModelWeights& mw) {
  const Gemma3Config& c = mw.config;
  expect(mw, mw.tok_embd, c.vocab_size, c.hidden);
  expect(mw, mw.output_norm, 1, c.hidden);
  for (const LayerWeights& L : mw.layers) {
    expect(mw, L.attn_norm, 1, c.hidden);
    expect(mw, L.q, c.q_dim(), c.hidden);
    expect(mw, L.k, c.kv_dim(), c.hidden);
    expect(mw, L.v, c.kv_dim(), c.hidden);
    expect(mw, L.o, c.hidden, c.q_dim());
    expect(mw, L.q_norm, 1, c.head_dim);
    expect(mw, L.k_norm, 1, c.head_dim);
    expect(mw, L.post_attn_norm, 1, c.hidden);
    expect(mw, L.ffn_norm, 1, c.hidden);
    expect(mw, L.gate, c.ffn, c.hidden);
    expect(mw, L.up, c.ffn, c.hidden);
    expect(mw, L.down, c.hidden, c.ffn);
    expect(mw, L.post_ffw_norm, 1, c.hidden);
  }
}

void convert_norms_to_f32(ModelWeights& mw, bool add_one) {
  auto conv = [&](WeightTensor& w) {
    auto buf = std::make_unique_for_overwrite<uint8_t[]>(static_cast<size_t>(w.cols) * sizeof(float));
    float* out = reinterpret_cast<float*>(buf.get());
    dequantize_row(w.type, w.data, out, w.cols);
    if (add_one)
      for (int64_t i = 0; i < w.cols; ++i) out[i] += 1.0f;
    w.type = GgmlType::F32;
    w.data = buf.get();
    mw.owned.push_back(std::move(buf));
  };
  conv(mw.output_norm);
  for (LayerWeights& L : mw.layers) {
    for (WeightTensor* w : {&L.attn_norm, &L.q_norm, &L.k_norm, &L.post_attn_norm, &L.ffn_norm, &L.post_ffw_norm})
      conv(*w);
  }
}

size_t ModelWeights::weight_bytes() const {
  size_t n = tok_embd.nbytes() + output_norm.nbytes();
  for (const LayerWeights& L : layers)
    for (const WeightTensor* w : L.all()) n += w->nbytes();
  return n;
}

int64_t ModelWeights::param_count() const {
  int64_t n = tok_embd.rows * tok_embd.cols + output_norm.rows * output_norm.cols;
  for (const LayerWeights& L : layers)
    for (const WeightTensor* w : L.all()) n += w->rows * w->cols;
  return n;
}

}  // namespace unicorn
