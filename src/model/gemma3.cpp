#include "model/gemma3.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <span>

#include "core/error.h"

namespace unicorn {

namespace {
uint64_t next_model_id() {
  static std::atomic<uint64_t> counter{0};
  return ++counter;
}
}  // namespace

Gemma3Model::Gemma3Model(std::shared_ptr<const ModelWeights> weights, Placement placement, const LoadProgress& progress)
    : id_(next_model_id()), w_(std::move(weights)), placement_(std::move(placement)) {
  const ModelWeights& w = *w_;
  if (static_cast<int64_t>(placement_.layer.size()) != w.config.n_layers)
    fail("internal: placement has {} layers, model {}", placement_.layer.size(), w.config.n_layers);
  // Each backend gets all of its weights in one call (a GPU backend packs them in one allocation).
  std::vector<std::pair<Backend*, std::vector<const WeightTensor*>>> per_backend;
  auto place = [&](Backend* b, const WeightTensor& t) {
    auto it = std::find_if(per_backend.begin(), per_backend.end(), [&](const auto& e) { return e.first == b; });
    if (it == per_backend.end()) it = per_backend.insert(per_backend.end(), {b, {}});
    it->second.push_back(&t);
  };
  place(placement_.input, w.tok_embd);
  place(placement_.output, w.tok_embd);
  place(placement_.output, w.output_norm);
  for (size_t l = 0; l < w.layers.size(); ++l) {
    Backend* b = placement_.layer[l];
    for (const WeightTensor* t : w.layers[l].all()) {
      if (!b->supports_weight(t->type))
        fail("{}: backend {} cannot multiply by {} weights ({})", w.source, b->name(), type_name(t->type), t->name);
      place(b, *t);
    }
  }
  for (auto& [b, ts] : per_backend) {
    UploadProgress heard;
    if (progress) heard = [&progress, b = b](size_t done, size_t total) { progress(*b, done, total); };
    b->load_weights(ts, heard);
  }
}

Act Gemma3Model::scratch(Backend* b, Slot slot, int64_t rows, int64_t cols) {
  ScratchBuf& s = scratch_[{b, static_cast<int>(slot)}];
  if (rows * cols > s.capacity) {
    s.buf = Act();  // free first: peak memory stays one buffer per role
    s.buf = b->alloc(rows, cols);
    s.capacity = rows * cols;
    b->forget_recordings();  // recorded ops used the old buffer
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

void Gemma3Model::forward(const Batch& batch, KvCache& kv, std::vector<float>& logits, const LogitsRequest& request) {
  validate(batch, kv);
  const Gemma3Config& c = config();
  const ModelWeights& w = *w_;
  const int64_t allowed = request.n_allowed > 0 ? std::min(request.n_allowed, c.vocab_size) : c.vocab_size;
  if (request.top < 0 || request.top > allowed || request.top > LogitsRequest::kMaxTop)
    fail("internal: {} best logits asked of {} allowed ids", request.top, allowed);
  const auto T = static_cast<int64_t>(batch.size());
  const BatchView view{batch.tokens, batch.pos, batch.seq};
  std::vector<int64_t> past(static_cast<size_t>(kv.n_seq()));
  for (int s = 0; s < kv.n_seq(); ++s) past[static_cast<size_t>(s)] = kv.seq_len(s);
  std::vector<int64_t> rows;  // batch rows whose logits are wanted
  for (size_t i = 0; i < batch.size(); ++i)
    if (batch.want_logits[i]) rows.push_back(static_cast<int64_t>(i));

  // The pass as runs of work on one backend: the embedding, maximal ranges of consecutive layers
  // placed on one backend, the output head. The residual stream crosses backends between runs
  // only (through the host).
  struct Run {
    Backend* b;
    bool embed = false, output = false;
    int64_t l0 = 0, l1 = 0;  // layers [l0, l1)
  };
  std::vector<Run> runs{{placement_.input, true, false, 0, 0}};
  for (int64_t l = 0; l < c.n_layers; ++l) {
    Backend* b = placement_.layer[static_cast<size_t>(l)];
    if (runs.back().b != b) runs.push_back({b, false, false, l, l});
    runs.back().l1 = l + 1;
  }
  if (!rows.empty()) {
    if (runs.back().b != placement_.output) runs.push_back({placement_.output, false, false, c.n_layers, c.n_layers});
    runs.back().output = true;
  }
  for (const Run& r : runs) {  // each backend once, before its first op
    bool seen = false;
    for (const Run* p = runs.data(); p != &r; ++p) seen = seen || p->b == r.b;
    if (!seen) r.b->begin_batch(view, past, rows);
  }

  Act x, out;
  auto issue = [&](const Run& r) {
    Backend* b = r.b;
    if (r.embed) {
      x = scratch(b, kX, T, c.hidden);
      b->embed(w.tok_embd, batch.tokens, c.embed_scale, x);
    }
    if (r.l1 > r.l0) run_layers(b, r.l0, r.l1, batch, kv, past, x);
    if (r.output) {
      // §2.6: final norm and tied output projection, only for the rows that want logits.
      Act sel = scratch(b, kSel, static_cast<int64_t>(rows.size()), c.hidden);
      b->gather_rows(x, rows, sel);
      b->rms_norm(sel, w.output_norm, c.rms_eps, sel);
      out = scratch(b, kOut, static_cast<int64_t>(rows.size()), c.vocab_size);
      matmul(b, w.tok_embd, sel, out);
      if (c.final_softcap > 0) b->softcap(out, c.final_softcap);
      if (request.top > 0) {
        // Sized for the largest request once, so that a changing count never moves the buffer
        // (which would drop the recorded steps).
        Act best = scratch(b, kTop, static_cast<int64_t>(rows.size()), 2 * LogitsRequest::kMaxTop)
                       .view(static_cast<int64_t>(rows.size()), 2 * request.top);
        b->top_k(out, request.top, request.n_allowed, best);
        out = best;
      }
    }
  };
  // Graph recording: a run's ops depend on this model, the cache, the batch's shape and the
  // scratch buffers (a growth forgets the recordings); positions and tokens come through
  // begin_batch. A matmul observer reads activations on the host, so it turns recording off.
  // Only small batches (decoding) are recorded: there the launches cost as much as the work;
  // a prompt's ops are long enough to hide them.
  constexpr int64_t kMaxRecordedTokens = 16;
  const bool record = !observer_ && T <= kMaxRecordedTokens;
  for (const Run& r : runs) {
    const std::string key =
        fmt::format("m{}:kv{}:T{}:s{}:r{}:{}{}-{}{}:top{}/{}", id_, kv.id(), T, kv.n_seq(), rows.size(),
                    r.embed ? "e" : "", r.l0, r.l1, r.output ? "o" : "", request.top, request.n_allowed);
    if (!r.embed && x.owner() != r.b) {  // a placement cut: move the residual stream (never recorded)
      std::vector<float> host(static_cast<size_t>(T * c.hidden));
      x.owner()->copy_to_host(x, host.data());
      x = scratch(r.b, kX, T, c.hidden);
      r.b->copy_from_host(host.data(), x);
    }
    if (record && r.b->replay(key)) {  // the recording read and wrote these same buffers
      x = scratch(r.b, kX, T, c.hidden);
      if (r.output)
        out = request.top > 0 ? scratch(r.b, kTop, static_cast<int64_t>(rows.size()), 2 * LogitsRequest::kMaxTop)
                                    .view(static_cast<int64_t>(rows.size()), 2 * request.top)
                              : scratch(r.b, kOut, static_cast<int64_t>(rows.size()), c.vocab_size);
      continue;
    }
    if (record) r.b->record_begin(key);
    try {
      issue(r);
    } catch (...) {
      if (record) r.b->record_abort();  // else the stream would stay in capture mode
      throw;
    }
    if (record && !r.b->record_end()) issue(r);
  }
  for (size_t i = 0; i < batch.size(); ++i) kv.set_seq_len(batch.seq[i], batch.pos[i] + 1);
  const int64_t per_row = request.top > 0 ? 2 * request.top : c.vocab_size;
  logits.resize(rows.size() * static_cast<size_t>(per_row));
  if (!rows.empty()) out.owner()->copy_to_host(out, logits.data());
}

void Gemma3Model::run_layers(Backend* b, int64_t l0, int64_t l1, const Batch& batch, KvCache& kv,
                             std::span<const int64_t> past, Act& x) {
  const Gemma3Config& c = config();
  const ModelWeights& w = *w_;
  const auto T = static_cast<int64_t>(batch.size());
  const BatchView view{batch.tokens, batch.pos, batch.seq};
  Act h = scratch(b, kH, T, c.hidden);
  Act q = scratch(b, kQ, T, c.q_dim());
  Act k = scratch(b, kK, T, c.kv_dim());
  Act v = scratch(b, kV, T, c.kv_dim());
  Act att = scratch(b, kAtt, T, c.q_dim());
  Act o = scratch(b, kO, T, c.hidden);
  Act gate = scratch(b, kGate, T, c.ffn);
  Act up = scratch(b, kUp, T, c.ffn);
  bool h_ready = false;  // h already holds this layer's input norm (fused into the previous layer)
  for (int64_t l = l0; l < l1; ++l) {
    const LayerWeights& L = w.layers[static_cast<size_t>(l)];
    const bool global = c.layer_is_global[static_cast<size_t>(l)];
    // §2.3-2.4: attention block.
    if (!h_ready) b->rms_norm(x, L.attn_norm, c.rms_eps, h);
    const WeightTensor* qkv_w[] = {&L.q, &L.k, &L.v};
    Act* qkv[] = {&q, &k, &v};
    if (observer_)
      for (const WeightTensor* t : qkv_w) observer_(*t, h);
    b->matmul_many(qkv_w, h, qkv);
    const float base = global ? c.rope_base_global : c.rope_base_local;
    const float scale = global ? c.rope_scale_global : 1.0f;  // linear scaling on global layers only
    // QK-norm per head, before RoPE (§2.4.2), then attention (§2.4.4-2.4.7).
    AttentionParams ap{c.n_heads, c.n_kv_heads, c.head_dim, c.attn_scale, global ? 0 : c.sliding_window};
    b->qk_norm_rope_attention(q, k, v, L.q_norm, L.k_norm, c.rms_eps, batch.pos, base, scale, kv.layer(l), view, past,
                              ap, att);
    matmul(b, L.o, att, o);
    b->add_norm(x, o, L.post_attn_norm, &L.ffn_norm, c.rms_eps, h);
    // §2.5: GeGLU feed-forward block.
    if (observer_) {
      observer_(L.gate, h);
      observer_(L.up, h);
    }
    b->matmul_geglu(L.gate, L.up, h, gate, up);
    matmul(b, L.down, gate, o);
    const WeightTensor* next = l + 1 < l1 ? &w.layers[static_cast<size_t>(l + 1)].attn_norm : nullptr;
    b->add_norm(x, o, L.post_ffw_norm, next, c.rms_eps, h);
    h_ready = next != nullptr;
  }
}

}  // namespace unicorn
