#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include <unistd.h>

#include "backends/cpu/cpu_kv.h"
#include "backends/cpu/cpu_matmul.h"
#include "backends/cpu/vec_f32.h"
#include "core/error.h"
#include "quant/codec.h"

namespace unicorn {

CpuBackend::CpuBackend(int n_threads, MatmulPrecision precision)
    : pool_(n_threads), precision_(precision), row_dot_max_(kTiledMinTokens - 1) {}

void CpuBackend::begin_batch(const BatchView& batch, std::span<const int64_t>, std::span<const int64_t>) {
  std::vector<int32_t> seqs(batch.seq.begin(), batch.seq.end());
  std::ranges::sort(seqs);
  const bool one_each = std::ranges::adjacent_find(seqs) == seqs.end();
  row_dot_max_ = one_each ? kMaxRowDotTokens : kTiledMinTokens - 1;
}

bool CpuBackend::supports_weight(GgmlType type) const { return can_dequantize(type); }

Act CpuBackend::alloc(int64_t rows, int64_t cols) {
  const size_t n = static_cast<size_t>(rows * cols);
  // 64-byte aligned so SIMD kernels may use aligned loads on row starts of aligned widths.
  float* p = static_cast<float*>(::operator new[](std::max<size_t>(n, 1) * sizeof(float), std::align_val_t(64)));
  std::shared_ptr<float> mem(p, [](float* q) { ::operator delete[](q, std::align_val_t(64)); });
  return Act(this, std::move(mem), rows, cols);
}

double CpuBackend::copy_bandwidth(size_t bytes) {
  // The pool's threads copy contiguous chunks, as the matmuls split weight rows over them. The
  // pages are touched first, so the timed copies measure memory, not page faults.
  // Linux overcommits, so a failed allocation would not say "no room": ask for what is free first.
  const long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (bytes == 0 || pages <= 0 || page <= 0 || static_cast<double>(pages) * static_cast<double>(page) < 4.0 * bytes)
    return 0.0;
  std::unique_ptr<uint8_t[]> src(new (std::nothrow) uint8_t[bytes]), dst(new (std::nothrow) uint8_t[bytes]);
  if (!src || !dst) return 0.0;
  constexpr int64_t kGrain = int64_t{1} << 20;
  const auto copy = [&](bool fill) {
    pool_.parallel_for(
        static_cast<int64_t>(bytes),
        [&](int64_t b, int64_t e, int) {
          if (fill) std::memset(src.get() + b, static_cast<int>(b & 0x7F), static_cast<size_t>(e - b));
          std::memcpy(dst.get() + b, src.get() + b, static_cast<size_t>(e - b));
        },
        kGrain);
  };
  copy(true);
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    copy(false);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, 2.0 * static_cast<double>(bytes) / s);
  }
  return best;
}

void CpuBackend::copy_from_host(const float* src, Act& dst) {
  std::memcpy(dst.data(), src, static_cast<size_t>(dst.rows() * dst.cols()) * sizeof(float));
}

void CpuBackend::copy_to_host(const Act& src, float* dst) {
  std::memcpy(dst, src.data(), static_cast<size_t>(src.rows() * src.cols()) * sizeof(float));
}

std::unique_ptr<LayerKv> CpuBackend::create_kv(const LayerKvSpec& spec) {
  if (spec.type != GgmlType::F32 && spec.type != GgmlType::F16)
    fail("KV cache type {} is not supported on the CPU (use f32 or f16)", type_name(spec.type));
  return std::make_unique<CpuLayerKv>(spec);
}

void CpuBackend::embed(const WeightTensor& table, std::span<const int32_t> tokens, float scale, Act& out) {
  for (size_t i = 0; i < tokens.size(); ++i) {
    float* o = out.row(static_cast<int64_t>(i));
    dequantize_row(table.type, table.row(tokens[i]), o, table.cols);
    for (int64_t j = 0; j < table.cols; ++j) o[j] *= scale;
  }
}

void CpuBackend::rms_norm(const Act& x, const WeightTensor& w, float eps, Act& y) {
  const auto* wv = reinterpret_cast<const float*>(w.data);
  const int64_t g = w.cols;
  const int64_t groups = x.cols() / g;
  for (int64_t r = 0; r < x.rows(); ++r) {
    for (int64_t gi = 0; gi < groups; ++gi) {
      const float* xs = x.row(r) + gi * g;
      float* ys = y.row(r) + gi * g;
      double ss = 0.0;
      for (int64_t i = 0; i < g; ++i) ss += static_cast<double>(xs[i]) * xs[i];
      const float inv = 1.0f / std::sqrt(static_cast<float>(ss / static_cast<double>(g)) + eps);
      for (int64_t i = 0; i < g; ++i) ys[i] = xs[i] * inv * wv[i];
    }
  }
}

void CpuBackend::rope(Act& x, int64_t head_dim, std::span<const int32_t> pos, float base, float scale) {
  const int64_t half = head_dim / 2;
  // inv_freq in float32 as the reference computes it (spec §2.4.3; linear scaling divides it).
  std::vector<float> inv_freq(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i)
    inv_freq[static_cast<size_t>(i)] =
        static_cast<float>(1.0 / std::pow(static_cast<double>(base), 2.0 * static_cast<double>(i) / head_dim)) / scale;
  std::vector<float> c(static_cast<size_t>(half)), s(static_cast<size_t>(half));
  const int64_t heads = x.cols() / head_dim;
  for (int64_t r = 0; r < x.rows(); ++r) {
    for (int64_t i = 0; i < half; ++i) {
      const float angle = static_cast<float>(pos[static_cast<size_t>(r)]) * inv_freq[static_cast<size_t>(i)];
      c[static_cast<size_t>(i)] = static_cast<float>(std::cos(static_cast<double>(angle)));
      s[static_cast<size_t>(i)] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
    for (int64_t h = 0; h < heads; ++h) {
      float* v = x.row(r) + h * head_dim;
      for (int64_t i = 0; i < half; ++i) {
        const float a = v[i], b = v[i + half];
        v[i] = a * c[static_cast<size_t>(i)] - b * s[static_cast<size_t>(i)];
        v[i + half] = b * c[static_cast<size_t>(i)] + a * s[static_cast<size_t>(i)];
      }
    }
  }
}

void CpuBackend::gelu_mul(const Act& gate, const Act& up, Act& out) {
  const int64_t n = gate.rows() * gate.cols();
  pool_.parallel_for(
      n, [&](int64_t b, int64_t e, int) { vec_gelu_mul(gate.data() + b, up.data() + b, out.data() + b, e - b); }, 4096);
}

void CpuBackend::add(Act& x, const Act& y) {
  const int64_t n = x.rows() * x.cols();
  float* a = x.data();
  const float* b = y.data();
  for (int64_t i = 0; i < n; ++i) a[i] += b[i];
}

void CpuBackend::gather_rows(const Act& x, std::span<const int64_t> rows, Act& out) {
  for (size_t i = 0; i < rows.size(); ++i)
    std::memcpy(out.row(static_cast<int64_t>(i)), x.row(rows[i]), static_cast<size_t>(x.cols()) * sizeof(float));
}

void CpuBackend::softcap(Act& x, float cap) {
  float* z = x.data();
  const int64_t n = x.rows() * x.cols();
  for (int64_t i = 0; i < n; ++i) z[i] = cap * std::tanh(z[i] / cap);
}

}  // namespace unicorn
