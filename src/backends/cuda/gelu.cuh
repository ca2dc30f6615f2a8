// GeGLU's activation (matvec_quant.cu's and matvec_mma.cu's fused epilogues, elementwise.cu's
// gelu_mul): the tanh approximation of GELU (spec §2.5).
#pragma once

namespace unicorn::cuda {

__device__ __forceinline__ float gelu_tanh(float x) {
  constexpr float kSqrt2OverPi = 0.7978845608028654f;
  return 0.5f * x * (1.0f + tanhf(kSqrt2OverPi * (x + 0.044715f * x * x * x)));
}

}  // namespace unicorn::cuda
