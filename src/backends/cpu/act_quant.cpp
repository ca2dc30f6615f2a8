// Activation quantization for the integer matmul kernels: per 32 values, d = max|x| / 127 and
// q = round(x / d) (the Q8_0 rule, but d kept in f32), plus the block sums that the weight
// offsets and minimums need.
#include <cmath>
#include <cstring>

#include "backends/cpu/matmul_kernels.h"

namespace unicorn {
namespace {

// Quantizes 32 values; returns the scale and writes the sum of q.
float quantize_block32(const float* x, int8_t* q, int32_t& sum) {
  float amax = 0.0f;
  for (int i = 0; i < kActBlock; ++i) {
    const float a = std::fabs(x[i]);
    amax = a > amax ? a : amax;
  }
  const float d = amax / 127.0f;
  const float id = amax > 0.0f ? 127.0f / amax : 0.0f;
  int32_t s = 0;
  for (int i = 0; i < kActBlock; ++i) {
    const int v = static_cast<int>(std::nearbyint(x[i] * id));
    q[i] = static_cast<int8_t>(v > 127 ? 127 : (v < -127 ? -127 : v));
    s += q[i];
  }
  sum = s;
  return d;
}

}  // namespace

int64_t panel_groups_per_chunk(const ActPanel& p) {
  const int64_t bytes = p.nblocks * static_cast<int64_t>(sizeof(PanelBlock));
  const int64_t n = (256 << 10) / (bytes > 0 ? bytes : 1);
  return n > 0 ? n : 1;
}

void quantize_act_row(const float* x, int64_t K, int8_t* q, float* d, int32_t* sum) {
  for (int64_t b = 0; b < K / kActBlock; ++b) d[b] = quantize_block32(x + b * kActBlock, q + b * kActBlock, sum[b]);
}

void pack_act_panel(const float* x, int64_t ldx, int64_t K, int64_t T, int64_t g0, int64_t g1, PanelBlock* blocks) {
  constexpr int G = PanelBlock::kTokens;
  const int64_t nblocks = K / kActBlock;
  for (int64_t g = g0; g < g1; ++g) {
    PanelBlock* pb = blocks + g * nblocks;
    for (int t = 0; t < G; ++t) {
      const int64_t tok = g * G + t;
      for (int64_t b = 0; b < nblocks; ++b) {
        PanelBlock& blk = pb[b];
        int8_t q[kActBlock] = {};
        int32_t sum = 0;
        float d = 0.0f;
        if (tok < T) d = quantize_block32(x + tok * ldx + b * kActBlock, q, sum);
        int32_t lo = 0;
        for (int i = 0; i < 16; ++i) lo += q[i];
        for (int j = 0; j < 8; ++j)
          for (int i = 0; i < 4; ++i) blk.xu[j][4 * t + i] = static_cast<uint8_t>(q[4 * j + i] + 128);
        blk.dx[t] = d;
        blk.sx32[t] = d * static_cast<float>(sum);
        blk.sx16[0][t] = d * static_cast<float>(lo);
        blk.sx16[1][t] = d * static_cast<float>(sum - lo);
      }
    }
  }
}

}  // namespace unicorn
