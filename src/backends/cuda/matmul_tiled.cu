// Matmul for many tokens: y[T, N] = x[T, K] · wᵀ with f32 math. A block computes a 64 x 64 tile
// of (weight rows x tokens); per 32-wide step of K it decodes the weight tile to f32 in shared
// memory (each thread 8 values, weight_formats.cuh decode8) next to the activation tile, and each
// thread accumulates a 4 x 4 sub-tile. A first version: no tensor cores, no double buffering.
#include "backends/cuda/kernels.h"
#include "backends/cuda/weight_formats.cuh"

namespace unicorn::cuda {
namespace {

constexpr int kTileN = 64, kTileT = 64, kTileK = 32, kThreads = 256;

template <class F>
__global__ void __launch_bounds__(kThreads) matmul_tiled(DeviceWeight w, const float* x, int T, float* y) {
  __shared__ float ws[kTileK][kTileN + 4];  // [k][weight row]
  __shared__ float xs[kTileK][kTileT + 4];  // [k][token]
  const int tid = static_cast<int>(threadIdx.x);
  const int64_t n0 = static_cast<int64_t>(blockIdx.x) * kTileN;
  const int t0 = static_cast<int>(blockIdx.y) * kTileT;
  const int64_t K = w.cols, N = w.rows;
  const int tx = tid % 16, ty = tid / 16;      // compute: rows tx + 16i, tokens ty + 16j
  const int lr = tid / 4, lk = (tid % 4) * 8;  // load: row/token lr, columns lk..lk+7
  float acc[4][4] = {};
  for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
    float wv[8] = {}, xv[8] = {};
    const bool k_in = k0 + lk < K;  // K % 8 == 0, so a group of 8 is wholly in or out
    if (k_in && n0 + lr < N) F::decode8(w, n0 + lr, k0 + lk, wv);
    if (k_in && t0 + lr < T) {
      const float4* xp = reinterpret_cast<const float4*>(x + static_cast<int64_t>(t0 + lr) * K + k0 + lk);
      const float4 a = __ldg(xp), b = __ldg(xp + 1);
      xv[0] = a.x, xv[1] = a.y, xv[2] = a.z, xv[3] = a.w, xv[4] = b.x, xv[5] = b.y, xv[6] = b.z, xv[7] = b.w;
    }
    __syncthreads();  // the previous step's reads are done
#pragma unroll
    for (int i = 0; i < 8; ++i) {
      ws[lk + i][lr] = wv[i];
      xs[lk + i][lr] = xv[i];
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kTileK; ++kk) {
      float a[4], b[4];
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = ws[kk][tx + 16 * i];
#pragma unroll
      for (int j = 0; j < 4; ++j) b[j] = xs[kk][ty + 16 * j];
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j] += a[i] * b[j];
    }
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int t = t0 + ty + 16 * j;
    if (t >= T) continue;
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const int64_t n = n0 + tx + 16 * i;
      if (n < N) y[static_cast<int64_t>(t) * N + n] = acc[i][j];
    }
  }
}

}  // namespace

bool weight_type_supported(GgmlType t) {
  return with_format(t, [](auto) {});
}

cudaError_t launch_matmul_tiled(const DeviceWeight& w, const float* x, int T, float* y, cudaStream_t s) {
  const dim3 grid(static_cast<unsigned>((w.rows + kTileN - 1) / kTileN),
                  static_cast<unsigned>((T + kTileT - 1) / kTileT));
  const bool ok = with_format(w.type, [&](auto f) { matmul_tiled<decltype(f)><<<grid, kThreads, 0, s>>>(w, x, T, y); });
  return ok ? cudaGetLastError() : cudaErrorNotSupported;
}

}  // namespace unicorn::cuda
