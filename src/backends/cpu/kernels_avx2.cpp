// Matmul kernels for AVX2 + FMA + F16C: row dots (rows_dot_x86.inl) and the tiled kernel,
// 4 weight rows × 8 tokens per step. AVX2 has no unsigned·signed dot of 4 without int16
// saturation risk for the panel's +128 bytes, so it restores signed activations and uses
// |w| · sign(x, w) (both fit the int16 pair sums).
#include <immintrin.h>

#include <cstring>

#include "backends/cpu/matmul_kernels.h"
#include "quant/blocks.h"

namespace unicorn::avx2 {

#include "backends/cpu/rows_dot_x86.inl"

namespace {

constexpr int kRows = 4, kLanes = 8;

// out[i][t] for tile rows r0..r0+3 and tokens 8·half .. 8·half+7 of group g.
template <int kSub, bool kMin>
void block_4x8(const WeightTile& tile, int64_t r0, const ActPanel& panel, int64_t g, int half,
               float out[kRows][kLanes]) {
  const int64_t K = tile.K, nsub = tile.K / tile.sub;
  const __m256i ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8(static_cast<char>(0x80));
  __m256 acc[kRows];
  for (auto& a : acc) a = _mm256_setzero_ps();
  for (int64_t b = 0; b < panel.nblocks; ++b) {
    const PanelBlock& pb = panel.blocks[g * panel.nblocks + b];
    const __m256 dx = _mm256_loadu_ps(pb.dx + kLanes * half);
    for (int h = 0; h < kActBlock / kSub; ++h) {
      const int64_t s = b * (kActBlock / kSub) + h;
      __m256i ia[kRows];
      for (auto& a : ia) a = _mm256_setzero_si256();
      for (int j = h * kSub / 4; j < (h + 1) * kSub / 4; ++j) {
        const __m256i xv =
            _mm256_xor_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(pb.xu[j] + 4 * kLanes * half)), flip);
        for (int i = 0; i < kRows; ++i) {
          const __m256i wb = _mm256_set1_epi32(static_cast<int32_t>(
              load_u32(reinterpret_cast<const uint8_t*>(tile.q + (r0 + i) * K + b * kActBlock + 4 * j))));
          const __m256i pairs = _mm256_maddubs_epi16(_mm256_abs_epi8(wb), _mm256_sign_epi8(xv, wb));
          ia[i] = _mm256_add_epi32(ia[i], _mm256_madd_epi16(pairs, ones));
        }
      }
      for (int i = 0; i < kRows; ++i) {
        const __m256 sc = _mm256_mul_ps(dx, _mm256_set1_ps(tile.scale[(r0 + i) * nsub + s]));
        acc[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[i]), sc, acc[i]);
      }
      if constexpr (kMin) {
        const float* xs = kSub == kActBlock ? pb.sx32 : pb.sx16[h];
        const __m256 xsum = _mm256_loadu_ps(xs + kLanes * half);
        for (int i = 0; i < kRows; ++i)
          acc[i] = _mm256_fmadd_ps(xsum, _mm256_set1_ps(tile.minc[(r0 + i) * nsub + s]), acc[i]);
      }
    }
  }
  for (int i = 0; i < kRows; ++i) _mm256_storeu_ps(out[i], acc[i]);
}

template <int kSub, bool kMin>
void gemm(const WeightTile& tile, const ActPanel& panel, int64_t T, float* y, int64_t ldy) {
  float out[kRows][kLanes];
  // Token groups in chunks whose panel part stays in L2 (see kernels_avx512.cpp).
  const int64_t chunk = panel_groups_per_chunk(panel) * PanelBlock::kTokens;
  for (int64_t c0 = 0; c0 < T; c0 += chunk) {
    const int64_t c1 = min64(T, c0 + chunk);
    for (int64_t r0 = 0; r0 < tile.valid; r0 += kRows) {
      const int64_t nr = min64(kRows, tile.valid - r0);
      for (int64_t t0 = c0; t0 < c1; t0 += kLanes) {
        block_4x8<kSub, kMin>(tile, r0, panel, t0 / PanelBlock::kTokens, static_cast<int>((t0 / kLanes) % 2), out);
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
}  // namespace unicorn::avx2

namespace unicorn {
extern const MatmulKernels kAvx2MatmulKernels;
const MatmulKernels kAvx2MatmulKernels{Isa::Avx2,
                                       "avx2",
                                       avx2::rows_dot_q8_x86,
                                       avx2::rows_dot_f32_x86,
                                       avx2::tile_gemm,
                                       avx2::unpack_row_x86,
                                       avx2::quantize_row_x86,
                                       avx2::pack_panel_x86};
}  // namespace unicorn
