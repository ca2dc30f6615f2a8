// Standalone lab: what a dependency between two phases of a decode step costs on the device, as
// a kernel boundary (the engine today: one kernel per op, chained with programmatic dependent
// launch inside a CUDA graph) or as a grid-wide barrier inside one persistent kernel (the
// structural alternative of NOTES.md). Not part of the engine. Build and run (GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/sync bench/device/sync_lab.cu && /tmp/sync
// Every phase does what a small op minimally does: block 0 reads a value the previous phase
// wrote and writes the next one, so the chain is a true dependency and the result is checked.
#include <cooperative_groups.h>
#include <cuda_runtime.h>

#include <cstdio>

#include "lab_check.cuh"

namespace {

namespace cg = cooperative_groups;

__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); }

// One link of a kernel chain: phase i reads chain[i] and writes chain[i + 1]. EarlyTrigger lets the
// next link be scheduled right after the wait (the engine's small ops), else after the store (its
// matvecs).
template <bool EarlyTrigger>
__global__ void link(int* chain, int i) {
  pdl_wait();
  if (EarlyTrigger) pdl_trigger();
  if (blockIdx.x == 0 && threadIdx.x == 0) chain[i + 1] = chain[i] + 1;
  if (!EarlyTrigger) pdl_trigger();
}

// The same chain inside one kernel: n phases separated by a grid barrier built from one counter
// (arrivals) and one generation word, as a persistent decode kernel would use.
__device__ void grid_barrier(unsigned* count, volatile unsigned* generation, unsigned& gen) {
  __syncthreads();
  if (threadIdx.x == 0) {
    ++gen;
    __threadfence();
    if (atomicAdd(count, 1u) == gridDim.x - 1) {
      *count = 0;
      __threadfence();
      *generation = gen;
    } else {
      while (*generation != gen) {
      }
    }
    __threadfence();
  }
  __syncthreads();
}

__global__ void persistent_chain(int* chain, int n, unsigned* count, unsigned* generation) {
  unsigned gen = *generation;
  for (int i = 0; i < n; ++i) {
    if (blockIdx.x == 0 && threadIdx.x == 0) chain[i + 1] = static_cast<volatile int*>(chain)[i] + 1;
    grid_barrier(count, generation, gen);
  }
}

// The same with cooperative groups' grid sync (cooperative launch).
__global__ void cg_chain(int* chain, int n) {
  cg::grid_group grid = cg::this_grid();
  for (int i = 0; i < n; ++i) {
    if (blockIdx.x == 0 && threadIdx.x == 0) chain[i + 1] = static_cast<volatile int*>(chain)[i] + 1;
    grid.sync();
  }
}

cudaError_t launch_link(dim3 grid, dim3 block, bool pdl, bool early, cudaStream_t s, int* chain, int i) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.stream = s;
  cudaLaunchAttribute attr = {};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = pdl ? 1 : 0;
  return early ? cudaLaunchKernelEx(&cfg, link<true>, chain, i) : cudaLaunchKernelEx(&cfg, link<false>, chain, i);
}

bool chain_ok(const int* chain, int n) {
  int last = -1;
  CK(cudaMemcpy(&last, chain + n, sizeof(int), cudaMemcpyDeviceToHost));
  return last == n;
}

}  // namespace

int main() {
  const int sms = lab_print_device();
  constexpr int n = 2000;  // phases per measurement
  int* chain;
  unsigned *count, *generation;
  CK(cudaMalloc(&chain, (n + 1) * sizeof(int)));
  CK(cudaMalloc(&count, sizeof(unsigned)));
  CK(cudaMalloc(&generation, sizeof(unsigned)));
  CK(cudaMemset(count, 0, sizeof(unsigned)));
  CK(cudaMemset(generation, 0, sizeof(unsigned)));
  cudaStream_t st;
  CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  auto time_us = [&](auto&& body) {
    CK(cudaMemset(chain, 0, (n + 1) * sizeof(int)));
    body();  // warm-up
    CK(cudaStreamSynchronize(st));
    CK(cudaMemset(chain, 0, (n + 1) * sizeof(int)));
    return lab_stream_ms(st, body) * 1000.0 / n;
  };

  // Kernel chains recorded as one CUDA graph (as the engine replays a decode step).
  for (int blocks : {1, sms, 4 * sms})
    for (int threads : {128, 256})
      for (int mode = 0; mode < 3; ++mode) {  // PDL off; on, trigger after the store; on, trigger first
        const bool pdl = mode > 0, early = mode == 2;
        cudaGraph_t graph;
        cudaGraphExec_t exec;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
        for (int i = 0; i < n; ++i) CK(launch_link(dim3(blocks), dim3(threads), pdl, early, st, chain, i));
        CK(cudaStreamEndCapture(st, &graph));
        CK(cudaGraphInstantiate(&exec, graph, 0));
        const double us = time_us([&] { CK(cudaGraphLaunch(exec, st)); });
        std::printf("kernel chain (graph)  %4d blocks x %3d threads, PDL %-13s: %6.3f us per link%s\n", blocks, threads,
                    pdl ? (early ? "trigger first" : "trigger last") : "off", us, chain_ok(chain, n) ? "" : "  WRONG");
        CK(cudaGraphExecDestroy(exec));
        CK(cudaGraphDestroy(graph));
      }

  // One persistent kernel with grid barriers: one block per SM (all co-resident), then two.
  for (int per_sm : {1, 2})
    for (int threads : {128, 256}) {
      const int blocks = per_sm * sms;
      const double us = time_us([&] { persistent_chain<<<blocks, threads, 0, st>>>(chain, n, count, generation); });
      std::printf("persistent, atomic barrier %4d blocks x %3d threads: %6.3f us per phase%s\n", blocks, threads, us,
                  chain_ok(chain, n) ? "" : "  WRONG");
      int nn = n;
      void* args[] = {&chain, &nn};
      const double us_cg = time_us(
          [&] { CK(cudaLaunchCooperativeKernel(reinterpret_cast<void*>(cg_chain), blocks, threads, args, 0, st)); });
      std::printf("persistent, cg grid.sync   %4d blocks x %3d threads: %6.3f us per phase%s\n", blocks, threads, us_cg,
                  chain_ok(chain, n) ? "" : "  WRONG");
    }
  return 0;
}
