// anvil's public C++ API of the two privacy modes of docs/mpc.md and docs/anon.md (library
// `anvil_privacy`): the same operations as the CLI's --mode=mpc / --mode=fixed / mpc-* and
// --mode=anon / anon-* commands, which call the same library functions. Every function
// returns a Status (nothing throws across this API); outputs are written only on success.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "anvil/anvil.hpp"

namespace anvil {

// A named tensor in host memory, owned by the struct: row-major, `data` holds
// product(dims) * dataTypeSize(dtype) bytes. The privacy modes' inputs and outputs are
// float32 (the anonymous mode passes any dtype its engine takes through unchanged).
struct HostTensor {
  std::string name;
  DataType dtype = DataType::kFloat;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  }
  // float32 views (dtype must be kFloat).
  const float* floats() const { return reinterpret_cast<const float*>(data.data()); }
  float* floats() { return reinterpret_cast<float*>(data.data()); }
  static HostTensor fromFloats(std::string name, std::vector<int64_t> dims, const float* values) {
    HostTensor t{std::move(name), DataType::kFloat, std::move(dims), {}};
    t.data.resize(size_t(t.numel()) * sizeof(float));
    if (!t.data.empty()) std::memcpy(t.data.data(), values, t.data.size());
    return t;
  }
};

// ---- the two-party mode (docs/mpc.md) ---------------------------------------------------
namespace mpc {

struct BuildOptions {
  // The static input shapes (--shapes): the engines run exactly these.
  std::map<std::string, std::vector<int64_t>> shapes;
  // Calibration samples (--calibData): DIR/<input>.npy stacked on axis 0.
  std::string calibDir;
  // --exactTruncation: the secure run rounds every lookup index as runFixed does, so its
  // outputs are bit-identical to runFixed's, at more rounds and bytes per lookup layer
  // (docs/mpc.md, "Truncation"); the default rounds stochastically (within one step).
  bool exactTruncation = false;
};

// `anvil --mode=mpc`: compiles the model into the server engine (weights, the channel's
// secret key) and the public engine (no weights; for the client and the dealer).
Status buildEngines(const std::string& onnxPath, const BuildOptions& options, const std::string& serverEnginePath,
                    const std::string& publicEnginePath);

// The inputs (isInput) then the outputs of an mpc engine (server or public), float32 at
// the static shapes of its build: what runFixed and runClient take and return.
Status engineIo(const std::string& enginePath, std::vector<TensorDesc>* io);

// `anvil --mode=fixed`: one plaintext fixed-point run of the server engine: the reference
// the secure run reproduces. `inputs` by name at the engine's shapes (float32).
Status runFixed(const std::string& serverEnginePath, const std::vector<HostTensor>& inputs,
                std::vector<HostTensor>* outputs);

struct DealReport {
  int64_t runs = 0;
  uint64_t clientBytes = 0, serverBytes = 0;  // all runs together
  double milliseconds = 0;
};
// `anvil mpc-dealer`: `runs` runs of offline material from the PUBLIC engine, written to
// outDir/server and outDir/client (give each party only its own directory).
Status deal(const std::string& publicEnginePath, int64_t runs, const std::string& outDir,
            DealReport* report = nullptr);

struct ServeOptions {
  int timeoutSeconds = 30;  // a read, write or accept may wait this long (--timeout)
  // Called once listening, with the bound port (the way to learn a port-0 address's).
  std::function<void(int port)> onListening;
};
struct ServeReport {
  int64_t runsServed = 0;
  std::vector<int64_t> runIndices;  // material run each connection used, in order
};
// `anvil mpc-server`: listens on listenAddress ("HOST:PORT", PORT 0: any free port) and
// serves one client connection per unused run of offlineDir (the dealer's outDir/server),
// returning when all are served. An error (a client failing mid-run, a timeout) ends it
// with that Status; `report` then counts the runs served before.
Status serve(const std::string& serverEnginePath, const std::string& offlineDir, const std::string& listenAddress,
             const ServeOptions& options, ServeReport* report = nullptr);

// What `mpc-client --exportStats` writes (its JSON fields of the same names).
struct ClientStats {
  uint64_t bytesSent = 0, bytesReceived = 0;  // on the wire, framing and MACs included
  int64_t rounds = 0;
  double onlineMs = 0;
  uint64_t offlineBytes = 0, offlineBytesClient = 0, offlineBytesServer = 0;  // one run's material
  int64_t lookups = 0;
  double lutBytesPerActivation = 0;
  int64_t runIndex = 0;  // the material run used
};
struct ClientOptions {
  int timeoutSeconds = 30;  // a connect, read or write may wait this long (--timeout)
};
// `anvil mpc-client`: claims the next run of offlineDir (the dealer's outDir/client),
// connects to the server and runs one secure inference on `inputs` (by name, float32, the
// engine's shapes). No run left, a server that is not the engine's, a dropped connection:
// a Status that says so (the claimed run is spent either way).
Status runClient(const std::string& publicEnginePath, const std::string& offlineDir, const std::string& connectAddress,
                 const std::vector<HostTensor>& inputs, std::vector<HostTensor>* outputs, ClientStats* stats = nullptr,
                 const ClientOptions& options = {});

}  // namespace mpc

// ---- the anonymous bucketed mode (docs/anon.md) ----------------------------------------
namespace anon {

struct BuildOptions {
  int threads = 1;        // the worker's threads: the latency ladder is timed with them (--threads)
  int timingRuns = 200;   // timed runs per bucket (--timingRuns)
};
// `anvil --mode=anon`: shapeBuckets as --shapeBuckets ("input:1x1x32x32,8x1x32x32").
Status buildEngine(const std::string& onnxPath, const std::string& shapeBuckets, const std::string& enginePath,
                   const BuildOptions& options = {});

// `anvil anon-submit`: seals `inputs` to the worker published on storeSpec ("sqlite:PATH"
// or "redis://HOST:PORT") and returns the capability (JSON text; keep it secret: it reads
// the result). pinnedWorkerKey (hex, optional): refuse a store that shows another worker.
Status submit(const std::string& storeSpec, const std::vector<HostTensor>& inputs, std::string* capabilityJson,
              const std::string& pinnedWorkerKey = "");

// `anvil anon-fetch`: waits up to waitSeconds for the result of a capability. A malformed
// or forged capability, a timeout or a request the worker refused: a Status.
Status fetch(const std::string& storeSpec, const std::string& capabilityJson, double waitSeconds,
             std::vector<HostTensor>* outputs);

struct WorkerConfig {
  long jobs = -1;                 // return after this many jobs (< 0: no limit)
  double idleExitSeconds = -1;    // return after this long without a job (< 0: never)
  std::string keyPath;            // the worker's key seed (default <enginePath>.worker-key, created when absent)
  std::string workerId;           // owner name of its claims (default from the key)
  // Called once the worker has published its key and buckets: submit() works from then on.
  std::function<void(const std::string& workerPublicKeyHex)> onReady;
};
struct WorkerReport {
  long jobs = 0;
  long results = 0;  // jobs answered with a result (the others: error or refused)
  bool idledOut = false;
  // Buckets whose runs on this machine overrun the rung the build measured (the CLI's [W]
  // lines): the latency ladder then shows this machine's noise.
  std::vector<std::string> warnings;
};
// `anvil anon-worker`: publishes and serves jobs of storeSpec with the engine.
Status runWorker(const std::string& enginePath, const std::string& storeSpec, const WorkerConfig& config,
                 WorkerReport* report = nullptr);

}  // namespace anon
}  // namespace anvil
