#include "backends/cuda/cuda_backend.h"

#include <algorithm>
#include <cstring>

#include "backends/cuda/cuda_check.h"
#include "backends/cuda/cuda_device.h"
#include "backends/cuda/cuda_kv.h"
#include "backends/cuda/kernels.h"
#include "core/error.h"

namespace unicorn {

int cuda_device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver / no device" error
    return 0;
  }
  return n;
}

std::string cuda_device_description(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "unavailable";
  return fmt::format("{}: {:.1f} GiB, compute capability {}.{}, {} SMs", prop.name,
                     static_cast<double>(prop.totalGlobalMem) / (1u << 30), prop.major, prop.minor,
                     prop.multiProcessorCount);
}

std::unique_ptr<Backend> make_cuda_backend(int index) { return std::make_unique<cuda::CudaBackend>(index); }

double cuda_time_ms(Backend& backend, const std::function<void()>& work) {
  auto* b = dynamic_cast<cuda::CudaBackend*>(&backend);
  if (!b) fail("cuda_time_ms: backend {} is not a CUDA backend", backend.name());
  cudaEvent_t start = nullptr, stop = nullptr;
  cuda::check(cudaEventCreate(&start), "creating an event");
  cuda::check(cudaEventCreate(&stop), "creating an event");
  cuda::check(cudaEventRecord(start, b->stream()), "recording an event");
  work();
  cuda::check(cudaEventRecord(stop, b->stream()), "recording an event");
  cuda::check(cudaEventSynchronize(stop), "waiting for an event");
  float ms = 0;
  cuda::check(cudaEventElapsedTime(&ms, start, stop), "reading an event time");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms;
}

namespace cuda {

CudaBackend::CudaBackend(int device) : device_(device) {
  const int n = cuda_device_count();
  if (device < 0 || device >= n) fail("CUDA device {} does not exist ({} device(s) found)", device, n);
  check(cudaSetDevice(device), "selecting the device");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "reading device properties");
  sm_count_ = prop.multiProcessorCount;
  name_ = fmt::format("cuda:{} ({})", device, prop.name);
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a stream");
}

CudaBackend::~CudaBackend() {
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
}

void CudaBackend::check_launch(cudaError_t e, const char* op) const {
  if (e != cudaSuccess) fail("CUDA {} on {}: {} ({})", op, name_, cudaGetErrorString(e), cudaGetErrorName(e));
}

bool CudaBackend::supports_weight(GgmlType type) const { return weight_type_supported(type); }

void CudaBackend::load_weight(const WeightTensor& w) {
  auto it = weights_.find(w.data);
  if (it != weights_.end()) {
    const DeviceWeight& v = it->second.view;
    if (v.type != w.type || v.rows != w.rows || v.cols != w.cols)
      fail("{}: its bytes were already loaded on {} as a different tensor", w.name, name_);
    return;
  }
  check(cudaSetDevice(device_), "selecting the device");
  weights_.emplace(w.data, upload_weight(w));
}

const DeviceWeight& CudaBackend::device_weight(const WeightTensor& w) const {
  auto it = weights_.find(w.data);
  if (it == weights_.end()) fail("{}: used on {} before load_weight", w.name, name_);
  return it->second.view;
}

Act CudaBackend::alloc(int64_t rows, int64_t cols) {
  void* p = nullptr;
  const size_t n = static_cast<size_t>(rows * cols);
  check(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(float)), "allocating activations");
  std::shared_ptr<float> mem(static_cast<float*>(p), [](float* q) { cudaFree(q); });
  return Act(this, std::move(mem), rows, cols);
}

void CudaBackend::copy_from_host(const float* src, Act& dst) {
  // From pageable memory the copy is staged before the call returns, so src may be reused.
  check(cudaMemcpyAsync(dst.data(), src, static_cast<size_t>(dst.rows() * dst.cols()) * sizeof(float),
                        cudaMemcpyHostToDevice, stream_),
        "copying activations to the device");
}

void CudaBackend::copy_to_host(const Act& src, float* dst) {
  check(cudaMemcpyAsync(dst, src.data(), static_cast<size_t>(src.rows() * src.cols()) * sizeof(float),
                        cudaMemcpyDeviceToHost, stream_),
        "copying activations to the host");
  synchronize();
}

void CudaBackend::synchronize() { check(cudaStreamSynchronize(stream_), "waiting for the stream"); }

std::unique_ptr<LayerKv> CudaBackend::create_kv(const LayerKvSpec& spec) {
  if (spec.type != GgmlType::F32 && spec.type != GgmlType::F16)
    fail("KV cache type {} is not supported on CUDA (use f32 or f16)", type_name(spec.type));
  if (!attention_supports_head_dim(spec.head_dim))
    fail("head_dim {} is not supported by the CUDA attention (32, 64, 128 or 256)", spec.head_dim);
  auto kv = std::make_unique<CudaLayerKv>(spec);
  check(cudaMemsetAsync(kv->k.get(), 0, kv->k.bytes(), stream_), "clearing the KV cache");
  check(cudaMemsetAsync(kv->v.get(), 0, kv->v.bytes(), stream_), "clearing the KV cache");
  return kv;
}

const int32_t* CudaBackend::stage(Staged kind, std::span<const int32_t> values) {
  StagedInts& s = staged_[static_cast<int>(kind)];
  const bool grown = s.device.reserve(values.size_bytes());
  if (grown || s.last.size() != values.size() || !std::equal(values.begin(), values.end(), s.last.begin())) {
    s.last.assign(values.begin(), values.end());
    check(cudaMemcpyAsync(s.device.get(), s.last.data(), values.size_bytes(), cudaMemcpyHostToDevice, stream_),
          "uploading op arguments");
  }
  return s.device.as<int32_t>();
}

// ---- ops ----------------------------------------------------------------------------------------

void CudaBackend::embed(const WeightTensor& table, std::span<const int32_t> tokens, float scale, Act& out) {
  const int32_t* t = stage(Staged::Tokens, tokens);
  check_launch(launch_embed(device_weight(table), t, static_cast<int64_t>(tokens.size()), scale, out.data(), stream_),
               "embed");
}

void CudaBackend::matmul(const WeightTensor& w, const Act& x, Act& y) {
  const DeviceWeight& dw = device_weight(w);
  const int64_t T = x.rows(), K = w.cols;
  if (x.cols() != K || y.cols() != w.rows || y.rows() != T)
    fail("{}: matmul shapes do not match ([{}, {}] x [{}, {}]ᵀ -> [{}, {}])", w.name, T, x.cols(), w.rows, K, y.rows(),
         y.cols());
  constexpr int64_t kMaxMatvecTokens = 8;
  if (T <= kMaxMatvecTokens && matvec_quant_supports(w.type)) {
    const size_t q_bytes = static_cast<size_t>(T * K);
    act_q8_.reserve(q_bytes + static_cast<size_t>(T * K / 32) * 2 * sizeof(float));
    auto* q = act_q8_.as<int8_t>();
    auto* ds = reinterpret_cast<float*>(q + q_bytes);  // q_bytes is a multiple of 32
    check_launch(launch_quantize_q8(x.data(), T, K, q, ds, stream_), "activation quantization");
    check_launch(launch_matvec_quant(dw, ActQ8{q, ds}, static_cast<int>(T), y.data(), stream_), "matvec");
  } else if (T <= kMaxMatvecTokens && !traits(w.type).quantized) {
    check_launch(launch_matvec_float(dw, x.data(), static_cast<int>(T), y.data(), stream_), "matvec");
  } else {
    gemm_.run(dw, x.data(), static_cast<int>(T), y.data(), stream_);  // tensor cores when built with cuBLAS
  }
}

void CudaBackend::rms_norm(const Act& x, const WeightTensor& w, float eps, Act& y) {
  const DeviceWeight& dw = device_weight(w);
  if (w.type != GgmlType::F32) fail("{}: norm weights must be F32 (got {})", w.name, type_name(w.type));
  check_launch(launch_rms_norm(x.data(), reinterpret_cast<const float*>(dw.q), x.rows(), x.cols(), w.cols, eps,
                               y.data(), stream_),
               "rms_norm");
}

void CudaBackend::rope(Act& x, int64_t head_dim, std::span<const int32_t> pos, float base, float scale) {
  const int32_t* p = stage(Staged::Positions, pos);
  check_launch(launch_rope(x.data(), x.rows(), x.cols(), head_dim, p, base, scale, stream_), "rope");
}

void CudaBackend::attention(const Act& q, const Act& k, const Act& v, LayerKv& kv_base, const BatchView& batch,
                            std::span<const int64_t> past_len, const AttentionParams& p, Act& out) {
  auto& kv = static_cast<CudaLayerKv&>(kv_base);
  const int64_t T = q.rows();
  const int n_seq = kv.spec.n_seq;
  // Metadata (kernels.h AttentionBatch): pos[T] seq[T] past[n_seq] start[n_seq + 1] rows[T].
  std::vector<int32_t> meta(static_cast<size_t>(3 * T + 2 * n_seq + 1));
  int32_t* pos = meta.data();
  int32_t* seq = pos + T;
  int32_t* past = seq + T;
  int32_t* start = past + n_seq;
  int32_t* rows = start + n_seq + 1;
  std::vector<int32_t> count(static_cast<size_t>(n_seq), 0);
  int64_t n_max = 0;
  for (int64_t i = 0; i < T; ++i) {
    pos[i] = batch.pos[static_cast<size_t>(i)];
    seq[i] = batch.seq[static_cast<size_t>(i)];
    ++count[static_cast<size_t>(seq[i])];
    const int64_t keys = p.window > 0 ? std::min<int64_t>(pos[i] + 1, p.window) : pos[i] + 1;
    n_max = std::max(n_max, keys);
  }
  for (int s = 0, off = 0; s < n_seq; ++s) {
    past[s] = static_cast<int32_t>(past_len[static_cast<size_t>(s)]);
    start[s] = off;
    off += count[static_cast<size_t>(s)];
  }
  start[n_seq] = static_cast<int32_t>(T);
  std::vector<int32_t> fill(start, start + n_seq);
  for (int64_t i = 0; i < T; ++i) rows[fill[static_cast<size_t>(seq[i])]++] = static_cast<int32_t>(i);
  const int32_t* dm = stage(Staged::Attention, meta);
  AttentionBatch b{dm, dm + T, dm + 2 * T, dm + 2 * T + n_seq, dm + 2 * T + 2 * n_seq + 1, T};
  AttentionShape a{
      p.n_heads, p.n_kv_heads, p.head_dim, p.scale, p.window, kv.spec.capacity, kv.spec.type == GgmlType::F16};
  // Few (token, head) blocks and many keys: split the keys so that the GPU fills up.
  int n_split = 1;
  const int64_t blocks = T * p.n_heads;
  constexpr int64_t kMinKeysPerSplit = 64, kMaxSplits = 64;
  const int64_t target_blocks = 8 * static_cast<int64_t>(sm_count_);
  if (blocks < target_blocks && n_max > kMinKeysPerSplit) {
    const int64_t want = (target_blocks + blocks - 1) / blocks;
    n_split = static_cast<int>(std::min({want, (n_max + kMinKeysPerSplit - 1) / kMinKeysPerSplit, kMaxSplits}));
  }
  float* partial = nullptr;
  if (n_split > 1) {
    partial_.reserve(static_cast<size_t>(blocks * n_split * (p.head_dim + 2)) * sizeof(float));
    partial = partial_.as<float>();
  }
  check_launch(launch_attention(q.data(), k.data(), v.data(), kv.k.get(), kv.v.get(), b, a, n_split, partial,
                                out.data(), stream_),
               "attention");
  // Store after every read: in a ring a new position may overwrite one still needed above.
  check_launch(
      launch_kv_store(k.data(), v.data(), kv.k.get(), kv.v.get(), b, kv.row, kv.spec.capacity, a.kv_f16, stream_),
      "kv store");
}

void CudaBackend::gelu_mul(const Act& gate, const Act& up, Act& out) {
  check_launch(launch_gelu_mul(gate.data(), up.data(), out.data(), gate.rows() * gate.cols(), stream_), "gelu_mul");
}

void CudaBackend::add(Act& x, const Act& y) {
  check_launch(launch_add(x.data(), y.data(), x.rows() * x.cols(), stream_), "add");
}

void CudaBackend::gather_rows(const Act& x, std::span<const int64_t> rows, Act& out) {
  std::vector<int32_t> r(rows.begin(), rows.end());
  const int32_t* dr = stage(Staged::Rows, r);
  check_launch(launch_gather_rows(x.data(), x.cols(), dr, static_cast<int64_t>(r.size()), out.data(), stream_),
               "gather_rows");
}

}  // namespace cuda
}  // namespace unicorn
