// The three parties of the mpc mode as whole operations over files and sockets: the dealer
// writing a set of material runs, the server serving every run it holds, the client
// claiming a run, connecting and running one inference. The CLI (tools/mpc_party_cli.cpp)
// and the public API (include/anvil/privacy.hpp) both drive the parties through these.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/tensor.h"
#include "runtime/mpc/channel.h"
#include "runtime/mpc/dealer.h"
#include "runtime/mpc/material.h"
#include "runtime/mpc/program.h"
#include "runtime/mpc/protocol.h"

namespace anvil::mpc {

// Reads an mpc engine file (server or public); throws kIoError when it is missing and
// kInvalidEngine when it is not an mpc engine.
Program loadProgramFile(const std::string& path);
// Writes serializeProgram(p) to path (kIoError when it cannot).
void saveProgramFile(const Program& p, const std::string& path);

// The dealer: `runs` runs of fresh material for the PUBLIC program in outDir/server and
// outDir/client (refuses a program with weights: the dealer must never see them).
struct DealtMaterial {
  std::string programId, setId;
  int64_t runs = 0;
  uint64_t clientBytes = 0, serverBytes = 0;  // all runs together
  double milliseconds = 0;
};
DealtMaterial dealMaterial(const Program& pub, int64_t runs, const std::string& outDir);

// The server: listens on `listenAddress` and serves one connection per unused run of its
// material in `offlineDir` (refuses a public program and a directory without material).
// onListening(port, runs) is called once bound (port 0 resolved), onRun after each run.
// Returns the number of runs served; a failed run throws (the runs before it are served).
struct ServedRun {
  int64_t runIndex = 0;
  ProtocolStats stats;
};
int64_t serveMaterial(const Program& server, const std::string& offlineDir, const std::string& listenAddress,
                      const ChannelOptions& options, const std::function<void(int port, int64_t runs)>& onListening,
                      const std::function<void(const ServedRun&)>& onRun);

// The client: claims the next run of `offlineDir`, connects to the server and runs one
// inference on `inputs` (Program::inputs order, float32 at the engine's shapes).
struct ClientRun {
  ClientResult result;
  MaterialHeader material;  // the run it used
  PayloadSizes offline;     // both parties' payload bytes of one run
};
ClientRun runClientOnce(const Program& pub, const std::string& offlineDir, const std::string& connectAddress,
                        const std::vector<ir::Tensor>& inputs, const ChannelOptions& options);

}  // namespace anvil::mpc
