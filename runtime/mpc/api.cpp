// The mpc half of the privacy modes' public API (include/anvil/privacy.hpp): engine files
// in, Status out, over the compiler, the fixed executor and the parties (parties.h).
#include <map>
#include <set>

#include "anvil/privacy.hpp"
#include "runtime/mpc/compile.h"
#include "runtime/mpc/fixed.h"
#include "runtime/mpc/parties.h"
#include "runtime/privacy_api_util.h"

namespace anvil::mpc {

using privacy_detail::fromIr;
using privacy_detail::guarded;
using privacy_detail::toIr;

namespace {

// The inputs in Program::inputs order, each float32 at the engine's shape: checked here so
// that a wrong input fails before a run of material is claimed.
std::vector<ir::Tensor> programInputs(const Program& p, const std::vector<HostTensor>& inputs) {
  std::map<std::string, const HostTensor*> byName;
  for (const HostTensor& h : inputs)
    ANVIL_CHECK(byName.emplace(h.name, &h).second, ErrorCode::kInvalidArgument, "input '", h.name, "' given twice");
  std::vector<ir::Tensor> out;
  std::set<std::string> used;
  for (int32_t id : p.inputs) {
    const TensorDef& def = p.tensors.at(size_t(id));
    auto it = byName.find(def.name);
    ANVIL_CHECK(it != byName.end(), ErrorCode::kInvalidArgument, "no tensor given for the engine's input '", def.name,
                "'");
    used.insert(def.name);
    ANVIL_CHECK(it->second->dtype == DataType::kFloat, ErrorCode::kInvalidArgument, "input '", def.name, "' is ",
                dataTypeName(it->second->dtype), "; the mpc engines take float32");
    ANVIL_CHECK(it->second->dims == def.shape, ErrorCode::kShapeMismatch, "input '", def.name, "' has shape ",
                ir::Shape::fromExtents(it->second->dims).str(), ", the engine's is ",
                ir::Shape::fromExtents(def.shape).str(), " (fixed at the build: BuildOptions::shapes)");
    out.push_back(toIr(*it->second));
  }
  for (const HostTensor& h : inputs)
    ANVIL_CHECK(used.count(h.name), ErrorCode::kInvalidArgument, "the engine has no input '", h.name, "'");
  return out;
}

std::vector<HostTensor> namedOutputs(const std::vector<std::string>& names, const std::vector<ir::Tensor>& values) {
  std::vector<HostTensor> out;
  for (size_t i = 0; i < values.size(); ++i) out.push_back(fromIr(names.at(i), values[i]));
  return out;
}

ChannelOptions channel(int timeoutSeconds) {
  ANVIL_CHECK(timeoutSeconds > 0 && timeoutSeconds <= 86400, ErrorCode::kInvalidArgument,
              "timeoutSeconds is in 1..86400, got ", timeoutSeconds);
  ChannelOptions o;
  o.timeoutMs = timeoutSeconds * 1000;
  return o;
}

}  // namespace

Status buildEngines(const std::string& onnxPath, const BuildOptions& options, const std::string& serverEnginePath,
                    const std::string& publicEnginePath) {
  return guarded([&] {
    ANVIL_CHECK(!serverEnginePath.empty() && !publicEnginePath.empty(), ErrorCode::kInvalidArgument,
                "buildEngines needs both engine paths (server and public)");
    CompileOptions o;
    o.shapes = options.shapes;
    o.calibDir = options.calibDir;
    Program p = compileProgram(onnxPath, o);
    p.exactTruncation = options.exactTruncation;
    saveProgramFile(p, serverEnginePath);
    saveProgramFile(publicCopy(p), publicEnginePath);
  });
}

Status engineIo(const std::string& enginePath, std::vector<TensorDesc>* io) {
  return guarded([&] {
    ANVIL_CHECK(io, ErrorCode::kInvalidArgument, "engineIo: io is null");
    const Program p = loadProgramFile(enginePath);
    std::vector<TensorDesc> out;
    for (int32_t id : p.inputs)
      out.push_back({p.tensors.at(size_t(id)).name, DataType::kFloat, p.tensors.at(size_t(id)).shape, true});
    for (int32_t id : p.outputs)
      out.push_back({p.tensors.at(size_t(id)).name, DataType::kFloat, p.tensors.at(size_t(id)).shape, false});
    *io = std::move(out);
  });
}

Status runFixed(const std::string& serverEnginePath, const std::vector<HostTensor>& inputs,
                std::vector<HostTensor>* outputs) {
  return guarded([&] {
    ANVIL_CHECK(outputs, ErrorCode::kInvalidArgument, "runFixed: outputs is null");
    const Program p = loadProgramFile(serverEnginePath);
    ANVIL_CHECK(!p.isPublic, ErrorCode::kInvalidArgument, serverEnginePath,
                " is a public mpc engine (no weights): runFixed needs the server engine");
    const std::vector<ir::Tensor> values = mpc::runFixed(p, programInputs(p, inputs));
    std::vector<std::string> names;
    for (int32_t id : p.outputs) names.push_back(p.tensors.at(size_t(id)).name);
    *outputs = namedOutputs(names, values);
  });
}

Status deal(const std::string& publicEnginePath, int64_t runs, const std::string& outDir, DealReport* report) {
  return guarded([&] {
    ANVIL_CHECK(!outDir.empty(), ErrorCode::kInvalidArgument, "deal needs an output directory");
    const DealtMaterial d = dealMaterial(loadProgramFile(publicEnginePath), runs, outDir);
    if (report) *report = {d.runs, d.clientBytes, d.serverBytes, d.milliseconds};
  });
}

Status serve(const std::string& serverEnginePath, const std::string& offlineDir, const std::string& listenAddress,
             const ServeOptions& options, ServeReport* report) {
  ServeReport r;
  Status s = guarded([&] {
    const Program p = loadProgramFile(serverEnginePath);
    serveMaterial(
        p, offlineDir, listenAddress, channel(options.timeoutSeconds),
        [&](int port, int64_t) {
          if (options.onListening) options.onListening(port);
        },
        [&](const ServedRun& run) {
          ++r.runsServed;
          r.runIndices.push_back(run.runIndex);
        });
  });
  if (report) *report = r;
  return s;
}

Status runClient(const std::string& publicEnginePath, const std::string& offlineDir, const std::string& connectAddress,
                 const std::vector<HostTensor>& inputs, std::vector<HostTensor>* outputs, ClientStats* stats,
                 const ClientOptions& options) {
  return guarded([&] {
    ANVIL_CHECK(outputs, ErrorCode::kInvalidArgument, "runClient: outputs is null");
    const Program p = loadProgramFile(publicEnginePath);
    const std::vector<ir::Tensor> in = programInputs(p, inputs);
    const ClientRun run = runClientOnce(p, offlineDir, connectAddress, in, channel(options.timeoutSeconds));
    *outputs = namedOutputs(run.result.names, run.result.outputs);
    if (stats) {
      const ProtocolStats& s = run.result.stats;
      ClientStats c;
      c.bytesSent = s.bytesSent;
      c.bytesReceived = s.bytesReceived;
      c.rounds = s.rounds;
      c.onlineMs = s.onlineMs;
      c.offlineBytesClient = run.offline.client;
      c.offlineBytesServer = run.offline.server;
      c.offlineBytes = run.offline.client + run.offline.server;
      c.lookups = s.lookups;
      c.lutBytesPerActivation = s.lutBytesPerActivation;
      c.runIndex = run.material.runIndex;
      *stats = c;
    }
  });
}

}  // namespace anvil::mpc
