// Where the device memory of a bare CUDA process goes (cudaMemGetInfo after each step): the
// context, the per-thread stack reservation, cuBLAS. One nvcc line:
//   nvcc -O2 -arch=sm_90 bench/device/context_memory.cu -lcublas -o /tmp/context_memory
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>

static double used_mib() {
  size_t free = 0, total = 0;
  cudaMemGetInfo(&free, &total);
  return static_cast<double>(total - free) / (1 << 20);
}

__global__ void touch(float* p) { p[threadIdx.x] += 1.0f; }

int main() {
  const char* lazy = std::getenv("CUDA_MODULE_LOADING");
  std::printf("CUDA_MODULE_LOADING=%s\n", lazy ? lazy : "(unset)");
  cudaFree(nullptr);
  std::printf("context: %.0f MiB\n", used_mib());
  size_t stack = 0, heap = 0, fifo = 0;
  cudaDeviceGetLimit(&stack, cudaLimitStackSize);
  cudaDeviceGetLimit(&heap, cudaLimitMallocHeapSize);
  cudaDeviceGetLimit(&fifo, cudaLimitPrintfFifoSize);
  std::printf("limits: stack %zu B/thread, malloc heap %zu B, printf fifo %zu B\n", stack, heap, fifo);
  float* p = nullptr;
  cudaMalloc(&p, 1024);
  touch<<<1, 32>>>(p);
  cudaDeviceSynchronize();
  std::printf("after a first kernel: %.0f MiB\n", used_mib());
  for (size_t s : {512, 256, 128, 64}) {
    const cudaError_t e = cudaDeviceSetLimit(cudaLimitStackSize, s);
    touch<<<1, 32>>>(p);
    cudaDeviceSynchronize();
    std::printf("stack limit %zu: %s, %.0f MiB\n", s, cudaGetErrorString(e), used_mib());
  }
  cudaStream_t st;
  cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking);
  std::printf("after a stream: %.0f MiB\n", used_mib());
  cublasHandle_t h;
  cublasCreate(&h);
  std::printf("after cublasCreate: %.0f MiB\n", used_mib());
  float *a, *b, *c;
  cudaMalloc(&a, 4 << 20);
  cudaMalloc(&b, 4 << 20);
  cudaMalloc(&c, 4 << 20);
  const float one = 1, zero = 0;
  cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 512, 512, 512, &one, a, 512, b, 512, &zero, c, 512);
  cudaDeviceSynchronize();
  std::printf("after a cuBLAS GEMM (+12 MiB of buffers): %.0f MiB\n", used_mib());
  cublasDestroy(h);
  std::printf("after cublasDestroy: %.0f MiB\n", used_mib());
  return 0;
}
