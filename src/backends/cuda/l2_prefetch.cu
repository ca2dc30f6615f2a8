// Pulling the next matvec's weights into L2 while the small ops before it run (sm_90+).
//
// A decode step alternates weight-streaming matvecs with small latency-bound ops (norms,
// attention) during which DRAM sits idle: ~16 us per 27B layer on an H100 (NOTES.md, session 4).
// The backend launches this kernel right after a matvec, with the first bytes of the next
// matvec's weights (CudaBackend::prefetch): `cp.async.bulk.prefetch.L2` asks the memory system to
// fetch them without any thread waiting, so the small ops run unhindered and the next matvec
// finds part of its weights in L2.
//
// Ordering (launch.cuh): the kernel lets its dependent launch at once, then waits for the previous
// kernel before it exits, so that the next kernel's pdl_wait() still covers every earlier
// kernel's writes. It touches no memory an op reads or writes.
#include <algorithm>

#include "backends/cuda/kernels.h"
#include "backends/cuda/launch.cuh"

namespace unicorn::cuda {
namespace {

constexpr uint32_t kChunk = 16384;  // bytes per prefetch instruction (a multiple of 16)
constexpr int kThreads = 32;

__global__ void __launch_bounds__(kThreads) l2_prefetch(L2Prefetch pf) {
  pdl_trigger();
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  const int64_t tid = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t n_threads = static_cast<int64_t>(gridDim.x) * kThreads;
  int64_t first = 0;  // chunks of the ranges before this one
#pragma unroll
  for (int r = 0; r < L2Prefetch::kMaxRanges; ++r) {  // static indices: the parameters stay in constant memory
    if (r < pf.n) {
      const uint64_t bytes = pf.bytes[r];
      const auto chunks = static_cast<int64_t>((bytes + kChunk - 1) / kChunk);
      // Chunk c of all ranges goes to thread c % n_threads, so that the work spreads evenly.
      int64_t c = ((tid - first) % n_threads + n_threads) % n_threads;
      for (; c < chunks; c += n_threads) {
        const uint64_t off = static_cast<uint64_t>(c) * kChunk;
        const auto size = static_cast<uint32_t>(std::min<uint64_t>(kChunk, bytes - off));
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(pf.ptr[r] + off), "r"(size) : "memory");
      }
      first += chunks;
    }
  }
#endif
  pdl_wait();
}

}  // namespace

bool l2_prefetch_supported() {
  static const bool ok = [] {
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return false;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess) return false;
    return major >= 9;
  }();
  return ok;
}

cudaError_t launch_l2_prefetch(const L2Prefetch& pf, int max_blocks, cudaStream_t s) {
  if (pf.n < 0 || pf.n > L2Prefetch::kMaxRanges) return cudaErrorInvalidValue;
  int64_t chunks = 0;
  for (int r = 0; r < pf.n; ++r) {
    if (pf.bytes[r] % 16 != 0 || reinterpret_cast<uintptr_t>(pf.ptr[r]) % 16 != 0) return cudaErrorInvalidValue;
    chunks += static_cast<int64_t>((pf.bytes[r] + kChunk - 1) / kChunk);
  }
  if (chunks == 0) return cudaSuccess;
  const auto blocks = static_cast<unsigned>(std::clamp<int64_t>((chunks + kThreads - 1) / kThreads, 1, max_blocks));
  launch(l2_prefetch, dim3(blocks), dim3(kThreads), 0, s, pf);
  return cudaGetLastError();
}

}  // namespace unicorn::cuda
