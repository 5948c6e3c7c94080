// Engine (immutable, shared) and ExecutionContext (one per thread): I/O queries, input
// shapes with re-inference and re-planning when they change, arena execution through the
// chosen tactics, per-layer profiling.
#include <chrono>
#include <cstring>
#include <mutex>

#include "anvil/anvil.hpp"
#include "cpu/reference.h"
#include "cpu/tactics.h"
#include "cpu/tactics/gemm_kernels.h"
#include "ir/op_schema.h"
#include "runtime/engine_format.h"
#include "runtime/memory_planner.h"

namespace anvil {

void setCpuThreads(int n) { cpu::tactics::setNumThreads(n); }
int cpuThreads() { return cpu::tactics::numThreads(); }

const char* dataTypeName(DataType t) { return ir::dtypeName(ir::DataType(int32_t(t))); }
size_t dataTypeSize(DataType t) { return ir::storageBytes(ir::DataType(int32_t(t)), 1); }

namespace {
template <typename F>
Status guarded(F&& f) {
  try {
    f();
    return Status::ok();
  } catch (const Error& e) {
    return Status(e.code(), e.what());
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, e.what());
  }
}

std::vector<int64_t> descDims(const ir::Shape& s) {
  std::vector<int64_t> d;
  for (const ir::Dim& x : s.dims()) d.push_back(x.isStatic() ? x.value() : -1);
  return d;
}
}  // namespace

struct Engine::Impl {
  runtime::EngineBytes bytes;
  runtime::Plan plan;  // for queries; contexts build their own graph copy
  std::vector<TensorDesc> io;
};

Engine::Engine(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

static Status makeEngine(runtime::EngineBytes bytes, std::shared_ptr<Engine>* engine) {
  return guarded([&] {
    auto impl = std::make_shared<Engine::Impl>();
    impl->plan = runtime::deserializeEngine(bytes);
    impl->bytes = std::move(bytes);
    const ir::Graph& g = *impl->plan.graph;
    for (const ir::Value* v : g.inputs())
      if (!v->isInitializer()) impl->io.push_back({v->name(), DataType(int32_t(v->dtype())), descDims(v->shape()), true});
    for (const ir::Value* v : g.outputs())
      impl->io.push_back({v->name(), DataType(int32_t(v->dtype())), descDims(v->shape()), false});
    *engine = std::make_shared<Engine>(std::move(impl));
  });
}

Status Engine::load(const std::string& path, std::shared_ptr<Engine>* engine) {
  runtime::EngineBytes bytes;
  Status s = guarded([&] { bytes = runtime::mapEngineFile(path); });
  if (!s) return s;
  s = makeEngine(std::move(bytes), engine);
  if (!s) return Status(s.code(), path + ": " + s.message());
  return s;
}

Status Engine::fromBytes(std::string bytes, std::shared_ptr<Engine>* engine) {
  return makeEngine(runtime::engineBytesFromString(std::move(bytes)), engine);
}

const std::vector<TensorDesc>& Engine::io() const { return impl_->io; }

const TensorDesc* Engine::find(const std::string& name) const {
  for (const auto& d : impl_->io)
    if (d.name == name) return &d;
  return nullptr;
}

std::vector<int64_t> Engine::optShape(const std::string& input) const {
  auto it = impl_->plan.optShapes.find(input);
  return it == impl_->plan.optShapes.end() ? std::vector<int64_t>{} : it->second;
}

std::vector<LayerInfo> Engine::layers() const {
  std::vector<LayerInfo> out;
  const ir::Graph& g = *impl_->plan.graph;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node& n = *g.nodes()[i];
    LayerInfo li;
    li.name = n.name().empty() ? n.op() + "_" + std::to_string(i) : n.name();
    li.type = n.domain().empty() ? n.op() : n.domain() + "." + n.op();
    li.tactic = i < impl_->plan.tactics.size() ? impl_->plan.tactics[i] : "ref";
    li.precision = n.numOutputs() ? ir::dtypeName(n.output(0)->dtype()) : "";
    for (const ir::Value* v : n.inputs()) li.inputs.push_back(v ? v->name() : "");
    for (const ir::Value* v : n.outputs()) li.outputs.push_back(v->name());
    out.push_back(std::move(li));
  }
  return out;
}

uint64_t Engine::peakActivationBytes() const { return impl_->plan.peakArenaBytes; }

std::string Engine::target() const {
  return impl_->plan.device + " " + impl_->plan.buildIsa +
         (impl_->plan.isaRequired.empty() ? "" : " (needs " + impl_->plan.isaRequired + ")");
}

// ---- ExecutionContext --------------------------------------------------------------------

struct ExecutionContext::Impl {
  std::shared_ptr<const Engine::Impl> engine;
  runtime::Plan plan;  // this context's own graph (weights shared with the engine mapping)
  std::vector<ir::TensorType> declared;  // original types of every main-graph value, for re-inference
  std::vector<const cpu::Tactic*> chosen;    // from the engine
  std::vector<const cpu::Tactic*> active;    // after checking support at the current shapes
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, void*> addresses;
  bool dirty = true;
  runtime::GraphMemory memory;
  std::shared_ptr<uint8_t> arena;
  size_t arenaBytes = 0;
  std::vector<ir::Tensor> outputs;
  Profiler profiler;

  const ir::Value* ioValue(const std::string& name, bool* isInput) const {
    const ir::Graph& g = *plan.graph;
    for (const ir::Value* v : g.inputs())
      if (v->name() == name && !v->isInitializer()) {
        *isInput = true;
        return v;
      }
    for (const ir::Value* v : g.outputs())
      if (v->name() == name) {
        *isInput = false;
        return v;
      }
    ANVIL_THROW(ErrorCode::kInvalidArgument, "the engine has no input or output named '", name, "'");
  }

  void prepare() {
    if (!dirty) return;
    ir::Graph& g = *plan.graph;
    size_t k = 0;
    for (const auto& v : g.values()) v->setType(declared[k++]);
    for (ir::Value* in : g.inputs()) {
      if (in->isInitializer()) continue;
      auto it = shapes.find(in->name());
      ANVIL_CHECK(it != shapes.end(), ErrorCode::kInvalidArgument, "input '", in->name(), "' ", in->type().str(),
                  " has no shape: call setInputShape");
      in->setType({in->dtype(), ir::Shape::fromExtents(it->second)});
    }
    ir::inferShapes(g);
    active = chosen;
    for (size_t i = 0; i < g.nodes().size(); ++i) {
      const ir::Node& n = *g.nodes()[i];
      std::vector<ir::TensorType> types;
      for (const ir::Value* v : n.inputs()) types.push_back(v ? v->type() : ir::TensorType{});
      bool ok = true;
      for (const auto& t : types) ok = ok && (t.dtype == ir::DataType::kUndefined || t.shape.isStatic());
      if (active[i]->name != "ref" && (!ok || !active[i]->supports(n, types)))
        active[i] = cpu::TacticRegistry::instance().find(n.op(), n.domain(), "ref");
    }
    memory = runtime::planGraphMemory(g);
    if (memory.peakBytes > arenaBytes) {
      void* p = std::aligned_alloc(64, (memory.peakBytes + 63) / 64 * 64);
      ANVIL_CHECK(p != nullptr, ErrorCode::kRuntimeError, "cannot allocate ", memory.peakBytes, " bytes of activations");
      arena = std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
      arenaBytes = memory.peakBytes;
    }
    dirty = false;
  }

  void run() {
    prepare();
    ir::Graph& g = *plan.graph;
    std::map<std::string, ir::Tensor> inputs;
    for (const ir::Value* in : g.inputs()) {
      if (in->isInitializer()) continue;
      auto it = addresses.find(in->name());
      ANVIL_CHECK(it != addresses.end() && it->second, ErrorCode::kInvalidArgument, "input '", in->name(),
                  "' has no buffer: call setTensorAddress");
      inputs[in->name()] = ir::Tensor::view(in->dtype(), in->shape().extents(), nullptr, it->second);
    }
    cpu::ExecHooks hooks;
    hooks.checkInferred = false;
    hooks.kernelFor = [this](size_t i) { return &active[i]->run; };
    hooks.slotsFor = [this](size_t i) {
      std::vector<cpu::KernelContext::Slot> slots;
      for (const auto& s : memory.nodeOutputs[i]) {
        if (s.offset < 0) slots.push_back({});
        else slots.push_back({arena.get() + s.offset, s.bytes, !s.alias});
      }
      return slots;
    };
    if (profiler)
      hooks.onNodeDone = [this, &g](size_t i, double ms) {
        const ir::Node& n = *g.nodes()[i];
        profiler({n.name().empty() ? n.op() + "_" + std::to_string(i) : n.name(), n.op(), active[i]->name, ms});
      };
    outputs = cpu::Interpreter::run(g, inputs, &hooks);
    for (size_t i = 0; i < g.outputs().size(); ++i) {
      auto it = addresses.find(g.outputs()[i]->name());
      if (it != addresses.end() && it->second && outputs[i].nbytes())
        std::memcpy(it->second, outputs[i].raw(), outputs[i].nbytes());
    }
  }
};

ExecutionContext::ExecutionContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExecutionContext::~ExecutionContext() = default;

Status Engine::createContext(std::unique_ptr<ExecutionContext>* context) const {
  return guarded([&] {
    auto impl = std::make_unique<ExecutionContext::Impl>();
    impl->engine = impl_;
    impl->plan = runtime::deserializeEngine(impl_->bytes);
    for (const auto& v : impl->plan.graph->values()) impl->declared.push_back(v->type());
    const ir::Graph& g = *impl->plan.graph;
    for (size_t i = 0; i < g.nodes().size(); ++i) {
      const ir::Node& n = *g.nodes()[i];
      impl->chosen.push_back(cpu::TacticRegistry::instance().find(n.op(), n.domain(), impl->plan.tactics[i]));
    }
    for (const ir::Value* in : g.inputs()) {
      if (in->isInitializer()) continue;
      auto it = impl->plan.optShapes.find(in->name());
      if (it != impl->plan.optShapes.end()) impl->shapes[in->name()] = it->second;
      else if (in->shape().isStatic()) impl->shapes[in->name()] = in->shape().extents();
    }
    *context = std::make_unique<ExecutionContext>(std::move(impl));
  });
}

Status ExecutionContext::setInputShape(const std::string& name, const std::vector<int64_t>& dims) {
  return guarded([&] {
    bool isInput = false;
    const ir::Value* v = impl_->ioValue(name, &isInput);
    ANVIL_CHECK(isInput, ErrorCode::kInvalidArgument, "'", name, "' is an output; only input shapes can be set");
    // Check against the declared (engine) type, not the current concrete one.
    const ir::TensorType* declared = nullptr;
    size_t k = 0;
    for (const auto& val : impl_->plan.graph->values()) {
      if (val.get() == v) declared = &impl_->declared[k];
      ++k;
    }
    const ir::Shape& s = declared->shape;
    if (s.rankKnown()) {
      ANVIL_CHECK(s.rank() == dims.size(), ErrorCode::kShapeMismatch, "input '", name, "' has rank ", s.rank(),
                  " (", s.str(), "), got ", dims.size(), " dims");
      for (size_t i = 0; i < dims.size(); ++i)
        ANVIL_CHECK(!s[i].isStatic() || s[i].value() == dims[i], ErrorCode::kShapeMismatch, "input '", name,
                    "' dim ", i, " must be ", s[i].value(), " (", s.str(), "), got ", dims[i]);
    }
    for (int64_t d : dims) ANVIL_CHECK(d >= 0, ErrorCode::kShapeMismatch, "input '", name, "': negative dim ", d);
    if (impl_->shapes[name] != dims) impl_->dirty = true;
    impl_->shapes[name] = dims;
  });
}

Status ExecutionContext::setTensorAddress(const std::string& name, void* data) {
  return guarded([&] {
    bool isInput = false;
    impl_->ioValue(name, &isInput);
    impl_->addresses[name] = data;
  });
}

Status ExecutionContext::getTensorShape(const std::string& name, std::vector<int64_t>* dims) {
  return guarded([&] {
    bool isInput = false;
    const ir::Value* v = impl_->ioValue(name, &isInput);
    impl_->prepare();
    *dims = descDims(v->shape());
  });
}

Status ExecutionContext::run() {
  return guarded([&] { impl_->run(); });
}

const void* ExecutionContext::outputData(const std::string& name) const {
  const auto& g = *impl_->plan.graph;
  for (size_t i = 0; i < g.outputs().size() && i < impl_->outputs.size(); ++i)
    if (g.outputs()[i]->name() == name) return impl_->outputs[i].raw();
  return nullptr;
}

void ExecutionContext::setProfiler(Profiler profiler) { impl_->profiler = std::move(profiler); }

uint64_t ExecutionContext::activationBytes() const { return impl_->arenaBytes; }

}  // namespace anvil
