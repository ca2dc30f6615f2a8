#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace unicorn {

namespace {

constexpr int kChunksPerThread = 4;
// Polling before sleeping: a short busy spin, then yielding (lets other runnable threads in
// on a busy machine) until about this long has passed.
constexpr int kBusySpins = 1000;
constexpr auto kPollTime = std::chrono::microseconds(200);

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// Polls ready() with backoff; true if it became true within the polling time.
template <typename Ready>
bool poll(Ready ready) {
  for (int i = 0; i < kBusySpins; ++i) {
    if (ready()) return true;
    cpu_relax();
  }
  const auto until = std::chrono::steady_clock::now() + kPollTime;
  while (std::chrono::steady_clock::now() < until) {
    if (ready()) return true;
    std::this_thread::yield();
  }
  return ready();
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  if (n_threads <= 0) n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  n_threads_ = n_threads;
  for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_.store(true);
  }
  cv_start_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::run_chunks(int index) {
  uint64_t cur = next_.load(std::memory_order_acquire);
  for (;;) {
    const int64_t chunk = static_cast<int64_t>(cur & 0xFFFFu), chunks = static_cast<int64_t>((cur >> 16) & 0xFFFFu);
    if (chunk >= chunks) return;
    if (!next_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel, std::memory_order_acquire)) continue;
    const int64_t b = chunk * job_chunk_, e = std::min(job_n_, b + job_chunk_);
    (*job_)(b, e, index);
    // `chunks` comes from the claim word: after the last increment the next job may already
    // be rewriting job_chunks_.
    if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == chunks) {
      std::lock_guard<std::mutex> lk(mu_);  // pairs with the waiter's predicate check
      cv_done_.notify_one();
    }
    cur = next_.load(std::memory_order_acquire);
  }
}

void ThreadPool::worker(int index) {
  uint64_t seen = 0;
  for (;;) {
    auto ready = [&] {
      return stop_.load(std::memory_order_relaxed) || generation_.load(std::memory_order_acquire) != seen;
    };
    if (!poll(ready)) {
      std::unique_lock<std::mutex> lk(mu_);
      cv_start_.wait(lk, ready);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    run_chunks(index);
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn, int64_t grain) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t units = (n + grain - 1) / grain;
  if (n_threads_ == 1 || units <= 1) {
    fn(0, n, 0);
    return;
  }
  const int64_t chunks = std::min<int64_t>({units, static_cast<int64_t>(n_threads_) * kChunksPerThread, 0xFFFF});
  job_ = &fn;
  job_n_ = n;
  job_chunk_ = (units + chunks - 1) / chunks * grain;
  job_chunks_ = (n + job_chunk_ - 1) / job_chunk_;
  // Every increment of the previous job happened before it returned, so this reset is safe.
  done_.store(0, std::memory_order_relaxed);
  {
    std::lock_guard<std::mutex> lk(mu_);  // a worker about to sleep either sees this or is woken
    const uint64_t generation = generation_.load(std::memory_order_relaxed) + 1;
    next_.store(((generation & 0xFFFFFFFFu) << 32) | (static_cast<uint64_t>(job_chunks_) << 16),
                std::memory_order_release);
    generation_.store(generation, std::memory_order_release);
  }
  cv_start_.notify_all();
  run_chunks(0);
  auto finished = [&] { return done_.load(std::memory_order_acquire) == job_chunks_; };
  if (!poll(finished)) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_done_.wait(lk, finished);
  }
}

}  // namespace unicorn
