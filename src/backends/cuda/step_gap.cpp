#include "backends/cuda/step_gap.h"

#include <fmt/core.h>

#include <cstdio>
#include <utility>

namespace unicorn::cuda {

bool StepGapMeter::ready() {
  if (on_ && !created_) {
    created_ = true;
    for (cudaEvent_t* e : {&prev_end_, &begin_, &end_})
      if (cudaEventCreate(e) != cudaSuccess) on_ = false;
  }
  return on_;
}

StepGapMeter::~StepGapMeter() {
  if (on_ && steps_ > 0)
    fmt::print(stderr, "[cuda] {} steps: GPU busy {:.1f} us per step, idle {:.1f} us between steps ({} gaps)\n", steps_,
               1e3 * busy_ms_ / static_cast<double>(steps_),
               gaps_ > 0 ? 1e3 * idle_ms_ / static_cast<double>(gaps_) : 0.0, gaps_);
  for (cudaEvent_t e : {prev_end_, begin_, end_})
    if (e) cudaEventDestroy(e);
}

void StepGapMeter::step_begins(cudaStream_t s) {
  if (!ready()) return;
  have_begin_ = cudaEventRecord(begin_, s) == cudaSuccess;
}

void StepGapMeter::result_copied(cudaStream_t s) {
  if (!ready() || !have_begin_) return;
  if (cudaEventRecord(end_, s) != cudaSuccess || cudaEventSynchronize(end_) != cudaSuccess) return;
  float ms = 0;
  if (cudaEventElapsedTime(&ms, begin_, end_) == cudaSuccess) busy_ms_ += ms, ++steps_;
  if (have_prev_ && cudaEventElapsedTime(&ms, prev_end_, begin_) == cudaSuccess) idle_ms_ += ms, ++gaps_;
  std::swap(prev_end_, end_);
  have_prev_ = true;
  have_begin_ = false;
}

}  // namespace unicorn::cuda
