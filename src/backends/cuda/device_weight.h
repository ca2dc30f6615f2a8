// The device form of a weight matrix, shared by the host upload code and the kernels (plain
// data, no CUDA headers). Quantized blocks keep their bits, but blocks whose size is not a
// multiple of 16 bytes are split into planes so that every quant load is a 16-byte load and the
// device holds the file's bytes (plus each plane's alignment):
//
//   F32, F16, BF16   q: the rows as in the file.
//   Q8_0             q: 32 int8 per block; d: f16 scale per block.
//   Q4_0             q: the 16 nibble bytes per block; d: f16 scale per block.
//   Q4_1             as Q4_0, with the f16 pair (d, m) per block in the d plane.
//   Q5_0             q: the 16 nibble bytes per block; qh: the 32-bit word of fifth bits, bit
//                    8 k + 4 h + i the bit 4 of value 16 h + 4 i + k (the file's qh reordered, so
//                    that one shift and mask per nibble word puts them under the nibbles;
//                    weight_formats.cuh unpack_fifth_bits; since session 26); d: f16 scale.
//   Q5_1             as Q5_0, with the f16 pair (d, m) per block in the d plane.
//   Q4_K             q: each 32-value sub-block's nibbles as a Q4_0 block's 16 bytes (value j in
//                    the low nibble of byte j, value j + 16 in its high nibble), 128 bytes per
//                    super-block; qh: one 16-byte header per super-block, d and dmin (f16) then
//                    the eight sub-blocks' 12-bit fields scale | min << 6, sub-block s's at bit
//                    12 s of the last 12 bytes (weight_formats.cuh FormatQ4_K). Since session 25;
//                    before, the 144-byte blocks with 64-value items (q4_mix's matvecs 3-8 %
//                    slower, bench/device/kquant_planes_lab.cu).
//   Q5_K             q: as Q4_K's (each sub-block's low nibbles as a Q4_0 block's 16 bytes);
//                    qh: one 32-bit word of fifth bits per sub-block, as Q5_0's; sc: Q4_K's
//                    16-byte header per super-block (d, dmin, the eight
//                    12-bit scale | min << 6 fields). The file's 176 bytes (weight_formats.cuh
//                    FormatQ5_K). Since session 26; before, the 176-byte blocks with 64-value items.
//   Q6_K             q: each 32-value sub-block's low nibbles as a Q4_0 block's 16 bytes (128 per
//                    block); qh: 8 bytes of 2-bit highs per sub-block (words H0, H1: the highs of
//                    values 4i + k and 16 + 4i + k at byte k of H(i / 2), bits 2 (i % 2) and 4 +
//                    2 (i % 2)); sc: the 16 int8 scales of each block (2 per sub-block); d: f16
//                    per block. The file's 210 bytes (weight_formats.cuh FormatQ6_K). Since session
//                    25; before, ql + qh (192 bytes) per block with 64-value items (the 27B head
//                    alone 335-403 us against 269, bench/device/kquant_planes_lab.cu); until
//                    session 14 the 210-byte blocks padded to 224.
//
// Plane element (row r, block b) sits at index r * blocks_per_row + b (Q6_K's qh and sc and Q5_K's
// qh: sub-block s of block b at (r * blocks_per_row + b) * 8 + s).
#pragma once
#include <cstdint>

#include "core/types.h"

namespace unicorn::cuda {

inline constexpr int64_t kQ6KLowBytes = 128;    // Q6_K's low nibbles per block (the quant plane)
inline constexpr int64_t kQ6KHighBytes = 64;    // Q6_K's 2-bit highs per block (the qh plane)
inline constexpr int64_t kQ6KScaleBytes = 16;   // Q6_K's int8 sub-block scales per block (the sc plane)
inline constexpr int64_t kQ4KQuantBytes = 128;  // Q4_K's nibbles per super-block (the quant plane)
inline constexpr int64_t kQ4KHeaderBytes = 16;  // Q4_K's d, dmin and scale fields per super-block (the qh plane)
inline constexpr int64_t kQ5KHighBytes = 32;    // Q5_K's bit-4 words per super-block (the qh plane); its
                                                // nibbles and header as Q4_K's (the q and sc planes)

struct DeviceWeight {
  GgmlType type = GgmlType::F32;
  int64_t rows = 0, cols = 0;
  int64_t blocks_per_row = 0;  // cols / block size (cols for float types)
  int64_t q_row_bytes = 0;     // stride of `q` between rows
  const uint8_t* q = nullptr;
  const uint32_t* qh = nullptr;  // Q5_0 and Q5_K high bits; Q6_K highs; Q4_K headers
  const uint16_t* d = nullptr;   // Q4_1, Q5_1: (d, m) per block
  const uint8_t* sc = nullptr;   // Q6_K scales; Q5_K headers
};

// Activations quantized to int8 per 32 values for the integer dot-product matvec: q [T, K] and
// per 32-block (d, d * sum(q)) [T, K / 32].
struct ActQ8 {
  const int8_t* q = nullptr;
  const float* ds = nullptr;  // pairs (d, d * sum q)
};

// Up to three weights of one format and input width multiplied in one matvec launch
// (kernels.h launch_matvec_multi / launch_matvec_geglu). The launcher fills first_block and wpr.
struct MatvecJob {
  DeviceWeight w[3];
  float* y[3] = {nullptr, nullptr, nullptr};
  int first_block[4] = {0, 0, 0, 0};  // grid blocks of weight i: [first_block[i], first_block[i+1])
  int n = 0;
  int wpr = 1;  // warps per row: 1, 2 or 4
  // Blocks [0, prefetch_blocks) load their first weights before pdl_wait(), the rest after it.
  int prefetch_blocks = INT32_MAX;
};

}  // namespace unicorn::cuda
