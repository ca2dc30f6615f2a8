// GGUF v2/v3 parser (gemma3-spec.md §4.1). The file is untrusted input: every read is checked
// against the end of the mapping, and every count is checked against the bytes that remain
// before anything is allocated, so a corrupt file becomes an Error, never a crash or a huge
// allocation.
#include "formats/gguf.h"

#include <bit>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace unicorn {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF reader assumes a little-endian host");

constexpr int kMaxDims = 4;
// Smallest encodings, used to reject counts that cannot fit in the remaining bytes.
constexpr size_t kMinKvBytes = 8 + 4 + 1;              // empty key, type, 1-byte value
constexpr size_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // empty name, n_dims=0, type, offset
constexpr size_t kMaxAlignment = size_t{1} << 30;

// Bounds-checked little-endian cursor over the mapping. `where` names what is being read so
// that a truncation message can say "while reading tensor info 17 (blk.1.attn_q.weight)".
class Cursor {
 public:
  Cursor(const uint8_t* data, size_t size, const std::string& path) : data_(data), size_(size), path_(path) {}

  size_t pos() const { return pos_; }
  size_t left() const { return size_ - pos_; }
  void set_where(std::string w) { where_ = std::move(w); }
  const std::string& where() const { return where_; }

  template <typename T>
  T read() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }

  std::string read_string() {
    const uint64_t n = read<uint64_t>();
    if (n > left())
      fail("{}: string length {} exceeds the {} bytes left in the file, while reading {}", path_, n, left(), where_);
    std::string s(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return s;
  }

 private:
  void need(size_t n) {
    if (n > left()) fail("{}: truncated while reading {}", path_, where_);
  }

  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
  std::string where_ = "the header";
};

bool is_integer_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::U16:
    case GgufValueType::I16:
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::U64:
    case GgufValueType::I64:
      return true;
    default:
      return false;
  }
}

bool is_known_type(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::F64); }

bool read_bool(Cursor& c, const std::string& path) {
  const uint8_t b = c.read<uint8_t>();
  if (b > 1) fail("{}: invalid bool byte {} while reading {}", path, b, c.where());
  return b == 1;
}

// Reads one integer of type t, widened. u64 values land in `big` (to keep their full range).
int64_t read_int(Cursor& c, GgufValueType t, const std::string& path, uint64_t* big) {
  switch (t) {
    case GgufValueType::U8:
      return c.read<uint8_t>();
    case GgufValueType::I8:
      return c.read<int8_t>();
    case GgufValueType::U16:
      return c.read<uint16_t>();
    case GgufValueType::I16:
      return c.read<int16_t>();
    case GgufValueType::U32:
      return c.read<uint32_t>();
    case GgufValueType::I32:
      return c.read<int32_t>();
    case GgufValueType::I64:
      return c.read<int64_t>();
    case GgufValueType::U64: {
      const uint64_t u = c.read<uint64_t>();
      if (big) {
        *big = u;
        return 0;
      }
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail("{}: u64 array element {} is too large, while reading {}", path, u, c.where());
      return static_cast<int64_t>(u);
    }
    default:
      fail("{}: internal: {} is not an integer type", path, gguf_value_type_name(t));
  }
}

GgufArray read_array(Cursor& c, const std::string& path) {
  GgufArray a;
  const uint32_t raw_elem = c.read<uint32_t>();
  if (!is_known_type(raw_elem)) fail("{}: unknown array element type {} while reading {}", path, raw_elem, c.where());
  a.elem_type = static_cast<GgufValueType>(raw_elem);
  if (a.elem_type == GgufValueType::ARRAY)
    fail("{}: arrays of arrays are not supported, while reading {}", path, c.where());
  const uint64_t n = c.read<uint64_t>();
  // A string element takes at least its 8-byte length.
  const size_t min_elem = a.elem_type == GgufValueType::STRING ? 8 : gguf_scalar_size(a.elem_type);
  if (n > c.left() / min_elem)
    fail("{}: array of {} {} elements does not fit in the {} bytes left, while reading {}", path, n,
         gguf_value_type_name(a.elem_type), c.left(), c.where());
  const size_t count = static_cast<size_t>(n);
  if (a.elem_type == GgufValueType::STRING) {
    a.strings.reserve(count);
    for (size_t i = 0; i < count; ++i) a.strings.push_back(c.read_string());
  } else if (a.elem_type == GgufValueType::F32 || a.elem_type == GgufValueType::F64) {
    a.floats.reserve(count);
    for (size_t i = 0; i < count; ++i)
      a.floats.push_back(a.elem_type == GgufValueType::F32 ? c.read<float>() : c.read<double>());
  } else if (a.elem_type == GgufValueType::BOOL) {
    a.ints.reserve(count);
    for (size_t i = 0; i < count; ++i) a.ints.push_back(read_bool(c, path) ? 1 : 0);
  } else {
    a.ints.reserve(count);
    for (size_t i = 0; i < count; ++i) a.ints.push_back(read_int(c, a.elem_type, path, nullptr));
  }
  return a;
}

GgufValue read_value(Cursor& c, const std::string& path) {
  GgufValue v;
  const uint32_t raw = c.read<uint32_t>();
  if (!is_known_type(raw)) fail("{}: unknown value type {} while reading {}", path, raw, c.where());
  v.type = static_cast<GgufValueType>(raw);
  if (is_integer_type(v.type)) {
    uint64_t big = 0;
    const int64_t i = read_int(c, v.type, path, &big);
    if (v.type == GgufValueType::U64)
      v.v = big;
    else
      v.v = i;
  } else if (v.type == GgufValueType::F32) {
    v.v = static_cast<double>(c.read<float>());
  } else if (v.type == GgufValueType::F64) {
    v.v = c.read<double>();
  } else if (v.type == GgufValueType::BOOL) {
    v.v = read_bool(c, path);
  } else if (v.type == GgufValueType::STRING) {
    v.v = c.read_string();
  } else {
    v.v = read_array(c, path);
  }
  return v;
}

// Checks that n_dims/dims/type describe a tensor whose byte size is computable, and returns it.
size_t tensor_nbytes(const std::string& path, const GgufTensorInfo& t) {
  int64_t n = 1;
  for (int64_t d : t.ne)
    if (__builtin_mul_overflow(n, d, &n)) fail("{}: tensor '{}' has too many elements", path, t.name);
  const auto& tr = traits(t.type);
  const int64_t ne0 = t.ne.empty() ? 1 : t.ne[0];
  if (ne0 % tr.block_size != 0)
    fail("{}: tensor '{}' has first dimension {}, not a multiple of the {} block size {}", path, t.name, ne0, tr.name,
         tr.block_size);
  size_t bytes = row_bytes(t.type, ne0);
  const size_t rows = static_cast<size_t>(n / ne0);
  if (__builtin_mul_overflow(bytes, rows, &bytes)) fail("{}: tensor '{}' is too large", path, t.name);
  return bytes;
}

uint64_t saturating_add(uint64_t a, uint64_t b) {
  uint64_t r;
  return __builtin_add_overflow(a, b, &r) ? std::numeric_limits<uint64_t>::max() : r;
}

}  // namespace

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) { return open(MappedFile::open(path)); }

std::unique_ptr<GgufFile> GgufFile::open(std::unique_ptr<MappedFile> map) {
  std::unique_ptr<GgufFile> f(new GgufFile());
  f->path_ = map->path();
  f->map_ = std::move(map);
  const std::string& path = f->path_;
  const uint8_t* base = f->map_->data();
  const size_t size = f->map_->size();
  if (size == 0) fail("{}: empty file, not a GGUF file", path);
  if (size < 4 || std::memcmp(base, "GGUF", 4) != 0) fail("{}: not a GGUF file (bad magic)", path);

  Cursor c(base, size, path);
  c.read<uint32_t>();
  const uint32_t version = c.read<uint32_t>();
  if (version == 1) fail("{}: GGUF version 1 is not supported (only v2 and v3); re-convert the model", path);
  if (version != 2 && version != 3) {
    if (__builtin_bswap32(version) == 2 || __builtin_bswap32(version) == 3)
      fail("{}: big-endian GGUF files are not supported", path);
    fail("{}: unsupported GGUF version {} (only v2 and v3)", path, version);
  }
  f->version_ = version;

  // v2 and v3 share the layout: u64 counts (v1 had u32 ones). spec §4.1
  const uint64_t n_tensors = c.read<uint64_t>();
  const uint64_t n_kv = c.read<uint64_t>();
  if (n_kv > c.left() / kMinKvBytes)
    fail("{}: header claims {} metadata entries, more than the file can hold", path, n_kv);
  if (n_tensors > c.left() / kMinTensorInfoBytes)
    fail("{}: header claims {} tensors, more than the file can hold", path, n_tensors);

  for (uint64_t i = 0; i < n_kv; ++i) {
    c.set_where(fmt::format("metadata entry {}", i));
    std::string key = c.read_string();
    c.set_where(fmt::format("metadata entry {} ('{}')", i, key));
    if (f->kv_.count(key)) fail("{}: duplicate metadata key '{}'", path, key);
    GgufValue v = read_value(c, path);
    f->kv_.emplace(key, std::move(v));
    f->key_order_.push_back(std::move(key));
  }

  if (const GgufValue* a = f->find("general.alignment")) {
    if (!is_integer_type(a->type))
      fail("{}: general.alignment is a {}, expected an integer", path, gguf_value_type_name(a->type));
    const int64_t al = *f->get_int("general.alignment");
    if (al <= 0 || static_cast<uint64_t>(al) > kMaxAlignment || !std::has_single_bit(static_cast<uint64_t>(al)))
      fail("{}: general.alignment = {} is not a power of two (up to 2^30)", path, al);
    f->alignment_ = static_cast<size_t>(al);
  }

  f->tensors_.reserve(static_cast<size_t>(n_tensors));
  for (uint64_t i = 0; i < n_tensors; ++i) {
    GgufTensorInfo t;
    c.set_where(fmt::format("tensor info {}", i));
    t.name = c.read_string();
    c.set_where(fmt::format("tensor info {} ({})", i, t.name));
    const uint32_t n_dims = c.read<uint32_t>();
    if (n_dims > kMaxDims)
      fail("{}: tensor '{}' has {} dimensions (at most {} supported)", path, t.name, n_dims, kMaxDims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      const uint64_t dim = c.read<uint64_t>();
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail("{}: tensor '{}' has invalid dimension {} = {}", path, t.name, d, dim);
      t.ne.push_back(static_cast<int64_t>(dim));
    }
    const uint32_t type_id = c.read<uint32_t>();
    const auto tr = type_traits(type_id);
    if (!tr) fail("{}: tensor '{}' has unknown ggml type {}", path, t.name, type_id);
    t.type = tr->type;
    t.offset = c.read<uint64_t>();
    if (t.offset % f->alignment_ != 0)
      fail("{}: tensor '{}' offset {} is not a multiple of the alignment {}", path, t.name, t.offset, f->alignment_);
    t.nbytes = tensor_nbytes(path, t);
    if (f->tensor_index_.count(t.name)) fail("{}: duplicate tensor name '{}'", path, t.name);
    f->tensor_index_.emplace(t.name, f->tensors_.size());
    f->tensors_.push_back(std::move(t));
  }

  // The data section starts at the next multiple of the alignment. spec §4.1
  const size_t end_of_infos = c.pos();
  f->data_offset_ = (end_of_infos + f->alignment_ - 1) / f->alignment_ * f->alignment_;
  for (auto& t : f->tensors_) {
    if (f->data_offset_ > size || t.offset > size - f->data_offset_ || t.nbytes > size - f->data_offset_ - t.offset) {
      const uint64_t start = saturating_add(f->data_offset_, t.offset);
      fail("{}: tensor '{}' data [{}, {}) exceeds file size {}", path, t.name, start, saturating_add(start, t.nbytes),
           size);
    }
    t.data = base + f->data_offset_ + t.offset;
  }
  return f;
}

}  // namespace unicorn
