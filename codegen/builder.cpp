// The builder: ONNX → IR → (passes) → tactic choice by timing on the real shapes, with a
// timing cache → memory plan → engine bytes.
#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <sstream>

#include "anvil/anvil.hpp"
#include "codegen/timing_cache.h"
#include "cpu/reference.h"
#include "cpu/tactics.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"
#include "passes/pipeline.h"
#include "runtime/engine_format.h"
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
    os << v->type().str() << (v->isInitializer() ? "c" : "") << ",";
  }
  os << ")";
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

double timeTactic(const cpu::Tactic& tactic, const ir::Node& node, const std::vector<const ir::Tensor*>& inputs,
                  int iterations) {
  auto once = [&] {
    cpu::KernelContext ctx(node, inputs, nullptr);
    auto t0 = Clock::now();
    tactic.run(ctx);
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  once();  // warm-up (packing, caches)
  std::vector<double> times;
  for (int i = 0; i < std::max(iterations, 1); ++i) times.push_back(once());
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void buildImpl(const std::string& onnxPath, const BuilderConfig& config, std::string* engine, BuildReport* report) {
  ANVIL_CHECK(config.device == Device::kCPU, ErrorCode::kUnsupported,
              "the CUDA backend cannot build engines yet; use --device=cpu");
  const auto start = Clock::now();
  if (config.threads > 0) setCpuThreads(config.threads);  // tune with the threads the user runs with
  ir::Model model = parser::parseOnnxFile(onnxPath);
  report->nodesBefore = int(model.graph->nodes().size());
  passes::OptimizeOptions popts;
  popts.dumpDir = config.dumpGraphDir;
  report->passLog = passes::optimize(*model.graph, config.optimizationLevel, popts);
  report->nodesAfter = int(model.graph->nodes().size());

  runtime::Plan plan;
  plan.graph = std::shared_ptr<ir::Graph>(std::move(model.graph));
  plan.tactics.assign(plan.graph->nodes().size(), "ref");
  plan.buildIsa = cpu::cpuIsaLevel();
  plan.optLevel = config.optimizationLevel;
  plan.producer = model.producerName + (model.producerVersion.empty() ? "" : " " + model.producerVersion);
  plan.metadata = model.metadata;
  for (const auto& [name, dims] : config.inputShapes) {
    const ir::Value* v = plan.graph->findValue(name);
    ANVIL_CHECK(v && std::find(plan.graph->inputs().begin(), plan.graph->inputs().end(), v) != plan.graph->inputs().end(),
                ErrorCode::kInvalidArgument, "--shapes: the model has no input '", name, "'");
  }
  for (const ir::Value* in : plan.graph->inputs()) {
    if (in->isInitializer()) continue;
    auto it = config.inputShapes.find(in->name());
    std::vector<int64_t> dims;
    if (it != config.inputShapes.end()) {
      dims = it->second;
      ANVIL_CHECK(!in->shape().rankKnown() || in->shape().rank() == dims.size(), ErrorCode::kShapeMismatch,
                  "--shapes: input '", in->name(), "' has rank ", in->shape().rank(), " (", in->shape().str(),
                  "), got ", dims.size(), " dims");
      for (size_t i = 0; i < dims.size(); ++i)
        ANVIL_CHECK(!in->shape().rankKnown() || !in->shape()[i].isStatic() || in->shape()[i].value() == dims[i],
                    ErrorCode::kShapeMismatch, "--shapes: input '", in->name(), "' dim ", i, " is fixed to ",
                    in->shape()[i].value(), ", got ", dims[i]);
    } else {
      ANVIL_CHECK(in->shape().rankKnown(), ErrorCode::kInvalidArgument, "input '", in->name(),
                  "' has unknown rank: give its shape with --shapes");
      for (const ir::Dim& d : in->shape().dims()) dims.push_back(d.isStatic() ? d.value() : 1);
    }
    plan.optShapes[in->name()] = dims;
  }

  // A private copy of the graph at the tuning shapes (through the engine format itself).
  runtime::Plan tune = runtime::deserializeEngine(runtime::engineBytesFromString(runtime::serializeEngine(plan)));
  ir::Graph& g = *tune.graph;
  for (ir::Value* in : g.inputs())
    if (!in->isInitializer()) in->setType({in->dtype(), ir::Shape::fromExtents(plan.optShapes.at(in->name()))});
  ir::inferShapes(g);

  codegen::TimingCache cache(config.timingCachePath);
  const std::string device = cpu::cpuSignature() + "|threads=" + std::to_string(cpuThreads());
  std::mt19937 rng(12345);
  std::set<std::string> isa;
  struct Work {
    size_t index;
    std::vector<const cpu::Tactic*> candidates;
  };
  std::vector<Work> work;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    std::vector<ir::TensorType> types;
    bool allStatic = true;
    for (const ir::Value* v : n.inputs()) {
      types.push_back(v ? v->type() : ir::TensorType{});
      if (v && !v->shape().isStatic()) allStatic = false;
    }
    if (!allStatic) continue;
    auto cands = cpu::TacticRegistry::instance().candidates(n, types);
    if (cands.size() > 1) work.push_back({i, cands});
  }
  report->layersTuned = int(work.size());
  int done = 0;
  for (const Work& w : work) {
    const ir::Node& n = *g.nodes()[w.index];
    if (config.progress) config.progress(done, int(work.size()), n.name());
    const std::string key = device + "|" + opSignature(n);
    const codegen::TimingCache::Entry* hit = cache.find(key);
    const cpu::Tactic* best = nullptr;
    if (hit) {
      for (const cpu::Tactic* t : w.candidates)
        if (t->name == hit->best) best = t;
    }
    if (best) {
      ++report->tacticsFromCache;
    } else {
      std::vector<ir::Tensor> data;
      data.reserve(n.numInputs());
      std::vector<const ir::Tensor*> inputs;
      for (const ir::Value* v : n.inputs()) {
        if (!v) {
          inputs.push_back(nullptr);
          continue;
        }
        data.push_back(v->isInitializer() ? *v->initializer() : randomTensor(v->type(), rng));
        inputs.push_back(&data.back());
      }
      codegen::TimingCache::Entry entry;
      double bestMs = 0;
      for (const cpu::Tactic* t : w.candidates) {
        double ms = timeTactic(*t, n, inputs, config.timingIterations);
        ++report->tacticsTimed;
        entry.milliseconds[t->name] = ms;
        if (!best || ms < bestMs) {
          best = t;
          bestMs = ms;
        }
      }
      entry.best = best->name;
      cache.put(key, std::move(entry));
    }
    plan.tactics[w.index] = best->name;
    if (!best->isa.empty()) isa.insert(best->isa);
    ++done;
  }
  if (config.progress) config.progress(done, int(work.size()), "");
  for (const std::string& f : isa) plan.isaRequired += (plan.isaRequired.empty() ? "" : ",") + f;
  plan.peakArenaBytes = runtime::planGraphMemory(g).peakBytes;
  report->peakActivationBytes = plan.peakArenaBytes;
  cache.save();
  *engine = runtime::serializeEngine(plan);
  report->buildMilliseconds = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

}  // namespace

Status Builder::buildFromOnnx(const std::string& onnxPath, const BuilderConfig& config, std::string* engine,
                              BuildReport* report) {
  BuildReport local;
  try {
    buildImpl(onnxPath, config, engine, report ? report : &local);
    return Status::ok();
  } catch (const Error& e) {
    return Status(e.code(), e.what());
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, e.what());
  }
}

}  // namespace anvil
