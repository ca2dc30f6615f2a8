// Portable kernels: the fallback on CPUs without AVX2, and for rarely used types on every CPU.
// They follow the same arithmetic as the SIMD kernels (int8 products summed per sub-block, then
// scaled in f32) so that all kernel sets agree closely.
#include <cstring>
#include <vector>

#include "backends/cpu/matmul_kernels.h"
#include "core/half.h"

namespace unicorn {
namespace {

// One unpacked weight row, reused across calls on a thread.
struct UnpackedRow {
  std::vector<int8_t> q;
  std::vector<float> scale, minc;
  std::vector<int32_t> corr;
  void resize(int64_t K, int sub) {
    q.resize(static_cast<size_t>(K));
    scale.resize(static_cast<size_t>(K / sub));
    minc.resize(static_cast<size_t>(K / sub));
    corr.resize(static_cast<size_t>(K / sub));
  }
};

float load_as_f32(GgmlType type, const uint8_t* row, int64_t i) {
  switch (type) {
    case GgmlType::F16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      return f16_to_f32(h);
    }
    case GgmlType::BF16: {
      uint16_t h;
      std::memcpy(&h, row + 2 * i, 2);
      return bf16_to_f32(h);
    }
    default: {
      float f;
      std::memcpy(&f, row + 4 * i, 4);
      return f;
    }
  }
}

}  // namespace

void rows_dot_q8_scalar(GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K, const QuantRow* xs,
                        int64_t T, float* y, int64_t ldy) {
  thread_local UnpackedRow u;
  const int sub = tile_sub_block(type);
  u.resize(K, sub);
  for (int64_t r = 0; r < nrows; ++r) {
    unpack_row(type, w + static_cast<size_t>(r) * stride, K, u.q.data(), u.scale.data(), u.minc.data(), u.corr.data());
    for (int64_t t = 0; t < T; ++t) {
      const QuantRow& x = xs[t];
      float acc = 0.0f;
      for (int64_t s = 0; s < K / sub; ++s) {
        const int64_t k0 = s * sub;
        int32_t dot = 0, xsum = 0;
        for (int i = 0; i < sub; ++i) {
          dot += u.q[k0 + i] * x.q[k0 + i];
          xsum += x.q[k0 + i];
        }
        const float dx = x.d[k0 / kActBlock];
        acc += u.scale[s] * dx * static_cast<float>(dot) + u.minc[s] * dx * static_cast<float>(xsum);
      }
      y[t * ldy + r] = acc;
    }
  }
}

void rows_dot_f32_scalar(GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K, const float* x,
                         float* y) {
  for (int64_t r = 0; r < nrows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * stride;
    float s[8] = {};
    int64_t i = 0;
    for (; i + 8 <= K; i += 8)
      for (int l = 0; l < 8; ++l) s[l] += load_as_f32(type, row, i + l) * x[i + l];
    for (; i < K; ++i) s[0] += load_as_f32(type, row, i) * x[i];
    y[r] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  }
}

void tile_gemm_scalar(const WeightTile& tile, const ActPanel& panel, int64_t T, float* y, int64_t ldy) {
  constexpr int G = PanelBlock::kTokens;
  const int sub = tile.sub;
  const int64_t nsub = tile.nsub();
  for (int64_t t = 0; t < T; ++t) {
    const int lane = static_cast<int>(t % G);
    for (int64_t r = 0; r < tile.valid; ++r) {
      const int8_t* q = tile.q + r * tile.K;
      float acc = 0.0f;
      for (int64_t b = 0; b < panel.nblocks; ++b) {
        const PanelBlock& pb = *panel.at(t / G, b);
        for (int h = 0; h < kActBlock / sub; ++h) {
          const int64_t s = b * (kActBlock / sub) + h;
          int32_t dot = 0;
          for (int i = h * sub; i < (h + 1) * sub; ++i)
            dot += (pb.xu[i / 4][4 * lane + i % 4] - 128) * q[b * kActBlock + i];
          const float xsum = sub == kActBlock ? pb.sx32[lane] : pb.sx16[h][lane];
          acc += tile.scale[r * nsub + s] * pb.dx[lane] * static_cast<float>(dot) + tile.minc[r * nsub + s] * xsum;
        }
      }
      y[t * ldy + r] = acc;
    }
  }
}

}  // namespace unicorn
