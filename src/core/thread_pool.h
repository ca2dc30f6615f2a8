// A fixed pool of worker threads for data-parallel loops (matmul rows, attention heads).
//
// Decode runs ~130 loops per token, each tens of microseconds long, so:
//  - work is handed out in a few chunks per thread from a shared counter: a thread that is
//    late (descheduled on a busy machine) finds the work done by others instead of being
//    waited for;
//  - an idle thread polls briefly for the next loop before sleeping on a condition variable,
//    whose wake-up costs about as much as a small loop.
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
  // Runs fn(begin, end, thread_index) over disjoint contiguous chunks covering [0, n), each a
  // multiple of `grain` long (except the last); a thread may run several chunks, never two at
  // once, so thread_index can select per-thread scratch. Blocks until all are done.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain = 1);

 private:
  using Fn = std::function<void(int64_t, int64_t, int)>;
  void worker(int index);
  // Claims and runs chunks of the current job until none is left.
  void run_chunks(int index);

  int n_threads_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_start_, cv_done_;
  // Job description: written by parallel_for before the job is published; read by a thread
  // only after it has claimed one of the job's chunks (the job cannot finish before that
  // chunk does, so the description cannot change meanwhile).
  const Fn* job_ = nullptr;
  int64_t job_n_ = 0, job_chunk_ = 1, job_chunks_ = 0;
  std::atomic<uint64_t> generation_{0};  // bumped per job; wakes the workers
  // Claim word: generation (32 bits) | chunk count (16) | next chunk to claim (16). Claims need
  // nothing else, so a thread still looking at an old job can never take a chunk of a new one
  // with the old job's bounds.
  std::atomic<uint64_t> next_{0};
  std::atomic<int64_t> done_{0};  // chunks of the current job finished
  std::atomic<bool> stop_{false};
};

}  // namespace unicorn
