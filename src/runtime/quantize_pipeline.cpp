#include "runtime/quantize_pipeline.h"

#include "model/synthetic.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <exception>
#include <mutex>

#include <fmt/format.h>

#include "core/error.h"
#include "core/thread_pool.h"
#include "formats/gguf_writer.h"
#include "quant/codec.h"
#include "runtime/model_writer.h"

namespace unicorn {
namespace {

uint64_t value_bytes(const GgufValue& v);

// Serialized size of a value after its u32 type tag (spec §4.1).
uint64_t value_bytes(const GgufValue& v) {
  if (v.type == GgufValueType::STRING) return 8 + std::get<std::string>(v.v).size();
  if (v.type != GgufValueType::ARRAY) return gguf_scalar_size(v.type);
  const auto& a = std::get<GgufArray>(v.v);
  uint64_t n = 4 + 8;
  if (a.elem_type == GgufValueType::STRING) {
    for (const auto& s : a.strings) n += 8 + s.size();
  } else {
    n += gguf_scalar_size(a.elem_type) * a.size();
  }
  return n;
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

// Drops input pages already consumed from this process (the page cache keeps them), so resident
// memory does not grow with the model or a tensor (the mapping is read-only and shared; a page
// shared with the next rows is simply read again).
void release_pages(const uint8_t* data, size_t n) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(data) / page * page;
  const auto end = align_up(reinterpret_cast<uintptr_t>(data) + n, page);
  ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

}  // namespace

uint64_t gguf_file_size(const std::vector<MetadataEntry>& metadata, const std::vector<PlannedTensor>& tensors) {
  uint64_t n = 4 + 4 + 8 + 8;
  for (const auto& m : metadata) n += 8 + m.key.size() + 4 + value_bytes(m.value);
  for (const auto& t : tensors) n += 8 + t.name.size() + 4 + 8 * t.ne.size() + 4 + 8;
  n = align_up(n, kGgufDefaultAlignment);
  uint64_t data = 0;
  for (const auto& t : tensors) data = align_up(data, kGgufDefaultAlignment) + t.bytes;
  return n + data;
}

std::vector<MetadataEntry> output_metadata(const QuantSource& src, const std::string& preset,
                                           const ImportanceMatrix* imatrix) {
  std::vector<MetadataEntry> m;
  for (const auto& e : src.metadata())
    if (e.key.rfind("unicorn.quantize.", 0) != 0) m.push_back(e);
  m.push_back({"general.file_type", {GgufValueType::U32, int64_t{llama_file_type(preset).value_or(0)}}});
  m.push_back({"general.quantization_version", {GgufValueType::U32, int64_t{2}}});
  m.push_back({"unicorn.quantize.preset", {GgufValueType::STRING, preset}});
  if (imatrix) m.push_back({"unicorn.quantize.imatrix_dataset", {GgufValueType::STRING, imatrix->dataset}});
  return m;
}

QuantPlan plan_quantization(const std::vector<TensorShapeDesc>& tensors, const std::vector<MetadataEntry>& metadata,
                            const QuantPolicy& policy, const EncodableFn& encodable) {
  QuantPlan plan;
  plan.preset = policy.preset();
  for (const auto& t : tensors) {
    PlannedTensor p;
    p.name = t.name;
    p.ne = t.ne;
    p.choice = policy.choose(t.name, t.ne, encodable);
    p.n_elements = 1;
    for (int64_t d : t.ne) p.n_elements *= d;
    p.bytes = row_bytes(p.choice.type, t.ne[0]) * static_cast<uint64_t>(p.n_elements / t.ne[0]);
    plan.n_elements += p.n_elements;
    plan.tensor_bytes += p.bytes;
    plan.tensors.push_back(std::move(p));
  }
  plan.file_bytes = gguf_file_size(metadata, plan.tensors);
  return plan;
}

double embedding_share(const std::vector<TensorShapeDesc>& tensors) {
  double all = 0, embd = 0;
  for (const auto& t : tensors) {
    double n = 1;
    for (int64_t d : t.ne) n *= static_cast<double>(d);
    all += n;
    if (t.name == "token_embd.weight") embd = n;
  }
  return all > 0 ? embd / all : 0.0;
}

Gemma3Config gemma3_size_config(const std::string& size) {
  // The shapes of model/synthetic.h; the HF checkpoints of 4B and up carry the multimodal
  // 262208-row embedding (spec §1.1).
  Gemma3Config c = synthetic_config(size);
  if (c.hidden > 1152) c.vocab_size = 262208;
  return c;
}

std::vector<TensorShapeDesc> gemma3_shapes(const Gemma3Config& c) {
  // ggml ne = [cols, rows] (spec §4.3).
  std::vector<TensorShapeDesc> v;
  v.push_back({"token_embd.weight", {c.hidden, c.vocab_size}});
  for (int64_t l = 0; l < c.n_layers; ++l) {
    auto add = [&](const char* what, std::vector<int64_t> ne) { v.push_back({fmt::format("blk.{}.{}", l, what), ne}); };
    add("attn_norm.weight", {c.hidden});
    add("attn_q.weight", {c.hidden, c.q_dim()});
    add("attn_k.weight", {c.hidden, c.kv_dim()});
    add("attn_v.weight", {c.hidden, c.kv_dim()});
    add("attn_output.weight", {c.q_dim(), c.hidden});
    add("attn_q_norm.weight", {c.head_dim});
    add("attn_k_norm.weight", {c.head_dim});
    add("post_attention_norm.weight", {c.hidden});
    add("ffn_norm.weight", {c.hidden});
    add("ffn_gate.weight", {c.hidden, c.ffn});
    add("ffn_up.weight", {c.hidden, c.ffn});
    add("ffn_down.weight", {c.ffn, c.hidden});
    add("post_ffw_norm.weight", {c.hidden});
  }
  v.push_back({"output_norm.weight", {c.hidden}});
  return v;
}

QuantPlan quantize_model(const QuantSource& src, const QuantizeOptions& o) {
  std::vector<TensorShapeDesc> shapes;
  for (const auto& t : src.tensors()) shapes.push_back({t.name, t.ne});
  QuantPolicy policy(o.preset, o.overrides, src.config().n_layers, embedding_share(shapes));
  const std::vector<MetadataEntry> meta = output_metadata(src, o.preset, o.imatrix);
  const EncodableFn encodable = [](GgmlType t) { return can_quantize(t); };
  QuantPlan plan = plan_quantization(shapes, meta, policy, encodable);

  GgufWriter w(o.output);
  for (const auto& m : meta) w.add_value(m.key, m.value);
  ThreadPool pool(o.threads);
  QuantizeProgress prog;
  prog.n_tensors = static_cast<int64_t>(plan.tensors.size());
  prog.total_elements = plan.n_elements;
  for (size_t i = 0; i < plan.tensors.size(); ++i) {
    const PlannedTensor& pt = plan.tensors[i];
    const SourceTensor& st = src.tensors()[i];
    const std::vector<float>* importance = nullptr;
    if (o.imatrix && traits(pt.choice.type).quantized) {
      importance = o.imatrix->find(pt.name);
      if (importance && static_cast<int64_t>(importance->size()) != st.cols())
        fail("imatrix: '{}' has {} columns, the model's tensor {}", pt.name, importance->size(), st.cols());
    }
    w.add_tensor(pt.name, pt.ne, pt.choice.type, [&, i, importance](GgufTensorSink& sink) {
      const int64_t cols = st.cols(), rows = st.rows();
      const GgmlType type = pt.choice.type;
      const size_t out_row = row_bytes(type, cols), in_row = row_bytes(st.type, cols);
      const int64_t slab = std::clamp<int64_t>(static_cast<int64_t>(o.slab_bytes / (sizeof(float) * cols)), 1, rows);
      std::vector<float> f32(static_cast<size_t>(slab * cols));
      std::vector<uint8_t> out(static_cast<size_t>(slab) * out_row);
      prog.tensor_index = static_cast<int64_t>(i);
      prog.tensor = &pt;
      for (int64_t r0 = 0; r0 < rows; r0 += slab) {
        const int64_t n = std::min(slab, rows - r0);
        std::exception_ptr error;  // the pool's workers must not throw; the first error is rethrown here
        std::mutex error_mu;
        pool.parallel_for(n, [&](int64_t b, int64_t e, int) {
          try {
            st.decode_rows(r0 + b, e - b, f32.data() + b * cols);
            for (int64_t r = b; r < e; ++r)
              quantize_row_weighted(type, f32.data() + r * cols, out.data() + static_cast<size_t>(r) * out_row, cols,
                                    importance ? importance->data() : nullptr);
          } catch (...) {
            std::lock_guard<std::mutex> lock(error_mu);
            if (!error) error = std::current_exception();
          }
        });
        if (error) std::rethrow_exception(error);
        sink.write(out.data(), static_cast<size_t>(n) * out_row);
        release_pages(st.data + static_cast<size_t>(r0) * in_row, static_cast<size_t>(n) * in_row);
        prog.done_elements += n * cols;
        if (o.progress) o.progress(prog);
      }
    });
  }
  w.write();
  return plan;
}

}  // namespace unicorn
