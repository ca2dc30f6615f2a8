// Matmul benchmark on the Gemma 3 270M's shapes and types (Q4_K_M file: token_embd Q8_0, attn
// q/k/gate/up Q5_0, attn_v Q8_0 or Q5_0, attn_output Q4_K, ffn_down Q6_K or Q4_K).
//
// Prints the machine's memory read bandwidth, each shape at T = 1 and T = 512 (GFLOP/s and
// weight GB/s), the matmul time of one decode step over a whole synthetic model (18 layers of
// distinct weights + the tied 262144×640 output projection, so weights stream from memory as
// in real decoding), the same step for 2, 4, 6, 7 and 8 sequences decoded together (from 6 through
// the tiled kernel and through the row dots), and the matmul time of a 512-token prefill.
//
// usage: bench_matmul [--threads N] [--isa scalar|avx2|avx512] [--reps N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "backends/cpu/cpu_matmul.h"
#include "core/half.h"
#include "core/thread_pool.h"
#include "model/synthetic.h"

using namespace unicorn;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

uint64_t g_rng = 0x9E3779B97F4A7C15ull;
uint64_t next_random() {
  g_rng ^= g_rng << 13;
  g_rng ^= g_rng >> 7;
  g_rng ^= g_rng << 17;
  return g_rng;
}

// Random blocks with sane f16 scales (the kernels' speed does not depend on the values).
std::vector<uint8_t> random_weight_bytes(GgmlType type, int64_t K, int64_t N) {
  const size_t bytes = row_bytes(type, K) * static_cast<size_t>(N);
  std::vector<uint8_t> w(bytes);
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t r = next_random();
    std::memcpy(w.data() + i, &r, 8);
  }
  const uint16_t h = f32_to_f16(0.01f);
  const size_t block = traits(type).block_bytes;
  size_t at0 = 0, at1 = SIZE_MAX;  // offsets of the f16 scale fields
  switch (type) {
    case GgmlType::Q4_K:
    case GgmlType::Q5_K:
      at1 = 2;
      break;
    case GgmlType::Q6_K:
      at0 = 208;
      break;
    case GgmlType::Q2_K:
      at0 = 80;
      at1 = 82;
      break;
    case GgmlType::Q3_K:
      at0 = 108;
      break;
    case GgmlType::Q4_1:
    case GgmlType::Q5_1:
      at1 = 2;
      break;
    default:
      break;
  }
  for (size_t b = 0; b < bytes; b += block) {
    std::memcpy(w.data() + b + at0, &h, 2);
    if (at1 != SIZE_MAX) std::memcpy(w.data() + b + at1, &h, 2);
  }
  return w;
}

struct Matrix {
  std::string name;
  GgmlType type;
  int64_t K, N;
  int per_token;  // how many such matmuls one token runs (layers using this type)
};

// The 270M Q4_K_M file's matmuls per token (9 layers use Q8_0 attn_v / Q6_K ffn_down, 9 not).
const std::vector<Matrix> kModel = {
    {"attn_q", GgmlType::Q5_0, 640, 1024, 18},      {"attn_k", GgmlType::Q5_0, 640, 256, 18},
    {"attn_v", GgmlType::Q8_0, 640, 256, 9},        {"attn_v", GgmlType::Q5_0, 640, 256, 9},
    {"attn_output", GgmlType::Q4_K, 1024, 640, 18}, {"ffn_gate", GgmlType::Q5_0, 640, 2048, 18},
    {"ffn_up", GgmlType::Q5_0, 640, 2048, 18},      {"ffn_down", GgmlType::Q6_K, 2048, 640, 9},
    {"ffn_down", GgmlType::Q4_K, 2048, 640, 9},     {"output", GgmlType::Q8_0, 640, 262144, 1},
};

// Best of a few full-buffer read passes, GB/s.
double read_bandwidth(ThreadPool& pool, size_t bytes) {
  std::vector<uint64_t> buf(bytes / 8, 1);
  std::vector<uint64_t> sums(static_cast<size_t>(pool.size()) * 8);
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    const auto t0 = Clock::now();
    pool.parallel_for(
        static_cast<int64_t>(buf.size()),
        [&](int64_t b, int64_t e, int tid) {
          uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
          for (int64_t i = b; i + 4 <= e; i += 4) {
            s0 += buf[i];
            s1 += buf[i + 1];
            s2 += buf[i + 2];
            s3 += buf[i + 3];
          }
          sums[static_cast<size_t>(tid) * 8] = s0 + s1 + s2 + s3;
        },
        4096);
    best = std::max(best, static_cast<double>(bytes) / seconds_since(t0) / 1e9);
  }
  return best;
}

// Best of `reps` runs, each `calls` calls.
double time_calls(int reps, int calls, const std::function<void()>& fn) {
  double best = 1e30;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = Clock::now();
    for (int c = 0; c < calls; ++c) fn();
    best = std::min(best, seconds_since(t0) / calls);
  }
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 2, reps = 5;
  const MatmulKernels* kernels = &best_matmul_kernels();
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--threads" && i + 1 < argc) {
      threads = std::stoi(argv[++i]);
    } else if (a == "--reps" && i + 1 < argc) {
      reps = std::stoi(argv[++i]);
    } else if (a == "--isa" && i + 1 < argc) {
      const std::string isa = argv[++i];
      kernels = matmul_kernels(isa == "scalar" ? Isa::Scalar : isa == "avx2" ? Isa::Avx2 : Isa::Avx512);
      if (!kernels) {
        std::fprintf(stderr, "this CPU cannot run %s kernels\n", isa.c_str());
        return 1;
      }
    } else {
      std::fprintf(stderr, "usage: bench_matmul [--threads N] [--isa scalar|avx2|avx512] [--reps N]\n");
      return 1;
    }
  }
  ThreadPool pool(threads);
  std::printf("kernels: %s, threads: %d\n", kernels->name, threads);
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {  // other work on the machine skews every number below
    char line[128] = {};
    if (std::fgets(line, sizeof line, f)) std::printf("load average: %s", line);
    std::fclose(f);
  }
  std::printf("memory read bandwidth (512 MiB, %d threads): %.1f GB/s\n\n", threads,
              read_bandwidth(pool, 512ull << 20));

  // One set of weights per layer so decode streams them like the real model.
  struct Loaded {
    Matrix m;
    std::vector<std::vector<uint8_t>> copies;
  };
  std::vector<Loaded> model;
  for (const Matrix& m : kModel) {
    Loaded l{m, {}};
    for (int c = 0; c < m.per_token; ++c) l.copies.push_back(random_weight_bytes(m.type, m.K, m.N));
    model.push_back(std::move(l));
  }
  std::vector<float> x(512 * 2048), y(static_cast<size_t>(512) * 2048 + size_t{8} * 262144);  // 8 tokens of logits
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(static_cast<int64_t>(next_random() % 2001) - 1000) / 500.0f;

  std::printf("%-12s %-5s %5s %7s %4s %10s %9s %8s\n", "matrix", "type", "K", "N", "T", "ms/call", "GFLOP/s", "GB/s");
  double prefill = 0;
  for (const Loaded& l : model) {
    const Matrix& m = l.m;
    const double wbytes = static_cast<double>(row_bytes(m.type, m.K)) * static_cast<double>(m.N);
    for (int64_t T : {int64_t{1}, int64_t{512}}) {
      if (m.name == "output" && T > 1) continue;  // prefill needs logits of the last token only
      size_t copy = 0;
      const double s = time_calls(reps, T == 1 ? std::max(1, m.per_token) : 1, [&] {
        const WeightTensor w{m.name, m.type, m.N, m.K, l.copies[copy++ % l.copies.size()].data()};
        matmul_with(*kernels, pool, w, x.data(), T, y.data());
      });
      const double flops = 2.0 * static_cast<double>(m.K) * static_cast<double>(m.N) * static_cast<double>(T);
      std::printf("%-12s %-5s %5ld %7ld %4ld %10.3f %9.1f %8.1f\n", m.name.c_str(),
                  std::string(type_name(m.type)).c_str(), static_cast<long>(m.K), static_cast<long>(m.N),
                  static_cast<long>(T), s * 1e3, flops / s / 1e9, wbytes / s / 1e9);
      if (T == 512 || m.name == "output") prefill += s * m.per_token;
    }
  }

  // One decode step in model order, over every layer's own weights.
  double weight_bytes = 0;
  for (const Loaded& l : model) weight_bytes += static_cast<double>(row_bytes(l.m.type, l.m.K)) * l.m.N * l.m.per_token;
  auto find = [&](const char* name, GgmlType type) -> const Loaded& {
    for (const Loaded& l : model)
      if (l.m.name == name && l.m.type == type) return l;
    std::abort();
  };
  int64_t step_tokens = 1;                    // tokens per decode step: 1, or several sequences decoded together
  int64_t row_dot_max = kTiledMinTokens - 1;  // the most tokens through the row dots (cpu_matmul.h)
  auto run = [&](const Loaded& l, size_t copy) {
    const WeightTensor w{l.m.name, l.m.type, l.m.N, l.m.K, l.copies[copy].data()};
    matmul_with(*kernels, pool, w, x.data(), step_tokens, y.data(), row_dot_max);
  };
  auto decode_step = [&] {
    size_t n_more = 0, n_less = 0;  // layers so far with / without the "more bits" types
    for (size_t layer = 0; layer < 18; ++layer) {
      // The file's attn_v (640-value rows) and ffn_down (2048) types by layer: Q8_0 / Q6_K on the
      // "more bits" layers (9 of the 18), Q5_0 / Q4_K on the others.
      const auto l = static_cast<int64_t>(layer);
      const GgmlType v = q4_k_m_type("v", l, 18, 640), down = q4_k_m_type("down", l, 18, 2048);
      const size_t copy = down == GgmlType::Q6_K ? n_more++ : n_less++;
      run(find("attn_q", GgmlType::Q5_0), layer);
      run(find("attn_k", GgmlType::Q5_0), layer);
      run(find("attn_v", v), copy);
      run(find("attn_output", GgmlType::Q4_K), layer);
      run(find("ffn_gate", GgmlType::Q5_0), layer);
      run(find("ffn_up", GgmlType::Q5_0), layer);
      run(find("ffn_down", down), copy);
    }
    run(model.back(), 0);
  };
  const double decode = time_calls(reps, 3, decode_step);
  std::printf(
      "\ndecode step (all matmuls of one token, %.0f MB of weights): %.2f ms  (%.1f GB/s, matmul-only ceiling %.0f "
      "tok/s)\n",
      weight_bytes / 1e6, decode * 1e3, weight_bytes / decode / 1e9, 1.0 / decode);
  // Batched decode: one step for T sequences at once (every matmul at T tokens; the output
  // projection too, as each sequence needs its logits).
  // From kTiledMinTokens tokens the step is timed twice: through the tiled kernel (a prompt of
  // that many tokens) and through the row dots (what CpuBackend gives a decode step of that many
  // sequences, up to kMaxRowDotTokens).
  for (int64_t T = 2; T <= kMaxRowDotTokens; ++T) {
    if (T == 3 || T == 5) continue;
    step_tokens = T;
    for (const int64_t max : {kTiledMinTokens - 1, kMaxRowDotTokens}) {
      if (max == kMaxRowDotTokens && T < kTiledMinTokens) continue;
      row_dot_max = max;
      const double t = time_calls(reps, 3, decode_step);
      std::printf("decode step of %ld sequences%s: %.2f ms  (%.2fx one token's; matmul-only ceiling %.0f tok/s)\n",
                  static_cast<long>(T), T < kTiledMinTokens ? "" : (max < T ? " (tiled)" : " (row dots)"), t * 1e3,
                  t / decode, static_cast<double>(T) / t);
    }
  }
  step_tokens = 1;
  row_dot_max = kTiledMinTokens - 1;
  std::printf("prefill 512 tokens (all matmuls + last-token logits): %.3f s  (matmul-only ceiling %.0f tok/s)\n",
              prefill, 512.0 / prefill);
  return 0;
}
