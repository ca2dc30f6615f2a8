#include "model/gemma3.h"

#include <cmath>
#include <span>

#include "core/error.h"

namespace unicorn {

Gemma3Model::Gemma3Model(std::shared_ptr<const ModelWeights> weights, Placement placement)
    : w_(std::move(weights)), placement_(std::move(placement)) {
  const ModelWeights& w = *w_;
  if (static_cast<int64_t>(placement_.layer.size()) != w.config.n_layers)
    fail("internal: placement has {} layers, model {}", placement_.layer.size(), w.config.n_layers);
  placement_.input->load_weight(w.tok_embd);
  placement_.output->load_weight(w.tok_embd);
  placement_.output->load_weight(w.output_norm);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    const LayerWeights& L = w.layers[l];
    Backend* b = placement_.layer[l];
    for (const WeightTensor* t : L.all()) {
      if (!b->supports_weight(t->type))
        fail("{}: backend {} cannot multiply by {} weights ({})", w.source, b->name(), type_name(t->type), t->name);
      b->load_weight(*t);
    }
  }
}

Act Gemma3Model::scratch(Backend* b, Slot slot, int64_t rows, int64_t cols) {
  ScratchBuf& s = scratch_[{b, static_cast<int>(slot)}];
  if (rows * cols > s.capacity) {
    s.buf = Act();  // free first: peak memory stays one buffer per role
    s.buf = b->alloc(rows, cols);
    s.capacity = rows * cols;
  }
  return s.buf.view(rows, cols);
}

void Gemma3Model::validate(const Batch& batch, const KvCache& kv) const {
  const Gemma3Config& c = config();
  if (batch.size() == 0) fail("empty batch");
  std::vector<int64_t> next(static_cast<size_t>(kv.n_seq()));
  for (int s = 0; s < kv.n_seq(); ++s) next[static_cast<size_t>(s)] = kv.seq_len(s);
  for (size_t i = 0; i < batch.size(); ++i) {
    const int32_t t = batch.tokens[i], s = batch.seq[i], p = batch.pos[i];
    if (t < 0 || t >= c.vocab_size) fail("token id {} is outside the vocabulary (0..{})", t, c.vocab_size - 1);
    if (s < 0 || s >= kv.n_seq()) fail("sequence slot {} does not exist ({} slots)", s, kv.n_seq());
    if (p != next[static_cast<size_t>(s)])
      fail("sequence {}: position {} does not continue the cache (expected {})", s, p, next[static_cast<size_t>(s)]);
    if (p >= kv.n_ctx())
      fail(
          "sequence {}: position {} is past the end of the context ({} tokens); start a new context "
          "or raise -c",
          s, p, kv.n_ctx());
    ++next[static_cast<size_t>(s)];
  }
}

void Gemma3Model::forward(const Batch& batch, KvCache& kv, std::vector<float>& logits) {
  validate(batch, kv);
  const Gemma3Config& c = config();
  const ModelWeights& w = *w_;
  const auto T = static_cast<int64_t>(batch.size());
  const BatchView view{batch.tokens, batch.pos, batch.seq};
  std::vector<int64_t> past(static_cast<size_t>(kv.n_seq()));
  for (int s = 0; s < kv.n_seq(); ++s) past[static_cast<size_t>(s)] = kv.seq_len(s);

  // §2.1: scaled embedding lookup.
  Backend* be = placement_.input;
  Act x = scratch(be, kX, T, c.hidden);
  be->embed(w.tok_embd, batch.tokens, c.embed_scale, x);

  Backend* cur = nullptr;
  Act h, q, k, v, att, o, gate, up;
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    Backend* b = placement_.layer[static_cast<size_t>(l)];
    if (b != cur) {  // a placement cut: move the residual stream and re-allocate scratch
      if (x.owner() != b) {
        std::vector<float> host(static_cast<size_t>(T * c.hidden));
        x.owner()->copy_to_host(x, host.data());
        x = scratch(b, kX, T, c.hidden);
        b->copy_from_host(host.data(), x);
      }
      h = scratch(b, kH, T, c.hidden);
      q = scratch(b, kQ, T, c.q_dim());
      k = scratch(b, kK, T, c.kv_dim());
      v = scratch(b, kV, T, c.kv_dim());
      att = scratch(b, kAtt, T, c.q_dim());
      o = scratch(b, kO, T, c.hidden);
      gate = scratch(b, kGate, T, c.ffn);
      up = scratch(b, kUp, T, c.ffn);
      cur = b;
    }
    const bool global = c.layer_is_global[static_cast<size_t>(l)];
    // §2.3-2.4: attention block.
    b->rms_norm(x, L.attn_norm, c.rms_eps, h);
    matmul(b, L.q, h, q);
    matmul(b, L.k, h, k);
    matmul(b, L.v, h, v);
    b->rms_norm(q, L.q_norm, c.rms_eps, q);  // QK-norm per head, before RoPE (§2.4.2)
    b->rms_norm(k, L.k_norm, c.rms_eps, k);
    const float base = global ? c.rope_base_global : c.rope_base_local;
    const float scale = global ? c.rope_scale_global : 1.0f;  // linear scaling on global layers only
    b->rope(q, c.head_dim, batch.pos, base, scale);
    b->rope(k, c.head_dim, batch.pos, base, scale);
    AttentionParams ap{c.n_heads, c.n_kv_heads, c.head_dim, c.attn_scale, global ? 0 : c.sliding_window};
    b->attention(q, k, v, kv.layer(l), view, past, ap, att);
    matmul(b, L.o, att, o);
    b->rms_norm(o, L.post_attn_norm, c.rms_eps, o);
    b->add(x, o);
    // §2.5: GeGLU feed-forward block.
    b->rms_norm(x, L.ffn_norm, c.rms_eps, h);
    matmul(b, L.gate, h, gate);
    matmul(b, L.up, h, up);
    b->gelu_mul(gate, up, gate);
    matmul(b, L.down, gate, o);
    b->rms_norm(o, L.post_ffw_norm, c.rms_eps, o);
    b->add(x, o);
  }
  for (size_t i = 0; i < batch.size(); ++i) kv.set_seq_len(batch.seq[i], batch.pos[i] + 1);

  // §2.6: final norm and tied output projection, only for the rows that want logits.
  std::vector<int64_t> rows;
  for (size_t i = 0; i < batch.size(); ++i)
    if (batch.want_logits[i]) rows.push_back(static_cast<int64_t>(i));
  logits.resize(rows.size() * static_cast<size_t>(c.vocab_size));
  if (rows.empty()) return;
  Backend* ob = placement_.output;
  if (x.owner() != ob) {
    std::vector<float> host(static_cast<size_t>(T * c.hidden));
    x.owner()->copy_to_host(x, host.data());
    x = scratch(ob, kX, T, c.hidden);
    ob->copy_from_host(host.data(), x);
  }
  Act sel = scratch(ob, kSel, static_cast<int64_t>(rows.size()), c.hidden);
  ob->gather_rows(x, rows, sel);
  ob->rms_norm(sel, w.output_norm, c.rms_eps, sel);
  Act out = scratch(ob, kOut, static_cast<int64_t>(rows.size()), c.vocab_size);
  matmul(ob, w.tok_embd, sel, out);
  ob->copy_to_host(out, logits.data());
  if (c.final_softcap > 0) {
    for (float& z : logits) z = c.final_softcap * std::tanh(z / c.final_softcap);
  }
}

}  // namespace unicorn
