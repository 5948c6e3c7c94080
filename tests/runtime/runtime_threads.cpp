// Links only anvil_runtime: 8 threads, each with its own context on one shared engine,
// 200 runs each, outputs bitwise identical to a single-threaded run. Built again with
// ThreadSanitizer by tests/runtime/tsan_test.cmake.
//   runtime_threads ENGINE [threads] [runs]
#include <cstring>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "anvil/anvil.hpp"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: runtime_threads ENGINE [threads] [runs]\n";
    return 2;
  }
  const int threads = argc > 2 ? std::atoi(argv[2]) : 8;
  const int runs = argc > 3 ? std::atoi(argv[3]) : 200;
  std::shared_ptr<anvil::Engine> engine;
  anvil::Status s = anvil::Engine::load(argv[1], &engine);
  if (!s) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  // Inputs at the tuned shapes, random floats; outputs sized from the context.
  std::unique_ptr<anvil::ExecutionContext> ref;
  if (!engine->createContext(&ref)) return 1;
  std::mt19937 rng(3);
  std::vector<std::vector<uint8_t>> inputs;
  std::vector<std::string> inNames, outNames;
  std::vector<size_t> outBytes;
  for (const auto& d : engine->io()) {
    std::vector<int64_t> dims;
    if (!ref->getTensorShape(d.name, &dims)) return 1;
    size_t n = anvil::dataTypeSize(d.dtype);
    for (int64_t x : dims) n *= size_t(x);
    if (d.isInput) {
      std::vector<uint8_t> buf(n, 0);
      if (d.dtype == anvil::DataType::kFloat)
        for (size_t i = 0; i < n / 4; ++i) reinterpret_cast<float*>(buf.data())[i] = float(rng() % 1000) / 1000.f;
      inputs.push_back(std::move(buf));
      inNames.push_back(d.name);
    } else {
      outNames.push_back(d.name);
      outBytes.push_back(n);
    }
  }
  auto bindAndRun = [&](anvil::ExecutionContext& ctx, std::vector<std::vector<uint8_t>>& outs) {
    for (size_t i = 0; i < inNames.size(); ++i) ctx.setTensorAddress(inNames[i], inputs[i].data());
    outs.resize(outNames.size());
    for (size_t i = 0; i < outNames.size(); ++i) {
      outs[i].assign(outBytes[i], 0);
      ctx.setTensorAddress(outNames[i], outs[i].data());
    }
    return ctx.run();
  };
  std::vector<std::vector<uint8_t>> want;
  s = bindAndRun(*ref, want);
  if (!s) {
    std::cerr << s.message() << "\n";
    return 1;
  }
  std::vector<int> bad(size_t(threads), 0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      std::unique_ptr<anvil::ExecutionContext> ctx;
      if (!engine->createContext(&ctx)) {
        bad[size_t(t)] = runs;
        return;
      }
      for (int r = 0; r < runs; ++r) {
        std::vector<std::vector<uint8_t>> got;
        if (!bindAndRun(*ctx, got) || got != want) ++bad[size_t(t)];
      }
    });
  for (auto& th : pool) th.join();
  int total = 0;
  for (int b : bad) total += b;
  std::cout << threads << " threads x " << runs << " runs: " << total << " mismatching runs\n";
  return total == 0 ? 0 : 1;
}
