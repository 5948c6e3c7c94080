// The online phase of the two-party protocol (docs/mpc.md): the client (party 0, holds the
// input) and the server (party 1, holds the weights) run one Program on additive shares
// over Z_2^64 with one run's dealer material (runtime/mpc/dealer.*), talking only through a
// Transport. Linear layers use the dealer's masks (E = W - A once per run, F = a0 - B per
// layer), lookups the one-time shifted tables (one byte each way per activation), shared
// products Beaver triples. A linear layer's F and the next lookup's bytes travel in one
// message, so each nonlinear layer costs one round trip.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ir/tensor.h"
#include "runtime/mpc/dealer.h"
#include "runtime/mpc/program.h"
#include "runtime/mpc/transport.h"

namespace anvil::mpc {

// Communication of one step (what this party sent / received for it, application bytes).
struct LayerStats {
  std::string name;
  StepKind kind = StepKind::kInput;
  int64_t rounds = 0;       // round trips this step waited for
  uint64_t bytesSent = 0, bytesReceived = 0;
  int64_t lookups = 0;      // one-time table lookups (kLut: elements, kMaxPool: comparisons)
};

struct ProtocolStats {
  uint64_t bytesSent = 0, bytesReceived = 0;                // on the transport (framing, MACs included)
  uint64_t payloadBytesSent = 0, payloadBytesReceived = 0;  // the protocol's own bytes
  int64_t rounds = 0;           // client -> server -> client exchanges of the online phase
  int64_t nonlinearLayers = 0;  // kLut, kMaxPool, kMul, kMatMul steps
  int64_t lookups = 0;
  uint64_t lutBytes = 0;        // lookup bytes both ways
  double lutBytesPerActivation = 0;
  double onlineMs = 0;          // from the hello to the outputs (the server: to kDone)
  uint64_t materialBytes = 0;   // this party's offline payload
  std::vector<LayerStats> layers;  // the communicating steps, in program order
};

// Sees what a party RECEIVED from its peer (its transcript), part by part: `part` is "mask"
// (E), "linear" (F), "lut" (opened lookup bytes), "beaver" (opened e, f), "output".
using TranscriptObserver =
    std::function<void(size_t step, const std::string& part, const uint8_t* data, size_t size)>;

struct ProtocolOptions {
  const RingKernels* kernels = nullptr;  // null: defaultKernels()
  TranscriptObserver observer;
};

struct ClientResult {
  std::vector<std::string> names;    // the graph outputs, in Program::outputs order
  std::vector<ir::Tensor> outputs;   // float32, int64(value) * scale
  ProtocolStats stats;
};

struct ServerResult {
  ProtocolStats stats;
};

// One run of each side. `material` is that side's payload of one dealer run; it is refused
// when it was made for another program, is the other party's, or was already used in this
// process (material files are consumed once by runtime/mpc/material.*). floatInputs follow
// Program::inputs. Any error aborts the transport (the peer fails with the reason) and is
// rethrown as anvil::Error.
ClientResult runClient(const Program& pub, const std::vector<uint8_t>& material, Transport& transport,
                       const std::vector<ir::Tensor>& floatInputs, const ProtocolOptions& options = {});
ServerResult runServer(const Program& server, const std::vector<uint8_t>& material, Transport& transport,
                       const ProtocolOptions& options = {});

// The quantization of a client input (kInput): int64 round-half-away(x / scale).
std::vector<Ring> quantizeInput(const ir::Tensor& x, const TensorDef& def);

}  // namespace anvil::mpc
