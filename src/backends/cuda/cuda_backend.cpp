#include "backends/cuda/cuda_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>

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

std::string cuda_unavailable_reason() {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  cudaGetLastError();
  std::string reason;
  if (e != cudaSuccess) {
    reason = fmt::format("{} ({})", cudaGetErrorString(e), cudaGetErrorName(e));
    int driver = 0, runtime = 0;
    cudaDriverGetVersion(&driver);
    cudaRuntimeGetVersion(&runtime);
    const auto version = [](int v) { return fmt::format("{}.{}", v / 1000, (v % 1000) / 10); };
    if (driver == 0)
      reason += "; no CUDA driver is installed";
    else if (driver < runtime)
      reason += fmt::format("; the driver supports CUDA {}, this build needs {}", version(driver), version(runtime));
  }
  if (const char* visible = std::getenv("CUDA_VISIBLE_DEVICES"); visible && (e != cudaSuccess || n == 0))
    reason += fmt::format("{}CUDA_VISIBLE_DEVICES='{}'", reason.empty() ? "" : "; ", visible);
  return reason;
}

bool cuda_driver_installed() {
  int driver = 0;
  return cudaDriverGetVersion(&driver) == cudaSuccess && driver > 0;
}

std::string cuda_device_description(int index) {
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, index) != cudaSuccess) return "unavailable";
  return fmt::format("{}: {:.1f} GiB, compute capability {}.{}, {} SMs", prop.name,
                     static_cast<double>(prop.totalGlobalMem) / (1u << 30), prop.major, prop.minor,
                     prop.multiProcessorCount);
}

std::unique_ptr<Backend> make_cuda_backend(int index) { return std::make_unique<cuda::CudaBackend>(index); }

namespace {
// The CUDA backend behind a Backend&, for the entry points of cuda_device.h; `fn` names the caller.
cuda::CudaBackend& as_cuda(Backend& backend, const char* fn) {
  auto* b = dynamic_cast<cuda::CudaBackend*>(&backend);
  if (!b) fail("{}: backend {} is not a CUDA backend", fn, backend.name());
  return *b;
}

// A process-wide kernel setting (kernels.h), asked for through a backend that must be a CUDA one.
template <class T>
void set_process_wide(Backend& backend, const char* fn, void (*set)(T), T value) {
  (void)as_cuda(backend, fn);
  set(value);
}
}  // namespace

double cuda_time_ms(Backend& backend, const std::function<void()>& work) {
  const cudaStream_t stream = as_cuda(backend, "cuda_time_ms").stream();
  cudaEvent_t start = nullptr, stop = nullptr;
  cuda::check(cudaEventCreate(&start), "creating an event");
  cuda::check(cudaEventCreate(&stop), "creating an event");
  cuda::check(cudaEventRecord(start, stream), "recording an event");
  work();
  cuda::check(cudaEventRecord(stop, stream), "recording an event");
  cuda::check(cudaEventSynchronize(stop), "waiting for an event");
  float ms = 0;
  cuda::check(cudaEventElapsedTime(&ms, start, stop), "reading an event time");
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  return ms;
}

size_t cuda_free_memory(Backend& backend) { return as_cuda(backend, "cuda_free_memory").memory().free; }

size_t cuda_used_memory(Backend& backend) {
  const auto m = as_cuda(backend, "cuda_used_memory").memory();
  return m.total - m.free;
}

size_t cuda_start_used_memory(Backend& backend) { return as_cuda(backend, "cuda_start_used_memory").start_used(); }

void cuda_fuse_qk_attention(Backend& backend, bool on) {
  as_cuda(backend, "cuda_fuse_qk_attention").fuse_qk_attention(on);
}

void cuda_tensor_core_prompt_attention(Backend& backend, bool on) {
  as_cuda(backend, "cuda_tensor_core_prompt_attention").tensor_core_prompt_attention(on);
}

void cuda_attention_splits(Backend& backend, int64_t min_keys, int64_t blocks_per_sm) {
  if (min_keys < 1 || blocks_per_sm < 0) fail("cuda_attention_splits: min_keys must be positive, blocks_per_sm >= 0");
  as_cuda(backend, "cuda_attention_splits").attention_splits(min_keys, blocks_per_sm);
}

void cuda_attention_self_merge(Backend& backend, bool on) {
  as_cuda(backend, "cuda_attention_self_merge").attention_self_merge(on);
}

void cuda_short_attention_keys(Backend& backend, int64_t n) {
  if (n < 0) fail("cuda_short_attention_keys: the bound must not be negative");
  as_cuda(backend, "cuda_short_attention_keys").short_attention_keys(n);
}

void cuda_attention_mma_decode(Backend& backend, int mode) {
  if (mode < 0 || mode > 3) fail("cuda_attention_mma_decode: mode must be 0 to 3");
  set_process_wide(backend, "cuda_attention_mma_decode", cuda::set_attention_decode_mma, mode);
}

void cuda_attention_pipelined(Backend& backend, bool on) {
  set_process_wide(backend, "cuda_attention_pipelined", cuda::set_attention_pipelined, on);
}

void cuda_short_attention_pipelined(Backend& backend, bool on) {
  set_process_wide(backend, "cuda_short_attention_pipelined", cuda::set_short_attention_pipelined, on);
}

void cuda_split_attention_warps(Backend& backend, int warps) {
  set_process_wide(backend, "cuda_split_attention_warps", cuda::set_split_attention_warps, warps);
}

void cuda_short_attention_warps(Backend& backend, int warps) {
  set_process_wide(backend, "cuda_short_attention_warps", cuda::set_short_attention_warps, warps);
}

void cuda_force_tiled_prompt_attention(Backend& backend, bool on) {
  as_cuda(backend, "cuda_force_tiled_prompt_attention").force_tiled_prompt_attention(on);
}

size_t cuda_recordings(Backend& backend) { return as_cuda(backend, "cuda_recordings").recordings(); }

namespace cuda {

namespace {
constexpr size_t kStackBytes = 64;  // per thread (bench/device/context_memory.cu measures the saving)
}  // namespace

bool CudaBackend::env_switch(const char* name, bool fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr || env[0] == '\0') return fallback;
  return std::strcmp(env, "0") != 0;
}

int64_t CudaBackend::env_int(const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const char* env = std::getenv(name);
  if (env == nullptr || env[0] == '\0') return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(env, &end, 10);
  if (*end == '\0' && v >= lo && v <= hi) return static_cast<int64_t>(v);
  // A measurement setting: say that it was not taken rather than time the default unnoticed.
  fmt::print(stderr, "{}={}: not an integer in [{}, {}]; using {}\n", name, env, lo, hi, fallback);
  return fallback;
}

CudaBackend::Skip CudaBackend::skip_from_env() {
  Skip s;
  const char* env = std::getenv("UNICORN_CUDA_SKIP");
  if (!env) return s;
  const std::string list = env;
  s.qk_norm_rope = list.find("qk_norm_rope") != std::string::npos;
  s.attention = list.find("attention") != std::string::npos;
  s.add_norm = list.find("add_norm") != std::string::npos;
  s.quantize = list.find("quantize") != std::string::npos;
  fmt::print(stderr, "UNICORN_CUDA_SKIP={}: those launches are left out (measurement only; results are wrong)\n", list);
  return s;
}

CudaBackend::CudaBackend(int device) : device_(device) {
  const int n = cuda_device_count();
  if (device < 0 || device >= n) {
    const std::string why = n == 0 ? cuda_unavailable_reason() : std::string();
    fail("CUDA device {} does not exist ({} device(s) found{}{})", device, n, why.empty() ? "" : ": ", why);
  }
  check(cudaSetDevice(device), "selecting the device");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "reading device properties");
  sm_count_ = prop.multiProcessorCount;
  static const bool matvec_switches_set = [] {  // process-wide (kernels.h), read once
    set_matvec_shared_act(env_switch("UNICORN_CUDA_SHARED_ACT", true));
    // Warps per row: lo .. 4, but not 3 (a measurement setting: say that it was not taken).
    const auto env_warps = [](const char* name, int fallback, int lo) {
      const int64_t w = env_int(name, fallback, lo, 4);
      if (w != 3) return static_cast<int>(w);
      fmt::print(stderr, "{}=3: {} to 4 warps but not 3; using {}\n", name, lo, fallback);
      return fallback;
    };
    set_matvec_wide_warps(env_warps("UNICORN_CUDA_WIDE_WARPS", 2, 2));
    set_matvec_o_warps(env_warps("UNICORN_CUDA_O_WARPS", 1, 0));
    set_matvec_item_warps(static_cast<int>(env_int("UNICORN_CUDA_ITEM_WARPS", matvec_item_warps(), 0, 8)));
    set_matvec_quad_rows(env_int("UNICORN_CUDA_QUAD_ROWS", matvec_quad_rows(), 0, INT64_MAX));
    set_matvec_mma_min_tokens(static_cast<int>(env_int("UNICORN_CUDA_MMA_DECODE", kMmaDecodeMinTokens, 0, 8)));
    set_matvec_mma_all_formats(env_switch("UNICORN_CUDA_MMA_DECODE_ALL", false));
    set_matvec_mma_pipeline(static_cast<int>(env_int("UNICORN_CUDA_MMA_PIPELINE", -1, -1, 4)));
    set_matvec_mma_warps(static_cast<int>(env_int("UNICORN_CUDA_MMA_WARPS", 0, -1, 16)));
    set_matvec_q4k_pairs(static_cast<int>(env_int("UNICORN_CUDA_Q4K_PAIRS", matvec_q4k_pairs(), 0, 3)));
    set_attention_pipelined(env_switch("UNICORN_CUDA_ATTN_PIPELINE", true));
    set_attention_decode_mma(static_cast<int>(env_int("UNICORN_CUDA_ATTN_MMA", 1, 0, 3)));
    set_matvec_prefetch_blocks(env_int("UNICORN_CUDA_PREFETCH_BLOCKS", INT64_MAX, 0, INT64_MAX));
    set_add_norm_threads(static_cast<int>(env_int("UNICORN_CUDA_ADD_NORM_THREADS", 0, 0, 512)));
    set_short_attention_warps(static_cast<int>(env_int("UNICORN_CUDA_SHORT_WARPS", 8, 4, 16)));
    set_short_attention_pipelined(env_switch("UNICORN_CUDA_SHORT_PIPELINE", true));
    set_split_attention_warps(static_cast<int>(env_int("UNICORN_CUDA_SPLIT_WARPS", 8, 4, 8)));
    return true;
  }();
  (void)matvec_switches_set;
  name_ = fmt::format("cuda:{} ({})", device, prop.name);
  // The context reserves local memory for every resident thread's stack: 1 KiB by default, which
  // is 264 MiB on an H100 (132 SMs x 2048 threads). Our kernels need at most 40 bytes of stack;
  // the driver raises the limit at launch for any kernel that needs more.
  check(cudaDeviceSetLimit(cudaLimitStackSize, kStackBytes), "setting the stack size");
  check(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "creating a stream");
  gemm_.set_grow([this](DeviceBuffer& b, size_t bytes) { grow(b, bytes); });
  const DeviceMemory m = memory();
  start_used_ = m.total - m.free;
}

CudaBackend::~CudaBackend() {
  if (capturing_) abort_recording();
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  if (stream_) {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }
}

CudaBackend::DeviceMemory CudaBackend::memory() const {
  check(cudaSetDevice(device_), "selecting the device");
  DeviceMemory m;
  check(cudaMemGetInfo(&m.free, &m.total), "reading device memory");
  return m;
}

void CudaBackend::check_launch(cudaError_t e, const char* op) {
  if (e == cudaSuccess) return;
  if (capturing_) abort_recording();
  fail("CUDA {} on {}: {} ({})", op, name_, cudaGetErrorString(e), cudaGetErrorName(e));
}

bool CudaBackend::grow(DeviceBuffer& b, size_t bytes) {
  if (b.bytes() >= bytes) return false;
  if (capturing_) {
    // A recording must not free memory that its earlier nodes use: keep the old buffer until the
    // capture ends, and give the recording up (record_end then has the caller issue the ops
    // again, eagerly). Relaxed capture mode allows the allocation.
    capture_ok_ = false;
    DeviceBuffer fresh(bytes);
    graveyard_.push_back(std::move(b));
    b = std::move(fresh);
    return true;
  }
  b.reserve(bytes);
  forget_recordings();
  return true;
}

bool CudaBackend::supports_weight(GgmlType type) const { return weight_type_supported(type); }

void CudaBackend::load_weights(std::span<const WeightTensor* const> ws, const UploadProgress& progress) {
  // The weights not loaded yet (first sight of each address) go into one allocation.
  struct Place {
    const WeightTensor* w;
    size_t offset, bytes;
  };
  std::vector<Place> place;
  std::unordered_map<const uint8_t*, const WeightTensor*> pending;
  size_t total = 0;
  for (const WeightTensor* w : ws) {
    GgmlType type{};
    int64_t rows = 0, cols = 0;
    if (const auto it = weights_.find(w->data); it != weights_.end()) {
      type = it->second.type, rows = it->second.rows, cols = it->second.cols;
    } else if (const auto jt = pending.find(w->data); jt != pending.end()) {
      type = jt->second->type, rows = jt->second->rows, cols = jt->second->cols;
    } else {
      const size_t bytes = device_bytes(*w);  // throws for unsupported types and shapes, before any allocation
      pending.emplace(w->data, w);
      place.push_back({w, total, bytes});
      total += bytes;
      continue;
    }
    if (type != w->type || rows != w->rows || cols != w->cols)
      fail("{}: its bytes were already loaded on {} as a different tensor", w->name, name_);
  }
  if (place.empty()) return;
  const DeviceMemory m = memory();  // also selects the device
  if (total > m.free)
    fail(
        "{}: the weights need {:.2f} GiB of device memory in its layout; {:.2f} GiB is free: put fewer layers on the "
        "GPU (--gpu-layers or --gpu-memory)",
        name_, static_cast<double>(total) / (1 << 30), static_cast<double>(m.free) / (1 << 30));
  weight_memory_.emplace_back(total);
  auto* base = weight_memory_.back().as<uint8_t>();
  if (progress) progress(0, total);
  WeightUploader uploader(stream_, total, pinned_upload_);
  for (const Place& p : place) {
    weights_.emplace(p.w->data, uploader.upload(*p.w, base + p.offset));
    if (progress && p.offset + p.bytes < total) progress(p.offset + p.bytes, total);  // queued
  }
  uploader.finish();
  if (progress) progress(total, total);  // every copy done
}

const DeviceWeight& CudaBackend::device_weight(const WeightTensor& w) const {
  auto it = weights_.find(w.data);
  if (it == weights_.end()) fail("{}: used on {} before load_weight", w.name, name_);
  return it->second;
}

Act CudaBackend::alloc(int64_t rows, int64_t cols) {
  void* p = nullptr;
  const size_t n = static_cast<size_t>(rows * cols);
  check(cudaMalloc(&p, std::max<size_t>(n, 1) * sizeof(float)), "allocating activations");
  std::shared_ptr<float> mem(static_cast<float*>(p), [](float* q) { cudaFree(q); });
  return Act(this, std::move(mem), rows, cols);
}

void CudaBackend::copy_from_host(const float* src, Act& dst) {
  wrote(dst);
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
  if (!capturing_) step_gap_.result_copied(stream_);
}

void CudaBackend::synchronize() { check(cudaStreamSynchronize(stream_), "waiting for the stream"); }

size_t CudaBackend::weight_device_bytes(const WeightTensor& w) const {
  // The uploaded layout (weight_upload.cpp: planes of the split formats, each aligned).
  // A type or shape it cannot hold is refused later, by name, where the model checks its weights.
  if (!weight_type_supported(w.type)) return w.nbytes();
  try {
    return device_bytes(w);
  } catch (const Error&) {
    return w.nbytes();
  }
}

double CudaBackend::copy_bandwidth(size_t bytes) {
  // Two plain allocations (not the grow-only scratch), freed on every way out. A device without
  // room for them gets 0, not an error: the bench then leaves the roofline out.
  struct Probe {
    void* a = nullptr;
    void* b = nullptr;
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    ~Probe() {
      if (e0) cudaEventDestroy(e0);
      if (e1) cudaEventDestroy(e1);
      if (a) cudaFree(a);
      if (b) cudaFree(b);
    }
  } p;
  check(cudaSetDevice(device_), "selecting the device");
  if (cudaMalloc(&p.a, bytes) != cudaSuccess || cudaMalloc(&p.b, bytes) != cudaSuccess) {
    (void)cudaGetLastError();  // clear the allocation error
    return 0.0;
  }
  check(cudaEventCreate(&p.e0), "timing the bandwidth probe");
  check(cudaEventCreate(&p.e1), "timing the bandwidth probe");
  check(cudaMemsetAsync(p.a, 1, bytes, stream_), "filling the bandwidth probe");
  check(cudaMemcpyAsync(p.b, p.a, bytes, cudaMemcpyDeviceToDevice, stream_), "copying the bandwidth probe");
  constexpr int kCopies = 10;
  double best = 0.0;
  for (int rep = 0; rep < 3; ++rep) {
    check(cudaEventRecord(p.e0, stream_), "timing the bandwidth probe");
    for (int i = 0; i < kCopies; ++i)
      check(cudaMemcpyAsync(p.b, p.a, bytes, cudaMemcpyDeviceToDevice, stream_), "copying the bandwidth probe");
    check(cudaEventRecord(p.e1, stream_), "timing the bandwidth probe");
    check(cudaEventSynchronize(p.e1), "timing the bandwidth probe");
    float ms = 0.0f;
    check(cudaEventElapsedTime(&ms, p.e0, p.e1), "timing the bandwidth probe");
    if (ms > 0.0f) best = std::max(best, 2.0 * static_cast<double>(bytes) * kCopies / (static_cast<double>(ms) * 1e-3));
  }
  return best;
}

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
  if (capturing_ && !(s.device.bytes() >= values.size_bytes() && s.last.size() == values.size() &&
                      std::equal(values.begin(), values.end(), s.last.begin()))) {
    capture_ok_ = false;  // an upload from pageable memory cannot be recorded: run these ops again
    grow(s.device, values.size_bytes());
    return s.device.as<int32_t>();
  }
  const bool grown = s.device.bytes() < values.size_bytes();
  grow(s.device, values.size_bytes());
  if (grown || s.last.size() != values.size() || !std::equal(values.begin(), values.end(), s.last.begin())) {
    s.last.assign(values.begin(), values.end());
    check(cudaMemcpyAsync(s.device.get(), s.last.data(), values.size_bytes(), cudaMemcpyHostToDevice, stream_),
          "uploading op arguments");
  }
  return s.device.as<int32_t>();
}

// ---- batch metadata ------------------------------------------------------------------------------

namespace {

// kernels.h AttentionBatch layout: pos[T] seq[T] past[n_seq] start[n_seq + 1] rows[T] tok_past[T]
// tok_last[T].
void append_attention_meta(const BatchView& batch, std::span<const int64_t> past_len, int n_seq,
                           std::vector<int32_t>& out) {
  const auto T = static_cast<int64_t>(batch.pos.size());
  const size_t base = out.size();
  out.resize(base + static_cast<size_t>(5 * T + 2 * n_seq + 1));
  int32_t* pos = out.data() + base;
  int32_t* seq = pos + T;
  int32_t* past = seq + T;
  int32_t* start = past + n_seq;
  int32_t* rows = start + n_seq + 1;
  int32_t* tok_past = rows + T;
  int32_t* tok_last = tok_past + T;
  std::vector<int32_t> count(static_cast<size_t>(n_seq), 0);
  for (int64_t i = 0; i < T; ++i) {
    pos[i] = batch.pos[static_cast<size_t>(i)];
    seq[i] = batch.seq[static_cast<size_t>(i)];
    ++count[static_cast<size_t>(seq[i])];
  }
  for (int s = 0, off = 0; s < n_seq; ++s) {
    past[s] = static_cast<int32_t>(past_len[static_cast<size_t>(s)]);
    start[s] = off;
    off += count[static_cast<size_t>(s)];
  }
  start[n_seq] = static_cast<int32_t>(T);
  std::vector<int32_t> fill(start, start + n_seq);
  for (int64_t i = 0; i < T; ++i) rows[fill[static_cast<size_t>(seq[i])]++] = static_cast<int32_t>(i);
  for (int64_t i = 0; i < T; ++i) {
    const auto s = static_cast<size_t>(seq[i]);
    tok_past[i] = past[s];
    tok_last[i] = past[s] + (start[s + 1] - start[s]) - 1;
  }
}

// Whether no two tokens of the batch (at most 64: a larger one says no) share a sequence.
bool one_token_per_sequence(std::span<const int32_t> seq) {
  constexpr size_t kMaxTokens = 64;
  if (seq.empty() || seq.size() > kMaxTokens) return false;
  for (size_t i = 0; i < seq.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (seq[j] == seq[i]) return false;
  return true;
}

// Whether a decode batch takes the short-context attention: one token per sequence (its k/v
// store then cannot hit a slot another block reads), every position below n (0: never).
bool short_context(std::span<const int32_t> pos, std::span<const int32_t> seq, int64_t n) {
  if (n <= 0) return false;
  for (const int32_t p : pos)
    if (p >= n) return false;
  return one_token_per_sequence(seq);
}

AttentionBatch attention_view(const int32_t* dm, int64_t T, int n_seq) {
  const int32_t* rows = dm + 2 * T + 2 * n_seq + 1;
  return AttentionBatch{dm, dm + T, dm + 2 * T, dm + 2 * T + n_seq, rows, rows + T, rows + 2 * T, T};
}

template <class A, class B>
bool same(std::span<const A> a, const std::vector<B>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (static_cast<int64_t>(a[i]) != static_cast<int64_t>(b[i])) return false;
  return true;
}

}  // namespace

void CudaBackend::begin_batch(const BatchView& batch, std::span<const int64_t> past_len,
                              std::span<const int64_t> logit_rows) {
  const auto T = static_cast<int64_t>(batch.tokens.size());
  const int n_seq = static_cast<int>(past_len.size());
  CurrentBatch& b = batch_;
  b.tokens.assign(batch.tokens.begin(), batch.tokens.end());
  b.pos.assign(batch.pos.begin(), batch.pos.end());
  b.seq.assign(batch.seq.begin(), batch.seq.end());
  b.past.assign(past_len.begin(), past_len.end());
  b.rows.assign(logit_rows.begin(), logit_rows.end());
  b.n_seq = n_seq;
  if (!capturing_) step_gap_.step_begins(stream_);
  // One upload: tokens[T] | attention metadata | logit rows.
  batch_host_.assign(b.tokens.begin(), b.tokens.end());
  const size_t meta_at = batch_host_.size();
  append_attention_meta(batch, past_len, n_seq, batch_host_);
  const size_t rows_at = batch_host_.size();
  batch_host_.insert(batch_host_.end(), b.rows.begin(), b.rows.end());
  grow(batch_dev_, batch_host_.size() * sizeof(int32_t));
  // From pageable memory the copy is staged before the call returns, so batch_host_ may change.
  check(cudaMemcpyAsync(batch_dev_.get(), batch_host_.data(), batch_host_.size() * sizeof(int32_t),
                        cudaMemcpyHostToDevice, stream_),
        "uploading the batch");
  batch_attention_ = batch_dev_.as<int32_t>() + meta_at;
  batch_rows_ = batch_dev_.as<int32_t>() + rows_at;
  b.valid = T > 0;
}

const int32_t* CudaBackend::batch_tokens(std::span<const int32_t> values) const {
  return batch_.valid && same(values, batch_.tokens) ? batch_dev_.as<int32_t>() : nullptr;
}

const int32_t* CudaBackend::batch_positions(std::span<const int32_t> values) const {
  return batch_.valid && same(values, batch_.pos) ? batch_attention_ : nullptr;  // pos[] leads the metadata
}

AttentionBatch CudaBackend::attention_batch(const BatchView& batch, std::span<const int64_t> past_len, int n_seq) {
  const auto T = static_cast<int64_t>(batch.pos.size());
  if (batch_.valid && batch_.n_seq == n_seq && same(batch.pos, batch_.pos) && same(batch.seq, batch_.seq) &&
      same(past_len, batch_.past))
    return attention_view(batch_attention_, T, n_seq);
  std::vector<int32_t> meta;
  append_attention_meta(batch, past_len, n_seq, meta);
  return attention_view(stage(Staged::Attention, meta), T, n_seq);
}

// ---- recording (CUDA graphs) ----------------------------------------------------------------------

std::string CudaBackend::recording_key(const std::string& key) const {
  // A step recorded with the short-context attention holds no split merge: it must not replay
  // past the bound, nor a split one below it. One whose split attention merges itself (one token
  // per sequence) must not replay for a batch with two tokens of a sequence.
  if (!batch_.valid) return key;
  if (short_context(batch_.pos, batch_.seq, short_keys_)) return key + "|short-attention";
  return attn_self_merge_ && one_token_per_sequence(batch_.seq) ? key + "|self-merge" : key;
}

bool CudaBackend::replay(const std::string& model_key) {
  auto it = graphs_.find(recording_key(model_key));
  if (it == graphs_.end()) return false;
  forget_rope_tables();  // the recording refilled them from its positions
  // The replayed kernels rewrite activations and their int8 / f16 copies without wrote(): no
  // record of what those copies hold survives a replay.
  q8_from_ = {};
  mma_from_ = {};
  gemm_.forget_inputs();
  check(cudaGraphLaunch(it->second, stream_), "replaying a recorded step");
  return true;
}

void CudaBackend::record_begin(const std::string& model_key) {
  // The first sighting of a key runs eagerly: it allocates whatever the ops need, so that the
  // recording (the second sighting) allocates nothing.
  constexpr size_t kMaxRecordings = 64;
  const std::string key = recording_key(model_key);
  int& n = seen_[key];
  if (n++ < 1 || n < 0 || graphs_.size() >= kMaxRecordings) return;
  forget_rope_tables();  // the recording must fill the tables it reads
  check(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeRelaxed), "starting a recording");
  recording_key_ = key;
  capturing_ = capture_ok_ = true;
}

void CudaBackend::forget_rope_tables() {
  for (RopeTable& t : rope_tables_) t.pos.clear();
}

void CudaBackend::abort_recording() {
  if (!capturing_) return;
  capturing_ = false;
  forget_rope_tables();  // the captured table kernels never ran
  cudaGraph_t g = nullptr;
  cudaStreamEndCapture(stream_, &g);
  if (g) cudaGraphDestroy(g);
  cudaGetLastError();
  // A buffer grown during the capture replaced one that earlier recordings use, and the old one
  // is freed now: those recordings must go too (as in record_end).
  if (!capture_ok_) forget_recordings();
  graveyard_.clear();
  seen_[recording_key_] = -1000000;  // never try this key again
}

bool CudaBackend::record_end() {
  if (!capturing_) return true;  // the ops ran eagerly
  capturing_ = false;
  // A failed recording ran nothing, so its tables were never filled; a launched one filled them
  // from the device positions. Either way the next eager op makes its own.
  forget_rope_tables();
  cudaGraph_t g = nullptr;
  cudaError_t e = cudaStreamEndCapture(stream_, &g);
  cudaGraphExec_t exec = nullptr;
  if (e == cudaSuccess && g && capture_ok_) e = cudaGraphInstantiate(&exec, g, 0);
  if (g) cudaGraphDestroy(g);
  graveyard_.clear();
  if (e != cudaSuccess || !exec) {
    cudaGetLastError();
    if (capture_ok_) {
      seen_[recording_key_] = -1000000;  // the graph failed: this key is not recorded again
    } else {
      forget_recordings();  // buffers moved (grow): every recording used the old ones
    }
    return false;  // nothing ran: the caller issues the ops again
  }
  graphs_[recording_key_] = exec;
  check(cudaGraphLaunch(exec, stream_), "launching a recorded step");
  return true;
}

void CudaBackend::forget_recordings() {
  for (auto& [key, exec] : graphs_) cudaGraphExecDestroy(exec);
  graphs_.clear();
  seen_.clear();
}

// ---- ops ----------------------------------------------------------------------------------------

void CudaBackend::embed(const WeightTensor& table, std::span<const int32_t> tokens, float scale, Act& out) {
  const int32_t* t = batch_tokens(tokens);
  if (!t) t = stage(Staged::Tokens, tokens);
  wrote(out);
  check_launch(launch_embed(device_weight(table), t, static_cast<int64_t>(tokens.size()), scale, out.data(), stream_),
               "embed");
}

ActQ8 CudaBackend::q8_buffer(int64_t T, int64_t K) {
  const size_t q_bytes = static_cast<size_t>(T * K);
  if (act_q8_.bytes() < q_bytes + static_cast<size_t>(T * K / 32) * 2 * sizeof(float)) q8_from_ = {};
  grow(act_q8_, q_bytes + static_cast<size_t>(T * K / 32) * 2 * sizeof(float));
  auto* q = act_q8_.as<int8_t>();
  return ActQ8{q, reinterpret_cast<float*>(q + q_bytes)};  // q_bytes is a multiple of 32
}

ActQ8 CudaBackend::quantize(const Act& x) {
  const int64_t T = x.rows(), K = x.cols();
  if (q8_from_.holds(x)) return q8_buffer(T, K);  // a producer made it
  const ActQ8 a = q8_buffer(T, K);
  if (!skip_.quantize)
    check_launch(launch_quantize_q8(x.data(), T, K, const_cast<int8_t*>(a.q), const_cast<float*>(a.ds), stream_),
                 "activation quantization");
  q8_from_.set(x);
  return a;
}

ActMma CudaBackend::quantize_mma(const Act& x) {
  const int64_t T = x.rows(), K = x.cols();
  const size_t bytes = act_mma_bytes(T, K);
  if (act_mma_.bytes() < bytes) mma_from_ = {};
  grow(act_mma_, bytes);
  const ActMma a = act_mma_view(act_mma_.get(), T, K);
  if (mma_from_.holds(x)) return a;
  check_launch(launch_quantize_mma(x.data(), T, K, a, stream_), "activation quantization (mma)");
  mma_from_.set(x);
  return a;
}

void CudaBackend::wrote(const Act& a) {
  const float* lo = a.data();
  const float* hi = lo + a.rows() * a.cols();
  gemm_.forget_input(lo, hi);
  q8_from_.forget_overlap(lo, hi);
  mma_from_.forget_overlap(lo, hi);
}

namespace {
constexpr int64_t kMaxMatvecTokens = 8;

void check_shapes(const WeightTensor& w, const Act& x, const Act& y) {
  if (x.cols() != w.cols || y.cols() != w.rows || y.rows() != x.rows())
    fail("{}: matmul shapes do not match ([{}, {}] x [{}, {}]ᵀ -> [{}, {}])", w.name, x.rows(), x.cols(), w.rows,
         w.cols, y.rows(), y.cols());
}
}  // namespace

void CudaBackend::matmul(const WeightTensor& w, const Act& x, Act& y) {
  const DeviceWeight& dw = device_weight(w);
  check_shapes(w, x, y);
  const int64_t T = x.rows();
  wrote(y);
  // (mma first: UNICORN_MMA_MIN_TOKENS may move it below 9 tokens for measurements.)
  if (matmul_mma_supports(w.type, w.cols, T)) {
    check_launch(launch_matmul_mma(dw, quantize_mma(x), static_cast<int>(T), y.data(), stream_), "mma matmul");
  } else if (T <= kMaxMatvecTokens && matvec_quant_supports(w.type)) {
    check_launch(launch_matvec_quant(dw, quantize(x), static_cast<int>(T), y.data(), stream_), "matvec");
  } else if (T <= kMaxMatvecTokens && !traits(w.type).quantized) {
    check_launch(launch_matvec_float(dw, x.data(), static_cast<int>(T), y.data(), stream_), "matvec");
  } else {
    gemm_.run(dw, x.data(), static_cast<int>(T), y.data(), stream_);  // tensor cores when built with cuBLAS
  }
}

void CudaBackend::matmul_many(std::span<const WeightTensor* const> ws, const Act& x, std::span<Act* const> ys) {
  const int64_t T = x.rows();
  if (T > kMaxMatvecTokens || ws.size() != ys.size() || ws.empty() || ws.size() > 3)
    return Backend::matmul_many(ws, x, ys);
  MatvecJob job;
  for (size_t i = 0; i < ws.size(); ++i) {
    job.w[i] = device_weight(*ws[i]);
    job.y[i] = ys[i]->data();
  }
  job.n = static_cast<int>(ws.size());
  // UNICORN_CUDA_MIXED_QKV=0: a K-quant mix as one launch per weight again (for measurements).
  static const bool mixed = env_switch("UNICORN_CUDA_MIXED_QKV", true);
  const bool one_type =
      std::all_of(ws.begin(), ws.end(), [&](const WeightTensor* w) { return w->type == ws[0]->type; });
  if (!matvec_multi_supports(job) || (!mixed && !one_type)) return Backend::matmul_many(ws, x, ys);
  for (size_t i = 0; i < ws.size(); ++i) check_shapes(*ws[i], x, *ys[i]);
  for (Act* y : ys) wrote(*y);
  check_launch(launch_matvec_multi(job, quantize(x), static_cast<int>(T), stream_), "matvec");
}

void CudaBackend::matmul_geglu(const WeightTensor& gate_w, const WeightTensor& up_w, const Act& x, Act& gate, Act& up) {
  const int64_t T = x.rows();
  if (T > kMaxMatvecTokens || !matvec_quant_supports(gate_w.type) || gate_w.type != up_w.type ||
      gate_w.rows != up_w.rows)
    return Backend::matmul_geglu(gate_w, up_w, x, gate, up);
  check_shapes(gate_w, x, gate);
  wrote(gate);
  check_launch(launch_matvec_geglu(device_weight(gate_w), device_weight(up_w), quantize(x), static_cast<int>(T),
                                   gate.data(), stream_),
               "geglu matvec");
}

void CudaBackend::rms_norm(const Act& x, const WeightTensor& w, float eps, Act& y) {
  const DeviceWeight& dw = device_weight(w);
  if (w.type != GgmlType::F32) fail("{}: norm weights must be F32 (got {})", w.name, type_name(w.type));
  wrote(y);
  check_launch(launch_rms_norm(x.data(), reinterpret_cast<const float*>(dw.q), x.rows(), x.cols(), w.cols, eps,
                               y.data(), stream_),
               "rms_norm");
}

const float2* CudaBackend::rope_cos_sin(std::span<const int32_t> pos, int64_t rows, int64_t head_dim, float base,
                                        float scale) {
  if (static_cast<int64_t>(pos.size()) != rows)  // the kernels read one table row per activation row
    fail("RoPE on {}: {} positions for {} rows", name_, pos.size(), rows);
  auto it = std::ranges::find_if(
      rope_tables_, [&](const RopeTable& t) { return t.head_dim == head_dim && t.base == base && t.scale == scale; });
  if (it == rope_tables_.end()) {
    rope_tables_.emplace_back();
    it = rope_tables_.end() - 1;
    it->head_dim = head_dim, it->base = base, it->scale = scale;
  }
  RopeTable& t = *it;
  if (!t.pos.empty() && std::ranges::equal(pos, t.pos)) return t.cs.as<float2>();
  const int32_t* p = batch_positions(pos);
  if (!p) p = stage(Staged::Positions, pos);
  const auto T = static_cast<int64_t>(pos.size());
  grow(t.cs, static_cast<size_t>(std::max<int64_t>(T, 1) * (head_dim / 2)) * sizeof(float2));
  check_launch(launch_rope_table(p, T, head_dim, base, scale, t.cs.as<float2>(), stream_), "rope table");
  t.pos.assign(pos.begin(), pos.end());
  return t.cs.as<float2>();
}

void CudaBackend::qk_norm_rope(Act& q, Act& k, const WeightTensor& q_norm, const WeightTensor& k_norm, float eps,
                               int64_t head_dim, std::span<const int32_t> pos, float base, float scale) {
  if (q_norm.type != GgmlType::F32 || k_norm.type != GgmlType::F32 || q_norm.cols != head_dim ||
      k_norm.cols != head_dim || head_dim > 512)
    return Backend::qk_norm_rope(q, k, q_norm, k_norm, eps, head_dim, pos, base, scale);
  wrote(q), wrote(k);
  if (skip_.qk_norm_rope) return;
  const float2* cs = rope_cos_sin(pos, q.rows(), head_dim, base, scale);
  check_launch(launch_qk_norm_rope(q.data(), k.data(), reinterpret_cast<const float*>(device_weight(q_norm).q),
                                   reinterpret_cast<const float*>(device_weight(k_norm).q), q.rows(),
                                   q.cols() / head_dim, k.cols() / head_dim, head_dim, eps, cs, stream_),
               "qk_norm_rope");
}

void CudaBackend::add_norm(Act& x, Act& o, const WeightTensor& post_w, const WeightTensor* next_w, float eps, Act& h) {
  if (post_w.type != GgmlType::F32 || (next_w && next_w->type != GgmlType::F32) || !add_norm_supports(x.cols()))
    return Backend::add_norm(x, o, post_w, next_w, eps, h);
  const auto* pw = reinterpret_cast<const float*>(device_weight(post_w).q);
  const auto* nw = next_w ? reinterpret_cast<const float*>(device_weight(*next_w).q) : nullptr;
  wrote(x), wrote(h);
  // h feeds the next matvec: quantize it here, saving that matvec its own quantization launch.
  ActQ8 q{};
  const int64_t T = x.rows();
  if (nw && T <= kMaxMatvecTokens) q = q8_buffer(T, x.cols());
  if (!skip_.add_norm)
    check_launch(launch_add_norm(x.data(), o.data(), pw, nw, T, x.cols(), eps, h.data(), const_cast<int8_t*>(q.q),
                                 const_cast<float*>(q.ds), stream_),
                 "add_norm");
  if (q.q) q8_from_.set(h);
}

void CudaBackend::rope(Act& x, int64_t head_dim, std::span<const int32_t> pos, float base, float scale) {
  wrote(x);
  check_launch(
      launch_rope(x.data(), x.rows(), x.cols(), head_dim, rope_cos_sin(pos, x.rows(), head_dim, base, scale), stream_),
      "rope");
}

void CudaBackend::qk_norm_rope_attention(Act& q, Act& k, const Act& v, const WeightTensor& q_norm,
                                         const WeightTensor& k_norm, float eps, std::span<const int32_t> pos,
                                         float base, float scale, LayerKv& kv, const BatchView& batch,
                                         std::span<const int64_t> past_len, const AttentionParams& p, Act& out) {
  // Decoding (few tokens, the per-(token, head) kernel): the attention kernel normalizes and
  // rotates q and the new keys itself (RoPE factors from the step's table), one launch fewer on
  // the step's critical path: 27B Q4_0 tg64 147.1 vs 145.5 tok/s on an H100 (NOTES.md, session 5).
  // UNICORN_FUSE_QK_ATTENTION=0 turns it off.
  const bool fuse = fuse_qk_attention_ && q.rows() <= kMaxMatvecTokens && q_norm.type == GgmlType::F32 &&
                    k_norm.type == GgmlType::F32 && q_norm.cols == p.head_dim && k_norm.cols == p.head_dim &&
                    attention_supports_head_dim(p.head_dim) && p.n_kv_heads > 0 && p.n_heads % p.n_kv_heads == 0 &&
                    !skip_.attention && !skip_.qk_norm_rope;
  if (!fuse)
    return Backend::qk_norm_rope_attention(q, k, v, q_norm, k_norm, eps, pos, base, scale, kv, batch, past_len, p, out);
  QkNormRope qk;
  qk.q_w = reinterpret_cast<const float*>(device_weight(q_norm).q);
  qk.k_w = reinterpret_cast<const float*>(device_weight(k_norm).q);
  qk.eps = eps;
  qk.cs = rope_cos_sin(pos, q.rows(), p.head_dim, base, scale);
  // Room for the most tokens this path takes at once, so that it grows (and forgets the recorded
  // steps) at most once per width.
  grow(k_rot_, static_cast<size_t>(kMaxMatvecTokens * k.cols()) * sizeof(float));
  qk.k_out = k_rot_.as<float>();
  wrote(q), wrote(k);  // scratch from here on (backend.h)
  attention_impl(q, k, v, kv, batch, past_len, p, out, &qk);
}

void CudaBackend::attention(const Act& q, const Act& k, const Act& v, LayerKv& kv_base, const BatchView& batch,
                            std::span<const int64_t> past_len, const AttentionParams& p, Act& out) {
  attention_impl(q, k, v, kv_base, batch, past_len, p, out, nullptr);
}

void CudaBackend::attention_impl(const Act& q, const Act& k, const Act& v, LayerKv& kv_base, const BatchView& batch,
                                 std::span<const int64_t> past_len, const AttentionParams& p, Act& out,
                                 const QkNormRope* qk) {
  auto& kv = static_cast<CudaLayerKv&>(kv_base);
  const int64_t T = q.rows();
  const int n_seq = kv.spec.n_seq;
  const AttentionBatch b = attention_batch(batch, past_len, n_seq);
  AttentionShape a{
      p.n_heads, p.n_kv_heads, p.head_dim, p.scale, p.window, kv.spec.capacity, kv.spec.type == GgmlType::F16};
  // Prompts: the tiled kernel reads each key and value once per tile of queries. (Only for batches
  // longer than any recorded one: its tile list is staged from the host.)
  // A short prompt gives too few (kv head, tile) blocks to fill the GPU: the per-(token, head)
  // kernel below then spreads better.
  constexpr int64_t kMinPrefillTokens = 32;
  std::vector<int32_t> tiles;
  if (!qk && T >= kMinPrefillTokens && attention_prefill_supports(a)) {
    const int per_tile = attention_prefill_tokens_per_tile(a);
    std::vector<int32_t> count(static_cast<size_t>(n_seq), 0);
    for (int32_t s : batch.seq) ++count[static_cast<size_t>(s)];
    for (int s = 0; s < n_seq; ++s)
      for (int32_t first = 0; first < count[static_cast<size_t>(s)]; first += per_tile) {
        tiles.push_back(s);
        tiles.push_back(first);
      }
    if (!force_tiled_prompt_attention_ && static_cast<int64_t>(tiles.size() / 2) * p.n_kv_heads < sm_count_ / 2 &&
        T < 256)
      tiles.clear();
  }
  if (!tiles.empty()) {
    wrote(out);
    const int32_t* dt = stage(Staged::Tiles, tiles);
    const int n_tiles = static_cast<int>(tiles.size() / 2);
    if (tc_prompt_attention_ && attention_prefill_mma_supports(a))
      check_launch(launch_attention_prefill_mma(q.data(), k.data(), v.data(), kv.k.get(), kv.v.get(), b, a, dt, n_tiles,
                                                out.data(), stream_),
                   "prefill attention (tensor cores)");
    else
      check_launch(launch_attention_prefill(q.data(), k.data(), v.data(), kv.k.get(), kv.v.get(), b, a, dt, n_tiles,
                                            out.data(), stream_),
                   "prefill attention");
    check_launch(
        launch_kv_store(k.data(), v.data(), kv.k.get(), kv.v.get(), b, kv.row, kv.spec.capacity, a.kv_f16, stream_),
        "kv store");
    return;
  }
  // Few (token, head) blocks and many keys: split the keys so that the GPU fills up. The split
  // count follows the cache's capacity (a bound on any row's keys), not this batch's positions,
  // so that a recorded step launches the same grid at every position; each block finds its own
  // share of the keys on the device, and the shares of short rows are empty.
  // A short context (short_context: a choice made from the batch alone, as recording_key's is)
  // takes one kernel: no split, and its blocks store k, v and quantize the output themselves.
  // The store cannot hit a slot that a block still reads at any position: with one token per
  // sequence, slot pos % capacity held position pos - capacity, which lies before the token's
  // keys (a ring holds at least the window; a global cache holds every position).
  const bool short_ctx =
      qk && T <= kMaxMatvecTokens && p.head_dim % 32 == 0 && short_context(batch.pos, batch.seq, short_keys_);
  int n_split = 1;
  const int64_t blocks = T * p.n_heads;
  const int64_t n_max = kv.spec.capacity;
  constexpr int64_t kMaxSplits = 64;
  // Blocks per SM to aim at, by head size unless set: 256-wide heads' split blocks (8 warps at
  // ~118 registers) fit 2 per SM, so 4 per SM is two waves; 8 (four waves) gave 12B tg64 @ d4096
  // 326.5 against 334.4, and the other sizes of 256-wide heads have too few heads to reach either
  // bound (4B 8 heads, 1B and 270M 4: 64 splits, the most, either way). 27B's tensor-core blocks
  // keep 8 (181.3 against 180.4 at 4). NOTES.md session 23, H200.
  const int64_t blocks_per_sm = attn_blocks_per_sm_ > 0 ? attn_blocks_per_sm_ : (p.head_dim > 128 ? 4 : 8);
  const int64_t min_keys = attn_min_keys_, target_blocks = blocks_per_sm * static_cast<int64_t>(sm_count_);
  if (!short_ctx && blocks < target_blocks && n_max > min_keys) {
    const int64_t want = (target_blocks + blocks - 1) / blocks;
    n_split = static_cast<int>(std::min({want, (n_max + min_keys - 1) / min_keys, kMaxSplits}));
  }
  wrote(out);
  float* partial = nullptr;
  int* merge_count = nullptr;
  if (n_split > 1) {
    grow(partial_, static_cast<size_t>(blocks * n_split * (p.head_dim + 2)) * sizeof(float));
    partial = partial_.as<float>();
    // The split kernel merges itself where no sequence has two tokens here (kernels.h).
    if (attn_self_merge_ && one_token_per_sequence(batch.seq)) merge_count = merge_counts(blocks);
  }
  // Store after every read: in a ring a new position may overwrite one still needed above. With
  // splits, the merge kernel runs after all reads: it stores k and v, and quantizes the output for
  // the o matvec (T <= 8), so neither needs a launch of its own.
  const bool merged = n_split > 1 || short_ctx;  // k/v stored and output quantized by the attention
  const int64_t K = out.cols();
  ActQ8 q8{};
  if (merged && T <= kMaxMatvecTokens && p.head_dim % 32 == 0) q8 = q8_buffer(T, K);
  if (skip_.attention) {
    if (q8.q) q8_from_.set(out);
    return;
  }
  check_launch(
      launch_attention(q.data(), k.data(), v.data(), kv.k.get(), kv.v.get(), b, a, n_split, partial, out.data(),
                       stream_, merged ? kv.k.get() : nullptr, merged ? kv.v.get() : nullptr, const_cast<int8_t*>(q8.q),
                       const_cast<float*>(q8.ds), qk ? *qk : QkNormRope{}, merge_count),
      "attention");
  if (!merged)
    check_launch(launch_kv_store(qk ? qk->k_out : k.data(), v.data(), kv.k.get(), kv.v.get(), b, kv.row,
                                 kv.spec.capacity, a.kv_f16, stream_),
                 "kv store");
  if (q8.q) q8_from_.set(out);
}

int* CudaBackend::merge_counts(int64_t n) {
  // Zero once per allocation; the kernels leave the counts zero. A recording that grew the
  // buffer is given up (grow) and its memset never runs: the eager run that follows zeroes it.
  if (grow(merge_count_, static_cast<size_t>(n) * sizeof(int))) merge_count_zeroed_ = false;
  if (!merge_count_zeroed_) {
    check(cudaMemsetAsync(merge_count_.get(), 0, merge_count_.bytes(), stream_), "zeroing the attention merge counts");
    merge_count_zeroed_ = !capturing_;
  }
  return merge_count_.as<int>();
}

void CudaBackend::gelu_mul(const Act& gate, const Act& up, Act& out) {
  wrote(out);
  check_launch(launch_gelu_mul(gate.data(), up.data(), out.data(), gate.rows() * gate.cols(), stream_), "gelu_mul");
}

void CudaBackend::add(Act& x, const Act& y) {
  wrote(x);
  check_launch(launch_add(x.data(), y.data(), x.rows() * x.cols(), stream_), "add");
}

void CudaBackend::gather_rows(const Act& x, std::span<const int64_t> rows, Act& out) {
  const int32_t* dr = batch_.valid && same(rows, batch_.rows) ? batch_rows_ : nullptr;
  if (!dr) {
    std::vector<int32_t> r(rows.begin(), rows.end());
    dr = stage(Staged::Rows, r);
  }
  wrote(out);
  check_launch(launch_gather_rows(x.data(), x.cols(), dr, static_cast<int64_t>(rows.size()), out.data(), stream_),
               "gather_rows");
}

void CudaBackend::softcap(Act& x, float cap) {
  wrote(x);
  check_launch(launch_softcap(x.data(), x.rows() * x.cols(), cap, stream_), "softcap");
}

void CudaBackend::top_k(const Act& x, int k, int64_t n_allowed, Act& out) {
  const int64_t n = n_allowed > 0 ? std::min(n_allowed, x.cols()) : x.cols();
  if (k > top_k_max() || out.rows() != x.rows() || out.cols() != 2 * k) {
    if (capturing_) {  // the host fallback synchronizes: give the recording up, the ops run again eagerly
      capture_ok_ = false;
      return;
    }
    return Backend::top_k(x, k, n_allowed, out);
  }
  grow(argmax_, static_cast<size_t>(x.rows()) * sizeof(unsigned long long));
  wrote(out);
  check_launch(launch_top_k(x.data(), x.rows(), x.cols(), n, k, out.data(), argmax_.as<unsigned long long>(), stream_),
               "top_k");
}

}  // namespace cuda
}  // namespace unicorn
