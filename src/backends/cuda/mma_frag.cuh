// The int8 tensor-core fragments of the batched-decode matvec (matvec_mma.cu), read from each
// quantized format's device layout (device_weight.h; the formats' scales and planes as in
// weight_formats.cuh). A warp multiplies 16 weight rows by 8 tokens per 32-value item with one
// mma.m16n8k32: lane 4 g + c holds, for rows g and g + 8, the item's values 4c..4c+3 and
// 16+4c..16+4c+3 as bytes (PTX ISA, the A fragment of .s8). In every format's nibble plane (value
// j in the low nibble of byte j, j + 16 in its high one) those are the one 32-bit word c of the
// item; Q8_0 holds them in words c and c + 4.
//
// MmaGroup<F> reads one row's 4 consecutive items (item0 % 4 == 0) for lane c:
//   G fetch(w, r, item0, c)  every load of the group, issued together (scales once per group; all
//                            with L1::no_allocate, so they may precede pdl_wait());
//   G side(w, r, item0, c)   the same without the quant plane (kItemBytes per item: 16, Q8_0 32),
//                            which the staged kernel copies into shared memory itself;
//   arrange(g, c)            once the loads are in: lane c's quantized words in fragment order
//                            (quad_transpose);
//   words(g, u, c, lo, hi)   values 4c.. and 16 + 4c.. of item u as bytes: unsigned 0..31 for the
//                            formats whose offset or minimum comes back through the activation
//                            block's sum, as in the dp4a matvec (also valid as s8), signed for
//                            Q8_0 and Q6_K; words_q(q, g, u, c, lo, hi) the same from lane c's
//                            quant word q of item u (the staged kernel's ldmatrix; not Q8_0, whose
//                            words are the fragment);
//   scale(g, u, item0)       the item's F::Scale, for F::scaled(scale, (d, d * sum) of the
//                            activation block, the integer dot) as the dp4a matvec.
// Q6_K (kHalves) has a scale per 16 values: two m16n8k16 products per item, values q - 32 as
// signed bytes, and scaled_halves(scale, d_x, dot of values 0..15, dot of values 16..31).
#pragma once
#include <cstdint>

#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {

__device__ __forceinline__ uint32_t word_of(const uint4& v, int u) {
  return u == 0 ? v.x : u == 1 ? v.y : u == 2 ? v.z : v.w;
}
// f16 number u (0..3) of 4 packed in a uint2.
__device__ __forceinline__ float half_of(const uint2& v, int u) {
  return half_to_float(static_cast<uint16_t>(((u < 2 ? v.x : v.y) >> (16 * (u % 2))) & 0xFFFFu));
}
// The 4x4 transpose of 32-bit words within each quad of lanes (4 g .. 4 g + 3; every lane of the
// warp calls it): lane c holds word k of item c in v[k] and gets word c of item u in v[u]. The
// weights and activations are read as whole 16-byte items per lane (4 rows' items per 128-byte
// line; a lane's word c alone would take one 4-byte load per row and item, and the L1 pipe, at 8
// rows per load, became the limit: session 28); two rounds of shuffles put them in fragment order.
__device__ __forceinline__ void quad_transpose(uint32_t* v, int c) {
  const bool x2 = (c & 2) != 0, x1 = (c & 1) != 0;
#pragma unroll
  for (int j = 0; j < 2; ++j) {  // swap the off-diagonal 2x2 blocks with lane c ^ 2
    const uint32_t r = __shfl_xor_sync(0xFFFFFFFFu, x2 ? v[j] : v[j + 2], 2);
    if (x2)
      v[j] = r;
    else
      v[j + 2] = r;
  }
#pragma unroll
  for (int j = 0; j < 4; j += 2) {  // then the off-diagonal words within them with lane c ^ 1
    const uint32_t r = __shfl_xor_sync(0xFFFFFFFFu, x1 ? v[j] : v[j + 1], 1);
    if (x1)
      v[j] = r;
    else
      v[j + 1] = r;
  }
}
__device__ __forceinline__ void quad_transpose(uint4& a, int c) {
  uint32_t v[4] = {a.x, a.y, a.z, a.w};
  quad_transpose(v, c);
  a = make_uint4(v[0], v[1], v[2], v[3]);
}
// Lane c's nibble item: item item0 + c of row r (16 bytes; after quad_transpose word c of items
// item0..item0+3).
__device__ __forceinline__ uint4 nibble_item(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
  return ldw16(w.q + r * w.q_row_bytes + (item0 + c) * 16);
}
// Values 4c..4c+3 (low nibbles) and 16+4c..16+4c+3 (high nibbles) of a nibble word, with the
// fifth bits of unpack_fifth_bits' word hb (0 for the 4-bit formats).
__device__ __forceinline__ void nibble_frag(uint32_t q, uint32_t hb, int c, uint32_t& lo, uint32_t& hi) {
  const uint32_t h = hb >> c;
  lo = (q & 0x0F0F0F0Fu) | ((h << 4) & 0x10101010u);
  hi = ((q >> 4) & 0x0F0F0F0Fu) | (h & 0x10101010u);
}

// Empty for the formats without fragments (the float ones).
template <class F>
struct MmaGroup {};

// arrange and words of the formats whose lane words are the items' nibble words (all but Q8_0 and
// Q6_K): G::q holds lane c's item, then word c of each; M::fifth(g, u) the fifth-bit word of item
// u (0 here, for the 4-bit formats).
// fetch of the formats whose quant plane holds 16-byte nibble items (all but Q8_0).
template <class M>
struct NibbleItems {
  static constexpr int kItemBytes = 16;  // of the quant plane's items (the staged kernel's copies)
  // Every plane of the group: the side planes (M::side) and lane c's item of the quant plane.
  static __device__ __forceinline__ auto fetch(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    auto g = M::side(w, r, item0, c);
    g.q = nibble_item(w, r, item0, c);
    return g;
  }
};

template <class M>
struct NibbleWords : NibbleItems<M> {
  static constexpr bool kHalves = false;
  template <class G>
  static __device__ __forceinline__ uint32_t fifth(const G&, int) {
    return 0;
  }
  template <class G>
  static __device__ __forceinline__ void arrange(G& g, int c) {
    quad_transpose(g.q, c);
  }
  template <class G>
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    words_q(word_of(g.q, u), g, u, c, lo, hi);
  }
  // The same from lane c's nibble word q of item u (the staged kernel's ldmatrix).
  template <class G>
  static __device__ __forceinline__ void words_q(uint32_t q, const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    nibble_frag(q, M::fifth(g, u), c, lo, hi);
  }
};

template <>
struct MmaGroup<FormatQ4_0> : FormatQ4_0, NibbleWords<MmaGroup<FormatQ4_0>> {
  struct G {
    uint4 q;
    uint2 d;
  };
  static __device__ __forceinline__ G side(const DeviceWeight& w, int64_t r, int64_t item0, int) {
    return {{}, ldw8(w.d + r * w.blocks_per_row + item0)};
  }
  static __device__ __forceinline__ float scale(const G& g, int u, int64_t) { return half_of(g.d, u); }
};

template <>
struct MmaGroup<FormatQ4_1> : FormatQ4_1, NibbleWords<MmaGroup<FormatQ4_1>> {
  struct G {
    uint4 q, dm;
  };
  static __device__ __forceinline__ G side(const DeviceWeight& w, int64_t r, int64_t item0, int) {
    return {{}, ldw16(dm_word(w, r, item0))};
  }
  static __device__ __forceinline__ float2 scale(const G& g, int u, int64_t) { return split_dm(word_of(g.dm, u)); }
};

template <>
struct MmaGroup<FormatQ5_0> : FormatQ5_0, NibbleWords<MmaGroup<FormatQ5_0>> {
  struct G {
    uint4 q, qh;
    uint2 d;
  };
  static __device__ __forceinline__ G side(const DeviceWeight& w, int64_t r, int64_t item0, int) {
    return {{}, ldw16(w.qh + r * w.blocks_per_row + item0), ldw8(w.d + r * w.blocks_per_row + item0)};
  }
  static __device__ __forceinline__ uint32_t fifth(const G& g, int u) { return word_of(g.qh, u); }
  static __device__ __forceinline__ float scale(const G& g, int u, int64_t) { return half_of(g.d, u); }
};

template <>
struct MmaGroup<FormatQ5_1> : FormatQ5_1, NibbleWords<MmaGroup<FormatQ5_1>> {
  struct G {
    uint4 q, qh, dm;
  };
  static __device__ __forceinline__ G side(const DeviceWeight& w, int64_t r, int64_t item0, int) {
    return {{}, ldw16(w.qh + r * w.blocks_per_row + item0), ldw16(dm_word(w, r, item0))};
  }
  static __device__ __forceinline__ uint32_t fifth(const G& g, int u) { return word_of(g.qh, u); }
  static __device__ __forceinline__ float2 scale(const G& g, int u, int64_t) { return split_dm(word_of(g.dm, u)); }
};

template <>
struct MmaGroup<FormatQ8_0> : FormatQ8_0 {
  static constexpr bool kHalves = false;
  struct G {
    uint4 lo, hi;  // bytes 0..15 and 16..31 of lane c's item; after arrange, words c and c + 4
    uint2 d;
  };
  static constexpr int kItemBytes = 32;
  static __device__ __forceinline__ G fetch(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    const uint8_t* p = w.q + r * w.q_row_bytes + (item0 + c) * 32;
    return {ldw16(p), ldw16(p + 16), ldw8(w.d + r * w.blocks_per_row + item0)};
  }
  static __device__ __forceinline__ G side(const DeviceWeight& w, int64_t r, int64_t item0, int) {
    return {{}, {}, ldw8(w.d + r * w.blocks_per_row + item0)};
  }
  static __device__ __forceinline__ void arrange(G& g, int c) {
    quad_transpose(g.lo, c);
    quad_transpose(g.hi, c);
  }
  static __device__ __forceinline__ void words(const G& g, int u, int, uint32_t& lo, uint32_t& hi) {
    lo = word_of(g.lo, u);
    hi = word_of(g.hi, u);
  }
  static __device__ __forceinline__ float scale(const G& g, int u, int64_t) { return half_of(g.d, u); }
};

// Q4_K: 4 sub-blocks of one super-block (item0 % 4 == 0), its header loaded once.
template <>
struct MmaGroup<FormatQ4_K> : FormatQ4_K, NibbleWords<MmaGroup<FormatQ4_K>> {
  struct G {
    uint4 q, h;
  };
  static __device__ __forceinline__ G side(const DeviceWeight& w, int64_t r, int64_t item0, int) {
    return {{}, ldw16(header(w, r, item0 / 8))};
  }
  static __device__ __forceinline__ float2 scale(const G& g, int u, int64_t item0) {
    return KHeader::scale(g.h, item0 + u);
  }
};

template <>
struct MmaGroup<FormatQ5_K> : FormatQ5_K, NibbleWords<MmaGroup<FormatQ5_K>> {
  struct G {
    uint4 q, h, hb;
  };
  static __device__ __forceinline__ G side(const DeviceWeight& w, int64_t r, int64_t item0, int) {
    return {{}, ldw16(header(w, r, item0 / 8)), ldw16(highs(w, r, item0))};
  }
  static __device__ __forceinline__ uint32_t fifth(const G& g, int u) { return word_of(g.hb, u); }
  static __device__ __forceinline__ float2 scale(const G& g, int u, int64_t item0) {
    return KHeader::scale(g.h, item0 + u);
  }
};

// Q6_K: lane c's highs are word c / 2 of the sub-block's 8 bytes (FormatQ6_K), shifted by 2 (c % 2).
template <>
struct MmaGroup<FormatQ6_K> : FormatQ6_K, NibbleItems<MmaGroup<FormatQ6_K>> {
  static constexpr bool kHalves = true;
  struct G {
    uint4 q;
    uint32_t h[4];
    uint2 sc;
    uint16_t d;
  };
  static __device__ __forceinline__ G side(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    g.q = {};
#pragma unroll
    for (int u = 0; u < 4; ++u) g.h[u] = ldw4(highs(w, r, item0 + u) + 4 * (c / 2));
    g.sc = ldw8(w.sc + (r * w.blocks_per_row * 8 + item0) * 2);
    g.d = ldw2(w.d + r * w.blocks_per_row + item0 / 8);
    return g;
  }
  static __device__ __forceinline__ void arrange(G& g, int c) { quad_transpose(g.q, c); }
  // Bytes 0..63 less 32 as signed bytes: flip bit 5, then copy it into bits 6 and 7.
  static __device__ __forceinline__ uint32_t centred(uint32_t v) {
    const uint32_t f = v ^ 0x20202020u, s = f & 0x20202020u;
    return f | (s << 1) | (s << 2);
  }
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    words_q(word_of(g.q, u), g, u, c, lo, hi);
  }
  static __device__ __forceinline__ void words_q(uint32_t q, const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    const uint32_t h = g.h[u] >> (2 * (c % 2));
    lo = centred((q & 0x0F0F0F0Fu) | ((h << 4) & 0x30303030u));
    hi = centred(((q >> 4) & 0x0F0F0F0Fu) | (h & 0x30303030u));
  }
  struct Scale {
    float d;
    int s0, s1;
  };
  static __device__ __forceinline__ Scale scale(const G& g, int u, int64_t) {
    const uint32_t word = u < 2 ? g.sc.x : g.sc.y;
    const int sh = 16 * (u % 2);
    return {half_to_float(g.d), static_cast<int8_t>((word >> sh) & 0xFFu),
            static_cast<int8_t>((word >> (sh + 8)) & 0xFFu)};
  }
  static __device__ __forceinline__ float scaled_halves(const Scale& s, float dx, int a, int b) {
    return s.d * dx * static_cast<float>(s.s0 * a + s.s1 * b);
  }
};

}  // namespace unicorn::cuda
