// A fixed pool of worker threads for data-parallel loops (matmul rows, attention heads).
// Decode runs ~130 loops per token, each tens of microseconds long, so a thread that has just
// finished spins briefly for the next loop before sleeping on a condition variable: a
// condition-variable wake costs about as much as a small loop itself.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace unicorn {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads <= 0: hardware concurrency
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Runs fn(begin, end, thread_index) over [0, n) split into contiguous chunks, one per thread,
  // each chunk a multiple of `grain` (except the last). Blocks until all are done.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

 private:
  void worker(int index);
  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  // Written by parallel_for before generation_ is bumped (release), read by workers after
  // they see the new generation (acquire).
  const std::function<void(int64_t, int64_t, int)>* job_ = nullptr;
  int64_t job_n_ = 0, job_grain_ = 1;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace unicorn
