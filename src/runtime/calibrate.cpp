#include "runtime/calibrate.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "runtime/engine.h"
#include "runtime/quant_source.h"

namespace unicorn {

ImportanceMatrix calibrate(const CalibrationOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
  std::ifstream in(o.text_path, std::ios::binary);
  if (!in) fail("{}: cannot open the calibration text", o.text_path);
  std::stringstream ss;
  ss << in.rdbuf();
  EngineOptions eo;
  eo.model_path = o.model_path;
  eo.n_threads = o.threads;
  eo.n_ctx = o.n_ctx;
  eo.n_batch = o.n_ctx;
  eo.kv_type = GgmlType::F32;
  // The matmul observer reads host activations: calibrate on the CPU, in f32.
  eo.device = "cpu";
  eo.precision = "exact";
  auto engine = Engine::open(eo);
  const std::vector<int32_t> tokens = engine->tokenizer().encode(ss.str(), true);
  int64_t n_chunks = static_cast<int64_t>(tokens.size()) / o.n_ctx;
  if (n_chunks == 0)
    fail("{}: {} tokens is less than one calibration chunk of {}", o.text_path, tokens.size(), o.n_ctx);
  if (o.max_chunks > 0) n_chunks = std::min(n_chunks, o.max_chunks);

  ImportanceMatrix im;
  im.dataset = std::filesystem::path(o.text_path).filename().string();
  std::vector<float> host;
  engine->model().set_matmul_observer([&](const WeightTensor& w, const Act& x) {
    // HF-loaded weights carry their HF names; the imatrix is keyed by GGUF names.
    const std::string name = gguf_name_from_hf(w.name).value_or(w.name);
    host.resize(static_cast<size_t>(x.rows() * x.cols()));
    x.owner()->copy_to_host(x, host.data());
    im.accumulate(name, host.data(), x.rows(), x.cols());
  });
  const int32_t bos = engine->tokenizer().bos();
  std::vector<float> logits;
  Batch b;
  for (int64_t ch = 0; ch < n_chunks; ++ch) {
    engine->kv().clear(0);
    b.clear();
    for (int64_t p = 0; p < o.n_ctx; ++p) {
      const int32_t t = p == 0 ? bos : tokens[static_cast<size_t>(ch * o.n_ctx + p)];
      b.add(t, static_cast<int32_t>(p), 0, true);
    }
    engine->model().forward(b, engine->kv(), logits);
    ++im.chunks;
    if (progress) progress(ch + 1, n_chunks);
  }
  engine->model().set_matmul_observer({});
  return im;
}

}  // namespace unicorn
