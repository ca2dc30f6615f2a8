// Helpers of the CUDA tests (test_cuda_ops.cpp, test_cuda_matvec_layouts.cpp,
// test_cuda_attention.cpp): a seeded random stream, random inputs, norm weights, NMSE, host/device
// copies and the fixture with a CUDA and a reference CPU backend.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <span>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_backend.h"
#include "test_support.h"
#ifdef UNICORN_HAVE_CUDA
#include "backends/cuda/cuda_device.h"
#endif

namespace unicorn::cudatest {

inline std::unique_ptr<Backend> cuda_backend_or_null() {
#ifdef UNICORN_HAVE_CUDA
  if (cuda_device_count() > 0) return make_cuda_backend(0);
#endif
  return nullptr;
}

inline int cpu_threads() { return static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// splitmix64: fast, seeded, the same stream on every machine.
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  float uniform() { return static_cast<float>(next() >> 40) / static_cast<float>(1 << 24) * 2.0f - 1.0f; }  // [-1, 1)
};

inline std::vector<float> random_floats(size_t n, Rng& rng, float scale = 1.0f) {
  std::vector<float> v(n);
  for (float& x : v) x = rng.uniform() * scale;
  return v;
}

// A 1-row F32 weight over v's values (norm weights); v must outlive the backend's copy of it.
inline WeightTensor f32_weight(const char* name, const std::vector<float>& v) {
  return WeightTensor{name, GgmlType::F32, 1, static_cast<int64_t>(v.size()),
                      reinterpret_cast<const uint8_t*>(v.data())};
}

// Norm weights in their stored form (1 + w, spec §2.2), w in [-0.5, 0.5).
inline std::vector<float> stored_norm(int64_t n, Rng& rng) {
  std::vector<float> v = random_floats(static_cast<size_t>(n), rng, 0.5f);
  for (float& x : v) x += 1.0f;
  return v;
}

// ‖got − want‖₂² / ‖want‖₂² (the squared error itself where want is all zero).
inline double nmse(std::span<const float> got, std::span<const float> want) {
  const test::ErrorEnergy e = test::error_energy(got, want);
  return e.ref > 0 ? e.err / e.ref : e.err;
}

inline std::vector<float> to_host(Backend& b, const Act& a) {
  std::vector<float> v(static_cast<size_t>(a.rows() * a.cols()));
  b.copy_to_host(a, v.data());
  return v;
}

inline Act upload(Backend& b, const std::vector<float>& v, int64_t rows, int64_t cols) {
  Act a = b.alloc(rows, cols);
  b.copy_from_host(v.data(), a);
  return a;
}

class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    gpu = cuda_backend_or_null();
    if (!gpu) GTEST_SKIP() << "skipped: no CUDA device";
    cpu = std::make_unique<CpuBackend>(cpu_threads(), MatmulPrecision::Exact);  // f32 reference matmuls
  }
  std::unique_ptr<Backend> gpu;
  std::unique_ptr<CpuBackend> cpu;
};

}  // namespace unicorn::cudatest
