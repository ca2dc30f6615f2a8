// CPU matmul y = x · wᵀ over weights of any supported type.
// Generic path: each thread decodes a tile of weight rows with the reference codec and takes
// dot products with every token row (the decode is amortised over the batch).
#include <algorithm>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "quant/codec.h"

namespace unicorn {

namespace {
float dot_f32(const float* a, const float* b, int64_t n) {
  float s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
    s4 += a[i + 4] * b[i + 4];
    s5 += a[i + 5] * b[i + 5];
    s6 += a[i + 6] * b[i + 6];
    s7 += a[i + 7] * b[i + 7];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7));
}
}  // namespace

void CpuBackend::matmul(const WeightTensor& w, const Act& x, Act& y) {
  const int64_t T = x.rows(), K = w.cols, N = w.rows;
  constexpr int64_t kTile = 16;
  std::vector<std::vector<float>> scratch(static_cast<size_t>(pool_.size()));
  pool_.parallel_for(N, [&](int64_t b, int64_t e, int tid) {
    std::vector<float>& buf = scratch[static_cast<size_t>(tid)];
    buf.resize(static_cast<size_t>(kTile * K));
    for (int64_t r0 = b; r0 < e; r0 += kTile) {
      const int64_t nr = std::min(kTile, e - r0);
      for (int64_t r = 0; r < nr; ++r) dequantize_row(w.type, w.row(r0 + r), buf.data() + r * K, K);
      for (int64_t t = 0; t < T; ++t) {
        const float* xt = x.row(t);
        float* yt = y.row(t) + r0;
        for (int64_t r = 0; r < nr; ++r) yt[r] = dot_f32(buf.data() + r * K, xt, K);
      }
    }
  }, kTile);
}

}  // namespace unicorn
