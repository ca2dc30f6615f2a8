#include "backends/cuda/gemm.h"

#include <algorithm>
#include <climits>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/kernels.h"
#include "core/error.h"

#ifdef UNICORN_HAVE_CUBLAS
#include <cublas_v2.h>
#endif

namespace unicorn::cuda {

#ifdef UNICORN_HAVE_CUBLAS

namespace {

// Hopper's recommended cuBLAS workspace (the cuBLAS docs: 32 MiB for sm_90).
constexpr size_t kWorkspaceBytes = size_t{32} << 20;

void check_cublas(cublasStatus_t st, const char* op) {
  if (st != CUBLAS_STATUS_SUCCESS) fail("cuBLAS {}: {} ({})", op, cublasGetStatusName(st), cublasGetStatusString(st));
}

int as_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) fail("cuBLAS matmul: {} = {} does not fit cuBLAS's int sizes", what, v);
  return static_cast<int>(v);
}

// Row-major y [T, N] = x [T, K] · aᵀ with a [rows, K] row-major (lda elements apart) is, in
// cuBLAS's column-major terms, yᵀ [N, T] = aᵀᵀ · xᵀ: C (ldc N) = op_T(A) (lda) · B (ldb K).
// alpha_beta: (alpha, beta) in device memory (the handle is in device pointer mode).
void gemm_ex(cublasHandle_t h, const void* a, cudaDataType a_type, int64_t rows, int64_t lda, const void* x,
             cudaDataType x_type, int64_t T, int64_t K, float* y, int64_t ldc, const float* alpha_beta) {
  check_cublas(cublasGemmEx(h, CUBLAS_OP_T, CUBLAS_OP_N, as_int(rows, "rows"), as_int(T, "T"), as_int(K, "K"),
                            alpha_beta, a, a_type, as_int(lda, "lda"), x, x_type, as_int(K, "K"), alpha_beta + 1, y,
                            CUDA_R_32F, as_int(ldc, "N"), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
               "cublasGemmEx");
}

}  // namespace

bool gemm_rounds_to_bf16(GgmlType weight) { return weight != GgmlType::F32; }

Gemm::~Gemm() {
  if (handle_) cublasDestroy(handle_);
}

void Gemm::bind(cudaStream_t s) {
  if (bound_set_ && s == bound_) return;
  if (!handle_) {
    check_cublas(cublasCreate(&handle_), "cublasCreate");
    check_cublas(cublasSetPointerMode(handle_, CUBLAS_POINTER_MODE_DEVICE), "cublasSetPointerMode");
    workspace_.reserve(kWorkspaceBytes);
    // scalars_: (1, 0) for the unscaled GEMMs, then amax and (alpha, beta) of the f16 path.
    scalars_.reserve(64);
    const float unit[2] = {1.0f, 0.0f};
    check(cudaMemcpy(scalars_.get(), unit, sizeof unit, cudaMemcpyHostToDevice), "setting GEMM factors");
  }
  check_cublas(cublasSetStream(handle_, s), "cublasSetStream");
  // cublasSetStream resets the workspace to cuBLAS's own pool; hand ours back.
  check_cublas(cublasSetWorkspace(handle_, workspace_.get(), workspace_.bytes()), "cublasSetWorkspace");
  bound_ = s;
  bound_set_ = true;
}

void Gemm::run(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s) {
  bind(s);
  const int64_t N = w.rows, K = w.cols;
  const auto* unit = scalars_.as<float>();
  if (w.type == GgmlType::F32) {
    gemm_ex(handle_, w.q, CUDA_R_32F, N, w.q_row_bytes / 4, x, CUDA_R_32F, T, K, y, N, unit);
    return;
  }
  if (act_16_.bytes() < static_cast<size_t>(T * K) * 2) cached_x_ = nullptr;
  ensure(act_16_, static_cast<size_t>(T * K) * 2);
  auto* xh = act_16_.as<uint16_t>();
  if (w.type == GgmlType::BF16) {  // bf16 x bf16: the weights as uploaded
    cached_x_ = nullptr;
    check(launch_f32_to_bf16(x, T * K, xh, s), "rounding activations to bf16");
    gemm_ex(handle_, w.q, CUDA_R_16BF, N, w.q_row_bytes / 2, xh, CUDA_R_16BF, T, K, y, N, unit);
    return;
  }
  // Quantized and F16 weights decode to f16 (11 significant bits hold a 4-6 bit quant times an f16
  // scale far better than bf16's 8); the activations go to f16 scaled by a power of two, undone
  // by the GEMM's alpha.
  auto* amax = reinterpret_cast<unsigned*>(scalars_.as<float>() + 4);
  float* alpha_beta = scalars_.as<float>() + 8;
  if (cached_x_ != x || cached_n_ != T * K) {
    check(launch_f32_to_f16_scaled(x, T * K, xh, amax, alpha_beta, s), "rounding activations to f16");
    cached_x_ = x, cached_n_ = T * K;
  }
  // (16 MiB chunks for short prompts, to keep a chunk in L2 between decode and GEMM, measured
  // slower: 64 vs 52 ms to the first token of 32, the launches outweigh the saved traffic.)
  const int64_t rows = std::min(chunk_rows(K), N);
  ensure(weight_16_, static_cast<size_t>(rows * K) * 2);
  auto* wh = weight_16_.as<uint16_t>();
  // One scratch reused chunk after chunk: the stream orders each decode after the previous GEMM.
  for (int64_t r0 = 0; r0 < N; r0 += rows) {
    const int64_t n = std::min(rows, N - r0);
    check(launch_dequantize_f16(w, r0, n, wh, s), "decoding a weight chunk to f16");
    gemm_ex(handle_, wh, CUDA_R_16F, n, K, xh, CUDA_R_16F, T, K, y + r0, N, alpha_beta);
  }
}

#else  // no cuBLAS: the tiled f32 kernel

bool gemm_rounds_to_bf16(GgmlType) { return false; }

Gemm::~Gemm() = default;

void Gemm::run(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s) {
  check(launch_matmul_tiled(w, x, T, y, s), "tiled matmul");
}

#endif

Gemm::Gemm(int64_t max_chunk_elements) : max_chunk_elements_(std::max<int64_t>(max_chunk_elements, 1)) {}

int64_t Gemm::chunk_rows(int64_t K) const {
  const int64_t rows = max_chunk_elements_ / std::max<int64_t>(K, 1);
  return rows >= 128 ? rows / 128 * 128 : std::max<int64_t>(rows, 1);
}

}  // namespace unicorn::cuda
