#include "core/types.h"

#include <array>
#include <cctype>

#include "core/error.h"

namespace unicorn {
namespace {
// Block sizes and byte counts: gemma3-spec.md §4.5 (GGML-common structs).
constexpr std::array<TypeTraits, 16> kTraits = {{
    {GgmlType::F32, "F32", 1, 4, false},
    {GgmlType::F16, "F16", 1, 2, false},
    {GgmlType::BF16, "BF16", 1, 2, false},
    {GgmlType::Q4_0, "Q4_0", 32, 18, true},
    {GgmlType::Q4_1, "Q4_1", 32, 20, true},
    {GgmlType::Q5_0, "Q5_0", 32, 22, true},
    {GgmlType::Q5_1, "Q5_1", 32, 24, true},
    {GgmlType::Q8_0, "Q8_0", 32, 34, true},
    {GgmlType::Q8_1, "Q8_1", 32, 36, true},
    {GgmlType::Q2_K, "Q2_K", 256, 84, true},
    {GgmlType::Q3_K, "Q3_K", 256, 110, true},
    {GgmlType::Q4_K, "Q4_K", 256, 144, true},
    {GgmlType::Q5_K, "Q5_K", 256, 176, true},
    {GgmlType::Q6_K, "Q6_K", 256, 210, true},
    {GgmlType::Q8_K, "Q8_K", 256, 292, true},
    {GgmlType::IQ4_XS, "IQ4_XS", 256, 136, true},
}};
}  // namespace

std::optional<TypeTraits> type_traits(uint32_t id) {
  for (const auto& t : kTraits)
    if (static_cast<uint32_t>(t.type) == id) return t;
  return std::nullopt;
}

const TypeTraits& traits(GgmlType t) {
  for (const auto& tr : kTraits)
    if (tr.type == t) return tr;
  fail("internal: unknown tensor type id {}", static_cast<uint32_t>(t));
}

std::optional<GgmlType> type_from_name(std::string_view name) {
  for (const auto& t : kTraits) {
    if (t.name.size() != name.size()) continue;
    bool eq = true;
    for (size_t i = 0; i < name.size(); ++i)
      if (std::toupper(static_cast<unsigned char>(name[i])) != t.name[i]) eq = false;
    if (eq) return t.type;
  }
  return std::nullopt;
}

size_t row_bytes(GgmlType t, int64_t n) {
  const auto& tr = traits(t);
  if (n % tr.block_size != 0)
    fail("row of {} values is not a multiple of the {} block size {}", n, tr.name, tr.block_size);
  return static_cast<size_t>(n / tr.block_size) * tr.block_bytes;
}

}  // namespace unicorn
