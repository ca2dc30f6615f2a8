#include "runtime/model_writer.h"

#include "formats/gguf_writer.h"

namespace unicorn {

void write_model_gguf(const ModelWeights& w, const std::string& path, std::vector<MetadataEntry> extra) {
  GgufWriter out(path);
  for (MetadataEntry& m : gemma3_metadata(w.config, w.source)) out.add_value(std::move(m.key), std::move(m.value));
  for (MetadataEntry& m : extra) out.add_value(std::move(m.key), std::move(m.value));
  auto put = [&](const WeightTensor& t) {
    // Norms are 1-D in GGUF files (spec §4.3); matrices [cols, rows] in ggml order.
    const bool vector = t.rows == 1 && t.name.ends_with("norm.weight");
    std::vector<int64_t> ne = vector ? std::vector<int64_t>{t.cols} : std::vector<int64_t>{t.cols, t.rows};
    out.add_tensor(t.name, std::move(ne), t.type, t.data, t.nbytes());
  };
  put(w.tok_embd);
  put(w.output_norm);
  for (const LayerWeights& L : w.layers)
    for (const WeightTensor* t : L.all()) put(*t);
  out.write();
}

}  // namespace unicorn
