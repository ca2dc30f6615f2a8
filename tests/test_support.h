// Helpers shared by tests: fixture paths, reading raw float files, relative errors.
#pragma once
#include <cmath>
#include <cstdint>
#include <fstream>
#include <span>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace unicorn::test {

inline std::string source_dir() { return UNICORN_SOURCE_DIR; }
inline std::string fixture(const std::string& rel) { return source_dir() + "/tests/fixtures/" + rel; }

inline std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  std::vector<float> v;
  if (!f) return v;
  const auto n = static_cast<size_t>(f.tellg());
  v.resize(n / 4);
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * 4));
  return v;
}

// ‖a − ref‖₂² and ‖ref‖₂², summed in double.
struct ErrorEnergy {
  double err = 0, ref = 0;
};
inline ErrorEnergy error_energy(std::span<const float> a, std::span<const float> ref) {
  ErrorEnergy e;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    e.err += d * d;
    e.ref += static_cast<double>(ref[i]) * ref[i];
  }
  return e;
}

// ‖a − ref‖₂ / ‖ref‖₂
inline double rel_error(std::span<const float> a, std::span<const float> ref) {
  const ErrorEnergy e = error_energy(a, ref);
  return std::sqrt(e.err / e.ref);
}

inline int64_t argmax(std::span<const float> v) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[static_cast<size_t>(best)]) best = static_cast<int64_t>(i);
  return best;
}

// A small SentencePiece-style tokenizer.json: the specials <pad> <eos> <bos> <unk> (ids 0-3, also
// as added tokens), the 256 byte pieces, then `pieces` in order, with `merges`; spaces become
// U+2581. Callers add their own added_tokens.
inline nlohmann::json small_hf_tokenizer(const std::vector<std::string>& pieces,
                                         const std::vector<std::string>& merges) {
  nlohmann::json vocab = nlohmann::json::object(), added = nlohmann::json::array();
  int id = 0;
  for (const char* s : {"<pad>", "<eos>", "<bos>", "<unk>"}) {
    added.push_back({{"id", id}, {"content", s}, {"special", true}});
    vocab[s] = id++;
  }
  for (int b = 0; b < 256; ++b) vocab[fmt::format("<0x{:02X}>", b)] = id++;
  for (const std::string& s : pieces) vocab[s] = id++;
  return {{"normalizer", {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}}},
          {"added_tokens", added},
          {"model", {{"type", "BPE"}, {"byte_fallback", true}, {"vocab", vocab}, {"merges", merges}}}};
}

}  // namespace unicorn::test
