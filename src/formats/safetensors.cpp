#include "formats/safetensors.h"

#include <algorithm>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace unicorn {
namespace {

// Element sizes of the safetensors dtypes (safetensors' Dtype enum). Sub-byte float types
// (F4, F6_*) have no whole-byte size and are absent: their sizes are not checked.
size_t dtype_size(std::string_view d) {
  static const std::pair<std::string_view, size_t> kSizes[] = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},     {"U32", 4},
      {"F32", 4},  {"F64", 8}, {"I64", 8}, {"U64", 8},     {"C64", 8},
  };
  for (const auto& [name, size] : kSizes)
    if (name == d) return size;
  return 0;
}

// For messages; replaces invalid UTF-8 instead of throwing.
std::string to_text(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

uint64_t read_le_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::optional<GgmlType> safetensors_dtype_to_ggml(std::string_view dtype) {
  if (dtype == "F32") return GgmlType::F32;
  if (dtype == "F16") return GgmlType::F16;
  if (dtype == "BF16") return GgmlType::BF16;
  return std::nullopt;
}

int64_t SafetensorsTensor::n_elements() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // checked against overflow at open
  return n;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) { return open(MappedFile::open(path)); }

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(std::unique_ptr<MappedFile> map) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = map->path();
  f->map_ = std::move(map);
  const std::string& path = f->path_;
  const uint8_t* base = f->map_->data();
  const size_t size = f->map_->size();
  if (size < 8) fail("{}: not a safetensors file (only {} bytes, no header length)", path, size);
  const uint64_t header_len = read_le_u64(base);
  if (header_len < 2 || header_len > size - 8)
    fail("{}: not a safetensors file (header length {} does not fit the file size {})", path, header_len, size);
  const char* json_begin = reinterpret_cast<const char*>(base + 8);
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(json_begin, json_begin + header_len);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: safetensors header is not valid JSON: {}", path, e.what());
  }
  if (!header.is_object()) fail("{}: safetensors header is not a JSON object", path);

  const uint8_t* data = base + 8 + header_len;
  const uint64_t data_size = size - 8 - header_len;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail("{}: __metadata__ is not an object", path);
      for (const auto& [k, v] : entry.items())
        if (v.is_string()) f->metadata_[k] = v.get<std::string>();
      continue;
    }
    const auto bad = [&](std::string_view why) { fail("{}: tensor '{}': {}", path, name, why); };
    if (!entry.is_object()) bad("entry is not a JSON object");
    const auto dt = entry.find("dtype");
    const auto sh = entry.find("shape");
    const auto off = entry.find("data_offsets");
    if (dt == entry.end() || !dt->is_string()) bad("missing or non-string 'dtype'");
    if (sh == entry.end() || !sh->is_array()) bad("missing or non-array 'shape'");
    if (off == entry.end() || !off->is_array() || off->size() != 2 || !(*off)[0].is_number_unsigned() ||
        !(*off)[1].is_number_unsigned())
      bad("'data_offsets' is not a pair of non-negative integers");

    SafetensorsTensor t;
    t.name = name;
    t.dtype = dt->get<std::string>();
    int64_t n = 1;
    for (const auto& d : *sh) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{1} << 62)
        bad(fmt::format("invalid shape {}", to_text(*sh)));
      const auto dim = static_cast<int64_t>(d.get<uint64_t>());
      if (__builtin_mul_overflow(n, dim, &n)) bad(fmt::format("shape {} is too large", to_text(*sh)));
      t.shape.push_back(dim);
    }
    const uint64_t begin = (*off)[0].get<uint64_t>();
    const uint64_t end = (*off)[1].get<uint64_t>();
    if (begin > end || end > data_size)
      bad(fmt::format("data_offsets [{}, {}) lie outside the {} data bytes of the file", begin, end, data_size));
    t.data = data + begin;
    t.nbytes = static_cast<size_t>(end - begin);
    if (const size_t es = dtype_size(t.dtype); es != 0) {
      uint64_t expected;
      if (__builtin_mul_overflow(static_cast<uint64_t>(n), es, &expected) || expected != t.nbytes)
        bad(fmt::format("shape {} of {} needs {} bytes but data_offsets span {}", to_text(*sh), t.dtype,
                        static_cast<uint64_t>(n) * es, t.nbytes));
    }
    f->tensors_.push_back(std::move(t));
  }

  std::sort(f->tensors_.begin(), f->tensors_.end(), [](const auto& a, const auto& b) { return a.data < b.data; });
  for (size_t i = 0; i < f->tensors_.size(); ++i) {
    const auto& t = f->tensors_[i];
    if (i > 0) {
      const auto& prev = f->tensors_[i - 1];
      if (t.data < prev.data + prev.nbytes) fail("{}: tensors '{}' and '{}' overlap", path, prev.name, t.name);
    }
    f->index_.emplace(t.name, i);
  }
  return f;
}

const SafetensorsTensor* SafetensorsFile::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

GgmlType SafetensorsFile::ggml_type(const SafetensorsTensor& t) const {
  if (auto g = safetensors_dtype_to_ggml(t.dtype)) return *g;
  fail("{}: tensor '{}' has dtype {}; Unicorn reads only F32, F16 and BF16 tensors", path_, t.name, t.dtype);
}

}  // namespace unicorn
