// Standalone lab for the one-token decode attention of Gemma 3 27B (32 query heads, 16 kv heads,
// head_dim 128, f16 K/V cache) at long contexts: compares kernel designs without building the
// engine. Not part of the engine or its tests. Build and run (GPU machine):
//   nvcc -O3 -std=c++17 -arch=sm_90a -o /tmp/attn bench/device/attention_lab.cu && /tmp/attn
// Why (NOTES.md, next steps): the engine's kernel reads 654-843 GB/s of K+V at 1,024-4,096 keys,
// so attention costs ~1 ms per token at depth 4,096. Each variant is checked against a plain
// double-precision reference, then timed (attention + split merge) over copies of the cache that
// together exceed L2, as in a decode step where the weights evict the cache.
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "lab_check.cuh"

namespace {

constexpr int kHeads = 32, kKvHeads = 16, kGroup = kHeads / kKvHeads, kHd = 128, kD = kHd / 32;
constexpr int kRow = kKvHeads * kHd;  // halves per cached position

__global__ void fill_half(__half* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    p[i] = __float2half((hash32(seed * 0x9E3779B97F4A7C15ULL + i) % 2001) * 1e-3f - 1.0f);
}

// Reference: one block per query head, double precision, plain softmax over all n keys.
__global__ void ref_attention(const float* q, const __half* k, const __half* v, int n, float scale, float* out) {
  const int h = blockIdx.x, kvh = h / kGroup;
  extern __shared__ double w[];  // n scores
  for (int j = threadIdx.x; j < n; j += blockDim.x) {
    double s = 0;
    for (int d = 0; d < kHd; ++d) s += double(q[h * kHd + d]) * __half2float(k[size_t(j) * kRow + kvh * kHd + d]);
    w[j] = s * scale;
  }
  __syncthreads();
  __shared__ double mx, sum;
  if (threadIdx.x == 0) {
    mx = -1e300;
    for (int j = 0; j < n; ++j) mx = fmax(mx, w[j]);
    sum = 0;
    for (int j = 0; j < n; ++j) sum += exp(w[j] - mx);
  }
  __syncthreads();
  for (int d = threadIdx.x; d < kHd; d += blockDim.x) {
    double o = 0;
    for (int j = 0; j < n; ++j) o += exp(w[j] - mx) * __half2float(v[size_t(j) * kRow + kvh * kHd + d]);
    out[h * kHd + d] = static_cast<float>(o / sum);
  }
}

__device__ __forceinline__ void load4(const __half* p, float* f) {
  const uint2 u = *reinterpret_cast<const uint2*>(p);
  const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&u.x));
  const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&u.y));
  f[0] = a.x, f[1] = a.y, f[2] = b.x, f[3] = b.y;
}

// Split-K decode attention. Grid (kv heads or query heads, splits); 4 warps per block take KEYS
// keys per step in turn; a lane holds 4 consecutive dimensions. G query heads per block (1: one
// block per query head, as the engine; kGroup: the whole group of a kv head, so each K/V load
// serves both). Partial state per (query head, split): max, sum, weighted V.
template <int G, int KEYS>
__global__ void __launch_bounds__(128)
    attention(const float* q, const __half* k, const __half* v, int n, float scale, float* partial) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int split = blockIdx.y, n_split = gridDim.y;
  const int h0 = blockIdx.x * G;  // first query head of this block
  const int kvh = h0 / kGroup;
  const int j_begin = static_cast<int>(int64_t(n) * split / n_split),
            j_end = static_cast<int>(int64_t(n) * (split + 1) / n_split);
  float qv[G][kD], m[G], l[G], acc[G][kD];
#pragma unroll
  for (int g = 0; g < G; ++g) {
#pragma unroll
    for (int d = 0; d < kD; ++d) qv[g][d] = q[(h0 + g) * kHd + lane * kD + d], acc[g][d] = 0;
    m[g] = -INFINITY, l[g] = 0;
  }
  for (int j0 = j_begin + warp * KEYS; j0 < j_end; j0 += 4 * KEYS) {
    float kk[KEYS][kD], vv[KEYS][kD];
#pragma unroll
    for (int u = 0; u < KEYS; ++u) {
      const int j = min(j0 + u, j_end - 1);
      load4(k + size_t(j) * kRow + kvh * kHd + lane * kD, kk[u]);
      load4(v + size_t(j) * kRow + kvh * kHd + lane * kD, vv[u]);
    }
#pragma unroll
    for (int g = 0; g < G; ++g) {
      float s[KEYS];
#pragma unroll
      for (int u = 0; u < KEYS; ++u) {
        s[u] = 0;
#pragma unroll
        for (int d = 0; d < kD; ++d) s[u] += qv[g][d] * kk[u][d];
      }
#pragma unroll
      for (int o = 16; o > 0; o /= 2)
#pragma unroll
        for (int u = 0; u < KEYS; ++u) s[u] += __shfl_xor_sync(0xFFFFFFFFu, s[u], o);
      float m_new = m[g];
#pragma unroll
      for (int u = 0; u < KEYS; ++u) {
        s[u] = j0 + u < j_end ? s[u] * scale : -INFINITY;
        m_new = fmaxf(m_new, s[u]);
      }
      const float corr = expf(m[g] - m_new);
      l[g] *= corr;
#pragma unroll
      for (int d = 0; d < kD; ++d) acc[g][d] *= corr;
#pragma unroll
      for (int u = 0; u < KEYS; ++u) {
        const float p = expf(s[u] - m_new);
        l[g] += p;
#pragma unroll
        for (int d = 0; d < kD; ++d) acc[g][d] += p * vv[u][d];
      }
      m[g] = m_new;
    }
  }
  // Merge the 4 warps of each query head in shared memory.
  __shared__ float s_m[4][G], s_l[4][G], s_acc[4][G][kHd];
#pragma unroll
  for (int g = 0; g < G; ++g) {
    if (lane == 0) s_m[warp][g] = m[g], s_l[warp][g] = l[g];
#pragma unroll
    for (int d = 0; d < kD; ++d) s_acc[warp][g][lane * kD + d] = acc[g][d];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < G * kHd; idx += 128) {
    const int g = idx / kHd, d = idx % kHd;
    float mx = -INFINITY;
    for (int w = 0; w < 4; ++w) mx = fmaxf(mx, s_m[w][g]);
    float sum = 0, o = 0;
    for (int w = 0; w < 4; ++w) {
      const float f = s_l[w][g] > 0 ? expf(s_m[w][g] - mx) : 0.0f;
      sum += s_l[w][g] * f;
      o += s_acc[w][g][d] * f;
    }
    float* p = partial + (size_t(h0 + g) * n_split + split) * (kHd + 2);
    p[2 + d] = o;
    if (d == 0) p[0] = mx, p[1] = sum;
  }
}

// Merges the splits of each query head (one block per head).
__global__ void merge(const float* partial, int n_split, float* out) {
  const int h = blockIdx.x;
  const float* p = partial + size_t(h) * n_split * (kHd + 2);
  float mx = -INFINITY;
  for (int s = 0; s < n_split; ++s)
    if (p[s * (kHd + 2) + 1] > 0) mx = fmaxf(mx, p[s * (kHd + 2)]);
  for (int d = threadIdx.x; d < kHd; d += blockDim.x) {
    float sum = 0, o = 0;
    for (int s = 0; s < n_split; ++s) {
      const float l = p[s * (kHd + 2) + 1];
      const float f = l > 0 ? expf(p[s * (kHd + 2)] - mx) : 0.0f;
      sum += l * f;
      o += p[s * (kHd + 2) + 2 + d] * f;
    }
    out[h * kHd + d] = o / sum;
  }
}

}  // namespace

int main() {
  const int sms = lab_print_device();
  cudaStream_t st;
  CK(cudaStreamCreate(&st));
  const float scale = 1.0f / std::sqrt(float(kHd));
  for (int n : {1024, 4096, 16384}) {
    const size_t halves = size_t(n) * kRow, kv_bytes = 2 * halves * sizeof(__half);
    const int copies = std::max<int>(2, int((400ull << 20) / kv_bytes) + 1);
    std::vector<__half*> ks(copies), vs_(copies);
    for (int c = 0; c < copies; ++c) {
      CK(cudaMalloc(&ks[c], halves * sizeof(__half)));
      CK(cudaMalloc(&vs_[c], halves * sizeof(__half)));
      fill_half<<<1024, 256, 0, st>>>(ks[c], halves, 3 + c);
      fill_half<<<1024, 256, 0, st>>>(vs_[c], halves, 1003 + c);
    }
    float *q, *out, *ref, *partial;
    CK(cudaMalloc(&q, kHeads * kHd * sizeof(float)));
    CK(cudaMalloc(&out, kHeads * kHd * sizeof(float)));
    CK(cudaMalloc(&ref, kHeads * kHd * sizeof(float)));
    CK(cudaMalloc(&partial, size_t(kHeads) * 256 * (kHd + 2) * sizeof(float)));
    {
      std::vector<float> hq(kHeads * kHd);
      uint32_t s = 777;
      for (float& x : hq) s = s * 1664525u + 1013904223u, x = ((s >> 8) % 2001) * 1e-3f - 1.0f;
      CK(cudaMemcpy(q, hq.data(), hq.size() * sizeof(float), cudaMemcpyHostToDevice));
    }
    CK(cudaFuncSetAttribute(ref_attention, cudaFuncAttributeMaxDynamicSharedMemorySize, n * 8));
    ref_attention<<<kHeads, 128, n * 8, st>>>(q, ks[0], vs_[0], n, scale, ref);
    CK(cudaStreamSynchronize(st));
    std::vector<float> href(kHeads * kHd);
    CK(cudaMemcpy(href.data(), ref, href.size() * sizeof(float), cudaMemcpyDeviceToHost));

    struct Variant {
      std::string name;
      std::function<void(int, cudaStream_t)> run;  // copy index
    };
    std::vector<Variant> variants;
    // The engine's split count: 8 blocks per SM over the query heads, at most 64, 64+ keys each.
    const int engine_split = std::min({(8 * sms + kHeads - 1) / kHeads, (n + 63) / 64, 64});
    auto add = [&](const char* name, auto kernel, int blocks_x, int n_split) {
      variants.push_back({std::string(name) + " splits " + std::to_string(n_split), [=](int c, cudaStream_t s) {
                            kernel<<<dim3(blocks_x, n_split), 128, 0, s>>>(q, ks[c], vs_[c], n, scale, partial);
                            merge<<<kHeads, 128, 0, s>>>(partial, n_split, out);
                          }});
    };
    add("per query head, 4 keys/step (engine)", attention<1, 4>, kHeads, engine_split);
    add("per query head, 8 keys/step", attention<1, 8>, kHeads, engine_split);
    for (int split : {engine_split, 2 * engine_split, std::min(128, 4 * engine_split)}) {
      add("per kv head (group of 2), 4 keys/step", attention<kGroup, 4>, kKvHeads, split);
      add("per kv head (group of 2), 8 keys/step", attention<kGroup, 8>, kKvHeads, split);
    }
    for (auto& v : variants) {
      const LabResult r = lab_check_and_time([&](int c) { v.run(c, st); }, copies, out, href, st);
      std::printf("n %5d  %-48s %8.2f us %7.0f GB/s of K+V  nmse %.1e%s\n", n, v.name.c_str(), r.us,
                  kv_bytes / r.us / 1e3, r.nmse, r.nmse > 1e-8 ? "  WRONG" : "");
    }
    for (int c = 0; c < copies; ++c) cudaFree(ks[c]), cudaFree(vs_[c]);
    cudaFree(q), cudaFree(out), cudaFree(ref), cudaFree(partial);
  }
  return 0;
}
