#include "model/load_hf.h"

#include <fmt/format.h>

#include "core/error.h"
#include "formats/hf_checkpoint.h"
#include "model/weight_checks.h"

namespace unicorn {

std::unique_ptr<ModelWeights> load_hf_weights(const std::string& dir) {
  std::shared_ptr<HfCheckpoint> ck = HfCheckpoint::open(dir);
  auto mw = std::make_unique<ModelWeights>();
  mw->source = dir;
  mw->format = "safetensors";
  mw->keep_alive.push_back(ck);

  // PyTorch shapes are [out, in] = [rows, cols] (spec §3.3).
  auto matrix = [&](const std::string& name) {
    const HfTensor t = ck->text_tensor(name);
    if (t.shape.empty() || t.shape.size() > 2)
      fail("{}: tensor '{}' has {} dims, expected 1 or 2", t.file, t.name, t.shape.size());
    WeightTensor w;
    w.name = t.name;
    w.type = t.dtype;
    w.rows = t.shape.size() == 2 ? t.shape[0] : 1;
    w.cols = t.shape.back();
    w.data = t.data;
    return w;
  };
  mw->tok_embd = matrix("embed_tokens.weight");
  Gemma3Config c = config_from_hf(ck->config(), dir + "/config.json", mw->tok_embd.type);
  if (c.vocab_size != mw->tok_embd.rows) {
    // The embedding is the truth (spec §4.3: read n_vocab from the tensor).
    c.vocab_size = mw->tok_embd.rows;
  }
  c.validate(dir + "/config.json");
  mw->config = c;
  if (auto head = ck->lm_head())
    fail(
        "{}: has a separate {} ; Gemma 3 ties the output to embed_tokens and Unicorn does not support an "
        "untied head yet",
        dir, head->name);
  mw->output_norm = matrix("norm.weight");
  mw->layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& L = mw->layers[static_cast<size_t>(i)];
    const std::string p = fmt::format("layers.{}.", i);
    L.attn_norm = matrix(p + "input_layernorm.weight");
    L.q = matrix(p + "self_attn.q_proj.weight");
    L.k = matrix(p + "self_attn.k_proj.weight");
    L.v = matrix(p + "self_attn.v_proj.weight");
    L.o = matrix(p + "self_attn.o_proj.weight");
    L.q_norm = matrix(p + "self_attn.q_norm.weight");
    L.k_norm = matrix(p + "self_attn.k_norm.weight");
    L.post_attn_norm = matrix(p + "post_attention_layernorm.weight");
    L.ffn_norm = matrix(p + "pre_feedforward_layernorm.weight");
    L.gate = matrix(p + "mlp.gate_proj.weight");
    L.up = matrix(p + "mlp.up_proj.weight");
    L.down = matrix(p + "mlp.down_proj.weight");
    L.post_ffw_norm = matrix(p + "post_feedforward_layernorm.weight");
  }
  check_weight_shapes(*mw);
  convert_norms_to_f32(*mw, /*add_one=*/true);  // HF stores zero-centred w (spec §3.3)
  mw->skipped = ck->skipped_tensors();
  return mw;
}

}  // namespace unicorn
