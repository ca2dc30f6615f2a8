// The one-token matvec's layouts on the CUDA backend against each other and the CPU: row pairs
// that share activation loads, split and paired K-quant rows, warps per row (2 or 4 for wide
// rows, the cap for short ones), 4 rows per warp, the K-quant q/k/v mixes in one launch, and the
// fused launches (q/k/v, GeGLU) on one quantized input. Every test skips when the build has no
// CUDA backend or the machine no device.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "backends/cpu/cpu_backend.h"
#include "cuda_matvec_support.h"
#include "cuda_test_support.h"
#include "test_support.h"
#ifdef UNICORN_HAVE_CUDA
#include "backends/cuda/kernels.h"
#include "backends/cuda/matvec_shape.h"
#endif

using namespace unicorn;
using namespace unicorn::cudatest;

namespace {

TEST_F(CudaOps, RowPairsGiveTheSameResultsWithSharedOrPerRowActivationLoads) {
  // One token with two weight rows per warp group (the 32-value formats' row pairs; the GeGLU
  // pairs of the formats with a separate load): one activation load per pair (the default) must give what a
  // load per row gives, row for row, also for the last group's missing second row (odd rows).
  Rng rng(31);
  const int64_t in = 1024, rows = 1023;
  std::vector<std::unique_ptr<HostWeight>> keep;  // alive: no host address comes back for another weight
  for (GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q4_K,
                        GgmlType::Q5_K, GgmlType::Q6_K}) {
    for (int i = 0; i < 3; ++i) keep.push_back(std::make_unique<HostWeight>(random_weight(type, rows, in, rng)));
    const HostWeight &w = *keep[keep.size() - 3], &g = *keep[keep.size() - 2], &u = *keep[keep.size() - 1];
    for (const HostWeight* h : {&w, &g, &u}) gpu->load_weight(h->t);
    const std::vector<float> x = random_floats(static_cast<size_t>(in), rng);
    auto run = [&](bool shared) {
      MatvecSwitches switches;
      switches.shared_act(shared);
      Act xa = upload(*gpu, x, 1, in), y = gpu->alloc(1, rows), gate = gpu->alloc(1, rows), up = gpu->alloc(1, rows);
      gpu->matmul(w.t, xa, y);
      gpu->matmul_geglu(g.t, u.t, xa, gate, up);
      return std::pair{to_host(*gpu, y), to_host(*gpu, gate)};
    };
    const auto [y_shared, gate_shared] = run(true);
    const auto [y_rows, gate_rows] = run(false);
    EXPECT_LE(nmse(y_shared, y_rows), 1e-12) << type_name(type) << " matvec";
    EXPECT_LE(nmse(gate_shared, gate_rows), 1e-12) << type_name(type) << " GeGLU";
    Act xc = upload(*cpu, x, 1, in), yc = cpu->alloc(1, rows);
    cpu->matmul(w.t, xc, yc);
    EXPECT_LE(nmse(y_shared, to_host(*cpu, yc)), 5e-4) << type_name(type) << " matvec against the CPU";
  }
}

TEST_F(CudaOps, KQuantSubBlockRowsGiveTheSameResultsUnderEveryLayout) {
  // One token of Q4_K, Q5_K and Q6_K in their planes (32-value sub-block items, Q4_0's layouts;
  // Q6_K's 4 warps per row is its rule for 129-192 items, wide_warps applies to Q4_0, Q4_K and
  // Q5_K): row pairs sharing
  // each activation load (the default) against a load per row, and 2 warps per row (the default
  // for 129-192 items, 3 items per lane in one pass) against 4, row for row, for long rows (the
  // row over the block), 27B's 5376-wide rows and short ones, an odd row count (the last pair's
  // missing row is read but not stored) and a q/k/v launch of three weights of the type, whose
  // blocks meet at the weights' edges; then against the CPU.
  Rng rng(41);
  for (const GgmlType type : {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
    for (const int64_t in : {int64_t{16384}, int64_t{5376}, int64_t{1024}}) {
      gpu = cuda_backend_or_null();  // a fresh device per width: freed host bytes may be reused
      HostWeight w = random_weight(type, 37, in, rng), wk = random_weight(type, 19, in, rng);
      HostWeight wv = random_weight(type, 21, in, rng);
      for (HostWeight* h : {&w, &wk, &wv}) gpu->load_weight(h->t);
      const std::vector<float> x = random_floats(static_cast<size_t>(in), rng);
      auto run = [&](bool shared, int wide_warps) {
        MatvecSwitches switches;
        switches.shared_act(shared);
        switches.wide_warps(wide_warps);
        Act xa = upload(*gpu, x, 1, in), y = gpu->alloc(1, 37), q = gpu->alloc(1, 37), k = gpu->alloc(1, 19),
            v = gpu->alloc(1, 21);
        gpu->matmul(w.t, xa, y);
        const WeightTensor* ws[] = {&w.t, &wk.t, &wv.t};
        Act* ys[] = {&q, &k, &v};
        gpu->matmul_many(ws, xa, ys);
        return std::array{to_host(*gpu, y), to_host(*gpu, q), to_host(*gpu, k), to_host(*gpu, v)};
      };
      const auto base = run(true, 2);
      for (const auto& [shared, warps] : {std::pair{false, 2}, std::pair{true, 4}, std::pair{false, 4}}) {
        const auto other = run(shared, warps);
        for (size_t j = 0; j < base.size(); ++j)
          EXPECT_LE(nmse(other[j], base[j]), 1e-12)
              << type_name(type) << " in " << in << (shared ? ", shared" : ", per-row") << " loads, " << warps
              << " warps, output " << j;
      }
      Act xc = upload(*cpu, x, 1, in), yc = cpu->alloc(1, 37);
      cpu->matmul(w.t, xc, yc);
      EXPECT_LE(nmse(base[0], to_host(*cpu, yc)), 5e-4) << type_name(type) << " in " << in << ": against the CPU";
    }
}

TEST_F(CudaOps, KQuantHeadLayoutMatchesCpu) {
  // One token of a K-quant weight alone with 65,536+ rows of at most 192 items (the output heads:
  // Q6_K in Q4_0 and Q4_K_M files, Q4_K in q4_mix, Q5_K in Q5_K files): one warp per row pair, 3
  // items per lane and pass, with an odd row count (the last pair's missing row is read but not
  // stored); with shared and per-row activation loads, against each other and the CPU. 2560-wide
  // (4B's 80 items: one pass) and 5376-wide (27B's 168: two passes).
  Rng rng(43);
  for (const GgmlType type : {GgmlType::Q6_K, GgmlType::Q4_K, GgmlType::Q5_K})
    for (const int64_t in : {int64_t{2560}, int64_t{5376}}) {
      gpu = cuda_backend_or_null();  // a fresh device per shape: freed host bytes may be reused
      const int64_t rows = 65537;
      HostWeight w = random_weight(type, rows, in, rng);
      gpu->load_weight(w.t);
      const std::vector<float> x = random_floats(static_cast<size_t>(in), rng);
      auto run = [&](bool shared) {
        MatvecSwitches switches;
        switches.shared_act(shared);
        Act xa = upload(*gpu, x, 1, in), y = gpu->alloc(1, rows);
        gpu->matmul(w.t, xa, y);
        return to_host(*gpu, y);
      };
      const std::vector<float> pairs = run(true), rows_each = run(false);
      EXPECT_LE(nmse(pairs, rows_each), 1e-12) << type_name(type) << " " << in << " wide";
      Act xc = upload(*cpu, x, 1, in), yc = cpu->alloc(1, rows);
      cpu->matmul(w.t, xc, yc);
      EXPECT_LE(nmse(pairs, to_host(*cpu, yc)), 5e-4) << type_name(type) << " " << in << " wide: against the CPU";
    }
}

TEST_F(CudaOps, Q4_0RowsGiveTheSameResultsOverTwoOrFourWarps) {
  // One token of Q4_0 rows 27B-wide (168 items: three per lane in one pass over 2 warps, the
  // default) and 4096-wide (128) against 4 warps per row with two items per lane and pass, for a
  // matvec with a partly empty last block, a q/k/v launch whose blocks meet at the weights'
  // boundaries and a GeGLU pair; both against the CPU too. Fewer warps per row apply only where
  // warps_per_row does not ask for more (48 warps per SM): 2 warps need 48 rows per SM (24 row
  // pairs; 6,336 rows on an H100's 132 SMs), so the row counts follow the device's SMs. The
  // 4096-wide rows that are not a GeGLU pair take one warp per row pair by default (o_warps 1,
  // four items per lane): they run that way too, against both.
  Rng rng(32);
  std::vector<std::unique_ptr<HostWeight>> all;  // alive: no host address comes back for another weight
  for (const int64_t in : {int64_t{5376}, int64_t{4096}}) {
#ifdef UNICORN_HAVE_CUDA
    const int64_t r = 48 * int64_t{cuda::device_sm_count()} + 1;
#else
    const int64_t r = 6337;
#endif
    const int64_t half = r / 2 + 1;  // odd row counts: blocks straddle the q/k/v boundaries
    std::vector<HostWeight*> keep;
    for (const int64_t rows : {r, r + 3, half, half, r, r}) {
      all.push_back(std::make_unique<HostWeight>(random_weight(GgmlType::Q4_0, rows, in, rng)));
      keep.push_back(all.back().get());
    }
    for (const HostWeight* h : keep) gpu->load_weight(h->t);
    const std::vector<float> x = random_floats(static_cast<size_t>(in), rng);
    auto run = [&](Backend& b, int warps, int o_warps = 0) {
      MatvecSwitches switches;
      switches.wide_warps(warps);
      switches.o_warps(o_warps);
      return matvec_trio(b, keep, x);
    };
    const auto two = run(*gpu, 2), four = run(*gpu, 4), one = run(*gpu, 2, 1), cpu_out = run(*cpu, 4);
    for (size_t j = 0; j < two.size(); ++j) {
      EXPECT_LE(nmse(two[j], four[j]), 1e-10) << "in " << in << ", output " << j;
      EXPECT_LE(nmse(one[j], four[j]), 1e-10) << "in " << in << ", output " << j << ", one warp per row pair";
      EXPECT_LE(nmse(two[j], cpu_out[j]), 5e-4) << "in " << in << ", output " << j;
    }
  }
}

TEST_F(CudaOps, ShortRowsGiveTheSameResultsUnderEveryWarpCap) {
  // One token of the 32-value formats at the small models' widths (270M 640: 20 items, 1B 1152:
  // 36, 4B 2560: 80) in matrices of few rows, for which warps_per_row asks 4 warps per row: a
  // matvec, a q/k/v launch and a GeGLU pair with the cap on warps per row off (0) and at 1, 2
  // (the default) and 3 items per lane, each against the others and the CPU.
  // The K-quants (Q4_K, Q5_K, Q6_K) at 4B's width (80 sub-blocks of 32) the same way.
  Rng rng(33);
  std::vector<std::unique_ptr<HostWeight>> all;  // alive: no host address comes back for another weight
  for (const GgmlType type : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0,
                              GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K})
    for (const int64_t in : {int64_t{640}, int64_t{1152}, int64_t{2560}}) {
      if (traits(type).block_size == 256 && in % 256 != 0) continue;
      std::vector<HostWeight*> keep;
      for (const int64_t rows :
           {int64_t{641}, int64_t{1024}, int64_t{255}, int64_t{255}, int64_t{2048}, int64_t{2048}}) {
        all.push_back(std::make_unique<HostWeight>(random_weight(type, rows, in, rng)));
        keep.push_back(all.back().get());
      }
      for (const HostWeight* h : keep) gpu->load_weight(h->t);
      const std::vector<float> x = random_floats(static_cast<size_t>(in), rng);
      auto run = [&](Backend& b, int n) {
        MatvecSwitches switches;
        switches.item_warps(n);
        return matvec_trio(b, keep, x);
      };
      const auto uncapped = run(*gpu, 0), cpu_out = run(*cpu, 0);
      for (const int n : {1, 2, 3}) {
        const auto capped = run(*gpu, n);
        for (size_t j = 0; j < capped.size(); ++j) {
          const std::string what = fmt::format("{} in {}, cap {}, output {}", type_name(type), in, n, j);
          EXPECT_LE(nmse(capped[j], uncapped[j]), 1e-10) << what;
          EXPECT_LE(nmse(capped[j], cpu_out[j]), 5e-4) << what;
        }
      }
    }
}

TEST_F(CudaOps, ShortRowsGiveTheSameResultsFourRowsPerWarp) {
  // One token of Q4_0 and Q8_0 weights with rows of 20 and 32 items (the 270M's output head and
  // its o projection), row counts that leave 1, 2 or 3 rows of the last group past the end, 4 rows
  // per warp (at any row count) against row pairs, and against the CPU.
  Rng rng(34);
  std::vector<std::unique_ptr<HostWeight>> all;  // alive: no host address comes back for another weight
  for (const GgmlType type : {GgmlType::Q4_0, GgmlType::Q8_0})
    for (const int64_t in : {int64_t{640}, int64_t{1024}})
      for (const int64_t rows : {int64_t{20001}, int64_t{642}, int64_t{641}}) {
        all.push_back(std::make_unique<HostWeight>(random_weight(type, rows, in, rng)));
        const HostWeight& w = *all.back();
        gpu->load_weight(w.t);
        const std::vector<float> x = random_floats(static_cast<size_t>(in), rng);
        auto run = [&](Backend& b, int64_t min_rows) {
          MatvecSwitches switches;
          switches.quad_rows(min_rows);
          Act xa = upload(b, x, 1, in), y = b.alloc(1, rows);
          b.matmul(w.t, xa, y);
          return to_host(b, y);
        };
        const auto pairs = run(*gpu, 0), quads = run(*gpu, 1), cpu_out = run(*cpu, 0);
        const std::string what = fmt::format("{} {} x {}", type_name(type), rows, in);
        EXPECT_LE(nmse(quads, pairs), 1e-12) << what;
        EXPECT_LE(nmse(quads, cpu_out), 5e-4) << what;
      }
}

TEST_F(CudaOps, MixedKQuantQkvSharesOneLaunchAtModelRowCounts) {
  // q4_mix's Q4_K q, Q5_K k, Q6_K v in one matvec launch, with each weight's last block partly
  // empty before the next weight's first (odd row counts: a row pair's missing row is read but not
  // stored): rows enough for one warp per row (a template constant at one token) and few rows
  // 27B-wide (4 warps per row, read at run time). One token also without row pairs (q4k_pairs 0, a
  // measurement setting; the default 3 pairs every body).
  Rng rng(23);
  struct Shape {
    int64_t in, rows[3];
  };
  struct Case {
    int64_t T;
    int pairs = -1;  // q4k_pairs mode; -1 the default
  };
  for (const Shape sh : {Shape{1024, {4101, 2049, 2051}}, Shape{5376, {601, 300, 301}}}) {
    gpu = cuda_backend_or_null();  // a fresh device per shape: freed host bytes may be reused
    HostWeight wq = random_weight(GgmlType::Q4_K, sh.rows[0], sh.in, rng);
    HostWeight wk = random_weight(GgmlType::Q5_K, sh.rows[1], sh.in, rng);
    HostWeight wv = random_weight(GgmlType::Q6_K, sh.rows[2], sh.in, rng);
    for (HostWeight* w : {&wq, &wk, &wv}) gpu->load_weight(w->t);
    for (const Case tc : {Case{1}, Case{1, 0}, Case{2}, Case{8}}) {
      const int64_t T = tc.T;
      MatvecSwitches switches;
      if (tc.pairs >= 0) switches.q4k_pairs(tc.pairs);
      const std::vector<float> x = random_floats(static_cast<size_t>(T * sh.in), rng);
      std::vector<float> got[3], want[3];
      int i = 0;
      for (Backend* b : {gpu.get(), static_cast<Backend*>(cpu.get())}) {
        Act xa = upload(*b, x, T, sh.in), q = b->alloc(T, sh.rows[0]), k = b->alloc(T, sh.rows[1]),
            v = b->alloc(T, sh.rows[2]);
        const WeightTensor* ws[] = {&wq.t, &wk.t, &wv.t};
        Act* ys[] = {&q, &k, &v};
        b->matmul_many(ws, xa, ys);
        std::vector<float>* out = i++ == 0 ? got : want;
        out[0] = to_host(*b, q), out[1] = to_host(*b, k), out[2] = to_host(*b, v);
      }
      for (int j = 0; j < 3; ++j)
        EXPECT_LE(nmse(got[j], want[j]), 5e-4)
            << "in " << sh.in << ", T=" << T << ", pairs " << tc.pairs << ", output " << j;
    }
  }
}

TEST_F(CudaOps, BatchedDecodeOnTensorCoresMatchesTheDp4aMatvec) {
  // 2-8 tokens (matvec_mma.cu, forced for every format and token count, with one and with two
  // groups of weight loads in flight per warp in registers, and with the quant plane staged in
  // shared memory) against the dp4a matvec on the same int8
  // activations, for every quantized format: one weight, q/k/v in one launch (of one type, and a
  // K-quant mix) and a GeGLU pair. Both sum the same integer dot products per item and scale them alike, so only the
  // order of the float sums differs. Row counts that leave the last 32-row tile partly empty; 1280 inputs: 40 items a
  // row, 10 groups of 4 (not a multiple of the warps along the items); 21504 inputs (27B's down) over few rows: 8
  // warps along the items with two groups in flight, 16 with one.
  Rng rng(47);
  struct Shape {
    int64_t in, rows[3];
    std::vector<int64_t> tokens;
  };
  const Shape shapes[] = {{1280, {1000, 264, 37}, {2, 3, 5, 8}}, {21504, {100, 40, 37}, {4, 6, 7}}};
  const std::array<GgmlType, 3> type_sets[] = {
      {GgmlType::Q4_0, GgmlType::Q4_0, GgmlType::Q4_0}, {GgmlType::Q4_1, GgmlType::Q4_1, GgmlType::Q4_1},
      {GgmlType::Q5_0, GgmlType::Q5_0, GgmlType::Q5_0}, {GgmlType::Q5_1, GgmlType::Q5_1, GgmlType::Q5_1},
      {GgmlType::Q8_0, GgmlType::Q8_0, GgmlType::Q8_0}, {GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q4_K},
      {GgmlType::Q5_K, GgmlType::Q5_K, GgmlType::Q5_K}, {GgmlType::Q6_K, GgmlType::Q6_K, GgmlType::Q6_K},
      {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}, {GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K},
      {GgmlType::Q5_K, GgmlType::Q5_K, GgmlType::Q6_K}};
  for (const Shape& sh : shapes)
    for (const auto& types : type_sets) {
      const int64_t in = sh.in;
      const int64_t* rows = sh.rows;
      gpu = cuda_backend_or_null();  // a fresh device per set: freed host bytes may be reused
      HostWeight wq = random_weight(types[0], rows[0], in, rng), wk = random_weight(types[1], rows[1], in, rng);
      HostWeight wv = random_weight(types[2], rows[2], in, rng), wg = random_weight(types[0], rows[0], in, rng);
      HostWeight wu = random_weight(types[0], rows[0], in, rng);
      for (HostWeight* w : {&wq, &wk, &wv, &wg, &wu}) gpu->load_weight(w->t);
#ifdef UNICORN_HAVE_CUDA
      {  // the kernel takes these shapes; by default the launchers give it the formats and token
         // counts where it measured faster (kernels.h matvec_mma_wanted)
        cuda::MatvecJob job;
        job.n = 3;
        for (int j = 0; j < 3; ++j) {
          job.w[j].type = types[static_cast<size_t>(j)];
          job.w[j].rows = rows[j];
          job.w[j].cols = in;
        }
        EXPECT_TRUE(cuda::matvec_mma_supports(job, 2) && cuda::matvec_mma_supports(job, 8)) << type_name(types[0]);
        EXPECT_FALSE(cuda::matvec_mma_supports(job, 1) || cuda::matvec_mma_supports(job, 9));
        int from = 5;  // the job's bound: its slowest format's
        for (GgmlType t : types)
          from = std::max(from, t == GgmlType::Q6_K
                                    ? 7
                                    : (t == GgmlType::Q4_K || t == GgmlType::Q5_K || t == GgmlType::Q8_0 ? 6 : 5));
        EXPECT_FALSE(cuda::matvec_mma_wanted(job, 4)) << type_name(types[0]);
        EXPECT_FALSE(cuda::matvec_mma_wanted(job, from - 1)) << type_name(types[0]);
        EXPECT_TRUE(cuda::matvec_mma_wanted(job, from) && cuda::matvec_mma_wanted(job, 8)) << type_name(types[0]);
        MatvecSwitches switches;
        switches.mma(true);
        EXPECT_TRUE(cuda::matvec_mma_wanted(job, 2)) << type_name(types[0]);
      }
#endif
      for (int64_t T : sh.tokens) {
        const std::vector<float> x = random_floats(static_cast<size_t>(T * in), rng);
        auto run = [&](bool mma) {
          MatvecSwitches switches;
          switches.mma(mma);
          Act xa = upload(*gpu, x, T, in), q = gpu->alloc(T, rows[0]), k = gpu->alloc(T, rows[1]),
              v = gpu->alloc(T, rows[2]), one = gpu->alloc(T, rows[1]);
          Act gate = gpu->alloc(T, rows[0]), up = gpu->alloc(T, rows[0]);
          const WeightTensor* ws[] = {&wq.t, &wk.t, &wv.t};
          Act* ys[] = {&q, &k, &v};
          gpu->matmul_many(ws, xa, ys);
          gpu->matmul(wk.t, xa, one);
          gpu->matmul_geglu(wg.t, wu.t, xa, gate, up);
          return std::vector<std::vector<float>>{to_host(*gpu, q), to_host(*gpu, k), to_host(*gpu, v),
                                                 to_host(*gpu, one), to_host(*gpu, gate)};
        };
        const auto dp4a = run(false);
        // one or two groups in registers, the staged quant plane (3: and side planes 3 groups ahead; 4:
        // and the activations staged too)
        for (int pipeline : {0, 1, 2, 3, 4}) {
          MatvecSwitches switches;
          switches.mma_pipeline(pipeline);
          const auto mma = run(true);
          const char* names[] = {"q", "k", "v", "k alone", "GeGLU"};
          for (size_t j = 0; j < mma.size(); ++j)
            EXPECT_LE(nmse(mma[j], dp4a[j]), 1e-10)
                << type_name(types[0]) << "/" << type_name(types[1]) << "/" << type_name(types[2]) << " in " << in
                << " T=" << T << ", pipeline " << pipeline << ", " << names[j] << ": first values " << mma[j][0]
                << " vs " << dp4a[j][0];
        }
      }
    }
}

TEST_F(CudaOps, FusedMatmulsShareOneQuantizedInput) {
  Rng rng(21);
  // q, k, v of one type, and the K-quant mixes in one launch (q4_mix's Q4_K q, Q5_K k, Q6_K v;
  // Q4_K_M and Q5_K_M files' Q6_K v); the GeGLU pair takes q's type.
  const std::array<GgmlType, 3> qkv_types[] = {
      {GgmlType::Q4_0, GgmlType::Q4_0, GgmlType::Q4_0}, {GgmlType::Q8_0, GgmlType::Q8_0, GgmlType::Q8_0},
      {GgmlType::Q5_K, GgmlType::Q5_K, GgmlType::Q5_K}, {GgmlType::Q6_K, GgmlType::Q6_K, GgmlType::Q6_K},
      {GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K}, {GgmlType::Q4_K, GgmlType::Q4_K, GgmlType::Q6_K},
      {GgmlType::Q5_K, GgmlType::Q5_K, GgmlType::Q6_K}};
  for (const auto& types : qkv_types) {
    const GgmlType type = types[0];
    gpu = cuda_backend_or_null();  // a fresh device per type: the last type's freed host bytes may be reused
    const int64_t in = 1024;
    HostWeight wq = random_weight(types[0], 512, in, rng), wk = random_weight(types[1], 256, in, rng);
    HostWeight wv = random_weight(types[2], 256, in, rng), wg = random_weight(type, 2048, in, rng);
    HostWeight wu = random_weight(type, 2048, in, rng);
    for (HostWeight* w : {&wq, &wk, &wv, &wg, &wu}) gpu->load_weight(w->t);
    // 20: the unfused path (tensor cores for Q4_0 and Q8_0)
    for (const TokenCase tc : {TokenCase{1}, TokenCase{1, true}, TokenCase{3}, TokenCase{8}, TokenCase{20}}) {
      const int64_t T = tc.T;
      MatvecSwitches switches;
      if (tc.unshared) switches.shared_act(false);
      const std::vector<float> x = random_floats(static_cast<size_t>(T * in), rng);
      std::vector<float> got[4], want[4];
      int i = 0;
      for (Backend* b : {gpu.get(), static_cast<Backend*>(cpu.get())}) {
        Act xa = upload(*b, x, T, in), q = b->alloc(T, 512), k = b->alloc(T, 256), v = b->alloc(T, 256);
        Act gate = b->alloc(T, 2048), up = b->alloc(T, 2048);
        const WeightTensor* ws[] = {&wq.t, &wk.t, &wv.t};
        Act* ys[] = {&q, &k, &v};
        b->matmul_many(ws, xa, ys);
        b->matmul_geglu(wg.t, wu.t, xa, gate, up);
        std::vector<float>* out = i++ == 0 ? got : want;
        out[0] = to_host(*b, q), out[1] = to_host(*b, k), out[2] = to_host(*b, v), out[3] = to_host(*b, gate);
      }
      // int8 activations (matvec, tensor-core small batch), else bf16 (prefill GEMM)
      for (int j = 0; j < 4; ++j) {
        const GgmlType tj = types[static_cast<size_t>(j % 3)];
        const double limit = int8_activations(tj, in, T) ? 5e-4 : 1e-5;
        EXPECT_LE(nmse(got[j], want[j]), limit)
            << type_name(tj) << " T=" << T << (tc.unshared ? " (a load per row)" : "") << " output " << j
            << " (q, k, v, geglu) first values " << got[j][0] << " vs " << want[j][0];
      }
    }
  }
}

}  // namespace
