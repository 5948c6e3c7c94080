// The anon half of the privacy modes' public API (include/anvil/privacy.hpp): the bucketed
// engine's build, the client's submit and fetch and the worker's loop (service.h), with
// HostTensor in and out and a Status instead of exceptions.
#include <fstream>

#include "anvil/privacy.hpp"
#include "runtime/anon/bucket_engine.h"
#include "runtime/anon/service.h"
#include "runtime/privacy_api_util.h"

namespace anvil::anon {

using privacy_detail::fromIr;
using privacy_detail::guarded;
using privacy_detail::toIr;

Status buildEngine(const std::string& onnxPath, const std::string& shapeBuckets, const std::string& enginePath,
                   const BuildOptions& options) {
  return guarded([&] {
    ANVIL_CHECK(options.threads >= 1 && options.timingRuns >= 10, ErrorCode::kInvalidArgument,
                "anon::buildEngine: threads >= 1 and timingRuns >= 10 expected, got ", options.threads, " and ",
                options.timingRuns);
    AnonBuildOptions o;
    o.threads = options.threads;
    o.timingRuns = options.timingRuns;
    const std::string bytes = AnonEngine::build(onnxPath, parseShapeBuckets(shapeBuckets), o).serialize();
    std::ofstream os(enginePath, std::ios::binary | std::ios::trunc);
    os.write(bytes.data(), std::streamsize(bytes.size()));
    ANVIL_CHECK(os.good(), ErrorCode::kIoError, "cannot write ", enginePath);
  });
}

Status submit(const std::string& storeSpec, const std::vector<HostTensor>& inputs, std::string* capabilityJson,
              const std::string& pinnedWorkerKey) {
  return guarded([&] {
    ANVIL_CHECK(capabilityJson, ErrorCode::kInvalidArgument, "anon::submit: capabilityJson is null");
    Tensors in;
    for (const HostTensor& h : inputs) in.push_back({h.name, toIr(h)});
    auto store = openStore(storeSpec);
    SubmitOptions o;
    o.pinnedWorkerKey = pinnedWorkerKey;
    *capabilityJson = anon::submit(*store, in, o).toJson().dump(2);
  });
}

Status fetch(const std::string& storeSpec, const std::string& capabilityJson, double waitSeconds,
             std::vector<HostTensor>* outputs) {
  return guarded([&] {
    ANVIL_CHECK(outputs, ErrorCode::kInvalidArgument, "anon::fetch: outputs is null");
    ANVIL_CHECK(waitSeconds >= 0, ErrorCode::kInvalidArgument, "anon::fetch: waitSeconds >= 0 expected");
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(capabilityJson);
    } catch (const nlohmann::json::exception& e) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "the capability is not JSON: ", e.what());
    }
    const Capability cap = Capability::fromJson(j);
    auto store = openStore(storeSpec);
    std::vector<HostTensor> out;
    for (const auto& [name, t] : anon::fetch(*store, cap, waitSeconds)) out.push_back(fromIr(name, t));
    *outputs = std::move(out);
  });
}

Status runWorker(const std::string& enginePath, const std::string& storeSpec, const WorkerConfig& config,
                 WorkerReport* report) {
  WorkerReport r;
  Status s = guarded([&] {
    const AnonEngine engine = AnonEngine::load(enginePath);
    auto store = openStore(storeSpec);
    WorkerOptions o;
    o.keyPath = config.keyPath.empty() ? enginePath + ".worker-key" : config.keyPath;
    o.workerId = config.workerId;
    Worker w(engine, *store, o);
    r.warnings = w.ladderWarnings();
    w.publish();
    if (config.onReady) config.onReady(toHex(w.key().publicKey));
    WorkerLoopOptions loop;
    loop.maxJobs = config.jobs;
    loop.idleExitSeconds = config.idleExitSeconds;
    const WorkerLoopResult done = runWorkerLoop(w, loop, [&](const JobReport& job) {
      r.results += job.outcome == "result";
    });
    r.jobs = done.jobs;
    r.idledOut = done.idledOut;
  });
  if (report) *report = r;
  return s;
}

}  // namespace anvil::anon
