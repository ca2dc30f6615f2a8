// Shared by the standalone device probes in this folder (not the engine): CK(call) prints the
// CUDA error with its place and exits; helpers of the matvec labs below.
#pragma once
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#define CK(x)                                                                              \
  do {                                                                                     \
    cudaError_t e_ = (x);                                                                  \
    if (e_ != cudaSuccess) {                                                               \
      std::printf("CUDA error %s at %s:%d\n", cudaGetErrorString(e_), __FILE__, __LINE__); \
      std::exit(1);                                                                        \
    }                                                                                      \
  } while (0)

// Device helpers of the matvec labs: a 64-bit mix for reproducible random data, a streaming
// 16-byte load that bypasses L1 (as the engine's weight loads), and a warp-wide sum.
__device__ __forceinline__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}
// Random bytes (Q4_0 nibbles) and small positive f16 scales (as raw uint16) over n elements.
__global__ void fill_bytes(uint8_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = static_cast<uint8_t>(hash32(seed * 0x9E3779B97F4A7C15ULL + i));
}
__global__ void fill_scales(uint16_t* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = __half_as_ushort(__float2half(0.001f + (hash32(seed * 31 + i) % 1000) * 1e-5f));
}
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xFFFFFFFFu, v, o);
  return v;
}

// Bulk copies (cp.async.bulk, the TMA's 1-D form, sm_90) into shared memory, completed on an
// mbarrier: the pieces of matvec_lab.cu's ring (D) and persist_lab.cu's prefetch (KS).
__device__ __forceinline__ uint32_t smem_u32(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
__device__ __forceinline__ void mbar_init(uint64_t* bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" ::"r"(smem_u32(bar)), "r"(count) : "memory");
}
__device__ __forceinline__ void mbar_expect_tx(uint64_t* bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" ::"r"(smem_u32(bar)), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint64_t* bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];" ::"r"(smem_u32(bar)) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint64_t* bar, uint32_t parity) {
  uint32_t ok = 0;
  do {
    asm volatile(
        "{ .reg .pred p; mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2; selp.u32 %0, 1, 0, p; }"
        : "=r"(ok)
        : "r"(smem_u32(bar)), "r"(parity)
        : "memory");
  } while (!ok);
}
__device__ __forceinline__ void bulk_load(void* dst, const void* src, uint32_t bytes, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];" ::"r"(smem_u32(dst)),
      "l"(src), "r"(bytes), "r"(smem_u32(bar))
      : "memory");
}

// The current device's name, SM count and L2 size on one line; returns the SM count.
inline int lab_print_device() {
  int dev = 0;
  CK(cudaGetDevice(&dev));
  cudaDeviceProp prop;
  CK(cudaGetDeviceProperties(&prop, dev));
  std::printf("device %s, %d SMs, L2 %d MiB\n", prop.name, prop.multiProcessorCount, prop.l2CacheSize >> 20);
  return prop.multiProcessorCount;
}

// Host side of the matvec labs. Random int8 activations of K values with their per-32 (d, d * sum)
// pairs, uploaded to xq [K] and xds [K / 32].
inline void lab_upload_activations(int K, int8_t* xq, float2* xds) {
  std::vector<int8_t> hx(K);
  std::vector<float2> hds(K / 32);
  uint32_t s = 12345;
  for (int i = 0; i < K; ++i) s = s * 1664525u + 1013904223u, hx[i] = int8_t((s >> 24) % 255 - 127);
  for (int b = 0; b < K / 32; ++b) {
    int sum = 0;
    for (int j = 0; j < 32; ++j) sum += hx[b * 32 + j];
    const float dx = 0.01f + 0.001f * (b % 7);
    hds[b] = make_float2(dx, dx * sum);
  }
  CK(cudaMemcpy(xq, hx.data(), K, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(xds, hds.data(), hds.size() * sizeof(float2), cudaMemcpyHostToDevice));
}

// Milliseconds of stream time that the work body() enqueues on st takes (events around it; waits).
template <class Body>
float lab_stream_ms(cudaStream_t st, Body&& body) {
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  CK(cudaEventRecord(e0, st));
  body();
  CK(cudaEventRecord(e1, st));
  CK(cudaEventSynchronize(e1));
  float ms = 0;
  CK(cudaEventElapsedTime(&ms, e0, e1));
  CK(cudaEventDestroy(e0));
  CK(cudaEventDestroy(e1));
  return ms;
}

struct LabResult {
  double us, nmse;
};
// run(c) launches the variant on weight copy c, writing y (rows floats). Checks copy 0 against
// ref, then times 200 calls cycling over the copies (together larger than L2).
inline LabResult lab_check_and_time(const std::function<void(int)>& run, int copies, float* y,
                                    const std::vector<float>& ref, cudaStream_t st) {
  const size_t rows = ref.size();
  std::vector<float> hy(rows);
  CK(cudaMemset(y, 0, rows * 4));
  run(0);
  CK(cudaGetLastError());
  CK(cudaStreamSynchronize(st));
  CK(cudaMemcpy(hy.data(), y, rows * 4, cudaMemcpyDeviceToHost));
  double num = 0, den = 0;
  for (size_t r = 0; r < rows; ++r) num += double(hy[r] - ref[r]) * (hy[r] - ref[r]), den += double(ref[r]) * ref[r];
  for (int c = 0; c < copies; ++c) run(c);
  const int iters = 200;
  const float ms = lab_stream_ms(st, [&] {
    for (int i = 0; i < iters; ++i) run(i % copies);
  });
  return {ms * 1000.0 / iters, num / (den > 1e-30 ? den : 1e-30)};
}
