// `unicorn compare REF QUANT -f TEXT`: how much a quantized model lost against its reference.
// Both models run over the same tokens with llama-perplexity's rules (runtime/perplexity.h:
// chunks of n_ctx tokens, BOS first, the second half scored). Reported:
//   - perplexity of each and their ratio; quality retention = ppl(ref) / ppl(quant)
//     (1.0 = nothing lost; 0.95 = the quantized model's perplexity is ~5% higher);
//   - mean KL divergence KL(P_ref || P_quant) of the next-token distributions over the scored
//     positions, and top-1 agreement (how often both models' most likely token is the same);
//   - per tensor, ||dequant(quant) - ref|| / ||ref|| where names and shapes match;
//   - bits per weight (tensor bytes * 8 / elements) and file size of each.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/types.h"

namespace unicorn {

struct CompareOptions {
  std::string ref_path, quant_path, text_path;
  int64_t n_ctx = 256;
  int64_t max_chunks = 8;  // <= 0: all
  int threads = 0;
  bool tensor_errors = true;
};

struct TensorError {
  std::string name;
  GgmlType ref_type, quant_type;
  int64_t n_elements = 0;
  double rel_error = 0;
};

struct ModelSummary {
  std::string path;
  uint64_t file_bytes = 0;
  uint64_t tensor_bytes = 0;
  int64_t n_elements = 0;
  double bits_per_weight = 0;
  double ppl = 0;
};

struct CompareReport {
  ModelSummary ref, quant;
  std::string text_path;
  int64_t n_ctx = 0, n_chunks = 0, n_scored = 0;
  double ppl_ratio = 0;  // quant / ref
  double retention = 0;  // ref / quant
  double mean_kl = 0;    // nats per scored position
  double max_kl = 0;
  double top1_agreement = 0;
  std::vector<TensorError> tensors;  // in the reference's order
};

CompareReport compare_models(const CompareOptions& o,
                             const std::function<void(int64_t chunk, int64_t n_chunks)>& progress = {});

std::string compare_markdown(const CompareReport& r);
nlohmann::json compare_json(const CompareReport& r);

// KL(P || Q) in nats of the softmax distributions of two logit rows.
double kl_divergence(const float* p_logits, const float* q_logits, int64_t n);

}  // namespace unicorn
