#include "formats/gguf_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>

#include "core/error.h"

namespace unicorn {
namespace {

constexpr int kMaxDims = 4;
constexpr size_t kBufferBytes = size_t{1} << 20;

// Buffered writes to a file descriptor; every failure names the final path and the temp file.
class OutputFile final : public GgufTensorSink {
 public:
  OutputFile(const std::string& path, const std::string& tmp_path) : path_(path), tmp_(tmp_path) {
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("{}: cannot create {}: {}", path_, tmp_, std::strerror(errno));
    buf_.reserve(kBufferBytes);
  }
  ~OutputFile() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void write(const void* data, size_t n) override {
    const auto* p = static_cast<const uint8_t*>(data);
    if (buf_.size() + n > kBufferBytes) flush();
    if (n >= kBufferBytes) {
      write_all(p, n);
    } else {
      buf_.insert(buf_.end(), p, p + n);
    }
    written_ += n;
  }
  template <typename T>
  void pod(T v) {
    write(&v, sizeof v);
  }
  void string(const std::string& s) {
    pod<uint64_t>(s.size());
    write(s.data(), s.size());
  }
  void pad_to(uint64_t alignment) {
    static const uint8_t zeros[256] = {};
    while (written_ % alignment != 0) {
      const uint64_t gap = alignment - written_ % alignment;
      write(zeros, static_cast<size_t>(std::min<uint64_t>(gap, sizeof zeros)));
    }
  }
  uint64_t written() const { return written_; }

  // Flushes, syncs and closes; after this the temp file is complete.
  void finish() {
    flush();
    if (::fsync(fd_) != 0) fail("{}: cannot sync {}: {}", path_, tmp_, std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("{}: cannot close {}: {}", path_, tmp_, std::strerror(errno));
  }

 private:
  void flush() {
    write_all(buf_.data(), buf_.size());
    buf_.clear();
  }
  void write_all(const uint8_t* p, size_t n) {
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        fail("{}: cannot write {}: {}", path_, tmp_, std::strerror(errno));
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  const std::string& path_;
  const std::string& tmp_;
  int fd_ = -1;
  std::vector<uint8_t> buf_;
  uint64_t written_ = 0;
};

// Counts what a tensor callback writes so a wrong size is reported, not written silently.
class CountingSink final : public GgufTensorSink {
 public:
  explicit CountingSink(OutputFile& out) : out_(out) {}
  void write(const void* data, size_t n) override {
    out_.write(data, n);
    count_ += n;
  }
  uint64_t count() const { return count_; }

 private:
  OutputFile& out_;
  uint64_t count_ = 0;
};

bool is_int_type(GgufValueType t) {
  switch (t) {
    case GgufValueType::U8:
    case GgufValueType::I8:
    case GgufValueType::U16:
    case GgufValueType::I16:
    case GgufValueType::U32:
    case GgufValueType::I32:
    case GgufValueType::U64:
    case GgufValueType::I64:
    case GgufValueType::BOOL:
      return true;
    default:
      return false;
  }
}

bool int_fits(GgufValueType t, int64_t v) {
  switch (t) {
    case GgufValueType::U8:
      return v >= 0 && v <= 0xff;
    case GgufValueType::I8:
      return v >= -128 && v <= 127;
    case GgufValueType::U16:
      return v >= 0 && v <= 0xffff;
    case GgufValueType::I16:
      return v >= -32768 && v <= 32767;
    case GgufValueType::U32:
      return v >= 0 && v <= 0xffffffffLL;
    case GgufValueType::I32:
      return v >= std::numeric_limits<int32_t>::min() && v <= std::numeric_limits<int32_t>::max();
    case GgufValueType::U64:
      return v >= 0;
    case GgufValueType::I64:
      return true;
    case GgufValueType::BOOL:
      return v == 0 || v == 1;
    default:
      return false;
  }
}

void write_int(OutputFile& out, GgufValueType t, int64_t v) {
  switch (t) {
    case GgufValueType::U8:
      out.pod<uint8_t>(static_cast<uint8_t>(v));
      break;
    case GgufValueType::I8:
      out.pod<int8_t>(static_cast<int8_t>(v));
      break;
    case GgufValueType::U16:
      out.pod<uint16_t>(static_cast<uint16_t>(v));
      break;
    case GgufValueType::I16:
      out.pod<int16_t>(static_cast<int16_t>(v));
      break;
    case GgufValueType::U32:
      out.pod<uint32_t>(static_cast<uint32_t>(v));
      break;
    case GgufValueType::I32:
      out.pod<int32_t>(static_cast<int32_t>(v));
      break;
    case GgufValueType::U64:
      out.pod<uint64_t>(static_cast<uint64_t>(v));
      break;
    case GgufValueType::I64:
      out.pod<int64_t>(v);
      break;
    case GgufValueType::BOOL:
      out.pod<uint8_t>(v ? 1 : 0);
      break;
    default:
      break;
  }
}

void write_value(OutputFile& out, const GgufValue& v) {
  out.pod<uint32_t>(static_cast<uint32_t>(v.type));
  switch (v.type) {
    case GgufValueType::F32:
      out.pod<float>(static_cast<float>(std::get<double>(v.v)));
      break;
    case GgufValueType::F64:
      out.pod<double>(std::get<double>(v.v));
      break;
    case GgufValueType::BOOL:
      out.pod<uint8_t>(std::get<bool>(v.v) ? 1 : 0);
      break;
    case GgufValueType::STRING:
      out.string(std::get<std::string>(v.v));
      break;
    case GgufValueType::U64:
      if (const auto* u = std::get_if<uint64_t>(&v.v))
        out.pod<uint64_t>(*u);
      else
        out.pod<uint64_t>(static_cast<uint64_t>(std::get<int64_t>(v.v)));
      break;
    case GgufValueType::ARRAY: {
      const auto& a = std::get<GgufArray>(v.v);
      out.pod<uint32_t>(static_cast<uint32_t>(a.elem_type));
      out.pod<uint64_t>(a.size());
      if (a.elem_type == GgufValueType::STRING) {
        for (const auto& s : a.strings) out.string(s);
      } else if (a.elem_type == GgufValueType::F32) {
        for (double d : a.floats) out.pod<float>(static_cast<float>(d));
      } else if (a.elem_type == GgufValueType::F64) {
        for (double d : a.floats) out.pod<double>(d);
      } else {
        for (int64_t i : a.ints) write_int(out, a.elem_type, i);
      }
      break;
    }
    default:
      write_int(out, v.type, std::get<int64_t>(v.v));
      break;
  }
}

}  // namespace

GgufWriter::GgufWriter(std::string path, uint32_t alignment) : path_(std::move(path)), alignment_(alignment) {
  if (alignment == 0 || !std::has_single_bit(alignment))
    fail("{}: GGUF alignment {} is not a power of two", path_, alignment);
  if (alignment != kGgufDefaultAlignment) {
    keys_.insert("general.alignment");
    kv_.push_back({"general.alignment", GgufValue{GgufValueType::U32, int64_t{alignment}}});
  }
}

void GgufWriter::check_value(const std::string& key, const GgufValue& v) const {
  const auto bad = [&](std::string_view why) { fail("{}: metadata key '{}': {}", path_, key, why); };
  switch (v.type) {
    case GgufValueType::F32:
    case GgufValueType::F64:
      if (!std::holds_alternative<double>(v.v)) bad("float type without a double value");
      break;
    case GgufValueType::BOOL:
      if (!std::holds_alternative<bool>(v.v)) bad("bool type without a bool value");
      break;
    case GgufValueType::STRING:
      if (!std::holds_alternative<std::string>(v.v)) bad("string type without a string value");
      break;
    case GgufValueType::U64:
      if (std::holds_alternative<uint64_t>(v.v)) break;
      if (!std::holds_alternative<int64_t>(v.v) || std::get<int64_t>(v.v) < 0)
        bad("u64 type without a non-negative integer value");
      break;
    case GgufValueType::ARRAY: {
      const auto* a = std::get_if<GgufArray>(&v.v);
      if (!a) bad("array type without an array value");
      const auto t = a->elem_type;
      const bool ok = (t == GgufValueType::STRING && a->ints.empty() && a->floats.empty()) ||
                      ((t == GgufValueType::F32 || t == GgufValueType::F64) && a->ints.empty() && a->strings.empty()) ||
                      (is_int_type(t) && a->floats.empty() && a->strings.empty());
      if (!ok) bad(fmt::format("array of {} holds the wrong kind of elements", gguf_value_type_name(t)));
      for (int64_t i : a->ints)
        if (!int_fits(t, i)) bad(fmt::format("{} does not fit in {}", i, gguf_value_type_name(t)));
      break;
    }
    default: {
      const auto* i = std::get_if<int64_t>(&v.v);
      if (!i || !is_int_type(v.type)) bad("unknown value type");
      if (!int_fits(v.type, *i)) bad(fmt::format("{} does not fit in {}", *i, gguf_value_type_name(v.type)));
    }
  }
}

void GgufWriter::add_value(std::string key, GgufValue v) {
  if (written_) fail("{}: cannot add metadata after write()", path_);
  if (key == "general.alignment" && keys_.count(key) == 0)
    fail("{}: set general.alignment through the GgufWriter constructor", path_);
  if (keys_.count(key)) fail("{}: duplicate metadata key '{}'", path_, key);
  check_value(key, v);
  keys_.insert(key);
  kv_.push_back({std::move(key), std::move(v)});
}

void GgufWriter::add_u8(std::string k, uint8_t v) { add_value(std::move(k), {GgufValueType::U8, int64_t{v}}); }
void GgufWriter::add_i8(std::string k, int8_t v) { add_value(std::move(k), {GgufValueType::I8, int64_t{v}}); }
void GgufWriter::add_u16(std::string k, uint16_t v) { add_value(std::move(k), {GgufValueType::U16, int64_t{v}}); }
void GgufWriter::add_i16(std::string k, int16_t v) { add_value(std::move(k), {GgufValueType::I16, int64_t{v}}); }
void GgufWriter::add_u32(std::string k, uint32_t v) { add_value(std::move(k), {GgufValueType::U32, int64_t{v}}); }
void GgufWriter::add_i32(std::string k, int32_t v) { add_value(std::move(k), {GgufValueType::I32, int64_t{v}}); }
void GgufWriter::add_u64(std::string k, uint64_t v) { add_value(std::move(k), {GgufValueType::U64, v}); }
void GgufWriter::add_i64(std::string k, int64_t v) { add_value(std::move(k), {GgufValueType::I64, v}); }
void GgufWriter::add_f32(std::string k, float v) { add_value(std::move(k), {GgufValueType::F32, double{v}}); }
void GgufWriter::add_f64(std::string k, double v) { add_value(std::move(k), {GgufValueType::F64, v}); }
void GgufWriter::add_bool(std::string k, bool v) { add_value(std::move(k), {GgufValueType::BOOL, v}); }
void GgufWriter::add_string(std::string k, std::string v) {
  add_value(std::move(k), {GgufValueType::STRING, std::move(v)});
}

void GgufWriter::add_string_array(std::string key, std::vector<std::string> v) {
  GgufArray a{GgufValueType::STRING, {}, {}, std::move(v)};
  add_value(std::move(key), {GgufValueType::ARRAY, std::move(a)});
}

void GgufWriter::add_int_array(std::string key, GgufValueType elem_type, std::vector<int64_t> v) {
  if (!is_int_type(elem_type))
    fail("{}: metadata key '{}': {} is not an integer element type", path_, key, gguf_value_type_name(elem_type));
  GgufArray a{elem_type, std::move(v), {}, {}};
  add_value(std::move(key), {GgufValueType::ARRAY, std::move(a)});
}

void GgufWriter::add_i32_array(std::string key, const std::vector<int32_t>& v) {
  add_int_array(std::move(key), GgufValueType::I32, std::vector<int64_t>(v.begin(), v.end()));
}

void GgufWriter::add_f32_array(std::string key, const std::vector<float>& v) {
  GgufArray a{GgufValueType::F32, {}, std::vector<double>(v.begin(), v.end()), {}};
  add_value(std::move(key), {GgufValueType::ARRAY, std::move(a)});
}

void GgufWriter::add_f64_array(std::string key, std::vector<double> v) {
  GgufArray a{GgufValueType::F64, {}, std::move(v), {}};
  add_value(std::move(key), {GgufValueType::ARRAY, std::move(a)});
}

size_t GgufWriter::tensor_bytes(const std::string& name, const std::vector<int64_t>& ne, GgmlType type) const {
  if (ne.empty() || ne.size() > kMaxDims)
    fail("{}: tensor '{}' has {} dimensions (1 to {} supported)", path_, name, ne.size(), kMaxDims);
  int64_t rows = 1;
  for (size_t i = 0; i < ne.size(); ++i) {
    if (ne[i] <= 0) fail("{}: tensor '{}' has dimension {} = {}", path_, name, i, ne[i]);
    if (i > 0 && __builtin_mul_overflow(rows, ne[i], &rows)) fail("{}: tensor '{}' is too large", path_, name);
  }
  const auto& tr = traits(type);
  if (ne[0] % tr.block_size != 0)
    fail("{}: tensor '{}' first dimension {} is not a multiple of the {} block size {}", path_, name, ne[0], tr.name,
         tr.block_size);
  size_t nbytes = row_bytes(type, ne[0]);
  if (__builtin_mul_overflow(nbytes, static_cast<size_t>(rows), &nbytes))
    fail("{}: tensor '{}' is too large", path_, name);
  return nbytes;
}

void GgufWriter::add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type, const void* data, size_t nbytes) {
  const size_t expected = tensor_bytes(name, ne, type);
  if (nbytes != expected)
    fail("{}: tensor '{}' is given {} bytes but its shape and type need {}", path_, name, nbytes, expected);
  add_tensor(std::move(name), std::move(ne), type, [data, nbytes](GgufTensorSink& sink) { sink.write(data, nbytes); });
}

void GgufWriter::add_tensor(std::string name, std::vector<int64_t> ne, GgmlType type, TensorBytesFn write) {
  if (written_) fail("{}: cannot add tensors after write()", path_);
  if (tensor_names_.count(name)) fail("{}: duplicate tensor name '{}'", path_, name);
  const size_t nbytes = tensor_bytes(name, ne, type);
  const uint64_t offset = (data_size_ + alignment_ - 1) / alignment_ * alignment_;
  data_size_ = offset + nbytes;
  tensor_names_.insert(name);
  tensors_.push_back({std::move(name), std::move(ne), type, offset, nbytes, std::move(write)});
}

void GgufWriter::write() {
  if (written_) fail("{}: write() called twice", path_);
  written_ = true;
  const std::string tmp = path_ + ".tmp";
  try {
    write_to(tmp);
    if (std::rename(tmp.c_str(), path_.c_str()) != 0)
      fail("{}: cannot rename {} to it: {}", path_, tmp, std::strerror(errno));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
}

void GgufWriter::write_to(const std::string& tmp_path) {
  OutputFile out(path_, tmp_path);
  out.write("GGUF", 4);
  out.pod<uint32_t>(3);
  out.pod<uint64_t>(tensors_.size());
  out.pod<uint64_t>(kv_.size());
  for (const auto& kv : kv_) {
    out.string(kv.key);
    write_value(out, kv.value);
  }
  for (const auto& t : tensors_) {
    out.string(t.name);
    out.pod<uint32_t>(static_cast<uint32_t>(t.ne.size()));
    for (int64_t d : t.ne) out.pod<uint64_t>(static_cast<uint64_t>(d));
    out.pod<uint32_t>(static_cast<uint32_t>(t.type));
    out.pod<uint64_t>(t.offset);
  }
  out.pad_to(alignment_);
  const uint64_t data_start = out.written();
  for (const auto& t : tensors_) {
    out.pad_to(alignment_);  // offsets were laid out with the same rule
    if (out.written() - data_start != t.offset)
      fail("{}: internal: tensor '{}' landed at the wrong offset", path_, t.name);
    CountingSink sink(out);
    t.bytes(sink);
    if (sink.count() != t.nbytes)
      fail("{}: tensor '{}': {} bytes were written but its shape and type need {}", path_, t.name, sink.count(),
           t.nbytes);
  }
  out.finish();
}

}  // namespace unicorn
