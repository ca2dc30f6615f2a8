// Safetensors reader over mmap (gemma3-spec.md §3.1): 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end)}}, then the data.
// The whole header is validated at open (offsets inside the file, shape × dtype size == byte
// length); dtypes other than F32/F16/BF16 are kept and reported only when such a tensor is
// actually asked for as a GgmlType.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/types.h"
#include "formats/mapped_file.h"

namespace unicorn {

struct SafetensorsTensor {
  std::string name;
  std::string dtype;           // as written in the header: "BF16", "F32", "I64", ...
  std::vector<int64_t> shape;  // PyTorch order, outermost first
  const uint8_t* data;         // into the mapping
  size_t nbytes;
  int64_t n_elements() const;
};

class SafetensorsFile {
 public:
  // Throws Error naming the path and what is wrong (bad header length, bad JSON, offsets
  // outside the file, shape/size mismatch...).
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  // The same over an already open mapping (e.g. MappedFile::from_bytes); path() is its path().
  static std::unique_ptr<SafetensorsFile> open(std::unique_ptr<MappedFile> map);

  const std::string& path() const { return path_; }
  // In data-offset order.
  const std::vector<SafetensorsTensor>& tensors() const { return tensors_; }
  const SafetensorsTensor* find(std::string_view name) const;
  // The optional "__metadata__" string map (e.g. {"format": "pt"}).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The element type of a tensor; throws Error naming the file, tensor and dtype if it is not
  // one Unicorn reads (F32, F16, BF16).
  GgmlType ggml_type(const SafetensorsTensor& t) const;

 private:
  std::string path_;
  std::unique_ptr<MappedFile> map_;
  std::vector<SafetensorsTensor> tensors_;
  std::unordered_map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

// F32/F16/BF16 map to GgmlType; nullopt for every other safetensors dtype.
std::optional<GgmlType> safetensors_dtype_to_ggml(std::string_view dtype);

}  // namespace unicorn
