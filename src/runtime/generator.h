// The generation loop of one sequence: feed prompt tokens (in batches), then sample, stream and
// stop. Keeps the cache between calls, so a chat appends turns without re-processing history.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "tokenizer/streaming.h"

namespace unicorn {

enum class StopReason { None, EndOfSequence, EndOfTurn, StopString, MaxTokens, ContextFull, Interrupted };
const char* stop_reason_text(StopReason r);

struct GenerationLimits {
  int64_t max_tokens = -1;  // < 0: until a stop token or the context end
  std::vector<std::string> stop_strings;
};

struct GenerationStats {
  int64_t n_prompt = 0, n_gen = 0;
  double prompt_s = 0, gen_s = 0;
  StopReason stop = StopReason::None;
  double prompt_tps() const { return prompt_s > 0 ? static_cast<double>(n_prompt) / prompt_s : 0; }
  double gen_tps() const { return gen_s > 0 ? static_cast<double>(n_gen) / gen_s : 0; }
};

class Generator {
 public:
  Generator(Engine& engine, const SamplerParams& sampling, int seq = 0);

  // Appends tokens to the sequence's cache (prompt processing). Throws Error if they would pass
  // the end of the context.
  void feed(std::span<const int32_t> tokens, GenerationStats& stats);
  // Samples until a stop; on_text receives completed UTF-8 text (stop strings and stop tokens are
  // not emitted). `interrupted` (e.g. set by Ctrl-C) ends generation cleanly.
  void generate(const GenerationLimits& limits, const std::function<void(std::string_view)>& on_text,
                GenerationStats& stats, const std::atomic<bool>* interrupted = nullptr);

  int64_t position() const;  // tokens in the cache
  const std::vector<int32_t>& generated() const { return generated_; }
  void reset();  // empty the cache

 private:
  void forward_chunk(std::span<const int32_t> tokens);
  Engine& e_;
  Sampler sampler_;
  int seq_;
  std::vector<float> logits_;  // of the last token in the cache: the row, or (logit, id) pairs
  int logits_top_ = 0;
  std::vector<std::pair<float, int32_t>> candidates_;  // > 0: logits_ holds that many best-first pairs (LogitsRequest)
  bool have_logits_ = false;
  std::vector<int32_t> pending_;  // sampled but not yet in the cache
  std::vector<int32_t> generated_;
};

}  // namespace unicorn
