// The parties' whole operations (parties.h): material files, the listener loop, the
// client's claim-connect-run.
#include "runtime/mpc/parties.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "anvil/error.h"

namespace anvil::mpc {

Program loadProgramFile(const std::string& path) {
  ANVIL_CHECK(std::filesystem::exists(path), ErrorCode::kIoError, "engine file '", path, "' not found");
  ANVIL_CHECK(isMpcEngineFile(path), ErrorCode::kInvalidEngine, "'", path,
              "' is not an mpc engine (build one with --mode=mpc --saveEngine=... --savePublic=...)");
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  ANVIL_CHECK(in.good() || in.eof(), ErrorCode::kIoError, "cannot read '", path, "'");
  return deserializeProgram(ss.str());
}

void saveProgramFile(const Program& p, const std::string& path) {
  const std::string bytes = serializeProgram(p);
  std::ofstream f(path, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write ", path);
}

DealtMaterial dealMaterial(const Program& pub, int64_t runs, const std::string& outDir) {
  ANVIL_CHECK(pub.isPublic, ErrorCode::kInvalidArgument,
              "mpc-dealer: the engine holds the weights; give the dealer the public engine (--savePublic)");
  ANVIL_CHECK(runs >= 1, ErrorCode::kInvalidArgument, "mpc-dealer needs --runs=N with N >= 1");
  DealtMaterial r;
  r.programId = pub.programId;
  r.setId = newSetId();
  r.runs = runs;
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < runs; ++i) {
    RunPayloads m = generateRun(pub, r.setId, i);
    MaterialHeader h{pub.programId, r.setId, 1, i, runs};
    writeMaterial(outDir + "/server", h, m.server);
    h.party = 0;
    writeMaterial(outDir + "/client", h, m.client);
    r.clientBytes += m.client.size();
    r.serverBytes += m.server.size();
  }
  r.milliseconds = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

int64_t serveMaterial(const Program& server, const std::string& offlineDir, const std::string& listenAddress,
                      const ChannelOptions& options, const std::function<void(int, int64_t)>& onListening,
                      const std::function<void(const ServedRun&)>& onRun) {
  ANVIL_CHECK(!server.isPublic && !server.serverSecretKey.empty(), ErrorCode::kInvalidArgument,
              "mpc-server: the engine is the public one; load the server engine (--saveEngine of the build)");
  const int64_t runs = countMaterial(offlineDir, server.programId, 1);
  ANVIL_CHECK(runs > 0, ErrorCode::kInvalidArgument, "mpc-server: '", offlineDir,
              "' holds no unused server material for this engine (run anvil mpc-dealer on its public engine)");
  Listener listener(listenAddress, options);
  if (onListening) onListening(listener.port(), runs);
  for (int64_t served = 0; served < runs; ++served) {
    // The run's material is claimed (read, logged, deleted) before the client comes, so its
    // file work is not in the client's online time; an unserved claimed run is only lost.
    ClaimedMaterial m = claimMaterial(offlineDir, server.programId, 1);
    std::unique_ptr<Transport> t = listener.accept(server.serverPublicKey, server.serverSecretKey);
    ServerResult r = runServer(server, m.payload, *t);
    if (onRun) onRun({m.header.runIndex, r.stats});
  }
  return runs;
}

ClientRun runClientOnce(const Program& pub, const std::string& offlineDir, const std::string& connectAddress,
                        const std::vector<ir::Tensor>& inputs, const ChannelOptions& options) {
  ANVIL_CHECK(!pub.serverPublicKey.empty(), ErrorCode::kInvalidEngine,
              "mpc-client: the engine holds no server public key");
  ClaimedMaterial m = claimMaterial(offlineDir, pub.programId, 0);
  std::unique_ptr<Transport> t = connectChannel(connectAddress, pub.serverPublicKey, options);
  ClientRun out;
  out.result = runClient(pub, m.payload, *t, inputs);
  t.reset();
  out.material = m.header;
  out.offline = payloadSizes(pub, m.header.setId.size());
  return out;
}

}  // namespace anvil::mpc
