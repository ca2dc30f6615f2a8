// Matmul kernels for AVX-512 (F/BW/VL/DQ + VNNI): row dots (rows_dot_x86.inl, with the 256-bit
// VNNI dot) and the tiled kernel, 8 weight rows × 16 tokens per step: one 64-byte panel load
// holds 4 values of 16 tokens, and `vpdpbusd` against a broadcast 4 weight bytes adds their
// products into 16 per-token sums. Panel bytes are x + 128 (unsigned), so each sub-block's
// sums start from corr = -128 · Σw and come out as exact Σ x·w.
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/matmul_kernels.h"
#include "quant/blocks.h"

namespace unicorn::avx512 {

#include "backends/cpu/rows_dot_x86.inl"

namespace {

constexpr int kRows = 8, kLanes = PanelBlock::kTokens;

// int32 -> f32; the zero-masked form sidesteps GCC 12's -Wmaybe-uninitialized false positive on
// _mm512_cvtepi32_ps (its "undefined" pass-through operand). Same instruction.
inline __m512 to_float(__m512i v) { return _mm512_maskz_cvtepi32_ps(static_cast<__mmask16>(0xFFFF), v); }

template <int kSub, bool kMin>
void block_8x16(const WeightTile& tile, int64_t r0, const ActPanel& panel, int64_t g, float out[kRows][kLanes]) {
  const int64_t K = tile.K, nsub = tile.K / tile.sub;
  const int8_t* q[kRows];
  const float* scale[kRows];
  const float* minc[kRows];
  const int32_t* corr[kRows];
  for (int i = 0; i < kRows; ++i) {
    q[i] = tile.q + (r0 + i) * K;
    scale[i] = tile.scale + (r0 + i) * nsub;
    minc[i] = tile.minc + (r0 + i) * nsub;
    corr[i] = tile.corr + (r0 + i) * nsub;
  }
  __m512 acc[kRows];
  for (auto& a : acc) a = _mm512_setzero_ps();
  for (int64_t b = 0; b < panel.nblocks; ++b) {
    const PanelBlock& pb = panel.blocks[g * panel.nblocks + b];
    const __m512 dx = _mm512_load_ps(pb.dx);
    for (int h = 0; h < kActBlock / kSub; ++h) {
      const int64_t s = b * (kActBlock / kSub) + h;
      __m512i ia[kRows];
      for (int i = 0; i < kRows; ++i) ia[i] = _mm512_set1_epi32(corr[i][s]);
      for (int j = h * kSub / 4; j < (h + 1) * kSub / 4; ++j) {
        const __m512i xv = _mm512_load_si512(pb.xu[j]);
        for (int i = 0; i < kRows; ++i) {
          const int32_t w4 =
              static_cast<int32_t>(load_u32(reinterpret_cast<const uint8_t*>(q[i] + b * kActBlock + 4 * j)));
          ia[i] = _mm512_dpbusd_epi32(ia[i], xv, _mm512_set1_epi32(w4));
        }
      }
      for (int i = 0; i < kRows; ++i)
        acc[i] = _mm512_fmadd_ps(to_float(ia[i]), _mm512_mul_ps(dx, _mm512_set1_ps(scale[i][s])), acc[i]);
      if constexpr (kMin) {
        const __m512 xsum = _mm512_load_ps(kSub == kActBlock ? pb.sx32 : pb.sx16[h]);
        for (int i = 0; i < kRows; ++i) acc[i] = _mm512_fmadd_ps(xsum, _mm512_set1_ps(minc[i][s]), acc[i]);
      }
    }
  }
  for (int i = 0; i < kRows; ++i) _mm512_storeu_ps(out[i], acc[i]);
}

template <int kSub, bool kMin>
void gemm(const WeightTile& tile, const ActPanel& panel, int64_t T, float* y, int64_t ldy) {
  alignas(64) float out[kRows][kLanes];
  // Token groups are taken in chunks whose panel part stays in L2 while every row block of the
  // tile passes over it (K = 2048: the whole panel of 512 tokens is 1.5 MB).
  const int64_t chunk = panel_groups_per_chunk(panel);
  for (int64_t g0 = 0; g0 < panel.groups; g0 += chunk) {
    const int64_t g1 = min64(panel.groups, g0 + chunk);
    for (int64_t r0 = 0; r0 < tile.valid; r0 += kRows) {
      const int64_t nr = min64(kRows, tile.valid - r0);
      for (int64_t g = g0; g < g1; ++g) {
        block_8x16<kSub, kMin>(tile, r0, panel, g, out);
        const int64_t t0 = g * kLanes;
        for (int64_t t = 0; t < min64(kLanes, T - t0); ++t)
          for (int64_t i = 0; i < nr; ++i) y[(t0 + t) * ldy + r0 + i] = out[i][t];
      }
    }
  }
}

void tile_gemm(const WeightTile& tile, const ActPanel& panel, int64_t T, float* y, int64_t ldy) {
  if (tile.sub == kActBlock) {
    tile.has_min ? gemm<32, true>(tile, panel, T, y, ldy) : gemm<32, false>(tile, panel, T, y, ldy);
  } else {
    tile.has_min ? gemm<16, true>(tile, panel, T, y, ldy) : gemm<16, false>(tile, panel, T, y, ldy);
  }
}

}  // namespace
}  // namespace unicorn::avx512

namespace unicorn {
extern const MatmulKernels kAvx512MatmulKernels;
const MatmulKernels kAvx512MatmulKernels{Isa::Avx512,
                                         "avx512",
                                         avx512::rows_dot_q8_x86,
                                         avx512::rows_dot_f32_x86,
                                         avx512::tile_gemm,
                                         avx512::unpack_row_x86,
                                         avx512::quantize_row_x86,
                                         avx512::pack_panel_x86};
}  // namespace unicorn
