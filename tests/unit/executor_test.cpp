// The CPU executor (runtime/executor.h): every task runs exactly once for any thread count,
// nested regions run serially, a task's exception reaches the caller and leaves the pool
// usable, sleeping workers wake for the next region, and the thread defaults.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/executor.h"

namespace {

using anvil::runtime::Executor;
using anvil::runtime::makeCpuExecutor;

TEST(Executor, EveryTaskRunsOnce) {
  for (int threads : {1, 2, 3, 5}) {
    auto ex = makeCpuExecutor(threads);
    EXPECT_EQ(ex->threads(), threads);
    for (int64_t n : {0, 1, 2, 7, 1000, 100003}) {
      std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
      ex->parallelFor(n, [&](int64_t i) { hits[size_t(i)].fetch_add(1); });
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[size_t(i)].load(), 1) << "threads " << threads << " n " << n;
    }
  }
}

TEST(Executor, UsesMoreThanOneThread) {
  auto ex = makeCpuExecutor(2);
  std::atomic<int> concurrent{0}, peak{0};
  ex->parallelFor(64, [&](int64_t) {
    const int now = concurrent.fetch_add(1) + 1;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    concurrent.fetch_sub(1);
  });
  EXPECT_EQ(peak.load(), 2);
}

TEST(Executor, NestedRegionsRunSerially) {
  auto ex = makeCpuExecutor(2);
  std::vector<std::atomic<int>> hits(10 * 100);
  ex->parallelFor(10, [&](int64_t i) {
    ex->parallelFor(100, [&](int64_t j) { hits[size_t(i * 100 + j)].fetch_add(1); });
  });
  for (auto& h : hits) ASSERT_EQ(h.load(), 1);
}

TEST(Executor, ExceptionReachesCallerAndPoolStaysUsable) {
  auto ex = makeCpuExecutor(2);
  EXPECT_THROW(ex->parallelFor(100, [&](int64_t i) {
    if (i == 37) throw std::runtime_error("task 37");
  }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  ex->parallelFor(100, [&](int64_t i) { sum.fetch_add(i); });
  EXPECT_EQ(sum.load(), 4950);
}

TEST(Executor, SleepingWorkersWakeUp) {
  auto ex = makeCpuExecutor(2);
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past the spin window: workers sleep
    std::atomic<int> count{0};
    ex->parallelFor(1000, [&](int64_t) { count.fetch_add(1); });
    EXPECT_EQ(count.load(), 1000);
  }
}

TEST(Executor, ThreadDefaults) {
  EXPECT_GE(anvil::runtime::physicalCores(), 1);
  EXPECT_LE(anvil::runtime::physicalCores(), int(std::max(1u, std::thread::hardware_concurrency())));
  const char* saved = std::getenv("ANVIL_NUM_THREADS");
  std::string keep = saved ? saved : "";
  setenv("ANVIL_NUM_THREADS", "3", 1);
  EXPECT_EQ(anvil::runtime::defaultThreads(), 3);
  unsetenv("ANVIL_NUM_THREADS");
  EXPECT_EQ(anvil::runtime::defaultThreads(), anvil::runtime::physicalCores());
  if (saved) setenv("ANVIL_NUM_THREADS", keep.c_str(), 1);
}

// Many executors on many threads at once: each context's pool is its own.
TEST(Executor, IndependentExecutorsRunConcurrently) {
  std::vector<std::thread> ts;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      auto ex = makeCpuExecutor(2);
      for (int r = 0; r < 200; ++r) {
        std::atomic<int> c{0};
        ex->parallelFor(50, [&](int64_t) { c.fetch_add(1); });
        if (c.load() != 50) bad.fetch_add(1);
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(bad.load(), 0);
}

}  // namespace
