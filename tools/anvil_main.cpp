// The `anvil` command line: trtexec's flag names and meanings where they apply. Builds an
// engine from --onnx (in memory, or --saveEngine) for the shapes or optimization profiles
// given, or loads one (--loadEngine), then runs inference on one context and prints
// trtexec's performance summary. Outputs whose size only the run decides come back through
// an OutputAllocator.
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
#include <set>
#include <sstream>
#include <cstring>
#include <thread>
#include <string>
#include <vector>

#include "anvil/anvil.hpp"
#include "ir/tensor.h"
#include "parser/onnx_parser.h"
#include "runtime/power.h"
#include "tools/modes.h"
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
    {"device", 1,
     "cpu (default) or cuda: layers a CUDA kernel serves run on the GPU, the rest on the CPU, with copies between"},
    {"computeCapability", 1,
     "with --device=cuda: the GPU to build for, major.minor (e.g. 9.0); without that GPU here the build is a "
     "cross-build whose tactics are chosen by heuristics (untimed). Default: this machine's GPU"},
    {"useCudaGraph", 0, "CUDA engines whose layers all run on the GPU: capture a run in a CUDA graph and replay it"},
    {"noDataTransfers", 0, "CUDA engines: do not copy inputs to and outputs from the GPU (times the GPU work alone)"},
    {"useSpinWait", 0, "CUDA engines: wait for the GPU by polling instead of blocking"},
    {"simulate", 0,
     "run a CUDA engine's GPU layers on the CPU through the CUDA simulator (slow; for machines without the GPU)"},
    {"shapes", 1,
     "input shapes to run with: name:1x3x224x224[,name:dims...] (name:scalar for rank 0); an input without a "
     "profile is also built for exactly this shape"},
    {"minShapes", 1, "optimization profile: smallest shape per input, same syntax as --shapes"},
    {"optShapes", 1, "optimization profile: the shape to tune for (default: --shapes when inside, else --maxShapes)"},
    {"maxShapes", 1, "optimization profile: largest shape per input, same syntax as --shapes"},
    {"iterations", 1, "run at least this many inference iterations (default 10)"},
    {"warmUp", 1, "warm up for this many ms before measuring (default 200)"},
    {"duration", 1, "run for at least this many seconds (default 3)"},
    {"avgRuns", 1, "report the average of this many consecutive runs in --verbose (default 10)"},
    {"percentile", 1, "latency percentiles to report, e.g. 90,95,99 (default)"},
    {"threads", 2,
     "intra-op CPU threads of the inference context and of tactic timing while building (default, and --threads "
     "alone: the machine's physical cores, or ANVIL_NUM_THREADS)"},
    {"timingCacheFile", 1, "read and update this timing cache while building"},
    {"builderOptimizationLevel", 1, "graph optimization level 0..3 (default 3)"},
    {"blockedLayouts", 1,
     "auto|never|always: activations in NCHW16c (AVX-512) / NCHW8c (AVX2) where blocked kernels serve a region; "
     "auto (default) times each region both ways and keeps the faster"},
    {"fp16", 0, "allow FP16 layers (half-precision weights, f32 compute) besides FP32: the builder keeps the fastest"},
    {"bf16", 0, "allow BF16 layers (bfloat16 dot products) besides FP32: the builder keeps the fastest"},
    {"int8", 0,
     "allow INT8 layers besides FP32 (activation ranges from --calib or --calibData; without either, from random "
     "inputs: for latency only)"},
    {"best", 0, "allow every precision (--fp16 --bf16 --int8)"},
    {"layerPrecisions", 1,
     "per-layer compute precision: name:prec[,name:prec...], prec fp32|fp16|bf16|int8, name '*' = every linear "
     "layer (layer names as --dumpLayerInfo prints them)"},
    {"layerOutputTypes", 1,
     "per-layer output storage: name:type[,name:type...], type fp32|int8, name '*' = every layer: int8 keeps an INT8 "
     "layer's output quantized (u8) for INT8 readers (the default wherever possible), fp32 keeps it f32"},
    {"precisionConstraints", 1,
     "none (default) | prefer | obey: obey fails the build where no kernel serves a --layerPrecisions precision or a --layerOutputTypes int8 cannot be had; "
     "prefer (and none) runs such a layer in fp32"},
    {"calib", 1, "calibration cache: read when it exists, else written after calibrating on --calibData"},
    {"calibData", 1,
     "DIR: calibration samples, one .npy per input named like --saveOutputs names files, samples stacked along "
     "axis 0 (split into batches of the opt shape)"},
    {"calibrator", 1, "percentile[=P] (default, P 99.99) | entropy | minmax: how activation ranges are chosen"},
    {"precision", 1,
     "fp32 (default: as the flags above allow) | auto: each linear layer takes the cheapest allowed precision whose "
     "predicted error (condition estimates on --calibData) keeps the output within --accuracyTolerance"},
    {"accuracyTolerance", 1,
     "what --precision=auto may lose, verified on held-out --calibData batches: the relative output error "
     "(default 0.01), or with --accuracyMetric=top1 the fraction of top-1 disagreements with fp32"},
    {"accuracyMetric", 1, "relative (default) | top1: the measure of --accuracyTolerance"},
    {"componentPrecision", 1,
     "tau: in INT8 layers, the output channels whose calibrated condition estimate predicts an error above tau "
     "compute in FP32 in the same kernel (needs --calibData)"},
    {"adaptivePrecision", 1,
     "tau: INT8 layers estimate kappa from their INT8 result at run time and recompute in FP32 the components the "
     "test flags (--dumpProfile reports the fraction recomputed per layer)"},
    {"adaptiveTest", 1, "product (default: kappa_v*kappa_phi*u > tau) | ratio (kappa_phi/|v| > tau) | both"},
    {"noConvDwFusion", 0, "keep each blocked 1x1 convolution apart from the depthwise convolution that reads its output (by default the pairs whose intermediate is 768 KiB or more per thread run as one anvil.FusedConvDw step; same results)"},
    {"noStrassen", 0, "leave one-level Strassen out of the f32 MatMul/Gemm tactics (by default it is timed as a candidate for constant weights of depth >= 256 and width >= 256: 7/8 of the multiply-adds, a normwise rather than componentwise rounding-error bound)"},
    {"noPrecisionGuard", 0, "keep the engine whose layers took reduced precisions by their own times even where the FP32 engine runs faster whole (by default the builder times both engines and keeps the faster)"},
    {"precisionReport", 1, "write each layer's precision, reason and condition estimates as JSON to FILE and as a table to FILE.txt"},
    {"loadInputs", 1,
     "name:file[,name:file...] input data: .npy (dtype and shape from the file; with --onnx also the build shape "
     "of an input no shape flag names) or raw binary (shape from --shapes or the engine)"},
    {"saveOutputs", 1, "DIR: one .npy per output, named after the output ([^A-Za-z0-9._-] -> _)"},
    {"exportOutput", 1, "write the outputs of the last run as JSON"},
    {"dumpOutput", 0, "print the outputs of the last run"},
    {"dumpProfile", 0, "print per-layer timings"},
    {"exportProfile", 1, "write per-layer timings as JSON"},
    {"dumpLayerInfo", 0,
     "print the engine's input profiles and layers (type, tactic and its version, how it was chosen, precision, "
     "device, workspace, prepared weights, output layouts, I/O)"},
    {"exportLayerInfo", 1, "write the engine's layers, input profiles and bindings as JSON"},
    {"exportTimes", 1, "write per-iteration timings as JSON"},
    {"power", 1,
     "auto (default: NVML for a CUDA engine, RAPL for a CPU one) | rapl | nvml | none: energy over the timed runs, "
     "printed as average power and inferences/s/W (and in --exportProfile)"},
    {"skipInference", 0, "build (and save) only"},
    {"checkSupport", 0, "list every unsupported node of --onnx and exit (builds nothing)"},
    {"dumpGraph", 1, "DIR: write the IR text before and after each optimization pass"},
    {"verbose", 0, "more logging: passes, tactic choices, per-avgRuns latencies"},
    {"mode", 1, "standard (default); mpc (build a two-party engine), fixed (run one in plaintext "
                "fixed point): docs/mpc.md; anon (build a bucketed engine): docs/anon.md"},
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

using ShapeMap = std::map<std::string, std::vector<int64_t>>;

// --shapes and the profile flags: name:AxBxC[,name:dims] ("name:scalar" for rank 0); the
// name may contain ':' (the last one separates).
ShapeMap parseShapes(const std::string& flag, const std::string& spec) {
  ShapeMap out;
  for (const std::string& item : split(spec, ',')) {
    size_t colon = item.rfind(':');
    ANVIL_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < item.size(), ErrorCode::kInvalidArgument, "--",
                flag, " entry '", item, "' is not name:AxBxC (e.g. input:1x3x224x224, or input:scalar)");
    const std::string name = item.substr(0, colon), body = item.substr(colon + 1);
    ANVIL_CHECK(!out.count(name), ErrorCode::kInvalidArgument, "--", flag, " names input '", name, "' twice");
    std::vector<int64_t> dims;
    if (body != "scalar")
      for (const std::string& d : split(body + "x", 'x')) {
        bool digits = !d.empty() && std::all_of(d.begin(), d.end(), [](char c) { return c >= '0' && c <= '9'; });
        ANVIL_CHECK(digits && d.size() < 19, ErrorCode::kInvalidArgument, "--", flag, " entry '", item, "': '", d,
                    "' is not a dimension (a non-negative integer; dims are separated by 'x')");
        dims.push_back(std::stoll(d));
      }
    out[name] = dims;
  }
  return out;
}

std::string dimsStr(const std::vector<int64_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s.empty() ? "scalar" : s;
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

// --fp16 / --bf16 / --int8 / --best, --layerPrecisions, --precisionConstraints, --calib,
// --calibData, --calibrator, --precision, --accuracyTolerance.
void readPrecisionFlags(std::map<std::string, std::string>& flags, anvil::BuilderConfig* cfg) {
  auto has = [&](const char* f) { return flags.count(f) > 0; };
  const bool best = has("best");
  cfg->fp16 = best || has("fp16");
  cfg->bf16 = best || has("bf16");
  cfg->int8 = best || has("int8");
  auto precisionOf = [](const std::string& flag, const std::string& p) {
    if (p == "fp32") return anvil::DataType::kF32;
    if (p == "fp16") return anvil::DataType::kF16;
    if (p == "bf16") return anvil::DataType::kBF16;
    if (p == "int8") return anvil::DataType::kI8;
    ANVIL_THROW(ErrorCode::kInvalidArgument, "--", flag, ": precision '", p, "' is not fp32, fp16, bf16 or int8");
  };
  if (has("layerPrecisions"))
    for (const std::string& item : split(flags["layerPrecisions"], ',')) {
      const size_t colon = item.rfind(':');
      ANVIL_CHECK(colon != std::string::npos && colon > 0, ErrorCode::kInvalidArgument,
                  "--layerPrecisions entry '", item, "' is not name:precision");
      cfg->layerPrecisions[item.substr(0, colon)] = precisionOf("layerPrecisions", item.substr(colon + 1));
    }
  if (has("layerOutputTypes"))
    for (const std::string& item : split(flags["layerOutputTypes"], ',')) {
      const size_t colon = item.rfind(':');
      ANVIL_CHECK(colon != std::string::npos && colon > 0, ErrorCode::kInvalidArgument,
                  "--layerOutputTypes entry '", item, "' is not name:type");
      const std::string t = item.substr(colon + 1);
      ANVIL_CHECK(t == "fp32" || t == "int8", ErrorCode::kInvalidArgument, "--layerOutputTypes: type '", t,
                  "' is not fp32 or int8 (activations are not stored in fp16 or bf16)");
      cfg->layerOutputTypes[item.substr(0, colon)] = t == "int8" ? anvil::DataType::kI8 : anvil::DataType::kF32;
    }
  if (has("precisionConstraints")) {
    const std::string c = flags["precisionConstraints"];
    ANVIL_CHECK(c == "none" || c == "prefer" || c == "obey", ErrorCode::kInvalidArgument,
                "--precisionConstraints is none, prefer or obey, got '", c, "'");
    using PC = anvil::BuilderConfig::PrecisionConstraints;
    cfg->precisionConstraints = c == "obey" ? PC::kObey : c == "prefer" ? PC::kPrefer : PC::kNone;
  }
  if (has("calib")) cfg->calibrationCache = flags["calib"];
  if (has("calibData")) cfg->calibrationData = flags["calibData"];
  if (has("calibrator")) {
    std::string c = flags["calibrator"];
    if (c.rfind("percentile=", 0) == 0) {
      cfg->calibrationPercentile = std::stod(c.substr(11));
      ANVIL_CHECK(cfg->calibrationPercentile > 0 && cfg->calibrationPercentile <= 100, ErrorCode::kInvalidArgument,
                  "--calibrator=percentile=P needs 0 < P <= 100");
      c = "percentile";
    }
    cfg->calibrator = c;
  }
  if (has("precision")) {
    const std::string p = flags["precision"];
    ANVIL_CHECK(p == "auto" || p == "fp32", ErrorCode::kInvalidArgument, "--precision is fp32 or auto, got '", p, "'");
    cfg->autoPrecision = p == "auto";
  }
  auto positive = [&](const char* f) {
    char* end = nullptr;
    const double v = std::strtod(flags[f].c_str(), &end);
    ANVIL_CHECK(end && *end == 0 && v > 0, ErrorCode::kInvalidArgument, "--", f, " is a positive number, got '",
                flags[f], "'");
    return v;
  };
  if (has("componentPrecision")) cfg->componentPrecision = positive("componentPrecision");
  if (has("adaptivePrecision")) cfg->adaptivePrecision = positive("adaptivePrecision");
  if (has("adaptiveTest")) cfg->adaptiveTest = flags["adaptiveTest"];
  cfg->precisionGuard = !has("noPrecisionGuard");
  cfg->strassen = !has("noStrassen");
  cfg->convDwFusion = !has("noConvDwFusion");
  if (has("accuracyMetric")) {
    cfg->accuracyMetric = flags["accuracyMetric"];
    ANVIL_CHECK(cfg->accuracyMetric == "relative" || cfg->accuracyMetric == "top1", ErrorCode::kInvalidArgument,
                "--accuracyMetric is relative or top1, got '", cfg->accuracyMetric, "'");
  }
  if (has("accuracyTolerance")) {
    char* end = nullptr;
    cfg->accuracyTolerance = std::strtod(flags["accuracyTolerance"].c_str(), &end);
    ANVIL_CHECK(end && *end == 0 && cfg->accuracyTolerance > 0, ErrorCode::kInvalidArgument,
                "--accuracyTolerance is a positive number, got '", flags["accuracyTolerance"], "'");
  }
}

// The precision fields of a layer for --dumpLayerInfo ("" when there is nothing to say).
std::string precisionDetails(const anvil::LayerInfo& l) {
  std::ostringstream os;
  if (!l.precisionReason.empty()) os << " precisionReason=" << l.precisionReason;
  if (l.kappaP99 >= 0) os << std::setprecision(4) << " kappa(median/p99/max)=" << l.kappaMedian << "/" << l.kappaP99 << "/" << l.kappaMax;
  if (l.kappaNormwise >= 0) os << std::setprecision(4) << " kappaNormwise=" << l.kappaNormwise;
  if (l.predictedError >= 0) os << std::setprecision(3) << " predictedError=" << l.predictedError;
  if (l.measuredError >= 0) os << std::setprecision(3) << " measuredError=" << l.measuredError;
  if (l.inputScale > 0) os << std::setprecision(6) << " inputScale=" << l.inputScale << " inputZeroPoint=" << l.inputZeroPoint;
  return os.str();
}

// Output storage types for --dumpLayerInfo: "f32", or "u8(scale,zp)" for a quantized one.
std::string outputTypesText(const anvil::LayerInfo& l) {
  std::ostringstream os;
  for (size_t k = 0; k < l.outputTypes.size(); ++k) {
    os << (k ? "," : "") << l.outputTypes[k];
    if (k < l.outputScales.size() && l.outputScales[k] > 0)
      os << std::setprecision(6) << "(" << l.outputScales[k] << "," << l.outputZeroPoints[k] << ")";
  }
  return l.outputTypes.empty() ? "-" : os.str();
}

// The precision fields of a layer in --exportLayerInfo (appended after the older fields).
std::string precisionJson(const anvil::LayerInfo& l) {
  std::string o = ", \"PrecisionReason\": \"" + jsonEscape(l.precisionReason) + "\"";
  if (l.kappaP99 >= 0)
    o += ", \"KappaMedian\": " + jsonNumber(l.kappaMedian) + ", \"KappaP99\": " + jsonNumber(l.kappaP99) +
         ", \"KappaMax\": " + jsonNumber(l.kappaMax) + ", \"KappaNormwise\": " + jsonNumber(l.kappaNormwise);
  if (l.predictedError >= 0) o += ", \"PredictedError\": " + jsonNumber(l.predictedError);
  if (l.measuredError >= 0) o += ", \"MeasuredError\": " + jsonNumber(l.measuredError);
  if (l.inputScale > 0)
    o += ", \"InputScale\": " + jsonNumber(l.inputScale) + ", \"InputZeroPoint\": " + std::to_string(l.inputZeroPoint);
  return o;
}

// --precisionReport=FILE: the layers that have a precision choice (the linear layers and
// any layer given one), as JSON in FILE and as a table in FILE.txt.
void writePrecisionReport(const std::string& file, const std::vector<anvil::LayerInfo>& layers) {
  std::ofstream j(file), t(file + ".txt");
  ANVIL_CHECK(j.good() && t.good(), ErrorCode::kIoError, "cannot write '", file, "' and '", file, ".txt'");
  j << "{\"Layers\": [";
  t << std::left << std::setw(48) << "layer" << std::setw(20) << "type" << std::setw(7) << "prec" << std::setw(10)
    << "reason" << std::right << std::setw(12) << "kappa med" << std::setw(12) << "kappa p99" << std::setw(12)
    << "kappa max" << std::setw(12) << "kappa norm" << std::setw(12) << "pred. err" << std::setw(12) << "meas. err"
    << "  tactic\n";
  bool first = true;
  for (const auto& l : layers) {
    if (l.precisionReason.empty() && l.kappaP99 < 0) continue;
    j << (first ? "\n" : ",\n") << "{\"Name\": \"" << jsonEscape(l.name) << "\", \"LayerType\": \"" << jsonEscape(l.type)
      << "\", \"Precision\": \"" << jsonEscape(l.precision) << "\", \"TacticName\": \"" << jsonEscape(l.tactic) << "\""
      << precisionJson(l) << "}";
    first = false;
    auto num = [](double v) {
      std::ostringstream os;
      if (v < 0) return std::string("-");
      os << std::setprecision(4) << v;
      return os.str();
    };
    t << std::left << std::setw(48) << l.name << std::setw(20) << l.type << std::setw(7) << l.precision << std::setw(10)
      << (l.precisionReason.empty() ? "-" : l.precisionReason) << std::right << std::setw(12) << num(l.kappaMedian)
      << std::setw(12) << num(l.kappaP99) << std::setw(12) << num(l.kappaMax) << std::setw(12) << num(l.kappaNormwise) << std::setw(12) << num(l.predictedError) << std::setw(12)
      << num(l.measuredError)
      << "  " << l.tactic << "\n";
  }
  j << "\n]}\n";
  std::cout << "[I] Precision report written to " << file << " and " << file << ".txt\n";
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

// Reads a .npy (dtype/shape from the file) or raw file (dtype/shape from the engine).
anvil::ir::Tensor loadInput(const std::string& file, const anvil::TensorDesc& desc, const std::vector<int64_t>& runDims) {
  const auto dtype = anvil::ir::DataType(int32_t(desc.dtype));
  if (std::filesystem::path(file).extension() == ".npy") {
    anvil::ir::Tensor t = anvil::tools::readNpy(file);
    ANVIL_CHECK(t.dtype() == dtype, ErrorCode::kInvalidArgument, "--loadInputs: '", file, "' is ", t.summary(),
                " but input '", desc.name, "' is ", anvil::dataTypeName(desc.dtype));
    return t;
  }
  ANVIL_CHECK(dtype != anvil::ir::DataType::kString, ErrorCode::kInvalidArgument, "--loadInputs: string input '",
              desc.name, "' needs a .npy file");
  for (int64_t d : runDims)
    ANVIL_CHECK(d >= 0, ErrorCode::kInvalidArgument, "--loadInputs: raw file for input '", desc.name,
                "' needs its shape: give --shapes or use a .npy file");
  anvil::ir::Tensor t(dtype, runDims);
  const size_t need = t.nbytes();
  std::ifstream f(file, std::ios::binary);
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot open '", file, "'");
  f.seekg(0, std::ios::end);
  const size_t size = size_t(f.tellg());
  ANVIL_CHECK(size == need, ErrorCode::kInvalidArgument, "--loadInputs: '", file, "' has ", size, " bytes, input '",
              desc.name, "' of shape ", dimsStr(runDims), " needs ", need);
  f.seekg(0);
  if (need) f.read(static_cast<char*>(t.mutableRaw()), std::streamsize(need));
  return t;
}

void check(const anvil::Status& s) {
  if (!s) throw Error(s.code(), s.message());
}

// Receives an output whose size only the run decides (NonZero, Unique, shapes computed
// from data): grows one buffer as asked and keeps the final extents.
class HostOutputAllocator : public anvil::OutputAllocator {
 public:
  explicit HostOutputAllocator(anvil::DataType dtype) : dtype_(dtype) {}
  void* reallocateOutput(const char*, void* current, uint64_t bytes, uint64_t alignment) override {
    if (current && current == data() && bytes <= capacity_) return current;
    if (dtype_ == anvil::DataType::kString) {  // string tensors are arrays of std::string
      strings_.assign(size_t(bytes / sizeof(std::string)) + 1, std::string());
      capacity_ = strings_.size() * sizeof(std::string);
      return strings_.data();
    }
    const size_t align = std::max<size_t>(64, size_t(alignment));
    const size_t size = std::max<size_t>(align, (size_t(bytes) + align - 1) / align * align);
    void* p = std::aligned_alloc(align, size);
    if (!p) return nullptr;
    raw_.reset(p);
    capacity_ = size;
    return p;
  }
  void notifyShape(const char*, const std::vector<int64_t>& dims) override {
    dims_ = dims;
    notified_ = true;
  }
  bool notified() const { return notified_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  const void* data() const {
    return dtype_ == anvil::DataType::kString ? static_cast<const void*>(strings_.data()) : raw_.get();
  }
  uint64_t capacity() const { return capacity_; }

 private:
  struct Free {
    void operator()(void* p) const { std::free(p); }
  };
  anvil::DataType dtype_;
  std::unique_ptr<void, Free> raw_;
  std::vector<std::string> strings_;
  uint64_t capacity_ = 0;
  std::vector<int64_t> dims_;
  bool notified_ = false;
};

// Names in a shape flag must be inputs of the model; min <= opt <= max per dim, one rank.
using InputDims = std::map<std::string, anvil::ir::Shape>;  // declared shape per model input

void checkNames(const char* flag, const ShapeMap& m, const InputDims& inputs) {
  for (const auto& [name, dims] : m) {
    auto it = inputs.find(name);
    if (it == inputs.end()) {
      std::string known;
      for (const auto& [n, s] : inputs) known += (known.empty() ? "" : ", ") + n;
      ANVIL_THROW(ErrorCode::kInvalidArgument, "--", flag, ": the model has no input '", name, "' (inputs: ", known,
                  ")");
    }
    const anvil::ir::Shape& s = it->second;
    ANVIL_CHECK(!s.rankKnown() || s.rank() == dims.size(), ErrorCode::kShapeMismatch, "--", flag, ": input '", name,
                "' has rank ", s.rank(), " ", s.str(), ", got ", dimsStr(dims));
    for (size_t i = 0; s.rankKnown() && i < dims.size(); ++i)
      ANVIL_CHECK(!s[i].isStatic() || s[i].value() == dims[i], ErrorCode::kShapeMismatch, "--", flag, ": input '",
                  name, "' dim ", i, " is fixed to ", s[i].value(), " ", s.str(), ", got ", dimsStr(dims));
  }
}

std::string rangeStr(const anvil::InputProfile& p) { return "min " + dimsStr(p.min) + ", max " + dimsStr(p.max); }

// The profiles of --minShapes/--optShapes/--maxShapes: min and max default to opt, opt to
// the --shapes entry (when inside min/max), then to max.
std::map<std::string, anvil::InputProfile> makeProfiles(const ShapeMap& mins, const ShapeMap& opts,
                                                       const ShapeMap& maxs, const ShapeMap& shapes) {
  std::map<std::string, anvil::InputProfile> out;
  std::set<std::string> names;
  for (const ShapeMap* m : {&mins, &opts, &maxs})
    for (const auto& [n, d] : *m) names.insert(n);
  for (const std::string& n : names) {
    anvil::InputProfile p;
    auto within = [&](const std::vector<int64_t>& d) {  // inside the bounds given so far
      for (const ShapeMap* m : {&mins, &maxs})
        if (m->count(n) && m->at(n).size() != d.size()) return false;
      for (size_t i = 0; i < d.size(); ++i)
        if ((mins.count(n) && d[i] < mins.at(n)[i]) || (maxs.count(n) && d[i] > maxs.at(n)[i])) return false;
      return true;
    };
    if (opts.count(n)) p.opt = opts.at(n);
    else if (shapes.count(n) && within(shapes.at(n))) p.opt = shapes.at(n);
    else if (maxs.count(n)) p.opt = maxs.at(n);
    else p.opt = mins.at(n);
    p.min = mins.count(n) ? mins.at(n) : p.opt;
    p.max = maxs.count(n) ? maxs.at(n) : p.opt;
    ANVIL_CHECK(p.min.size() == p.opt.size() && p.opt.size() == p.max.size(), ErrorCode::kInvalidArgument,
                "input '", n, "': the profile's shapes differ in rank: min ", dimsStr(p.min), ", opt ", dimsStr(p.opt),
                ", max ", dimsStr(p.max));
    for (size_t i = 0; i < p.opt.size(); ++i)
      ANVIL_CHECK(p.min[i] <= p.opt[i] && p.opt[i] <= p.max[i], ErrorCode::kInvalidArgument, "input '", n,
                  "': the profile needs min <= opt <= max in every dim, got min ", dimsStr(p.min), ", opt ",
                  dimsStr(p.opt), ", max ", dimsStr(p.max), " (dim ", i, ")");
    out[n] = p;
  }
  return out;
}

// A run shape must lie within its input's profile (when the engine has one).
void checkInProfile(const std::string& name, const std::vector<int64_t>& dims, const anvil::InputProfile& p) {
  if (p.min.empty() && p.max.empty()) return;
  bool inside = dims.size() == p.min.size() && dims.size() == p.max.size();
  for (size_t i = 0; inside && i < dims.size(); ++i) inside = p.min[i] <= dims[i] && dims[i] <= p.max[i];
  ANVIL_CHECK(inside, ErrorCode::kShapeMismatch, "input '", name, "': shape ", dimsStr(dims),
              " is outside the engine's profile (", rangeStr(p), "); build with --minShapes/--maxShapes that cover it");
}

int run(int argc, char** argv) {
  // The privacy modes parse their own flags (tools/modes.h).
  if (argc >= 2) {
    const std::string first = argv[1];
    if (first.rfind("mpc-", 0) == 0) return anvil::tools::mpcMain(argc, argv);
    if (first.rfind("anon-", 0) == 0) return anvil::tools::anonMain(argc, argv);
    ANVIL_CHECK(first.rfind("--", 0) == 0, ErrorCode::kInvalidArgument, "unknown command '", first,
                "' (commands: mpc-dealer, mpc-server, mpc-client, anon-worker, anon-submit, anon-fetch)");
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--mode=mpc" || a == "--mode=fixed") return anvil::tools::mpcMain(argc, argv);
      if (a == "--mode=anon") return anvil::tools::anonMain(argc, argv);
    }
  }
  auto flags = parseFlags(argc, argv);
  auto has = [&](const char* f) { return flags.count(f) != 0; };
  if (has("help") || argc == 1) {
    std::cout << "usage: anvil (--onnx=model.onnx [--saveEngine=e.engine] | --loadEngine=e.engine) [options]\n";
    for (const Flag& f : kFlags)
      std::cout << "  --" << std::left << std::setw(28) << (std::string(f.name) + (f.value == 1 ? "=..." : f.value == 2 ? "[=N]" : ""))
                << f.help << "\n";
    return 0;
  }
  ANVIL_CHECK(!has("mode") || flags["mode"] == "standard", ErrorCode::kInvalidArgument,
              "--mode is standard, mpc, fixed or anon, got '", flags["mode"], "'");
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
  const std::string powerMode = has("power") ? flags["power"] : "auto";
  ANVIL_CHECK(powerMode == "auto" || powerMode == "rapl" || powerMode == "nvml" || powerMode == "none",
              ErrorCode::kInvalidArgument, "--power is auto, rapl, nvml or none, got '", powerMode, "'");
  ShapeMap shapes, minShapes, optShapes, maxShapes;
  if (has("shapes")) shapes = parseShapes("shapes", flags["shapes"]);
  if (has("minShapes")) minShapes = parseShapes("minShapes", flags["minShapes"]);
  if (has("optShapes")) optShapes = parseShapes("optShapes", flags["optShapes"]);
  if (has("maxShapes")) maxShapes = parseShapes("maxShapes", flags["maxShapes"]);
  const bool profileFlags = has("minShapes") || has("optShapes") || has("maxShapes");
  ANVIL_CHECK(!profileFlags || has("onnx"), ErrorCode::kInvalidArgument,
              "--minShapes/--optShapes/--maxShapes set the profiles of a build: use them with --onnx (a loaded "
              "engine keeps the profiles it was built with)");
  const std::map<std::string, anvil::InputProfile> profiles = makeProfiles(minShapes, optShapes, maxShapes, shapes);
  for (const auto& [name, p] : profiles)
    if (shapes.count(name)) checkInProfile(name, shapes[name], p);

  // --loadInputs: name -> file. A .npy input named in no shape flag is built for its
  // file's shape (a build for the data it will run on, as --shapes would say).
  std::map<std::string, std::string> files;
  std::map<std::string, anvil::ir::Tensor> npyInputs;
  ShapeMap npyShapes;
  if (has("loadInputs"))
    for (const std::string& item : split(flags["loadInputs"], ',')) {
      size_t colon = item.rfind(':');
      ANVIL_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < item.size(), ErrorCode::kInvalidArgument,
                  "--loadInputs entry '", item, "' is not name:file");
      const std::string name = item.substr(0, colon), file = item.substr(colon + 1);
      ANVIL_CHECK(!files.count(name), ErrorCode::kInvalidArgument, "--loadInputs names input '", name, "' twice");
      files[name] = file;
      if (std::filesystem::path(file).extension() == ".npy" && !shapes.count(name) && !profiles.count(name)) {
        npyInputs[name] = anvil::tools::readNpy(file);
        npyShapes[name] = npyInputs[name].dims();
      }
    }

  // Threads: this context's intra-op pool, and the builder's timing runs (0: the default).
  int threads = 0;
  if (has("threads") && !flags["threads"].empty()) threads = int(toInt("threads", flags["threads"], 1));
  if (threads > 0) anvil::setCpuThreads(threads);
  std::shared_ptr<anvil::Engine> engine;
  if (has("onnx")) {
    if (!shapes.empty() || profileFlags || !npyShapes.empty()) {  // names and ranks checked before a long build
      anvil::parser::ParseOptions popts;
      popts.inferShapes = false;
      anvil::ir::Model m = anvil::parser::parseOnnxFile(flags["onnx"], popts);
      InputDims inputs;
      for (const anvil::ir::Value* v : m.graph->inputs())
        if (!v->isInitializer()) inputs[v->name()] = v->shape();
      checkNames("shapes", shapes, inputs);
      checkNames("minShapes", minShapes, inputs);
      checkNames("optShapes", optShapes, inputs);
      checkNames("maxShapes", maxShapes, inputs);
      checkNames("loadInputs", npyShapes, inputs);
    }
    anvil::BuilderConfig cfg;
    cfg.device = device == "cuda" ? anvil::Device::kCUDA : anvil::Device::kCPU;
    if (has("computeCapability")) {
      ANVIL_CHECK(device == "cuda", ErrorCode::kInvalidArgument, "--computeCapability is for --device=cuda builds");
      const std::string cc = flags["computeCapability"];
      const size_t dot = cc.find('.');
      ANVIL_CHECK(dot != std::string::npos && dot > 0 && dot + 2 == cc.size() &&
                      std::all_of(cc.begin(), cc.end(), [](char c) { return c == '.' || (c >= '0' && c <= '9'); }),
                  ErrorCode::kInvalidArgument, "--computeCapability is major.minor, e.g. 9.0; got '", cc, "'");
      cfg.computeCapability = std::stoi(cc.substr(0, dot)) * 10 + (cc[dot + 1] - '0');
    }
    for (const auto& [name, dims] : shapes)
      if (!profiles.count(name)) cfg.inputShapes[name] = dims;  // alone: min = opt = max
    for (const auto& [name, dims] : npyShapes) cfg.inputShapes[name] = dims;
    cfg.profiles = profiles;
    cfg.verbose = verbose;
    if (has("timingCacheFile")) cfg.timingCachePath = flags["timingCacheFile"];
    if (has("dumpGraph")) cfg.dumpGraphDir = flags["dumpGraph"];
    if (has("builderOptimizationLevel")) {
      cfg.optimizationLevel = int(toInt("builderOptimizationLevel", flags["builderOptimizationLevel"], 0));
      ANVIL_CHECK(cfg.optimizationLevel <= 3, ErrorCode::kInvalidArgument, "--builderOptimizationLevel is 0..3");
    }
    if (has("blockedLayouts")) {
      const std::string b = flags["blockedLayouts"];
      ANVIL_CHECK(b == "auto" || b == "never" || b == "always", ErrorCode::kInvalidArgument,
                  "--blockedLayouts is auto, never or always, got '", b, "'");
      cfg.blockedLayouts = b == "never"    ? anvil::BuilderConfig::BlockedLayouts::kNever
                           : b == "always" ? anvil::BuilderConfig::BlockedLayouts::kAlways
                                           : anvil::BuilderConfig::BlockedLayouts::kAuto;
    }
    readPrecisionFlags(flags, &cfg);
    cfg.threads = threads;
    ProgressBar bar(isatty(STDERR_FILENO) != 0);
    cfg.progress = [&bar](int done, int total, const std::string& layer) { bar.update(done, total, layer); };
    std::string bytes;
    anvil::BuildReport report;
    std::cout << "[I] Building an engine from " << flags["onnx"] << " for " << device << "\n";
    for (const auto& [name, p] : profiles)
      std::cout << "[I] Profile for input '" << name << "': min " << dimsStr(p.min) << ", opt " << dimsStr(p.opt)
                << ", max " << dimsStr(p.max) << "\n";
    check(anvil::Builder::buildFromOnnx(flags["onnx"], cfg, &bytes, &report));
    if (verbose)
      for (const auto& l : report.passLog) std::cout << "[V] pass " << l << "\n";
    std::cout << "[I] Graph: " << report.nodesBefore << " nodes parsed, " << report.nodesAfter
              << " after optimization level " << cfg.optimizationLevel << "\n";
    std::cout << "[I] Tactics: " << report.layersTuned << " layers with a choice, " << report.tacticsTimed
              << " tactic timings measured, " << report.tacticsFromCache << " taken from the timing cache\n";
    if (cfg.device == anvil::Device::kCUDA) {
      std::cout << "[I] Placement: " << report.cudaLayers << " layers on cuda, " << report.cpuLayers << " on cpu, "
                << report.deviceCopies << " copies between them";
      if (!report.cpuOps.empty()) {
        std::cout << " (on cpu:";
        for (const auto& op : report.cpuOps) std::cout << " " << op;
        std::cout << ")";
      }
      std::cout << "\n";
      if (report.untimedLayers)
        std::cout << "[I] Cross-build: " << report.untimedLayers
                  << " CUDA layers have tactics chosen by heuristics (untimed: no GPU of the target here)\n";
    } else {
      std::cout << "[I] Layouts: " << report.blockedRegions << " blocked regions (" << report.blockedNodes
                << " layers), " << report.reorders << " reorders at their boundaries\n";
      if (report.concatInputsInPlace)
        std::cout << "[I] Concat: " << report.concatInputsInPlace << " inputs written in place by their producers\n";
    }
    if (!report.layersByPrecision.empty()) {
      std::cout << "[I] Precision: linear layers";
      for (const auto& [p, n] : report.layersByPrecision) std::cout << " " << p << "=" << n;
      std::cout << "\n";
    }
    if (report.loweredValues || report.loweredRefused)
      std::cout << "[I] INT8 chains: " << report.loweredValues << " activations stored u8 between INT8 layers, "
                << report.loweredRefused << " left f32 (a kernel does not take them quantized)\n";
    if (report.guardReducedMs >= 0)
      std::cout << std::setprecision(4) << "[I] Precision guard: reduced-precision engine " << report.guardReducedMs
                << " ms, FP32 engine " << report.guardF32Ms << " ms (medians, timed whole): kept the "
                << (report.guardKeptF32 ? "FP32" : "reduced-precision") << " engine\n"
                << std::setprecision(6);
    if (report.verificationRounds > 0)
      std::cout << "[I] Precision verified: " << cfg.accuracyMetric << " error " << report.measuredError
                << " on held-out calibration batches (tolerance " << cfg.accuracyTolerance << "), "
                << report.layersPromoted << " layers raised in " << report.verificationRounds << " rounds\n";
    for (const auto& w : report.warnings) std::cout << "[W] " << w << "\n";
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
    // The privacy modes' engines are files of their own (docs/mpc.md, docs/anon.md): say
    // how to run one instead of "bad magic".
    {
      char magic[8] = {};
      std::ifstream probe(flags["loadEngine"], std::ios::binary);
      probe.read(magic, sizeof magic);
      const std::string m(magic, size_t(probe.gcount()));
      ANVIL_CHECK(m != "ANVILMPC", ErrorCode::kInvalidArgument, "'", flags["loadEngine"],
                  "' is an mpc engine (built with --mode=mpc): run it with --mode=fixed, or serve it with anvil "
                  "mpc-server (docs/mpc.md)");
      ANVIL_CHECK(m != "ANVLANON", ErrorCode::kInvalidArgument, "'", flags["loadEngine"],
                  "' is an anon engine (built with --mode=anon): serve it with anvil anon-worker (docs/anon.md)");
    }
    check(anvil::Engine::load(flags["loadEngine"], &engine));
    std::cout << "[I] Loaded engine " << flags["loadEngine"] << " (" << engine->target() << ")\n";
  }

  auto layers = engine->layers();
  // The blocked layout at a glance: Reorder layers, and the layers that write NCHW<b>c.
  int reorders = 0, blockedLayers = 0;
  for (const auto& l : layers) {
    if (l.type == "anvil.Reorder") {
      ++reorders;
      continue;
    }
    for (const auto& x : l.outputLayouts)
      if (x.size() > 5 && x.compare(0, 4, "NCHW") == 0 && x.back() == 'c') {
        ++blockedLayers;
        break;
      }
  }
  if (has("dumpLayerInfo")) {
    std::cout << "[I] Blocked layout: " << blockedLayers << " layers, " << reorders << " reorders\n";
    std::cout << "[I] Input profiles:\n";
    for (const auto& d : engine->io()) {
      if (!d.isInput) continue;
      anvil::InputProfile p = engine->profile(d.name);
      std::cout << "[I] " << d.name << " (" << anvil::dataTypeName(d.dtype) << "): min " << dimsStr(p.min) << ", opt "
                << dimsStr(p.opt) << ", max " << dimsStr(p.max) << "\n";
    }
    std::cout << "[I] Layer information:\n";
    for (const auto& l : layers) {
      std::string layouts;
      for (const auto& x : l.outputLayouts) layouts += (layouts.empty() ? "" : ",") + x;
      std::cout << "[I] " << l.name << " [" << l.type << "] tactic=" << l.tactic << " precision=" << l.precision
                << " device=" << l.device << " tacticVersion=" << l.tacticVersion << " chosen="
                << (l.untimed ? "untimed" : l.timed ? "timed" : "only-candidate") << " candidates=" << l.candidates
                << (l.tasks > 0 ? " tasks=" + std::to_string(l.tasks) : std::string()) << " workspace=" << l.workspaceBytes << " prepared=" << l.preparedBytes
                << " layouts=" << (layouts.empty() ? "-" : layouts) << " outputTypes=" << outputTypesText(l)
                << precisionDetails(l) << "\n";
    }
  }
  if (has("exportLayerInfo")) {
    auto strList = [](const std::vector<std::string>& v) {
      std::string o = "[";
      for (size_t k = 0; k < v.size(); ++k) o += (k ? ", \"" : "\"") + jsonEscape(v[k]) + "\"";
      return o + "]";
    };
    auto numList = [](const auto& v) {
      std::string o = "[";
      for (size_t k = 0; k < v.size(); ++k) o += (k ? ", " : "") + jsonNumber(double(v[k]));
      return o + "]";
    };
    auto dimList = [](const std::vector<int64_t>& v) {
      std::string o = "[";
      for (size_t k = 0; k < v.size(); ++k) o += (k ? ", " : "") + std::to_string(v[k]);
      return o + "]";
    };
    std::ofstream f(flags["exportLayerInfo"]);
    ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", flags["exportLayerInfo"], "'");
    f << "{\"Layers\": [";
    for (size_t i = 0; i < layers.size(); ++i) {
      const auto& l = layers[i];
      // The first six fields are the original format (scripts read them); the rest were added.
      f << (i ? ",\n" : "\n") << "{\"Name\": \"" << jsonEscape(l.name) << "\", \"LayerType\": \"" << jsonEscape(l.type)
        << "\", \"Inputs\": " << strList(l.inputs) << ", \"Outputs\": " << strList(l.outputs) << ", \"TacticName\": \""
        << jsonEscape(l.tactic) << "\", \"Precision\": \"" << jsonEscape(l.precision) << "\", \"Device\": \""
        << jsonEscape(l.device) << "\", \"TacticVersion\": " << l.tacticVersion
        << ", \"Timed\": " << (l.timed ? "true" : "false") << ", \"Untimed\": " << (l.untimed ? "true" : "false")
        << ", \"Candidates\": " << l.candidates << ", \"Tasks\": " << l.tasks
        << ", \"WorkspaceBytes\": " << l.workspaceBytes << ", \"PreparedBytes\": " << l.preparedBytes
        << ", \"OutputLayouts\": " << strList(l.outputLayouts) << ", \"OutputTypes\": " << strList(l.outputTypes)
        << ", \"OutputScales\": " << numList(l.outputScales) << ", \"OutputZeroPoints\": " << numList(l.outputZeroPoints)
        << precisionJson(l) << "}";
    }
    f << "\n], \"BlockedLayers\": " << blockedLayers << ", \"Reorders\": " << reorders << ", \"Bindings\": [";
    for (size_t i = 0; i < engine->io().size(); ++i) f << (i ? ", " : "") << "\"" << jsonEscape(engine->io()[i].name) << "\"";
    f << "], \"Profiles\": [";
    bool first = true;
    for (const auto& d : engine->io()) {
      if (!d.isInput) continue;
      anvil::InputProfile p = engine->profile(d.name);
      f << (first ? "\n" : ",\n") << "{\"Name\": \"" << jsonEscape(d.name) << "\", \"Min\": " << dimList(p.min)
        << ", \"Opt\": " << dimList(p.opt) << ", \"Max\": " << dimList(p.max) << "}";
      first = false;
    }
    f << "\n]}\n";
  }
  if (has("precisionReport")) writePrecisionReport(flags["precisionReport"], layers);
  if (has("skipInference")) {
    std::cout << "[I] Skipped inference (--skipInference)\n";
    return 0;
  }

  std::unique_ptr<anvil::ExecutionContext> ctx;
  anvil::ContextOptions copts;
  copts.threads = threads;
  copts.simulate = has("simulate");
  copts.useCudaGraph = has("useCudaGraph");
  copts.noDataTransfers = has("noDataTransfers");
  copts.spinWait = has("useSpinWait");
  check(engine->createContext(&ctx, copts));
  if (copts.simulate && std::any_of(layers.begin(), layers.end(), [](const auto& l) { return l.device == "cuda"; }))
    std::cout << "[I] Simulated: the CUDA layers run on the CPU through the CUDA simulator (times say nothing about a GPU)\n";
  std::cout << "[I] Inference threads: " << ctx->threads() << "\n";
  // Inputs: shapes from --shapes, else the .npy's, else the tuned shapes; data from
  // --loadInputs, else random.
  for (const auto& [name, file] : files) {
    const anvil::TensorDesc* d = engine->find(name);
    ANVIL_CHECK(d && d->isInput, ErrorCode::kInvalidArgument, "--loadInputs: the engine has no input '", name, "'");
  }
  for (const auto& [name, dims] : shapes) {
    const anvil::TensorDesc* d = engine->find(name);
    ANVIL_CHECK(d && d->isInput, ErrorCode::kInvalidArgument, "--shapes: the engine has no input '", name, "'");
  }
  std::map<std::string, anvil::ir::Tensor> hostInputs;
  std::mt19937 rng(42);
  for (const auto& desc : engine->io()) {
    if (!desc.isInput) continue;
    std::vector<int64_t> dims = shapes.count(desc.name) ? shapes[desc.name] : engine->optShape(desc.name);
    anvil::ir::Tensor h;
    if (files.count(desc.name)) {
      h = npyInputs.count(desc.name) ? npyInputs[desc.name] : loadInput(files[desc.name], desc, dims);
      ANVIL_CHECK(int32_t(h.dtype()) == int32_t(desc.dtype), ErrorCode::kInvalidArgument, "--loadInputs: '",
                  files[desc.name], "' is ", h.summary(), " but input '", desc.name, "' is ",
                  anvil::dataTypeName(desc.dtype));
      ANVIL_CHECK(!shapes.count(desc.name) || h.dims() == dims, ErrorCode::kShapeMismatch, "input '", desc.name,
                  "': --shapes says ", dimsStr(dims), " but '", files[desc.name], "' is ", dimsStr(h.dims()));
    } else {
      h = anvil::ir::Tensor(anvil::ir::DataType(int32_t(desc.dtype)), dims);
      if (desc.dtype == anvil::DataType::kFloat) {
        std::uniform_real_distribution<float> dist(-1.f, 1.f);
        for (int64_t i = 0; i < h.numel(); ++i) h.data<float>()[i] = dist(rng);
      }
    }
    checkInProfile(desc.name, h.dims(), engine->profile(desc.name));
    check(ctx->setInputShape(desc.name, h.dims()));
    hostInputs[desc.name] = std::move(h);
  }
  // A zero-element input has no data to point at: it is bound to nullptr.
  for (auto& [name, h] : hostInputs) check(ctx->setTensorAddress(name, h.numel() ? h.mutableRaw() : nullptr));
  // Outputs: a buffer where the input shapes decide the size, an allocator where the run does.
  std::map<std::string, anvil::ir::Tensor> hostOutputs;
  std::map<std::string, std::unique_ptr<HostOutputAllocator>> allocators;
  for (const auto& desc : engine->io()) {
    if (desc.isInput) continue;
    std::vector<int64_t> dims;
    check(ctx->getTensorShape(desc.name, &dims));
    if (std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d >= 0; })) {
      anvil::ir::Tensor t(anvil::ir::DataType(int32_t(desc.dtype)), dims);
      check(ctx->setTensorAddress(desc.name, t.numel() ? t.mutableRaw() : nullptr));
      hostOutputs[desc.name] = std::move(t);
    } else {
      auto a = std::make_unique<HostOutputAllocator>(desc.dtype);
      check(ctx->setOutputAllocator(desc.name, a.get()));
      if (verbose) std::cout << "[V] Output '" << desc.name << "' " << dimsStr(dims) << ": size known after the run\n";
      allocators[desc.name] = std::move(a);
    }
  }

  // Profiling: per-layer totals over the measured iterations.
  std::map<std::string, std::pair<std::string, std::vector<double>>> layerTimes;
  std::map<std::string, std::pair<uint64_t, uint64_t>> recomputed;  // adaptive layers: recomputed, components
  std::vector<std::string> layerOrder;
  bool profiling = false;
  if (has("dumpProfile") || has("exportProfile"))
    ctx->setProfiler([&](const anvil::LayerTiming& t) {
      if (!profiling) return;
      auto& e = layerTimes[t.name];
      if (e.second.empty()) layerOrder.push_back(t.name);
      e.first = t.type + " (" + t.tactic + ")";
      e.second.push_back(t.milliseconds);
      if (t.components) {
        recomputed[t.name].first += t.recomputed;
        recomputed[t.name].second += t.components;
      }
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
  // Energy over the timed loop; sources open (NVML initializes) before it starts.
  const bool cudaEngine = device == "cuda" || std::any_of(layers.begin(), layers.end(), [](const auto& l) {
                            return l.device == "cuda";
                          });
  anvil::runtime::PowerMeter powerMeter(anvil::runtime::powerSources(powerMode, cudaEngine));
  powerMeter.start();
  const auto t0 = Clock::now();
  while (int64_t(latency.size()) < iterations ||
         std::chrono::duration<double>(Clock::now() - t0).count() < durationS) {
    auto a = Clock::now();
    if (cudaEngine) {  // queued, then waited for: trtexec's enqueue time and latency
      check(ctx->enqueue());
      const auto q = Clock::now();
      check(ctx->synchronize());
      enqueue.push_back(std::chrono::duration<double, std::milli>(q - a).count());
    } else {
      check(ctx->run());
    }
    auto b = Clock::now();
    startMs.push_back(std::chrono::duration<double, std::milli>(a - t0).count());
    latency.push_back(std::chrono::duration<double, std::milli>(b - a).count());
    if (!cudaEngine) enqueue.push_back(latency.back());  // the CPU backend runs synchronously inside enqueue
  }
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const anvil::runtime::PowerReading power = powerMeter.stop();
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
  if (cudaEngine) {
    // trtexec's breakdown of a CUDA run: host-to-device copies, GPU work, device-to-host
    // copies, from separately profiled runs (each step waited for; --simulate: the CPU's time).
    std::vector<double> h2d, gpuCompute, d2h;
    double runH2d = 0, runGpu = 0, runD2h = 0;
    ctx->setProfiler([&](const anvil::LayerTiming& t) {
      if (t.tactic == "copy_host_to_device") runH2d += t.milliseconds;
      else if (t.tactic == "copy_device_to_host") runD2h += t.milliseconds;
      else runGpu += t.milliseconds;
    });
    for (size_t i = 0; i < std::min<size_t>(10, latency.size()); ++i) {
      runH2d = runGpu = runD2h = 0;
      check(ctx->run());
      h2d.push_back(runH2d);
      gpuCompute.push_back(runGpu);
      d2h.push_back(runD2h);
    }
    ctx->setProfiler(nullptr);
    std::cout << "[I] H2D Latency: " << statsLine(stats(h2d, percentiles)) << "\n";
    std::cout << "[I] GPU Compute Time: " << statsLine(stats(gpuCompute, percentiles)) << "\n";
    std::cout << "[I] D2H Latency: " << statsLine(stats(d2h, percentiles)) << "\n";
  }
  std::cout << std::setprecision(5) << "[I] Total Host Walltime: " << wall << " s\n";
  std::cout << "[I] Total Compute Time: " << total / 1000.0 << " s\n";
  if (powerMode != "none")
    std::cout << "[I] " << anvil::runtime::powerSummary(power, int64_t(latency.size())) << "\n";
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
      for (const auto& name : layerOrder)
        if (auto it = recomputed.find(name); it != recomputed.end())
          std::cout << "[I] Adaptive precision: " << name << " recomputed " << std::setprecision(3)
                    << 100.0 * double(it->second.first) / double(it->second.second) << "% of "
                    << it->second.second / std::max<size_t>(1, layerTimes[name].second.size()) << " components\n";
    }
    if (has("exportProfile")) {
      std::ofstream f(flags["exportProfile"]);
      ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", flags["exportProfile"], "'");
      f << "[\n{\"count\": " << latency.size();
      if (powerMode != "none") {
        const bool measured = power.available && power.energyJ > 0;
        auto num = [&](double v) { return measured ? jsonNumber(v) : std::string("null"); };
        f << ", \"powerW\": " << num(power.averageW()) << ", \"energyJ\": " << num(power.energyJ)
          << ", \"powerSource\": \"" << jsonEscape(measured ? power.source + ", " + power.scope : "none") << "\""
          << ", \"inferencesPerSecondPerWatt\": "
          << num(anvil::runtime::inferencesPerSecondPerWatt(power, int64_t(latency.size())));
      }
      f << "}";
      for (const auto& name : layerOrder) {
        const auto& e = layerTimes[name];
        Stats s = stats(e.second, {});
        double t = std::accumulate(e.second.begin(), e.second.end(), 0.0);
        f << ",\n{\"name\": \"" << jsonEscape(name) << "\", \"timeMs\": " << jsonNumber(t) << ", \"averageMs\": "
          << jsonNumber(s.mean) << ", \"medianMs\": " << jsonNumber(s.median) << ", \"percentage\": "
          << jsonNumber(sum > 0 ? 100.0 * t / sum : 0);
        if (auto it = recomputed.find(name); it != recomputed.end())  // counts: summed over the runs
          f << ", \"recomputedFraction\": " << jsonNumber(double(it->second.first) / double(it->second.second))
            << ", \"recomputed\": " << it->second.first << ", \"components\": " << it->second.second;
        f << "}";
      }
      f << "\n]\n";
    }
  }

  // Outputs of the last run, at their final shapes.
  std::vector<std::pair<std::string, anvil::ir::Tensor>> outs;
  for (const auto& desc : engine->io()) {
    if (desc.isInput) continue;
    if (hostOutputs.count(desc.name)) {
      outs.emplace_back(desc.name, hostOutputs[desc.name]);
      continue;
    }
    const HostOutputAllocator& a = *allocators.at(desc.name);
    ANVIL_CHECK(a.notified(), ErrorCode::kInternal, "output '", desc.name,
                "': the run never reported its shape to the output allocator");
    anvil::ir::Tensor t(anvil::ir::DataType(int32_t(desc.dtype)), a.dims());
    ANVIL_CHECK(t.numel() == 0 || (a.data() && a.capacity() >= t.nbytes()), ErrorCode::kInternal, "output '",
                desc.name, "' of shape ", dimsStr(a.dims()), " needs ", t.nbytes(), " bytes, the allocator gave ",
                a.capacity());
    if (t.dtype() == anvil::ir::DataType::kString) {
      for (int64_t i = 0; i < t.numel(); ++i) t.data<std::string>()[i] = static_cast<const std::string*>(a.data())[i];
    } else if (t.nbytes()) {
      std::memcpy(t.mutableRaw(), a.data(), t.nbytes());
    }
    outs.emplace_back(desc.name, t);
  }
  if (has("saveOutputs")) {
    std::filesystem::create_directories(flags["saveOutputs"]);
    for (const auto& [name, t] : outs) {
      std::string file = (std::filesystem::path(flags["saveOutputs"]) / anvil::tools::npyFileName(name)).string();
      anvil::tools::writeNpy(file, t);
      std::cout << "[I] Wrote " << file << " (" << t.summary() << ")\n";
    }
  }
  if (has("dumpOutput")) {
    std::cout << "[I] Output Tensors:\n";
    for (const auto& [name, t] : outs) {
      std::cout << std::defaultfloat << std::setprecision(6) << "[I] " << name << ": (" << dimsStr(t.dims()) << ")\n[I]";
      for (int64_t i = 0; i < t.numel(); ++i)
        if (t.dtype() == anvil::ir::DataType::kString) std::cout << " \"" << t.str(i) << "\"";
        else std::cout << " " << t.getDouble(i);
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
      for (int64_t i = 0; i < t.numel(); ++i)
        f << (i ? ", " : "")
          << (t.dtype() == anvil::ir::DataType::kString ? "\"" + jsonEscape(t.str(i)) + "\"" : jsonNumber(t.getDouble(i)));
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
