// TEMPORARY stand-in for quantize_row_weighted until the importance-aware K-quant / IQ4_XS
// quantizers are merged (the lead deletes this file then). Without importance it is exactly
// quantize_row. With importance, the 4- and 5-bit 32-value blocks (Q4_0, Q5_0) get a small
// weighted scale search so that the imatrix pipeline can be measured end to end; every other
// encodable type ignores the weights.
#include <cmath>
#include <cstring>
#include <limits>
#include <tuple>

#include "core/error.h"
#include "core/half.h"
#include "quant/blocks.h"
#include "quant/codec.h"

namespace unicorn {
namespace {

// Levels q in [-nmax, nmax-1] (value = d*q). Tries scales that map the largest-magnitude value
// to levels near -nmax, plus the weighted least-squares scale of each try, and keeps the scale
// with the smallest importance-weighted error. Returns d (already rounded to f16) and the levels.
float search_scale(const float* x, const float* w, int nmax, int* q) {
  float amax = 0, signed_max = 0;
  for (int j = 0; j < kQK32; ++j)
    if (std::fabs(x[j]) > amax) {
      amax = std::fabs(x[j]);
      signed_max = x[j];
    }
  if (amax == 0) {
    for (int j = 0; j < kQK32; ++j) q[j] = 0;
    return 0;
  }
  auto levels = [&](float d, int* out) {
    double err = 0, sxq = 0, sqq = 0;
    const float id = 1.0f / d;
    for (int j = 0; j < kQK32; ++j) {
      int l = static_cast<int>(std::nearbyint(x[j] * id));
      l = l < -nmax ? -nmax : (l > nmax - 1 ? nmax - 1 : l);
      out[j] = l;
      const double e = x[j] - d * static_cast<float>(l);
      err += w[j] * e * e;
      sxq += static_cast<double>(w[j]) * x[j] * l;
      sqq += static_cast<double>(w[j]) * l * l;
    }
    return std::tuple{err, sqq > 0 ? sxq / sqq : 0.0};
  };
  double best = std::numeric_limits<double>::infinity();
  float best_d = 0;
  int trial[kQK32];
  // Evaluates scale d (rounded to f16 as stored); returns its least-squares refinement.
  auto consider = [&](float d) {
    d = f16_to_f32(f32_to_f16(d));
    if (d == 0 || !std::isfinite(d)) return 0.0;
    const auto [err, ls] = levels(d, trial);
    if (err < best) {
      best = err;
      best_d = d;
      std::memcpy(q, trial, sizeof trial);
    }
    return ls;
  };
  for (int step = -8; step <= 8; ++step) {
    const float c = static_cast<float>(nmax) + 0.125f * static_cast<float>(step);
    const double ls = consider(signed_max / -c);
    if (ls != 0) consider(static_cast<float>(ls));
  }
  return best_d;
}

void encode_q4_0(const float* x, const float* w, BlockQ4_0& b) {
  int q[kQK32];
  b.d = f32_to_f16(search_scale(x, w, 8, q));
  for (int j = 0; j < kQK32 / 2; ++j)
    b.qs[j] = static_cast<uint8_t>((q[j] + 8) | ((q[j + 16] + 8) << 4));
}

void encode_q5_0(const float* x, const float* w, BlockQ5_0& b) {
  int q[kQK32];
  b.d = f32_to_f16(search_scale(x, w, 16, q));
  uint32_t qh = 0;
  for (int j = 0; j < kQK32; ++j) qh |= static_cast<uint32_t>(((q[j] + 16) >> 4) & 1) << j;
  for (int j = 0; j < kQK32 / 2; ++j)
    b.qs[j] = static_cast<uint8_t>(((q[j] + 16) & 15) | (((q[j + 16] + 16) & 15) << 4));
  std::memcpy(b.qh, &qh, 4);
}

template <typename Block, typename Encode>
void encode_blocks(const float* src, void* dst, int64_t n, const float* importance, Encode encode) {
  auto* bytes = static_cast<unsigned char*>(dst);
  float w[kQK32];
  for (int64_t i = 0; i < n / kQK32; ++i) {
    const float* x = src + i * kQK32;
    double sum = 0;
    for (int j = 0; j < kQK32; ++j) sum += importance[i * kQK32 + j];
    // A block whose inputs were never seen (all weights 0) falls back to plain squared error.
    for (int j = 0; j < kQK32; ++j) w[j] = sum > 0 ? importance[i * kQK32 + j] : 1.0f;
    Block b{};
    encode(x, w, b);
    std::memcpy(bytes + i * sizeof(Block), &b, sizeof(Block));
  }
}

}  // namespace

void quantize_row_weighted(GgmlType type, const float* src, void* dst, int64_t n, const float* importance) {
  if (importance == nullptr || n == 0 || (type != GgmlType::Q4_0 && type != GgmlType::Q5_0)) {
    quantize_row(type, src, dst, n);  // validates type and length, throws for the rest
    return;
  }
  if (n % kQK32 != 0) quantize_row(type, src, dst, n);  // throws the usual partial-block error
  if (type == GgmlType::Q4_0)
    encode_blocks<BlockQ4_0>(src, dst, n, importance, encode_q4_0);
  else
    encode_blocks<BlockQ5_0>(src, dst, n, importance, encode_q5_0);
}

}  // namespace unicorn
