// Kernel launches with programmatic dependent launch (PDL, sm_90+): a kernel of the decode chain
// may be launched while the previous kernel on the stream finishes, so that its launch and block
// scheduling overlap the previous kernel's tail (inside a CUDA graph too). Every kernel launched
// this way calls pdl_wait() before it touches memory that an earlier kernel writes or reads (only
// weight loads may come first): that waits for the previous kernel's completion and memory, so
// the order of reads and writes is the stream's (tools/check_pdl_order.py checks it). pdl_trigger()
// lets the next kernel be scheduled early (single-wave kernels call it at their start, the
// matvec at the end of each block). UNICORN_PDL=0 turns the attribute off.
#pragma once
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include <utility>

namespace unicorn::cuda {

__device__ __forceinline__ void pdl_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_trigger() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
  asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

// The start of a kernel that lets its dependent be scheduled at once (the small single-wave
// kernels): wait for the previous kernel, then trigger. (Triggering first, so that the next
// matvec is scheduled one step earlier, measured neutral on an H100: NOTES.md session 7; every
// kernel triggering first, the matvec at block start, -2 to -3 % in session 14.)
__device__ __forceinline__ void pdl_enter() {
  pdl_wait();
  pdl_trigger();
}

// Loads of data that an earlier kernel on the stream wrote (activations), after pdl_wait(). Never
// __ldg (ld.global.nc) for those: ptxas takes a non-coherent load as a read of memory that stays
// constant while the kernel runs, and may schedule it above griddepcontrol.wait. SASS of a
// one-token matvec tried in session 8 (NOTES.md) showed its activation loads ahead of the wait;
// under PDL they would read the previous kernel's output before it is written. Coherent loads
// stay after the wait (checked in the same SASS; tools/check_pdl_order.py checks every kernel),
// and asm volatile keeps them after pdl_wait() in the compiler's order too. They still hit L1.
__device__ __forceinline__ uint4 ld_dep_u4(const void* p) {
  uint4 r;
  asm volatile("ld.global.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w) : "l"(p));
  return r;
}
__device__ __forceinline__ float4 ld_dep_f4(const void* p) {
  float4 r;
  asm volatile("ld.global.v4.f32 {%0,%1,%2,%3}, [%4];" : "=f"(r.x), "=f"(r.y), "=f"(r.z), "=f"(r.w) : "l"(p));
  return r;
}
__device__ __forceinline__ float2 ld_dep_f2(const void* p) {
  float2 r;
  asm volatile("ld.global.v2.f32 {%0,%1}, [%2];" : "=f"(r.x), "=f"(r.y) : "l"(p));
  return r;
}

// Whether the current device has compute capability 8.0 or later (the f16 mma.sync of the
// tensor-core attention kernels). Decided once, on the device current at the first call (the
// engine drives one CUDA device).
bool sm80_or_later();

// Whether launches carry the PDL attribute: compute capability >= 9, the kernels compiled for PTX
// >= 90 (else they have no waits) and UNICORN_PDL != 0. Decided once, on the device current at
// the first call (the engine drives one CUDA device).
bool pdl_enabled();

// Opts Kernel into `bytes` of dynamic shared memory (above the 48 KiB default) on the current
// device; the setting is per device, so it is made once on each.
template <auto Kernel>
cudaError_t allow_dynamic_smem(size_t bytes) {
  static std::atomic<uint64_t> set_on{0};
  int dev = 0;
  if (const cudaError_t e = cudaGetDevice(&dev); e != cudaSuccess) return e;
  const uint64_t bit = uint64_t{1} << (dev % 64);
  if (set_on.load() & bit) return cudaSuccess;
  const cudaError_t e =
      cudaFuncSetAttribute(Kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes));
  if (e == cudaSuccess) set_on.fetch_or(bit);
  return e;
}

template <class... Params, class... Args>
cudaError_t launch(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t s, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid;
  cfg.blockDim = block;
  cfg.dynamicSmemBytes = smem;
  cfg.stream = s;
  cudaLaunchAttribute attr = {};
  attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr.val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = &attr;
  cfg.numAttrs = pdl_enabled() ? 1 : 0;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

}  // namespace unicorn::cuda
