// GGUF v2/v3 reader over mmap (gemma3-spec.md §4.1). Values of every metadata type are kept;
// integer getters accept any integer type (writers use u32 where the spec says u64, §7.6).
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "core/types.h"
#include "formats/mapped_file.h"

namespace unicorn {

constexpr uint32_t kGgufMagic = 0x46554747;  // "GGUF" read as a little-endian u32, spec §4.1
constexpr size_t kGgufDefaultAlignment = 32;

enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

// Name of a value type as used in messages ("u32", "string", "array"...); "type N" if unknown.
std::string gguf_value_type_name(GgufValueType t);
// Bytes of one encoded scalar of this type; 0 for the variable-size STRING and ARRAY.
size_t gguf_scalar_size(GgufValueType t);

struct GgufArray {
  GgufValueType elem_type;
  // Exactly one of these is filled, by element kind: integers/bools widen to int64 (u64 values
  // above INT64_MAX are rejected), floats to double, strings as strings.
  std::vector<int64_t> ints;
  std::vector<double> floats;
  std::vector<std::string> strings;
  size_t size() const;
};

struct GgufValue {
  GgufValueType type;
  std::variant<int64_t, uint64_t, double, bool, std::string, GgufArray> v;
};

struct GgufTensorInfo {
  std::string name;
  std::vector<int64_t> ne;  // ggml order: ne[0] is contiguous (PyTorch's last dim)
  GgmlType type;
  uint64_t offset;      // relative to the data section
  const uint8_t* data;  // into the mapping
  size_t nbytes;
  int64_t n_elements() const;
};

class GgufFile {
 public:
  // Opens and validates the whole header and tensor table; throws Error naming the path and
  // what is wrong (not a GGUF, bad version, truncated, tensor data outside the file...).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // The same over an already open mapping (e.g. MappedFile::from_bytes); path() is its path().
  static std::unique_ptr<GgufFile> open(std::unique_ptr<MappedFile> map);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  size_t alignment() const { return alignment_; }

  const GgufValue* find(std::string_view key) const;
  const std::vector<std::string>& keys() const { return key_order_; }
  // Typed getters: nullopt if absent; throw Error naming the key if present with a wrong type.
  std::optional<int64_t> get_int(std::string_view key) const;
  std::optional<double> get_float(std::string_view key) const;  // any numeric type
  std::optional<bool> get_bool(std::string_view key) const;
  std::optional<std::string> get_string(std::string_view key) const;
  const GgufArray* get_array(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  const GgufTensorInfo* tensor(std::string_view name) const;
  // File offset of the data section (tensor offsets are relative to it).
  size_t data_offset() const { return data_offset_; }

 private:
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  uint32_t version_ = 0;
  size_t alignment_ = 32;
  size_t data_offset_ = 0;
  std::unordered_map<std::string, GgufValue> kv_;
  std::vector<std::string> key_order_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

}  // namespace unicorn
