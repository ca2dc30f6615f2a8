// Row-dot kernels (decode path: weight rows read in place) written once for x86 SIMD and
// compiled twice: by kernels_avx2.cpp (AVX2+FMA+F16C) and kernels_avx512.cpp (which adds
// AVX-512 VNNI, used here through its 256-bit dot-product-of-4 instruction). The includer
// includes <immintrin.h>, <cstring>, matmul_kernels.h and quant/blocks.h, then includes this
// file inside its own ISA namespace; everything here is TU-local, so the copies never merge.
// Nor may this code call inline functions with external linkage (e.g. blocks.h helpers, std::min):
// an out-of-line copy compiled with AVX-512 could be the one the linker keeps for baseline code.
//
// Every kernel dots one 32-value weight block against one activation block (QuantRow) as
// unsigned × signed bytes; weight offsets (Q4_0's -8, Q5_0's -16, Q6_K's -32) are taken out
// with the activation block sums, minimums (Q4_1, Q5_1, Q4_K) with the same sums in f32.
namespace {

inline uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }
inline uint32_t load_u32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline float half_to_float(const uint8_t* p) { return _cvtsh_ss(load_u16(p)); }

// acc + Σ over each group of 4 bytes of u·s (u unsigned, s signed); every u·s pair sum must fit
// int16 on the AVX2 path (true for the weights here: u <= 63, or |w| <= 128 against |x| <= 127).
inline __m256i dot_u8s8(__m256i acc, __m256i u, __m256i s) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
  return _mm256_dpbusd_epi32(acc, u, s);
#else
  const __m256i pairs = _mm256_maddubs_epi16(u, s);
  return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
#endif
}

inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// An int32 vector holding v in lane 0: a block's integer correction folded into its dot.
inline __m256i lane0(int32_t v) { return _mm256_zextsi128_si256(_mm_cvtsi32_si128(v)); }

// 16 bytes of nibbles -> 32 bytes: low nibbles (values 0..15) then high nibbles (16..31).
inline __m256i nibbles_32(const uint8_t* qs) {
  const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs));
  const __m128i m = _mm_set1_epi8(0x0F);
  return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(b, 4), m), _mm_and_si128(b, m));
}

// q with 0x10 added to byte j where bit j of qh is set (bit 4 of Q5 quants; q <= 15).
inline __m256i with_fifth_bits(__m256i q, uint32_t qh);

// 32 bits -> 32 bytes, byte j = 0x10 where bit j is set.
inline __m256i fifth_bits(uint32_t qh) {
  const __m256i shuf =
      _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202, 0x0303030303030303);
  const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(qh)), shuf);
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

inline __m256i with_fifth_bits(__m256i q, uint32_t qh) {
#if defined(__AVX512BW__) && defined(__AVX512VL__)
  return _mm256_mask_add_epi8(q, static_cast<__mmask32>(qh), q, _mm256_set1_epi8(0x10));
#else
  return _mm256_or_si256(q, fifth_bits(qh));
#endif
}

inline __m256i load_x(const QuantRow& x, int64_t b) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + b * unicorn::kActBlock));
}

// ---- 32-value blocks ----------------------------------------------------------------------------
//
// Every dot below takes NT tokens at once (batched decode: several sequences in one step): each
// weight block is loaded and unpacked once and dotted against every token's activation block,
// out[t] for token t. Each token's arithmetic is the same, in the same order, for every NT.

struct DotQ8_0 {
  template <int NT>
  static void run(const uint8_t* row, const QuantRow* x, int64_t nb, float* out) {
    __m256 acc0[NT], acc1[NT];
    for (int t = 0; t < NT; ++t) acc0[t] = acc1[t] = _mm256_setzero_ps();
    int64_t b = 0;
    auto one = [&](int64_t i, __m256* acc) {
      const uint8_t* blk = row + i * 34;
      const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
      const __m256i aw = _mm256_abs_epi8(w);
      const float d = half_to_float(blk);
      for (int t = 0; t < NT; ++t) {
        const __m256i p = dot_u8s8(_mm256_setzero_si256(), aw, _mm256_sign_epi8(load_x(x[t], i), w));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * x[t].d[i]), acc[t]);
      }
    };
    for (; b + 2 <= nb; b += 2) {
      one(b, acc0);
      one(b + 1, acc1);
    }
    if (b < nb) one(b, acc0);
    for (int t = 0; t < NT; ++t) out[t] = hsum(_mm256_add_ps(acc0[t], acc1[t]));
  }
};

// Q4_0 / Q5_0 (offset weights): Σ (q - off)·x = Σ q·x - off·Σx, all in integers.
template <bool kFive>
struct DotQ45_0 {
  template <int NT>
  static void run(const uint8_t* row, const QuantRow* x, int64_t nb, float* out) {
    constexpr size_t kBytes = kFive ? sizeof(BlockQ5_0) : sizeof(BlockQ4_0);
    constexpr int kOff = kFive ? 16 : 8;
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * kBytes;
      __m256i q = nibbles_32(blk + (kFive ? 6 : 2));
      if constexpr (kFive) q = with_fifth_bits(q, load_u32(blk + 2));
      const float d = half_to_float(blk);
      for (int t = 0; t < NT; ++t) {
        const __m256i p = dot_u8s8(lane0(-kOff * x[t].sum[b]), q, load_x(x[t], b));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * x[t].d[b]), acc[t]);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
  }
};

// Q4_1 / Q5_1: y = d·q + m, so Σ y·x = d·Σ q·x + m·Σx.
template <bool kFive>
struct DotQ45_1 {
  template <int NT>
  static void run(const uint8_t* row, const QuantRow* x, int64_t nb, float* out) {
    constexpr size_t kBytes = kFive ? sizeof(BlockQ5_1) : sizeof(BlockQ4_1);
    __m256 acc[NT];
    float mins[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps(), mins[t] = 0.0f;
    for (int64_t b = 0; b < nb; ++b) {
      const uint8_t* blk = row + b * kBytes;
      __m256i q = nibbles_32(blk + (kFive ? 8 : 4));
      if constexpr (kFive) q = with_fifth_bits(q, load_u32(blk + 4));
      const float d = half_to_float(blk), m = half_to_float(blk + 2);
      for (int t = 0; t < NT; ++t) {
        const __m256i p = dot_u8s8(_mm256_setzero_si256(), q, load_x(x[t], b));
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * x[t].d[b]), acc[t]);
        mins[t] += m * x[t].d[b] * static_cast<float>(x[t].sum[b]);
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]) + mins[t];
  }
};

// ---- K-quants (256-value super-blocks; each 32-value activation block inside one) -------------

// The 8 six-bit scales and mins of a Q4_K/Q5_K super-block (12 packed bytes, spec §4.5): bytes
// 0..3 hold scales 0..3 (+ top bits of scales 4..7), 4..7 mins 0..3 (+ top bits of mins 4..7),
// 8..11 the low nibbles of scales 4..7 and (high nibble) mins 4..7. As 8 int32 lanes each.
inline void k4_scales_mins(const uint8_t* packed, __m256i& scales, __m256i& mins) {
  const uint32_t a = load_u32(packed), b = load_u32(packed + 4), c = load_u32(packed + 8);
  const uint32_t sc_lo = a & 0x3F3F3F3Fu, m_lo = b & 0x3F3F3F3Fu;
  const uint32_t sc_hi = (c & 0x0F0F0F0Fu) | (((a >> 6) & 0x03030303u) << 4);
  const uint32_t m_hi = ((c >> 4) & 0x0F0F0F0Fu) | (((b >> 6) & 0x03030303u) << 4);
  scales = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>((uint64_t{sc_hi} << 32) | sc_lo)));
  mins = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(static_cast<int64_t>((uint64_t{m_hi} << 32) | m_lo)));
}

// Q4_K / Q5_K: sub-block s (32 values) uses qs[32(s/2) ..] low (even s) or high nibbles; Q5_K's
// bit 4 of value l in sub-block s is bit s of qh[l]. The super-block's 8 sub-block scales are
// applied as one vector: lane s of `scale` multiplies sub-block s's dot.
template <bool kFive>
struct DotQ45_K {
  template <int NT>
  static void run(const uint8_t* row, const QuantRow* x, int64_t nsb, float* out) {
    constexpr size_t kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    constexpr size_t kQs = kFive ? 48 : 16;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    __m256 acc[NT], mins[NT];
    for (int t = 0; t < NT; ++t) acc[t] = mins[t] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* blk = row + sb * kBytes;
      __m256i sc, mn;
      k4_scales_mins(blk + 4, sc, mn);
      const __m256 dsc = _mm256_mul_ps(_mm256_cvtepi32_ps(sc), _mm256_set1_ps(half_to_float(blk)));
      const __m256 dmn = _mm256_mul_ps(_mm256_cvtepi32_ps(mn), _mm256_set1_ps(half_to_float(blk + 2)));
      __m256 scale[NT];
      for (int t = 0; t < NT; ++t) {
        const __m256 dx = _mm256_loadu_ps(x[t].d + 8 * sb);
        scale[t] = _mm256_mul_ps(dsc, dx);
        const __m256 xsum = _mm256_mul_ps(
            dx, _mm256_cvtepi32_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[t].sum + 8 * sb))));
        mins[t] = _mm256_fmadd_ps(dmn, xsum, mins[t]);
      }
      [[maybe_unused]] __m256i qh;
      if constexpr (kFive) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16));
      for (int c = 0; c < 4; ++c) {
        const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQs + 32 * c));
        __m256i q[2] = {_mm256_and_si256(qs, m4), _mm256_and_si256(_mm256_srli_epi16(qs, 4), m4)};
        for (int h = 0; h < 2; ++h) {
          const int s = 2 * c + h;
          if constexpr (kFive) {
            // bit s of each qh byte -> 0x10
            const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << s));
            q[h] = _mm256_or_si256(
                q[h], _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit), _mm256_set1_epi8(0x10)));
          }
          for (int t = 0; t < NT; ++t) {
            const __m256i p = dot_u8s8(_mm256_setzero_si256(), q[h], load_x(x[t], sb * 8 + s));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_permutevar8x32_ps(scale[t], _mm256_set1_epi32(s)),
                                     acc[t]);
          }
        }
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]) - hsum(mins[t]);
  }
};

// Q6_K: per 128-value half h, output group k (32 values) = 4 low bits from ql (bytes 0..31 for
// k = 0,2, 32..63 for k = 1,3; high nibble for k >= 2) and 2 high bits from qh at bits 2k;
// stored +32. Scales per 16 values: lanes 0..3 of a block's dot take one, lanes 4..7 the next.
struct DotQ6_K {
  template <int NT>
  static void run(const uint8_t* row, const QuantRow* x, int64_t nsb, float* out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
    const __m256i k32 = _mm256_set1_epi8(32);
    __m256 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm256_setzero_ps();
    for (int64_t sb = 0; sb < nsb; ++sb) {
      const uint8_t* blk = row + sb * sizeof(BlockQ6_K);
      const auto* scales = reinterpret_cast<const int8_t*>(blk + 192);
      const float d = half_to_float(blk + 208);
      for (int h = 0; h < 2; ++h) {
        const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
        const __m256i q[4] = {
            _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
            _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2)),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2))};
        for (int k = 0; k < 4; ++k) {
          const int64_t xb = sb * 8 + 4 * h + k;
          const int j = 8 * h + 2 * k;
          for (int t = 0; t < NT; ++t) {
            const __m256i xv = load_x(x[t], xb);
            const __m256i p =
                _mm256_sub_epi32(dot_u8s8(_mm256_setzero_si256(), q[k], xv), dot_u8s8(_mm256_setzero_si256(), k32, xv));
            const float sd = d * x[t].d[xb];
            const __m256 sv = _mm256_set_m128(_mm_set1_ps(sd * static_cast<float>(scales[j + 1])),
                                              _mm_set1_ps(sd * static_cast<float>(scales[j])));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sv, acc[t]);
          }
        }
      }
    }
    for (int t = 0; t < NT; ++t) out[t] = hsum(acc[t]);
  }
};

// NT tokens' dots of nrows rows: y[t * ldy + r].
template <class Dot, int NT>
void rows_of(const uint8_t* w, size_t stride, int64_t nrows, int64_t n, const QuantRow* x, float* y, int64_t ldy) {
  float out[NT];
  for (int64_t r = 0; r < nrows; ++r) {
    Dot::template run<NT>(w + static_cast<size_t>(r) * stride, x, n, out);
    for (int t = 0; t < NT; ++t) y[t * ldy + r] = out[t];
  }
}
// NT of the T tokens at a time (4 at most: more tokens' accumulators would overflow AVX2's 16 vector
// registers).
template <class Dot>
void rows_tokens(const uint8_t* w, size_t stride, int64_t nrows, int64_t n, const QuantRow* x, int64_t T, float* y,
                 int64_t ldy) {
  int64_t t = 0;
  for (; t + 4 <= T; t += 4) rows_of<Dot, 4>(w, stride, nrows, n, x + t, y + t * ldy, ldy);
  switch (T - t) {
    case 3:
      return rows_of<Dot, 3>(w, stride, nrows, n, x + t, y + t * ldy, ldy);
    case 2:
      return rows_of<Dot, 2>(w, stride, nrows, n, x + t, y + t * ldy, ldy);
    case 1:
      return rows_of<Dot, 1>(w, stride, nrows, n, x + t, y + t * ldy, ldy);
    default:
      return;
  }
}

void rows_dot_q8_x86(unicorn::GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K,
                     const QuantRow* x, int64_t T, float* y, int64_t ldy) {
  using unicorn::GgmlType;
  const int64_t nb = K / 32, nsb = K / 256;
  switch (type) {
    case GgmlType::Q8_0:
      return rows_tokens<DotQ8_0>(w, stride, nrows, nb, x, T, y, ldy);
    case GgmlType::Q4_0:
      return rows_tokens<DotQ45_0<false>>(w, stride, nrows, nb, x, T, y, ldy);
    case GgmlType::Q5_0:
      return rows_tokens<DotQ45_0<true>>(w, stride, nrows, nb, x, T, y, ldy);
    case GgmlType::Q4_1:
      return rows_tokens<DotQ45_1<false>>(w, stride, nrows, nb, x, T, y, ldy);
    case GgmlType::Q5_1:
      return rows_tokens<DotQ45_1<true>>(w, stride, nrows, nb, x, T, y, ldy);
    case GgmlType::Q4_K:
      return rows_tokens<DotQ45_K<false>>(w, stride, nrows, nsb, x, T, y, ldy);
    case GgmlType::Q5_K:
      return rows_tokens<DotQ45_K<true>>(w, stride, nrows, nsb, x, T, y, ldy);
    case GgmlType::Q6_K:
      return rows_tokens<DotQ6_K>(w, stride, nrows, nsb, x, T, y, ldy);
    default:
      return unicorn::rows_dot_q8_scalar(type, w, stride, nrows, K, x, T, y, ldy);  // Q2_K, Q3_K
  }
}

// ---- float weights ------------------------------------------------------------------------------

template <unicorn::GgmlType kType>
inline __m256 load8(const uint8_t* row, int64_t i) {
  using unicorn::GgmlType;
  if constexpr (kType == GgmlType::F32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(row) + i);
  } else {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * i));
    if constexpr (kType == GgmlType::F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));  // bf16: top half of f32
  }
}

template <unicorn::GgmlType kType>
float dot_float_row(const uint8_t* row, const float* x, int64_t K) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  int64_t i = 0;
  for (; i + 32 <= K; i += 32) {
    a0 = _mm256_fmadd_ps(load8<kType>(row, i), _mm256_loadu_ps(x + i), a0);
    a1 = _mm256_fmadd_ps(load8<kType>(row, i + 8), _mm256_loadu_ps(x + i + 8), a1);
    a2 = _mm256_fmadd_ps(load8<kType>(row, i + 16), _mm256_loadu_ps(x + i + 16), a2);
    a3 = _mm256_fmadd_ps(load8<kType>(row, i + 24), _mm256_loadu_ps(x + i + 24), a3);
  }
  for (; i + 8 <= K; i += 8) a0 = _mm256_fmadd_ps(load8<kType>(row, i), _mm256_loadu_ps(x + i), a0);
  float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  if (i < K) {
    float tail = 0.0f;
    unicorn::rows_dot_f32_scalar(kType, row + i * (kType == unicorn::GgmlType::F32 ? 4 : 2), 0, 1, K - i, x + i, &tail);
    s += tail;
  }
  return s;
}

void rows_dot_f32_x86(unicorn::GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K, const float* x,
                      float* y) {
  using unicorn::GgmlType;
  for (int64_t r = 0; r < nrows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * stride;
    switch (type) {
      case GgmlType::F32:
        y[r] = dot_float_row<GgmlType::F32>(row, x, K);
        break;
      case GgmlType::F16:
        y[r] = dot_float_row<GgmlType::F16>(row, x, K);
        break;
      default:
        y[r] = dot_float_row<GgmlType::BF16>(row, x, K);
        break;
    }
  }
}

// ---- unpacking weight rows for the tiled kernel (WeightTile layout) -----------------------------

// Σ of 32 signed bytes, and of their first 16.
inline void sum_i8(__m256i v, int32_t& all, int32_t& first16) {
  const __m256i s =
      _mm256_sad_epu8(_mm256_xor_si256(v, _mm256_set1_epi8(static_cast<char>(0x80))), _mm256_setzero_si256());
  const int64_t a = _mm256_extract_epi64(s, 0) + _mm256_extract_epi64(s, 1);
  const int64_t b = _mm256_extract_epi64(s, 2) + _mm256_extract_epi64(s, 3);
  first16 = static_cast<int32_t>(a) - 128 * 16;
  all = static_cast<int32_t>(a + b) - 128 * 32;
}

inline void store_q32(int8_t* q, __m256i v) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(q), v); }

// A 32-value sub-block: store q, its scale / min coefficient and -128·Σq.
inline void put_sub32(__m256i v, float scale, float minc, int8_t* q, float* sc, float* mc, int32_t* corr) {
  store_q32(q, v);
  int32_t all, first;
  sum_i8(v, all, first);
  *sc = scale;
  *mc = minc;
  *corr = -128 * all;
}

template <int kKind>  // 0: Q4_0, 1: Q5_0, 2: Q4_1, 3: Q5_1, 4: Q8_0
void unpack_legacy(const uint8_t* row, int64_t nb, int8_t* q, float* sc, float* mc, int32_t* corr) {
  constexpr size_t kBytes[] = {sizeof(BlockQ4_0), sizeof(BlockQ5_0), sizeof(BlockQ4_1), sizeof(BlockQ5_1),
                               sizeof(BlockQ8_0)};
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kBytes[kKind];
    __m256i v;
    float m = 0.0f;
    if constexpr (kKind == 0) v = _mm256_sub_epi8(nibbles_32(blk + 2), _mm256_set1_epi8(8));
    if constexpr (kKind == 1)
      v = _mm256_sub_epi8(_mm256_or_si256(nibbles_32(blk + 6), fifth_bits(load_u32(blk + 2))), _mm256_set1_epi8(16));
    if constexpr (kKind == 2) v = nibbles_32(blk + 4);
    if constexpr (kKind == 3) v = _mm256_or_si256(nibbles_32(blk + 8), fifth_bits(load_u32(blk + 4)));
    if constexpr (kKind == 4) v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    if constexpr (kKind == 2 || kKind == 3) m = half_to_float(blk + 2);
    put_sub32(v, half_to_float(blk), m, q + 32 * b, sc + b, mc + b, corr + b);
  }
}

template <bool kFive>
void unpack_q4q5_k(const uint8_t* row, int64_t nsb, int8_t* q, float* sc, float* mc, int32_t* corr) {
  constexpr size_t kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  constexpr size_t kQs = kFive ? 48 : 16;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = row + sb * kBytes;
    const float d = half_to_float(blk), dmin = half_to_float(blk + 2);
    [[maybe_unused]] __m256i qh;
    if constexpr (kFive) qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 16));
    __m256i sc_v, mn_v;
    k4_scales_mins(blk + 4, sc_v, mn_v);
    alignas(32) int32_t scales[8], mins[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(scales), sc_v);
    _mm256_store_si256(reinterpret_cast<__m256i*>(mins), mn_v);
    for (int s = 0; s < 8; ++s) {
      const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + kQs + 32 * (s / 2)));
      __m256i v = _mm256_and_si256(s % 2 ? _mm256_srli_epi16(qs, 4) : qs, m4);
      if constexpr (kFive) {
        const __m256i bit = _mm256_set1_epi8(static_cast<char>(1 << s));
        v = _mm256_or_si256(
            v, _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit), _mm256_set1_epi8(0x10)));
      }
      const int64_t at = sb * 8 + s;
      put_sub32(v, d * static_cast<float>(scales[s]), -dmin * static_cast<float>(mins[s]), q + 32 * at, sc + at,
                mc + at, corr + at);
    }
  }
}

void unpack_q6_k(const uint8_t* row, int64_t nsb, int8_t* q, float* sc, float* mc, int32_t* corr) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30), k32 = _mm256_set1_epi8(32);
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = row + sb * sizeof(BlockQ6_K);
    const auto* scales = reinterpret_cast<const int8_t*>(blk + 192);
    const float d = half_to_float(blk + 208);
    for (int h = 0; h < 2; ++h) {
      const __m256i ql0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h));
      const __m256i ql1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 64 * h + 32));
      const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 128 + 32 * h));
      const __m256i v[4] = {_mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m2)),
                            _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m2)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m2)),
                            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                            _mm256_and_si256(_mm256_srli_epi16(qh, 2), m2))};
      for (int k = 0; k < 4; ++k) {
        const __m256i w = _mm256_sub_epi8(v[k], k32);
        const int64_t at = sb * 16 + 8 * h + 2 * k;  // 16-value sub-block index
        store_q32(q + 16 * at, w);
        int32_t all, first;
        sum_i8(w, all, first);
        sc[at] = d * static_cast<float>(scales[8 * h + 2 * k]);
        sc[at + 1] = d * static_cast<float>(scales[8 * h + 2 * k + 1]);
        mc[at] = mc[at + 1] = 0.0f;
        corr[at] = -128 * first;
        corr[at + 1] = -128 * (all - first);
      }
    }
  }
}

void unpack_row_x86(unicorn::GgmlType type, const uint8_t* src, int64_t K, int8_t* q, float* sc, float* mc,
                    int32_t* corr) {
  using unicorn::GgmlType;
  const int64_t nb = K / 32, nsb = K / 256;
  switch (type) {
    case GgmlType::Q4_0:
      return unpack_legacy<0>(src, nb, q, sc, mc, corr);
    case GgmlType::Q5_0:
      return unpack_legacy<1>(src, nb, q, sc, mc, corr);
    case GgmlType::Q4_1:
      return unpack_legacy<2>(src, nb, q, sc, mc, corr);
    case GgmlType::Q5_1:
      return unpack_legacy<3>(src, nb, q, sc, mc, corr);
    case GgmlType::Q8_0:
      return unpack_legacy<4>(src, nb, q, sc, mc, corr);
    case GgmlType::Q4_K:
      return unpack_q4q5_k<false>(src, nsb, q, sc, mc, corr);
    case GgmlType::Q5_K:
      return unpack_q4q5_k<true>(src, nsb, q, sc, mc, corr);
    case GgmlType::Q6_K:
      return unpack_q6_k(src, nsb, q, sc, mc, corr);
    default:
      return unicorn::unpack_row(type, src, K, q, sc, mc, corr);  // Q2_K, Q3_K
  }
}

// ---- activation quantization (same rounding as act_quant.cpp: round half to even) ---------------

// 32 floats -> 32 int8 (in a vector); returns d, writes Σq and Σ of the first 16.
inline float quantize_32(const float* x, __m256i& out, int32_t& sum, int32_t& first16) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 v[4];
  for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(x + 8 * i);
  __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v[0]), _mm256_andnot_ps(sign, v[1])),
                           _mm256_max_ps(_mm256_andnot_ps(sign, v[2]), _mm256_andnot_ps(sign, v[3])));
  __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
  m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
  const float amax = _mm_cvtss_f32(m4);
  const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
  const __m256 idv = _mm256_set1_ps(id);
  __m256i q[4];
  for (int i = 0; i < 4; ++i) q[i] = _mm256_cvtps_epi32(_mm256_mul_ps(v[i], idv));
  const __m256i lo = _mm256_add_epi32(q[0], q[1]), all = _mm256_add_epi32(lo, _mm256_add_epi32(q[2], q[3]));
  auto hsum_i = [](__m256i s) {
    __m128i t = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0x4E));
    t = _mm_add_epi32(t, _mm_shuffle_epi32(t, 0xB1));
    return _mm_cvtsi128_si32(t);
  };
  sum = hsum_i(all);
  first16 = hsum_i(lo);
  // packs interleave 128-bit lanes; the permute restores value order
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3]));
  out = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  return amax / 127.0f;
}

void quantize_row_x86(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum) {
  for (int64_t b = 0; b < K / 32; ++b) {
    __m256i v;
    int32_t first;
    d[b] = quantize_32(x + 32 * b, v, sum[b], first);
    store_q32(q + 32 * b, v);
  }
}

void pack_panel_x86(const float* x, int64_t ldx, int64_t K, int64_t T, int64_t g0, int64_t g1, PanelBlock* blocks) {
  constexpr int G = PanelBlock::kTokens;
  const int64_t nblocks = K / 32;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80));
  for (int64_t g = g0; g < g1; ++g) {
    PanelBlock* pb = blocks + g * nblocks;
    for (int t = 0; t < G; ++t) {
      const int64_t tok = g * G + t;
      for (int64_t b = 0; b < nblocks; ++b) {
        PanelBlock& blk = pb[b];
        __m256i v = _mm256_setzero_si256();
        int32_t sum = 0, first = 0;
        float d = 0.0f;
        if (tok < T) d = quantize_32(x + tok * ldx + 32 * b, v, sum, first);
        alignas(32) uint32_t quads[8];
        _mm256_store_si256(reinterpret_cast<__m256i*>(quads), _mm256_xor_si256(v, flip));
        for (int j = 0; j < 8; ++j) std::memcpy(blk.xu[j] + 4 * t, &quads[j], 4);
        blk.dx[t] = d;
        blk.sx32[t] = d * static_cast<float>(sum);
        blk.sx16[0][t] = d * static_cast<float>(first);
        blk.sx16[1][t] = d * static_cast<float>(sum - first);
      }
    }
  }
}

}  // namespace
