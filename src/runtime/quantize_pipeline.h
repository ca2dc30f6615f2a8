// `unicorn quantize`: streams a model tensor by tensor from its mapping through the preset's
// policy and the codecs into a GGUF file. Memory stays bounded: rows are decoded and encoded in
// slabs of a few MiB split over threads, each slab goes straight to the GgufWriter's sink, and
// the input pages of a finished slab are dropped from the process (MADV_DONTNEED). The writer
// writes OUT.tmp and renames it only when complete, so a failed run leaves no partial file.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "quant/imatrix.h"
#include "quant/policy.h"
#include "runtime/quant_source.h"

namespace unicorn {

struct TensorShapeDesc {
  std::string name;         // GGUF name
  std::vector<int64_t> ne;  // ggml order
};

struct PlannedTensor {
  std::string name;
  std::vector<int64_t> ne;
  TypeChoice choice;
  int64_t n_elements = 0;
  uint64_t bytes = 0;
};

struct QuantPlan {
  std::string preset;
  std::vector<PlannedTensor> tensors;
  int64_t n_elements = 0;
  uint64_t tensor_bytes = 0;  // sum of tensor sizes
  uint64_t file_bytes = 0;    // the exact GGUF size (header, alignment padding, data)
  double bits_per_weight() const { return 8.0 * static_cast<double>(tensor_bytes) / static_cast<double>(n_elements); }
};

// Decides every tensor's type and the exact output size. `metadata` is what will be written
// (its size counts in file_bytes).
QuantPlan plan_quantization(const std::vector<TensorShapeDesc>& tensors, const std::vector<MetadataEntry>& metadata,
                            const QuantPolicy& policy, const EncodableFn& encodable);

// token_embd's fraction of all weights (QuantPolicy's embedding_share).
double embedding_share(const std::vector<TensorShapeDesc>& tensors);

// Tensor shapes of a published Gemma 3 size ("270m", "1b", "4b", "12b", "27b"; spec §1.1, §3.3;
// HF vocab 262208 for 4B+), and its config. Throws Error for an unknown size.
std::vector<TensorShapeDesc> gemma3_shapes(const Gemma3Config& c);
Gemma3Config gemma3_size_config(const std::string& size);

// The bytes a GGUF file with this metadata and these tensors has (GGUF v3, alignment 32).
uint64_t gguf_file_size(const std::vector<MetadataEntry>& metadata, const std::vector<PlannedTensor>& tensors);

struct QuantizeProgress {
  int64_t tensor_index = 0, n_tensors = 0;
  const PlannedTensor* tensor = nullptr;
  int64_t done_elements = 0, total_elements = 0;  // over the whole model
};

struct QuantizeOptions {
  std::string output;
  std::string preset;
  std::vector<TypeOverride> overrides;
  const ImportanceMatrix* imatrix = nullptr;              // null: unweighted rounding
  int threads = 0;                                        // 0: all cores
  size_t slab_bytes = size_t{8} << 20;                    // f32 rows decoded at a time (per slab)
  std::function<void(const QuantizeProgress&)> progress;  // after each slab of rows
};

// Quantizes `src` to options.output. Throws Error naming the file/tensor on failure; the output
// path is then untouched (no partial file). Returns the plan that was written.
QuantPlan quantize_model(const QuantSource& src, const QuantizeOptions& options);

// Metadata quantize_model writes: the source's, general.file_type (llama.cpp's numbering),
// general.quantization_version, unicorn.quantize.preset and, with an imatrix, the calibration
// text it came from (unicorn.quantize.imatrix_dataset).
std::vector<MetadataEntry> output_metadata(const QuantSource& src, const std::string& preset,
                                           const ImportanceMatrix* imatrix);

}  // namespace unicorn
