#include "quant/imatrix.h"

#include <cstring>

#include "core/error.h"
#include "formats/gguf.h"
#include "formats/gguf_writer.h"

namespace unicorn {

namespace {
constexpr const char* kCountsKey = "unicorn.imatrix.counts";
constexpr const char* kDatasetKey = "unicorn.imatrix.dataset";
constexpr const char* kChunksKey = "unicorn.imatrix.chunks";
}  // namespace

void ImportanceMatrix::accumulate(const std::string& name, const float* x, int64_t rows, int64_t cols) {
  Entry& e = entries_[name];
  if (e.sum.empty()) e.sum.assign(static_cast<size_t>(cols), 0.0);
  if (static_cast<int64_t>(e.sum.size()) != cols)
    fail("imatrix: weight '{}' was seen with {} input columns, now {}", name, e.sum.size(), cols);
  for (int64_t r = 0; r < rows; ++r) {
    const float* row = x + r * cols;
    for (int64_t j = 0; j < cols; ++j) e.sum[static_cast<size_t>(j)] += static_cast<double>(row[j]) * row[j];
  }
  e.rows += rows;
  e.mean.clear();
}

const std::vector<float>* ImportanceMatrix::find(std::string_view name) const {
  auto it = entries_.find(name);
  if (it == entries_.end() || it->second.rows == 0) return nullptr;
  const Entry& e = it->second;
  if (e.mean.empty()) {
    e.mean.resize(e.sum.size());
    for (size_t j = 0; j < e.sum.size(); ++j) e.mean[j] = static_cast<float>(e.sum[j] / static_cast<double>(e.rows));
  }
  return &e.mean;
}

int64_t ImportanceMatrix::count(std::string_view name) const {
  auto it = entries_.find(name);
  return it == entries_.end() ? 0 : it->second.rows;
}

std::vector<std::string> ImportanceMatrix::names() const {
  std::vector<std::string> v;
  for (const auto& [k, e] : entries_) v.push_back(k);
  return v;
}

void ImportanceMatrix::save(const std::string& path) const {
  GgufWriter w(path);
  w.add_string("general.type", "imatrix");
  w.add_string(kDatasetKey, dataset);
  w.add_u32(kChunksKey, static_cast<uint32_t>(chunks));
  std::vector<int64_t> counts;
  for (const auto& [name, e] : entries_) counts.push_back(e.rows);
  w.add_int_array(kCountsKey, GgufValueType::U64, counts);
  for (const auto& [name, e] : entries_) {
    const std::vector<float>* m = find(name);
    if (!m) fail("imatrix: weight '{}' has no samples", name);
    w.add_tensor(name, {static_cast<int64_t>(m->size())}, GgmlType::F32, m->data(), m->size() * sizeof(float));
  }
  w.write();
}

ImportanceMatrix ImportanceMatrix::load(const std::string& path) {
  auto f = GgufFile::open(path);
  if (f->get_string("general.type").value_or("") != "imatrix")
    fail("{}: not an imatrix file (general.type is not 'imatrix')", path);
  const GgufArray* counts = f->get_array(kCountsKey);
  if (!counts || counts->ints.size() != f->tensors().size())
    fail("{}: {} missing or not one count per tensor", path, kCountsKey);
  ImportanceMatrix m;
  m.dataset = f->get_string(kDatasetKey).value_or("");
  m.chunks = f->get_int(kChunksKey).value_or(0);
  for (size_t i = 0; i < f->tensors().size(); ++i) {
    const GgufTensorInfo& t = f->tensors()[i];
    if (t.type != GgmlType::F32 || t.ne.size() != 1)
      fail("{}: imatrix tensor '{}' is not a 1-D F32 vector", path, t.name);
    const int64_t n = counts->ints[i];
    if (n <= 0) fail("{}: imatrix tensor '{}' has count {}", path, t.name, n);
    Entry& e = m.entries_[t.name];
    e.rows = n;
    e.sum.resize(static_cast<size_t>(t.ne[0]));
    for (size_t j = 0; j < e.sum.size(); ++j) {
      float v;
      std::memcpy(&v, t.data + j * sizeof(float), sizeof v);
      e.sum[j] = static_cast<double>(v) * static_cast<double>(n);
    }
  }
  return m;
}

}  // namespace unicorn
