// GGUF reader and writer: round trips, a file from the independent gguf-py writer, and every
// kind of bad input (each must become an Error naming the file, never a crash).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "core/error.h"
#include "core/half.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"

using namespace unicorn;
namespace fs = std::filesystem;

namespace {

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "unicorn_gguf_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& b, size_t n) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(n));
}
void write_bytes(const std::string& path, const std::vector<uint8_t>& b) { write_bytes(path, b, b.size()); }

// Opening `path` must throw Error whose message starts with the path and contains `what`.
void expect_open_error(const std::string& path, const std::string& what) {
  try {
    GgufFile::open(path);
    ADD_FAILURE() << "expected an Error containing '" << what << "' for " << path;
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind(path, 0), 0u) << msg;
    EXPECT_NE(msg.find(what), std::string::npos) << "message: " << msg << "\nexpected: " << what;
  }
}

// Hand-assembled GGUF bytes for inputs the writer refuses to produce.
class GgufBytes {
 public:
  GgufBytes& u32(uint32_t v) { return raw(&v, 4); }
  GgufBytes& u64(uint64_t v) { return raw(&v, 8); }
  GgufBytes& str(const std::string& s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  GgufBytes& header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    raw("GGUF", 4);
    return u32(version).u64(n_tensors).u64(n_kv);
  }
  GgufBytes& pad(size_t alignment) {
    while (b.size() % alignment) b.push_back(0);
    return *this;
  }
  GgufBytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
  GgufBytes& raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  std::vector<uint8_t> b;
};

// A small valid file exercising every part of the format, used by the damage tests.
std::string write_small_valid(const TempDir& dir) {
  const std::string path = dir.file("small.gguf");
  GgufWriter w(path);
  w.add_string("general.architecture", "gemma3");
  w.add_u32("gemma3.block_count", 2);
  w.add_f32("gemma3.attention.scale", 0.0625f);
  w.add_string_array("tokenizer.ggml.tokens", {"<pad>", "<eos>", "a", "bc"});
  w.add_f32_array("tokenizer.ggml.scores", {0.f, -1.f, -2.f, -3.f});
  w.add_int_array("tokenizer.ggml.token_type", GgufValueType::I32, {3, 3, 1, 1});
  w.add_bool("flag", true);
  std::vector<float> a(8, 1.5f);
  std::vector<uint8_t> q(34 * 2, 0x11);
  w.add_tensor("blk.0.attn_norm.weight", {8}, GgmlType::F32, a.data(), a.size() * 4);
  w.add_tensor("blk.0.attn_q.weight", {32, 2}, GgmlType::Q8_0, q.data(), q.size());
  w.write();
  return path;
}

// Bytes up to the end of the last tensor's data: every shorter prefix is missing something.
size_t essential_length(const std::string& path) {
  auto f = GgufFile::open(path);
  size_t end = f->data_offset();
  for (const auto& t : f->tensors()) end = std::max<size_t>(end, f->data_offset() + t.offset + t.nbytes);
  return end;
}

}  // namespace

// ---------------------------------------------------------------- round trips

TEST(GgufRoundTrip, EveryValueTypeReadsBackExactly) {
  TempDir dir;
  const std::string path = dir.file("values.gguf");
  GgufWriter w(path);
  w.add_u8("u8", 250);
  w.add_i8("i8", -120);
  w.add_u16("u16", 65000);
  w.add_i16("i16", -32000);
  w.add_u32("u32", 4000000000u);
  w.add_i32("i32", -2000000000);
  w.add_u64("u64", 18446744073709551615ull);
  w.add_i64("i64", std::numeric_limits<int64_t>::min());
  w.add_f32("f32", 0.1f);
  w.add_f64("f64", 0.1);
  w.add_bool("yes", true);
  w.add_bool("no", false);
  w.add_string("s", std::string("with\0nul", 8));
  w.add_string("empty", "");
  w.add_string_array("strs", {"a", "", "▁b c"});
  w.add_string_array("no_strs", {});
  w.add_int_array("u8s", GgufValueType::U8, {0, 255});
  w.add_int_array("i64s", GgufValueType::I64, {std::numeric_limits<int64_t>::min(), 5});
  w.add_int_array("u64s", GgufValueType::U64, {0, int64_t{1} << 62});
  w.add_int_array("bools", GgufValueType::BOOL, {1, 0, 1});
  w.add_i32_array("i32s", {-7, 8});
  w.add_f32_array("f32s", {0.1f, -2.5f});
  w.add_f64_array("f64s", {0.1, 1e300});
  w.write();

  auto f = GgufFile::open(path);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 32u);
  EXPECT_EQ(f->keys().size(), 23u);
  EXPECT_EQ(f->keys().front(), "u8");
  EXPECT_EQ(f->keys().back(), "f64s");

  EXPECT_EQ(f->find("u8")->type, GgufValueType::U8);
  EXPECT_EQ(f->get_int("u8"), 250);
  EXPECT_EQ(f->find("i8")->type, GgufValueType::I8);
  EXPECT_EQ(f->get_int("i8"), -120);
  EXPECT_EQ(f->get_int("u16"), 65000);
  EXPECT_EQ(f->find("i16")->type, GgufValueType::I16);
  EXPECT_EQ(f->get_int("i16"), -32000);
  EXPECT_EQ(f->get_int("u32"), 4000000000LL);
  EXPECT_EQ(f->get_int("i32"), -2000000000);
  EXPECT_EQ(std::get<uint64_t>(f->find("u64")->v), 18446744073709551615ull);
  EXPECT_THROW(f->get_int("u64"), Error);  // does not fit int64
  EXPECT_EQ(f->get_int("i64"), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->get_float("f32"), static_cast<double>(0.1f));
  EXPECT_EQ(f->find("f32")->type, GgufValueType::F32);
  EXPECT_EQ(f->get_float("f64"), 0.1);
  EXPECT_EQ(f->get_float("u8"), 250.0);  // any numeric type converts
  EXPECT_EQ(f->get_bool("yes"), true);
  EXPECT_EQ(f->get_bool("no"), false);
  EXPECT_EQ(f->get_string("s"), std::string("with\0nul", 8));
  EXPECT_EQ(f->get_string("empty"), "");

  const GgufArray* strs = f->get_array("strs");
  ASSERT_NE(strs, nullptr);
  EXPECT_EQ(strs->elem_type, GgufValueType::STRING);
  EXPECT_EQ(strs->strings, (std::vector<std::string>{"a", "", "▁b c"}));
  EXPECT_EQ(f->get_array("no_strs")->size(), 0u);
  EXPECT_EQ(f->get_array("u8s")->ints, (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(f->get_array("u8s")->elem_type, GgufValueType::U8);
  EXPECT_EQ(f->get_array("i64s")->ints[0], std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f->get_array("u64s")->ints[1], int64_t{1} << 62);
  EXPECT_EQ(f->get_array("bools")->ints, (std::vector<int64_t>{1, 0, 1}));
  EXPECT_EQ(f->get_array("bools")->elem_type, GgufValueType::BOOL);
  EXPECT_EQ(f->get_array("i32s")->ints, (std::vector<int64_t>{-7, 8}));
  EXPECT_EQ(f->get_array("f32s")->floats, (std::vector<double>{static_cast<double>(0.1f), -2.5}));
  EXPECT_EQ(f->get_array("f64s")->floats, (std::vector<double>{0.1, 1e300}));
  EXPECT_EQ(f->get_array("f64s")->size(), 2u);
}

TEST(GgufRoundTrip, AbsentKeysAreNulloptAndWrongTypesThrowNamingTheKey) {
  TempDir dir;
  const std::string path = dir.file("types.gguf");
  GgufWriter w(path);
  w.add_string("name", "x");
  w.add_u32("count", 3);
  w.write();
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->find("missing"), nullptr);
  EXPECT_EQ(f->get_int("missing"), std::nullopt);
  EXPECT_EQ(f->get_string("missing"), std::nullopt);
  EXPECT_EQ(f->get_array("missing"), nullptr);
  try {
    f->get_int("name");
    ADD_FAILURE() << "expected Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("'name'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("string"), std::string::npos) << e.what();
  }
  EXPECT_THROW(f->get_string("count"), Error);
  EXPECT_THROW(f->get_bool("count"), Error);
  EXPECT_THROW(f->get_array("count"), Error);
  EXPECT_THROW(f->get_float("name"), Error);
}

TEST(GgufRoundTrip, CountsStoredAsU32OrU64ReadTheSame) {
  // spec §4.1/§7.6: the GGUF spec says u64 for some counts, llama.cpp writes u32.
  TempDir dir;
  const std::string path = dir.file("counts.gguf");
  GgufWriter w(path);
  w.add_u32("gemma3.context_length", 131072);
  w.add_u64("gemma3.embedding_length", 5376);
  w.add_i32("gemma3.block_count", 62);
  w.write();
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->get_int("gemma3.context_length"), 131072);
  EXPECT_EQ(f->get_int("gemma3.embedding_length"), 5376);
  EXPECT_EQ(f->get_int("gemma3.block_count"), 62);
}

TEST(GgufRoundTrip, TensorsOfSeveralTypesKeepShapeTypeBytesAndAlignment) {
  TempDir dir;
  const std::string path = dir.file("tensors.gguf");
  std::vector<float> f32(3 * 5);
  for (size_t i = 0; i < f32.size(); ++i) f32[i] = static_cast<float>(i) - 7.25f;
  std::vector<uint16_t> f16(7), bf16(6);
  for (size_t i = 0; i < f16.size(); ++i) f16[i] = f32_to_f16(static_cast<float>(i) / 3);
  for (size_t i = 0; i < bf16.size(); ++i) bf16[i] = f32_to_bf16(static_cast<float>(i) * 1e5f);
  std::vector<uint8_t> q8(34 * 2 * 3), q4k(144 * 2);
  for (size_t i = 0; i < q8.size(); ++i) q8[i] = static_cast<uint8_t>(i * 7);
  for (size_t i = 0; i < q4k.size(); ++i) q4k[i] = static_cast<uint8_t>(i * 13 + 1);

  GgufWriter w(path);
  w.add_string("general.architecture", "gemma3");
  w.add_tensor("a.f32", {5, 3}, GgmlType::F32, f32.data(), f32.size() * 4);
  w.add_tensor("b.f16", {7}, GgmlType::F16, f16.data(), f16.size() * 2);
  w.add_tensor("c.bf16", {3, 1, 2}, GgmlType::BF16, bf16.data(), bf16.size() * 2);
  w.add_tensor("d.q8_0", {64, 3, 1, 1}, GgmlType::Q8_0, q8.data(), q8.size());
  w.add_tensor("e.q4_k", {512}, GgmlType::Q4_K, q4k.data(), q4k.size());
  w.write();

  auto f = GgufFile::open(path);
  ASSERT_EQ(f->tensors().size(), 5u);
  EXPECT_EQ(f->tensors()[0].name, "a.f32");  // file order kept
  EXPECT_EQ(f->tensors()[4].name, "e.q4_k");
  const auto check = [&](const char* name, std::vector<int64_t> ne, GgmlType type, const void* bytes, size_t n) {
    const GgufTensorInfo* t = f->tensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(t->ne, ne) << name;
    EXPECT_EQ(t->type, type) << name;
    EXPECT_EQ(t->nbytes, n) << name;
    EXPECT_EQ(t->offset % 32, 0u) << name;
    EXPECT_EQ((f->data_offset() + t->offset) % 32, 0u) << name;
    EXPECT_EQ(std::memcmp(t->data, bytes, n), 0) << name;
  };
  check("a.f32", {5, 3}, GgmlType::F32, f32.data(), 60);
  check("b.f16", {7}, GgmlType::F16, f16.data(), 14);
  check("c.bf16", {3, 1, 2}, GgmlType::BF16, bf16.data(), 12);
  check("d.q8_0", {64, 3, 1, 1}, GgmlType::Q8_0, q8.data(), q8.size());
  check("e.q4_k", {512}, GgmlType::Q4_K, q4k.data(), q4k.size());
  EXPECT_EQ(f->tensor("d.q8_0")->n_elements(), 192);
  EXPECT_EQ(f->tensor("nope"), nullptr);
}

TEST(GgufRoundTrip, CustomAlignmentIsRecordedAndHonoured) {
  TempDir dir;
  const std::string path = dir.file("align.gguf");
  std::vector<float> a(3, 1.f), b(5, 2.f);
  GgufWriter w(path, 256);
  w.add_tensor("a", {3}, GgmlType::F32, a.data(), 12);
  w.add_tensor("b", {5}, GgmlType::F32, b.data(), 20);
  w.write();
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->alignment(), 256u);
  EXPECT_EQ(f->get_int("general.alignment"), 256);
  EXPECT_EQ(f->find("general.alignment")->type, GgufValueType::U32);
  EXPECT_EQ(f->data_offset() % 256, 0u);
  EXPECT_EQ(f->tensor("b")->offset, 256u);
  EXPECT_EQ(reinterpret_cast<const float*>(f->tensor("b")->data)[4], 2.f);
}

TEST(GgufRoundTrip, StreamedTensorsAreWrittenWhenTheirTurnComes) {
  TempDir dir;
  const std::string path = dir.file("stream.gguf");
  std::vector<std::string> order;
  GgufWriter w(path);
  for (int i = 0; i < 3; ++i) {
    const std::string name = "t" + std::to_string(i);
    w.add_tensor(name, {4, 2}, GgmlType::F32, [&order, name, i](GgufTensorSink& sink) {
      order.push_back(name);
      for (int row = 0; row < 2; ++row) {  // written in pieces, as a quantizer would
        const float v[4] = {float(i), float(row), 1.f, 2.f};
        sink.write(v, sizeof v);
      }
    });
  }
  EXPECT_TRUE(order.empty());  // nothing produced before write()
  w.write();
  EXPECT_EQ(order, (std::vector<std::string>{"t0", "t1", "t2"}));
  auto f = GgufFile::open(path);
  const float* t2 = reinterpret_cast<const float*>(f->tensor("t2")->data);
  EXPECT_EQ(t2[0], 2.f);
  EXPECT_EQ(t2[5], 1.f);
}

// ---------------------------------------------------------------- gguf-py fixture

TEST(GgufPythonFixture, ReaderSeesExactlyTheValuesGgufPyWrote) {
  // Generated by tools/gen_gguf_fixture.py; the values here mirror that script.
  const std::string path = std::string(UNICORN_SOURCE_DIR) + "/tests/fixtures/gguf/python_writer.gguf";
  auto f = GgufFile::open(path);
  EXPECT_EQ(f->version(), 3u);
  EXPECT_EQ(f->alignment(), 64u);
  EXPECT_EQ(f->get_string("general.architecture"), "fixture");
  EXPECT_EQ(f->get_int("general.alignment"), 64);
  EXPECT_EQ(f->find("test.u8")->type, GgufValueType::U8);
  EXPECT_EQ(f->get_int("test.u8"), 200);
  EXPECT_EQ(f->find("test.i8")->type, GgufValueType::I8);
  EXPECT_EQ(f->get_int("test.i8"), -100);
  EXPECT_EQ(f->find("test.u16")->type, GgufValueType::U16);
  EXPECT_EQ(f->get_int("test.u16"), 60000);
  EXPECT_EQ(f->find("test.i16")->type, GgufValueType::I16);
  EXPECT_EQ(f->get_int("test.i16"), -30000);
  EXPECT_EQ(f->find("test.u32")->type, GgufValueType::U32);
  EXPECT_EQ(f->get_int("test.u32"), 4000000000LL);
  EXPECT_EQ(f->find("test.i32")->type, GgufValueType::I32);
  EXPECT_EQ(f->get_int("test.i32"), -2000000000);
  EXPECT_EQ(f->find("test.f32")->type, GgufValueType::F32);
  EXPECT_EQ(f->get_float("test.f32"), 0.15625);
  EXPECT_EQ(f->get_bool("test.bool_true"), true);
  EXPECT_EQ(f->get_bool("test.bool_false"), false);
  EXPECT_EQ(f->get_string("test.string"), "héllo, gguf");
  EXPECT_EQ(f->find("test.u64")->type, GgufValueType::U64);
  EXPECT_EQ(std::get<uint64_t>(f->find("test.u64")->v), 18000000000000000000ull);
  EXPECT_EQ(f->find("test.i64")->type, GgufValueType::I64);
  EXPECT_EQ(f->get_int("test.i64"), -9000000000000000000LL);
  EXPECT_EQ(f->find("test.f64")->type, GgufValueType::F64);
  EXPECT_EQ(f->get_float("test.f64"), 2.718281828459045);

  EXPECT_EQ(f->get_array("test.arr_str")->strings, (std::vector<std::string>{"alpha", "", "gamma delta", "▁token"}));
  EXPECT_EQ(f->get_array("test.arr_u8")->elem_type, GgufValueType::U8);
  EXPECT_EQ(f->get_array("test.arr_u8")->ints, (std::vector<int64_t>{0, 1, 255}));
  EXPECT_EQ(f->get_array("test.arr_i16")->ints, (std::vector<int64_t>{-32768, 0, 32767}));
  EXPECT_EQ(f->get_array("test.arr_i32")->ints, (std::vector<int64_t>{-1, 2, -3, 4}));
  EXPECT_EQ(f->get_array("test.arr_u64")->ints, (std::vector<int64_t>{0, int64_t{1} << 40}));
  EXPECT_EQ(f->get_array("test.arr_f32")->floats, (std::vector<double>{0.5, -1.25, 3.0}));
  EXPECT_EQ(f->get_array("test.arr_f64")->floats, (std::vector<double>{1e-300, -0.1}));
  EXPECT_EQ(f->get_array("test.arr_bool")->elem_type, GgufValueType::BOOL);
  EXPECT_EQ(f->get_array("test.arr_bool")->ints, (std::vector<int64_t>{1, 0, 1}));

  ASSERT_EQ(f->tensors().size(), 4u);
  const GgufTensorInfo* t = f->tensor("t.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{5, 3}));  // numpy [3, 5] in ggml order
  EXPECT_EQ(t->type, GgmlType::F32);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(reinterpret_cast<const float*>(t->data)[i], i * 0.5f - 3.0f) << i;

  t = f->tensor("t.f16");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{8, 2}));
  EXPECT_EQ(t->type, GgmlType::F16);
  for (int i = 0; i < 16; ++i) {
    uint16_t h;
    std::memcpy(&h, t->data + 2 * i, 2);
    EXPECT_EQ(f16_to_f32(h), i / 4.0f - 2.0f) << i;
  }

  t = f->tensor("t.q8_0");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{64, 2}));
  EXPECT_EQ(t->type, GgmlType::Q8_0);
  EXPECT_EQ(t->nbytes, 4u * 34);
  // Q8_0 block: f16 scale then 32 int8 quants (spec §4.5); dequantized values track sin(0.1 i).
  for (int i = 0; i < 128; ++i) {
    const uint8_t* block = t->data + (i / 32) * 34;
    uint16_t d;
    std::memcpy(&d, block, 2);
    const float v = f16_to_f32(d) * static_cast<int8_t>(block[2 + i % 32]);
    EXPECT_NEAR(v, std::sin(static_cast<float>(i) * 0.1f), 0.01f) << i;
  }

  t = f->tensor("t.scalar_row");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->ne, (std::vector<int64_t>{1}));
  EXPECT_EQ(reinterpret_cast<const float*>(t->data)[0], 7.0f);
  for (const auto& ti : f->tensors()) EXPECT_EQ((f->data_offset() + ti.offset) % 64, 0u) << ti.name;
}

// ---------------------------------------------------------------- bad files

TEST(GgufErrors, MissingFileIsNamed) {
  TempDir dir;
  expect_open_error(dir.file("absent.gguf"), "cannot open");
}

TEST(GgufErrors, DirectoryIsRejected) {
  TempDir dir;
  expect_open_error(dir.path().string(), "directory");
}

TEST(GgufErrors, EmptyFileIsRejected) {
  TempDir dir;
  write_bytes(dir.file("empty.gguf"), {});
  expect_open_error(dir.file("empty.gguf"), "empty file");
}

TEST(GgufErrors, TextFileHasBadMagic) {
  TempDir dir;
  const std::string text = "{\"this\": \"is json, not gguf\"}\n";
  write_bytes(dir.file("model.gguf"), std::vector<uint8_t>(text.begin(), text.end()));
  expect_open_error(dir.file("model.gguf"), "not a GGUF file (bad magic)");
  write_bytes(dir.file("tiny.gguf"), {'G', 'G'});
  expect_open_error(dir.file("tiny.gguf"), "bad magic");
}

TEST(GgufErrors, VersionOneIsRejectedWithAClearMessage) {
  TempDir dir;
  GgufBytes g;
  g.raw("GGUF", 4).u32(1).u32(0).u32(0);  // v1 used u32 counts
  write_bytes(dir.file("v1.gguf"), g.b);
  expect_open_error(dir.file("v1.gguf"), "GGUF version 1 is not supported");
}

TEST(GgufErrors, UnknownAndBigEndianVersionsAreRejected) {
  TempDir dir;
  write_bytes(dir.file("v9.gguf"), GgufBytes().header(9, 0, 0).b);
  expect_open_error(dir.file("v9.gguf"), "unsupported GGUF version 9");
  write_bytes(dir.file("be.gguf"), GgufBytes().header(0x03000000, 0, 0).b);
  expect_open_error(dir.file("be.gguf"), "big-endian");
}

TEST(GgufErrors, VersionTwoIsRead) {
  TempDir dir;
  GgufBytes g;
  g.header(2, 0, 1).str("general.name").u32(8).str("v2");
  write_bytes(dir.file("v2.gguf"), g.b);
  auto f = GgufFile::open(dir.file("v2.gguf"));
  EXPECT_EQ(f->version(), 2u);
  EXPECT_EQ(f->get_string("general.name"), "v2");
}

// Parses bytes from an exact-size heap buffer so that sanitizers see any read past the end.
std::unique_ptr<GgufFile> open_in_memory(const std::string& name, const std::vector<uint8_t>& b, size_t n) {
  return GgufFile::open(MappedFile::from_bytes(name, std::vector<uint8_t>(b.begin(), b.begin() + n)));
}

TEST(GgufErrors, EveryTruncationThrowsAnError) {
  TempDir dir;
  const std::string good = write_small_valid(dir);
  const auto bytes = read_bytes(good);
  const size_t essential = essential_length(good);
  ASSERT_LE(essential, bytes.size());
  for (size_t n = 0; n < essential; ++n) {
    try {
      open_in_memory("cut.gguf", bytes, n);
      ADD_FAILURE() << "prefix of " << n << " bytes was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("cut.gguf: ", 0), 0u) << e.what();
    }
  }
  EXPECT_NO_THROW(open_in_memory("cut.gguf", bytes, essential));
  // And through a real file, once.
  const std::string cut = dir.file("cut.gguf");
  write_bytes(cut, bytes, essential - 1);
  expect_open_error(cut, "exceeds file size");
}

TEST(GgufErrors, TruncationMessageNamesTheTensorInfo) {
  TempDir dir;
  GgufBytes g;
  g.header(3, 2, 0);
  g.str("blk.0.attn_q.weight").u32(1).u64(32).u32(0).u64(0);
  g.str("blk.1.attn_q.weight").u32(2).u64(32);  // cut inside the dims
  write_bytes(dir.file("t.gguf"), g.b);
  expect_open_error(dir.file("t.gguf"), "truncated while reading tensor info 1 (blk.1.attn_q.weight)");
}

TEST(GgufErrors, RandomCorruptionThrowsErrorOrSucceeds) {
  TempDir dir;
  const std::string good = write_small_valid(dir);
  const auto bytes = read_bytes(good);
  const size_t header_end = essential_length(good);
  std::mt19937 rng(1234);
  int accepted = 0, rejected = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    auto b = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly hit the header/metadata/tensor-info region where parsing happens.
      const size_t at = rng() % std::min(header_end, b.size());
      const uint32_t mode = rng() % 3;
      b[at] = mode == 0   ? static_cast<uint8_t>(rng())
              : mode == 1 ? 0xff
                          : static_cast<uint8_t>(b[at] ^ (1u << (rng() % 8)));
    }
    try {
      auto f = open_in_memory("fuzz.gguf", b, b.size());
      // Anything accepted must describe tensors that lie inside the file.
      unsigned sum = 0;
      for (const auto& t : f->tensors())
        for (size_t i = 0; i < t.nbytes; ++i) sum += t.data[i];
      (void)sum;
      ++accepted;
    } catch (const Error&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 100);
  EXPECT_GT(accepted, 0);  // flips inside string bytes are harmless
}

TEST(GgufErrors, AbsurdStringLengthIsRejectedWithoutAllocating) {
  TempDir dir;
  GgufBytes g;
  g.header(3, 0, 1).u64(uint64_t{1} << 60).zeros(16);  // key length 2^60
  write_bytes(dir.file("s.gguf"), g.b);
  expect_open_error(dir.file("s.gguf"), "string length 1152921504606846976 exceeds");
  GgufBytes v;
  v.header(3, 0, 1).str("general.name").u32(8).u64(~uint64_t{0});
  write_bytes(dir.file("v.gguf"), v.b);
  expect_open_error(dir.file("v.gguf"), "metadata entry 0 ('general.name')");
}

TEST(GgufErrors, AbsurdCountsAreRejectedWithoutAllocating) {
  TempDir dir;
  GgufBytes a;
  a.header(3, 0, 1).str("tokens").u32(9).u32(8).u64(uint64_t{1} << 50);
  write_bytes(dir.file("a.gguf"), a.b);
  expect_open_error(dir.file("a.gguf"), "array of 1125899906842624 string elements does not fit");
  GgufBytes k;
  k.header(3, 0, uint64_t{1} << 40);
  write_bytes(dir.file("k.gguf"), k.b);
  expect_open_error(dir.file("k.gguf"), "metadata entries");
  GgufBytes t;
  t.header(3, ~uint64_t{0}, 0);
  write_bytes(dir.file("t.gguf"), t.b);
  expect_open_error(dir.file("t.gguf"), "tensors, more than the file can hold");
}

TEST(GgufErrors, NestedArraysAndUnknownValueTypesAreRejected) {
  TempDir dir;
  GgufBytes n;
  n.header(3, 0, 1).str("nested").u32(9).u32(9).u64(1);
  write_bytes(dir.file("n.gguf"), n.b);
  expect_open_error(dir.file("n.gguf"), "arrays of arrays");
  GgufBytes u;
  u.header(3, 0, 1).str("weird").u32(13).u32(0);
  write_bytes(dir.file("u.gguf"), u.b);
  expect_open_error(dir.file("u.gguf"), "unknown value type 13");
  GgufBytes b;
  b.header(3, 0, 1).str("flag").u32(7).raw("\x02", 1);
  write_bytes(dir.file("b.gguf"), b.b);
  expect_open_error(dir.file("b.gguf"), "invalid bool");
}

TEST(GgufErrors, DuplicateKeysAndTensorNamesAreRejected) {
  TempDir dir;
  GgufBytes k;
  k.header(3, 0, 2).str("a").u32(4).u32(1).str("a").u32(4).u32(2);
  write_bytes(dir.file("k.gguf"), k.b);
  expect_open_error(dir.file("k.gguf"), "duplicate metadata key 'a'");
  GgufBytes t;
  t.header(3, 2, 0);
  t.str("w").u32(1).u64(8).u32(0).u64(0);
  t.str("w").u32(1).u64(8).u32(0).u64(32);
  t.pad(32).zeros(64);
  write_bytes(dir.file("t.gguf"), t.b);
  expect_open_error(dir.file("t.gguf"), "duplicate tensor name 'w'");
}

TEST(GgufErrors, BadAlignmentIsRejected) {
  TempDir dir;
  for (uint32_t al : {0u, 3u, 48u}) {
    GgufBytes g;
    g.header(3, 0, 1).str("general.alignment").u32(4).u32(al);
    write_bytes(dir.file("al.gguf"), g.b);
    expect_open_error(dir.file("al.gguf"), "not a power of two");
  }
  GgufBytes s;
  s.header(3, 0, 1).str("general.alignment").u32(8).str("32");
  write_bytes(dir.file("s.gguf"), s.b);
  expect_open_error(dir.file("s.gguf"), "general.alignment is a string");
}

TEST(GgufErrors, BadTensorInfosAreRejected) {
  TempDir dir;
  const auto one = [&](const std::string& file, uint32_t n_dims, std::vector<uint64_t> dims, uint32_t type,
                       uint64_t offset, size_t data_bytes) {
    GgufBytes g;
    g.header(3, 1, 0).str("blk.0.attn_k.weight").u32(n_dims);
    for (uint64_t d : dims) g.u64(d);
    g.u32(type).u64(offset).pad(32).zeros(data_bytes);
    write_bytes(dir.file(file), g.b);
    return dir.file(file);
  };
  expect_open_error(one("type.gguf", 1, {32}, 99, 0, 128), "tensor 'blk.0.attn_k.weight' has unknown ggml type 99");
  expect_open_error(one("dims.gguf", 5, {1, 1, 1, 1, 1}, 0, 0, 4), "5 dimensions");
  expect_open_error(one("zero.gguf", 2, {4, 0}, 0, 0, 16), "invalid dimension 1 = 0");
  expect_open_error(one("block.gguf", 1, {33}, 8, 0, 64), "not a multiple of the Q8_0 block size 32");
  expect_open_error(one("unaligned.gguf", 1, {4}, 0, 16, 64), "offset 16 is not a multiple of the alignment 32");
  expect_open_error(one("huge.gguf", 4, {1u << 20, 1u << 20, 1u << 20, 1u << 20}, 0, 0, 0), "too many elements");
  // data out of range: a 4x8 F32 tensor needs 128 bytes, only 64 are there
  const std::string oor = one("oor.gguf", 2, {4, 8}, 0, 0, 64);
  const size_t size = fs::file_size(oor);
  expect_open_error(
      oor, fmt::format("tensor 'blk.0.attn_k.weight' data [{}, {}) exceeds file size {}", size - 64, size + 64, size));
  expect_open_error(one("far.gguf", 1, {4}, 0, uint64_t{1} << 62, 16), "exceeds file size");
}

// ---------------------------------------------------------------- writer failures

TEST(GgufWriterErrors, UnwritableDirectoryThrowsAndLeavesNoFile) {
  TempDir dir;
  const std::string missing = dir.file("no/such/dir/out.gguf");
  GgufWriter w(missing);
  w.add_u32("x", 1);
  try {
    w.write();
    ADD_FAILURE() << "expected Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(missing, 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot create"), std::string::npos) << e.what();
  }
  if (::geteuid() != 0) {  // root ignores directory permissions
    const fs::path ro = dir.path() / "ro";
    fs::create_directory(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec);
    GgufWriter r((ro / "out.gguf").string());
    EXPECT_THROW(r.write(), Error);
    EXPECT_TRUE(fs::is_empty(ro));
  }
}

TEST(GgufWriterErrors, DiskFullThrowsAndLeavesNoFile) {
  TempDir dir;
  if (!fs::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const std::string path = dir.file("full.gguf");
  fs::create_symlink("/dev/full", path + ".tmp");  // the temp file lands on a full "disk"
  std::vector<float> big(1 << 19, 1.f);            // 2 MiB, larger than the write buffer
  GgufWriter w(path);
  w.add_tensor("big", {int64_t(big.size())}, GgmlType::F32, big.data(), big.size() * 4);
  try {
    w.write();
    ADD_FAILURE() << "expected Error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind(path, 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("No space left"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(fs::symlink_status(path + ".tmp")));
}

TEST(GgufWriterErrors, WrongTensorByteCountIsRejected) {
  TempDir dir;
  const std::string path = dir.file("w.gguf");
  std::vector<float> a(4);
  GgufWriter w(path);
  EXPECT_THROW(w.add_tensor("a", {5}, GgmlType::F32, a.data(), 16), Error);
  EXPECT_THROW(w.add_tensor("q", {31}, GgmlType::Q8_0, a.data(), 16), Error);
  EXPECT_THROW(w.add_tensor("z", {0}, GgmlType::F32, a.data(), 0), Error);
  w.add_tensor("short", {4}, GgmlType::F32, [&](GgufTensorSink& s) { s.write(a.data(), 12); });
  EXPECT_THROW(w.write(), Error);
  EXPECT_FALSE(fs::exists(path));
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}

TEST(GgufWriterErrors, BadMetadataIsRejectedAtAddTime) {
  GgufWriter w("/nonexistent/x.gguf");
  w.add_u32("a", 1);
  EXPECT_THROW(w.add_u32("a", 2), Error);
  EXPECT_THROW(w.add_int_array("b", GgufValueType::U8, {256}), Error);
  EXPECT_THROW(w.add_int_array("c", GgufValueType::STRING, {1}), Error);
  EXPECT_THROW(w.add_value("d", GgufValue{GgufValueType::U16, int64_t{-1}}), Error);
  EXPECT_THROW(w.add_value("e", GgufValue{GgufValueType::STRING, int64_t{1}}), Error);
  EXPECT_THROW(w.add_u32("general.alignment", 64), Error);
  EXPECT_THROW(GgufWriter("/x.gguf", 48), Error);
}

TEST(GgufWriterErrors, ExistingFileIsReplacedOnlyOnSuccess) {
  TempDir dir;
  const std::string path = dir.file("keep.gguf");
  {
    GgufWriter w(path);
    w.add_string("version", "old");
    w.write();
  }
  std::vector<float> a(4);
  GgufWriter bad(path);
  bad.add_string("version", "new");
  bad.add_tensor("t", {4}, GgmlType::F32, [&](GgufTensorSink&) { throw Error("quantizer failed"); });
  EXPECT_THROW(bad.write(), Error);
  EXPECT_EQ(GgufFile::open(path)->get_string("version"), "old");
  EXPECT_FALSE(fs::exists(path + ".tmp"));
}
