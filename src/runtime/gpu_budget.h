// --gpu-memory: how many leading layers fit a GPU memory budget (the first use of the placement
// planner; Placement::split then puts them on the GPU and the rest on the CPU).
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "core/types.h"
#include "model/weights.h"

namespace unicorn {

// "24G", "24GiB", "16000M", "8.5GB", "1073741824": binary units (K, M, G, T = 2^10.. with or
// without "iB"/"B"; "GB" is taken as GiB too, as nvidia-smi's MiB are). Throws Error naming the text.
size_t parse_size(const std::string& text);

// Bytes a weight takes on the GPU (Backend::weight_device_bytes: its layout there, e.g. CUDA pads
// Q6_K blocks); empty: the file's bytes.
using WeightBytes = std::function<size_t(const WeightTensor&)>;

struct GpuPlan {
  int64_t layers = 0;    // leading layers on the GPU (n_layers: all, the output head too)
  size_t bytes = 0;      // what they take: embedding + layers + their KV + scratch
  size_t fixed = 0;      // embedding table + scratch, needed before any layer
  size_t per_layer = 0;  // the largest layer's weights + KV
};

// The most leading layers whose weights and KV cache fit `budget` bytes next to the embedding
// table and the activation scratch (the CUDA context itself is not counted). With every layer
// on the GPU the output head is there too (the tied embedding, already counted). Throws Error
// when not even the embedding fits.
// logit_rows as in estimate_memory (runtime/memory.h).
GpuPlan plan_gpu_layers(const ModelWeights& w, int64_t n_ctx, int n_seq, GgmlType kv_type, int64_t n_batch,
                        size_t budget, const WeightBytes& bytes = {}, int64_t logit_rows = 1);

// Bytes of layer l's keys and values for n_seq slots of n_ctx positions.
size_t layer_kv_bytes(const Gemma3Config& c, int64_t l, int64_t n_ctx, int n_seq, GgmlType kv_type);
// What the plan above counts for the first `layers` layers on the GPU.
size_t gpu_bytes_for_layers(const ModelWeights& w, int64_t n_ctx, int n_seq, GgmlType kv_type, int64_t n_batch,
                            int64_t layers, const WeightBytes& bytes = {}, int64_t logit_rows = 1);

}  // namespace unicorn
