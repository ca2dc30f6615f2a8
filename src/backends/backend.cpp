// Default composite ops of the backend interface, made of the primitive ops (backend.h). They fix
// the order of operations that fused kernels must reproduce.
#include "backends/backend.h"

#include <algorithm>
#include <numeric>
#include <vector>

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

void Backend::qk_norm_rope_attention(Act& q, Act& k, const Act& v, const WeightTensor& q_norm,
                                     const WeightTensor& k_norm, float eps, std::span<const int32_t> pos, float base,
                                     float scale, LayerKv& kv, const BatchView& batch,
                                     std::span<const int64_t> past_len, const AttentionParams& p, Act& out) {
  qk_norm_rope(q, k, q_norm, k_norm, eps, p.head_dim, pos, base, scale);
  attention(q, k, v, kv, batch, past_len, p, out);
}

void Backend::add_norm(Act& x, Act& o, const WeightTensor& post_w, const WeightTensor* next_w, float eps, Act& h) {
  rms_norm(o, post_w, eps, o);
  add(x, o);
  if (next_w) rms_norm(x, *next_w, eps, h);
}

void Backend::top_k(const Act& x, int k, int64_t n_allowed, Act& out) {
  const int64_t rows = x.rows(), cols = x.cols();
  const int64_t n = n_allowed > 0 ? std::min(n_allowed, cols) : cols;
  if (k <= 0 || k > n || out.rows() != rows || out.cols() != 2 * k)
    fail("internal: top_k of {} from {} columns into [{}, {}]", k, n, out.rows(), out.cols());
  std::vector<float> host(static_cast<size_t>(rows * cols)), res(static_cast<size_t>(rows * 2 * k));
  copy_to_host(x, host.data());
  std::vector<int32_t> idx(static_cast<size_t>(n));
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = host.data() + r * cols;
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                      [&](int32_t a, int32_t b) { return z[a] > z[b] || (z[a] == z[b] && a < b); });
    for (int i = 0; i < k; ++i) {
      res[static_cast<size_t>(r * 2 * k + 2 * i)] = z[idx[static_cast<size_t>(i)]];
      res[static_cast<size_t>(r * 2 * k + 2 * i + 1)] = static_cast<float>(idx[static_cast<size_t>(i)]);
    }
  }
  copy_from_host(res.data(), out);
}

}  // namespace unicorn
