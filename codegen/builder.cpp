// The builder: ONNX → IR → (passes) → tactic choice by timing on the real shapes, with a
// timing cache → memory plan → engine bytes.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unordered_map>
#include <unordered_set>
#include <chrono>
#include <random>
#include <set>
#include <sstream>

#include <time.h>

#include "anvil/anvil.hpp"
#include "codegen/calibration.h"
#include "codegen/device_placement.h"
#ifdef ANVIL_HAVE_CUDA_BACKEND
#include "codegen/cuda_timing.h"
#include "cuda/device.h"
#include "cuda/runtime.h"
#endif
#include "codegen/layout_selection.h"
#include "codegen/precision_guard.h"
#include "codegen/timing_cache.h"
#include "cpu/reference.h"
#include "cpu/tactics/nchwc.h"
#include "cpu/tactics.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"
#include "passes/graph_edit.h"
#include "passes/pipeline.h"
#include "passes/passes.h"
#include "passes/pattern.h"
#include "passes/precision.h"
#include "runtime/clock.h"
#include "runtime/engine_format.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"
#include "runtime/memory_planner.h"

namespace anvil {

namespace {

using Clock = std::chrono::steady_clock;

// Everything that decides a tactic's speed: op, attributes, input types, constness.
std::string opSignature(const ir::Node& n) {
  std::ostringstream os;
  os << (n.domain().empty() ? "" : n.domain() + ".") << n.op() << "{";
  for (const auto& [name, a] : n.attrs().all()) {
    os << name << "=";
    std::visit(
        [&](const auto& v) {
          using T = std::decay_t<decltype(v)>;
          if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, float> || std::is_same_v<T, std::string>) {
            os << v;
          } else if constexpr (std::is_same_v<T, std::vector<int64_t>> || std::is_same_v<T, std::vector<float>> ||
                               std::is_same_v<T, std::vector<std::string>>) {
            for (const auto& x : v) os << x << ",";
          } else if constexpr (std::is_same_v<T, ir::Tensor>) {
            os << v.summary();
          } else {
            os << "graph";
          }
        },
        a.value);
    os << ";";
  }
  os << "}(";
  for (const ir::Value* v : n.inputs()) {
    if (!v) {
      os << "-,";
      continue;
    }
    os << v->type().str() << (v->isInitializer() ? "c" : "") << (v->layout().isPlain() ? "" : ir::layoutName(v->layout()))
       << ",";
  }
  os << ")";
  for (const ir::Value* v : n.outputs()) {
    if (!v->layout().isPlain()) os << "->" << ir::layoutName(v->layout());
    if (v->dtype() == ir::DataType::kU8) os << "->u8";  // a lowered output (INT8 chains)
  }
  // Kernel parameters the precision pass leaves that change the work (not the report's).
  const ir::Attributes& tp = n.tacticParams();
  if (tp.find("fp32_channels")) os << "|fp32_channels=" << tp.getInts("fp32_channels").size();
  if (tp.find("adaptive_tau"))
    os << "|adaptive=" << tp.getFloat("adaptive_tau", 0) << tp.getString("adaptive_test", "product");
  return os.str();
}

ir::Tensor randomTensor(const ir::TensorType& t, std::mt19937& rng) {
  ir::Tensor x(t.dtype, t.shape.extents());
  if (ir::isFloat(t.dtype)) {
    std::uniform_real_distribution<double> d(-1.0, 1.0);
    for (int64_t i = 0; i < x.numel(); ++i) x.setDouble(i, d(rng));
  }
  return x;  // integers stay zero: valid indices for any gather-like op
}

// 64-byte-aligned owned bytes (prepared blobs and workspaces while timing).
struct AlignedBuffer {
  std::unique_ptr<uint8_t, void (*)(void*)> p{nullptr, std::free};
  size_t n = 0;
  explicit AlignedBuffer(size_t bytes = 0) : n(bytes) {
    if (bytes) p.reset(static_cast<uint8_t*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
  }
  AlignedBuffer(const std::string& s) : AlignedBuffer(s.size()) {
    if (n) std::memcpy(p.get(), s.data(), n);
  }
};

runtime::TensorView viewOf(const ir::Tensor& t) {
  runtime::TensorView v;
  v.data = const_cast<void*>(t.raw());
  v.dtype = t.dtype();
  v.setExtents(t.dims());
  return v;
}

// Types of every main-graph value at one set of input shapes.
using TypeMap = std::unordered_map<const ir::Value*, ir::TensorType>;

struct Profiles {
  std::map<std::string, std::vector<int64_t>> min, opt, max;
};

std::string dimsStr(const std::vector<int64_t>& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s;
}

Profiles resolveProfiles(const ir::Graph& g, const BuilderConfig& config) {
  auto isInput = [&](const std::string& name) {
    for (const ir::Value* v : g.inputs())
      if (!v->isInitializer() && v->name() == name) return true;
    return false;
  };
  for (const auto& [name, dims] : config.inputShapes)
    ANVIL_CHECK(isInput(name), ErrorCode::kInvalidArgument, "--shapes: the model has no input '", name, "'");
  for (const auto& [name, p] : config.profiles)
    ANVIL_CHECK(isInput(name), ErrorCode::kInvalidArgument, "--minShapes/--optShapes/--maxShapes: the model has no input '",
                name, "'");
  Profiles out;
  for (const ir::Value* in : g.inputs()) {
    if (in->isInitializer()) continue;
    const std::string& name = in->name();
    const ir::Shape& s = in->shape();
    std::vector<int64_t> mn, op, mx;
    auto given = config.inputShapes.find(name);
    auto prof = config.profiles.find(name);
    if (prof != config.profiles.end()) {
      mn = prof->second.min;
      mx = prof->second.max;
      op = prof->second.opt;
      if (op.empty() && given != config.inputShapes.end()) op = given->second;
      if (op.empty()) op = mx;
      ANVIL_CHECK(!mn.empty() && !mx.empty(), ErrorCode::kInvalidArgument, "input '", name,
                  "': a profile needs both --minShapes and --maxShapes");
    } else if (given != config.inputShapes.end()) {
      mn = op = mx = given->second;
    } else {
      ANVIL_CHECK(s.rankKnown(), ErrorCode::kInvalidArgument, "input '", name,
                  "' has unknown rank: give its shape with --shapes");
      for (const ir::Dim& d : s.dims()) op.push_back(d.isStatic() ? d.value() : 1);
      mn = mx = op;
    }
    for (const auto* dims : {&mn, &op, &mx}) {
      ANVIL_CHECK(!s.rankKnown() || s.rank() == dims->size(), ErrorCode::kShapeMismatch, "input '", name,
                  "' has rank ", s.rank(), " (", s.str(), "), got ", dims->size(), " dims (", dimsStr(*dims), ")");
      ANVIL_CHECK(dims->size() == op.size(), ErrorCode::kShapeMismatch, "input '", name,
                  "': min, opt and max shapes have different ranks");
      for (size_t i = 0; i < dims->size(); ++i) {
        ANVIL_CHECK((*dims)[i] >= 0, ErrorCode::kShapeMismatch, "input '", name, "': negative dim ", (*dims)[i]);
        ANVIL_CHECK(!s.rankKnown() || !s[i].isStatic() || s[i].value() == (*dims)[i], ErrorCode::kShapeMismatch,
                    "input '", name, "' dim ", i, " is fixed to ", s[i].value(), " (", s.str(), "), got ", (*dims)[i]);
      }
    }
    for (size_t i = 0; i < op.size(); ++i)
      ANVIL_CHECK(mn[i] <= op[i] && op[i] <= mx[i], ErrorCode::kInvalidArgument, "input '", name,
                  "': the profile must satisfy min <= opt <= max in every dim (min ", dimsStr(mn), ", opt ",
                  dimsStr(op), ", max ", dimsStr(mx), ")");
    out.min[name] = mn;
    out.opt[name] = op;
    out.max[name] = mx;
  }
  return out;
}

// Infers the main graph at concrete input shapes and returns every value's type; the
// graph keeps those types until the next call.
TypeMap inferAt(ir::Graph& g, const std::vector<ir::TensorType>& declared,
                const std::map<std::string, std::vector<int64_t>>& shapes) {
  size_t k = 0;
  for (const auto& v : g.values()) v->setType(declared[k++]);
  for (ir::Value* in : g.inputs())
    if (!in->isInitializer()) in->setType({in->dtype(), ir::Shape::fromExtents(shapes.at(in->name()))});
  ir::inferShapes(g);
  TypeMap out;
  for (const auto& v : g.values()) out[v.get()] = v->type();
  return out;
}

bool isStaticValue(const ir::Value* v) {
  return !v || v->name().empty() || (v->shape().isStatic() && v->dtype() != ir::DataType::kString &&
                                     v->dtype() != ir::DataType::kUndefined);
}

bool isViewNode(const ir::Node& n) {
  static const char* kViews[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"};
  if (!n.domain().empty() || !n.input(0)) return false;
  bool view = false;
  for (const char* v : kViews) view |= n.op() == v;
  for (size_t k = 1; k < n.numOutputs(); ++k) view &= n.output(k)->name().empty();
  if (n.op() == "Dropout" && n.input(2)) {
    // Only inference-mode Dropout is the identity: training_mode must be a constant false.
    const ir::Tensor* t = n.input(2)->initializer();
    view &= t != nullptr && t->numel() == 1 && t->getInt(0) == 0;
  }
  return view;
}

// The NCHW<b>c block of a node's values (cpu/tactics/nchwc.h), 0 when none is blocked.
int nchwcBlockOf(const ir::Node& n) {
  for (const ir::Value* v : n.inputs())
    if (int b = cpu::nchwc::blockOf(v)) return b;
  for (const ir::Value* v : n.outputs())
    if (int b = cpu::nchwc::blockOf(v)) return b;
  return 0;
}

std::vector<ir::TensorType> inputTypes(const ir::Node& n, const TypeMap& types) {
  std::vector<ir::TensorType> out;
  for (const ir::Value* v : n.inputs()) out.push_back(v ? types.at(v) : ir::TensorType{});
  return out;
}

// One candidate prepared for a node: the kernel, its prepared state and timing buffers.
struct Candidate {
  const runtime::Kernel* kernel = nullptr;
  ir::DataType precision = ir::DataType::kUndefined;  // the node's precision while this kernel serves it
  int tasks = 0;  // > 0: one of the kernel's timed splits of the work (PrepareInfo::tasks)
  runtime::Prepared prepared;
  double ms = 0;
};

// A candidate's name in the timing cache and the build log: its kernel's, and the split.
std::string candidateName(const Candidate& c) {
  return c.tasks > 0 ? c.kernel->name + "/tasks=" + std::to_string(c.tasks) : c.kernel->name;
}

// A timing buffer for a value: its logical extents, or for a blocked value (NCHW<b>c) the
// storage of cpu/tactics/nchwc.h (channels rounded up to the block).
ir::Tensor timingBuffer(const ir::Value* v, const ir::TensorType& t, std::mt19937* rng) {
  ir::TensorType storage = t;
  if (const int b = cpu::nchwc::blockOf(v)) {
    std::vector<int64_t> e = t.shape.extents();
    e[1] = cpu::nchwc::channelBlocks(e[1], b) * b;
    storage.shape = ir::Shape::fromExtents(e);
  }
  return rng ? randomTensor(storage, *rng) : ir::Tensor(storage.dtype, storage.shape.extents());
}

// A prepared candidate ready to run on buffers whose views take the logical extents
// `inDims` / `outDims` (a blocked buffer holds more than its logical extents): its params,
// workspace and blobs copied once, each once() one timed run.
class CandidateTimer {
 public:
  CandidateTimer(const Candidate& c, const ir::Node& node, const std::vector<ir::Tensor>& inputs,
                 const std::vector<std::vector<int64_t>>& inDims, std::vector<ir::Tensor>& outputs,
                 const std::vector<std::vector<int64_t>>& outDims, runtime::Executor& exec,
                 const std::vector<char>& constant = {})
      : kernel_(c.kernel), params_(c.prepared.params), workspace_(c.prepared.workspaceBytes) {
    for (size_t k = 0; k < inputs.size(); ++k) {
      ins_.push_back(inputs[k].defined() ? viewOf(inputs[k]) : runtime::TensorView{});
      if (inputs[k].defined()) ins_.back().setExtents(inDims[k]);
    }
    for (size_t k = 0; k < outputs.size(); ++k) {
      outs_.push_back(outputs[k].defined() ? viewOf(outputs[k]) : runtime::TensorView{});
      if (outputs[k].defined()) outs_.back().setExtents(outDims[k]);
    }
    for (size_t k = 0; k < inputs.size(); ++k)
      if (inputs[k].defined() && !(k < constant.size() && constant[k]))
        activations_.push_back({static_cast<const char*>(ins_[k].data), inputs[k].nbytes()});
    for (const std::string& b : c.prepared.blobs) blobs_.emplace_back(b);
    for (const AlignedBuffer& b : blobs_) blobViews_.push_back({b.p.get(), b.n});
    a_.node = &node;
    a_.inputs = ins_.data();
    a_.numInputs = int(ins_.size());
    a_.outputs = outs_.data();
    a_.numOutputs = int(outs_.size());
    a_.params = {params_.p.get(), params_.n};
    a_.blobs = blobViews_.data();
    a_.numBlobs = int(blobViews_.size());
    a_.workspace = workspace_.p.get();
    a_.workspaceBytes = workspace_.n;
    a_.executor = &exec;
    threadClock_ = exec.threads() == 1;
  }
  // Reads the inputs that are not weights on this thread: in the engine the step before
  // wrote them moments ago (CacheEvictor has just pushed them out with the weights).
  void touchActivations() {
    uint64_t acc = 0;
    for (const auto& [p, n] : activations_)
      for (size_t off = 0; off < n; off += 64) acc += uint8_t(p[off]);
    sink_.fetch_add(acc, std::memory_order_relaxed);
  }
  // With one thread the kernel runs on this thread alone and is timed in the thread's CPU
  // time, which a time slice lost to another process does not inflate: on a 2-core machine
  // at load 6-16, wall-clock timing gave a 197x192x768 MatMul the portable 4x8 kernel (2x
  // slower) in 1 of 4 builds. With workers, the wall clock (their time is the caller's wait).
  double once() {
    if (threadClock_) {
      const double t0 = runtime::threadCpuMs();
      kernel_->run(a_);
      return runtime::threadCpuMs() - t0;
    }
    auto t0 = Clock::now();
    kernel_->run(a_);
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  }

 private:
  const runtime::Kernel* kernel_;
  std::vector<runtime::TensorView> ins_, outs_;
  AlignedBuffer params_, workspace_;
  std::vector<AlignedBuffer> blobs_;
  std::vector<runtime::Blob> blobViews_;
  std::vector<std::pair<const char*, size_t>> activations_;  // what touchActivations() reads
  static inline std::atomic<uint64_t> sink_{0};
  runtime::StepArgs a_;
  bool threadClock_ = false;
};

// Pushes what the caches near the cores hold out to the shared cache (or memory): each
// task reads its own buffer of twice one core's L2, one task per executor thread. Before
// each timed run of a weight-heavy step of a model whose weights exceed L2, so that a
// candidate's weights come from where they come from in the engine, not from the L2 its
// previous run left them in.
class CacheEvictor {
 public:
  CacheEvictor(int threads, int64_t l2Bytes) : bytes_(size_t(2 * l2Bytes)) {
    for (int t = 0; t < threads; ++t) {
      bufs_.emplace_back(bytes_);
      std::memset(bufs_.back().p.get(), t + 1, bytes_);
    }
  }
  void run(runtime::Executor& exec) {
    exec.parallelFor(int64_t(bufs_.size()), [&](int64_t t) {
      const uint8_t* p = bufs_[size_t(t)].p.get();
      uint64_t acc = 0;
      for (size_t off = 0; off < bytes_; off += 64) acc += p[off];
      sink_.fetch_add(acc, std::memory_order_relaxed);
    });
  }

 private:
  size_t bytes_;
  std::vector<AlignedBuffer> bufs_;
  std::atomic<uint64_t> sink_{0};
};

double medianOf(std::vector<double> t) {
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Times one prepared candidate alone: a warm-up run, then the median of `iterations`.
double timeCandidate(const Candidate& c, const ir::Node& node, const std::vector<ir::Tensor>& inputs,
                     const std::vector<std::vector<int64_t>>& inDims, std::vector<ir::Tensor>& outputs,
                     const std::vector<std::vector<int64_t>>& outDims, runtime::Executor& exec, int iterations) {
  CandidateTimer timer(c, node, inputs, inDims, outputs, outDims, exec);
  timer.once();  // warm-up (caches, lazily started workers)
  std::vector<double> times;
  for (int i = 0; i < std::max(iterations, 1); ++i) times.push_back(timer.once());
  return medianOf(std::move(times));
}

passes::PrecisionConfig precisionConfigOf(const BuilderConfig& config) {
  passes::PrecisionConfig pc;
  if (config.int8) pc.allowed.push_back(ir::DataType::kI8);
  if (config.bf16) pc.allowed.push_back(ir::DataType::kBF16);
  if (config.fp16) pc.allowed.push_back(ir::DataType::kF16);
  for (const auto& [name, t] : config.layerPrecisions) pc.overrides[name] = ir::DataType(int(t));
  pc.constraints = config.precisionConstraints == BuilderConfig::PrecisionConstraints::kObey
                       ? passes::PrecisionConfig::Constraints::kObey
                       : passes::PrecisionConfig::Constraints::kPrefer;
  pc.automatic = config.autoPrecision;
  pc.top1 = config.accuracyMetric == "top1";
  pc.componentThreshold = config.componentPrecision;
  pc.adaptiveTau = config.adaptivePrecision;
  pc.adaptiveTest = config.adaptiveTest;
  ANVIL_CHECK(config.adaptiveTest == "product" || config.adaptiveTest == "ratio" || config.adaptiveTest == "both",
              ErrorCode::kInvalidArgument, "--adaptiveTest is product, ratio or both, got '", config.adaptiveTest, "'");
  ANVIL_CHECK(config.componentPrecision <= 0 || !config.calibrationData.empty(), ErrorCode::kInvalidArgument,
              "--componentPrecision needs --calibData=DIR: the per-channel condition estimates come from the samples");
  pc.tolerance = config.accuracyTolerance;
  ANVIL_CHECK(config.accuracyTolerance > 0, ErrorCode::kInvalidArgument, "--accuracyTolerance must be > 0");
  ANVIL_CHECK(!pc.automatic || !pc.onlyF32(), ErrorCode::kInvalidArgument,
              "--precision=auto chooses among reduced precisions: allow some (--int8, --fp16, --bf16 or --best)");
  return pc;
}

// Activation ranges (and, for --precision=auto, condition estimates) for the precision
// pass: from the calibration cache, from the user's samples, or, for INT8 without either,
// from random inputs so that latency can be measured (with a warning).
passes::CalibrationData calibrateFor(const ir::Graph& g, const BuilderConfig& config, const passes::PrecisionConfig& pc,
                                     const Profiles& profiles, BuildReport* report) {
  codegen::CalibrationOptions options;
  ANVIL_CHECK(codegen::parseCalibrator(config.calibrator, &options.calibrator), ErrorCode::kInvalidArgument,
              "--calibrator must be minmax, entropy or percentile, got '", config.calibrator, "'");
  options.percentile = config.calibrationPercentile;
  options.conditions = !config.calibrationData.empty();  // reported, and used by auto and per-component
  bool int8 = pc.allows(ir::DataType::kI8);
  for (const auto& [name, t] : pc.overrides) int8 |= t == ir::DataType::kI8;
  passes::CalibrationData cached;
  const bool haveCache = !config.calibrationCache.empty() && std::filesystem::exists(config.calibrationCache);
  if (haveCache) {
    std::ifstream in(config.calibrationCache, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    cached = codegen::readCalibrationCache(ss.str());
  }
  ANVIL_CHECK(!pc.automatic || !config.calibrationData.empty(), ErrorCode::kInvalidArgument,
              "--precision=auto needs --calibData=DIR: the condition estimates are measured on the user's samples");
  if (config.calibrationData.empty() && (haveCache || !int8)) return cached;
  std::vector<std::map<std::string, ir::Tensor>> batches;
  if (!config.calibrationData.empty()) {
    batches = codegen::loadCalibrationBatches(config.calibrationData, codegen::graphInputs(g), profiles.opt);
    // --precision=auto verifies its choice on the last batches: they do not calibrate.
    if (pc.automatic) batches.resize(batches.size() - size_t(codegen::heldOutBatches(int(batches.size()))));
  } else {
    std::mt19937 rng(2024);
    std::map<std::string, ir::Tensor> batch;
    for (const ir::Value* in : g.inputs())
      if (!in->isInitializer())
        batch.emplace(in->name(), randomTensor(ir::TensorType{in->dtype(), ir::Shape::fromExtents(profiles.opt.at(in->name()))}, rng));
    batches.push_back(std::move(batch));
    report->warnings.push_back(
        "INT8 without --calibData or --calib: activation ranges from random inputs; use the engine to measure "
        "latency, not accuracy");
  }
  passes::CalibrationData d = codegen::runCalibration(g, batches, options);
  if (haveCache) {
    d.ranges = cached.ranges;  // the user's cache wins; the samples gave the condition estimates
    d.method = cached.method;
  } else if (!config.calibrationCache.empty() && !config.calibrationData.empty()) {
    std::ofstream out(config.calibrationCache, std::ios::binary);
    out << codegen::writeCalibrationCache(d);
    ANVIL_CHECK(bool(out), ErrorCode::kInvalidArgument, "cannot write the calibration cache '", config.calibrationCache,
                "'");
  }
  return d;
}

// Gives a node a precision for the duration of a scope (kernels' supports() and prepare()
// read it while the builder weighs candidates of several precisions).
class PrecisionScope {
 public:
  PrecisionScope(const ir::Node& n, ir::DataType p) : n_(const_cast<ir::Node&>(n)), saved_(n.precision()) {
    if (p != ir::DataType::kUndefined && !(p == ir::DataType::kF32 && saved_ == ir::DataType::kUndefined))
      n_.setPrecision(p);
  }
  ~PrecisionScope() { n_.setPrecision(saved_); }
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  ir::Node& n_;
  ir::DataType saved_;
};

// What the verification rounds of --precision=auto carry from one build to the next.
struct BuildExtras {
  std::map<std::string, ir::DataType> promoted;  // layers raised after measuring
  passes::CalibrationData calibration;           // gathered once
  bool calibrated = false;
};

void buildImpl(const std::string& onnxPath, const BuilderConfig& config, std::string* engine, BuildReport* report,
               BuildExtras* extras = nullptr) {
  const auto start = Clock::now();
  // CUDA builds: the target GPU and whether its candidates can be timed here.
  const bool cudaBuild = config.device == Device::kCUDA;
  int targetCc = 0;
  std::string gpuTimingKey;  // the timing cache's device key for CUDA candidates ("" : untimed)
  bool timesOnGpu = false;   // a real GPU of the target is here (gpuOnly kernels are offered)
#ifdef ANVIL_HAVE_CUDA_BACKEND
  std::unique_ptr<cuda::DeviceRuntime> gpu;  // where CUDA candidates are timed (null: cross-build)
  if (cudaBuild) {
    const int gpus = cuda::deviceCount();
    int localCc = 0;
    if (gpus > 0) {
      const cuda::ComputeCapability cc = cuda::computeCapability(0);
      localCc = cc.major * 10 + cc.minor;
    }
    ANVIL_CHECK(config.computeCapability > 0 || gpus > 0 || config.timeOnSimulator, ErrorCode::kUnsupported,
                "--device=cuda: this machine has no GPU; cross-build for one with --computeCapability=<major.minor> "
                "(e.g. 9.0)");
    targetCc = config.computeCapability > 0 ? config.computeCapability : localCc;
    ANVIL_CHECK(targetCc >= 10, ErrorCode::kInvalidArgument, "--computeCapability must be major.minor, e.g. 9.0");
    if (config.timeOnSimulator) {
      gpu = cuda::simRuntime();
      gpuTimingKey = "cuda-sim|sm_" + std::to_string(targetCc);
    } else if (gpus > 0 && localCc == targetCc) {
      gpu = cuda::cudaRuntime(0);
      timesOnGpu = true;
      gpuTimingKey = "cuda|" + cuda::deviceName(0) + "|sm_" + std::to_string(localCc) + "|" + cuda::versionString();
    }
  }
#else
  ANVIL_CHECK(!cudaBuild, ErrorCode::kUnsupported,
              "--device=cuda: this build of anvil has no CUDA backend (nvcc or Boost.Context was missing)");
#endif
  const int threads = config.threads > 0 ? config.threads : cpuThreads();
  ir::Model model = parser::parseOnnxFile(onnxPath);
  report->nodesBefore = int(model.graph->nodes().size());
  passes::OptimizeOptions popts;
  popts.dumpDir = config.dumpGraphDir;
  popts.context.device = config.device == Device::kCUDA ? ir::Device::kCUDA : ir::Device::kCPU;
  popts.context.cpuIsa = runtime::hostCpuIsa();
  popts.context.threads = threads;
  passes::PrecisionConfig& precisionConfig = popts.context.precision;
  precisionConfig = precisionConfigOf(config);
  if (extras) precisionConfig.promoted = extras->promoted;
  report->passLog = passes::optimize(*model.graph, config.optimizationLevel, popts);
  report->nodesAfter = int(model.graph->nodes().size());

  runtime::Plan plan;
  plan.graph = std::shared_ptr<ir::Graph>(std::move(model.graph));
  ir::Graph& g = *plan.graph;
  plan.buildIsa = runtime::hostCpuIsa();
  plan.optLevel = config.optimizationLevel;
  plan.producer = model.producerName + (model.producerVersion.empty() ? "" : " " + model.producerVersion);
  plan.metadata = model.metadata;
  const Profiles profiles = resolveProfiles(g, config);
  plan.minShapes = profiles.min;
  plan.optShapes = profiles.opt;
  plan.maxShapes = profiles.max;

  // Types at the profile's corners: kernels must serve all three; opt is timed.
  std::vector<ir::TensorType> declared;
  for (const auto& v : g.values()) declared.push_back(v->type());
  TypeMap atMin, atMax, atOpt;
  auto inferCorners = [&] {
    atMin = inferAt(g, declared, profiles.min);
    atMax = inferAt(g, declared, profiles.max);
    atOpt = inferAt(g, declared, profiles.opt);  // the graph keeps opt types while tuning
  };
  inferCorners();

  // Precision: calibrate where INT8 ranges or condition estimates are needed, then the
  // precision pass (overrides, u8 quantization of INT8 inputs, --precision=auto).
  passes::CalibrationData calibration;
  const bool reduced = !precisionConfig.onlyF32() || !precisionConfig.overrides.empty();
  if (reduced) {
    if (extras && extras->calibrated) {
      calibration = extras->calibration;
    } else {
      calibration = calibrateFor(g, config, precisionConfig, profiles, report);
      if (extras) extras->calibration = calibration, extras->calibrated = true;
    }
    passes::PassContext pctx = popts.context;
    pctx.calibration = &calibration;
    const passes::PassResult pr = passes::assignPrecisions(g, pctx);
    report->passLog.push_back("precision: " + pr.stats);
  }

  codegen::TimingCache cache(config.timingCachePath);
  // Where the model's weights do not fit in one core's L2, a step's weights have left the
  // caches near the core by the time the run comes back to it: the candidates of a step
  // whose weights outweigh its activations are timed with the caches evicted before each
  // timed run, as they run in the engine. Timed warm, the builder gave resnet18_s32's 8x8
  // 3x3 convs Winograd F(4x4), whose filter is four times the direct one's bytes (fewest
  // flops, 22 us a run in the model), over F(2x2), and one task to 1x1 convs that two tasks
  // run in half the time from memory. Embedding tables (Gather's data) do not count: a run
  // touches a few rows.
  int64_t weightBytes = 0;
  {
    std::set<const ir::Value*> seen;
    for (const auto& node : g.nodes())
      for (size_t i = 0; i < node->numInputs(); ++i) {
        const ir::Value* v = node->input(i);
        if (!v || !v->isInitializer() || (i == 0 && node->op() == "Gather") || !seen.insert(v).second) continue;
        weightBytes += int64_t(v->initializer()->nbytes());
      }
  }
  const bool coldWeights = weightBytes > cpu::l2CacheBytes();
  if (coldWeights)
    report->passLog.push_back("tactic timing: weights " + std::to_string(weightBytes >> 10) + " KiB > L2 " +
                              std::to_string(cpu::l2CacheBytes() >> 10) +
                              " KiB: the caches evicted before each timed run");
  const std::string device = runtime::hostCpuIsa() + "|" + cpu::cpuSignature() + "|threads=" + std::to_string(threads) +
                             (coldWeights ? "|weights=cold" : "");
  std::unique_ptr<runtime::Executor> exec = runtime::makeCpuExecutor(threads);
  std::unique_ptr<CacheEvictor> evictor = coldWeights ? std::make_unique<CacheEvictor>(threads, cpu::l2CacheBytes()) : nullptr;
  std::mt19937 rng(12345);
  std::set<std::string> requirements;

  auto isStaticNode = [](const ir::Node& n) {
    bool s = true;
    for (const ir::Value* v : n.inputs()) s &= isStaticValue(v);
    for (const ir::Value* v : n.outputs()) s &= isStaticValue(v);
    return s;
  };
  // What a kernel's prepare() (and taskSplits()) sees of a node.
  auto prepareInfoOf = [&](const ir::Node& n) {
    runtime::PrepareInfo info;
    info.node = &n;
    info.minTypes = inputTypes(n, atMin);
    info.optTypes = inputTypes(n, atOpt);
    info.maxTypes = inputTypes(n, atMax);
    for (const ir::Value* v : n.outputs()) info.maxOutputTypes.push_back(atMax.at(v));
    for (const ir::Value* v : n.inputs()) info.constants.push_back(v && v->isInitializer() ? v->initializer() : nullptr);
    info.threads = threads;
    info.cudaComputeCapability = targetCc;
    return info;
  };
  // The kernels that serve a node over the whole profile, in its values' layouts, at the
  // node's precision: the one it was given (by the user or --precision=auto), else each
  // precision the configuration allows for it (f32, and for a linear layer the reduced
  // ones), so that the fastest kernel of any allowed precision wins.
  // A kernel with taskSplits is offered once per split where it names some (the split of
  // a step's work into tasks is then timed, not guessed: cpu/tactics/task_split.h).
  // `probe`: placement asks whether any kernel of the node's device serves it; an empty
  // list is then the answer, not an error.
  auto candidatesFor = [&](const ir::Node& n, bool probe = false) {
    const Device device = n.device() == ir::Device::kCUDA ? Device::kCUDA : Device::kCPU;
    const bool isStatic = isStaticNode(n);
    const auto minT = inputTypes(n, atMin), optT = inputTypes(n, atOpt), maxT = inputTypes(n, atMax);
    const int block = nchwcBlockOf(n);
    const ir::DataType given = n.precision();
    std::vector<ir::DataType> precisions;
    auto isF32 = [](ir::DataType t) { return t == ir::DataType::kUndefined || t == ir::DataType::kF32; };
    if (!isF32(given)) {
      precisions = {given};
    } else if (given == ir::DataType::kUndefined && n.tacticParams().find(passes::kPrecisionChoicesAttr)) {
      // --precision=auto: the precisions accurate enough for the layer; the fastest wins.
      for (int64_t t : n.tacticParams().getInts(passes::kPrecisionChoicesAttr)) precisions.push_back(ir::DataType(t));
    } else {
      precisions = {given};
      if (given == ir::DataType::kUndefined && passes::isPrecisionCandidate(n))
        for (ir::DataType t : {ir::DataType::kI8, ir::DataType::kBF16, ir::DataType::kF16})
          if (precisionConfig.allows(t)) precisions.push_back(t);
    }
    std::vector<Candidate> out;
    auto gather = [&](ir::DataType p) {
      PrecisionScope scope(n, p);
      for (const runtime::Kernel* k : runtime::Kernels::instance().forNode(device, n)) {
        if (!isStatic && !k->dynamicShapes) continue;
        if (device == Device::kCUDA && !runtime::cudaTargetMeets(k->requirements, targetCc)) continue;
        if (k->gpuOnly && !timesOnGpu) continue;  // cross-builds and the simulator run our own kernels only
        if (k->strassen && !config.strassen) continue;
        if (k->nchwcBlock != block) continue;  // a blocked node takes only blocked kernels, and back
        const bool f32Kernel = k->precision == ir::DataType::kF32 || k->precision == ir::DataType::kUndefined;
        if (isF32(p) ? !f32Kernel : k->precision != p) continue;
        if (k->supports && k->name != "ref") {
          bool ok = false;
          try {
            ok = k->supports(n, minT) && k->supports(n, optT) && k->supports(n, maxT);
          } catch (const Error&) {
            ok = false;
          }
          if (!ok) continue;
        }
        Candidate c;
        c.kernel = k;
        c.precision = p;
        std::vector<int> splits;
        if (k->taskSplits && !probe) splits = k->taskSplits(prepareInfoOf(n));
        if (splits.empty()) splits.push_back(0);
        for (int s : splits) {
          c.tasks = s;
          out.push_back(c);
        }
      }
    };
    for (ir::DataType p : precisions) gather(p);
    if (probe && out.empty()) return out;  // no kernel of the node's precision either
    if (out.empty() && !isF32(given)) {
      // No kernel of the precision the node was given: --precisionConstraints=obey fails,
      // prefer (and --precision=auto) run it in f32 — but not a layer of a Q/DQ model,
      // whose input rounding (and the clamping it implies) f32 would drop.
      const std::string why = n.tacticParams().getString(passes::kPrecisionReasonAttr, "");
      ANVIL_CHECK(why != "model", ErrorCode::kUnsupported, n.label(), ": no ", ir::dtypeName(given),
                  " kernel of this runtime serves this layer of the Q/DQ model");
      ANVIL_CHECK(precisionConfig.constraints != passes::PrecisionConfig::Constraints::kObey ||
                      n.tacticParams().getString(passes::kPrecisionReasonAttr, "") != "user",
                  ErrorCode::kUnsupported, n.label(), ": no ", ir::dtypeName(given),
                  " kernel serves it (--precisionConstraints=obey)");
      gather(ir::DataType::kF32);
      for (Candidate& c : out) c.precision = ir::DataType::kF32;
    }
    // The reference kernel is the correctness baseline, not a speed candidate: it allocates
    // and decodes on every run. It serves a step only where no native kernel does.
    if (out.size() > 1 && out.front().kernel->name == "ref") out.erase(out.begin());
    // The portable INT8 family (plain C++, the same bits) is the fallback for hosts without
    // AVX2; where an ISA family serves the precision too, timing it only costs build time.
    auto portable = [](const Candidate& c) {
      const std::string& nm = c.kernel->name;
      return nm.size() > 9 && nm.compare(nm.size() - 9, 9, "_portable") == 0;
    };
    for (size_t i = 0; i < out.size();) {
      bool other = false;
      for (const Candidate& c : out) other |= !portable(c) && c.precision == out[i].precision;
      if (portable(out[i]) && other)
        out.erase(out.begin() + ptrdiff_t(i));
      else
        ++i;
    }
    if (out.empty()) {
      std::string types;
      for (const auto& t : optT) types += (types.empty() ? "" : ", ") + t.str();
      ANVIL_THROW(ErrorCode::kUnsupported, n.label(), ": no kernel of this runtime serves it (inputs ", types, ")");
    }
    return out;
  };

  auto prepare = [&](const ir::Node& n, Candidate& c) {
    if (!c.kernel->prepare) return;
    PrecisionScope scope(n, c.precision);
    runtime::PrepareInfo info = prepareInfoOf(n);
    info.tasks = c.tasks;
    c.kernel->prepare(info, &c.prepared);
  };

  // Picks the fastest candidate: from the timing cache, else by timing every candidate at
  // the opt shapes. A lone candidate is timed only when `ms` is asked for; *ms receives
  // the winner's time (-1 when unknown).
  auto choose = [&](const ir::Node& n, std::vector<Candidate>& cands, double* ms) -> size_t {
    const bool forLayout = ms != nullptr;  // a layout comparison, not a step's choice
    if (ms) *ms = -1;
    if (cands.size() == 1 && !ms) return 0;
    const bool onGpu = n.device() == ir::Device::kCUDA;
    // A cross-build has no GPU to time on. The heuristic: the lowest precision the layer may
    // run in (--fp16 / --bf16 / --best: tensor cores; f16 before bf16, it keeps more of the
    // mantissa at the same speed), then the first candidate of it in the order the CUDA
    // families register them (best first for a typical shape).
    if (onGpu && gpuTimingKey.empty()) {
      auto rank = [](ir::DataType p) {
        return p == ir::DataType::kI8 ? 0 : p == ir::DataType::kF16 ? 1 : p == ir::DataType::kBF16 ? 2 : 3;
      };
      size_t pick = 0;
      for (size_t k = 1; k < cands.size(); ++k)
        if (rank(cands[k].precision) < rank(cands[pick].precision)) pick = k;
      return pick;
    }
    std::string key = (onGpu ? gpuTimingKey : device) + "|" + opSignature(n) + "|";
    for (const Candidate& c : cands) key += candidateName(c) + "@" + std::to_string(c.kernel->version) + ",";
    if (const codegen::TimingCache::Entry* hit = cache.find(key))
      for (size_t k = 0; k < cands.size(); ++k)
        if (candidateName(cands[k]) == hit->best) {
          auto t = hit->milliseconds.find(hit->best);
          if (ms && t != hit->milliseconds.end()) *ms = t->second;
          if (!ms || *ms >= 0) {
            if (!forLayout) ++report->tacticsFromCache;
            return k;
          }
        }
    std::vector<const ir::Value*> ins(n.inputs().begin(), n.inputs().end());
    for (const ir::Value* v : cpu::outerScopeValues(n)) ins.push_back(v);
    std::vector<ir::Tensor> inputs, outputs;
    std::vector<std::vector<int64_t>> inDims, outDims;
    std::vector<char> constant;  // the inputs that are weights (initializers)
    for (const ir::Value* v : ins) {
      constant.push_back(v && v->isInitializer());
      inputs.push_back(!v ? ir::Tensor() : v->isInitializer() ? *v->initializer() : timingBuffer(v, atOpt.at(v), &rng));
      inDims.push_back(v ? atOpt.at(v).shape.extents() : std::vector<int64_t>{});
    }
    // Evicted only where the step's weights outweigh its activations (a 1x1 conv of a small
    // image, a GEMV, Winograd's transformed filter): a depthwise conv or a Reorder reads
    // activations that the step before has just written, and evicting those as well made
    // convnext_tiny's blocked depthwise regions time slower than they run (two threads:
    // its 7x7 depthwise convs went to the plain kernel, 2x slower in the engine).
    int64_t stepWeightBytes = 0, stepActivationBytes = 0;
    for (size_t i = 0; i < inputs.size(); ++i)
      if (inputs[i].defined()) (constant[i] ? stepWeightBytes : stepActivationBytes) += int64_t(inputs[i].nbytes());
    const bool evictStep = evictor && stepWeightBytes > stepActivationBytes;
    for (const ir::Value* v : n.outputs()) {
      const bool named = !v->name().empty();
      outputs.push_back(named ? timingBuffer(v, atOpt.at(v), nullptr) : ir::Tensor());
      outDims.push_back(named ? atOpt.at(v).shape.extents() : std::vector<int64_t>{});
    }
    codegen::TimingCache::Entry entry;
    size_t best = 0;
    double bestMs = -1;
#ifdef ANVIL_HAVE_CUDA_BACKEND
    // GPU candidates are checked against the first of our own f32 kernels on the same inputs:
    // one that disagrees (a library or JIT tactic computing something else) is dropped.
    std::vector<ir::Tensor> reference;
    bool haveReference = false;
    std::string referenceName;
#endif
    // CPU candidates are timed in alternating rounds (A B C A B C ...), each keeping the
    // median of its runs: load from other processes then falls on all of them alike. Timed
    // one after the other, a burst of load during one candidate's runs can make it lose: on
    // a shared 2-core machine at load 3-8, one of eight AVX2 builds of mobilenet_v2 gave
    // its classifier Gemm the portable 4x8 kernel (0.51 ms in the profile) over the AVX2
    // 6x16 the other seven chose (~0.22 ms). A candidate whose warm-up took under
    // kRewarmMs runs once more, untimed, before each timed run: the others ran in between
    // and evicted its weights and state from L1/L2, which a kernel of a few microseconds
    // then pays on every timed run but never in the engine (one of the zoo LSTM's two
    // layers took the AVX2 4x16 kernel in 3 of 8 builds, 7.3 us a run against 4.3 with the
    // AVX-512 4x32 the back-to-back timing had chosen every time; with the re-warm run, 20
    // of 20 layers in 10 builds took the 4x32).
    if (!onGpu) {
      constexpr double kRewarmMs = 0.25;
      std::vector<char> rewarm(cands.size(), 0);
      std::vector<std::unique_ptr<CandidateTimer>> timers(cands.size());
      auto failed = [&](size_t k, const Error& e) {
        // Timing feeds random data; a kernel that reads shapes or indices from a computed
        // input may refuse it. It stays a candidate only if every candidate refuses.
        if (config.verbose)
          std::fprintf(stderr, "[build] %s: %s failed while timing: %s\n", n.label().c_str(),
                       candidateName(cands[k]).c_str(), e.what());
        timers[k].reset();
      };
      for (size_t k = 0; k < cands.size(); ++k) {
        try {
          prepare(n, cands[k]);
          PrecisionScope scope(n, cands[k].precision);
          timers[k] = std::make_unique<CandidateTimer>(cands[k], n, inputs, inDims, outputs, outDims, *exec, constant);
          rewarm[k] = timers[k]->once() < kRewarmMs;  // warm-up (caches, lazily started workers)
        } catch (const Error& e) {
          failed(k, e);
        }
      }
      std::vector<std::vector<double>> times(cands.size());
      for (int it = 0; it < std::max(config.timingIterations, 1); ++it)
        for (size_t k = 0; k < cands.size(); ++k) {
          if (!timers[k]) continue;
          try {
            PrecisionScope scope(n, cands[k].precision);
            if (rewarm[k]) timers[k]->once();
            if (evictStep) {
              evictor->run(*exec);
              timers[k]->touchActivations();
            }
            times[k].push_back(timers[k]->once());
          } catch (const Error& e) {
            failed(k, e);
          }
        }
      for (size_t k = 0; k < cands.size(); ++k) {
        if (!timers[k]) continue;
        Candidate& c = cands[k];
        c.ms = medianOf(times[k]);
        ++report->tacticsTimed;
        entry.milliseconds[candidateName(c)] = c.ms;
        if (bestMs < 0 || c.ms < bestMs) {
          best = k;
          bestMs = c.ms;
        }
      }
    }
    for (size_t k = 0; k < cands.size() && onGpu; ++k) {
      Candidate& c = cands[k];
      try {
        prepare(n, c);
        PrecisionScope scope(n, c.precision);
#ifdef ANVIL_HAVE_CUDA_BACKEND
        if (onGpu) {
          std::vector<ir::TensorType> outTypes;
          for (const ir::Value* v : n.outputs())
            outTypes.push_back(v->name().empty() ? ir::TensorType{} : atOpt.at(v));
          std::vector<ir::Tensor> got;
          c.ms = codegen::timeCudaCandidate(*c.kernel, c.prepared, n, inputs, outTypes, *gpu, *exec,
                                            config.timingIterations, &got);
          const bool f32 = c.kernel->precision == DataType::kF32 || c.kernel->precision == DataType::kUndefined;
          if (f32 && !c.kernel->gpuOnly && !haveReference) {
            reference = std::move(got);
            haveReference = true;
            referenceName = c.kernel->name;
          } else if (f32 && haveReference && !codegen::outputsAgree(got, reference, 1e-3)) {
            report->warnings.push_back(n.label() + ": CUDA tactic " + c.kernel->name + " disagrees with " +
                                       referenceName + " on the timing inputs; dropped");
            continue;
          }
        } else
#endif
          c.ms = timeCandidate(c, n, inputs, inDims, outputs, outDims, *exec, config.timingIterations);
      } catch (const Error& e) {
        // Timing feeds random data; a kernel that reads shapes or indices from a computed
        // input may refuse it. It stays a candidate only if every candidate refuses.
        if (config.verbose)
          std::fprintf(stderr, "[build] %s: %s failed while timing: %s\n", n.label().c_str(), c.kernel->name.c_str(),
                       e.what());
        continue;
      }
      ++report->tacticsTimed;
      entry.milliseconds[candidateName(c)] = c.ms;
      if (bestMs < 0 || c.ms < bestMs) {
        best = k;
        bestMs = c.ms;
      }
    }
    entry.best = candidateName(cands[best]);
    if (bestMs >= 0) cache.put(key, std::move(entry));
    if (ms) *ms = bestMs;
    return best;
  };

  // CUDA builds: each node on the GPU where a CUDA kernel serves it over the profile, else
  // on the CPU, with anvil.Copy nodes where values cross (codegen/device_placement.h).
  if (cudaBuild) {
    for (const auto& np : g.nodes()) np->setDevice(ir::Device::kCUDA);  // probe the CUDA kernels
    std::map<const ir::Value*, ir::TensorType> declaredOf;
    {
      size_t k = 0;
      for (const auto& v : g.values()) declaredOf[v.get()] = declared[k++];
    }
    const codegen::PlacementResult placed = codegen::placeOnDevices(
        g, [&](const ir::Node& n) { return !candidatesFor(n, true).empty(); },
        [&](const ir::Node& n) { return isStaticNode(n) && isViewNode(n); });
    for (const auto& np : g.nodes())  // a copy's value is declared as its source
      if (np->op() == "Copy" && np->domain() == "anvil" && !declaredOf.count(np->output(0)))
        declaredOf[np->output(0)] = declaredOf.at(np->input(0));
    declared.clear();
    for (const auto& v : g.values()) declared.push_back(declaredOf.at(v.get()));
    inferCorners();
    report->cudaLayers = placed.cudaNodes;
    report->cpuLayers = placed.cpuNodes;
    report->deviceCopies = placed.copies;
    report->cpuOps = placed.cpuOps;
    report->passLog.push_back("device placement: " + std::to_string(placed.cudaNodes) + " layers on cuda (sm_" +
                              std::to_string(targetCc) + "), " + std::to_string(placed.cpuNodes) + " on cpu, " +
                              std::to_string(placed.copies) + " copies");
  }

  // Blocked layout (NCHW<b>c). Every region of nodes that blocked kernels serve is timed
  // both ways — its nodes row-major, against its nodes blocked plus the Reorders at its
  // boundaries — and so is the region trimmed of the nodes that are slower blocked than
  // row-major (a 3-channel stem: its input Reorder alone can cost more than the region
  // gains); the cheapest of the three forms is kept.
  using BL = BuilderConfig::BlockedLayouts;
  // (Not in CUDA builds: the CPU layers of one keep the row-major values the GPU layers use.)
  if (const int block = config.blockedLayouts != BL::kNever && !cudaBuild ? codegen::hostNchwcBlock() : 0) {
    // Whether a blocked kernel serves the node as its values' layouts are now (plainInput:
    // one that reads input 0 row-major).
    auto servesBlocked = [&](const ir::Node& n, bool plainInput) {
      if (!isStaticNode(n)) return false;
      const auto minT = inputTypes(n, atMin), optT = inputTypes(n, atOpt), maxT = inputTypes(n, atMax);
      // Blocked kernels compute in f32: a node given a reduced precision is not blocked.
      if (n.precision() != ir::DataType::kUndefined && n.precision() != ir::DataType::kF32) return false;
      for (const runtime::Kernel* k : runtime::Kernels::instance().forNode(Device::kCPU, n))
        if (k->nchwcBlock == block && k->nchwcPlainInput == plainInput && k->precision == ir::DataType::kF32 &&
            (!k->supports || (k->supports(n, minT) && k->supports(n, optT) && k->supports(n, maxT))))
          return true;
      return false;
    };
    // A stem: input 0 is the model's input and a kernel reads it row-major while writing
    // the blocked output, so neither the image nor the stem's output needs a Reorder.
    auto plainEntry = [&](const ir::Node& n, size_t input) {
      ir::Value* v = input == 0 ? n.input(0) : nullptr;
      if (!v || !passes::isGraphInput(g, v)) return false;
      const ir::Layout saved = v->layout();
      v->setLayout(ir::Layout::plain());
      const bool ok = servesBlocked(n, true);
      v->setLayout(saved);
      return ok;
    };
    // A MaxPool between layers given INT8 stays row-major: the INT8 chain runs it on the
    // bytes (a blocked f32 MaxPool there would cost two Reorders and the chain).
    auto betweenInt8 = [&](const ir::Node& n) {
      if (n.op() != "MaxPool" || !n.domain().empty() || !n.input(0) || !n.input(0)->producer() ||
          n.input(0)->producer()->precision() != ir::DataType::kI8)
        return false;
      const std::vector<ir::Node*> readers = g.users(n.output(0));
      for (const ir::Node* u : readers)
        if (u->precision() != ir::DataType::kI8) return false;
      return !readers.empty();
    };
    auto servable = [&](const ir::Node& n) {
      return !betweenInt8(n) && (servesBlocked(n, false) || plainEntry(n, 0));
    };
    const auto regions = codegen::findBlockedRegions(g, block, servable);
    // The best kernel's time of a node in its values' current layouts (-1: none).
    auto nodeMs = [&](const ir::Node& n) {
      if (isViewNode(n)) return 0.0;
      try {
        std::vector<Candidate> c = candidatesFor(n);
        double ms = -1;
        choose(n, c, &ms);
        return ms;
      } catch (const Error&) {
        return -1.0;  // a blocked node no kernel serves at some corner of the profile
      }
    };
    auto sumMs = [&](const std::vector<ir::Node*>& nodes, const std::map<const ir::Node*, double>& ms) {
      double sum = 0;
      for (const ir::Node* n : nodes) {
        const double t = ms.at(n);
        if (t < 0) return -1.0;
        sum += t;
      }
      return sum;
    };
    const bool always = config.blockedLayouts == BL::kAlways;
    if (!regions.empty()) {
      std::map<const ir::Value*, ir::TensorType> declaredOf;
      {
        size_t k = 0;
        for (const auto& v : g.values()) declaredOf[v.get()] = declared[k++];
      }
      auto reinfer = [&] {
        g.topoSort();
        declared.clear();
        for (const auto& v : g.values()) declared.push_back(declaredOf.count(v.get()) ? declaredOf[v.get()] : v->type());
        inferCorners();
      };
      std::map<const ir::Node*, int> regionOf;
      for (size_t i = 0; i < regions.size(); ++i)
        for (const ir::Node* n : regions[i]) regionOf[n] = int(i);
      // The regions kept blocked (whole, or the parts of a trimmed one).
      std::vector<std::vector<ir::Node*>> chosen;
      if (always) {
        chosen = regions;
      } else {
        std::map<const ir::Node*, double> plainMs, blockedMs;
        for (const auto& r : regions)
          for (const ir::Node* n : r) plainMs[n] = nodeMs(*n);
        // Blocks the groups in place and times each: its nodes (timed once, then from
        // blockedMs) plus its Reorders; -1 where a time is missing. The graph is restored.
        auto timeBlocked = [&](const std::vector<std::vector<ir::Node*>>& groups) {
          std::vector<codegen::AppliedRegion> applied;
          for (const auto& r : groups) applied.push_back(codegen::applyBlockedRegion(g, r, block, &declaredOf, plainEntry));
          reinfer();
          std::vector<double> ms;
          for (const auto& a : applied) {
            for (const ir::Node* n : a.nodes)
              if (!blockedMs.count(n)) blockedMs[n] = nodeMs(*n);
            std::map<const ir::Node*, double> reorderMs;
            for (const ir::Node* n : a.reorders) reorderMs[n] = nodeMs(*n);
            const double b = sumMs(a.nodes, blockedMs), ro = sumMs(a.reorders, reorderMs);
            ms.push_back(b < 0 || ro < 0 ? -1 : b + ro);
          }
          for (const auto& a : applied) codegen::revertBlockedRegion(g, a);
          g.removeUnusedValues();
          reinfer();
          return ms;
        };
        // Whole regions blocked.
        const std::vector<double> wholeMs = timeBlocked(regions);
        std::vector<double> rowMs;
        for (const auto& r : regions) rowMs.push_back(sumMs(r, plainMs));
        // Trimmed: without the nodes that are clearly slower blocked (5% and 5 us: a node
        // cut out costs two Reorders, which is more than a few microseconds).
        auto slower = [&](const ir::Node& n) {
          auto b = blockedMs.find(&n), p = plainMs.find(&n);
          if (b == blockedMs.end() || b->second < 0) return true;
          return p != plainMs.end() && p->second >= 0 && b->second > 1.05 * p->second && b->second > p->second + 0.005;
        };
        const auto parts = codegen::findBlockedRegions(g, block, [&](const ir::Node& n) { return !slower(n) && servable(n); });
        const std::vector<double> partMs = timeBlocked(parts);
        std::vector<double> trimmedMs(regions.size(), 0.0);
        std::vector<int> partsIn(regions.size(), 0);
        std::set<const ir::Node*> inParts;
        for (size_t k = 0; k < parts.size(); ++k) {
          const size_t ri = size_t(regionOf.at(parts[k].front()));
          ++partsIn[ri];
          trimmedMs[ri] = partMs[k] < 0 || trimmedMs[ri] < 0 ? -1 : trimmedMs[ri] + partMs[k];
          inParts.insert(parts[k].begin(), parts[k].end());
        }
        for (const auto& [n, ri] : regionOf)  // the nodes cut out run row-major
          if (!inParts.count(n) && trimmedMs[size_t(ri)] >= 0) {
            const double t = plainMs.at(n);
            trimmedMs[size_t(ri)] = t < 0 ? -1 : trimmedMs[size_t(ri)] + t;
          }
        // Per region: 0 row-major, 1 whole region blocked, 2 trimmed.
        std::vector<int> form(regions.size(), 0);
        for (size_t i = 0; i < regions.size(); ++i) {
          // Blocked only when measurably faster (2%: timing noise on small regions), and
          // trimmed only when measurably faster than the whole region too: the trim's
          // Reorders are timed alone, in cache, where a model pays for them in memory, and
          // a trim on a gain within the noise flips between builds (tests/runtime/
          // layout_choice_test.cpp).
          double best = rowMs[i] < 0 ? -1 : 0.98 * rowMs[i];
          if (wholeMs[i] >= 0 && (best < 0 || wholeMs[i] < best)) best = 0.98 * wholeMs[i], form[i] = 1;
          if (partsIn[i] > 0 && trimmedMs[i] >= 0 && (best < 0 || trimmedMs[i] < best)) form[i] = 2;
          if (config.verbose)
            std::fprintf(stderr,
                         "[build] layout: region of %zu nodes (%s ...): row-major %.3f ms, NCHW%dc %.3f ms, trimmed "
                         "to %d part(s) %.3f ms -> %s\n",
                         regions[i].size(), regions[i].front()->label().c_str(), rowMs[i], block, wholeMs[i], partsIn[i],
                         trimmedMs[i], form[i] == 0 ? "row-major" : form[i] == 1 ? "blocked" : "trimmed");
          if (form[i] == 1) chosen.push_back(regions[i]);
        }
        for (const auto& p : parts)
          if (form[size_t(regionOf.at(p.front()))] == 2) chosen.push_back(p);
      }
      for (const auto& r : chosen) {
        const codegen::AppliedRegion a = codegen::applyBlockedRegion(g, r, block, &declaredOf, plainEntry);
        ++report->blockedRegions;
        report->blockedNodes += int(a.nodes.size());
        report->reorders += int(a.reorders.size());
      }
      reinfer();
      report->passLog.push_back("layout selection: " + std::to_string(report->blockedRegions) + " regions NCHW" +
                                std::to_string(block) + "c from " + std::to_string(regions.size()) + " candidates (" +
                                std::to_string(report->blockedNodes) + " nodes, " + std::to_string(report->reorders) +
                                " reorders)");
      if (config.convDwFusion) {
        const std::vector<ir::Node*> fused =
            codegen::fuseBlockedConvDw(g, block, threads, [&](const ir::Node& n) { return servesBlocked(n, false); });
        if (!fused.empty()) {
          // The fused nodes' outputs are new values (a freed value's address may have been
          // reused for them): their declared types are their own.
          for (const ir::Node* n : fused) declaredOf[n->output(0)] = n->output(0)->type();
          reinfer();
          report->passLog.push_back("1x1 + depthwise fusion: " + std::to_string(fused.size()) +
                                    " pairs as anvil.FusedConvDw");
        }
      }
    }
  }
  plan.tactics.assign(g.nodes().size(), "ref");

  // Candidates per node.
  struct Work {
    size_t index;
    std::vector<Candidate> candidates;
    size_t best = 0;
    bool view = false;
  };
  std::vector<Work> work(g.nodes().size());
  int toTime = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    Work& w = work[i];
    w.index = i;
    if (isStaticNode(n) && isViewNode(n)) {
      w.view = true;
      continue;
    }
    w.candidates = candidatesFor(n);
    if (w.candidates.size() > 1) ++toTime;
  }
  report->layersTuned = toTime;

  // Each node's kernel, its precision and its own measured error.
  int done = 0;
  for (Work& w : work) {
    const ir::Node& n = *g.nodes()[w.index];
    if (w.view) continue;
    if (w.candidates.size() > 1) {
      if (config.progress) config.progress(done, toTime, n.name());
      w.best = choose(n, w.candidates, nullptr);
      ++done;
    }
    Candidate& chosen = w.candidates[w.best];
    if (chosen.prepared.params.empty() && chosen.prepared.blobs.empty() && chosen.prepared.workspaceBytes == 0)
      prepare(n, chosen);
    {
      // The node keeps the precision its kernel computes in (f32 where none was asked for
      // stays "as the types say"); a layer the builder picked among precisions by speed
      // says so in the report.
      ir::Node& m = *g.nodes()[w.index];
      const ir::DataType kp = chosen.kernel->precision;
      if (kp != ir::DataType::kUndefined && kp != ir::DataType::kF32) {
        m.setPrecision(kp);
      } else if (m.precision() != ir::DataType::kUndefined && m.precision() != ir::DataType::kF32) {
        m.setPrecision(ir::DataType::kF32);  // given a precision no kernel serves: f32 (prefer)
        m.tacticParams().set(passes::kPrecisionReasonAttr, std::string("fallback"));
      }
      std::set<ir::DataType> offered;
      for (const Candidate& c : w.candidates) offered.insert(c.precision);
      // A cross-built CUDA layer took the lowest allowed precision without measuring: "heuristic".
      const bool guessed = m.device() == ir::Device::kCUDA && gpuTimingKey.empty();
      if (offered.size() > 1 && !m.tacticParams().find(passes::kPrecisionReasonAttr))
        m.tacticParams().set(passes::kPrecisionReasonAttr, std::string(guessed ? "heuristic" : "cost"));
      // --precision=auto gave a floor. Its reason stays: "budget" where the budget raised it
      // above the layer's cheapest precision (whichever kernel at or above the floor won:
      // the budget is why the layer is not lower), "cost" where the floor is the cheapest and
      // the fastest kernel decided.
      if (m.tacticParams().find(passes::kPrecisionChoicesAttr)) {
        const ir::DataType got = kp == ir::DataType::kUndefined ? ir::DataType::kF32 : kp;
        if (got == ir::DataType::kF32) m.setPrecision(ir::DataType::kF32);
      }
      if (passes::isPrecisionCandidate(m))
        ++report->layersByPrecision[kp != ir::DataType::kUndefined && kp != ir::DataType::kF32 ? ir::dtypeName(kp) : "f32"];
      if (auto c = calibration.condition.find(m.name());
          c != calibration.condition.end() && kp != ir::DataType::kUndefined && kp != ir::DataType::kF32)
        m.tacticParams().set(passes::kPredictedErrorAttr, float(c->second.normwise * passes::unitRoundoff(kp)));
      // The layer's own error: its kernel on the first calibration batch's f32 inputs.
      auto smp = calibration.samples.find(m.name());
      if (kp != ir::DataType::kUndefined && kp != ir::DataType::kF32 && smp != calibration.samples.end() &&
          smp->second.output.defined() && m.numOutputs() == 1) {
        const passes::LayerSample& ls = smp->second;
        std::vector<std::vector<int64_t>> inDims, outDims = {ls.output.dims()};
        for (const ir::Tensor& t : ls.inputs) inDims.push_back(t.defined() ? t.dims() : std::vector<int64_t>{});
        std::vector<ir::Tensor> outs = {ir::Tensor(ir::DataType::kF32, ls.output.dims())};
        try {
          timeCandidate(chosen, m, ls.inputs, inDims, outs, outDims, *exec, 1);
          double d2 = 0, r2 = 0;
          const float* y = outs[0].data<float>();
          const float* r = ls.output.data<float>();
          for (int64_t i = 0; i < ls.output.numel(); ++i) {
            d2 += (double(y[i]) - r[i]) * (double(y[i]) - r[i]);
            r2 += double(r[i]) * r[i];
          }
          m.tacticParams().set(passes::kMeasuredErrorAttr, float(r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2)));
        } catch (const Error&) {
          // the sample no longer fits the node (shapes changed by a later pass): no measurement
        }
      }
    }
  }
  if (config.progress) config.progress(done, toTime, "");

  // INT8 chains: a value whose producer and consumers all run INT8 kernels that read and
  // write quantized activations is stored as u8 (lowered), so no step writes it in f32 only
  // for the next one to quantize it again.
  // --layerOutputTypes: every name must be a layer; "*" is every layer.
  for (const auto& [name, t] : config.layerOutputTypes) {
    ANVIL_CHECK(t == DataType::kF32 || t == DataType::kI8, ErrorCode::kInvalidArgument, "--layerOutputTypes: '", name,
                "': the output types are fp32 and int8");
    bool found = name == "*";
    for (const auto& np : g.nodes()) found |= np->name() == name;
    ANVIL_CHECK(found, ErrorCode::kInvalidArgument, "--layerOutputTypes: no layer is named '", name,
                "' (names as --dumpLayerInfo prints them)");
  }
  auto outputTypeOf = [&](const ir::Node& n) {
    auto it = config.layerOutputTypes.find(n.name());
    if (it == config.layerOutputTypes.end()) it = config.layerOutputTypes.find("*");
    return it == config.layerOutputTypes.end() ? ir::DataType::kUndefined : ir::DataType(int(it->second));
  };
  bool wantsInt8 = false;
  for (const auto& [name, t] : config.layerOutputTypes) wantsInt8 |= t == DataType::kI8;
  if (report->layersByPrecision.count("i8") || wantsInt8) {
    // Where each value is read: (step, input index); SIZE_MAX for a subgraph's capture.
    std::map<const ir::Value*, std::vector<std::pair<Work*, size_t>>> uses;
    for (Work& w : work) {
      const ir::Node& n = *g.nodes()[w.index];
      for (size_t i = 0; i < n.numInputs(); ++i)
        if (n.input(i)) uses[n.input(i)].push_back({&w, i});
      for (const ir::Value* v : cpu::outerScopeValues(n)) uses[v].push_back({&w, SIZE_MAX});
    }
    std::map<const ir::Value*, size_t> declaredIndex;
    for (const auto& v : g.values()) declaredIndex.emplace(v.get(), declaredIndex.size());
    auto isI8 = [&](const Work& w) {
      return !w.view && w.candidates[w.best].kernel->precision == ir::DataType::kI8;
    };
    // Whether a candidate's kernel serves the node as the values' types are now.
    auto serves = [&](const ir::Node& n, const Candidate& c) {
      if (!c.kernel->supports) return false;
      PrecisionScope scope(n, c.precision);
      try {
        return c.kernel->supports(n, inputTypes(n, atMin)) && c.kernel->supports(n, inputTypes(n, atOpt)) &&
               c.kernel->supports(n, inputTypes(n, atMax));
      } catch (const Error&) {
        return false;
      }
    };
    // Whether the step's chosen kernel does.
    auto stillServes = [&](const Work& w) { return serves(*g.nodes()[w.index], w.candidates[w.best]); };
    auto retype = [&](ir::Value* v, ir::DataType t) {
      v->type().dtype = t;
      atMin[v].dtype = atOpt[v].dtype = atMax[v].dtype = t;
      declared[declaredIndex.at(v)].dtype = t;
    };
    std::set<Work*> touched;
    std::map<const ir::Node*, Work*> workOf;
    for (Work& w : work) workOf[g.nodes()[w.index].get()] = &w;
    auto plainF32 = [&](const ir::Value* v) {
      return v && !v->name().empty() && !passes::isGraphOutput(g, v) && !passes::isGraphInput(g, v) &&
             v->layout().isPlain() && v->dtype() == ir::DataType::kF32 && isStaticValue(v);
    };
    auto gridOf = [&](const ir::Value* v) {
      std::optional<ir::Quantization> q = v->quantization();
      if (!q) {
        auto r = calibration.ranges.find(v->name());
        if (r != calibration.ranges.end()) q = passes::quantizationU8(r->second);
      }
      return q && q->perTensor() ? q : std::nullopt;
    };
    // Order-preserving layers between INT8 ones (MaxPool): the max of quantized values is
    // the quantized max, so such a layer runs on the bytes with one grid on both sides (its
    // output's, the one its INT8 readers quantize with), and its producer requantizes to it.
    for (Work& w : work) {
      ir::Node& p = *g.nodes()[w.index];
      if (w.view || p.op() != "MaxPool" || !p.domain().empty() || outputTypeOf(p) == ir::DataType::kF32) continue;
      if (p.numOutputs() > 1 && p.output(1) && !p.output(1)->name().empty()) continue;  // Indices
      ir::Value* a = p.input(0);
      ir::Value* b = p.output(0);
      if (!plainF32(a) || !plainF32(b) || !a->producer() || !workOf.count(a->producer())) continue;
      if (outputTypeOf(*a->producer()) == ir::DataType::kF32) continue;  // the producer's output kept f32
      Work& src = *workOf.at(a->producer());
      auto ua = uses.find(a), ub = uses.find(b);
      if (!isI8(src) || a->producer()->numOutputs() != 1 || ua == uses.end() || ub == uses.end() || ub->second.empty())
        continue;
      bool ok = true;
      for (const auto& [cw, idx] : ua->second) ok &= cw == &w;
      for (const auto& [cw, idx] : ub->second) ok &= idx != SIZE_MAX && isI8(*cw);
      const std::optional<ir::Quantization> q = ok ? gridOf(b) : std::nullopt;
      if (!q) continue;
      const std::optional<ir::Quantization> qa = a->quantization(), qb = b->quantization();
      a->setQuantization(q);
      b->setQuantization(q);
      retype(a, ir::DataType::kU8);
      retype(b, ir::DataType::kU8);
      const runtime::Kernel* byteKernel = nullptr;
      for (const runtime::Kernel* k : runtime::Kernels::instance().forNode(Device::kCPU, p))
        if (!byteKernel && k->supports && k->nchwcBlock == 0 && k->name != "ref") {
          try {
            if (k->supports(p, inputTypes(p, atMin)) && k->supports(p, inputTypes(p, atOpt)) &&
                k->supports(p, inputTypes(p, atMax)))
              byteKernel = k;
          } catch (const Error&) {
          }
        }
      ok = byteKernel && stillServes(src);
      for (const auto& [cw, idx] : ub->second) ok = ok && stillServes(*cw);
      if (!ok) {
        retype(a, ir::DataType::kF32);
        retype(b, ir::DataType::kF32);
        a->setQuantization(qa);
        b->setQuantization(qb);
        ++report->loweredRefused;
        continue;
      }
      Candidate c;
      c.kernel = byteKernel;
      c.precision = ir::DataType::kF32;
      w.candidates = {std::move(c)};  // the chain's choice: the only kernel that reads the bytes
      w.best = 0;
      report->loweredValues += 2;
      touched.insert(&src);
      touched.insert(&w);
      for (const auto& [cw, idx] : ub->second) touched.insert(cw);
    }
    std::map<const ir::Node*, std::string> whyNot;  // an int8 output type that could not be had
    for (Work& w : work) {
      ir::Node& n = *g.nodes()[w.index];
      const ir::DataType wanted = outputTypeOf(n);
      if (wanted == ir::DataType::kF32) continue;  // --layerOutputTypes=name:fp32
      if (n.numOutputs() && n.output(0) && n.output(0)->isLowered()) continue;  // by the MaxPool step above
      auto skip = [&](const char* why) { whyNot[&n] = why; };
      if (!isI8(w) || n.numOutputs() != 1) {
        skip(w.view ? "a view of its input" : n.numOutputs() != 1 ? "it has several outputs" : "it does not run in INT8");
        continue;
      }
      ir::Value* v = n.output(0);
      if (v->name().empty() || passes::isGraphOutput(g, v) || !v->layout().isPlain() ||
          v->dtype() != ir::DataType::kF32 || !isStaticValue(v)) {
        skip("its output is a model output, blocked, dynamic or not f32");
        continue;
      }
      auto u = uses.find(v);
      if (u == uses.end() || u->second.empty()) continue;
      bool all = true;
      for (const auto& [cw, idx] : u->second) all &= idx != SIZE_MAX && isI8(*cw);
      if (!all) {
        skip("a layer reading its output does not run in INT8");
        continue;
      }
      // The grid: the one the consumers quantize with (the precision pass put it on the
      // value), else, for a value read only as a residual, its own calibrated range.
      const std::optional<ir::Quantization> saved = v->quantization();
      const std::optional<ir::Quantization> q = gridOf(v);
      if (!q) {
        ++report->loweredRefused;
        skip("its output has no per-tensor range");
        continue;
      }
      v->setQuantization(q);
      retype(v, ir::DataType::kU8);
      bool ok = stillServes(w);
      for (const auto& [cw, idx] : u->second) ok = ok && stillServes(*cw);
      if (!ok) {
        retype(v, ir::DataType::kF32);
        v->setQuantization(saved);
        ++report->loweredRefused;
        skip("a kernel of it or of its readers does not take the output quantized");
        continue;
      }
      ++report->loweredValues;
      touched.insert(&w);
      for (const auto& [cw, idx] : u->second) touched.insert(cw);
    }
    for (const auto& [n, why] : whyNot) {
      if (outputTypeOf(*n) != ir::DataType::kI8) continue;
      // "*" asks it of every layer: only the INT8 layers that could not have it are news.
      const Work* w = workOf.at(n);
      if (!config.layerOutputTypes.count(n->name()) && !isI8(*w)) continue;
      const std::string msg = n->label() + ": --layerOutputTypes asks for int8, but " + why + "; its output stays fp32";
      ANVIL_CHECK(precisionConfig.constraints != passes::PrecisionConfig::Constraints::kObey, ErrorCode::kUnsupported,
                  msg, " (--precisionConstraints=obey)");
      report->warnings.push_back(msg);
    }
    // Chosen again where the types changed: an INT8 kernel reading or writing u8 does other
    // work than it was timed for with f32 I/O (no quantizing on entry; a requantizing store,
    // which the channel kernel's 1x1 tiles fuse: resnet50's 14x14 1x1 convs went to the
    // pixels kernel, 0.36 ms against 0.27 in the channel kernel with u8 I/O). Among the
    // step's INT8 candidates that serve the new types; the chain stays whole.
    for (Work* w : touched) {
      if (!isI8(*w) || w->candidates.size() < 2) continue;
      const ir::Node& n = *g.nodes()[w->index];
      std::vector<Candidate> serving;
      for (const Candidate& c : w->candidates) {
        if (c.kernel->precision != ir::DataType::kI8 || !serves(n, c)) continue;
        Candidate k = c;
        k.prepared = runtime::Prepared{};
        serving.push_back(std::move(k));
      }
      if (serving.size() < 2) continue;
      const size_t best = choose(n, serving, nullptr);
      w->candidates = std::move(serving);
      w->best = best;
    }
    for (Work* w : touched) {  // prepared again for the types they now read and write
      Candidate& c = w->candidates[w->best];
      c.prepared = runtime::Prepared{};
      prepare(*g.nodes()[w->index], c);
    }
    if (report->loweredValues || report->loweredRefused)
      report->passLog.push_back("int8 chains: " + std::to_string(report->loweredValues) + " values stored u8, " +
                                std::to_string(report->loweredRefused) + " left f32");
  }

  for (Work& w : work) {
    const ir::Node& n = *g.nodes()[w.index];
    runtime::StepPlan st;
    st.node = int(w.index);
    for (const ir::Value* v : n.inputs()) st.inputs.push_back(v);
    for (const ir::Value* v : cpu::outerScopeValues(n)) st.inputs.push_back(v);
    for (const ir::Value* v : n.outputs()) st.outputs.push_back(v->name().empty() ? nullptr : v);
    if (w.view) {
      st.kernel = "view";
      st.kernelVersion = 1;
      st.device = n.device() == ir::Device::kCUDA ? Device::kCUDA : Device::kCPU;  // where its memory lives
      plan.tactics[w.index] = "view";
      plan.steps.push_back(std::move(st));
      continue;
    }
    Candidate& chosen = w.candidates[w.best];
    st.kernel = chosen.kernel->name;
    st.kernelVersion = chosen.kernel->version;
    st.device = chosen.kernel->device;
    st.precision = chosen.kernel->precision;
    st.requirements = chosen.kernel->requirements;
    st.params = std::move(chosen.prepared.params);
    st.blobs = std::move(chosen.prepared.blobs);
    st.workspaceBytes = chosen.prepared.workspaceBytes;
    st.packedInputs = chosen.prepared.packedInputs;
    st.untimed = st.device == Device::kCUDA && gpuTimingKey.empty();
    st.timed = w.candidates.size() > 1 && !st.untimed;
    st.candidates = int(w.candidates.size());
    st.tasks = chosen.tasks;
    report->untimedLayers += st.untimed;
    if (st.device == Device::kCPU)  // a CUDA kernel's requirements concern the GPU (plan.computeCapability)
      for (const std::string& r : st.requirements) requirements.insert(r);
    plan.tactics[w.index] = st.kernel;
    if (config.verbose)
      std::fprintf(stderr, "[build] %s -> %s (%d candidate%s)\n", n.label().c_str(), candidateName(chosen).c_str(),
                   st.candidates, st.candidates == 1 ? "" : "s");
    plan.steps.push_back(std::move(st));
  }
  plan.requirements.assign(requirements.begin(), requirements.end());
  for (const std::string& f : plan.requirements) plan.isaRequired += (plan.isaRequired.empty() ? "" : ",") + f;

  // Arena offsets at the profile's max shapes; smaller shapes of the profile fit in them.
  // CUDA engines: one arena per device, the device one 256-byte aligned (cudaMalloc's).
  inferAt(g, declared, profiles.max);
  // Concats whose producers write their inputs in place: the chosen kernel skips such an
  // input, and the profile is one point (the offsets are planned at its max shapes).
  std::unordered_set<const ir::Node*> inPlaceConcats;
  if (!cudaBuild && profiles.min == profiles.max)
    for (size_t i = 0; i < g.nodes().size() && i < plan.tactics.size(); ++i) {
      const std::string& t = plan.tactics[i];
      if (g.nodes()[i]->op() == "Concat" && (t == "x_concat_rows" || t.rfind("x32_concat_nchw", 0) == 0))
        inPlaceConcats.insert(g.nodes()[i].get());
    }
  const runtime::GraphMemory memory =
      cudaBuild ? runtime::planGraphMemory(g, ir::Device::kCPU, 64) : runtime::planGraphMemory(g, &inPlaceConcats);
  report->concatInputsInPlace = memory.concatInputsInPlace;
  const runtime::GraphMemory deviceMemory =
      cudaBuild ? runtime::planGraphMemory(g, ir::Device::kCUDA, 256) : runtime::GraphMemory{};
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    for (size_t k = 0; k < n.numOutputs(); ++k) {
      const bool onGpu = cudaBuild && n.output(k)->device() == ir::Device::kCUDA;
      const auto& slot = (onGpu ? deviceMemory : memory).nodeOutputs[i][k];
      if (slot.offset >= 0 && isStaticValue(n.output(k)) && !(k == 0 && work[i].view))
        plan.arena[n.output(k)] = {slot.offset, slot.bytes};
    }
  }
  plan.peakArenaBytes = memory.peakBytes;
  if (cudaBuild) {
    plan.device = "cuda";
    plan.computeCapability = targetCc;
    plan.peakDeviceArenaBytes = deviceMemory.peakBytes;
  }
  report->peakActivationBytes = plan.peakArenaBytes;
  size_t k = 0;
  for (const auto& v : g.values()) v->setType(declared[k++]);  // the engine keeps the symbolic types
  cache.save();
  *engine = runtime::serializeEngine(plan);
  report->buildMilliseconds = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// Float outputs of an engine run on each batch (by output name).
struct OutputData {
  std::vector<float> v;
  int64_t last = 1;  // extent of the last axis (rows = v.size() / last)
};
using Outputs = std::map<std::string, OutputData>;

// Binds `batch` (by input name) to `ctx` and owned output tensors of the shapes the inputs
// give (data-dependent outputs stay the engine's: read after a run through outputData()).
std::map<std::string, ir::Tensor> bindBatch(const Engine& e, ExecutionContext& ctx,
                                            const std::map<std::string, ir::Tensor>& batch) {
  for (const auto& [name, t] : batch)
    ANVIL_CHECK(ctx.setInputShape(name, t.dims()).isOk() && ctx.setTensorAddress(name, const_cast<void*>(t.raw())).isOk(),
                ErrorCode::kInternal, "cannot bind input '", name, "'");
  std::map<std::string, ir::Tensor> outs;
  for (const TensorDesc& d : e.io()) {
    if (d.isInput) continue;
    std::vector<int64_t> dims;
    ANVIL_CHECK(ctx.getTensorShape(d.name, &dims).isOk(), ErrorCode::kInternal, "shape of output '", d.name, "'");
    bool known = true;
    for (int64_t x : dims) known &= x >= 0;
    if (!known) continue;
    ir::Tensor t(ir::DataType(int(d.dtype)), dims);
    ctx.setTensorAddress(d.name, t.nbytes() ? t.mutableRaw() : nullptr);
    outs.emplace(d.name, std::move(t));
  }
  return outs;
}

std::vector<Outputs> runBatches(const std::string& bytes, const std::vector<std::map<std::string, ir::Tensor>>& batches) {
  std::shared_ptr<Engine> e;
  Status st = Engine::fromBytes(bytes, &e);
  ANVIL_CHECK(st.isOk(), ErrorCode::kInternal, "verification: ", st.message());
  std::unique_ptr<ExecutionContext> ctx;
  st = e->createContext(&ctx);
  if (!st.isOk()) {
    // A cross-built CUDA engine (no GPU of its target here) is verified on the CUDA simulator.
    ContextOptions sim;
    sim.simulate = true;
    if (e->createContext(&ctx, sim).isOk()) st = Status::ok();
  }
  ANVIL_CHECK(st.isOk(), ErrorCode::kInternal, "verification: ", st.message());
  std::vector<Outputs> out;
  for (const auto& batch : batches) {
    const std::map<std::string, ir::Tensor> outs = bindBatch(*e, *ctx, batch);
    st = ctx->run();
    ANVIL_CHECK(st.isOk(), ErrorCode::kInternal, "verification run: ", st.message());
    Outputs o;
    for (const auto& [name, t] : outs)
      if (t.dtype() == ir::DataType::kF32)
        o[name] = {std::vector<float>(t.data<float>(), t.data<float>() + t.numel()), t.rank() ? t.dims().back() : 1};
    out.push_back(std::move(o));
  }
  return out;
}

// The output error of `got` against the f32 engine's `ref` (see BuilderConfig::accuracyMetric).
// With `tolerance` below what the held-out rows can resolve (rows * tolerance < 1: one
// disagreement already exceeds it), top-1 also counts the rows *at risk*: those whose f32
// margin between the two largest outputs is no more than twice the largest change the
// reduced engine made to that row — a conservative estimate that sees a layer's damage
// before it flips a row of a small held-out set.
double outputError(const std::vector<Outputs>& ref, const std::vector<Outputs>& got, const std::string& metric,
                   const std::vector<std::string>& order, double tolerance) {
  if (metric == "top1") {
    const std::string& first = order.front();
    int64_t rows = 0, differ = 0, atRisk = 0;
    for (size_t b = 0; b < ref.size(); ++b) {
      const std::vector<float>& r = ref[b].at(first).v;
      const std::vector<float>& g = got[b].at(first).v;
      const int64_t last = std::max<int64_t>(1, ref[b].at(first).last);
      for (size_t at = 0; at + size_t(last) <= r.size(); at += size_t(last)) {
        ++rows;
        const auto r0 = r.begin() + ptrdiff_t(at), r1 = r0 + ptrdiff_t(last);
        const auto g0 = g.begin() + ptrdiff_t(at), g1 = g0 + ptrdiff_t(last);
        const bool flipped = std::max_element(r0, r1) - r0 != std::max_element(g0, g1) - g0;
        differ += flipped;
        if (flipped || last < 2) continue;
        double top = -INFINITY, second = -INFINITY, change = 0;
        for (int64_t j = 0; j < last; ++j) {
          const double x = r0[j];
          if (x > top) second = top, top = x;
          else if (x > second) second = x;
          change = std::max(change, std::fabs(double(g0[j]) - x));
        }
        atRisk += top - second <= 2 * change;
      }
    }
    if (!rows) return 0.0;
    const bool unresolved = double(rows) * tolerance < 1.0;
    return double(differ + (unresolved ? atRisk : 0)) / double(rows);
  }
  double sum = 0;
  for (size_t b = 0; b < ref.size(); ++b) {
    double worst = 0;
    for (const auto& [name, rd] : ref[b]) {
      const std::vector<float>& r = rd.v;
      const std::vector<float>& g = got[b].at(name).v;
      double d2 = 0, r2 = 0;
      for (size_t i = 0; i < r.size(); ++i) {
        d2 += (double(g[i]) - r[i]) * (double(g[i]) - r[i]);
        r2 += double(r[i]) * r[i];
      }
      worst = std::max(worst, r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2));
    }
    sum += worst;
  }
  return ref.empty() ? 0.0 : sum / double(ref.size());
}

// --precision=auto: the choice of the precision pass, verified on held-out calibration
// batches against the f32 engine and raised until the measured error meets the tolerance.
void buildVerified(const std::string& onnxPath, const BuilderConfig& config, std::string* engine, BuildReport* report) {
  ANVIL_CHECK(config.accuracyMetric == "relative" || config.accuracyMetric == "top1", ErrorCode::kInvalidArgument,
              "--accuracyMetric is relative or top1, got '", config.accuracyMetric, "'");
  ANVIL_CHECK(!config.calibrationData.empty(), ErrorCode::kInvalidArgument,
              "--precision=auto needs --calibData=DIR: the condition estimates are measured on the user's samples");
  // One timing cache for every round (the user's, else a temporary file).
  BuilderConfig cfg = config;
  std::string tempCache;
  if (cfg.timingCachePath.empty()) {
    tempCache = (std::filesystem::temp_directory_path() /
                 ("anvil-auto-" + std::to_string(uint64_t(Clock::now().time_since_epoch().count())) + ".cache"))
                    .string();
    cfg.timingCachePath = tempCache;
  }
  struct Cleanup {
    std::string path;
    ~Cleanup() {
      if (!path.empty()) std::filesystem::remove(path);
    }
  } cleanup{tempCache};

  BuilderConfig c32 = cfg;
  c32.fp16 = c32.bf16 = c32.int8 = false;
  c32.autoPrecision = false;
  c32.layerPrecisions.clear();
  c32.progress = nullptr;
  std::string bytes32;
  BuildReport r32;
  buildImpl(onnxPath, c32, &bytes32, &r32);
  std::shared_ptr<Engine> e32;
  ANVIL_CHECK(Engine::fromBytes(bytes32, &e32).isOk(), ErrorCode::kInternal, "verification: f32 engine");
  std::vector<std::pair<std::string, ir::DataType>> inputs;
  std::map<std::string, std::vector<int64_t>> opt;
  std::vector<std::string> outputs;
  for (const TensorDesc& d : e32->io()) {
    if (d.isInput) {
      inputs.emplace_back(d.name, ir::DataType(int(d.dtype)));
      opt[d.name] = e32->optShape(d.name);
    } else if (d.dtype == DataType::kFloat) {
      outputs.push_back(d.name);
    }
  }
  ANVIL_CHECK(!outputs.empty(), ErrorCode::kInvalidArgument, "--precision=auto: the model has no f32 output to verify");
  auto batches = codegen::loadCalibrationBatches(config.calibrationData, inputs, opt);
  const int held = codegen::heldOutBatches(int(batches.size()));
  if (held) batches.erase(batches.begin(), batches.end() - held);
  const std::vector<Outputs> ref = runBatches(bytes32, batches);

  const auto start = Clock::now();
  BuildExtras extras;
  for (int round = 1;; ++round) {
    *report = BuildReport();
    buildImpl(onnxPath, cfg, engine, report, &extras);
    const double err =
        outputError(ref, runBatches(*engine, batches), config.accuracyMetric, outputs, config.accuracyTolerance);
    report->measuredError = err;
    report->verificationRounds = round;
    report->layersPromoted = int(extras.promoted.size());
    report->buildMilliseconds = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (!held)
      report->warnings.push_back(
          "--precision=auto verified on its only calibration batch; give two or more to hold some out");
    report->passLog.push_back("precision verification round " + std::to_string(round) + ": " + config.accuracyMetric +
                              " error " + std::to_string(err) + " (tolerance " +
                              std::to_string(config.accuracyTolerance) + ")");
    if (err <= config.accuracyTolerance) break;
    // Raise a quarter (at least one) of the reduced layers, the largest errors first, one
    // step up the ladder int8 -> bf16 -> fp16 -> fp32 (allowed steps only).
    std::shared_ptr<Engine> e;
    ANVIL_CHECK(Engine::fromBytes(*engine, &e).isOk(), ErrorCode::kInternal, "verification: engine");
    std::vector<LayerInfo> reduced;
    for (const LayerInfo& l : e->layers())
      if (l.precision == "i8" || l.precision == "bf16" || l.precision == "f16") reduced.push_back(l);
    if (reduced.empty()) break;  // all f32: nothing left to raise
    // The largest measured contributions first (a layer's own error on calibration data),
    // then the predicted ones.
    std::stable_sort(reduced.begin(), reduced.end(), [](const LayerInfo& a, const LayerInfo& b) {
      return a.measuredError != b.measuredError ? a.measuredError > b.measuredError
                                                : a.predictedError > b.predictedError;
    });
    const size_t raise = std::max<size_t>(1, reduced.size() / 4);
    const passes::PrecisionConfig pc = precisionConfigOf(config);
    for (size_t i = 0; i < raise; ++i) {
      const ir::DataType now = ir::dtypeFromName(reduced[i].precision);
      ir::DataType next = ir::DataType::kF32;
      bool past = false;
      for (ir::DataType t : {ir::DataType::kI8, ir::DataType::kBF16, ir::DataType::kF16}) {
        if (past && pc.allows(t)) {
          next = t;
          break;
        }
        past |= t == now;
      }
      extras.promoted[reduced[i].name] = next;
    }
  }
}

}  // namespace

namespace codegen {

bool precisionGuardApplies(const BuilderConfig& config) {
  return config.precisionGuard && config.device == Device::kCPU && !config.autoPrecision &&
         (config.int8 || config.fp16 || config.bf16);
}

std::pair<double, double> timeEnginesAlternating(const Engine& a, const Engine& b, int threads,
                                                 const std::map<std::string, ir::Tensor>& inputs, int minRuns,
                                                 double budgetMs) {
  struct Side {
    std::unique_ptr<ExecutionContext> ctx;
    std::map<std::string, ir::Tensor> outs;
    std::vector<double> ms;
  };
  Side sides[2];
  ContextOptions options;
  options.threads = threads;
  for (int k = 0; k < 2; ++k) {
    Side& s = sides[k];
    const Engine& e = k == 0 ? a : b;
    const Status st = e.createContext(&s.ctx, options);
    ANVIL_CHECK(st.isOk(), ErrorCode::kInternal, "precision guard: ", st.message());
    s.outs = bindBatch(e, *s.ctx, inputs);
  }
  auto once = [](Side& s) {
    const auto t0 = Clock::now();
    const Status st = s.ctx->run();
    ANVIL_CHECK(st.isOk(), ErrorCode::kInternal, "precision guard run: ", st.message());
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  // Warm-up (first-run allocations, lazily started workers, weights into cache), then
  // rounds of a few runs each (~10 ms of work a side, so a round is not one burst of load).
  double slowest = 0;
  for (Side& s : sides) {
    once(s);
    slowest = std::max(slowest, once(s));
  }
  const int perRound = std::clamp(int(std::ceil(10.0 / std::max(slowest, 1e-3))), 1, 20);
  const auto start = Clock::now();
  auto elapsedMs = [&] { return std::chrono::duration<double, std::milli>(Clock::now() - start).count(); };
  while ((int(sides[0].ms.size()) < minRuns || elapsedMs() < budgetMs) && elapsedMs() < 2 * budgetMs)
    for (Side& s : sides)
      for (int r = 0; r < perRound; ++r) s.ms.push_back(once(s));
  return {medianOf(sides[0].ms), medianOf(sides[1].ms)};
}

void guardPrecision(const std::string& onnxPath, const BuilderConfig& config, std::string* engine,
                    BuildReport* report, const EngineTimer& timer) {
  std::shared_ptr<Engine> reduced;
  ANVIL_CHECK(Engine::fromBytes(*engine, &reduced).isOk(), ErrorCode::kInternal, "precision guard: engine");
  int byCost = 0;
  for (const LayerInfo& l : reduced->layers())
    byCost += l.precision != "f32" && !l.precision.empty() && l.precisionReason == "cost";
  if (!byCost) {
    report->passLog.push_back("precision guard: no layer took a reduced precision by cost; nothing to compare");
    return;
  }
  const auto start = Clock::now();
  BuilderConfig c32 = config;
  c32.fp16 = c32.bf16 = c32.int8 = false;
  c32.progress = nullptr;
  std::string bytes32;
  BuildReport r32;
  buildImpl(onnxPath, c32, &bytes32, &r32);
  std::pair<double, double> ms;
  if (timer) {
    ms = timer(*engine, bytes32);
  } else {
    // The inputs: the first calibration batch (what the user will run), else random values
    // at the opt shapes (integers zero: valid indices for any gather-like op).
    std::vector<std::pair<std::string, ir::DataType>> ins;
    std::map<std::string, std::vector<int64_t>> opt;
    for (const TensorDesc& d : reduced->io())
      if (d.isInput) {
        ins.emplace_back(d.name, ir::DataType(int(d.dtype)));
        opt[d.name] = reduced->optShape(d.name);
      }
    std::map<std::string, ir::Tensor> batch;
    if (!config.calibrationData.empty()) {
      auto batches = loadCalibrationBatches(config.calibrationData, ins, opt);
      if (!batches.empty()) batch = std::move(batches.front());
    }
    if (batch.empty()) {
      std::mt19937 rng(777);
      for (const auto& [name, t] : ins)
        batch.emplace(name, randomTensor(ir::TensorType{t, ir::Shape::fromExtents(opt.at(name))}, rng));
    }
    std::shared_ptr<Engine> e32;
    ANVIL_CHECK(Engine::fromBytes(bytes32, &e32).isOk(), ErrorCode::kInternal, "precision guard: FP32 engine");
    ms = timeEnginesAlternating(*reduced, *e32, config.threads, batch);
  }
  const bool keepF32 = ms.second <= ms.first;  // a tie: FP32, the same speed without the error
  char line[256];
  std::snprintf(line, sizeof line,
                "precision guard: %d layers reduced by cost, engine %.4g ms; FP32 engine %.4g ms (medians, alternated "
                "whole runs) -> kept the %s engine",
                byCost, ms.first, ms.second, keepF32 ? "FP32" : "reduced-precision");
  const double guardMs = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (keepF32) {
    std::vector<std::string> log = std::move(report->passLog);
    const double before = report->buildMilliseconds;
    *engine = std::move(bytes32);
    *report = std::move(r32);
    report->passLog.insert(report->passLog.begin(), log.begin(), log.end());
    report->buildMilliseconds = before + guardMs;
    char w[320];
    std::snprintf(w, sizeof w,
                  "the FP32 engine ran faster whole (%.4g ms) than the one with %d layers in reduced precision "
                  "(%.4g ms): it is the engine built (--noPrecisionGuard keeps the reduced one)",
                  ms.second, byCost, ms.first);
    report->warnings.push_back(w);
  } else {
    report->buildMilliseconds += guardMs;
  }
  report->passLog.push_back(line);
  report->guardReducedMs = ms.first;
  report->guardF32Ms = ms.second;
  report->guardKeptF32 = keepF32;
}

}  // namespace codegen

Status Builder::buildFromOnnx(const std::string& onnxPath, const BuilderConfig& config, std::string* engine,
                              BuildReport* report) {
  BuildReport local;
  try {
    if (config.autoPrecision)
      buildVerified(onnxPath, config, engine, report ? report : &local);
    else
      buildImpl(onnxPath, config, engine, report ? report : &local);
    if (codegen::precisionGuardApplies(config)) {
      BuildReport* r = report ? report : &local;
      try {
        codegen::guardPrecision(onnxPath, config, engine, r);
      } catch (const Error& e) {
        // The guard only compares: where the FP32 engine cannot be built or run (the
        // reduced one was), the reduced engine stands and the build says why.
        r->warnings.push_back(std::string("precision guard skipped: ") + e.what());
      }
    }
    return Status::ok();
  } catch (const Error& e) {
    return Status(e.code(), e.what());
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, e.what());
  }
}

}  // namespace anvil
