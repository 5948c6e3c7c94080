// The `anvil` command line: trtexec's flag names and meanings where they apply. Builds an
// engine from --onnx (in memory, or --saveEngine), or loads one (--loadEngine), then runs
// inference and prints trtexec's performance summary.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <numeric>
#include <random>
#include <sstream>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

#include "anvil/anvil.hpp"
#include "ir/tensor.h"
#include "parser/onnx_parser.h"
#include "tools/npy.h"

namespace {

using anvil::Error;
using anvil::ErrorCode;
using Clock = std::chrono::steady_clock;

struct Flag {
  const char* name;
  int value;  // 0 = no value, 1 = requires =value, 2 = optional value
  const char* help;
};
constexpr Flag kFlags[] = {
    {"onnx", 1, "ONNX model to build an engine from (built in memory unless --saveEngine)"},
    {"saveEngine", 1, "write the built engine to this file"},
    {"loadEngine", 1, "load a serialized engine instead of building"},
    {"device", 1, "cpu (default) or cuda"},
    {"shapes", 1, "input shapes to build for and run with: name:1x3x224x224[,name:dims...]"},
    {"iterations", 1, "run at least this many inference iterations (default 10)"},
    {"warmUp", 1, "warm up for this many ms before measuring (default 200)"},
    {"duration", 1, "run for at least this many seconds (default 3)"},
    {"avgRuns", 1, "report the average of this many consecutive runs in --verbose (default 10)"},
    {"percentile", 1, "latency percentiles to report, e.g. 90,95,99 (default)"},
    {"threads", 2, "CPU threads for tactics (default 1; --threads alone: all cores or ANVIL_NUM_THREADS)"},
    {"timingCacheFile", 1, "read and update this timing cache while building"},
    {"builderOptimizationLevel", 1, "graph optimization level 0..3 (default 3)"},
    {"loadInputs", 1, "name:file[,name:file...] input data (.npy with dtype/shape, or raw binary)"},
    {"saveOutputs", 1, "DIR: one .npy per output, named after the output ([^A-Za-z0-9._-] -> _)"},
    {"exportOutput", 1, "write the outputs of the last run as JSON"},
    {"dumpOutput", 0, "print the outputs of the last run"},
    {"dumpProfile", 0, "print per-layer timings"},
    {"exportProfile", 1, "write per-layer timings as JSON"},
    {"dumpLayerInfo", 0, "print the engine's layers (type, tactic, precision, I/O)"},
    {"exportLayerInfo", 1, "write the engine's layers and bindings as JSON"},
    {"exportTimes", 1, "write per-iteration timings as JSON"},
    {"skipInference", 0, "build (and save) only"},
    {"checkSupport", 0, "list every unsupported node of --onnx and exit (builds nothing)"},
    {"dumpGraph", 1, "DIR: write the IR text before and after each optimization pass"},
    {"verbose", 0, "more logging: passes, tactic choices, per-avgRuns latencies"},
    {"help", 0, "print this help"},
};

std::map<std::string, std::string> parseFlags(int argc, char** argv) {
  std::map<std::string, std::string> out;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    ANVIL_CHECK(arg.rfind("--", 0) == 0, ErrorCode::kInvalidArgument, "unexpected argument '", arg,
                "' (flags look like --name=value)");
    std::string body = arg.substr(2);
    size_t eq = body.find('=');
    std::string name = body.substr(0, eq);
    const Flag* flag = nullptr;
    for (const Flag& f : kFlags)
      if (name == f.name) flag = &f;
    ANVIL_CHECK(flag != nullptr, ErrorCode::kInvalidArgument, "unknown flag '--", name, "' (see --help)");
    if (flag->value == 1) {
      ANVIL_CHECK(eq != std::string::npos && eq + 1 < body.size(), ErrorCode::kInvalidArgument, "flag --", name,
                  " needs a value: --", name, "=...");
      out[name] = body.substr(eq + 1);
    } else if (flag->value == 2) {
      out[name] = eq == std::string::npos ? "" : body.substr(eq + 1);
    } else {
      ANVIL_CHECK(eq == std::string::npos, ErrorCode::kInvalidArgument, "flag --", name, " takes no value");
      out[name] = "1";
    }
  }
  return out;
}

int64_t toInt(const std::string& flag, const std::string& v, int64_t lo) {
  try {
    size_t used = 0;
    long long x = std::stoll(v, &used);
    ANVIL_CHECK(used == v.size() && x >= lo, ErrorCode::kInvalidArgument, "");
    return x;
  } catch (...) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "--", flag, "=", v, " is not an integer >= ", lo);
  }
}

double toDouble(const std::string& flag, const std::string& v) {
  try {
    size_t used = 0;
    double x = std::stod(v, &used);
    ANVIL_CHECK(used == v.size() && x >= 0, ErrorCode::kInvalidArgument, "");
    return x;
  } catch (...) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "--", flag, "=", v, " is not a non-negative number");
  }
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep)) out.push_back(item);
  return out;
}

// name:AxBxC[,name:dims]; the name may contain ':' (the last one separates).
std::map<std::string, std::vector<int64_t>> parseShapes(const std::string& spec) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const std::string& item : split(spec, ',')) {
    size_t colon = item.rfind(':');
    ANVIL_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < item.size(), ErrorCode::kInvalidArgument,
                "--shapes entry '", item, "' is not name:AxBxC");
    std::vector<int64_t> dims;
    for (const std::string& d : split(item.substr(colon + 1), 'x')) dims.push_back(toInt("shapes", d, 0));
    out[item.substr(0, colon)] = dims;
  }
  return out;
}

std::string dimsStr(const std::vector<int64_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s.empty() ? "scalar" : s;
}

std::string sanitize(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  return s;
}

std::string jsonEscape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
      continue;
    }
    o += c;
  }
  return o;
}

std::string jsonNumber(double v) {
  if (std::isnan(v)) return "\"NaN\"";
  if (std::isinf(v)) return v > 0 ? "\"Infinity\"" : "\"-Infinity\"";
  std::ostringstream os;
  os << std::setprecision(9) << v;
  return os.str();
}

struct Stats {
  double min = 0, max = 0, mean = 0, median = 0, cov = 0;
  std::map<double, double> pct;
};

Stats stats(std::vector<double> v, const std::vector<double>& percentiles) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.min = v.front();
  s.max = v.back();
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / double(v.size());
  s.median = v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
  double var = 0;
  for (double x : v) var += (x - s.mean) * (x - s.mean);
  s.cov = s.mean > 0 ? std::sqrt(var / double(v.size())) / s.mean * 100.0 : 0;
  for (double p : percentiles) {
    // trtexec's rule: the value below which p% of the samples fall.
    size_t idx = size_t(std::max(0.0, std::ceil(p / 100.0 * double(v.size())) - 1));
    s.pct[p] = v[std::min(idx, v.size() - 1)];
  }
  return s;
}

std::string statsLine(const Stats& s) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(5) << "min = " << s.min << " ms, max = " << s.max << " ms, mean = " << s.mean
     << " ms, median = " << s.median << " ms";
  for (const auto& [p, v] : s.pct) os << ", percentile(" << std::setprecision(0) << p << "%) = " << std::setprecision(5) << v << " ms";
  return os.str();
}

class ProgressBar {
 public:
  explicit ProgressBar(bool enabled) : enabled_(enabled) {}
  void update(int done, int total, const std::string& layer) {
    if (!enabled_ || total == 0) return;
    const int width = 30;
    int filled = done * width / total;
    std::cerr << "\r[I] Timing tactics [" << std::string(size_t(filled), '=') << std::string(size_t(width - filled), ' ')
              << "] " << done << "/" << total << " " << layer.substr(0, 30) << std::string(10, ' ') << std::flush;
    if (done == total) std::cerr << "\n";
  }

 private:
  bool enabled_;
};

struct HostTensor {
  std::vector<int64_t> dims;
  anvil::DataType dtype;
  std::vector<uint8_t> data;
};

// Reads a .npy (dtype/shape from the file) or raw file (dtype/shape from the engine).
HostTensor loadInput(const std::string& file, const anvil::TensorDesc& desc, const std::vector<int64_t>& runDims) {
  HostTensor h;
  if (std::filesystem::path(file).extension() == ".npy") {
    anvil::ir::Tensor t = anvil::tools::readNpy(file);
    ANVIL_CHECK(int32_t(t.dtype()) == int32_t(desc.dtype), ErrorCode::kInvalidArgument, "--loadInputs: '", file, "' is ",
                t.summary(), " but input '", desc.name, "' is ", anvil::dataTypeName(desc.dtype));
    h.dims = t.dims();
    h.dtype = desc.dtype;
    h.data.assign(static_cast<const uint8_t*>(t.raw()), static_cast<const uint8_t*>(t.raw()) + t.nbytes());
    return h;
  }
  for (int64_t d : runDims)
    ANVIL_CHECK(d >= 0, ErrorCode::kInvalidArgument, "--loadInputs: raw file for input '", desc.name,
                "' needs its shape: give --shapes or use a .npy file");
  h.dims = runDims;
  h.dtype = desc.dtype;
  size_t need = anvil::dataTypeSize(desc.dtype);
  for (int64_t d : runDims) need *= size_t(d);
  std::ifstream f(file, std::ios::binary);
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot open '", file, "'");
  f.seekg(0, std::ios::end);
  const size_t size = size_t(f.tellg());
  ANVIL_CHECK(size == need, ErrorCode::kInvalidArgument, "--loadInputs: '", file, "' has ", size, " bytes, input '",
              desc.name, "' of shape ", dimsStr(runDims), " needs ", need);
  f.seekg(0);
  h.data.resize(need);
  f.read(reinterpret_cast<char*>(h.data.data()), std::streamsize(need));
  return h;
}

void check(const anvil::Status& s) {
  if (!s) throw Error(s.code(), s.message());
}

int run(int argc, char** argv) {
  auto flags = parseFlags(argc, argv);
  auto has = [&](const char* f) { return flags.count(f) != 0; };
  if (has("help") || argc == 1) {
    std::cout << "usage: anvil (--onnx=model.onnx [--saveEngine=e.engine] | --loadEngine=e.engine) [options]\n";
    for (const Flag& f : kFlags)
      std::cout << "  --" << std::left << std::setw(28) << (std::string(f.name) + (f.value == 1 ? "=..." : f.value == 2 ? "[=N]" : ""))
                << f.help << "\n";
    return 0;
  }
  const bool verbose = has("verbose");
  ANVIL_CHECK(has("onnx") != has("loadEngine"), ErrorCode::kInvalidArgument,
              "give exactly one of --onnx=model.onnx and --loadEngine=file.engine");
  if (has("checkSupport")) {
    ANVIL_CHECK(has("onnx"), ErrorCode::kInvalidArgument, "--checkSupport needs --onnx");
    auto issues = anvil::parser::checkSupport(flags["onnx"]);
    for (const auto& i : issues) std::cout << "unsupported: " << i.str() << "\n";
    std::cout << (issues.empty() ? "all nodes are supported" : std::to_string(issues.size()) + " unsupported node(s)")
              << "\n";
    return issues.empty() ? 0 : 1;
  }
  const std::string device = has("device") ? flags["device"] : "cpu";
  ANVIL_CHECK(device == "cpu" || device == "cuda", ErrorCode::kInvalidArgument, "--device must be cpu or cuda, got '",
              device, "'");
  std::map<std::string, std::vector<int64_t>> shapes;
  if (has("shapes")) shapes = parseShapes(flags["shapes"]);

  if (has("threads"))
    anvil::setCpuThreads(flags["threads"].empty() ? 0 : int(toInt("threads", flags["threads"], 1)));
  else
    anvil::setCpuThreads(1);  // trtexec runs single-threaded unless --threads is given
  std::shared_ptr<anvil::Engine> engine;
  if (has("onnx")) {
    anvil::BuilderConfig cfg;
    cfg.device = device == "cuda" ? anvil::Device::kCUDA : anvil::Device::kCPU;
    cfg.inputShapes = shapes;
    cfg.verbose = verbose;
    if (has("timingCacheFile")) cfg.timingCachePath = flags["timingCacheFile"];
    if (has("dumpGraph")) cfg.dumpGraphDir = flags["dumpGraph"];
    if (has("builderOptimizationLevel")) {
      cfg.optimizationLevel = int(toInt("builderOptimizationLevel", flags["builderOptimizationLevel"], 0));
      ANVIL_CHECK(cfg.optimizationLevel <= 3, ErrorCode::kInvalidArgument, "--builderOptimizationLevel is 0..3");
    }
    cfg.threads = anvil::cpuThreads();
    ProgressBar bar(isatty(STDERR_FILENO) != 0);
    cfg.progress = [&bar](int done, int total, const std::string& layer) { bar.update(done, total, layer); };
    std::string bytes;
    anvil::BuildReport report;
    std::cout << "[I] Building an engine from " << flags["onnx"] << " for " << device << "\n";
    check(anvil::Builder::buildFromOnnx(flags["onnx"], cfg, &bytes, &report));
    if (verbose)
      for (const auto& l : report.passLog) std::cout << "[V] pass " << l << "\n";
    std::cout << "[I] Graph: " << report.nodesBefore << " nodes parsed, " << report.nodesAfter
              << " after optimization level " << cfg.optimizationLevel << "\n";
    std::cout << "[I] Tactics: " << report.layersTuned << " layers with a choice, " << report.tacticsTimed
              << " tactic timings measured, " << report.tacticsFromCache << " taken from the timing cache\n";
    std::cout << "[I] Activation memory: " << report.peakActivationBytes << " bytes (peak)\n";
    std::cout << std::fixed << std::setprecision(3) << "[I] Engine built in " << report.buildMilliseconds / 1000.0
              << " s (" << bytes.size() << " bytes)\n";
    if (has("saveEngine")) {
      std::ofstream f(flags["saveEngine"], std::ios::binary);
      ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", flags["saveEngine"], "'");
      f.write(bytes.data(), std::streamsize(bytes.size()));
      ANVIL_CHECK(f.good(), ErrorCode::kIoError, "failed writing '", flags["saveEngine"], "'");
      std::cout << "[I] Engine saved to " << flags["saveEngine"] << "\n";
    }
    check(anvil::Engine::fromBytes(std::move(bytes), &engine));
  } else {
    check(anvil::Engine::load(flags["loadEngine"], &engine));
    std::cout << "[I] Loaded engine " << flags["loadEngine"] << " (" << engine->target() << ")\n";
  }

  auto layers = engine->layers();
  if (has("dumpLayerInfo")) {
    std::cout << "[I] Layer information:\n";
    for (const auto& l : layers)
      std::cout << "[I] " << l.name << " [" << l.type << "] tactic=" << l.tactic << " precision=" << l.precision << "\n";
  }
  if (has("exportLayerInfo")) {
    std::ofstream f(flags["exportLayerInfo"]);
    ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", flags["exportLayerInfo"], "'");
    f << "{\"Layers\": [";
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& l = layers[i];
      f << (i ? ",\n" : "\n") << "{\"Name\": \"" << jsonEscape(l.name) << "\", \"LayerType\": \"" << jsonEscape(l.type)
        << "\", \"Inputs\": [";
      for (size_t k = 0; k < l.inputs.size(); ++k) f << (k ? ", " : "") << "\"" << jsonEscape(l.inputs[k]) << "\"";
      f << "], \"Outputs\": [";
      for (size_t k = 0; k < l.outputs.size(); ++k) f << (k ? ", " : "") << "\"" << jsonEscape(l.outputs[k]) << "\"";
      f << "], \"TacticName\": \"" << jsonEscape(l.tactic) << "\", \"Precision\": \"" << jsonEscape(l.precision) << "\"}";
    }
    f << "\n], \"Bindings\": [";
    for (size_t i = 0; i < engine->io().size(); ++i) f << (i ? ", " : "") << "\"" << jsonEscape(engine->io()[i].name) << "\"";
    f << "]}\n";
  }
  if (has("skipInference")) {
    std::cout << "[I] Skipped inference (--skipInference)\n";
    return 0;
  }

  std::unique_ptr<anvil::ExecutionContext> ctx;
  check(engine->createContext(&ctx));
  // Inputs: shapes from --shapes, else the tuned shapes; data from --loadInputs, else random.
  std::map<std::string, std::string> files;
  if (has("loadInputs"))
    for (const std::string& item : split(flags["loadInputs"], ',')) {
      size_t colon = item.rfind(':');
      ANVIL_CHECK(colon != std::string::npos && colon > 0, ErrorCode::kInvalidArgument, "--loadInputs entry '", item,
                  "' is not name:file");
      const std::string name = item.substr(0, colon);
      const anvil::TensorDesc* d = engine->find(name);
      ANVIL_CHECK(d && d->isInput, ErrorCode::kInvalidArgument, "--loadInputs: the engine has no input '", name, "'");
      files[name] = item.substr(colon + 1);
    }
  for (const auto& [name, dims] : shapes) {
    const anvil::TensorDesc* d = engine->find(name);
    ANVIL_CHECK(d && d->isInput, ErrorCode::kInvalidArgument, "--shapes: the engine has no input '", name, "'");
  }
  std::map<std::string, HostTensor> hostInputs;
  std::mt19937 rng(42);
  for (const auto& desc : engine->io()) {
    if (!desc.isInput) continue;
    std::vector<int64_t> dims = shapes.count(desc.name) ? shapes[desc.name] : engine->optShape(desc.name);
    HostTensor h;
    if (files.count(desc.name)) {
      h = loadInput(files[desc.name], desc, dims);
    } else {
      h.dims = dims;
      h.dtype = desc.dtype;
      size_t n = 1;
      for (int64_t d : dims) n *= size_t(d);
      h.data.assign(n * anvil::dataTypeSize(desc.dtype), 0);
      if (desc.dtype == anvil::DataType::kFloat) {
        std::uniform_real_distribution<float> dist(-1.f, 1.f);
        auto* p = reinterpret_cast<float*>(h.data.data());
        for (size_t i = 0; i < n; ++i) p[i] = dist(rng);
      }
    }
    check(ctx->setInputShape(desc.name, h.dims));
    hostInputs[desc.name] = std::move(h);
  }
  for (auto& [name, h] : hostInputs) check(ctx->setTensorAddress(name, h.data.data()));
  std::map<std::string, HostTensor> hostOutputs;
  for (const auto& desc : engine->io()) {
    if (desc.isInput) continue;
    HostTensor h;
    check(ctx->getTensorShape(desc.name, &h.dims));
    h.dtype = desc.dtype;
    size_t n = anvil::dataTypeSize(desc.dtype);
    bool known = true;
    for (int64_t d : h.dims) {
      known = known && d >= 0;
      n *= size_t(std::max<int64_t>(d, 0));
    }
    if (known) {
      h.data.assign(n, 0);
      check(ctx->setTensorAddress(desc.name, h.data.data()));
    }
    hostOutputs[desc.name] = std::move(h);
  }

  // Profiling: per-layer totals over the measured iterations.
  std::map<std::string, std::pair<std::string, std::vector<double>>> layerTimes;
  std::vector<std::string> layerOrder;
  bool profiling = false;
  if (has("dumpProfile") || has("exportProfile"))
    ctx->setProfiler([&](const anvil::LayerTiming& t) {
      if (!profiling) return;
      auto& e = layerTimes[t.name];
      if (e.second.empty()) layerOrder.push_back(t.name);
      e.first = t.type + " (" + t.tactic + ")";
      e.second.push_back(t.milliseconds);
    });

  const double warmUpMs = has("warmUp") ? toDouble("warmUp", flags["warmUp"]) : 200.0;
  const int64_t iterations = has("iterations") ? toInt("iterations", flags["iterations"], 1) : 10;
  const double durationS = has("duration") ? toDouble("duration", flags["duration"]) : 3.0;
  const int64_t avgRuns = has("avgRuns") ? toInt("avgRuns", flags["avgRuns"], 1) : 10;
  std::vector<double> percentiles = {90, 95, 99};
  if (has("percentile")) {
    percentiles.clear();
    for (const std::string& p : split(flags["percentile"], ',')) {
      double v = toDouble("percentile", p);
      ANVIL_CHECK(v <= 100, ErrorCode::kInvalidArgument, "--percentile values are 0..100");
      percentiles.push_back(v);
    }
  }

  std::cout << "[I] Starting inference\n";
  const auto warmStart = Clock::now();
  int warmRuns = 0;
  do {
    check(ctx->run());
    ++warmRuns;
  } while (std::chrono::duration<double, std::milli>(Clock::now() - warmStart).count() < warmUpMs);
  std::cout << "[I] Warmup completed " << warmRuns << " queries over " << warmUpMs << " ms\n";
  profiling = true;
  std::vector<double> latency, enqueue, startMs;
  const auto t0 = Clock::now();
  while (int64_t(latency.size()) < iterations ||
         std::chrono::duration<double>(Clock::now() - t0).count() < durationS) {
    auto a = Clock::now();
    check(ctx->run());
    auto b = Clock::now();
    startMs.push_back(std::chrono::duration<double, std::milli>(a - t0).count());
    latency.push_back(std::chrono::duration<double, std::milli>(b - a).count());
    enqueue.push_back(latency.back());  // the CPU backend runs synchronously inside enqueue
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  std::cout << "[I] Timing trace has " << latency.size() << " queries over " << std::setprecision(5) << wall << " s\n";
  if (verbose)
    for (size_t i = 0; i + size_t(avgRuns) <= latency.size(); i += size_t(avgRuns)) {
      double s = std::accumulate(latency.begin() + long(i), latency.begin() + long(i + size_t(avgRuns)), 0.0);
      std::cout << "[V] Average on " << avgRuns << " runs - Compute Time: " << s / double(avgRuns) << " ms\n";
    }
  Stats lat = stats(latency, percentiles), enq = stats(enqueue, percentiles);
  const double total = std::accumulate(latency.begin(), latency.end(), 0.0);
  std::cout << "[I] === Performance summary ===\n";
  std::cout << std::fixed << std::setprecision(4) << "[I] Throughput: " << double(latency.size()) / wall << " qps\n";
  std::cout << "[I] Latency: " << statsLine(lat) << "\n";
  std::cout << "[I] Enqueue Time: " << statsLine(enq) << "\n";
  std::cout << "[I] Compute Time: " << statsLine(lat) << "\n";
  std::cout << std::setprecision(5) << "[I] Total Host Walltime: " << wall << " s\n";
  std::cout << "[I] Total Compute Time: " << total / 1000.0 << " s\n";
  if (lat.cov > 1.0)
    std::cout << "[W] * Compute time is unstable, with coefficient of variance = " << std::setprecision(2) << lat.cov
              << "%.\n[W]   If not already in use, locking the CPU frequency and isolating cores may help.\n";
  std::cout << "[I] Explanations of the performance metrics are printed in the verbose logs.\n";
  if (verbose)
    std::cout << "[V] Throughput: queries per second over the measured period. Latency: wall time of one run(), from "
                 "inputs bound to outputs written. Enqueue Time: time inside run() (equal to latency on the CPU). "
                 "Compute Time: kernel execution time of one run. Total Host Walltime: measured period.\n";

  if (has("exportTimes")) {
    std::ofstream f(flags["exportTimes"]);
    ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", flags["exportTimes"], "'");
    f << "[";
    for (size_t i = 0; i < latency.size(); ++i)
      f << (i ? ",\n" : "\n") << "{\"startEnqMs\": " << jsonNumber(startMs[i]) << ", \"endEnqMs\": "
        << jsonNumber(startMs[i] + enqueue[i]) << ", \"startComputeMs\": " << jsonNumber(startMs[i])
        << ", \"endComputeMs\": " << jsonNumber(startMs[i] + latency[i]) << ", \"computeMs\": " << jsonNumber(latency[i])
        << ", \"enqueueMs\": " << jsonNumber(enqueue[i]) << ", \"latencyMs\": " << jsonNumber(latency[i]) << "}";
    f << "\n]\n";
  }
  if (has("dumpProfile") || has("exportProfile")) {
    double sum = 0;
    for (const auto& [n, e] : layerTimes) sum += std::accumulate(e.second.begin(), e.second.end(), 0.0);
    if (has("dumpProfile")) {
      std::cout << "[I] === Profile (" << latency.size() << " iterations) ===\n";
      std::cout << "[I]    Time(ms)     Avg.(ms)   Median(ms)   Time(%)   Layer\n";
      for (const auto& name : layerOrder) {
        const auto& e = layerTimes[name];
        Stats s = stats(e.second, {});
        double t = std::accumulate(e.second.begin(), e.second.end(), 0.0);
        std::cout << "[I] " << std::setw(11) << std::setprecision(2) << t << std::setw(13) << std::setprecision(4)
                  << s.mean << std::setw(13) << s.median << std::setw(10) << std::setprecision(1)
                  << (sum > 0 ? 100.0 * t / sum : 0) << "   " << name << " " << e.first << "\n";
      }
      std::cout << "[I] " << std::setw(11) << std::setprecision(2) << sum << "   Total\n";
    }
    if (has("exportProfile")) {
      std::ofstream f(flags["exportProfile"]);
      ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", flags["exportProfile"], "'");
      f << "[\n{\"count\": " << latency.size() << "}";
      for (const auto& name : layerOrder) {
        const auto& e = layerTimes[name];
        Stats s = stats(e.second, {});
        double t = std::accumulate(e.second.begin(), e.second.end(), 0.0);
        f << ",\n{\"name\": \"" << jsonEscape(name) << "\", \"timeMs\": " << jsonNumber(t) << ", \"averageMs\": "
          << jsonNumber(s.mean) << ", \"medianMs\": " << jsonNumber(s.median) << ", \"percentage\": "
          << jsonNumber(sum > 0 ? 100.0 * t / sum : 0) << "}";
      }
      f << "\n]\n";
    }
  }

  // Outputs of the last run.
  std::vector<std::pair<std::string, anvil::ir::Tensor>> outs;
  for (const auto& desc : engine->io()) {
    if (desc.isInput) continue;
    std::vector<int64_t> dims;
    check(ctx->getTensorShape(desc.name, &dims));
    const void* data = ctx->outputData(desc.name);
    ANVIL_CHECK(data != nullptr || anvil::ir::numelOf(dims) == 0, ErrorCode::kInternal, "output '", desc.name,
                "' has no data");
    anvil::ir::Tensor t(anvil::ir::DataType(int32_t(desc.dtype)), dims);
    if (t.nbytes()) std::memcpy(t.mutableRaw(), data, t.nbytes());
    outs.emplace_back(desc.name, t);
  }
  if (has("saveOutputs")) {
    std::filesystem::create_directories(flags["saveOutputs"]);
    for (const auto& [name, t] : outs) {
      std::string file = (std::filesystem::path(flags["saveOutputs"]) / (sanitize(name) + ".npy")).string();
      anvil::tools::writeNpy(file, t);
      std::cout << "[I] Wrote " << file << " (" << t.summary() << ")\n";
    }
  }
  if (has("dumpOutput")) {
    std::cout << "[I] Output Tensors:\n";
    for (const auto& [name, t] : outs) {
      std::cout << std::defaultfloat << std::setprecision(6) << "[I] " << name << ": (" << dimsStr(t.dims()) << ")\n[I]";
      for (int64_t i = 0; i < t.numel(); ++i) std::cout << " " << t.getDouble(i);
      std::cout << "\n";
    }
  }
  if (has("exportOutput")) {
    std::ofstream f(flags["exportOutput"]);
    ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", flags["exportOutput"], "'");
    f << "[";
    for (size_t k = 0; k < outs.size(); ++k) {
      const auto& [name, t] = outs[k];
      f << (k ? ",\n" : "\n") << "{ \"name\" : \"" << jsonEscape(name) << "\"\n, \"dimensions\" : \"" << dimsStr(t.dims())
        << "\"\n, \"values\" : [ ";
      for (int64_t i = 0; i < t.numel(); ++i) f << (i ? ", " : "") << jsonNumber(t.getDouble(i));
      f << " ]\n}";
    }
    f << "\n]\n";
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const Error& e) {
    std::cerr << "[E] " << anvil::errorCodeName(e.code()) << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "[E] internal error: " << e.what() << "\n";
    return 2;
  }
}
