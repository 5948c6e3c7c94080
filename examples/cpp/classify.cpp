// Loads an engine and classifies one input: prints the top class and its score.
//   classify ENGINE INPUT.npy-or-raw-float32
// Links only the lean runtime (anvil_runtime).
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iostream>
#include <vector>

#include "anvil/anvil.hpp"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: classify ENGINE INPUT\n";
    return 2;
  }
  std::shared_ptr<anvil::Engine> engine;
  if (auto s = anvil::Engine::load(argv[1], &engine); !s) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  const anvil::TensorDesc& in = engine->io().front();
  const anvil::TensorDesc& out = engine->io().back();
  std::unique_ptr<anvil::ExecutionContext> ctx;
  if (auto s = engine->createContext(&ctx); !s) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  std::vector<int64_t> inDims, outDims;
  ctx->getTensorShape(in.name, &inDims);
  size_t n = 1;
  for (int64_t d : inDims) n *= size_t(d);
  // The input file: a .npy of float32 (header skipped) or raw float32 data.
  std::ifstream f(argv[2], std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < n * 4) {
    std::cerr << "error: " << argv[2] << " holds " << bytes.size() << " bytes, need " << n * 4 << "\n";
    return 1;
  }
  std::vector<float> x(n);
  std::memcpy(x.data(), bytes.data() + (bytes.size() - n * 4), n * 4);
  ctx->getTensorShape(out.name, &outDims);
  std::vector<float> y(size_t(outDims.back()));
  ctx->setTensorAddress(in.name, x.data());
  ctx->setTensorAddress(out.name, y.data());
  if (auto s = ctx->run(); !s) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  auto best = std::max_element(y.begin(), y.end());
  std::cout << "class " << (best - y.begin()) << " score " << *best << "\n";
  return 0;
}
