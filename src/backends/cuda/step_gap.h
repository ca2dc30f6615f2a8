// A measurement switch (UNICORN_CUDA_STEP_GAP=1): how long the GPU sits idle between two steps
// while the host reads a step's result and prepares the next. Events are recorded where a step's
// work reaches the stream (begin_batch) and where its result is copied out (copy_to_host); the
// idle time is the stream's time from one step's copy-out to the next step's first work. Printed
// to stderr when the backend goes away. Not used while a step is being recorded.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace unicorn::cuda {

class StepGapMeter {
 public:
  explicit StepGapMeter(bool on) : on_(on) {}
  ~StepGapMeter();
  StepGapMeter(const StepGapMeter&) = delete;
  StepGapMeter& operator=(const StepGapMeter&) = delete;

  void step_begins(cudaStream_t s);
  void result_copied(cudaStream_t s);  // after the stream has been synchronized

 private:
  bool ready();  // creates the events on the current device at first use
  bool on_ = false, created_ = false;
  cudaEvent_t prev_end_ = nullptr, begin_ = nullptr, end_ = nullptr;
  bool have_prev_ = false, have_begin_ = false;
  int64_t steps_ = 0, gaps_ = 0;
  double busy_ms_ = 0, idle_ms_ = 0;
};

}  // namespace unicorn::cuda
