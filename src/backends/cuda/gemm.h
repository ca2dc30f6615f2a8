// The prefill matmul y[T, N] = x[T, K] · wᵀ (f32 in and out) for T > 8 tokens. Built with cuBLAS,
// it runs on tensor cores with f32 accumulation. Quantized and F16 weights are decoded to f16 a
// chunk of rows at a time (at most max_chunk_elements values, 64 MiB by default) and the
// activations rounded once to f16 after scaling by a power of two chosen on the device (no
// overflow; the GEMM's alpha undoes it); each chunk is one cublasGemmEx writing its columns of y.
// BF16 weights are used as uploaded, against bf16 activations; F32 weights run an f32 cuBLAS GEMM
// (no tensor cores, full precision). Built without cuBLAS, run() is the tiled f32 kernel.
// Every step is queued on the given stream; nothing waits for it, except that growing a scratch
// buffer (cudaFree / cudaMalloc) and the first call (creating the handle) synchronize the device.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>
#include <functional>

#include "backends/cuda/device_buffer.h"
#include "backends/cuda/device_weight.h"

struct cublasContext;  // cublasHandle_t, without the cuBLAS headers

namespace unicorn::cuda {

// True when run() rounds operands to 16-bit floats for this weight type (a cuBLAS build and any type but
// F32): its results then differ from f32 math by ~1e-5 in normalized MSE.
bool gemm_rounds_to_bf16(GgmlType weight);

class Gemm {
 public:
  static constexpr int64_t kDefaultChunkElements = int64_t{32} << 20;  // 64 MiB of f16

  explicit Gemm(int64_t max_chunk_elements = kDefaultChunkElements);
  ~Gemm();
  Gemm(const Gemm&) = delete;
  Gemm& operator=(const Gemm&) = delete;

  // y [T, w.rows] = x [T, w.cols] · wᵀ. Throws Error naming the failed launch or cuBLAS call.
  void run(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s);

  // How scratch buffers grow (the backend's grow: it forgets recordings that used a moved
  // buffer). Unset: DeviceBuffer::reserve.
  void set_grow(std::function<void(DeviceBuffer&, size_t)> grow) { grow_ = std::move(grow); }

  // The rounded activations are kept for the next call with the same x (q, k and v share their
  // input); the backend calls this for memory an op writes.
  void forget_inputs() { cached_x_ = nullptr; }
  void forget_input(const float* lo, const float* hi) {
    if (cached_x_ && cached_x_ < hi && lo < cached_x_ + cached_n_) cached_x_ = nullptr;
  }

  // Weight rows decoded per chunk for K columns: max_chunk_elements / K, rounded down to a
  // multiple of 128 (cuBLAS tile height) when at least 128, never below 1.
  int64_t chunk_rows(int64_t K) const;

 private:
  void bind(cudaStream_t s);
  void ensure(DeviceBuffer& b, size_t bytes) {
    if (grow_)
      grow_(b, bytes);
    else
      b.reserve(bytes);
  }

  int64_t max_chunk_elements_;
  cublasContext* handle_ = nullptr;  // created on first use
  cudaStream_t bound_ = nullptr;     // the stream the handle runs on, once bound_set_
  bool bound_set_ = false;
  DeviceBuffer weight_16_;  // one decoded chunk [chunk_rows, K], f16
  DeviceBuffer act_16_;     // x rounded to bf16 or (scaled) f16 [T, K]
  DeviceBuffer scalars_;    // GEMM factors in device memory (gemm.cpp)
  DeviceBuffer workspace_;
  std::function<void(DeviceBuffer&, size_t)> grow_;
  const float* cached_x_ = nullptr;  // act_16_ holds x rounded to f16 ([cached_n_] values) when set
  int64_t cached_n_ = 0;             // cuBLAS workspace, ours so that nothing allocates per call
};

}  // namespace unicorn::cuda
