// `anvil --mode=anon` (build a bucketed engine: buckets, per-bucket timings, the latency
// ladder) and the anon-worker / anon-submit / anon-fetch commands (docs/anon.md).
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <thread>

#include "anvil/error.h"
#include "runtime/anon/bucket_engine.h"
#include "runtime/anon/service.h"
#include "tools/modes.h"
#include "tools/npy.h"

namespace anvil::tools {

namespace {

using anon::Tensors;

struct FlagDef {
  const char* name;
  bool value;  // takes =value
  const char* help;
};

// Flags per command; anything else is an error naming the command's flags.
const std::map<std::string, std::vector<FlagDef>>& commandFlags() {
  static const std::map<std::string, std::vector<FlagDef>> flags = {
      {"build",
       {{"onnx", true, "ONNX model"},
        {"mode", true, "anon"},
        {"shapeBuckets", true, "name:AxB,CxD[,name2:...]: the public shape buckets, smallest first"},
        {"saveEngine", true, "write the anon engine (anon.engine) here"},
        {"threads", true, "intra-op threads of the worker's context, the ladder is timed with them (default 1)"},
        {"timingRuns", true, "timed runs per bucket for the ladder (default 200)"},
        {"ladderMargin", true, "each bucket's rung >= its p99 * (1 + margin) (default 0.25)"},
        {"ladderRatio", true, "ratio of consecutive rungs (default 2)"},
        {"ladderFloor", true, "lowest rung in ms (default 1)"},
        {"verbose", false, "builder logging"}}},
      {"anon-worker",
       {{"loadEngine", true, "the anon engine"},
        {"store", true, "sqlite:PATH or redis://HOST:PORT"},
        {"workerKey", true, "the worker's key seed file (default: <loadEngine>.worker-key, created when absent)"},
        {"workerId", true, "owner name of this process's claims (default worker-<key prefix>; distinct per process sharing a key)"},
        {"jobs", true, "exit after this many jobs"},
        {"idleExit", true, "exit after this many seconds without a job"},
        {"noBuckets", false, "run requests at their own shape, without the ladder (leaks timing; for comparison)"},
        {"lease", true, "seconds a claimed job stays this worker's before another may take it (default 30)"},
        {"threads", true, "override the engine's thread count (the ladder was timed with the engine's)"},
        {"quiet", false, "no line per job"}}},
      {"anon-submit",
       {{"store", true, "sqlite:PATH or redis://HOST:PORT"},
        {"loadInputs", true, "name:file.npy[,name:file.npy]"},
        {"capability", true, "write the capability (JSON) to fetch the result with here"},
        {"workerKey", true, "hex public key of the worker to trust (refuse a store showing another)"}}},
      {"anon-fetch",
       {{"store", true, "sqlite:PATH or redis://HOST:PORT"},
        {"capability", true, "the capability anon-submit wrote"},
        {"saveOutputs", true, "DIR: one .npy per output"},
        {"wait", true, "seconds to wait for the result (default 0: look once)"}}},
  };
  return flags;
}

std::map<std::string, std::string> parse(const std::string& command, int argc, char** argv, int first) {
  const auto& defs = commandFlags().at(command);
  std::map<std::string, std::string> out;
  for (int i = first; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help") {
      std::cout << "anvil " << (command == "build" ? "--mode=anon" : command) << " flags:\n";
      for (const FlagDef& f : defs)
        std::cout << "  --" << std::left << std::setw(20) << (std::string(f.name) + (f.value ? "=..." : "")) << f.help
                  << "\n";
      std::exit(0);
    }
    ANVIL_CHECK(arg.rfind("--", 0) == 0, ErrorCode::kInvalidArgument, command, ": unexpected argument '", arg, "'");
    const size_t eq = arg.find('=');
    const std::string name = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
    const FlagDef* def = nullptr;
    for (const FlagDef& f : defs)
      if (name == f.name) def = &f;
    if (!def) {
      std::string known;
      for (const FlagDef& f : defs) known += std::string(known.empty() ? "" : ", ") + "--" + f.name;
      ANVIL_THROW(ErrorCode::kInvalidArgument, command, ": unknown flag '--", name, "' (flags: ", known, ")");
    }
    if (def->value) {
      ANVIL_CHECK(eq != std::string::npos && eq + 1 < arg.size(), ErrorCode::kInvalidArgument, "--", name,
                  " needs a value: --", name, "=...");
      out[name] = arg.substr(eq + 1);
    } else {
      ANVIL_CHECK(eq == std::string::npos, ErrorCode::kInvalidArgument, "--", name, " takes no value");
      out[name] = "1";
    }
  }
  return out;
}

std::string need(std::map<std::string, std::string>& f, const std::string& command, const char* name) {
  ANVIL_CHECK(f.count(name), ErrorCode::kInvalidArgument, command, " needs --", name, "=...");
  return f[name];
}

double number(const std::map<std::string, std::string>& f, const char* name, double def, double lo) {
  auto it = f.find(name);
  if (it == f.end()) return def;
  try {
    size_t used = 0;
    const double v = std::stod(it->second, &used);
    ANVIL_CHECK(used == it->second.size() && v >= lo, ErrorCode::kInvalidArgument, "");
    return v;
  } catch (...) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "--", name, "=", it->second, " is not a number >= ", lo);
  }
}

std::string dimsStr(const anon::Dims& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s;
}

int build(int argc, char** argv) {
  auto f = parse("build", argc, argv, 1);
  ANVIL_CHECK(f["mode"] == "anon", ErrorCode::kInvalidArgument, "--mode=anon expected");
  const std::string onnx = need(f, "--mode=anon", "onnx"), out = need(f, "--mode=anon", "saveEngine");
  const anon::BucketSpec buckets = anon::parseShapeBuckets(need(f, "--mode=anon", "shapeBuckets"));
  anon::AnonBuildOptions o;
  o.threads = int(number(f, "threads", 1, 1));
  o.timingRuns = int(number(f, "timingRuns", 200, 10));
  o.ladder.margin = number(f, "ladderMargin", 0.25, 0);
  o.ladder.ratio = number(f, "ladderRatio", 2, 1.01);
  o.ladder.floorMs = number(f, "ladderFloor", 1, 0.01);
  o.verbose = f.count("verbose") != 0;
  const auto t0 = std::chrono::steady_clock::now();
  const anon::AnonEngine e = anon::AnonEngine::build(onnx, buckets, o);
  const std::string bytes = e.serialize();
  std::ofstream os(out, std::ios::binary | std::ios::trunc);
  os.write(bytes.data(), std::streamsize(bytes.size()));
  ANVIL_CHECK(os.good(), ErrorCode::kIoError, "cannot write ", out);
  const auto& h = e.header();
  std::cout << std::fixed << std::setprecision(3);
  std::cout << "[I] anon engine: " << h.buckets.shapes.size() << " buckets, " << h.threads << " thread(s), " << h.target
            << "\n";
  for (size_t k = 0; k < h.buckets.shapes.size(); ++k) {
    std::cout << "[I] bucket " << k << ":";
    for (size_t i = 0; i < h.buckets.inputs.size(); ++i)
      std::cout << " " << h.buckets.inputs[i] << ":" << dimsStr(h.buckets.shapes[k][i]);
    const auto& t = h.timings[k];
    std::cout << "  median " << t.medianMs << " ms, p99 " << t.p99Ms << " ms, max " << t.maxMs << " ms over " << t.runs
              << " runs -> rung " << h.bucketRung[k] << " (" << h.ladderMs[size_t(h.bucketRung[k])] << " ms)\n";
  }
  std::cout << "[I] latency ladder (ms):";
  for (double r : h.ladderMs) std::cout << " " << r;
  std::cout << "\n[I] wrote " << out << " (" << bytes.size() << " bytes) in "
            << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() << " s\n";
  return 0;
}

std::atomic<bool> gStop{false};
void onSignal(int) { gStop = true; }

int worker(int argc, char** argv) {
  const std::string cmd = "anon-worker";
  auto f = parse(cmd, argc, argv, 2);
  const std::string enginePath = need(f, cmd, "loadEngine");
  const anon::AnonEngine engine = anon::AnonEngine::load(enginePath);
  auto store = anon::openStore(need(f, cmd, "store"));
  anon::WorkerOptions o;
  o.keyPath = f.count("workerKey") ? f["workerKey"] : enginePath + ".worker-key";
  if (f.count("workerId")) o.workerId = f["workerId"];
  o.buckets = !f.count("noBuckets");
  o.leaseSeconds = number(f, "lease", 30, 0.1);
  o.threads = int(number(f, "threads", 0, 1));
  if (o.threads && o.threads != engine.header().threads)
    std::cerr << "[W] --threads=" << o.threads << " differs from the " << engine.header().threads
              << " thread(s) the ladder was timed with: rungs may be overrun\n";
  const long maxJobs = long(number(f, "jobs", -1, 1));
  const double idleExit = number(f, "idleExit", -1, 0);
  const bool quiet = f.count("quiet") != 0;
  // Crash tests: ANVIL_ANON_PAUSE=claimed|computed stops the worker at that point of its
  // jobs (after the claim, or with the result sealed but not written) for 60 s.
  if (const char* p = std::getenv("ANVIL_ANON_PAUSE")) {
    const std::string point = p;
    ANVIL_CHECK(point == "claimed" || point == "computed", ErrorCode::kInvalidArgument,
                "ANVIL_ANON_PAUSE is claimed or computed, got '", point, "'");
    o.pause = [point](const char* at, int64_t job) {
      if (point != at) return;
      std::cerr << "anon-worker: paused (" << at << ") in job " << job << std::endl;
      for (int i = 0; i < 600 && !gStop; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    };
  }
  anon::Worker w(engine, *store, o);
  for (const std::string& warning : w.ladderWarnings()) std::cerr << "[W] " << warning << "\n";
  w.publish();
  signal(SIGINT, onSignal);
  signal(SIGTERM, onSignal);
  std::cerr << "anon-worker: ready on " << store->spec() << " as " << w.id() << " (public key "
            << anon::toHex(w.key().publicKey) << ")" << (o.buckets ? "" : ", unbucketed") << std::endl;
  anon::WorkerLoopOptions loop;
  loop.maxJobs = maxJobs;
  loop.idleExitSeconds = idleExit;
  loop.stop = &gStop;
  const anon::WorkerLoopResult result = anon::runWorkerLoop(w, loop, [quiet](const anon::JobReport& r) {
    if (quiet) return;
    std::cout << std::fixed << std::setprecision(3) << "anon-worker: job " << r.job << " (attempt " << r.attempts
              << "): " << r.outcome;
    if (r.bucket >= 0) std::cout << ", bucket " << r.bucket;
    std::cout << ", compute " << r.computeMs << " ms, released at " << r.releaseMs << " ms";
    if (r.rungMs > 0) std::cout << " (rung " << r.rungMs << " ms)";
    if (!r.message.empty()) std::cout << ": " << r.message;
    std::cout << std::endl;
  });
  if (result.idledOut) std::cerr << "anon-worker: idle for " << idleExit << " s, exiting\n";
  const long done = result.jobs;
  std::cerr << "anon-worker: " << done << " job(s) done\n";
  return 0;
}

Tensors loadInputs(const std::string& spec) {
  Tensors out;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.rfind(':');
    ANVIL_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < item.size(), ErrorCode::kInvalidArgument,
                "--loadInputs entry '", item, "' is not name:file.npy");
    out.push_back({item.substr(0, colon), readNpy(item.substr(colon + 1))});
  }
  return out;
}

int submitCmd(int argc, char** argv) {
  const std::string cmd = "anon-submit";
  auto f = parse(cmd, argc, argv, 2);
  const std::string capPath = need(f, cmd, "capability");
  const Tensors inputs = loadInputs(need(f, cmd, "loadInputs"));
  auto store = anon::openStore(need(f, cmd, "store"));
  anon::SubmitOptions o;
  if (f.count("workerKey")) o.pinnedWorkerKey = f["workerKey"];
  const anon::Capability cap = anon::submit(*store, inputs, o);
  const std::string tmp = capPath + ".tmp";
  {
    const mode_t old = umask(077);  // the capability reads the result: owner-only
    std::ofstream os(tmp, std::ios::trunc);
    umask(old);
    os << cap.toJson().dump(2) << "\n";
    ANVIL_CHECK(os.good(), ErrorCode::kIoError, "cannot write the capability ", tmp);
  }
  std::filesystem::rename(tmp, capPath);
  std::cout << "anon-submit: request submitted; fetch with --capability=" << capPath << std::endl;
  return 0;
}

int fetchCmd(int argc, char** argv) {
  const std::string cmd = "anon-fetch";
  auto f = parse(cmd, argc, argv, 2);
  const std::string capPath = need(f, cmd, "capability"), dir = need(f, cmd, "saveOutputs");
  std::ifstream in(capPath);
  ANVIL_CHECK(in.good(), ErrorCode::kIoError, "cannot read the capability ", capPath);
  nlohmann::json j;
  try {
    in >> j;
  } catch (const nlohmann::json::exception& e) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "capability ", capPath, " is not JSON: ", e.what());
  }
  const anon::Capability cap = anon::Capability::fromJson(j);
  auto store = anon::openStore(need(f, cmd, "store"));
  const Tensors outputs = anon::fetch(*store, cap, number(f, "wait", 0, 0));
  std::filesystem::create_directories(dir);
  for (const auto& [name, t] : outputs) {
    const std::string path = (std::filesystem::path(dir) / npyFileName(name)).string();
    writeNpy(path, t);
    std::cout << "anon-fetch: " << name << " " << t.summary() << " -> " << path << "\n";
  }
  return 0;
}

}  // namespace

int anonMain(int argc, char** argv) {
  const std::string first = argc > 1 ? argv[1] : "";
  if (first == "anon-worker") return worker(argc, argv);
  if (first == "anon-submit") return submitCmd(argc, argv);
  if (first == "anon-fetch") return fetchCmd(argc, argv);
  ANVIL_CHECK(first.rfind("anon-", 0) != 0, ErrorCode::kInvalidArgument, "unknown command '", first,
              "' (anon commands: anon-worker, anon-submit, anon-fetch)");
  return build(argc, argv);
}

}  // namespace anvil::tools
