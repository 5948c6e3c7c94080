// The client of a two-party inference (docs/mpc.md) through the public API
// (anvil/privacy.hpp): the server holds the weights, this program the input, and neither
// sees the other's. Prints each row's top class and the run's communication.
//   mpc_client PUBLIC.engine OFF/client HOST:PORT INPUT(.npy of float32, or raw float32)
// PUBLIC.engine and OFF come from `anvil --mode=mpc ... --savePublic` and `anvil
// mpc-dealer`; the server runs `anvil mpc-server` (or anvil::mpc::serve).
#include <algorithm>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <vector>

#include "anvil/privacy.hpp"

int main(int argc, char** argv) {
  if (argc != 5) {
    std::cerr << "usage: mpc_client PUBLIC.engine OFF/client HOST:PORT INPUT\n";
    return 2;
  }
  std::vector<anvil::TensorDesc> io;
  if (auto s = anvil::mpc::engineIo(argv[1], &io); !s) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  const anvil::TensorDesc& in = io.front();  // one input: its shape is fixed by the build
  size_t n = 1;
  for (int64_t d : in.dims) n *= size_t(d);
  // The input file: a .npy of float32 (its header skipped: the data is the file's tail)
  // or raw float32.
  std::ifstream f(argv[4], std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < n * sizeof(float)) {
    std::cerr << "error: " << argv[4] << " holds " << bytes.size() << " bytes, the input '" << in.name << "' needs "
              << n * sizeof(float) << "\n";
    return 1;
  }
  std::vector<float> x(n);
  std::memcpy(x.data(), bytes.data() + (bytes.size() - n * sizeof(float)), n * sizeof(float));

  std::vector<anvil::HostTensor> outputs;
  anvil::mpc::ClientStats stats;
  const anvil::Status s = anvil::mpc::runClient(argv[1], argv[2], argv[3],
                                                {anvil::HostTensor::fromFloats(in.name, in.dims, x.data())}, &outputs,
                                                &stats);
  if (!s) {
    std::cerr << "error: " << s.message() << "\n";
    return 1;
  }
  const anvil::HostTensor& y = outputs.front();
  const int64_t classes = y.dims.back(), rows = y.numel() / classes;
  for (int64_t r = 0; r < rows; ++r) {
    const float* p = y.floats() + r * classes;
    std::cout << "row " << r << ": class " << (std::max_element(p, p + classes) - p) << "\n";
  }
  std::cout << "run " << stats.runIndex << ": online " << stats.onlineMs << " ms, " << stats.rounds << " rounds, sent "
            << stats.bytesSent << " B, received " << stats.bytesReceived << " B, offline " << stats.offlineBytes
            << " B\n";
  return 0;
}
