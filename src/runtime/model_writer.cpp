#include "runtime/model_writer.h"

#include "core/types.h"
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
  if (scheme == "q4_mix" || scheme == "q4_k_m") return 15;  // MOSTLY_Q4_K_M
  if (scheme == "q5_k_m") return 17;                        // MOSTLY_Q5_K_M
  if (scheme == "q4_small") return 30;                      // MOSTLY_IQ4_XS
  const auto t = type_from_name(scheme);                    // a single type, in any case
  if (!t) return std::nullopt;
  switch (*t) {  // llama.cpp's "mostly T" numbers (Q4_K alone: Q4_K_S; Q5_K alone: Q5_K_S)
    case GgmlType::F32:
      return 0;
    case GgmlType::F16:
      return 1;
    case GgmlType::Q4_0:
      return 2;
    case GgmlType::Q4_1:
      return 3;
    case GgmlType::Q8_0:
      return 7;
    case GgmlType::Q5_0:
      return 8;
    case GgmlType::Q5_1:
      return 9;
    case GgmlType::Q2_K:
      return 10;
    case GgmlType::Q3_K:
      return 11;
    case GgmlType::Q4_K:
      return 14;
    case GgmlType::Q5_K:
      return 16;
    case GgmlType::Q6_K:
      return 18;
    case GgmlType::IQ4_XS:
      return 30;
    case GgmlType::BF16:
      return 32;
    default:
      return std::nullopt;
  }
}

}  // namespace unicorn
