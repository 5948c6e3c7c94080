// Throughput scaling of independent contexts, on the lean runtime alone (links only
// anvil_runtime, so it runs on a deployment machine with just the engine file):
//   anvil_bench_scaling ENGINE [SECONDS] [MAX_CONTEXTS]
// For k = 1..MAX_CONTEXTS, k threads each own a context (1 intra-op thread) and run the
// engine back to back for SECONDS after a warm-up; prints runs/s and the ratio to k = 1.
// Contexts share nothing but the engine, so the ratio should approach k on k idle cores.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "anvil/anvil.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void check(const anvil::Status& s, const char* what) {
  if (!s) {
    std::fprintf(stderr, "%s: %s\n", what, s.message().c_str());
    std::exit(1);
  }
}

double runsPerSecond(const anvil::Engine& engine, int contexts, double seconds) {
  std::atomic<bool> go{false}, stop{false};
  std::atomic<long> runs{0};
  std::vector<std::thread> threads;
  for (int c = 0; c < contexts; ++c)
    threads.emplace_back([&] {
      std::unique_ptr<anvil::ExecutionContext> ctx;
      check(engine.createContext(&ctx, anvil::ContextOptions{1}), "createContext");
      std::vector<std::vector<uint8_t>> buffers;
      for (const auto& d : engine.io()) {
        std::vector<int64_t> dims;
        check(ctx->getTensorShape(d.name, &dims), "getTensorShape");
        size_t n = anvil::dataTypeSize(d.dtype);
        for (int64_t x : dims) n *= size_t(x < 0 ? 1 : x);
        buffers.emplace_back(n + 64, 0);
        check(ctx->setTensorAddress(d.name, buffers.back().data()), "setTensorAddress");
      }
      const auto warmUntil = Clock::now() + std::chrono::milliseconds(500);
      while (Clock::now() < warmUntil) check(ctx->run(), "run");
      while (!go.load()) std::this_thread::yield();
      long mine = 0;
      while (!stop.load()) {
        check(ctx->run(), "run");
        ++mine;
      }
      runs.fetch_add(mine);
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(600 + 50 * contexts));
  const auto t0 = Clock::now();
  go.store(true);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
  for (auto& t : threads) t.join();
  return double(runs.load()) / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s ENGINE [SECONDS=5] [MAX_CONTEXTS=2]\n", argv[0]);
    return 2;
  }
  const double seconds = argc > 2 ? std::atof(argv[2]) : 5.0;
  const int maxContexts = argc > 3 ? std::atoi(argv[3]) : 2;
  std::shared_ptr<anvil::Engine> engine;
  check(anvil::Engine::load(argv[1], &engine), "load");
  const double one = runsPerSecond(*engine, 1, seconds);
  std::printf("contexts=1 runs/s=%.2f ratio=1.00\n", one);
  for (int k = 2; k <= maxContexts; ++k) {
    const double r = runsPerSecond(*engine, k, seconds);
    std::printf("contexts=%d runs/s=%.2f ratio=%.2f\n", k, r, r / one);
  }
  return 0;
}
