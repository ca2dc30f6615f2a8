// Run-time choice of the matmul kernel set from the CPU's features.
#include "backends/cpu/matmul_kernels.h"

namespace unicorn {

// Defined in kernels_avx2.cpp / kernels_avx512.cpp (compiled with those instruction sets).
extern const MatmulKernels kAvx2MatmulKernels;
extern const MatmulKernels kAvx512MatmulKernels;

namespace {
const MatmulKernels kScalarKernels{Isa::Scalar,      "scalar",   rows_dot_q8_scalar, rows_dot_f32_scalar,
                                   tile_gemm_scalar, unpack_row, quantize_act_row,   pack_act_panel};

bool cpu_has_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}
bool cpu_has_avx512() {
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
         __builtin_cpu_supports("avx512vnni");
}
}  // namespace

const MatmulKernels* matmul_kernels(Isa isa) {
  switch (isa) {
    case Isa::Scalar:
      return &kScalarKernels;
    case Isa::Avx2:
      return cpu_has_avx2() ? &kAvx2MatmulKernels : nullptr;
    case Isa::Avx512:
      return cpu_has_avx512() ? &kAvx512MatmulKernels : nullptr;
  }
  return nullptr;
}

const MatmulKernels& best_matmul_kernels() {
  static const MatmulKernels* best = [] {
    if (const MatmulKernels* k = matmul_kernels(Isa::Avx512)) return k;
    if (const MatmulKernels* k = matmul_kernels(Isa::Avx2)) return k;
    return &kScalarKernels;
  }();
  return *best;
}

}  // namespace unicorn
