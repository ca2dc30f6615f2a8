// Device-side readers of each weight format in its device layout (device_weight.h), written from
// the block definitions in quant/blocks.h (spec §4.5). Two ways to read a weight:
//   decode8: 8 consecutive values at column k (k % 8 == 0) as f32, equal to the reference codec
//            (quant/codec.h) value for value; used by the tiled matmul and the embedding.
//   dot<NT>: one work item of a row against NT int8-quantized activation rows with dp4a
//            (4 int8 products per instruction); used by the matvec. An item is one 32-value block
//            for the legacy formats, a 32-value sub-block for the K-quants.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backends/cuda/device_weight.h"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {

__device__ __forceinline__ float half_to_float(uint16_t h) { return __half2float(__ushort_as_half(h)); }
__device__ __forceinline__ float bf16_to_float(uint16_t h) { return __uint_as_float(static_cast<uint32_t>(h) << 16); }

// Bits 0..3 of n, each moved to bit 0 of its own byte (byte i gets bit i).
__device__ __forceinline__ uint32_t spread_nibble(uint32_t n) { return ((n & 0xFu) * 0x00204081u) & 0x01010101u; }

__device__ __forceinline__ int dot4(uint32_t a, uint32_t b, int acc) {
  return __dp4a(static_cast<int>(a), static_cast<int>(b), acc);
}

// Weight loads of the matvec: read once per call, so they bypass L1 (no_allocate) and leave it to
// the activations, which every row reads again; the L2 fetches a whole 256-byte line, as the
// neighbouring lanes need it next. Measured on an H100 (bench/device/matvec_lab.cu): 6 % faster
// over a 27B Q4_0 layer than __ldg.
__device__ __forceinline__ uint4 ldw16(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0,%1,%2,%3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}
__device__ __forceinline__ uint16_t ldw2(const void* p) {
  uint16_t r;
  asm volatile("ld.global.nc.L1::no_allocate.u16 %0, [%1];" : "=h"(r) : "l"(p));
  return r;
}
__device__ __forceinline__ uint2 ldw8(const void* p) {
  uint2 r;
  asm volatile("ld.global.nc.L1::no_allocate.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
  return r;
}
__device__ __forceinline__ uint32_t ldw4(const void* p) {
  uint32_t r;
  asm volatile("ld.global.nc.L1::no_allocate.u32 %0, [%1];" : "=r"(r) : "l"(p));
  return r;
}

// Activation words of 32 values starting at value k of token t (16-byte aligned: k % 32 == 0).
struct ActWords {
  uint32_t w[8];
};
__device__ __forceinline__ ActWords load_act32(const int8_t* q, int64_t k) {
  const uint4* p = reinterpret_cast<const uint4*>(q + k);
  const uint4 a = ld_dep_u4(p), b = ld_dep_u4(p + 1);
  return {{a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w}};
}
__device__ __forceinline__ float2 load_ds(const float* ds, int64_t block) {
  return ld_dep_f2(reinterpret_cast<const float2*>(ds) + block);
}
// The integer dot product of one 32-value block: 8 words of 4 int8 weights against its activations.
__device__ __forceinline__ int dot32(const uint32_t* q, const ActWords& x) {
  int s = 0;
#pragma unroll
  for (int i = 0; i < 8; ++i) s = dot4(q[i], x.w[i], s);
  return s;
}

// A 32-value block's 16 nibble bytes (value j in the low nibble of byte j, value j + 16 in its
// high nibble) as 32 unsigned bytes in value order: q[0..3] values 0..15, q[4..7] values 16..31.
__device__ __forceinline__ void unpack_nibbles(const uint4& a, uint32_t* q) {
  const uint32_t words[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    q[i] = words[i] & 0x0F0F0F0Fu;
    q[i + 4] = (words[i] >> 4) & 0x0F0F0F0Fu;
  }
}

// P rows' 32-value items at block b (their Raw loads) against NT activation rows, each activation
// load serving all P rows (matvec_quant.cu's row pairs): acc[p][t] += F::scaled(the row's scale,
// (d, d * sum) of the activation block, the integer dot of F::unpack's bytes), the row's scale
// from F::scale(raw, b) (of type F::Scale). The dot_rows of every format with a separate load but
// Q6_K.
template <class F, int NT, int P>
__device__ __forceinline__ void dot32_rows(const typename F::Raw* raw, int64_t b, ActQ8 x, int64_t K, int T,
                                           float (*acc)[NT]) {
  uint32_t q[P][8];
  typename F::Scale d[P];
#pragma unroll
  for (int p = 0; p < P; ++p) {
    F::unpack(raw[p], q[p]);
    d[p] = F::scale(raw[p], b);
  }
#pragma unroll
  for (int t = 0; t < NT; ++t) {
    if (NT > 1 && t >= T) break;  // one token: T is 1 (launch_job)
    const ActWords xa = load_act32(x.q + t * K, b * 32);
    const float2 ds = load_ds(x.ds, t * (K / 32) + b);
#pragma unroll
    for (int p = 0; p < P; ++p) acc[p][t] += F::scaled(d[p], ds, dot32(q[p], xa));
  }
}

// One row's item of a format F with a separate load (F::Raw, F::load) and F::dot_rows: dot_raw
// takes the loaded item, dot loads it first. Every such format derives from RawDot<itself>.
template <class F>
struct RawDot {
  template <int NT, class Raw>
  static __device__ __forceinline__ void dot_raw(const Raw& raw, int64_t item, ActQ8 x, int64_t K, int T, float* acc) {
    F::template dot_rows<NT, 1>(&raw, item, x, K, T, reinterpret_cast<float(*)[NT]>(acc));
  }
  template <int NT>
  static __device__ __forceinline__ void dot(const DeviceWeight& w, int64_t r, int64_t item, ActQ8 x, int64_t K, int T,
                                             float* acc) {
    dot_raw<NT>(F::load(w, r, item), item, x, K, T, acc);
  }
};

// ---- float formats ------------------------------------------------------------------------------

struct FormatF32 {
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const float4* p = reinterpret_cast<const float4*>(w.q + r * w.q_row_bytes + k * 4);
    const float4 a = __ldg(p), b = __ldg(p + 1);
    y[0] = a.x, y[1] = a.y, y[2] = a.z, y[3] = a.w, y[4] = b.x, y[5] = b.y, y[6] = b.z, y[7] = b.w;
  }
};

struct FormatF16 {
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(w.q + r * w.q_row_bytes + k * 2));
    const uint32_t v[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      y[2 * i] = half_to_float(static_cast<uint16_t>(v[i] & 0xFFFFu));
      y[2 * i + 1] = half_to_float(static_cast<uint16_t>(v[i] >> 16));
    }
  }
};

struct FormatBF16 {
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const uint4 a = __ldg(reinterpret_cast<const uint4*>(w.q + r * w.q_row_bytes + k * 2));
    const uint32_t v[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      y[2 * i] = bf16_to_float(static_cast<uint16_t>(v[i] & 0xFFFFu));
      y[2 * i + 1] = bf16_to_float(static_cast<uint16_t>(v[i] >> 16));
    }
  }
};

// Which planes of DeviceWeight besides q a quantized format reads (its kPlanes; device_weight.h).
constexpr unsigned kPlaneD = 1, kPlaneQh = 2, kPlaneSc = 4;

// ---- 32-value blocks ----------------------------------------------------------------------------

// The f16 pair (d, m) of a Q4_1 / Q5_1 block as one 32-bit word of the d plane (d in the low half).
__device__ __forceinline__ float2 split_dm(uint32_t dm) {
  return {half_to_float(static_cast<uint16_t>(dm & 0xFFFFu)), half_to_float(static_cast<uint16_t>(dm >> 16))};
}
__device__ __forceinline__ const uint32_t* dm_word(const DeviceWeight& w, int64_t r, int64_t b) {
  return reinterpret_cast<const uint32_t*>(w.d) + r * w.blocks_per_row + b;
}
// The scale of the formats with a minimum (Q4_1, Q5_1: Raw::dm holds the pair): y = d q + m, so
// sum y x = d * x_d * sum q x + m * (x_d * sum x).
struct DmScale {
  using Scale = float2;  // (d, m)
  template <class Raw>
  static __device__ __forceinline__ float2 scale(const Raw& r, int64_t) {
    return split_dm(r.dm);
  }
  static __device__ __forceinline__ float scaled(float2 dm, float2 ds, int s) {
    return dm.x * ds.x * static_cast<float>(s) + dm.y * ds.y;
  }
};
// Value o + i (i < 8, o % 8 == 0) of a 32-value block of nibbles in Q4_0's order (value j in the
// low nibble of byte j, j + 16 in its high one) from its bytes o % 16 .. o % 16 + 7.
__device__ __forceinline__ uint32_t nibble_value(const uint2& a, int o, int i) {
  return ((i < 4 ? a.x : a.y) >> (8 * (i % 4) + 4 * (o / 16))) & 0xFu;
}

// y = d * q
struct FormatQ8_0 : RawDot<FormatQ8_0> {
  static constexpr int kItem = 32;
  static constexpr unsigned kPlanes = kPlaneD;
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t b = k / 32;
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(w.q + r * w.q_row_bytes + b * 32 + (k % 32)));
    const float d = half_to_float(__ldg(w.d + r * w.blocks_per_row + b));
    const uint32_t v[2] = {a.x, a.y};
#pragma unroll
    for (int i = 0; i < 8; ++i)
      y[i] = __fmul_rn(d, static_cast<float>(static_cast<int8_t>((v[i / 4] >> (8 * (i % 4))) & 0xFFu)));
  }
  // The loads of one item (all issued before any use, see matvec_quant.cu), then its dot.
  static constexpr int kUnrollOne = 8;
  struct Raw {
    uint4 a0, a1;
    uint16_t d;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t b) {
    const uint8_t* p = w.q + r * w.q_row_bytes + b * 32;
    return {ldw16(p), ldw16(p + 16), ldw2(w.d + r * w.blocks_per_row + b)};
  }
  // P rows' items at the same position against NT activation rows, one activation load for all
  // (dot32_rows). acc[p][t].
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* raw, int64_t b, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    dot32_rows<FormatQ8_0, NT, P>(raw, b, x, K, T, acc);
  }
  static __device__ __forceinline__ void unpack(const Raw& r, uint32_t* q) {
    const uint32_t v[8] = {r.a0.x, r.a0.y, r.a0.z, r.a0.w, r.a1.x, r.a1.y, r.a1.z, r.a1.w};
#pragma unroll
    for (int i = 0; i < 8; ++i) q[i] = v[i];
  }
  using Scale = float;
  static __device__ __forceinline__ float scale(const Raw& r, int64_t) { return half_to_float(r.d); }
  // y = d_w * d_x * sum q_w q_x.
  static __device__ __forceinline__ float scaled(float d, float2 ds, int s) { return d * ds.x * static_cast<float>(s); }
};

// y = d * (q - 8); value j in the low nibble of byte j, value j+16 in its high nibble.
struct FormatQ4_0 : RawDot<FormatQ4_0> {
  static constexpr int kItem = 32;
  static constexpr unsigned kPlanes = kPlaneD;
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t b = k / 32;
    const int o = static_cast<int>(k % 32);
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(w.q + r * w.q_row_bytes + b * 16 + (o % 16)));
    const float d = half_to_float(__ldg(w.d + r * w.blocks_per_row + b));
#pragma unroll
    for (int i = 0; i < 8; ++i) y[i] = __fmul_rn(d, static_cast<float>(static_cast<int>(nibble_value(a, o, i)) - 8));
  }
  static constexpr int kUnrollOne = 8;
  struct Raw {
    uint4 q;
    uint16_t d;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t b) {
    return {ldw16(w.q + r * w.q_row_bytes + b * 16), ldw2(w.d + r * w.blocks_per_row + b)};
  }
  // P rows' items at the same position (one activation load for all; dot32_rows).
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* raw, int64_t b, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    dot32_rows<FormatQ4_0, NT, P>(raw, b, x, K, T, acc);
  }
  // The nibbles as unsigned bytes (0..15, also valid as signed); the offset 8 comes back through
  // the activation block's sum: sum (q - 8) x = sum q x - 8 sum x (scaled).
  static __device__ __forceinline__ void unpack(const Raw& r, uint32_t* q) { unpack_nibbles(r.q, q); }
  using Scale = float;
  static __device__ __forceinline__ float scale(const Raw& r, int64_t) { return half_to_float(r.d); }
  // sum (q - 8) x from s = sum q x and the activation block's (d, d * sum x).
  static __device__ __forceinline__ float scaled(float d, float2 ds, int s) {
    return d * (ds.x * static_cast<float>(s) - 8.0f * ds.y);
  }
};

// y = d * q + m, q of 4 bits in Q4_0's order; the d plane holds the f16 pair (d, m) per block.
struct FormatQ4_1 : RawDot<FormatQ4_1>, DmScale {
  static constexpr int kItem = 32;
  static constexpr unsigned kPlanes = kPlaneD;
  static constexpr int kDWords = 2;  // f16 values of the d plane per block
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t b = k / 32;
    const int o = static_cast<int>(k % 32);
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(w.q + r * w.q_row_bytes + b * 16 + (o % 16)));
    const float2 dm = split_dm(__ldg(dm_word(w, r, b)));
#pragma unroll
    for (int i = 0; i < 8; ++i) y[i] = __fadd_rn(__fmul_rn(dm.x, static_cast<float>(nibble_value(a, o, i))), dm.y);
  }
  static constexpr int kUnrollOne = 8;  // as Q4_0 (matvec_quant.cu)
  struct Raw {
    uint4 q;
    uint32_t dm;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t b) {
    return {ldw16(w.q + r * w.q_row_bytes + b * 16), ldw4(dm_word(w, r, b))};
  }
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* raw, int64_t b, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    dot32_rows<FormatQ4_1, NT, P>(raw, b, x, K, T, acc);
  }
  static __device__ __forceinline__ void unpack(const Raw& r, uint32_t* q) { unpack_nibbles(r.q, q); }
};

// The fifth bits of a 32-value block as the device holds them (Q5_0, Q5_1, Q5_K's sub-blocks;
// device_weight.h): bit 8 k + 4 h + i of the word is the bit 4 of value 16 h + 4 i + k, so that
// word i of the nibbles (values 4 i + k in its low nibbles, 16 + 4 i + k in its high ones) takes
// its fifth bits from (H >> i) with one mask each. The 32 values as unsigned bytes 0..31.
__device__ __forceinline__ void unpack_fifth_bits(const uint4& nibbles, uint32_t hb, uint32_t* q) {
  const uint32_t lo[4] = {nibbles.x, nibbles.y, nibbles.z, nibbles.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    const uint32_t h = hb >> i;
    q[i] = (lo[i] & 0x0F0F0F0Fu) | ((h << 4) & 0x10101010u);
    q[i + 4] = ((lo[i] >> 4) & 0x0F0F0F0Fu) | (h & 0x10101010u);
  }
}
// Value o + j (j < 8, o % 8 == 0) of a 32-value block of 5-bit values from its nibble bytes a
// (bytes o % 16 .. o % 16 + 7) and its fifth-bit word hb (unpack_fifth_bits' order).
__device__ __forceinline__ uint32_t fifth_bit_value(const uint2& a, uint32_t hb, int o, int j) {
  const int half = o / 16, i = (o % 16) / 4 + j / 4, k = j % 4;  // value 16 half + 4 i + k
  const uint32_t v = j < 4 ? a.x : a.y;
  return ((v >> (8 * k + 4 * half)) & 0xFu) | (((hb >> (8 * k + 4 * half + i)) & 1u) << 4);
}

// y = d * (q - 16), q of 5 bits (the fifth bits in unpack_fifth_bits' order).
struct FormatQ5_0 : RawDot<FormatQ5_0> {
  static constexpr int kItem = 32;
  static constexpr unsigned kPlanes = kPlaneD | kPlaneQh;
  static constexpr int kQhWords = 1;  // 32-bit words of the qh plane per block
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t b = k / 32;
    const int o = static_cast<int>(k % 32);
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(w.q + r * w.q_row_bytes + b * 16 + (o % 16)));
    const uint32_t qh = __ldg(w.qh + r * w.blocks_per_row + b);
    const float d = half_to_float(__ldg(w.d + r * w.blocks_per_row + b));
#pragma unroll
    for (int j = 0; j < 8; ++j)
      y[j] = __fmul_rn(d, static_cast<float>(static_cast<int>(fifth_bit_value(a, qh, o, j)) - 16));
  }
  static constexpr int kUnrollOne = 8;  // as Q4_0 (matvec_quant.cu)
  struct Raw {
    uint4 q;
    uint32_t qh;
    uint16_t d;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t b) {
    return {ldw16(w.q + r * w.q_row_bytes + b * 16), ldw4(w.qh + r * w.blocks_per_row + b),
            ldw2(w.d + r * w.blocks_per_row + b)};
  }
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* raw, int64_t b, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    dot32_rows<FormatQ5_0, NT, P>(raw, b, x, K, T, acc);
  }
  // The values as unsigned bytes 0..31; the offset 16 comes back through the activation block's
  // sum, as Q4_0's 8.
  static __device__ __forceinline__ void unpack(const Raw& r, uint32_t* q) { unpack_fifth_bits(r.q, r.qh, q); }
  using Scale = float;
  static __device__ __forceinline__ float scale(const Raw& r, int64_t) { return half_to_float(r.d); }
  static __device__ __forceinline__ float scaled(float d, float2 ds, int s) {
    return d * (ds.x * static_cast<float>(s) - 16.0f * ds.y);
  }
};

// y = d * q + m, q of 5 bits (the fifth bits in unpack_fifth_bits' order); the d plane holds the
// f16 pair (d, m) per block.
struct FormatQ5_1 : RawDot<FormatQ5_1>, DmScale {
  static constexpr int kItem = 32;
  static constexpr unsigned kPlanes = kPlaneD | kPlaneQh;
  static constexpr int kQhWords = 1;  // 32-bit words of the qh plane per block
  static constexpr int kDWords = 2;   // f16 values of the d plane per block
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t b = k / 32;
    const int o = static_cast<int>(k % 32);
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(w.q + r * w.q_row_bytes + b * 16 + (o % 16)));
    const uint32_t qh = __ldg(w.qh + r * w.blocks_per_row + b);
    const float2 dm = split_dm(__ldg(dm_word(w, r, b)));
#pragma unroll
    for (int j = 0; j < 8; ++j)
      y[j] = __fadd_rn(__fmul_rn(dm.x, static_cast<float>(fifth_bit_value(a, qh, o, j))), dm.y);
  }
  static constexpr int kUnrollOne = 8;  // as Q4_0 (matvec_quant.cu)
  struct Raw {
    uint4 q;
    uint32_t qh, dm;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t b) {
    return {ldw16(w.q + r * w.q_row_bytes + b * 16), ldw4(w.qh + r * w.blocks_per_row + b), ldw4(dm_word(w, r, b))};
  }
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* raw, int64_t b, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    dot32_rows<FormatQ5_1, NT, P>(raw, b, x, K, T, acc);
  }
  static __device__ __forceinline__ void unpack(const Raw& r, uint32_t* q) { unpack_fifth_bits(r.q, r.qh, q); }
};

// ---- 256-value K-quants -------------------------------------------------------------------------

// The 16-byte header of a Q4_K or Q5_K super-block as the device holds it (device_weight.h): word
// 0 the f16 pair (d, dmin), words 1-3 the eight sub-blocks' 12-bit fields scale | min << 6,
// sub-block s's at bit 12 s. A sub-block's term: d * scale * (x_d * dot) - dmin * min * (x_d *
// sum x) (scale, scaled: the Scale of dot32_rows).
struct KHeader {
  // Sub-block s's 12-bit field scale | min << 6 (in its low bits).
  static __device__ __forceinline__ uint32_t field(const uint4& h, int s) {
    const int bit = 12 * s, wi = bit / 32;
    const uint32_t lo = wi == 0 ? h.y : (wi == 1 ? h.z : h.w);
    const uint32_t hi = wi == 0 ? h.z : h.w;
    return __funnelshift_r(lo, hi, bit % 32);
  }
  // The same rounded as the reference codec (quant/codec.h): fl(d * scale), fl(dmin * min).
  static __device__ __forceinline__ void scales_rn(const uint4& h, int s, float& dl, float& ml) {
    const uint32_t f = field(h, s);
    dl = __fmul_rn(half_to_float(static_cast<uint16_t>(h.x & 0xFFFFu)), static_cast<float>(f & 63u));
    ml = __fmul_rn(half_to_float(static_cast<uint16_t>(h.x >> 16)), static_cast<float>((f >> 6) & 63u));
  }
  // d * scale and dmin * min of sub-block item % 8 of the header (the K-quants' F::scale).
  static __device__ __forceinline__ float2 scale(const uint4& h, int64_t item) {
    const uint32_t f = field(h, static_cast<int>(item % 8));
    return {half_to_float(static_cast<uint16_t>(h.x & 0xFFFFu)) * static_cast<float>(f & 63u),
            half_to_float(static_cast<uint16_t>(h.x >> 16)) * static_cast<float>((f >> 6) & 63u)};
  }
  // sum (d scale q - dmin min) x = d scale * (x_d * sum q x) - dmin min * (x_d * sum x).
  static __device__ __forceinline__ float scaled(float2 dm, float2 ds, int s) {
    return dm.x * (ds.x * static_cast<float>(s)) - dm.y * ds.y;
  }
};

// Q4_K in planes (device_weight.h; spec §4.5 for the block): y = d * scale * q - dmin * min per
// 32-value sub-block. The quant plane holds each sub-block's nibbles as a Q4_0 block's 16 bytes
// (value j in the low nibble of byte j, value j + 16 in its high nibble), the qh plane one 16-byte
// header per super-block: word 0 the f16 pair (d, dmin), words 1-3 the eight sub-blocks' 12-bit
// fields scale | min << 6, sub-block s's at bit 12 s. The file's 144 bytes per 256 values. An item
// is one sub-block, so Q4_0's layouts serve it (the eight lanes of a super-block load its header
// together); bench/device/kquant_planes_lab.cu, H200, 27B shapes, each kernel alone: the GeGLU
// pair 38.2 -> 35.2 us, down 21.5 -> 20.4, q 7.2 -> 6.9, o even, against 144-byte blocks with
// 64-value items (Q4_0 on the same bytes: 34.0, 20.0, 7.4, 6.7).
struct FormatQ4_K : RawDot<FormatQ4_K> {
  static constexpr int kItem = 32;
  static constexpr unsigned kPlanes = kPlaneQh;
  static constexpr int kQhWords = 4;  // 32-bit words of the qh plane per super-block
  static __device__ __forceinline__ const uint4* header(const DeviceWeight& w, int64_t r, int64_t sb) {
    return reinterpret_cast<const uint4*>(w.qh) + r * w.blocks_per_row + sb;
  }
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t sub = k / 32;
    const int o = static_cast<int>(k % 32);
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(w.q + r * w.q_row_bytes + sub * 16 + (o % 16)));
    float dl, ml;
    KHeader::scales_rn(__ldg(header(w, r, k / 256)), static_cast<int>(sub % 8), dl, ml);
    const int shift = 4 * (o / 16);
    const uint32_t v[2] = {a.x, a.y};
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const float q = static_cast<float>((v[j / 4] >> (8 * (j % 4) + shift)) & 0xFu);
      y[j] = __fsub_rn(__fmul_rn(dl, q), ml);
    }
  }
  static constexpr int kUnrollOne = 8;  // as Q4_0 (matvec_quant.cu)
  struct Raw {
    uint4 q, h;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t item) {
    return {ldw16(w.q + r * w.q_row_bytes + item * 16), ldw16(header(w, r, item / 8))};
  }
  // P rows' sub-blocks at the same position against NT activation rows (dot32_rows).
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* raw, int64_t item, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    dot32_rows<FormatQ4_K, NT, P>(raw, item, x, K, T, acc);
  }
  static __device__ __forceinline__ void unpack(const Raw& r, uint32_t* q) { unpack_nibbles(r.q, q); }
  using Scale = float2;  // (d scale, dmin min) of the sub-block
  static __device__ __forceinline__ float2 scale(const Raw& r, int64_t item) { return KHeader::scale(r.h, item); }
  static __device__ __forceinline__ float scaled(float2 dm, float2 ds, int s) { return KHeader::scaled(dm, ds, s); }
};

// Q5_K in planes (device_weight.h; spec §4.5 for the block): Q4_K's with a fifth bit per value, y =
// d * scale * q - dmin * min per 32-value sub-block, q of 5 bits. The quant plane holds the low
// nibbles as Q4_K's, the sc plane Q4_K's 16-byte header per super-block, the qh plane one 32-bit
// word of bit-4s per sub-block (unpack_fifth_bits' order, as Q5_0's). The file's 176 bytes per 256 values. An item is
// one sub-block, so the 32-value formats' layouts serve it. Since session 26; before, the 176-byte
// blocks with 64-value items (two sub-blocks per lane: five 16-byte loads).
struct FormatQ5_K : RawDot<FormatQ5_K> {
  static constexpr int kItem = 32;
  static constexpr unsigned kPlanes = kPlaneQh | kPlaneSc;
  static constexpr int kQhWords = kQ5KHighBytes / 4;  // 32-bit words of the qh plane per super-block
  static constexpr int kScBytes = kQ4KHeaderBytes;    // bytes of the sc plane per super-block
  static __device__ __forceinline__ const uint4* header(const DeviceWeight& w, int64_t r, int64_t sb) {
    return reinterpret_cast<const uint4*>(w.sc) + r * w.blocks_per_row + sb;
  }
  static __device__ __forceinline__ const uint32_t* highs(const DeviceWeight& w, int64_t r, int64_t sub) {
    return w.qh + r * w.blocks_per_row * 8 + sub;
  }
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t sub = k / 32;
    const int o = static_cast<int>(k % 32);  // 0, 8, 16 or 24
    const uint2 a = __ldg(reinterpret_cast<const uint2*>(w.q + r * w.q_row_bytes + sub * 16 + (o % 16)));
    const uint32_t hb = __ldg(highs(w, r, sub));
    float dl, ml;
    KHeader::scales_rn(__ldg(header(w, r, k / 256)), static_cast<int>(sub % 8), dl, ml);
#pragma unroll
    for (int j = 0; j < 8; ++j) y[j] = __fsub_rn(__fmul_rn(dl, static_cast<float>(fifth_bit_value(a, hb, o, j))), ml);
  }
  static constexpr int kUnrollOne = 8;  // as Q4_0 (matvec_quant.cu)
  struct Raw {
    uint4 q, h;
    uint32_t hb;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t item) {
    return {ldw16(w.q + r * w.q_row_bytes + item * 16), ldw16(header(w, r, item / 8)), ldw4(highs(w, r, item))};
  }
  // P rows' sub-blocks at the same position against NT activation rows (dot32_rows).
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* raw, int64_t item, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    dot32_rows<FormatQ5_K, NT, P>(raw, item, x, K, T, acc);
  }
  static __device__ __forceinline__ void unpack(const Raw& r, uint32_t* q) { unpack_fifth_bits(r.q, r.hb, q); }
  using Scale = float2;  // (d scale, dmin min) of the sub-block
  static __device__ __forceinline__ float2 scale(const Raw& r, int64_t item) { return KHeader::scale(r.h, item); }
  static __device__ __forceinline__ float scaled(float2 dm, float2 ds, int s) { return KHeader::scaled(dm, ds, s); }
};

// Q6_K in planes (device_weight.h; spec §4.5 for the block): y = d * scale * (q - 32), q of 6 bits,
// an int8 scale per 16 values. Per 32-value sub-block the quant plane holds the low nibbles as a
// Q4_0 block's 16 bytes, the qh plane 8 bytes of 2-bit highs (words H0, H1: the highs of values
// 4i + k and 16 + 4i + k at byte k of H(i / 2), bits 2 (i % 2) and 4 + 2 (i % 2), so that one shift
// and mask per word puts them under the nibbles), the sc plane the two scales; d per block. The
// file's 210 bytes per 256 values. An item is one sub-block, so the 32-value formats' layouts serve
// it; the offset 32 comes back through each 16-value half's activation sum (dp4a against ones,
// shared by the rows of a group) instead of a byte-wise subtraction per weight word.
// bench/device/kquant_planes_lab.cu, H200, the 27B head (5376 -> 262,144) alone: 268.8 us (4,300
// GB/s) as row pairs on one warp with 3 items per pass, against 335-403 us for the 64-value items
// of the (ql + qh) blocks the device held until session 25.
struct FormatQ6_K : RawDot<FormatQ6_K> {
  static constexpr int kItem = 32;
  static constexpr unsigned kPlanes = kPlaneD | kPlaneQh | kPlaneSc;
  static constexpr int kQhWords = kQ6KHighBytes / 4;  // 32-bit words of the qh plane per block
  static constexpr int kScBytes = kQ6KScaleBytes;     // bytes of the sc plane per block
  static __device__ __forceinline__ const uint8_t* highs(const DeviceWeight& w, int64_t r, int64_t sub) {
    return reinterpret_cast<const uint8_t*>(w.qh) + (r * w.blocks_per_row * 8 + sub) * 8;
  }
  static __device__ __forceinline__ void decode8(const DeviceWeight& w, int64_t r, int64_t k, float* y) {
    const int64_t sub = k / 32;
    const int j0 = static_cast<int>(k % 32), half = j0 / 16, i0 = (j0 % 16) / 4;  // j0: 0, 8, 16 or 24
    const uint2 lo = __ldg(reinterpret_cast<const uint2*>(w.q + r * w.q_row_bytes + sub * 16 + j0 % 16));
    const uint2 hw = __ldg(reinterpret_cast<const uint2*>(highs(w, r, sub)));
    const float d = half_to_float(__ldg(w.d + r * w.blocks_per_row + k / 256));
    const int8_t scale = static_cast<int8_t>(__ldg(w.sc + (r * w.blocks_per_row * 8 + sub) * 2 + half));
    const float dl = __fmul_rn(d, static_cast<float>(scale));
    const uint32_t lw[2] = {lo.x, lo.y}, hv[2] = {hw.x, hw.y};
#pragma unroll
    for (int j = 0; j < 8; ++j) {
      const int i = i0 + j / 4, kk = j % 4;  // value 4i + kk (+ 16 half) of the sub-block
      const int low = static_cast<int>((lw[j / 4] >> (8 * kk + 4 * half)) & 0xFu);
      const int high = static_cast<int>((hv[i / 2] >> (8 * kk + 2 * (i % 2) + 4 * half)) & 3u);
      y[j] = __fmul_rn(dl, static_cast<float>((low | (high << 4)) - 32));
    }
  }
  static constexpr int kUnrollOne = 8;  // as Q4_0 (matvec_quant.cu)
  struct Raw {
    uint4 lo;
    uint2 hi;
    uint16_t sc, d;
  };
  static __device__ __forceinline__ Raw load(const DeviceWeight& w, int64_t r, int64_t item) {
    return {ldw16(w.q + r * w.q_row_bytes + item * 16), ldw8(highs(w, r, item)),
            ldw2(w.sc + (r * w.blocks_per_row * 8 + item) * 2), ldw2(w.d + r * w.blocks_per_row + item / 8)};
  }
  // P rows' sub-blocks at the same position against NT activation rows, one activation load for
  // all: d * x_d * sum over the halves of scale * (dot - 32 * sum x).
  template <int NT, int P>
  static __device__ __forceinline__ void dot_rows(const Raw* raw, int64_t item, ActQ8 x, int64_t K, int T,
                                                  float (*acc)[NT]) {
    uint32_t q0[P][4], q1[P][4];  // values 0..15 and 16..31 as unsigned bytes 0..63
    float d[P];
    int s0[P], s1[P];
#pragma unroll
    for (int p = 0; p < P; ++p) {
      const uint32_t lo[4] = {raw[p].lo.x, raw[p].lo.y, raw[p].lo.z, raw[p].lo.w};
      const uint32_t hw[2] = {raw[p].hi.x, raw[p].hi.y};
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        const uint32_t h = hw[i / 2] >> (2 * (i % 2));
        q0[p][i] = (lo[i] & 0x0F0F0F0Fu) | ((h << 4) & 0x30303030u);
        q1[p][i] = ((lo[i] >> 4) & 0x0F0F0F0Fu) | (h & 0x30303030u);
      }
      s0[p] = static_cast<int8_t>(raw[p].sc & 0xFFu);
      s1[p] = static_cast<int8_t>(raw[p].sc >> 8);
      d[p] = half_to_float(raw[p].d);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
      if (NT > 1 && t >= T) break;  // one token: T is 1 (launch_job)
      const ActWords xa = load_act32(x.q + t * K, item * 32);
      const float dx = load_ds(x.ds, t * (K / 32) + item).x;
      int sx0 = 0, sx1 = 0;  // the halves' activation sums
#pragma unroll
      for (int i = 0; i < 4; ++i) {
        sx0 = dot4(0x01010101u, xa.w[i], sx0);
        sx1 = dot4(0x01010101u, xa.w[i + 4], sx1);
      }
#pragma unroll
      for (int p = 0; p < P; ++p) {
        int a = 0, b = 0;
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          a = dot4(q0[p][i], xa.w[i], a);
          b = dot4(q1[p][i], xa.w[i + 4], b);
        }
        const int sum = s0[p] * (a - 32 * sx0) + s1[p] * (b - 32 * sx1);
        acc[p][t] += d[p] * dx * static_cast<float>(sum);
      }
    }
  }
};

// Calls f(Format{}) for a weight type with a device reader; returns false for other types.
template <class F>
bool with_format(GgmlType t, F&& f) {
  switch (t) {
    case GgmlType::F32:
      f(FormatF32{});
      return true;
    case GgmlType::F16:
      f(FormatF16{});
      return true;
    case GgmlType::BF16:
      f(FormatBF16{});
      return true;
    case GgmlType::Q8_0:
      f(FormatQ8_0{});
      return true;
    case GgmlType::Q4_0:
      f(FormatQ4_0{});
      return true;
    case GgmlType::Q4_1:
      f(FormatQ4_1{});
      return true;
    case GgmlType::Q5_0:
      f(FormatQ5_0{});
      return true;
    case GgmlType::Q5_1:
      f(FormatQ5_1{});
      return true;
    case GgmlType::Q4_K:
      f(FormatQ4_K{});
      return true;
    case GgmlType::Q5_K:
      f(FormatQ5_K{});
      return true;
    case GgmlType::Q6_K:
      f(FormatQ6_K{});
      return true;
    default:
      return false;
  }
}

}  // namespace unicorn::cuda
