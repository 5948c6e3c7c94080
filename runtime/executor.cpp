// The CPU executor's thread pool: threads-1 workers that spin for a short while after
// each parallel region (a run's steps follow one another closely) and then sleep, plus
// the calling thread, which always takes part. One region at a time per executor; each
// context has its own, so contexts on different threads never wait for each other.
#include "runtime/executor.h"

#include <immintrin.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace anvil::runtime {

namespace {

thread_local bool tInRegion = false;

// How long an idle worker spins before it sleeps: long enough to cover the gap between
// two steps of a run, short enough not to burn a core between runs.
constexpr auto kSpin = std::chrono::microseconds(200);

class CpuExecutor final : public Executor {
 public:
  explicit CpuExecutor(int threads) : threads_(std::max(1, threads)) {
    workers_.reserve(size_t(threads_ - 1));
    for (int i = 0; i < threads_ - 1; ++i) workers_.emplace_back([this] { workerLoop(); });
  }

  ~CpuExecutor() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }

  int threads() const override { return threads_; }

  void parallelFor(int64_t n, FunctionRef<void(int64_t)> fn) override {
    if (n <= 0) return;
    if (threads_ == 1 || n == 1 || tInRegion || busy_.test_and_set(std::memory_order_acquire)) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    fn_ = &fn;
    count_ = n;
    next_.store(0, std::memory_order_relaxed);
    error_ = nullptr;
    uint64_t g;
    {
      std::lock_guard<std::mutex> lk(mu_);
      g = gen_.fetch_add(1, std::memory_order_seq_cst) + 1;
      open_.store(g, std::memory_order_seq_cst);
    }
    if (sleepers_.load(std::memory_order_acquire) > 0) cv_.notify_all();
    work();
    // Close the region, then wait only for workers that entered it. A worker that was not
    // scheduled in time finds it closed and skips it: on a loaded machine the caller does
    // all the work instead of waiting a scheduler quantum for a sleeping helper.
    open_.store(0, std::memory_order_seq_cst);
    for (int spins = 0; inside_.load(std::memory_order_seq_cst) != 0; ++spins) {
      if (spins < 4096) _mm_pause();
      else std::this_thread::yield();
    }
    fn_ = nullptr;
    busy_.clear(std::memory_order_release);
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    const bool saved = tInRegion;
    tInRegion = true;
    for (int64_t i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < count_;) {
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(errorMu_);
        if (!error_) error_ = std::current_exception();
        next_.store(count_, std::memory_order_relaxed);  // stop handing out tasks
      }
    }
    tInRegion = saved;
  }

  void workerLoop() {
    uint64_t seen = 0;
    for (;;) {
      uint64_t g = gen_.load(std::memory_order_acquire);
      if (g == seen) {
        const auto until = std::chrono::steady_clock::now() + kSpin;
        for (int k = 0; (g = gen_.load(std::memory_order_acquire)) == seen; ++k) {
          _mm_pause();
          if ((k & 63) == 63 && std::chrono::steady_clock::now() > until) break;
        }
        if (g == seen) {
          std::unique_lock<std::mutex> lk(mu_);
          sleepers_.fetch_add(1, std::memory_order_acq_rel);
          cv_.wait(lk, [&] { return stop_.load() || gen_.load(std::memory_order_acquire) != seen; });
          sleepers_.fetch_sub(1, std::memory_order_acq_rel);
          g = gen_.load(std::memory_order_acquire);
        }
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = g;
      inside_.fetch_add(1, std::memory_order_seq_cst);
      if (open_.load(std::memory_order_seq_cst) == g) work();
      inside_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_, errorMu_;
  std::condition_variable cv_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> open_{0};  // the generation of the open region, 0 when closed
  std::atomic<int> inside_{0};     // workers inside work() or deciding whether to enter
  std::atomic<int64_t> next_{0};
  std::atomic_flag busy_ = ATOMIC_FLAG_INIT;
  const FunctionRef<void(int64_t)>* fn_ = nullptr;
  int64_t count_ = 0;
  std::exception_ptr error_;
  std::atomic<bool> stop_{false};
};

}  // namespace

std::unique_ptr<Executor> makeCpuExecutor(int threads) { return std::make_unique<CpuExecutor>(threads); }

int physicalCores() {
  static const int cores = [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    std::vector<int> cpus;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set)) cpus.push_back(c);
    }
    if (cpus.empty())
      for (unsigned c = 0; c < std::thread::hardware_concurrency(); ++c) cpus.push_back(int(c));
    std::set<std::pair<std::string, std::string>> unique;
    for (int c : cpus) {
      const std::string base = "/sys/devices/system/cpu/cpu" + std::to_string(c) + "/topology/";
      std::ifstream pkg(base + "physical_package_id"), core(base + "core_id");
      std::string p, k;
      if (!(pkg >> p) || !(core >> k)) return std::max<int>(1, int(cpus.size()));
      unique.insert({p, k});
    }
    return std::max<int>(1, int(unique.size()));
  }();
  return cores;
}

int defaultThreads() {
  if (const char* e = std::getenv("ANVIL_NUM_THREADS")) {
    const int n = std::atoi(e);
    if (n > 0) return n;
  }
  return physicalCores();
}

}  // namespace anvil::runtime
