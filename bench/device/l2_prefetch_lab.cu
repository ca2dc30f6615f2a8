// Standalone probe: does `cp.async.bulk.prefetch.L2` put a matvec's weights in L2 ahead of it,
// how fast, and what does the prefetch traffic do to the latency of a small kernel beside it?
// (src/backends/cuda/l2_prefetch.cu; NOTES.md session 5.) Build and run on the GPU machine:
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/l2lab bench/device/l2_prefetch_lab.cu && /tmp/l2lab
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "lab_check.cuh"

// A streaming read like the matvec's: 16-byte non-allocating loads, a sum per block.
__global__ void stream_read(const uint4* p, size_t n16, unsigned* out) {
  unsigned acc = 0;
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n16; i += size_t(gridDim.x) * blockDim.x) {
    uint4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p + i));
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) out[0] = acc;
}

__global__ void bulk_prefetch(const uint8_t* p, size_t bytes, uint32_t chunk) {
  const size_t tid = blockIdx.x * size_t(blockDim.x) + threadIdx.x, nth = size_t(gridDim.x) * blockDim.x;
  for (size_t off = tid * chunk; off < bytes; off += nth * chunk) {
    const uint32_t size = static_cast<uint32_t>(bytes - off < chunk ? bytes - off : chunk);
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;" ::"l"(p + off), "r"(size) : "memory");
  }
}

__global__ void line_prefetch(const uint8_t* p, size_t bytes) {
  const size_t tid = blockIdx.x * size_t(blockDim.x) + threadIdx.x, nth = size_t(gridDim.x) * blockDim.x;
  for (size_t off = tid * 128; off < bytes; off += nth * 128) asm volatile("prefetch.global.L2 [%0];" ::"l"(p + off));
}

__global__ void spin(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}

// Dependent loads through a permutation held in L2: the latency a small op's loads see.
__global__ void chase(const unsigned* next, int steps, long long* cycles, unsigned* sink) {
  unsigned i = 0;
  const long long t0 = clock64();
  for (int s = 0; s < steps; ++s) i = __ldcg(next + i);
  cycles[0] = clock64() - t0;
  sink[0] = i;
}

int main() {
  const size_t region = size_t{16} << 20, n_regions = 24, flush_bytes = size_t{256} << 20;
  uint8_t *w = nullptr, *flush = nullptr;
  unsigned* out = nullptr;
  CK(cudaMalloc(&w, region * n_regions));
  CK(cudaMalloc(&flush, flush_bytes));
  CK(cudaMalloc(&out, 64));
  CK(cudaMemset(w, 1, region * n_regions));
  CK(cudaMemset(flush, 2, flush_bytes));
  cudaStream_t s;
  CK(cudaStreamCreate(&s));
  int sms = 0;
  CK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0));
  const long long us = 1980;  // cycles per microsecond at the H100's 1980 MHz clock
  auto do_flush = [&] { stream_read<<<sms * 8, 256, 0, s>>>((const uint4*)flush, flush_bytes / 16, out); };
  int next_region = 0;
  // Reads `bytes` of a fresh region; `before` queues work after the flush, before the timed read.
  auto timed_read = [&](size_t bytes, auto before) {
    const uint8_t* r = w + region * (next_region++ % n_regions);
    do_flush();
    before(r);
    return lab_stream_ms(s, [&] { stream_read<<<sms * 8, 256, 0, s>>>((const uint4*)r, bytes / 16, out); }) * 1000.0f;
  };
  auto median = [](std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const size_t bytes = size_t{12} << 20;  // the 27B o matrix at Q4_0 is 12.4 MB
  auto report = [&](const char* name, auto before) {
    std::vector<float> t;
    for (int i = 0; i < 15; ++i) t.push_back(timed_read(bytes, before));
    std::printf("%-58s %7.2f us  (%6.0f GB/s)\n", name, median(t), bytes / (median(t) * 1e3));
  };
  std::printf("read of 12 MiB after a 256 MiB flush, median of 15:\n");
  report("cold", [&](const uint8_t*) {});
  report("cold after a 20 us spin", [&](const uint8_t*) { spin<<<1, 32, 0, s>>>(20 * us); });
  report("warm (read twice)", [&](const uint8_t* r) {
    stream_read<<<sms * 8, 256, 0, s>>>((const uint4*)r, bytes / 16, out);
  });
  for (int spin_us : {0, 2, 5, 10, 20})
    for (uint32_t chunk : {4096u, 16384u, 65536u}) {
      for (int blocks : {8, 64}) {
        char name[128];
        std::snprintf(name, sizeof name, "bulk prefetch, chunk %u, %d blocks x 32, spin %d us", chunk, blocks, spin_us);
        report(name, [&](const uint8_t* r) {
          bulk_prefetch<<<blocks, 32, 0, s>>>(r, bytes, chunk);
          if (spin_us) spin<<<1, 32, 0, s>>>(spin_us * us);
        });
      }
    }
  for (int spin_us : {5, 20}) {
    char name[128];
    std::snprintf(name, sizeof name, "line prefetch (prefetch.global.L2), %d blocks x 256, spin %d us", sms, spin_us);
    report(name, [&](const uint8_t* r) {
      line_prefetch<<<sms, 256, 0, s>>>(r, bytes);
      spin<<<1, 32, 0, s>>>(spin_us * us);
    });
  }
  // Latency of dependent L2 hits with and without a prefetch in flight.
  const int n_idx = 1 << 18, steps = 4000;
  std::vector<unsigned> perm(n_idx), nxt(n_idx);
  std::iota(perm.begin(), perm.end(), 0u);
  std::shuffle(perm.begin() + 1, perm.end(), std::mt19937(1));
  for (int i = 0; i < n_idx; ++i) nxt[perm[i]] = perm[(i + 1) % n_idx];
  unsigned* d_next = nullptr;
  long long* d_cycles = nullptr;
  CK(cudaMalloc(&d_next, n_idx * 4));
  CK(cudaMalloc(&d_cycles, 8));
  CK(cudaMemcpy(d_next, nxt.data(), n_idx * 4, cudaMemcpyHostToDevice));
  auto chase_ns = [&](size_t prefetch_bytes) {
    std::vector<float> t;
    for (int i = 0; i < 9; ++i) {
      const uint8_t* r = w + region * (next_region++ % n_regions);
      do_flush();
      chase<<<1, 1, 0, s>>>(d_next, steps, d_cycles, out);  // warms the permutation into L2
      if (prefetch_bytes) bulk_prefetch<<<64, 32, 0, s>>>(r, prefetch_bytes, 16384);
      chase<<<1, 1, 0, s>>>(d_next, steps, d_cycles, out);
      long long c = 0;
      CK(cudaMemcpyAsync(&c, d_cycles, 8, cudaMemcpyDeviceToHost, s));
      CK(cudaStreamSynchronize(s));
      t.push_back(static_cast<float>(c) / steps / 1.98f);
    }
    return median(t);
  };
  std::printf("dependent L2-hit load latency: alone %.0f ns; beside a 16 MiB prefetch %.0f ns; beside 32 MiB %.0f ns\n",
              chase_ns(0), chase_ns(region), chase_ns(2 * region));
  return 0;
}
