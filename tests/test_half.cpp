#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/half.h"

using namespace unicorn;

TEST(Half, F16RoundTripsEveryFiniteHalf) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if (((h >> 10) & 0x1f) == 0x1f) continue;  // inf/nan
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    EXPECT_EQ(f32_to_f16(f), static_cast<uint16_t>(h)) << h;
  }
}

TEST(Half, F16RoundsToNearestEven) {
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 1.0f / 2048)), 1.0f);  // tie -> even
  EXPECT_EQ(f16_to_f32(f32_to_f16(1.0f + 3.0f / 2048)), 1.0f + 2.0f / 1024);
  EXPECT_EQ(f16_to_f32(f32_to_f16(65520.0f)), INFINITY);
  EXPECT_EQ(f16_to_f32(f32_to_f16(5.9604645e-08f)), 5.9604645e-08f);  // smallest subnormal
}

TEST(Half, Bf16RoundsEmbeddingScaleOf27B) {
  // gemma3-spec.md §2.1: sqrt(5376) = 73.3212 rounds to 73.5 in bf16.
  EXPECT_EQ(round_to_bf16(std::sqrt(5376.0f)), 73.5f);
  EXPECT_EQ(round_to_bf16(std::sqrt(1152.0f)), 34.0f);
  EXPECT_EQ(round_to_bf16(std::sqrt(2560.0f)), 50.5f);
}
