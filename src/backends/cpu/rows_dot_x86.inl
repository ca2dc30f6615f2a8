// Row-dot kernels (decode path: weight rows read in place) written once for x86 SIMD and
// compiled twice: by kernels_avx2.cpp (AVX2+FMA+F16C) and kernels_avx512.cpp (which adds
// AVX-512 VNNI, used here through its 256-bit dot-product-of-4 instruction). The includer
// includes <immintrin.h>, <cstring>, matmul_kernels.h and quant/blocks.h, then includes this
// file inside its own ISA namespace; everything here is TU-local, so the copies never merge.
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

// 32 bits -> 32 bytes, byte j = 0x10 where bit j is set (bit 4 of Q5 quants).
inline __m256i fifth_bits(uint32_t qh) {
  const __m256i shuf = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101, 0x0202020202020202,
                                          0x0303030303030303);
  const __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(static_cast<int32_t>(qh)), shuf);
  const __m256i bit = _mm256_set1_epi64x(0x8040201008040201);
  const __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

inline __m256i load_x(const QuantRow& x, int64_t b) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x.q + b * unicorn::kActBlock));
}

// ---- 32-value blocks ----------------------------------------------------------------------------

float dot_q8_0(const uint8_t* row, const QuantRow& x, int64_t nb) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t b = 0;
  auto one = [&](int64_t i, __m256 acc) {
    const uint8_t* blk = row + i * 34;
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i p = dot_u8s8(_mm256_setzero_si256(), _mm256_abs_epi8(w), _mm256_sign_epi8(load_x(x, i), w));
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(half_to_float(blk) * x.d[i]), acc);
  };
  for (; b + 2 <= nb; b += 2) {
    acc0 = one(b, acc0);
    acc1 = one(b + 1, acc1);
  }
  if (b < nb) acc0 = one(b, acc0);
  return hsum(_mm256_add_ps(acc0, acc1));
}

// Q4_0 / Q5_0 (offset weights): Σ (q - off)·x = Σ q·x - off·Σx, all in integers.
template <bool kFive>
float dot_q4q5_0(const uint8_t* row, const QuantRow& x, int64_t nb) {
  constexpr size_t kBytes = kFive ? sizeof(BlockQ5_0) : sizeof(BlockQ4_0);
  constexpr int kOff = kFive ? 16 : 8;
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kBytes;
    __m256i q = nibbles_32(blk + (kFive ? 6 : 2));
    if constexpr (kFive) q = _mm256_or_si256(q, fifth_bits(load_u32(blk + 2)));
    const __m256i p = dot_u8s8(lane0(-kOff * x.sum[b]), q, load_x(x, b));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(half_to_float(blk) * x.d[b]), acc);
  }
  return hsum(acc);
}

// Q4_1 / Q5_1: y = d·q + m, so Σ y·x = d·Σ q·x + m·Σx.
template <bool kFive>
float dot_q4q5_1(const uint8_t* row, const QuantRow& x, int64_t nb) {
  constexpr size_t kBytes = kFive ? sizeof(BlockQ5_1) : sizeof(BlockQ4_1);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = row + b * kBytes;
    __m256i q = nibbles_32(blk + (kFive ? 8 : 4));
    if constexpr (kFive) q = _mm256_or_si256(q, fifth_bits(load_u32(blk + 4)));
    const __m256i p = dot_u8s8(_mm256_setzero_si256(), q, load_x(x, b));
    acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(half_to_float(blk) * x.d[b]), acc);
    mins += half_to_float(blk + 2) * x.d[b] * static_cast<float>(x.sum[b]);
  }
  return hsum(acc) + mins;
}

// ---- K-quants (256-value super-blocks; each 32-value activation block inside one) -------------

// Q4_K / Q5_K: sub-block s (32 values) uses qs[32(s/2) ..] low (even s) or high nibbles; Q5_K's
// bit 4 of value l in sub-block s is bit s of qh[l].
template <bool kFive>
float dot_q4q5_k(const uint8_t* row, const QuantRow& x, int64_t nsb) {
  constexpr size_t kBytes = kFive ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
  constexpr size_t kQs = kFive ? 48 : 16;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float mins = 0.0f;
  for (int64_t sb = 0; sb < nsb; ++sb) {
    const uint8_t* blk = row + sb * kBytes;
    const float d = half_to_float(blk), dmin = half_to_float(blk + 2);
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
          q[h] = _mm256_or_si256(q[h], _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(qh, bit), bit),
                                                        _mm256_set1_epi8(0x10)));
        }
        const int64_t xb = sb * 8 + s;
        const ScaleMin sm = k4_scale_min(blk + 4, s);
        const __m256i p = dot_u8s8(_mm256_setzero_si256(), q[h], load_x(x, xb));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(d * static_cast<float>(sm.scale) * x.d[xb]), acc);
        mins += dmin * static_cast<float>(sm.min) * x.d[xb] * static_cast<float>(x.sum[xb]);
      }
    }
  }
  return hsum(acc) - mins;
}

// Q6_K: per 128-value half h, output group k (32 values) = 4 low bits from ql (bytes 0..31 for
// k = 0,2, 32..63 for k = 1,3; high nibble for k >= 2) and 2 high bits from qh at bits 2k;
// stored +32. Scales per 16 values: lanes 0..3 of a block's dot take one, lanes 4..7 the next.
float dot_q6_k(const uint8_t* row, const QuantRow& x, int64_t nsb) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(0x30);
  const __m256i k32 = _mm256_set1_epi8(32);
  __m256 acc = _mm256_setzero_ps();
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
        const __m256i xv = load_x(x, xb);
        const __m256i p = _mm256_sub_epi32(dot_u8s8(_mm256_setzero_si256(), q[k], xv),
                                           dot_u8s8(_mm256_setzero_si256(), k32, xv));
        const float s = d * x.d[xb];
        const int j = 8 * h + 2 * k;
        const __m256 sv = _mm256_set_m128(_mm_set1_ps(s * static_cast<float>(scales[j + 1])),
                                          _mm_set1_ps(s * static_cast<float>(scales[j])));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), sv, acc);
      }
    }
  }
  return hsum(acc);
}

template <float (*Dot)(const uint8_t*, const QuantRow&, int64_t)>
void rows_of(const uint8_t* w, size_t stride, int64_t nrows, int64_t n, const QuantRow& x, float* y) {
  for (int64_t r = 0; r < nrows; ++r) y[r] = Dot(w + static_cast<size_t>(r) * stride, x, n);
}

void rows_dot_q8_x86(unicorn::GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K,
                     const QuantRow& x, float* y) {
  using unicorn::GgmlType;
  const int64_t nb = K / 32, nsb = K / 256;
  switch (type) {
    case GgmlType::Q8_0: return rows_of<dot_q8_0>(w, stride, nrows, nb, x, y);
    case GgmlType::Q4_0: return rows_of<dot_q4q5_0<false>>(w, stride, nrows, nb, x, y);
    case GgmlType::Q5_0: return rows_of<dot_q4q5_0<true>>(w, stride, nrows, nb, x, y);
    case GgmlType::Q4_1: return rows_of<dot_q4q5_1<false>>(w, stride, nrows, nb, x, y);
    case GgmlType::Q5_1: return rows_of<dot_q4q5_1<true>>(w, stride, nrows, nb, x, y);
    case GgmlType::Q4_K: return rows_of<dot_q4q5_k<false>>(w, stride, nrows, nsb, x, y);
    case GgmlType::Q5_K: return rows_of<dot_q4q5_k<true>>(w, stride, nrows, nsb, x, y);
    case GgmlType::Q6_K: return rows_of<dot_q6_k>(w, stride, nrows, nsb, x, y);
    default: return unicorn::rows_dot_q8_scalar(type, w, stride, nrows, K, x, y);  // Q2_K, Q3_K
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
    unicorn::rows_dot_f32_scalar(kType, row + i * (kType == unicorn::GgmlType::F32 ? 4 : 2), 0, 1, K - i, x + i,
                                 &tail);
    s += tail;
  }
  return s;
}

void rows_dot_f32_x86(unicorn::GgmlType type, const uint8_t* w, size_t stride, int64_t nrows, int64_t K,
                      const float* x, float* y) {
  using unicorn::GgmlType;
  for (int64_t r = 0; r < nrows; ++r) {
    const uint8_t* row = w + static_cast<size_t>(r) * stride;
    switch (type) {
      case GgmlType::F32: y[r] = dot_float_row<GgmlType::F32>(row, x, K); break;
      case GgmlType::F16: y[r] = dot_float_row<GgmlType::F16>(row, x, K); break;
      default: y[r] = dot_float_row<GgmlType::BF16>(row, x, K); break;
    }
  }
}

}  // namespace
