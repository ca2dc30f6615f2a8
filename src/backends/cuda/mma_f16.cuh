// The f16 tensor-core instruction the attention kernels use (attention_prefill_mma.cu,
// attention_decode_mma.cu): D += A·B with mma.sync.m16n8k16, f16 operands and f32 accumulators
// (sm_80+). Fragments, for lane = 4 g + t: A's registers hold rows (g, g + 8) x columns (2t, 2t + 1)
// then (2t + 8, 2t + 9) as a0 = (g, 2t..), a1 = (g + 8, 2t..), a2 = (g, 2t + 8..), a3 = (g + 8,
// 2t + 8..); B's b0 = rows 2t, 2t + 1 of column g, b1 = rows 2t + 8, 2t + 9; D's d0, d1 = row g,
// columns 2t, 2t + 1 and d2, d3 = row g + 8 (PTX ISA, "Matrix Fragments for mma.m16n8k16").
#pragma once
#include <cuda_fp16.h>

#include <cstdint>

namespace unicorn::cuda {

__device__ __forceinline__ void mma_m16n8k16_f16(float* d, uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                                 uint32_t b0, uint32_t b1) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#else
  __trap();  // the kernels that use it are launched on sm_80+ only
#endif
}

// Two floats as one f16x2 register (lo in the low half), rounded to nearest.
__device__ __forceinline__ uint32_t pack_half2(float lo, float hi) {
  const __half2 h = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<const uint32_t*>(&h);
}

}  // namespace unicorn::cuda
