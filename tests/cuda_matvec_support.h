// Helpers of the CUDA matmul tests (test_cuda_ops.cpp, test_cuda_matvec_layouts.cpp): weights
// with their own random bytes, the error bar of a matmul path, the matvec's process-wide layout
// switches for a scope, and one token through the three kinds of matvec launch.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <span>
#include <type_traits>
#include <vector>

#include <fmt/format.h>

#include "core/half.h"
#include "cuda_test_support.h"
#include "quant/blocks.h"
#include "quant/codec.h"
#ifdef UNICORN_HAVE_CUDA
#include "backends/cuda/kernels.h"
#endif

namespace unicorn::cudatest {

// Whether the CUDA matmul of T tokens multiplies int8-quantized activations (the T <= 8 matvec of
// quantized weights, or the tensor-core small-batch matmul): NMSE <= 5e-4 against f32 math.
inline bool int8_activations(GgmlType t, int64_t in, int64_t T) {
#ifdef UNICORN_HAVE_CUDA
  if (cuda::matmul_mma_supports(t, in, T)) return true;
#else
  (void)in;
#endif
  return T <= 8 && traits(t).quantized;
}

// Sets process-wide switches of the CUDA matvec (kernels.h) for a scope and puts each back when
// the scope ends, even if a check throws. Without CUDA it does nothing.
class MatvecSwitches {
 public:
  MatvecSwitches() = default;
  MatvecSwitches(const MatvecSwitches&) = delete;
  MatvecSwitches& operator=(const MatvecSwitches&) = delete;
  ~MatvecSwitches() {
    for (auto it = undo_.rbegin(); it != undo_.rend(); ++it) (*it)();
  }
  // Whether a one-token row pair shares its activation loads.
  void shared_act(bool on) {
#ifdef UNICORN_HAVE_CUDA
    set(cuda::matvec_shared_act(), on, [](bool v) { cuda::set_matvec_shared_act(v); });
#else
    (void)on;
#endif
  }
  // One-token row pairs of a K-quant q/k/v mix sharing their activation loads (kernels.h: 3 the
  // default, 0-2 none).
  void q4k_pairs(int mode) {
#ifdef UNICORN_HAVE_CUDA
    set(cuda::matvec_q4k_pairs(), mode, [](int v) { cuda::set_matvec_q4k_pairs(v); });
#else
    (void)mode;
#endif
  }
  // Warps per Q4_0 / Q4_K row of 128-192 items at one token (2 or 4).
  void wide_warps(int warps) {
#ifdef UNICORN_HAVE_CUDA
    set(cuda::matvec_wide_warps(), warps, [](int v) { cuda::set_matvec_wide_warps(v); });
#else
    (void)warps;
#endif
  }
  // Warps per 128-item Q4_0 row pair at one token (0: the general rule).
  void o_warps(int warps) {
#ifdef UNICORN_HAVE_CUDA
    set(cuda::matvec_o_warps(), warps, [](int v) { cuda::set_matvec_o_warps(v); });
#else
    (void)warps;
#endif
  }
  // The cap on warps per one-token row: n items per lane (0: no cap).
  void item_warps(int n) {
#ifdef UNICORN_HAVE_CUDA
    set(cuda::matvec_item_warps(), n, [](int v) { cuda::set_matvec_item_warps(v); });
#else
    (void)n;
#endif
  }
  // 2-8 tokens on int8 tensor cores (true: from 2 tokens, every format) or through the dp4a
  // matvec (false).
  void mma(bool on) {
#ifdef UNICORN_HAVE_CUDA
    set(cuda::matvec_mma_min_tokens(), on ? 2 : 0, [](int v) { cuda::set_matvec_mma_min_tokens(v); });
    set(cuda::matvec_mma_all_formats(), on, [](bool v) { cuda::set_matvec_mma_all_formats(v); });
#else
    (void)on;
#endif
  }
  // Groups of weight loads in flight per warp in matvec_mma (-1 by format, 0 one, 1 two).
  void mma_pipeline(int mode) {
#ifdef UNICORN_HAVE_CUDA
    set(cuda::matvec_mma_pipeline(), mode, [](int v) { cuda::set_matvec_mma_pipeline(v); });
#else
    (void)mode;
#endif
  }
  // 4 rows per warp for single weights of short rows with at least `min_rows` rows (0: off).
  void quad_rows(int64_t min_rows) {
#ifdef UNICORN_HAVE_CUDA
    set(cuda::matvec_quad_rows(), min_rows, [](int64_t v) { cuda::set_matvec_quad_rows(v); });
#else
    (void)min_rows;
#endif
  }

 private:
  // Sets a switch to `on` now and back to `was` when the scope ends.
  template <class T>
  void set(T was, T on, std::type_identity_t<void (*)(T)> setter) {
    undo_.push_back([setter, was] { setter(was); });
    setter(on);
  }
  std::vector<std::function<void()>> undo_;
};

// Token counts of the fused-matmul tests; `unshared` runs that count with an activation load per
// row instead of one per row pair.
struct TokenCase {
  int64_t T;
  bool unshared = false;
};

// A weight with its own bytes. Quantized types get random blocks (every bit pattern is a valid
// block) with sane scales; float types get random values.
struct HostWeight {
  std::vector<uint8_t> bytes;
  WeightTensor t;
};

inline void set_f16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

inline HostWeight random_weight(GgmlType type, int64_t rows, int64_t cols, Rng& rng, int copies = 1) {
  HostWeight w;
  w.t.name = fmt::format("test.{}.{}x{}", type_name(type), rows, cols);
  w.t.type = type;
  w.t.rows = rows;
  w.t.cols = cols;
  const size_t one = w.t.nbytes();
  w.bytes.resize(one * static_cast<size_t>(copies));
  if (!traits(type).quantized) {
    const std::vector<float> v = random_floats(static_cast<size_t>(rows * cols), rng, 0.5f);
    for (int64_t r = 0; r < rows; ++r)
      quantize_row(type, v.data() + r * cols, w.bytes.data() + w.t.row_stride() * r, cols);
  } else {
    for (size_t i = 0; i + 8 <= one; i += 8) {
      const uint64_t x = rng.next();
      std::memcpy(w.bytes.data() + i, &x, 8);
    }
    const size_t bb = traits(type).block_bytes;
    for (size_t b = 0; b < one / bb; ++b) {
      uint8_t* blk = w.bytes.data() + b * bb;
      const float d = 0.01f * (1.0f + 0.5f * rng.uniform());
      switch (type) {
        case GgmlType::Q4_K:
        case GgmlType::Q5_K:
          set_f16(blk + offsetof(BlockQ4_K, d), d);
          set_f16(blk + offsetof(BlockQ4_K, dmin), 0.5f * d);
          break;
        case GgmlType::Q6_K:
          set_f16(blk + offsetof(BlockQ6_K, d), 0.05f * d);
          break;
        case GgmlType::Q4_1:
          set_f16(blk + offsetof(BlockQ4_1, d), d);
          set_f16(blk + offsetof(BlockQ4_1, m), -8.0f * d);
          break;
        case GgmlType::Q5_1:
          set_f16(blk + offsetof(BlockQ5_1, d), d);
          set_f16(blk + offsetof(BlockQ5_1, m), -16.0f * d);
          break;
        default:
          set_f16(blk, d);
          break;  // the 32-value blocks start with d
      }
    }
  }
  for (int c = 1; c < copies; ++c) std::memcpy(w.bytes.data() + one * static_cast<size_t>(c), w.bytes.data(), one);
  w.t.data = w.bytes.data();
  return w;
}

// One token x through w[0] alone, w[1..3] as q, k, v in one launch and w[4..5] as a GeGLU pair:
// the five outputs (y, q, k, v, the GeGLU's).
inline std::vector<std::vector<float>> matvec_trio(Backend& b, std::span<HostWeight* const> w,
                                                   const std::vector<float>& x) {
  auto out = [&](size_t i) { return b.alloc(1, w[i]->t.rows); };
  Act xa = upload(b, x, 1, w[0]->t.cols), y = out(0), q = out(1), k = out(2), v = out(3), gate = out(4), up = out(5);
  b.matmul(w[0]->t, xa, y);
  const WeightTensor* ws[] = {&w[1]->t, &w[2]->t, &w[3]->t};
  Act* ys[] = {&q, &k, &v};
  b.matmul_many(ws, xa, ys);
  b.matmul_geglu(w[4]->t, w[5]->t, xa, gate, up);
  return {to_host(b, y), to_host(b, q), to_host(b, k), to_host(b, v), to_host(b, gate)};
}

}  // namespace unicorn::cudatest
