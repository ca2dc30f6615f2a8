#include "model/load_gguf.h"

#include <fmt/format.h>

#include "core/error.h"
#include "formats/gguf.h"
#include "model/weight_checks.h"

namespace unicorn {

std::unique_ptr<ModelWeights> load_gguf_weights(std::shared_ptr<const GgufFile> file) {
  const GgufFile& f = *file;
  auto mw = std::make_unique<ModelWeights>();
  mw->source = f.path();
  mw->format = "gguf";
  mw->keep_alive.push_back(file);
  Gemma3Config c = config_from_gguf(f);

  auto get = [&](const std::string& name, bool required = true) -> const GgufTensorInfo* {
    const GgufTensorInfo* t = f.tensor(name);
    if (!t && required) fail("{}: missing tensor '{}'", f.path(), name);
    return t;
  };
  // GGUF dims are ggml order: ne[0] = input features (cols), ne[1] = rows (spec §4.1).
  auto matrix = [&](const std::string& name) {
    const GgufTensorInfo* t = get(name);
    if (t->ne.size() > 2 && t->n_elements() != t->ne[0] * t->ne[1])
      fail("{}: tensor '{}' has {} dims, expected a matrix", f.path(), name, t->ne.size());
    WeightTensor w;
    w.name = name;
    w.type = t->type;
    w.cols = t->ne[0];
    w.rows = t->ne.size() > 1 ? t->ne[1] : 1;
    w.data = t->data;
    return w;
  };
  mw->tok_embd = matrix("token_embd.weight");
  c.vocab_size = mw->tok_embd.rows;
  c.validate(f.path());
  mw->config = c;
  mw->output_norm = matrix("output_norm.weight");
  if (const GgufTensorInfo* out = get("output.weight", false))
    fail(
        "{}: has a separate output.weight ({}); Gemma 3 ties it to token_embd and Unicorn does not "
        "support untied output yet",
        f.path(), type_name(out->type));

  mw->layers.resize(static_cast<size_t>(c.n_layers));
  for (int64_t i = 0; i < c.n_layers; ++i) {
    LayerWeights& L = mw->layers[static_cast<size_t>(i)];
    const std::string p = fmt::format("blk.{}.", i);
    L.attn_norm = matrix(p + "attn_norm.weight");
    L.q = matrix(p + "attn_q.weight");
    L.k = matrix(p + "attn_k.weight");
    L.v = matrix(p + "attn_v.weight");
    L.o = matrix(p + "attn_output.weight");
    L.q_norm = matrix(p + "attn_q_norm.weight");
    L.k_norm = matrix(p + "attn_k_norm.weight");
    L.post_attn_norm = matrix(p + "post_attention_norm.weight");
    L.ffn_norm = matrix(p + "ffn_norm.weight");  // the PRE-FFN norm in Gemma 3 (spec §4.3 trap)
    L.gate = matrix(p + "ffn_gate.weight");
    L.up = matrix(p + "ffn_up.weight");
    L.down = matrix(p + "ffn_down.weight");
    L.post_ffw_norm = matrix(p + "post_ffw_norm.weight");
  }
  check_weight_shapes(*mw);
  // Norm vectors are used as F32 multipliers; GGUF already holds 1+w (spec §4.4).
  convert_norms_to_f32(*mw, /*add_one=*/false);
  return mw;
}

}  // namespace unicorn
