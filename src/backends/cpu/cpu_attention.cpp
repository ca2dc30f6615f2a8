// CPU attention: each token attends over its slot's cached past plus the batch's own keys up to
// its position, with the sliding-window mask on local layers (spec §2.4.5-2.4.7). Past keys come
// from the ring, present keys from this batch, so a local layer's ring needs only `window`
// positions however long the prompt chunk is.
//
// Work items are (token, kv head, slice of its query-head group): the query heads that share a
// kv head (GQA, spec §2.4.6) read each key and value row once. When there are fewer items than
// threads (decode of one sequence), the group is split across threads.
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
  const int64_t group = p.n_heads / p.n_kv_heads;
  // Batch indices of each slot, in position order.
  std::vector<std::vector<int64_t>> of_seq(static_cast<size_t>(kv.spec.n_seq));
  for (int64_t i = 0; i < T; ++i) of_seq[static_cast<size_t>(batch.seq[static_cast<size_t>(i)])].push_back(i);

  const int n_threads = pool_.size();
  int64_t splits = 1;  // slices per query-head group
  while (T * p.n_kv_heads * splits < n_threads && splits < group && group % (splits * 2) == 0) splits *= 2;
  const int64_t per_job = group / splits;

  std::vector<std::vector<float>> scratch(static_cast<size_t>(n_threads));
  pool_.parallel_for(T * p.n_kv_heads * splits, [&](int64_t b, int64_t e, int tid) {
    std::vector<float>& buf = scratch[static_cast<size_t>(tid)];
    for (int64_t job = b; job < e; ++job) {
      const int64_t i = job / (p.n_kv_heads * splits);
      const int64_t kvh = (job / splits) % p.n_kv_heads;
      const int64_t h0 = kvh * group + (job % splits) * per_job;  // first query head of this item
      const int seq = batch.seq[static_cast<size_t>(i)];
      const int64_t pos = batch.pos[static_cast<size_t>(i)];
      const int64_t past = past_len[static_cast<size_t>(seq)];
      const int64_t lo = p.window > 0 ? std::max<int64_t>(0, pos - p.window + 1) : 0;
      const int64_t n_past = std::max<int64_t>(0, past - lo);  // cached keys lo .. past-1
      const int64_t n_new = pos - std::max(past, lo) + 1;      // batch keys max(past,lo) .. pos
      const int64_t n = n_past + n_new;
      buf.resize(static_cast<size_t>(per_job * n + hd + per_job * hd));
      float* scores = buf.data();         // [per_job][n]
      float* row = scores + per_job * n;  // a key or value row converted to f32
      float* acc = row + hd;              // [per_job][hd]
      const auto& mine = of_seq[static_cast<size_t>(seq)];
      const int64_t first_new = std::max(past, lo) - past;  // index into `mine`
      auto key = [&](int64_t j) -> const float* {
        if (j < n_past) {
          kv.load(kv.k_at(seq, lo + j), kvh * hd, hd, row);
          return row;
        }
        return k.row(mine[static_cast<size_t>(first_new + j - n_past)]) + kvh * hd;
      };
      auto value = [&](int64_t j) -> const float* {
        if (j < n_past) {
          kv.load(kv.v_at(seq, lo + j), kvh * hd, hd, row);
          return row;
        }
        return v.row(mine[static_cast<size_t>(first_new + j - n_past)]) + kvh * hd;
      };
      for (int64_t j = 0; j < n; ++j) {
        const float* kh = key(j);
        for (int64_t h = 0; h < per_job; ++h) scores[h * n + j] = vec_dot(q.row(i) + (h0 + h) * hd, kh, hd) * p.scale;
      }
      for (int64_t h = 0; h < per_job; ++h) {  // softmax in f32 (spec §2.4.7)
        float* s = scores + h * n;
        const float mx = *std::max_element(s, s + n);
        float sum = 0.0f;
        for (int64_t j = 0; j < n; ++j) {
          s[j] = std::exp(s[j] - mx);
          sum += s[j];
        }
        vec_scale(1.0f / sum, s, n);
      }
      std::fill(acc, acc + per_job * hd, 0.0f);
      for (int64_t j = 0; j < n; ++j) {
        const float* vh = value(j);
        for (int64_t h = 0; h < per_job; ++h) vec_axpy(scores[h * n + j], vh, acc + h * hd, hd);
      }
      for (int64_t h = 0; h < per_job; ++h) std::copy(acc + h * hd, acc + (h + 1) * hd, out.row(i) + (h0 + h) * hd);
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
