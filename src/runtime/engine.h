// An opened model ready to run: weights, tokenizer, backends, placement, KV cache.
// Front ends (CLI, server) hold one Engine.
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "model/gemma3.h"
#include "model/loader.h"
#include "runtime/gpu_budget.h"
#include "runtime/kv_cache.h"
#include "runtime/memory.h"
#include "tokenizer/tokenizer.h"

namespace unicorn {

struct EngineOptions {
  std::string model_path;
  int n_threads = 0;      // 0: all cores
  int64_t n_ctx = -4096;  // 0: the model's trained context; -N: N capped at it
  int n_seq = 1;
  int64_t n_batch = 512;   // tokens per forward call when processing a prompt
  int64_t logit_rows = 1;  // the most rows of logits one forward call asks for (perplexity: n_batch)
  GgmlType kv_type = GgmlType::F16;
  std::string precision = "fast";  // CPU matmuls: "fast" (int8 activations) or "exact" (f32)
  int64_t gpu_layers = -1;         // with a GPU device: layers placed on it (the rest run on the CPU); -1: all
  std::string device = "auto";     // "auto" (CUDA when a device is present, else CPU), "cpu", "cuda", "cuda:N"
  std::string gpu_memory;          // "24G": as many leading layers on the GPU as fit (runtime/gpu_budget.h)
  // Hears each weight upload to a device: (backend, bytes done, bytes in all). May be empty.
  Gemma3Model::LoadProgress load_progress;
};

class Engine {
 public:
  // Loads the model, checks the memory estimate against the machine before allocating the KV
  // cache, and builds the backends. Throws Error with a clear message on any failure.
  static std::unique_ptr<Engine> open(const EngineOptions& opt);

  const EngineOptions& options() const { return opt_; }
  const Gemma3Config& config() const { return weights_->config; }
  const ModelWeights& weights() const { return *weights_; }
  Gemma3Model& model() { return *model_; }
  KvCache& kv() { return *kv_; }
  const KvCache& kv() const { return *kv_; }
  bool has_tokenizer() const { return tokenizer_.has_value(); }
  const Tokenizer& tokenizer() const;  // throws Error if the model carries none
  const std::string& tokenizer_source() const { return tokenizer_source_; }
  const MemoryEstimate& memory() const { return mem_; }
  const std::vector<std::unique_ptr<Backend>>& backends() const { return backends_; }
  // Layers on the first backend when the placement was split (--gpu-layers / --gpu-memory); else
  // every layer.
  int64_t gpu_layers() const { return gpu_layers_; }
  // Why the device choice was not what the user may expect (--device auto on the CPU although a
  // CUDA driver is installed); empty otherwise. The front ends show it.
  const std::string& device_note() const { return device_note_; }

 private:
  EngineOptions opt_;
  std::shared_ptr<ModelWeights> weights_;
  std::optional<Tokenizer> tokenizer_;
  std::string tokenizer_source_;
  std::vector<std::unique_ptr<Backend>> backends_;
  int64_t gpu_layers_ = 0;
  std::string device_note_;
  void check_memory(const EngineOptions& opt, const Gemma3Config& c) const;
  // What backend i holds per weight (Backend::weight_device_bytes), for the GPU memory planner.
  WeightBytes weight_bytes_on(size_t i) const;
  std::unique_ptr<Gemma3Model> model_;
  std::unique_ptr<KvCache> kv_;
  MemoryEstimate mem_;
};

}  // namespace unicorn
