#include "runtime/generator.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"

namespace unicorn {

const char* stop_reason_text(StopReason r) {
  switch (r) {
    case StopReason::None:
      return "none";
    case StopReason::EndOfSequence:
      return "end of sequence";
    case StopReason::EndOfTurn:
      return "end of turn";
    case StopReason::StopString:
      return "stop string";
    case StopReason::MaxTokens:
      return "max tokens";
    case StopReason::ContextFull:
      return "context full";
    case StopReason::Interrupted:
      return "interrupted";
  }
  return "?";
}

Generator::Generator(Engine& engine, const SamplerParams& sampling, int seq)
    : e_(engine), sampler_(sampling), seq_(seq) {}

int64_t Generator::position() const { return e_.kv().seq_len(seq_); }

void Generator::reset() {
  e_.kv().clear(seq_);
  have_logits_ = false;
  pending_.clear();
  generated_.clear();
  sampler_.reset_history();
}

void Generator::forward_chunk(std::span<const int32_t> tokens) {
  Batch b;
  const int64_t start = position();
  for (size_t i = 0; i < tokens.size(); ++i)
    b.add(tokens[i], static_cast<int32_t>(start + static_cast<int64_t>(i)), seq_, i + 1 == tokens.size());
  // Only the candidates the sampler can pick cross from the device (sampler.h).
  LogitsRequest req;
  req.top = sampler_.candidates_needed();
  req.n_allowed = sampler_.params().n_allowed;
  if (req.top > 0) {
    const int64_t allowed =
        req.n_allowed > 0 ? std::min(req.n_allowed, e_.config().vocab_size) : e_.config().vocab_size;
    req.top = static_cast<int>(std::min<int64_t>(req.top, allowed));
  }
  e_.model().forward(b, e_.kv(), logits_, req);
  logits_top_ = req.top;
  have_logits_ = true;
}

void Generator::feed(std::span<const int32_t> tokens_in, GenerationStats& stats) {
  std::vector<int32_t> tokens = pending_;
  pending_.clear();
  tokens.insert(tokens.end(), tokens_in.begin(), tokens_in.end());
  if (tokens.empty()) return;
  const int64_t n_ctx = e_.kv().n_ctx();
  if (position() + static_cast<int64_t>(tokens.size()) > n_ctx)
    fail("the prompt needs {} tokens but only {} of the {}-token context are free; raise -c or shorten it",
         tokens.size(), n_ctx - position(), n_ctx);
  const auto t0 = std::chrono::steady_clock::now();
  const int64_t nb = e_.options().n_batch;
  for (size_t i = 0; i < tokens.size(); i += static_cast<size_t>(nb)) {
    const size_t m = std::min(tokens.size() - i, static_cast<size_t>(nb));
    forward_chunk(std::span<const int32_t>(tokens).subspan(i, m));
  }
  stats.prompt_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  stats.n_prompt += static_cast<int64_t>(tokens.size());
}

namespace {
// Length of the longest suffix of `text` that is a proper prefix of some stop string: that much
// must be held back because the next token may complete a stop string.
size_t held_back(std::string_view text, const std::vector<std::string>& stops) {
  size_t keep = 0;
  for (const std::string& s : stops)
    for (size_t n = std::min(s.size() - 1, text.size()); n > keep; --n)
      if (text.substr(text.size() - n) == std::string_view(s).substr(0, n)) {
        keep = n;
        break;
      }
  return keep;
}
}  // namespace

void Generator::generate(const GenerationLimits& limits, const std::function<void(std::string_view)>& on_text,
                         GenerationStats& stats, const std::atomic<bool>* interrupted) {
  const Tokenizer& tok = e_.tokenizer();
  if (!pending_.empty()) feed({}, stats);
  if (!have_logits_) fail("internal: generate() before any prompt was fed");
  StreamDecoder dec(tok, /*skip_control=*/false);
  std::string text;  // decoded but not yet emitted
  const auto t0 = std::chrono::steady_clock::now();
  const int eot = tok.end_of_turn();
  int64_t n = 0;
  stats.stop = StopReason::None;
  auto emit_ready = [&](bool final) {
    size_t keep = final ? 0 : held_back(text, limits.stop_strings);
    if (text.size() > keep) {
      on_text(std::string_view(text).substr(0, text.size() - keep));
      text.erase(0, text.size() - keep);
    }
  };
  for (;;) {
    if (interrupted && interrupted->load()) {
      stats.stop = StopReason::Interrupted;
      break;
    }
    if (limits.max_tokens >= 0 && n >= limits.max_tokens) {
      stats.stop = StopReason::MaxTokens;
      break;
    }
    int32_t t;
    if (logits_top_ > 0) {
      candidates_.resize(static_cast<size_t>(logits_top_));
      for (int i = 0; i < logits_top_; ++i)
        candidates_[static_cast<size_t>(i)] = {logits_[static_cast<size_t>(2 * i)],
                                               static_cast<int32_t>(logits_[static_cast<size_t>(2 * i + 1)])};
      t = sampler_.sample_candidates(candidates_);
    } else {
      t = sampler_.sample(logits_);
    }
    sampler_.accept(t);
    if (t == tok.eos()) {
      stats.stop = StopReason::EndOfSequence;
      have_logits_ = false;  // they were fetched for the history before this token
      break;
    }
    if (t == eot) {
      stats.stop = StopReason::EndOfTurn;
      pending_.push_back(t);  // keep the turn closed in the cache for a following chat turn
      break;
    }
    ++n;
    generated_.push_back(t);
    text += dec.push(t);
    bool hit = false;
    for (const std::string& s : limits.stop_strings) {
      if (s.empty()) continue;
      if (size_t at = text.find(s); at != std::string::npos) {
        text.resize(at);
        hit = true;
      }
    }
    if (hit) {
      stats.stop = StopReason::StopString;
      pending_.push_back(t);
      break;
    }
    emit_ready(false);
    if (position() >= e_.kv().n_ctx()) {
      stats.stop = StopReason::ContextFull;
      pending_.push_back(t);
      break;
    }
    forward_chunk(std::span<const int32_t>(&t, 1));
  }
  if (stats.stop != StopReason::StopString) text += dec.flush();
  emit_ready(true);
  stats.n_gen += n;
  stats.gen_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace unicorn
