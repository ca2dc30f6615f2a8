// The CUDA attention kernels against the CPU's: decode over sliding rings and global caches,
// QK-norm + RoPE inside the kernel, the short-context kernel and the split keys, the tiled prompt
// kernels, and recorded steps across the short-context bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "cuda_test_support.h"

using namespace unicorn;
using namespace unicorn::cudatest;

namespace {

// ---- attention ----------------------------------------------------------------------------------

struct AttnCase {
  int64_t heads, kv_heads, hd, window, capacity;
  GgmlType kv_type;
};

// Runs the same schedule of batches through both backends' attention (two slots, a prompt split
// in chunks, interleaved decoding that wraps the ring) and returns the worst NMSE of any call.
// With `norms` (q_norm, k_norm of hd values each), every call is qk_norm_rope_attention: the
// prompt chunks through the separate ops, the decode steps through the CUDA kernel that applies
// QK-norm and RoPE itself (their keys then come back from the cache in later steps).
struct QkNorms {
  const WeightTensor* q_norm;
  const WeightTensor* k_norm;
  float base, scale;
};
double attention_schedule(Backend& gpu, Backend& cpu, const AttnCase& c, int64_t prompt, int64_t decode_steps,
                          const QkNorms* norms = nullptr) {
  Rng rng(11 + static_cast<uint64_t>(c.hd + c.window));
  LayerKvSpec spec{2, c.capacity, c.kv_heads, c.hd, c.kv_type};
  auto kv_g = gpu.create_kv(spec);
  auto kv_c = cpu.create_kv(spec);
  AttentionParams p{c.heads, c.kv_heads, c.hd, 1.0f / std::sqrt(static_cast<float>(c.hd)), c.window};
  std::vector<int64_t> past = {0, 0};
  double worst = 0;
  auto run = [&](const std::vector<std::pair<int32_t, int32_t>>& toks) {  // (seq, count) runs
    std::vector<int32_t> pos, seq, tokens;
    std::vector<int64_t> next = past;
    for (auto [s, n] : toks)
      for (int32_t i = 0; i < n; ++i) {
        seq.push_back(s);
        pos.push_back(static_cast<int32_t>(next[static_cast<size_t>(s)]++));
        tokens.push_back(0);
      }
    const auto T = static_cast<int64_t>(pos.size());
    const std::vector<float> q = random_floats(static_cast<size_t>(T * c.heads * c.hd), rng, 2.0f);
    const std::vector<float> k = random_floats(static_cast<size_t>(T * c.kv_heads * c.hd), rng, 2.0f);
    const std::vector<float> v = random_floats(static_cast<size_t>(T * c.kv_heads * c.hd), rng);
    BatchView view{tokens, pos, seq};
    std::vector<float> outs[2];
    int i = 0;
    for (Backend* b : {&gpu, &cpu}) {
      Act qa = upload(*b, q, T, c.heads * c.hd), ka = upload(*b, k, T, c.kv_heads * c.hd);
      Act va = upload(*b, v, T, c.kv_heads * c.hd), out = b->alloc(T, c.heads * c.hd);
      LayerKv& kv = b == &gpu ? *kv_g : *kv_c;
      if (norms)
        b->qk_norm_rope_attention(qa, ka, va, *norms->q_norm, *norms->k_norm, 1e-6f, pos, norms->base, norms->scale, kv,
                                  view, past, p, out);
      else
        b->attention(qa, ka, va, kv, view, past, p, out);
      outs[i++] = to_host(*b, out);
    }
    worst = std::max(worst, nmse(outs[0], outs[1]));
    past = next;
  };
  run({{0, static_cast<int32_t>(prompt / 2)}});
  run({{1, static_cast<int32_t>(prompt)}, {0, static_cast<int32_t>(prompt - prompt / 2)}});
  for (int64_t s = 0; s < decode_steps; ++s) run({{0, 1}, {1, 1}});
  // With norms: a fused step whose tokens also read each other's new keys (3 and 5 per slot).
  if (norms) run({{0, 3}, {1, 5}});
  run({{0, 1}});  // one slot alone: the split-keys decode path
  return worst;
}

TEST_F(CudaOps, AttentionMatchesCpuOnSlidingRingsAndGlobalCache) {
  const AttnCase cases[] = {
      {4, 1, 256, 16, 16, GgmlType::F32},  // 270M heads, small window: the ring wraps
      {4, 1, 256, 16, 16, GgmlType::F16},   {32, 16, 128, 24, 24, GgmlType::F16},  // 27B heads
      {32, 16, 128, 0, 512, GgmlType::F16},                                        // global layer
      {32, 16, 128, 0, 512, GgmlType::F32}, {8, 2, 64, 0, 512, GgmlType::F32},
  };
  for (const AttnCase& c : cases) {
    const double limit = c.kv_type == GgmlType::F16 ? 1e-5 : 1e-7;
    EXPECT_LE(attention_schedule(*gpu, *cpu, c, 20, 30), limit)
        << c.heads << "/" << c.kv_heads << " hd " << c.hd << " window " << c.window << " " << type_name(c.kv_type);
  }
}

TEST_F(CudaOps, QkNormRopeInsideDecodeAttentionMatchesCpu) {
  // Rings that wrap, a global cache, head sizes 64 to 256 and their groups, split keys (capacity
  // 512 and 2048 on an H100) and unsplit ones (the rings), f16 and f32 caches; RoPE at local (10k)
  // and global (1M, linear 8) settings. 32-wide heads (no Gemma 3 size) are not covered.
  struct Case {
    AttnCase attn;
    int64_t prompt;
    float base, scale;
  };
  // Decode steps below 128 positions with one token per slot take the short-context kernel (no
  // split merge; it stores k, v itself) where the cache holds 128+ positions: the global cache of
  // 512, the 27B and 270M rings (1024, 512). Each case runs with it and without it (0).
  const Case cases[] = {
      {{4, 1, 256, 16, 16, GgmlType::F32}, 20, 10000.0f, 1.0f},
      {{32, 16, 128, 24, 24, GgmlType::F16}, 20, 10000.0f, 1.0f},
      {{32, 16, 128, 0, 512, GgmlType::F16}, 20, 1e6f, 8.0f},
      {{8, 2, 64, 0, 2048, GgmlType::F32}, 700, 1e6f, 8.0f},
      {{32, 16, 128, 1024, 1024, GgmlType::F16}, 20, 10000.0f, 1.0f},
      {{4, 1, 256, 512, 512, GgmlType::F32}, 20, 10000.0f, 1.0f},
      {{4, 1, 256, 512, 512, GgmlType::F16}, 20, 10000.0f, 1.0f},  // 270M's ring and heads
      {{16, 8, 256, 0, 512, GgmlType::F16}, 20, 1e6f, 8.0f},       // 12B's heads, global
  };
  Rng rng(5150);
  // Without the short kernel: the split kernel on tensor cores where it fits (the default: f16
  // caches of 128-wide heads with splits), and the SIMT one with and without the cached keys'
  // loads pipelined. The SIMT short kernel of 256-wide f16 heads on 8 warps with its cached keys'
  // loads pipelined (the default) and without, and on 16 and 4 warps without.
  struct Setting {
    int64_t short_keys;
    bool pipelined, mma;
    int short_warps;
    bool short_pipelined;
  };
  const Setting settings[] = {{128, true, true, 8, false},  {0, false, false, 8, false},  {0, true, false, 8, false},
                              {0, true, true, 8, false},    {128, true, false, 8, false}, {128, true, false, 16, false},
                              {128, true, false, 4, false}, {128, true, false, 8, true}};
  for (const auto& [short_keys, pipelined, mma, short_warps, short_pipelined] : settings)
    for (const Case& c : cases) {
      // Norm weights of the stored form (1 + w), each kept alive while the backend holds it.
      const std::vector<float> qn = stored_norm(c.attn.hd, rng), kn = stored_norm(c.attn.hd, rng);
      const WeightTensor wq = f32_weight("q_norm", qn), wk = f32_weight("k_norm", kn);
      gpu = cuda_backend_or_null();  // a fresh device per case: the host vectors' addresses may repeat
#ifdef UNICORN_HAVE_CUDA
      cuda_fuse_qk_attention(*gpu, true);
      cuda_short_attention_keys(*gpu, short_keys);
      cuda_attention_pipelined(*gpu, pipelined);
      cuda_attention_mma_decode(*gpu, mma ? 3 : 0);  // 3: 256-wide heads too
      cuda_short_attention_warps(*gpu, short_warps);
      cuda_short_attention_pipelined(*gpu, short_pipelined);
#endif
      gpu->load_weight(wq);
      gpu->load_weight(wk);
      const QkNorms norms{&wq, &wk, c.base, c.scale};
      const double limit = c.attn.kv_type == GgmlType::F16 ? 1e-5 : 1e-7;
      EXPECT_LE(attention_schedule(*gpu, *cpu, c.attn, c.prompt, 30, &norms), limit)
          << c.attn.heads << "/" << c.attn.kv_heads << " hd " << c.attn.hd << " window " << c.attn.window
          << " short keys " << short_keys << (pipelined ? " pipelined" : "") << (mma ? " tensor cores" : "")
          << " short warps " << short_warps << (short_pipelined ? " (pipelined)" : "");
    }
#ifdef UNICORN_HAVE_CUDA
  cuda_attention_pipelined(*gpu, true);  // the defaults
  cuda_attention_mma_decode(*gpu, 1);
  cuda_short_attention_warps(*gpu, 8);
  cuda_short_attention_pipelined(*gpu, true);
#endif
}

TEST_F(CudaOps, PromptAttentionTilesMatchCpu) {
  // Batches of 50 and 150 tokens take the tiled prompt kernel: sliding rings that wrap within a
  // batch, a second chunk reading the ring, two slots in one batch, both head sizes and groups.
  const AttnCase cases[] = {
      {32, 16, 128, 24, 24, GgmlType::F16}, {4, 1, 256, 16, 16, GgmlType::F32}, {4, 1, 256, 40, 40, GgmlType::F16},
      {32, 16, 128, 0, 400, GgmlType::F16}, {8, 1, 128, 0, 400, GgmlType::F32},
  };
#ifdef UNICORN_HAVE_CUDA
  cuda_force_tiled_prompt_attention(*gpu, true);  // these batches are too small to choose it alone
#endif
  // The SIMT kernel, then the tensor-core one (f16 caches; f32 caches keep the SIMT kernel, so the
  // f32 limit still applies to them).
  for (bool tensor_cores : {false, true}) {
#ifdef UNICORN_HAVE_CUDA
    cuda_tensor_core_prompt_attention(*gpu, tensor_cores);
#endif
    for (const AttnCase& c : cases) {
      const double limit = c.kv_type == GgmlType::F16 ? 1e-5 : 1e-7;
      EXPECT_LE(attention_schedule(*gpu, *cpu, c, 100, 2), limit)
          << c.heads << "/" << c.kv_heads << " hd " << c.hd << " window " << c.window << " " << type_name(c.kv_type)
          << (tensor_cores ? " tensor cores" : "");
    }
  }
}

TEST_F(CudaOps, AttentionSplitsLongContextsLikeCpu) {
  // A long prompt then single-token decoding: few (token, head) blocks, many keys per block.
  const AttnCase c{32, 16, 128, 0, 2048, GgmlType::F16};
  EXPECT_LE(attention_schedule(*gpu, *cpu, c, 700, 3), 1e-5);
  const AttnCase local{4, 1, 256, 512, 512, GgmlType::F16};
  EXPECT_LE(attention_schedule(*gpu, *cpu, local, 700, 3), 1e-5);
  const AttnCase ring27b{32, 16, 128, 1024, 1024, GgmlType::F16};  // 27B's local layers: 16 splits
  EXPECT_LE(attention_schedule(*gpu, *cpu, ring27b, 700, 3), 1e-5);
#ifdef UNICORN_HAVE_CUDA
  // Other split bounds (measurement settings): 8 positions per split gives 27B's ring 64 splits,
  // the most; 16 blocks per SM gives the 2,048-position cache more too.
  for (const auto& [min_keys, blocks_per_sm] : {std::pair<int64_t, int64_t>{8, 8}, {16, 16}}) {
    cuda_attention_splits(*gpu, min_keys, blocks_per_sm);
    EXPECT_LE(attention_schedule(*gpu, *cpu, c, 700, 3), 1e-5) << "min keys " << min_keys;
    EXPECT_LE(attention_schedule(*gpu, *cpu, ring27b, 700, 3), 1e-5) << "min keys " << min_keys;
  }
  cuda_attention_splits(*gpu, 64, 0);  // the defaults
  Rng rng(12);
  const std::vector<float> qn = stored_norm(128, rng), kn = stored_norm(128, rng);
  const WeightTensor wq = f32_weight("q_norm", qn), wk = f32_weight("k_norm", kn);
  gpu->load_weight(wq);
  gpu->load_weight(wk);
  const QkNorms norms{&wq, &wk, 10000.0f, 1.0f};
  const std::vector<float> qn256 = stored_norm(256, rng), kn256 = stored_norm(256, rng);
  const WeightTensor wq256 = f32_weight("q_norm_256", qn256), wk256 = f32_weight("k_norm_256", kn256);
  gpu->load_weight(wq256);
  gpu->load_weight(wk256);
  const QkNorms norms256{&wq256, &wk256, 10000.0f, 1.0f};
  EXPECT_LE(attention_schedule(*gpu, *cpu, ring27b, 1100, 3, &norms), 1e-5) << "fused QK-norm, wrapped";
  // A wrapped ring and a long global cache: the tensor-core split kernel (27B's 2 query heads per kv
  // head, 4 with 8 kv heads, and 12B's 256-wide heads), then both SIMT loops.
  for (const auto& [pipelined, mma] : {std::pair{true, true}, {true, false}, {false, false}}) {
    cuda_attention_pipelined(*gpu, pipelined);
    cuda_attention_mma_decode(*gpu, mma ? 3 : 0);  // 3: 256-wide heads too
    const std::string what = std::string(mma ? "tensor cores" : "SIMT") + (pipelined ? ", pipelined" : "");
    EXPECT_LE(attention_schedule(*gpu, *cpu, ring27b, 1100, 3, &norms), 1e-5) << what;
    const AttnCase global{32, 16, 128, 0, 2048, GgmlType::F16};
    EXPECT_LE(attention_schedule(*gpu, *cpu, global, 1500, 3, &norms), 1e-5) << what;
    const AttnCase group4{32, 8, 128, 1024, 1024, GgmlType::F16};
    EXPECT_LE(attention_schedule(*gpu, *cpu, group4, 1100, 3, &norms), 1e-5) << what << ", 4 heads per kv head";
    const AttnCase ring12b{16, 8, 256, 1024, 1024, GgmlType::F16};  // head_dim 256
    EXPECT_LE(attention_schedule(*gpu, *cpu, ring12b, 1100, 3, &norms256), 1e-5) << what << ", 12B ring";
  }
  cuda_attention_pipelined(*gpu, true);  // the defaults
  cuda_attention_mma_decode(*gpu, 1);
  // The schedules above decode one token per slot, where the split kernels merge themselves (the
  // default), and take the merge kernel for the step with 3 and 5 tokens per slot. Here the merge
  // kernel for every step: the tensor-core kernel's ring, the SIMT kernel's 256-wide heads, and
  // the unfused SIMT kernel's global cache.
  cuda_attention_self_merge(*gpu, false);
  EXPECT_LE(attention_schedule(*gpu, *cpu, ring27b, 1100, 3, &norms), 1e-5) << "merge kernel";
  const AttnCase ring12b{16, 8, 256, 1024, 1024, GgmlType::F16};
  EXPECT_LE(attention_schedule(*gpu, *cpu, ring12b, 1100, 3, &norms256), 1e-5) << "merge kernel, 12B ring";
  EXPECT_LE(attention_schedule(*gpu, *cpu, c, 700, 3), 1e-5) << "merge kernel, unfused";
  cuda_attention_self_merge(*gpu, true);
  // 256-wide heads' split blocks on 4 warps (a measurement setting; 8 by default), merging
  // themselves and not.
  cuda_split_attention_warps(*gpu, 4);
  EXPECT_LE(attention_schedule(*gpu, *cpu, ring12b, 1100, 3, &norms256), 1e-5) << "4 warps, 12B ring";
  const AttnCase global270m{4, 1, 256, 0, 2048, GgmlType::F16};
  EXPECT_LE(attention_schedule(*gpu, *cpu, global270m, 1500, 3, &norms256), 1e-5) << "4 warps, 270M global";
  cuda_split_attention_warps(*gpu, 8);  // the default
  // 47 splits: the merge's three chunks of 16, the last one partly empty.
  const AttnCase f32_cache{8, 4, 64, 0, 3000, GgmlType::F32};
  EXPECT_LE(attention_schedule(*gpu, *cpu, f32_cache, 700, 3), 1e-7) << "f32 cache, 47 splits";
  // 64 splits over rows of a few keys: most splits see none, and the merge's first chunks of 16
  // are wholly empty.
  cuda_attention_splits(*gpu, 8, 8);
  EXPECT_LE(attention_schedule(*gpu, *cpu, f32_cache, 2, 40), 1e-7) << "f32 cache, 64 splits, few keys";
  cuda_attention_splits(*gpu, 64, 0);  // the defaults
#endif
}

#ifdef UNICORN_HAVE_CUDA
TEST_F(CudaOps, RecordedStepsDoNotCrossTheShortAttentionBound) {
  // A step recorded for a batch below the short-context attention's bound (one token per slot,
  // positions < 128) holds the one-kernel attention and no split merge: it must not replay for a
  // batch past the bound (nor for one with two tokens of a slot), and one recorded past the bound
  // must not replay below it.
  const int64_t heads = 8, hd = 128;
  const std::vector<int64_t> past = {0}, rows = {};
  cuda_short_attention_keys(*gpu, 128);  // the default, whatever UNICORN_CUDA_SHORT_KEYS says
  Act g = gpu->alloc(1, heads * hd);
  auto batch_at = [&](const std::vector<int32_t>& pos, const std::vector<int32_t>& sq) {
    const std::vector<int32_t> toks(pos.size(), 0);
    gpu->begin_batch(BatchView{toks, pos, sq}, past, rows);
  };
  auto rope_at = [&](int32_t p) {
    const std::vector<int32_t> one = {p};
    gpu->rope(g, hd, one, 10000.0f, 1.0f);
  };
  auto record = [&](const std::string& key, int32_t p) {
    for (int sighting = 0; sighting < 2; ++sighting) {  // eager, then recorded
      batch_at({p}, {0});
      gpu->record_begin(key);
      rope_at(p);
      ASSERT_TRUE(gpu->record_end());
    }
  };
  // Whether `key` replays for a batch of these positions (slot 0 unless given).
  auto replays = [&](const std::string& key, const std::vector<int32_t>& pos, std::vector<int32_t> sq = {0}) {
    batch_at(pos, sq);
    return gpu->replay(key);
  };
  // A buffer's growth forgets every recording: grow them all first (two tokens, both positions).
  batch_at({41, 42}, {0, 0});
  for (const int32_t p : {40, 400}) {
    batch_at({p}, {0});
    rope_at(p);
  }
  record("short", 40);
  ASSERT_EQ(cuda_recordings(*gpu), 1u);
  EXPECT_TRUE(replays("short", {41}));
  EXPECT_TRUE(replays("short", {127}));
  EXPECT_FALSE(replays("short", {128}));
  EXPECT_FALSE(replays("short", {41, 42}, {0, 0}));  // two tokens of one slot: the split attention
  EXPECT_TRUE(replays("short", {41}));               // still recorded: the two-token batch was refused by its key
  record("long", 400);
  ASSERT_EQ(cuda_recordings(*gpu), 2u);
  EXPECT_TRUE(replays("long", {128}));
  EXPECT_FALSE(replays("long", {41}));
  // Recorded with one token per slot, its split attention merges itself: not for two tokens of a
  // slot (they take the merge kernel).
  EXPECT_FALSE(replays("long", {401, 402}, {0, 0}));
  EXPECT_TRUE(replays("long", {401}));
  gpu->synchronize();
}
#endif

}  // namespace
