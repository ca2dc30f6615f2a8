// CPU attention: each (token, head) pair attends over its slot's cached past plus the batch's own
// keys up to its position, with the sliding-window mask on local layers (spec §2.4.5-2.4.7).
// Past keys come from the ring, present keys from this batch, so a local layer's ring needs only
// `window` positions however long the prompt chunk is.
#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_kv.h"
#include "backends/cpu/vec_f32.h"
#include "core/error.h"

namespace unicorn {

void CpuBackend::attention(const Act& q, const Act& k, const Act& v, LayerKv& kv_base, const BatchView& batch,
                           std::span<const int64_t> past_len, const AttentionParams& p, Act& out) {
  auto& kv = static_cast<CpuLayerKv&>(kv_base);
  const int64_t T = q.rows();
  const int64_t hd = p.head_dim;
  const int64_t group = p.n_heads / p.n_kv_heads;  // spec §2.4.6: contiguous groups
  // Batch indices of each slot, in position order.
  std::vector<std::vector<int64_t>> of_seq(static_cast<size_t>(kv.spec.n_seq));
  for (int64_t i = 0; i < T; ++i) of_seq[static_cast<size_t>(batch.seq[static_cast<size_t>(i)])].push_back(i);

  const int n_threads = pool_.size();
  std::vector<std::vector<float>> scratch(static_cast<size_t>(n_threads));
  pool_.parallel_for(T * p.n_heads, [&](int64_t b, int64_t e, int tid) {
    std::vector<float>& buf = scratch[static_cast<size_t>(tid)];
    for (int64_t job = b; job < e; ++job) {
      const int64_t i = job / p.n_heads, h = job % p.n_heads, kvh = h / group;
      const int seq = batch.seq[static_cast<size_t>(i)];
      const int64_t pos = batch.pos[static_cast<size_t>(i)];
      const int64_t past = past_len[static_cast<size_t>(seq)];
      const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
      const int64_t n_past = std::max<int64_t>(0, past - lo);       // cached keys lo .. past-1
      const int64_t n_new = pos - std::max(past, lo) + 1;            // batch keys max(past,lo) .. pos
      const int64_t n = n_past + n_new;
      buf.resize(static_cast<size_t>(n + 2 * hd));
      float* scores = buf.data();
      float* krow = buf.data() + n;
      float* acc = krow + hd;
      const float* qh = q.row(i) + h * hd;
      const auto& mine = of_seq[static_cast<size_t>(seq)];
      const int64_t first_new = std::max(past, lo) - past;  // index into `mine`
      float mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const float* kh;
        if (j < n_past) {
          kv.load(kv.k_at(seq, lo + j), kvh * hd, hd, krow);
          kh = krow;
        } else {
          kh = k.row(mine[static_cast<size_t>(first_new + j - n_past)]) + kvh * hd;
        }
        scores[j] = vec_dot(qh, kh, hd) * p.scale;
        mx = std::max(mx, scores[j]);
      }
      float sum = 0.0f;
      for (int64_t j = 0; j < n; ++j) {
        scores[j] = std::exp(scores[j] - mx);
        sum += scores[j];
      }
      std::fill(acc, acc + hd, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float* vh;
        if (j < n_past) {
          kv.load(kv.v_at(seq, lo + j), kvh * hd, hd, krow);
          vh = krow;
        } else {
          vh = v.row(mine[static_cast<size_t>(first_new + j - n_past)]) + kvh * hd;
        }
        vec_axpy(scores[j], vh, acc, hd);
      }
      float* o = out.row(i) + h * hd;
      const float inv = 1.0f / sum;
      for (int64_t t = 0; t < hd; ++t) o[t] = acc[t] * inv;
    }
  });
  // Store after every read: in a ring a new position may overwrite one still needed above.
  for (int64_t i = 0; i < T; ++i) {
    const int seq = batch.seq[static_cast<size_t>(i)];
    const int64_t pos = batch.pos[static_cast<size_t>(i)];
    kv.store(kv.k_at(seq, pos), k.row(i));
    kv.store(kv.v_at(seq, pos), v.row(i));
  }
}

}  // namespace unicorn
