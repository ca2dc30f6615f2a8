// GGUF v3 writer (gemma3-spec.md §4.1). Collects metadata and tensor descriptions, then write()
// streams everything to PATH.tmp and renames it to PATH only when every byte is on disk, so a
// failed or interrupted write never leaves a half file under the final name.
//
// Tensor bytes come either from a pointer (which must stay valid until write()) or from a
// callback that writes them when their turn comes, so a quantizer can produce one tensor at a
// time without holding the whole model in memory.
//
// The writer is generic: it writes whatever keys it is given. Convention for files Unicorn
// writes: the attention scale is recorded under `gemma3.attention.scale` (f32), so that a reader
// does not have to re-derive it from query_pre_attn_scalar (spec §7.1).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_set>
#include <vector>

#include "core/types.h"
#include "formats/gguf.h"

namespace unicorn {

// Where a tensor callback writes its bytes; it must write exactly the tensor's byte size.
class GgufTensorSink {
 public:
  virtual ~GgufTensorSink() = default;
  virtual void write(const void* data, size_t n) = 0;
};

class GgufWriter {
 public:
  using TensorBytesFn = std::function<void(GgufTensorSink&)>;

  // alignment must be a power of two; a value other than 32 is recorded as general.alignment.
  explicit GgufWriter(std::string path, uint32_t alignment = kGgufDefaultAlignment);

  const std::string& path() const { return path_; }

  // Metadata, written in the order added. Duplicate keys throw Error.
  void add_u8(std::string key, uint8_t v);
  void add_i8(std::string key, int8_t v);
  void add_u16(std::string key, uint16_t v);
  void add_i16(std::string key, int16_t v);
  void add_u32(std::string key, uint32_t v);
  void add_i32(std::string key, int32_t v);
  void add_u64(std::string key, uint64_t v);
  void add_i64(std::string key, int64_t v);
  void add_f32(std::string key, float v);
  void add_f64(std::string key, double v);
  void add_bool(std::string key, bool v);
  void add_string(std::string key, std::string v);
  void add_string_array(std::string key, std::vector<std::string> v);
  // elem_type is any integer type or BOOL; values must fit it.
  void add_int_array(std::string key, GgufValueType elem_type, std::vector<int64_t> v);
  void add_i32_array(std::string key, const std::vector<int32_t>& v);
  void add_f32_array(std::string key, const std::vector<float>& v);
  void add_f64_array(std::string key, std::vector<double> v);
  // Any value as a GgufFile returns it (e.g. to copy metadata from one file to another).
  void add_value(std::string key, GgufValue v);

  // ne is in ggml order (ne[0] contiguous). nbytes must equal the size ne/type imply.
  void add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type, const void* data, size_t nbytes);
  void add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type, TensorBytesFn write);

  // Writes the file; may be called once. Throws Error naming the path on any failure
  // (and removes PATH.tmp).
  void write();

 private:
  struct PendingTensor {
    std::string name;
    std::vector<int64_t> ne;
    GgmlType type;
    uint64_t offset;  // relative to the data section
    size_t nbytes;
    TensorBytesFn bytes;
  };
  struct PendingKv {
    std::string key;
    GgufValue value;
  };

  size_t tensor_bytes(const std::string& name, const std::vector<int64_t>& ne, GgmlType type) const;
  void check_value(const std::string& key, const GgufValue& v) const;
  void write_to(const std::string& tmp_path);

  std::string path_;
  uint32_t alignment_;
  std::vector<PendingKv> kv_;
  std::unordered_set<std::string> keys_;
  std::vector<PendingTensor> tensors_;
  std::unordered_set<std::string> tensor_names_;
  uint64_t data_size_ = 0;  // end of the last tensor, relative to the data section
  bool written_ = false;
};

}  // namespace unicorn
