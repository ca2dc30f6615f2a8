// The int8 tensor-core fragments of the batched-decode matvec (matvec_mma.cu), read from each
// quantized format's device layout (device_weight.h; the formats' scales and planes as in
// weight_formats.cuh). A warp multiplies 16 weight rows by 8 tokens per 32-value item with one
// mma.m16n8k32: lane 4 g + c holds, for rows g and g + 8, the item's values 4c..4c+3 and
// 16+4c..16+4c+3 as bytes (PTX ISA, the A fragment of .s8). In every format's nibble plane (value
// j in the low nibble of byte j, j + 16 in its high one) those are the one 32-bit word c of the
// item; Q8_0 holds them in words c and c + 4.
//
// MmaGroup<F> reads one row's 4 consecutive items (item0 % 4 == 0) for lane c:
//   G load(w, r, item0, c)   every load of the group, issued together (scales once per group);
//   words(g, u, c, lo, hi)   values 4c.. and 16 + 4c.. of item u as bytes: unsigned 0..31 for the
//                            formats whose offset or minimum comes back through the activation
//                            block's sum, as in the dp4a matvec (also valid as s8), signed for
//                            Q8_0 and Q6_K;
//   scale(g, u, item0)       the item's F::Scale, for F::scaled(scale, (d, d * sum) of the
//                            activation block, the integer dot) as the dp4a matvec.
// Q6_K (kHalves) has a scale per 16 values: two m16n8k16 products per item, values q - 32 as
// signed bytes, and scaled_halves(scale, d_x, dot of values 0..15, dot of values 16..31).
#pragma once
#include <cstdint>

#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {

// Weight words of the fragments: 4 bytes of each of 8 rows per warp load, so the 32-byte sector
// of a row's item pair is read by two loads; they go through L1 (unlike the dp4a matvec's 16-byte
// loads, ldw16) so that the second finds the sector there.
__device__ __forceinline__ uint32_t ldf4(const void* p) {
  uint32_t r;
  asm volatile("ld.global.nc.L2::256B.u32 %0, [%1];" : "=r"(r) : "l"(p));
  return r;
}
__device__ __forceinline__ uint2 ldf8(const void* p) {
  uint2 r;
  asm volatile("ld.global.nc.v2.u32 {%0,%1}, [%2];" : "=r"(r.x), "=r"(r.y) : "l"(p));
  return r;
}
__device__ __forceinline__ uint4 ldf16(const void* p) {
  uint4 r;
  asm volatile("ld.global.nc.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}

__device__ __forceinline__ uint32_t word_of(const uint4& v, int u) {
  return u == 0 ? v.x : u == 1 ? v.y : u == 2 ? v.z : v.w;
}
// f16 number u (0..3) of 4 packed in a uint2.
__device__ __forceinline__ float half_of(const uint2& v, int u) {
  return half_to_float(static_cast<uint16_t>(((u < 2 ? v.x : v.y) >> (16 * (u % 2))) & 0xFFFFu));
}
// The 4 nibble words of items item0..item0+3 of row r that lane c reads (word c of each).
__device__ __forceinline__ void nibble_words4(const DeviceWeight& w, int64_t r, int64_t item0, int c, uint32_t* q) {
  const uint8_t* p = w.q + r * w.q_row_bytes + item0 * 16 + 4 * c;
#pragma unroll
  for (int u = 0; u < 4; ++u) q[u] = ldf4(p + 16 * u);
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

template <>
struct MmaGroup<FormatQ4_0> : FormatQ4_0 {
  static constexpr bool kHalves = false;
  struct G {
    uint32_t q[4];
    uint2 d;
  };
  static __device__ __forceinline__ G load(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    nibble_words4(w, r, item0, c, g.q);
    g.d = ldf8(w.d + r * w.blocks_per_row + item0);
    return g;
  }
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    nibble_frag(g.q[u], 0, c, lo, hi);
  }
  static __device__ __forceinline__ float scale(const G& g, int u, int64_t) { return half_of(g.d, u); }
};

template <>
struct MmaGroup<FormatQ4_1> : FormatQ4_1 {
  static constexpr bool kHalves = false;
  struct G {
    uint32_t q[4];
    uint4 dm;
  };
  static __device__ __forceinline__ G load(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    nibble_words4(w, r, item0, c, g.q);
    g.dm = ldf16(dm_word(w, r, item0));
    return g;
  }
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    nibble_frag(g.q[u], 0, c, lo, hi);
  }
  static __device__ __forceinline__ float2 scale(const G& g, int u, int64_t) { return split_dm(word_of(g.dm, u)); }
};

template <>
struct MmaGroup<FormatQ5_0> : FormatQ5_0 {
  static constexpr bool kHalves = false;
  struct G {
    uint32_t q[4];
    uint4 qh;
    uint2 d;
  };
  static __device__ __forceinline__ G load(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    nibble_words4(w, r, item0, c, g.q);
    g.qh = ldf16(w.qh + r * w.blocks_per_row + item0);
    g.d = ldf8(w.d + r * w.blocks_per_row + item0);
    return g;
  }
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    nibble_frag(g.q[u], word_of(g.qh, u), c, lo, hi);
  }
  static __device__ __forceinline__ float scale(const G& g, int u, int64_t) { return half_of(g.d, u); }
};

template <>
struct MmaGroup<FormatQ5_1> : FormatQ5_1 {
  static constexpr bool kHalves = false;
  struct G {
    uint32_t q[4];
    uint4 qh, dm;
  };
  static __device__ __forceinline__ G load(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    nibble_words4(w, r, item0, c, g.q);
    g.qh = ldf16(w.qh + r * w.blocks_per_row + item0);
    g.dm = ldf16(dm_word(w, r, item0));
    return g;
  }
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    nibble_frag(g.q[u], word_of(g.qh, u), c, lo, hi);
  }
  static __device__ __forceinline__ float2 scale(const G& g, int u, int64_t) { return split_dm(word_of(g.dm, u)); }
};

template <>
struct MmaGroup<FormatQ8_0> : FormatQ8_0 {
  static constexpr bool kHalves = false;
  struct G {
    uint32_t lo[4], hi[4];
    uint2 d;
  };
  static __device__ __forceinline__ G load(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    const uint8_t* p = w.q + r * w.q_row_bytes + item0 * 32 + 4 * c;
#pragma unroll
    for (int u = 0; u < 4; ++u) {
      g.lo[u] = ldf4(p + 32 * u);
      g.hi[u] = ldf4(p + 32 * u + 16);
    }
    g.d = ldf8(w.d + r * w.blocks_per_row + item0);
    return g;
  }
  static __device__ __forceinline__ void words(const G& g, int u, int, uint32_t& lo, uint32_t& hi) {
    lo = g.lo[u];
    hi = g.hi[u];
  }
  static __device__ __forceinline__ float scale(const G& g, int u, int64_t) { return half_of(g.d, u); }
};

// Q4_K: 4 sub-blocks of one super-block (item0 % 4 == 0), its header loaded once.
template <>
struct MmaGroup<FormatQ4_K> : FormatQ4_K {
  static constexpr bool kHalves = false;
  struct G {
    uint32_t q[4];
    uint4 h;
  };
  static __device__ __forceinline__ G load(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    nibble_words4(w, r, item0, c, g.q);
    g.h = ldf16(header(w, r, item0 / 8));
    return g;
  }
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    nibble_frag(g.q[u], 0, c, lo, hi);
  }
  static __device__ __forceinline__ float2 scale(const G& g, int u, int64_t item0) {
    return KHeader::scale(g.h, item0 + u);
  }
};

template <>
struct MmaGroup<FormatQ5_K> : FormatQ5_K {
  static constexpr bool kHalves = false;
  struct G {
    uint32_t q[4];
    uint4 h, hb;
  };
  static __device__ __forceinline__ G load(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    nibble_words4(w, r, item0, c, g.q);
    g.h = ldf16(header(w, r, item0 / 8));
    g.hb = ldf16(highs(w, r, item0));
    return g;
  }
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    nibble_frag(g.q[u], word_of(g.hb, u), c, lo, hi);
  }
  static __device__ __forceinline__ float2 scale(const G& g, int u, int64_t item0) {
    return KHeader::scale(g.h, item0 + u);
  }
};

// Q6_K: lane c's highs are word c / 2 of the sub-block's 8 bytes (FormatQ6_K), shifted by 2 (c % 2).
template <>
struct MmaGroup<FormatQ6_K> : FormatQ6_K {
  static constexpr bool kHalves = true;
  struct G {
    uint32_t q[4], h[4];
    uint2 sc;
    uint16_t d;
  };
  static __device__ __forceinline__ G load(const DeviceWeight& w, int64_t r, int64_t item0, int c) {
    G g;
    nibble_words4(w, r, item0, c, g.q);
#pragma unroll
    for (int u = 0; u < 4; ++u) g.h[u] = ldf4(highs(w, r, item0 + u) + 4 * (c / 2));
    g.sc = ldf8(w.sc + (r * w.blocks_per_row * 8 + item0) * 2);
    g.d = ldw2(w.d + r * w.blocks_per_row + item0 / 8);
    return g;
  }
  // Bytes 0..63 less 32 as signed bytes: flip bit 5, then copy it into bits 6 and 7.
  static __device__ __forceinline__ uint32_t centred(uint32_t v) {
    const uint32_t f = v ^ 0x20202020u, s = f & 0x20202020u;
    return f | (s << 1) | (s << 2);
  }
  static __device__ __forceinline__ void words(const G& g, int u, int c, uint32_t& lo, uint32_t& hi) {
    const uint32_t h = g.h[u] >> (2 * (c % 2));
    lo = centred((g.q[u] & 0x0F0F0F0Fu) | ((h << 4) & 0x30303030u));
    hi = centred(((g.q[u] >> 4) & 0x0F0F0F0Fu) | (h & 0x30303030u));
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
