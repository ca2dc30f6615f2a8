// Building blocks of the CPU matmul y = x · wᵀ (src/backends/cpu/cpu_matmul.cpp) and the table of
// kernels, one per instruction set, chosen at run time.
//
// Quantized weights are multiplied in integers: activations are quantized per 32 values to int8
// with an f32 scale (`QuantRow`), and each weight block is dotted with them as int8 · int8, then
// scaled by both blocks' f32 scales. Two shapes of work:
//  - a few tokens (decode): `rows_dot_q8` reads weight rows straight from the file mapping;
//  - many tokens (prefill): a tile of weight rows is first unpacked into plain int8 with per
//    sub-block f32 scales (`WeightTile`, any block type looks the same there), then `tile_gemm`
//    multiplies it by a token-interleaved activation panel (`ActPanel`), reusing each unpacked
//    weight for every token.
#pragma once
#include <cstddef>
#include <cstdint>

#include "core/types.h"

namespace unicorn {

inline constexpr int kActBlock = 32;  // activation quantization block (values)

// One token's activations quantized per 32 values: x[i] ≈ d[i/32] * q[i]; sum[b] = Σ q over block b.
struct QuantRow {
  const int8_t* q;
  const float* d;
  const int32_t* sum;
};

// Weight rows unpacked for the integer kernels: w[r][k] = scale[r][s] * q[r][k] + minc[r][s],
// s = k / sub. `corr` = -128 · Σq over each sub-block, for kernels that feed activations as
// unsigned bytes x + 128. Rows past `valid` are zero padding up to a multiple of kTileRowAlign.
struct WeightTile {
  static constexpr int kTileRowAlign = 8;
  int64_t rows = 0, valid = 0, K = 0;
  int sub = 32;             // sub-block size: 32, or 16 for Q2_K/Q3_K/Q6_K
  bool has_min = false;     // minc is nonzero somewhere (Q4_1, Q5_1, Q2_K, Q4_K, Q5_K)
  int8_t* q = nullptr;      // [rows][K]
  float* scale = nullptr;   // [rows][K/sub]
  float* minc = nullptr;    // [rows][K/sub]
  int32_t* corr = nullptr;  // [rows][K/sub]
  int64_t nsub() const { return K / sub; }
};

// Activations of 16 tokens for one 32-value block, laid out so that one 64-byte load holds
// 4 consecutive values of each of the 16 tokens (the operand shape of a dot-product-of-4
// instruction with tokens in lanes). Values are stored +128 as unsigned bytes.
struct alignas(64) PanelBlock {
  static constexpr int kTokens = 16;
  uint8_t xu[8][kTokens * 4];  // xu[j][4t + i] = q[t][4j + i] + 128
  float dx[kTokens];           // scale of each token's block
  float sx32[kTokens];         // dx · Σq over the block (real-valued sum, for min terms)
  float sx16[2][kTokens];      // the same over each 16-value half
};
static_assert(sizeof(PanelBlock) == 768);

// Token groups × blocks; block b of group g at blocks[g * nblocks + b]. Padding tokens are zero.
struct ActPanel {
  int64_t groups = 0, nblocks = 0;
  const PanelBlock* blocks = nullptr;
  const PanelBlock* at(int64_t g, int64_t b) const { return blocks + g * nblocks + b; }
};

// Token groups per pass of the tiled kernel so that their panel part (~256 KiB) stays in L2.
int64_t panel_groups_per_chunk(const ActPanel& p);

// y[t * ldy + r] = dot(weight row r, x[t]) for nrows rows of a quantized type (rows `stride` bytes
// apart) and T tokens (several sequences decoded together: each weight block is read and unpacked
// once for all of them; a token's result does not depend on T).
using RowsDotQ8 = void (*)(GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K, const QuantRow* x,
                           int64_t T, float* y, int64_t ldy);
// The same for F32/F16/BF16 weights against f32 activations.
using RowsDotF32 = void (*)(GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K, const float* x,
                            float* y);
// y[t * ldy + r] = dot(tile row r, token t) for r < tile.valid, t < T.
using TileGemm = void (*)(const WeightTile& tile, const ActPanel& panel, int64_t T, float* y, int64_t ldy);

using UnpackRow = void (*)(GgmlType type, const uint8_t* src, int64_t K, int8_t* q, float* scale, float* minc,
                           int32_t* corr);
using QuantizeActRow = void (*)(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum);
using PackActPanel = void (*)(const float* x, int64_t ldx, int64_t K, int64_t T, int64_t g0, int64_t g1,
                              PanelBlock* blocks);

enum class Isa { Scalar, Avx2, Avx512 };

struct MatmulKernels {
  Isa isa;
  const char* name;
  RowsDotQ8 rows_dot_q8;
  RowsDotF32 rows_dot_f32;
  TileGemm tile_gemm;
  UnpackRow unpack_row;             // same results as the portable unpack_row
  QuantizeActRow quantize_act_row;  // same results as the portable quantize_act_row
  PackActPanel pack_act_panel;      // same results as the portable pack_act_panel
};

// Kernels for an instruction set; nullptr if this CPU cannot run it.
const MatmulKernels* matmul_kernels(Isa isa);
// The fastest set this CPU runs (AVX-512 VNNI, else AVX2+FMA+F16C, else scalar).
const MatmulKernels& best_matmul_kernels();

// ---- portable pieces (scalar, shared by every kernel set) ----------------------------------------
// (The SIMD files call only these out-of-line functions, never the inline helpers above: an
// inline function's out-of-line copy built with AVX-512 flags could be the one the linker keeps.)

// Types the integer kernels handle (all quantized weight types but Q8_1/Q8_K).
bool tile_supports(GgmlType type);
int tile_sub_block(GgmlType type);  // 16 or 32
// Unpack one weight row of K values into the tile layout (q: K bytes; scale/minc/corr: K/sub).
void unpack_row(GgmlType type, const uint8_t* src, int64_t K, int8_t* q, float* scale, float* minc, int32_t* corr);

// Quantize one token's K activations (K % 32 == 0) into q/d/sum.
void quantize_act_row(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum);
// Quantize the tokens of groups [g0, g1) of x (T tokens, row-major, ldx floats apart) into the
// panel; tokens past T are zero.
void pack_act_panel(const float* x, int64_t ldx, int64_t K, int64_t T, int64_t g0, int64_t g1, PanelBlock* blocks);

// Scalar kernels, also the fallback of the SIMD sets for rarely used types.
void rows_dot_q8_scalar(GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K, const QuantRow* x,
                        int64_t T, float* y, int64_t ldy);
void rows_dot_f32_scalar(GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K, const float* x,
                         float* y);
void tile_gemm_scalar(const WeightTile& tile, const ActPanel& panel, int64_t T, float* y, int64_t ldy);

}  // namespace unicorn
