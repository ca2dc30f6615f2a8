#include "runtime/model_writer.h"

#include <cctype>

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

std::optional<uint32_t> llama_file_type(const std::string& scheme) {
  struct F {
    const char* scheme;
    uint32_t id;
  };
  // Presets and synthetic schemes, then single types as llama.cpp names files mostly of them
  // (Q4_K alone: Q4_K_S; Q5_K alone: Q5_K_S).
  static constexpr F kTypes[] = {{"q4_mix", 15}, {"q4_k_m", 15}, {"q4_small", 30}, {"f32", 0},   {"f16", 1},
                                 {"q4_0", 2},    {"q4_1", 3},    {"q8_0", 7},      {"q5_0", 8},  {"q5_1", 9},
                                 {"q2_k", 10},   {"q3_k", 11},   {"q4_k", 14},     {"q5_k", 16}, {"q6_k", 18},
                                 {"iq4_xs", 30}, {"bf16", 32}};
  std::string lower = scheme;  // type names are taken in any case (--type Q4_K)
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const F& f : kTypes)
    if (lower == f.scheme) return f.id;
  return std::nullopt;
}

}  // namespace unicorn
