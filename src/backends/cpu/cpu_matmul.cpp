// CPU matmul y = x · wᵀ: picks the shape of work (matmul_kernels.h) and splits it over threads.
// Weights are always read in place from the file mapping; only small per-thread tiles of
// unpacked rows and the quantized activations are temporary.
#include "backends/cpu/cpu_matmul.h"

#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "quant/codec.h"

namespace unicorn {

namespace {

constexpr int64_t kTileRows = 64;  // weight rows unpacked at once for the tiled kernel
constexpr int64_t kRowChunk = 64;  // rows per call of the float row-dot kernel when T > 1

bool is_float_type(GgmlType t) { return t == GgmlType::F32 || t == GgmlType::F16 || t == GgmlType::BF16; }

// Per-thread storage of an unpacked weight tile.
struct TileBuffer {
  std::vector<int8_t> q;
  std::vector<float> scale, minc;
  std::vector<int32_t> corr;
  WeightTile tile;

  WeightTile& unpack(const MatmulKernels& k, const WeightTensor& w, int64_t r0, int64_t nr) {
    const int64_t K = w.cols,
                  rows = (nr + WeightTile::kTileRowAlign - 1) / WeightTile::kTileRowAlign * WeightTile::kTileRowAlign;
    const int sub = tile_sub_block(w.type);
    const int64_t nsub = K / sub;
    q.resize(static_cast<size_t>(rows * K));
    scale.resize(static_cast<size_t>(rows * nsub));
    minc.resize(static_cast<size_t>(rows * nsub));
    corr.resize(static_cast<size_t>(rows * nsub));
    for (int64_t r = 0; r < nr; ++r) {
      k.unpack_row(w.type, w.row(r0 + r), K, q.data() + r * K, scale.data() + r * nsub, minc.data() + r * nsub,
                   corr.data() + r * nsub);
    }
    // padding rows contribute zeros (their outputs are not stored)
    std::fill(q.begin() + nr * K, q.end(), int8_t{0});
    std::fill(scale.begin() + nr * nsub, scale.end(), 0.0f);
    std::fill(minc.begin() + nr * nsub, minc.end(), 0.0f);
    std::fill(corr.begin() + nr * nsub, corr.end(), 0);
    bool has_min = false;
    for (float m : minc) has_min |= m != 0.0f;
    tile = WeightTile{rows, nr, K, sub, has_min, q.data(), scale.data(), minc.data(), corr.data()};
    return tile;
  }
};

// The generic path for types without integer kernels: dequantize a few rows, f32 dots.
void matmul_dequantized(const MatmulKernels& k, ThreadPool& pool, const WeightTensor& w, const float* x, int64_t T,
                        float* y) {
  const int64_t K = w.cols, N = w.rows;
  constexpr int64_t kTile = 16;
  pool.parallel_for(
      N,
      [&](int64_t b, int64_t e, int) {
        thread_local std::vector<float> buf;
        buf.resize(static_cast<size_t>(kTile * K));
        for (int64_t r0 = b; r0 < e; r0 += kTile) {
          const int64_t nr = std::min(kTile, e - r0);
          for (int64_t r = 0; r < nr; ++r) dequantize_row(w.type, w.row(r0 + r), buf.data() + r * K, K);
          for (int64_t t = 0; t < T; ++t)
            k.rows_dot_f32(GgmlType::F32, reinterpret_cast<const uint8_t*>(buf.data()), K * sizeof(float), nr, K,
                           x + t * K, y + t * N + r0);
        }
      },
      kTile);
}

}  // namespace

void matmul_with(const MatmulKernels& k, ThreadPool& pool, const WeightTensor& w, const float* x, int64_t T, float* y,
                 int64_t row_dot_max) {
  const int64_t K = w.cols, N = w.rows;
  const size_t stride = w.row_stride();
  if (T <= 0 || N <= 0) return;

  if (is_float_type(w.type)) {
    pool.parallel_for(
        N,
        [&](int64_t b, int64_t e, int) {
          for (int64_t r0 = b; r0 < e; r0 += kRowChunk) {
            const int64_t nr = std::min(kRowChunk, e - r0);
            for (int64_t t = 0; t < T; ++t) k.rows_dot_f32(w.type, w.row(r0), stride, nr, K, x + t * K, y + t * N + r0);
          }
        },
        16);
    return;
  }
  if (!tile_supports(w.type) || K % kActBlock != 0) {
    matmul_dequantized(k, pool, w, x, T, y);
    return;
  }

  if (T <= std::min(row_dot_max, kMaxRowDotTokens)) {
    // Bound to locals: the lambda below runs on pool threads, whose thread_locals differ.
    thread_local std::vector<int8_t> xq_mem;
    thread_local std::vector<float> xd_mem;
    thread_local std::vector<int32_t> xs_mem;
    std::vector<int8_t>& xq = xq_mem;
    std::vector<float>& xd = xd_mem;
    std::vector<int32_t>& xs = xs_mem;
    const int64_t nb = K / kActBlock;
    xq.resize(static_cast<size_t>(T * K));
    xd.resize(static_cast<size_t>(T * nb));
    xs.resize(static_cast<size_t>(T * nb));
    for (int64_t t = 0; t < T; ++t)
      k.quantize_act_row(x + t * K, K, xq.data() + t * K, xd.data() + t * nb, xs.data() + t * nb);
    QuantRow rows[kMaxRowDotTokens];
    for (int64_t t = 0; t < T; ++t) rows[t] = QuantRow{xq.data() + t * K, xd.data() + t * nb, xs.data() + t * nb};
    // Every token in one call per thread: each weight block is read and unpacked once for all.
    pool.parallel_for(
        N, [&](int64_t b, int64_t e, int) { k.rows_dot_q8(w.type, w.row(b), stride, e - b, K, rows, T, y + b, N); },
        16);
    return;
  }

  thread_local std::vector<PanelBlock> panel_mem;
  const int64_t groups = (T + PanelBlock::kTokens - 1) / PanelBlock::kTokens, nb = K / kActBlock;
  panel_mem.resize(static_cast<size_t>(groups * nb));
  PanelBlock* panel_blocks = panel_mem.data();
  pool.parallel_for(groups, [&](int64_t g0, int64_t g1, int) { k.pack_act_panel(x, K, K, T, g0, g1, panel_blocks); });
  const ActPanel panel{groups, nb, panel_blocks};
  pool.parallel_for(
      N,
      [&](int64_t b, int64_t e, int) {
        thread_local TileBuffer buf;
        for (int64_t r0 = b; r0 < e; r0 += kTileRows) {
          const int64_t nr = std::min(kTileRows, e - r0);
          k.tile_gemm(buf.unpack(k, w, r0, nr), panel, T, y + r0, N);
        }
      },
      WeightTile::kTileRowAlign);
}

void CpuBackend::matmul(const WeightTensor& w, const Act& x, Act& y) {
  if (precision_ == MatmulPrecision::Exact && !is_float_type(w.type))
    return matmul_dequantized(best_matmul_kernels(), pool_, w, x.data(), x.rows(), y.data());
  matmul_with(best_matmul_kernels(), pool_, w, x.data(), x.rows(), y.data(), row_dot_max_);
}

}  // namespace unicorn
