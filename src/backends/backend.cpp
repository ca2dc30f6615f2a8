// Default composite ops of the backend interface, made of the primitive ops (backend.h). They fix
// the order of operations that fused kernels must reproduce.
#include "backends/backend.h"

#include "core/error.h"

namespace unicorn {

void Backend::matmul_many(std::span<const WeightTensor* const> ws, const Act& x, std::span<Act* const> ys) {
  if (ws.size() != ys.size()) fail("internal: matmul_many with {} weights and {} outputs", ws.size(), ys.size());
  for (size_t i = 0; i < ws.size(); ++i) matmul(*ws[i], x, *ys[i]);
}

void Backend::matmul_geglu(const WeightTensor& gate_w, const WeightTensor& up_w, const Act& x, Act& gate, Act& up) {
  matmul(gate_w, x, gate);
  matmul(up_w, x, up);
  gelu_mul(gate, up, gate);
}

void Backend::qk_norm_rope(Act& q, Act& k, const WeightTensor& q_norm, const WeightTensor& k_norm, float eps,
                           int64_t head_dim, std::span<const int32_t> pos, float base, float scale) {
  rms_norm(q, q_norm, eps, q);
  rms_norm(k, k_norm, eps, k);
  rope(q, head_dim, pos, base, scale);
  rope(k, head_dim, pos, base, scale);
}

void Backend::add_norm(Act& x, Act& o, const WeightTensor& post_w, const WeightTensor* next_w, float eps, Act& h) {
  rms_norm(o, post_w, eps, o);
  add(x, o);
  if (next_w) rms_norm(x, *next_w, eps, h);
}

}  // namespace unicorn
