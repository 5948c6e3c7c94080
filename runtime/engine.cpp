// Engine (immutable, shared) and ExecutionContext (one per thread). The engine binds each
// step of the plan to its kernel once at load; a context walks the steps over its own
// arena, workspace and executor: no allocation, no re-decoding, no re-inference while
// input shapes stay the same; graph outputs are written straight into caller buffers.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "anvil/anvil.hpp"
#include "ir/op_schema.h"
#include "runtime/engine_stats.h"
#include "runtime/status_guard.h"
#include "runtime/engine_format.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"
#ifdef ANVIL_HAVE_CUDA_BACKEND
#include "cuda/device.h"
#include "cuda/runtime.h"
#endif

namespace anvil {

namespace {
std::atomic<int> gDefaultThreads{0};
}
void setCpuThreads(int n) { gDefaultThreads.store(std::max(0, n)); }
int cpuThreads() {
  const int n = gDefaultThreads.load();
  return n > 0 ? n : runtime::defaultThreads();
}

const char* dataTypeName(DataType t) { return ir::dtypeName(ir::DataType(int32_t(t))); }
size_t dataTypeSize(DataType t) { return ir::storageBytes(ir::DataType(int32_t(t)), 1); }

namespace {
using detail::guarded;

std::vector<int64_t> descDims(const ir::Shape& s) {
  std::vector<int64_t> d;
  for (const ir::Dim& x : s.dims()) d.push_back(x.isStatic() ? x.value() : -1);
  return d;
}
}  // namespace

// One step as the runtime walks it: indices into the per-value tables.
struct ExecStep {
  const runtime::Kernel* kernel = nullptr;  // null for a view step
  const runtime::StepPlan* plan = nullptr;
  int node = -1;
  std::vector<int> ins, outs;  // value indices (-1: absent)
  bool view = false;
  bool gpu = false;  // a CUDA step: enqueued on the context's device runtime
};

enum class ValueMode : uint8_t { kNone, kInput, kConst, kSlot, kDynamic, kView };

#ifdef ANVIL_HAVE_CUDA_BACKEND
// The constants and prepared blobs of an engine's CUDA steps on one device runtime, uploaded
// once and shared by every context of the engine on it (each context keeps its own arena,
// workspace, stream and staging). Freed with the last such context.
struct DeviceWeights {
  std::shared_ptr<cuda::DeviceRuntime> gpu;
  std::vector<void*> constants;                    // per value
  std::vector<std::vector<runtime::Blob>> blobs;   // per step
  std::vector<void*> owned;
  DeviceWeights() = default;
  DeviceWeights(const DeviceWeights&) = delete;
  DeviceWeights& operator=(const DeviceWeights&) = delete;
  ~DeviceWeights() {
    for (void* p : owned) {
      try {
        gpu->free(p);
      } catch (...) {  // a sticky error of the device: already reported by a run
      }
    }
  }
};
std::atomic<uint64_t> gDeviceWeightBytes{0};  // uploaded, process-wide (tests)
#endif

namespace detail {
// Bytes of constants and prepared blobs uploaded to devices by contexts of CUDA engines since
// the process started (runtime/engine_stats.h; tests check that contexts share them).
uint64_t deviceWeightBytesUploaded() {
#ifdef ANVIL_HAVE_CUDA_BACKEND
  return gDeviceWeightBytes.load();
#else
  return 0;
#endif
}
}  // namespace detail

struct Engine::Impl {
  runtime::EngineBytes bytes;
  runtime::Plan plan;  // graph (types inferred at the opt shapes), steps
  std::vector<TensorDesc> io;
  std::vector<const ir::Value*> values;  // main-graph values; index = position
  std::unordered_map<const ir::Value*, int> index;
  std::vector<ir::TensorType> declared;  // as stored (symbolic)
  std::vector<ir::TensorType> optTypes;  // at the opt shapes
  std::vector<ValueMode> mode;
  std::vector<runtime::ArenaSlot> slot;
  std::vector<ExecStep> steps;
  std::vector<int> inputIds, outputIds;  // graph inputs (not initializers) and outputs, in io() order
  std::vector<char> producedByKernel;    // value written by a non-view step (may go straight to the caller)
  uint64_t workspaceBytes = 0;
  size_t maxArity = 0;
  // CUDA engines: values in device memory, constants CUDA steps read (each context uploads
  // them), the device workspace.
  bool gpu = false;
  bool allGpu = false;  // every step that runs a kernel is a CUDA step (a CUDA graph can hold the run)
  std::vector<char> onDevice, constOnDevice;
  // Per value: a graph input or output a CUDA copy step reads or writes; the context stages
  // it through pinned host memory (the copies run asynchronously and can be captured).
  std::vector<char> staged;
  std::vector<char> boundaryCopy;  // per step: such a copy
  // Device bindings (MemoryLocation::kDevice), per input / output in io() order: the boundary
  // copy step of the value (-1: none) and the device value on its other side; whether a step
  // other than that copy reads the host value (then the context fills or drains it itself);
  // for outputs, whether the device value may simply live in the caller's buffer (a kernel
  // writes it into an arena slot of its own; else a device-to-device copy replaces the step).
  std::vector<int> inCopyStep, inCopyDev, outCopyStep, outCopyDev;
  std::vector<char> inHostRead, outHostRead, outRedirect;
  uint64_t deviceWorkspaceBytes = 0;
#ifdef ANVIL_HAVE_CUDA_BACKEND
  // The device runtime and uploaded weights its open contexts share: [0] the GPU, [1] the
  // simulator (ContextOptions::simulate).
  mutable std::mutex deviceMu;
  mutable std::weak_ptr<DeviceWeights> deviceWeights[2];
#endif

  int id(const ir::Value* v) const {
    auto it = index.find(v);
    return it == index.end() ? -1 : it->second;
  }
  int ioIndex(const std::string& name, bool* isInput) const {
    for (size_t i = 0; i < inputIds.size(); ++i)
      if (values[size_t(inputIds[i])]->name() == name) {
        *isInput = true;
        return int(i);
      }
    for (size_t i = 0; i < outputIds.size(); ++i)
      if (values[size_t(outputIds[i])]->name() == name) {
        *isInput = false;
        return int(i);
      }
    ANVIL_THROW(ErrorCode::kInvalidArgument, "the engine has no input or output named '", name, "'");
  }
};

Engine::Engine(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

namespace {

// Infers the main graph at the given input shapes and returns every value's type.
std::vector<ir::TensorType> inferTypes(ir::Graph& g, const std::vector<ir::TensorType>& declared,
                                       const std::map<std::string, std::vector<int64_t>>& shapes) {
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
  std::vector<ir::TensorType> out;
  for (const auto& v : g.values()) out.push_back(v->type());
  return out;
}

}  // namespace

static Status makeEngine(runtime::EngineBytes bytes, std::shared_ptr<Engine>* engine) {
  return guarded([&] {
    auto impl = std::make_shared<Engine::Impl>();
    impl->plan = runtime::deserializeEngine(bytes);
    impl->bytes = std::move(bytes);
    Engine::Impl& e = *impl;
    ir::Graph& g = *e.plan.graph;
    for (const auto& v : g.values()) {
      e.index[v.get()] = int(e.values.size());
      e.values.push_back(v.get());
      e.declared.push_back(v->type());
    }
    for (const ir::Value* v : g.inputs())
      if (!v->isInitializer()) {
        e.io.push_back({v->name(), DataType(int32_t(v->dtype())), descDims(v->shape()), true});
        e.inputIds.push_back(e.id(v));
      }
    for (const ir::Value* v : g.outputs()) {
      e.io.push_back({v->name(), DataType(int32_t(v->dtype())), descDims(v->shape()), false});
      e.outputIds.push_back(e.id(v));
    }
    const size_t nv = e.values.size();
    e.onDevice.assign(nv, 0);
    e.constOnDevice.assign(nv, 0);
    for (size_t i = 0; i < nv; ++i)
      e.onDevice[i] = e.values[i]->device() == ir::Device::kCUDA && !e.values[i]->isInitializer();
    e.mode.assign(nv, ValueMode::kNone);
    e.slot.assign(nv, {});
    e.producedByKernel.assign(nv, 0);
    for (size_t i = 0; i < nv; ++i) {
      if (e.values[i]->isInitializer()) e.mode[i] = ValueMode::kConst;
      auto it = e.plan.arena.find(e.values[i]);
      if (it != e.plan.arena.end()) {
        e.mode[i] = ValueMode::kSlot;
        e.slot[i] = it->second;
      }
    }
    for (int id : e.inputIds) e.mode[size_t(id)] = ValueMode::kInput;
    ANVIL_CHECK(e.plan.steps.size() == g.nodes().size(), ErrorCode::kInvalidEngine,
                "invalid engine: the plan has ", e.plan.steps.size(), " steps for ", g.nodes().size(), " nodes");
    for (const runtime::StepPlan& sp : e.plan.steps) {
      ExecStep st;
      st.plan = &sp;
      st.node = sp.node;
      const ir::Node& n = *g.nodes()[size_t(sp.node)];
      for (const ir::Value* v : sp.inputs) st.ins.push_back(v ? e.id(v) : -1);
      for (const ir::Value* v : sp.outputs) st.outs.push_back(v ? e.id(v) : -1);
      st.view = sp.kernel == "view";
      if (st.view) {
        ANVIL_CHECK(!st.ins.empty() && st.ins[0] >= 0 && !st.outs.empty() && st.outs[0] >= 0, ErrorCode::kInvalidEngine,
                    "invalid engine: ", n.label(), ": a view step needs input 0 and output 0");
        e.mode[size_t(st.outs[0])] = ValueMode::kView;
      } else {
        st.kernel = runtime::Kernels::instance().find(sp.device, n.op(), n.domain(), sp.kernel);
        ANVIL_CHECK(st.kernel != nullptr, ErrorCode::kInvalidEngine, "invalid engine: ", n.label(), " uses kernel '",
                    sp.kernel, "', which this runtime does not have (rebuild the engine)");
        ANVIL_CHECK(st.kernel->version == sp.kernelVersion, ErrorCode::kInvalidEngine, "invalid engine: ", n.label(),
                    " was built with kernel '", sp.kernel, "' version ", sp.kernelVersion, ", this runtime has version ",
                    st.kernel->version, " (rebuild the engine)");
        st.gpu = sp.device == Device::kCUDA;
        if (st.gpu) {
          // Its requirements concern the GPU: checked against the device when a context opens.
          ANVIL_CHECK(e.plan.device == "cuda" && runtime::cudaTargetMeets(sp.requirements, e.plan.computeCapability),
                      ErrorCode::kInvalidEngine, "invalid engine: ", n.label(), " is a CUDA step of kernel '", sp.kernel,
                      "' that the engine's target (sm_", e.plan.computeCapability, ") does not meet");
          const bool copy = n.op() == "Copy" && n.domain() == "anvil";
          for (size_t k = 0; k < st.ins.size(); ++k) {
            const int id = st.ins[k];
            if (id < 0) continue;
            // A packed input is read from the step's blobs, not the value: a constant only
            // packed steps read is not even stored in the engine (no longer an initializer).
            if (std::find(sp.packedInputs.begin(), sp.packedInputs.end(), int(k)) != sp.packedInputs.end()) continue;
            if (e.values[size_t(id)]->isInitializer()) {
              e.constOnDevice[size_t(id)] = 1;
            } else {
              ANVIL_CHECK(copy || e.onDevice[size_t(id)], ErrorCode::kInvalidEngine, "invalid engine: CUDA step ",
                          n.label(), " reads '", e.values[size_t(id)]->name(), "', which lives on the host");
            }
          }
        } else {
          const std::string missing = runtime::firstMissing(sp.requirements);
          ANVIL_CHECK(missing.empty(), ErrorCode::kInvalidEngine, "invalid engine: ", n.label(), " uses kernel '",
                      sp.kernel, "', which needs '", missing, "'; this host is ", runtime::hostCpuIsa());
          const bool shapeOnly = n.schema() && n.schema()->has(ir::kTraitShapeOnly);  // reads extents, not data
          for (int id : st.ins)
            ANVIL_CHECK(id < 0 || shapeOnly || !e.onDevice[size_t(id)], ErrorCode::kInvalidEngine,
                        "invalid engine: CPU step ", n.label(), " reads '", e.values[size_t(id)]->name(),
                        "', which lives on the GPU");
        }
        for (int o : st.outs)
          if (o >= 0) {
            e.producedByKernel[size_t(o)] = 1;
            // Only kernels that allocate their outputs at run time may write a value the
            // plan gave no arena slot (the builder plans one for every other output).
            ANVIL_CHECK(e.mode[size_t(o)] == ValueMode::kSlot || st.kernel->dynamicShapes, ErrorCode::kInvalidEngine,
                        "invalid engine: ", n.label(), ": output '", e.values[size_t(o)]->name(), "' of kernel '",
                        sp.kernel, "' has no arena slot");
            if (e.mode[size_t(o)] != ValueMode::kSlot) e.mode[size_t(o)] = ValueMode::kDynamic;
          }
      }
      if (st.gpu) {
        e.gpu = true;
        e.deviceWorkspaceBytes = std::max<uint64_t>(e.deviceWorkspaceBytes, sp.workspaceBytes);
      } else {
        e.workspaceBytes = std::max<uint64_t>(e.workspaceBytes, sp.workspaceBytes);
      }
      e.maxArity = std::max({e.maxArity, st.ins.size(), st.outs.size()});
      e.steps.push_back(std::move(st));
    }
    e.staged.assign(nv, 0);
    e.boundaryCopy.assign(e.steps.size(), 0);
    e.allGpu = e.gpu;
    {
      std::vector<char> isIo(nv, 0);
      for (int id : e.inputIds) isIo[size_t(id)] = 1;
      for (int id : e.outputIds) isIo[size_t(id)] = 1;
      std::vector<int> copyOf(nv, -1), copyInto(nv, -1);  // per value: the boundary copy reading / writing it
      for (size_t s = 0; s < e.steps.size(); ++s) {
        const ExecStep& st = e.steps[s];
        if (!st.view && !st.gpu) e.allGpu = false;
        const ir::Node& n = *g.nodes()[size_t(st.node)];
        if (!st.gpu || n.op() != "Copy" || n.domain() != "anvil") continue;
        for (int id : {st.ins[0], st.outs[0]})
          if (id >= 0 && isIo[size_t(id)] && !e.onDevice[size_t(id)]) {
            e.staged[size_t(id)] = 1;
            e.boundaryCopy[s] = 1;
            (id == st.ins[0] ? copyOf : copyInto)[size_t(id)] = int(s);
          }
      }
      // Readers of each value other than its boundary copy.
      std::vector<char> otherReader(nv, 0);
      for (size_t s = 0; s < e.steps.size(); ++s)
        for (int id : e.steps[s].ins)
          if (id >= 0 && copyOf[size_t(id)] != int(s)) otherReader[size_t(id)] = 1;
      for (int id : e.outputIds) otherReader[size_t(id)] |= e.mode[size_t(id)] == ValueMode::kInput;
      for (int id : e.inputIds) {
        const int s = copyOf[size_t(id)];
        e.inCopyStep.push_back(s);
        e.inCopyDev.push_back(s >= 0 ? e.steps[size_t(s)].outs[0] : -1);
        e.inHostRead.push_back(otherReader[size_t(id)]);
      }
      std::vector<int> graphOutputs(nv, 0);
      for (int id : e.outputIds) ++graphOutputs[size_t(id)];
      for (int id : e.outputIds) {
        const int s = copyInto[size_t(id)];
        const int dev = s >= 0 ? e.steps[size_t(s)].ins[0] : -1;
        e.outCopyStep.push_back(s);
        e.outCopyDev.push_back(dev);
        e.outHostRead.push_back(otherReader[size_t(id)] || graphOutputs[size_t(id)] > 1);
        e.outRedirect.push_back(dev >= 0 && e.mode[size_t(dev)] == ValueMode::kSlot && e.producedByKernel[size_t(dev)] &&
                                !isIo[size_t(dev)]);
      }
    }
    try {
      e.optTypes = inferTypes(g, e.declared, e.plan.optShapes);
    } catch (const Error& err) {
      // The plan passed its structural checks but does not describe a consistent graph.
      ANVIL_THROW(ErrorCode::kInvalidEngine, "invalid engine: ", err.what());
    }
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

InputProfile Engine::profile(const std::string& input) const {
  InputProfile p;
  auto get = [&](const std::map<std::string, std::vector<int64_t>>& m) {
    auto it = m.find(input);
    return it == m.end() ? std::vector<int64_t>{} : it->second;
  };
  p.min = get(impl_->plan.minShapes);
  p.opt = get(impl_->plan.optShapes);
  p.max = get(impl_->plan.maxShapes);
  return p;
}

std::vector<LayerInfo> Engine::layers() const {
  std::vector<LayerInfo> out;
  const ir::Graph& g = *impl_->plan.graph;
  for (const runtime::StepPlan& sp : impl_->plan.steps) {
    const ir::Node& n = *g.nodes()[size_t(sp.node)];
    LayerInfo li;
    li.name = n.name().empty() ? n.op() + "_" + std::to_string(sp.node) : n.name();
    li.type = n.domain().empty() ? n.op() : n.domain() + "." + n.op();
    li.tactic = sp.kernel;
    li.tacticVersion = sp.kernelVersion;
    li.precision = n.precision() != DataType::kUndefined ? ir::dtypeName(n.precision())
                   : sp.precision != DataType::kUndefined ? ir::dtypeName(sp.precision)
                   : n.numOutputs()                       ? ir::dtypeName(n.output(0)->dtype())
                                                          : "";
    li.device = sp.device == Device::kCUDA ? "cuda" : "cpu";
    li.timed = sp.timed;
    li.untimed = sp.untimed;
    li.candidates = sp.candidates;
    li.tasks = sp.tasks;
    li.workspaceBytes = sp.workspaceBytes;
    for (const runtime::Blob& b : sp.blobViews) li.preparedBytes += b.bytes;
    const ir::Attributes& tp = n.tacticParams();
    li.precisionReason = tp.getString("precision_reason", "");
    li.kappaMedian = tp.getFloat("kappa_median", -1.0f);
    li.kappaP99 = tp.getFloat("kappa_p99", -1.0f);
    li.kappaMax = tp.getFloat("kappa_max", -1.0f);
    li.predictedError = tp.getFloat("predicted_error", -1.0f);
    li.kappaNormwise = tp.getFloat("kappa_normwise", -1.0f);
    li.measuredError = tp.getFloat("measured_error", -1.0f);
    if (n.numInputs() && n.input(0) && n.input(0)->quantization() && n.input(0)->quantization()->perTensor()) {
      const ir::Quantization& q = *n.input(0)->quantization();
      li.inputScale = float(q.scale.getDouble(0));
      li.inputZeroPoint = q.zeroPoint.defined() ? int(q.zeroPoint.getInt(0)) : 0;
    }
    for (const ir::Value* v : n.inputs()) li.inputs.push_back(v ? v->name() : "");
    for (const ir::Value* v : n.outputs()) {
      li.outputs.push_back(v->name());
      li.outputLayouts.push_back(ir::layoutName(v->layout()));
      li.outputTypes.push_back(ir::dtypeName(v->dtype()));
      const bool q = v->isLowered() && v->quantization()->perTensor();
      li.outputScales.push_back(q ? float(v->quantization()->scale.getDouble(0)) : 0.0f);
      li.outputZeroPoints.push_back(q && v->quantization()->zeroPoint.defined() ? int(v->quantization()->zeroPoint.getInt(0)) : 0);
    }
    out.push_back(std::move(li));
  }
  return out;
}

uint64_t Engine::peakActivationBytes() const { return impl_->plan.peakArenaBytes; }

std::string Engine::target() const {
  const runtime::Plan& p = impl_->plan;
  const std::string gpu = p.computeCapability ? " sm_" + std::to_string(p.computeCapability) + " +" : "";
  return p.device + gpu + " " + p.buildIsa + (p.isaRequired.empty() ? "" : " (needs " + p.isaRequired + ")");
}

// ---- ExecutionContext --------------------------------------------------------------------

namespace {

// 64-byte-aligned heap bytes that only grow.
struct Buffer {
  uint8_t* p = nullptr;
  size_t cap = 0;
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(p); }
  uint8_t* reserve(size_t bytes) {
    if (bytes > cap) {
      void* q = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
      ANVIL_CHECK(q != nullptr, ErrorCode::kRuntimeError, "cannot allocate ", bytes, " bytes");
      std::free(p);
      p = static_cast<uint8_t*>(q);
      cap = (bytes + 63) / 64 * 64;
    }
    return p;
  }
};

}  // namespace

struct ExecutionContext::Impl final : runtime::DynamicOutputs {
  std::shared_ptr<const Engine::Impl> engine;
  std::unique_ptr<runtime::Executor> exec;
  std::vector<runtime::TensorView> views;  // per value
  std::vector<ir::TensorType> types;       // per value at the current input shapes
  std::vector<char> runtimeExtents;        // per value: extents known only when produced
  std::map<std::string, std::vector<int64_t>> shapes;
  std::vector<void*> inputAddr, outputAddr;
  std::vector<char> inputOnDevice, outputOnDevice;  // bound with MemoryLocation::kDevice
  std::vector<OutputAllocator*> allocators;
  std::vector<int> outputIndexOf;          // per value: index in outputIds or -1
  bool shapesDirty = false, bindDirty = true;
  Buffer arena, workspace;
  std::vector<std::unique_ptr<Buffer>> dynamicStore;  // per value, for run-time extents
  std::vector<ir::Tensor> stringStore;               // per value, for string tensors
  std::vector<std::unique_ptr<Buffer>> overflow;      // per value, when a shape outgrew its slot
  std::unique_ptr<runtime::Plan> privatePlan;         // a graph of its own once shapes leave opt
  std::vector<const ir::Node*> nodes;                 // per step: the node kernels see
  std::vector<runtime::TensorView> stepIns, stepOuts;
  const ExecStep* current = nullptr;
  Profiler profiler;
  std::vector<void*> stepState;  // per step: its kernel's open() result (per-context state)

  void openSteps() {
    const Engine::Impl& en = e();
    stepState.assign(en.steps.size(), nullptr);
    for (size_t s = 0; s < en.steps.size(); ++s) {
      const ExecStep& st = en.steps[s];
      if (st.view || !st.kernel->open) continue;
      runtime::OpenArgs oa;
      oa.node = en.plan.graph->nodes()[size_t(st.node)].get();
      oa.params = st.plan->paramsView;
      oa.blobs = st.plan->blobViews.data();
      oa.numBlobs = int(st.plan->blobViews.size());
#ifdef ANVIL_HAVE_CUDA_BACKEND
      oa.device = st.gpu ? gpu.get() : nullptr;
#endif
      stepState[s] = st.kernel->open(oa);
    }
  }

  void closeSteps() {
    const Engine::Impl& en = e();
    for (size_t s = 0; s < stepState.size(); ++s)
      if (stepState[s] && en.steps[s].kernel->close) {
        try {
          en.steps[s].kernel->close(stepState[s], deviceRuntime());
        } catch (...) {  // closing must not throw out of a destructor
        }
      }
    stepState.clear();
  }

  cuda::DeviceRuntime* deviceRuntime() const {
#ifdef ANVIL_HAVE_CUDA_BACKEND
    return gpu.get();
#else
    return nullptr;
#endif
  }
#ifndef ANVIL_HAVE_CUDA_BACKEND
  ~Impl() override { closeSteps(); }
#endif

#ifdef ANVIL_HAVE_CUDA_BACKEND
  // CUDA engines: the device runtime (a GPU, or the simulator), one stream, the device
  // arena and workspace, the uploaded constants and prepared blobs of the CUDA steps.
  std::shared_ptr<cuda::DeviceRuntime> gpu;  // shared with the engine's other contexts on it
  std::shared_ptr<const DeviceWeights> weights;
  cuda::Stream stream;
  uint8_t* devArena = nullptr;
  void* devWorkspace = nullptr;
  const std::vector<void*>* devConst = nullptr;                     // weights->constants
  const std::vector<std::vector<runtime::Blob>>* devBlobs = nullptr;  // weights->blobs
  std::vector<void*> devOverflow;                  // per value, when a shape outgrew its slot
  std::vector<void*> devOwned;
  std::vector<void*> staging;        // per value: pinned host memory of a staged input or output
  std::vector<size_t> stagingBytes;
  bool pending = false;  // work queued on the stream since the last synchronize
  bool inFlight = false;  // an enqueued run may still be running on inFlightStream
  cuda::Stream inFlightStream;
  ContextOptions options;
  cuda::Graph graph;     // the captured run (--useCudaGraph)
  bool graphValid = false;
  cuda::Stream active;   // the stream this run is queued on: `stream`, or an adopted caller's
  std::vector<std::pair<void*, cuda::Stream>> adopted;  // caller streams (enqueue) and their handles
  // Device bindings, decided by bind(): boundary copies no longer needed (skipped), those
  // replaced by a device-to-device copy into the caller's buffer (per step: its destination),
  // device-bound inputs a CPU layer reads (copied into host memory when a run starts) and
  // device-bound outputs left in host memory (copied to the caller's buffer when it ends).
  std::vector<char> skipStep;
  std::vector<void*> deviceCopyTo;
  std::vector<int> inputsToHost, outputsToDevice;  // io indices
  bool deviceBindingsChanged = false;  // a captured graph holds the old pointers
  std::vector<void*> userDevice;       // allocateDevice
  cuda::Event stepStart, stepEnd;  // per-layer timing of CUDA steps
  // Staged outputs to copy into the caller's buffers at the end of a queued run: done by a
  // host function in stream order (enqueue), so the call need not wait.
  struct OutputCopy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  std::vector<OutputCopy> outputCopies;
  size_t outputCopyCount = 0;

  static void copyOutputs(void* user) {
    auto* self = static_cast<Impl*>(user);
    for (size_t i = 0; i < self->outputCopyCount; ++i) {
      const OutputCopy& c = self->outputCopies[i];
      std::memcpy(c.dst, c.src, c.bytes);
    }
  }

  void drain() {
    if (options.spinWait) {
      while (!gpu->query(active)) {
      }
    } else {
      gpu->synchronize(active);
    }
    pending = false;
  }

  ~Impl() override {
    closeSteps();
    if (!gpu) return;
    try {
      gpu->destroyStream(stream);
      for (auto& [native, handle] : adopted) gpu->destroyStream(handle);
    } catch (...) {  // a sticky error of the last run: already reported by run()
    }
    gpu->destroyEvent(stepStart);
    gpu->destroyEvent(stepEnd);
    if (graphValid) gpu->destroyGraph(graph);
    for (void* p : devOwned) gpu->free(p);
    for (void* p : userDevice) gpu->free(p);
    for (void* p : devOverflow) gpu->free(p);
    for (void* p : staging) gpu->freeHost(p);
  }

  void* deviceAllocate(size_t bytes) {
    void* p = gpu->allocate(std::max<size_t>(bytes, 256));
    devOwned.push_back(p);
    return p;
  }

  // Opens the device the engine's CUDA steps run on and loads their constants and blobs.
  void openDevice(const ContextOptions& o) {
    const Engine::Impl& en = e();
    options = o;
    const bool simulate = o.simulate;
    staging.assign(en.values.size(), nullptr);
    stagingBytes.assign(en.values.size(), 0);
    const int cc = en.plan.computeCapability;
    auto ccStr = [](int c) { return std::to_string(c / 10) + "." + std::to_string(c % 10); };
    std::lock_guard<std::mutex> lock(en.deviceMu);
    std::shared_ptr<DeviceWeights> shared = en.deviceWeights[simulate].lock();
    if (shared) {
      gpu = shared->gpu;
    } else if (simulate) {
      gpu = cuda::simRuntime();
    } else {
      const int gpus = cuda::deviceCount();
      ANVIL_CHECK(gpus > 0, ErrorCode::kUnsupported, "this engine needs a GPU with compute capability ", ccStr(cc),
                  " (built for sm_", cc, "), and this machine has none; run it there, or with --simulate "
                  "(ContextOptions::simulate) to execute it on the CPU through the CUDA simulator");
      const cuda::ComputeCapability have = cuda::computeCapability(0);
      ANVIL_CHECK(have.major * 10 + have.minor == cc, ErrorCode::kUnsupported, "this engine needs a GPU with compute "
                  "capability ", ccStr(cc), " (built for sm_", cc, "); ", cuda::deviceName(0), " has ", have.major, ".",
                  have.minor, ": rebuild the engine for it");
      gpu = cuda::cudaRuntime(0);
    }
    stream = gpu->createStream();
    active = stream;
    stepStart = gpu->createEvent();
    stepEnd = gpu->createEvent();
    outputCopies.resize(en.outputIds.size());
    skipStep.assign(en.steps.size(), 0);
    deviceCopyTo.assign(en.steps.size(), nullptr);
    devArena = static_cast<uint8_t*>(deviceAllocate(en.plan.peakDeviceArenaBytes));
    devWorkspace = deviceAllocate(en.deviceWorkspaceBytes);
    devOverflow.assign(en.values.size(), nullptr);
    if (!shared) {
      shared = std::make_shared<DeviceWeights>();
      shared->gpu = gpu;
      auto upload = [&](const void* data, size_t bytes) {
        void* p = gpu->allocate(std::max<size_t>(bytes, 256));
        shared->owned.push_back(p);
        if (bytes) gpu->copy(p, data, bytes, cuda::CopyKind::kHostToDevice);
        gDeviceWeightBytes += bytes;
        return p;
      };
      shared->constants.assign(en.values.size(), nullptr);
      for (size_t i = 0; i < en.values.size(); ++i) {
        if (!en.constOnDevice[i]) continue;
        const ir::Tensor* t = en.values[i]->initializer();
        shared->constants[i] = upload(t->raw(), t->nbytes());
      }
      shared->blobs.resize(en.steps.size());
      for (size_t s = 0; s < en.steps.size(); ++s) {
        if (!en.steps[s].gpu) continue;
        for (const runtime::Blob& b : en.steps[s].plan->blobViews) shared->blobs[s].push_back({upload(b.data, b.bytes), b.bytes});
      }
      en.deviceWeights[simulate] = shared;
    }
    weights = shared;
    devConst = &shared->constants;
    devBlobs = &shared->blobs;
  }
#endif

  const Engine::Impl& e() const { return *engine; }

  // A run still queued (enqueue) reads the staging, arena and bindings that the next run or
  // a change of shapes reuses: wait for it first.
  void settle() {
#ifdef ANVIL_HAVE_CUDA_BACKEND
    if (inFlight) {
      gpu->synchronize(inFlightStream);
      inFlight = false;
    }
#endif
  }

  void applyShapes() {
    settle();
    const Engine::Impl& en = e();
    if (shapes == en.plan.optShapes) {
      types = en.optTypes;
    } else {
      if (!privatePlan) {
        privatePlan = std::make_unique<runtime::Plan>(runtime::deserializeEngine(en.bytes));
        for (size_t i = 0; i < nodes.size(); ++i)
          nodes[i] = privatePlan->graph->nodes()[size_t(en.steps[i].node)].get();
      }
      types = inferTypes(*privatePlan->graph, en.declared, shapes);
    }
    const size_t nv = en.values.size();
    for (size_t i = 0; i < nv; ++i) {
      runtime::TensorView& v = views[i];
      v.dtype = types[i].dtype;
      // Inputs and constants always have extents (strings too); produced strings and values
      // whose extents depend on data learn them when their step runs.
      const bool known = types[i].shape.isStatic() && types[i].dtype != DataType::kUndefined;
      const bool given = en.mode[i] == ValueMode::kInput || en.mode[i] == ValueMode::kConst;
      runtimeExtents[i] = en.mode[i] == ValueMode::kDynamic || (!known && en.mode[i] != ValueMode::kNone && !given);
      if (known) v.setExtents(types[i].shape.extents());
      else v.rank = -1;
      if (en.mode[i] == ValueMode::kSlot) {
        ANVIL_CHECK(known, ErrorCode::kInternal, "value '", en.values[i]->name(), "' has a planned slot but type ",
                    types[i].str());
        // A blocked value (NCHW<b>c) takes more than its logical bytes.
        const size_t need = ir::storageBytes(v.dtype, ir::storageElements(en.values[i]->layout(), v.extents()));
#ifdef ANVIL_HAVE_CUDA_BACKEND
        if (en.onDevice[i]) {
          if (devOverflow[i]) gpu->free(devOverflow[i]);
          devOverflow[i] = need > en.slot[i].bytes ? gpu->allocate(need) : nullptr;
          continue;
        }
#endif
        if (need > en.slot[i].bytes) {
          // A profile shape that needs more than the max-shape plan (a non-monotone op):
          // this value gets memory of its own.
          if (!overflow[i]) overflow[i] = std::make_unique<Buffer>();
          overflow[i]->reserve(need);
        } else {
          overflow[i].reset();
        }
      }
    }
#ifdef ANVIL_HAVE_CUDA_BACKEND
    if (gpu) {
      for (size_t i = 0; i < nv; ++i) {
        if (!en.staged[i]) continue;
        const size_t need = std::max<size_t>(views[i].bytes(), 64);
        if (need > stagingBytes[i]) {
          if (staging[i]) gpu->freeHost(staging[i]);
          staging[i] = gpu->allocateHost(need);
          stagingBytes[i] = need;
        }
      }
      if (graphValid) {  // extents are arguments of the captured launches
        gpu->destroyGraph(graph);
        graphValid = false;
      }
    }
#endif
    shapesDirty = false;
    bindDirty = true;
  }

  void bind() {
    const Engine::Impl& en = e();
    for (size_t i = 0; i < en.values.size(); ++i) {
      runtime::TensorView& v = views[i];
      switch (en.mode[i]) {
        case ValueMode::kConst: {
          const ir::Tensor* t = en.values[i]->initializer();
          v.data = t ? const_cast<void*>(t->raw()) : nullptr;
          break;
        }
        case ValueMode::kSlot:
#ifdef ANVIL_HAVE_CUDA_BACKEND
          if (en.onDevice[i]) {
            v.data = devOverflow[i] ? devOverflow[i] : devArena + en.slot[i].offset;
            break;
          }
#endif
          v.data = overflow[i] ? overflow[i]->p : arena.p + en.slot[i].offset;
          break;
        default:
          break;
      }
    }
    for (size_t k = 0; k < en.inputIds.size(); ++k) views[size_t(en.inputIds[k])].data = inputAddr[k];
    for (size_t k = 0; k < en.outputIds.size(); ++k) {
      const int id = en.outputIds[k];
      if (outputAddr[k] && !outputOnDevice[k] && en.mode[size_t(id)] == ValueMode::kSlot &&
          en.producedByKernel[size_t(id)])
        views[size_t(id)].data = outputAddr[k];
    }
#ifdef ANVIL_HAVE_CUDA_BACKEND
    for (size_t i = 0; gpu && i < en.values.size(); ++i)
      if (en.staged[i]) views[i].data = staging[i];  // run() copies between them and the caller's buffers
    if (gpu) bindDevice();
#endif
    bindDirty = false;
  }

#ifdef ANVIL_HAVE_CUDA_BACKEND
  // Pinned host memory of at least `bytes` for value i (its staging, grown if need be).
  void* hostMemory(size_t i, size_t bytes) {
    bytes = std::max<size_t>(bytes, 64);
    if (bytes > stagingBytes[i]) {
      if (staging[i]) gpu->freeHost(staging[i]);
      staging[i] = nullptr;
      staging[i] = gpu->allocateHost(bytes);
      stagingBytes[i] = bytes;
    }
    return staging[i];
  }

  // Points the device side of each device-bound input and output at the caller's buffer and
  // decides which boundary copies go (see skipStep).
  void bindDevice() {
    const Engine::Impl& en = e();
    std::fill(skipStep.begin(), skipStep.end(), 0);
    std::fill(deviceCopyTo.begin(), deviceCopyTo.end(), nullptr);
    inputsToHost.clear();
    outputsToDevice.clear();
    for (size_t k = 0; k < en.inputIds.size(); ++k) {
      if (!inputOnDevice[k]) continue;
      const size_t id = size_t(en.inputIds[k]);
      checkDeviceBuffer("input", id, inputAddr[k], views[id].bytes());
      const int s = en.inCopyStep[k];
      if (s >= 0) {
        skipStep[size_t(s)] = 1;
        views[size_t(en.inCopyDev[k])].data = inputAddr[k];
      }
      if (s < 0 || en.inHostRead[k]) {  // a CPU layer reads it: the run starts with a copy to the host
        views[id].data = hostMemory(id, views[id].bytes());
        inputsToHost.push_back(int(k));
      }
    }
    for (size_t k = 0; k < en.outputIds.size(); ++k) {
      if (!outputOnDevice[k]) continue;
      const size_t id = size_t(en.outputIds[k]);
      ANVIL_CHECK(!runtimeExtents[id], ErrorCode::kUnsupported, "output '", en.values[id]->name(),
                  "' has a size known only at run time and cannot be bound on the device: bind it on the host "
                  "with an OutputAllocator");
      checkDeviceBuffer("output", id, outputAddr[k], views[id].bytes());
      const int s = en.outCopyStep[k];
      if (s >= 0 && !en.outHostRead[k]) {
        skipStep[size_t(s)] = 1;
        if (en.outRedirect[k]) views[size_t(en.outCopyDev[k])].data = outputAddr[k];
        else deviceCopyTo[size_t(s)] = outputAddr[k];
      } else {  // made on the CPU (or read there too): copied to the caller's buffer at the end
        outputsToDevice.push_back(int(k));
      }
    }
  }

  // A device-bound buffer must be memory of this context's device runtime: checked when the
  // bindings or shapes change, not on every run (a pointer freed later is the sim's launch
  // range check's to catch, as a sticky error of the run).
  void checkDeviceBuffer(const char* kind, size_t id, const void* p, size_t bytes) {
    if (!bytes) return;
    ANVIL_CHECK(gpu->isDeviceMemory(p, bytes), ErrorCode::kInvalidArgument, kind, " '", e().values[id]->name(),
                "' is bound as device memory (MemoryLocation::kDevice), but ", p, " (", bytes,
                " bytes) is not memory of this context's device runtime (", gpu->name(),
                "): bind cudaMalloc memory of the engine's GPU, or, under simulate, memory from allocateDevice");
  }
#endif

  void* allocate(int output, DataType dtype, const int64_t* dims, int rank) override {
    const int id = current->outs[size_t(output)];
    ANVIL_CHECK(id >= 0, ErrorCode::kInternal, "allocate: output ", output, " is absent");
    runtime::TensorView& v = views[size_t(id)];
    v.dtype = dtype;
    v.setExtents(std::vector<int64_t>(dims, dims + rank));
    const size_t bytes = dtype == DataType::kString ? size_t(v.numel()) * sizeof(std::string) : v.bytes();
    const int outIndex = outputIndexOf[size_t(id)];
    if (dtype == DataType::kString && !(outIndex >= 0 && allocators[size_t(outIndex)])) {
      stringStore[size_t(id)] = ir::Tensor(DataType::kString, std::vector<int64_t>(dims, dims + rank));
      v.data = stringStore[size_t(id)].data<std::string>();
    } else if (outIndex >= 0 && allocators[size_t(outIndex)]) {
      // Strings: the caller's memory holds constructed std::string objects (see anvil.hpp).
      OutputAllocator* a = allocators[size_t(outIndex)];
      const char* name = e().values[size_t(id)]->name().c_str();
      void* p = a->reallocateOutput(name, outputAddr[size_t(outIndex)], std::max<uint64_t>(bytes, 1), 64);
      ANVIL_CHECK(p != nullptr, ErrorCode::kRuntimeError, "the output allocator of '", name, "' returned no memory for ",
                  bytes, " bytes");
      outputAddr[size_t(outIndex)] = p;
      a->notifyShape(name, v.extents());
      v.data = p;
    } else {
      if (!dynamicStore[size_t(id)]) dynamicStore[size_t(id)] = std::make_unique<Buffer>();
      v.data = dynamicStore[size_t(id)]->reserve(std::max<size_t>(bytes, 64));
    }
    stepOuts[size_t(output)] = v;
    return v.data;
  }

  // queued (enqueue): the run's end is not waited for; staged outputs reach the caller's
  // buffers through a host function in stream order.
  void run(bool queued = false) {
    settle();
    if (shapesDirty) applyShapes();
    if (bindDirty) bind();
    const Engine::Impl& en = e();
    for (size_t k = 0; k < en.inputIds.size(); ++k) {
      const runtime::TensorView& v = views[size_t(en.inputIds[k])];
      ANVIL_CHECK(inputAddr[k] || v.numel() == 0, ErrorCode::kInvalidArgument, "input '",
                  en.values[size_t(en.inputIds[k])]->name(), "' has no buffer: call setTensorAddress");
    }
    for (size_t i = 0; i < views.size(); ++i)
      if (runtimeExtents[i]) views[i].rank = -1;
#ifdef ANVIL_HAVE_CUDA_BACKEND
    bool anyRuntimeExtents = false;
    for (char r : runtimeExtents) anyRuntimeExtents |= r != 0;
    if (gpu && !options.noDataTransfers)
      for (size_t k = 0; k < en.inputIds.size(); ++k) {
        const size_t id = size_t(en.inputIds[k]);
        if (en.staged[id] && !inputOnDevice[k] && views[id].bytes())
          std::memcpy(staging[id], inputAddr[k], views[id].bytes());
      }
    if (gpu) {
      for (int k : inputsToHost) {  // device-bound inputs a CPU layer reads
        const size_t id = size_t(en.inputIds[size_t(k)]);
        gpu->copyAsync(views[id].data, inputAddr[size_t(k)], views[id].bytes(), cuda::CopyKind::kDeviceToHost, active);
        pending = true;
      }
      if (deviceBindingsChanged && graphValid) {  // the captured launches hold the old pointers
        gpu->destroyGraph(graph);
        graphValid = false;
      }
      deviceBindingsChanged = false;
    }
    if (gpu && options.useCudaGraph && en.allGpu && !profiler && !anyRuntimeExtents) {
      if (!graphValid) {
        gpu->beginCapture(active);
        try {
          enqueueSteps();
        } catch (...) {
          try {
            gpu->destroyGraph(gpu->endCapture(active));
          } catch (...) {
          }
          throw;
        }
        graph = gpu->endCapture(active);
        graphValid = true;
        pending = false;
      }
      gpu->launchGraph(graph, active);
      pending = true;
    } else {
      enqueueSteps();
    }
    for (int k : outputsToDevice) {  // device-bound outputs left in host memory (made on the CPU)
      const size_t id = size_t(en.outputIds[size_t(k)]);
      gpu->copyAsync(outputAddr[size_t(k)], views[id].data, views[id].bytes(), cuda::CopyKind::kHostToDevice, active);
      pending = true;
    }
    if (gpu && queued) {
      // Staged outputs by a host function after the run's copies; any other output
      // (made on the CPU) is copied here, after the GPU work it may follow.
      outputCopyCount = 0;
      bool others = false;
      for (size_t k = 0; k < en.outputIds.size(); ++k) {
        const size_t id = size_t(en.outputIds[k]);
        if (!outputAddr[k] || outputAddr[k] == views[id].data || outputOnDevice[k]) continue;
        if (en.staged[id] && !runtimeExtents[id]) {
          if (!options.noDataTransfers && views[id].bytes())
            outputCopies[outputCopyCount++] = {outputAddr[k], views[id].data, views[id].bytes()};
        } else {
          others = true;
        }
      }
      if (outputCopyCount) gpu->launchHost(active, &Impl::copyOutputs, this);
      if (!others) {
        pending = false;  // the caller waits for the stream
        inFlight = true;
        inFlightStream = active;
        return;
      }
    }
    if (pending) drain();
#else
    enqueueSteps();
#endif
    finishOutputs();
  }

  // Runs (CPU) or enqueues (CUDA) every step in order.
  void enqueueSteps() {
    const Engine::Impl& en = e();
    using Clock = std::chrono::steady_clock;
    for (size_t s = 0; s < en.steps.size(); ++s) {
      const ExecStep& st = en.steps[s];
      if (st.view) {
        runtime::TensorView& out = views[size_t(st.outs[0])];
        out.data = views[size_t(st.ins[0])].data;
        if (profiler) {
          const ir::Node& n = *nodes[s];
          profiler({n.name().empty() ? n.op() + "_" + std::to_string(st.node) : n.name(), n.op(), "view", 0.0});
        }
        continue;
      }
#ifdef ANVIL_HAVE_CUDA_BACKEND
      // A host step reads what the device wrote (and may reuse host memory a queued copy
      // still reads): the stream drains first.
      if (!st.gpu && pending) drain();
      if (st.gpu && skipStep[s]) {  // a boundary copy a device binding made unneeded
        if (deviceCopyTo[s]) {
          const runtime::TensorView& src = views[size_t(st.ins[0])];
          gpu->copyAsync(deviceCopyTo[s], src.data, src.bytes(), cuda::CopyKind::kDeviceToDevice, active);
          pending = true;
        }
        continue;
      }
      if (st.gpu && options.noDataTransfers && en.boundaryCopy[s]) continue;
#endif
      for (size_t k = 0; k < st.ins.size(); ++k) stepIns[k] = st.ins[k] >= 0 ? views[size_t(st.ins[k])] : runtime::TensorView{};
      for (size_t k = 0; k < st.outs.size(); ++k)
        stepOuts[k] = st.outs[k] >= 0 ? views[size_t(st.outs[k])] : runtime::TensorView{};
      runtime::StepArgs a;
      a.node = nodes[s];
      a.inputs = stepIns.data();
      a.numInputs = int(st.ins.size());
      a.outputs = stepOuts.data();
      a.numOutputs = int(st.outs.size());
      a.params = st.plan->paramsView;
      a.blobs = st.plan->blobViews.data();
      a.numBlobs = int(st.plan->blobViews.size());
      a.workspace = workspace.p;
      a.workspaceBytes = workspace.cap;
      a.executor = exec.get();
      a.dynamic = this;
      a.state = stepState.empty() ? nullptr : stepState[s];
#ifdef ANVIL_HAVE_CUDA_BACKEND
      if (st.gpu) {
        for (size_t k = 0; k < st.ins.size(); ++k)
          if (st.ins[k] >= 0 && (*devConst)[size_t(st.ins[k])]) stepIns[k].data = (*devConst)[size_t(st.ins[k])];
        a.blobs = (*devBlobs)[s].data();
        a.workspace = devWorkspace;
        a.workspaceBytes = en.deviceWorkspaceBytes;
        a.device = gpu.get();
        a.stream = active.id;
        pending = true;
      }
#endif
      current = &st;
      if (profiler) {
        std::atomic<uint64_t> counters[2] = {0, 0};
        a.counters = counters;
        const auto t0 = Clock::now();
#ifdef ANVIL_HAVE_CUDA_BACKEND
        if (st.gpu) gpu->record(stepStart, active);
#endif
        st.kernel->run(a);
        double ms = 0;
#ifdef ANVIL_HAVE_CUDA_BACKEND
        if (st.gpu) {  // a CUDA step's time is its work on the stream, between events
          gpu->record(stepEnd, active);
          drain();
          ms = gpu->elapsedMs(stepStart, stepEnd);
        } else
#endif
          ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        const ir::Node& n = *nodes[s];
        LayerTiming t{n.name().empty() ? n.op() + "_" + std::to_string(st.node) : n.name(), n.op(), st.kernel->name, ms};
        t.recomputed = counters[0].load();
        t.components = counters[1].load();
        profiler(t);
      } else {
        st.kernel->run(a);
      }
      for (size_t k = 0; k < st.outs.size(); ++k)
        if (st.outs[k] >= 0 && views[size_t(st.outs[k])].rank < 0)
          ANVIL_THROW(ErrorCode::kInternal, nodes[s]->label(), ": kernel '", st.kernel->name,
                      "' did not produce output ", k);
    }
    current = nullptr;
  }

  void finishOutputs() {
    const Engine::Impl& en = e();
    // Outputs that did not land in the caller's buffer (views, inputs, constants, run-time extents).
    for (size_t k = 0; k < en.outputIds.size(); ++k) {
      const int id = en.outputIds[k];
      const runtime::TensorView& v = views[size_t(id)];
      void* dst = outputAddr[k];
      if (!dst || dst == v.data || outputOnDevice[k]) continue;
#ifdef ANVIL_HAVE_CUDA_BACKEND
      if (en.staged[size_t(id)] && options.noDataTransfers) continue;
#endif
      if (allocators[k] && runtimeExtents[size_t(id)]) continue;  // delivered through the allocator
      const std::string& name = en.values[size_t(id)]->name();
      ANVIL_CHECK(!runtimeExtents[size_t(id)] || v.dtype == DataType::kString, ErrorCode::kInvalidArgument,
                  "output '", name, "' has a size known only at run time: register an OutputAllocator "
                  "(setOutputAllocator) or read it with outputData()");
      if (v.dtype == DataType::kString) {
        const auto* src = v.as<std::string>();
        auto* out = static_cast<std::string*>(dst);
        for (int64_t i = 0; i < v.numel(); ++i) out[i] = src[i];
      } else if (v.bytes()) {
        std::memcpy(dst, v.data, v.bytes());
      }
    }
  }
};

ExecutionContext::ExecutionContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ExecutionContext::~ExecutionContext() = default;

Status Engine::createContext(std::unique_ptr<ExecutionContext>* context) const {
  return createContext(context, ContextOptions{});
}

Status Engine::createContext(std::unique_ptr<ExecutionContext>* context, const ContextOptions& options) const {
  return guarded([&] {
    auto impl = std::make_unique<ExecutionContext::Impl>();
    const Engine::Impl& en = *impl_;
    impl->engine = impl_;
    impl->exec = runtime::makeCpuExecutor(options.threads > 0 ? options.threads : cpuThreads());
    const size_t nv = en.values.size();
    impl->views.resize(nv);
    impl->runtimeExtents.assign(nv, 0);
    impl->dynamicStore.resize(nv);
    impl->stringStore.resize(nv);
    impl->overflow.resize(nv);
    impl->outputIndexOf.assign(nv, -1);
    for (size_t k = 0; k < en.outputIds.size(); ++k)
      if (impl->outputIndexOf[size_t(en.outputIds[k])] < 0) impl->outputIndexOf[size_t(en.outputIds[k])] = int(k);
    impl->inputAddr.assign(en.inputIds.size(), nullptr);
    impl->outputAddr.assign(en.outputIds.size(), nullptr);
    impl->inputOnDevice.assign(en.inputIds.size(), 0);
    impl->outputOnDevice.assign(en.outputIds.size(), 0);
    impl->allocators.assign(en.outputIds.size(), nullptr);
    impl->shapes = en.plan.optShapes;
    impl->arena.reserve(std::max<uint64_t>(en.plan.peakArenaBytes, 64));
    impl->workspace.reserve(std::max<uint64_t>(en.workspaceBytes, 64));
    impl->stepIns.resize(std::max<size_t>(en.maxArity, 1));
    impl->stepOuts.resize(std::max<size_t>(en.maxArity, 1));
    for (const ExecStep& st : en.steps) impl->nodes.push_back(en.plan.graph->nodes()[size_t(st.node)].get());
#ifdef ANVIL_HAVE_CUDA_BACKEND
    if (en.gpu) impl->openDevice(options);
    impl->openSteps();
#else
    ANVIL_CHECK(!en.gpu, ErrorCode::kUnsupported, "this engine has CUDA steps and this runtime has no CUDA backend");
    impl->openSteps();
#endif
    impl->applyShapes();
    *context = std::make_unique<ExecutionContext>(std::move(impl));
  });
}

Status ExecutionContext::setInputShape(const std::string& name, const std::vector<int64_t>& dims) {
  return guarded([&] {
    const Engine::Impl& en = impl_->e();
    bool isInput = false;
    en.ioIndex(name, &isInput);
    ANVIL_CHECK(isInput, ErrorCode::kInvalidArgument, "'", name, "' is an output; only input shapes can be set");
    const auto& mn = en.plan.minShapes.at(name);
    const auto& mx = en.plan.maxShapes.at(name);
    auto str = [](const std::vector<int64_t>& d) {
      std::string s;
      for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
      return s;
    };
    ANVIL_CHECK(dims.size() == mx.size(), ErrorCode::kShapeMismatch, "input '", name, "' has rank ", mx.size(),
                " (profile min ", str(mn), ", max ", str(mx), "), got ", dims.size(), " dims");
    for (size_t i = 0; i < dims.size(); ++i)
      ANVIL_CHECK(dims[i] >= mn[i] && dims[i] <= mx[i], ErrorCode::kShapeMismatch, "input '", name, "' dim ", i,
                  " is ", dims[i], ", outside the engine's profile [", mn[i], ", ", mx[i], "] (min ", str(mn),
                  ", max ", str(mx), "); rebuild with a wider --minShapes/--maxShapes");
    auto& cur = impl_->shapes[name];
    if (cur != dims) {
      cur = dims;
      impl_->shapesDirty = true;
    }
  });
}

Status ExecutionContext::setTensorAddress(const std::string& name, void* data) {
  return setTensorAddress(name, data, MemoryLocation::kHost);
}

Status ExecutionContext::setTensorAddress(const std::string& name, void* data, MemoryLocation where) {
  return guarded([&] {
    Impl& c = *impl_;
    bool isInput = false;
    const int k = c.e().ioIndex(name, &isInput);
    const bool device = where == MemoryLocation::kDevice;
    ANVIL_CHECK(!device || c.e().gpu, ErrorCode::kUnsupported, "setTensorAddress('", name,
                "', MemoryLocation::kDevice): this is a CPU engine, which reads and writes host memory only; "
                "device buffers need an engine built with --device=cuda");
    auto& slot = isInput ? c.inputAddr[size_t(k)] : c.outputAddr[size_t(k)];
    auto& onDevice = isInput ? c.inputOnDevice[size_t(k)] : c.outputOnDevice[size_t(k)];
    if (slot == data && bool(onDevice) == device) return;
#ifdef ANVIL_HAVE_CUDA_BACKEND
    if (device || onDevice) c.deviceBindingsChanged = true;
#endif
    slot = data;
    onDevice = device;
    c.bindDirty = true;
  });
}

#ifdef ANVIL_HAVE_CUDA_BACKEND
namespace {
cuda::DeviceRuntime& contextDevice(cuda::DeviceRuntime* gpu, const char* what) {
  ANVIL_CHECK(gpu != nullptr, ErrorCode::kUnsupported, what, ": this is a CPU engine, which has no device memory; "
              "device memory needs an engine built with --device=cuda");
  return *gpu;
}
}  // namespace
#endif

Status ExecutionContext::allocateDevice(size_t bytes, void** ptr) {
  return guarded([&] {
#ifdef ANVIL_HAVE_CUDA_BACKEND
    cuda::DeviceRuntime& d = contextDevice(impl_->gpu.get(), "allocateDevice");
    *ptr = d.allocate(std::max<size_t>(bytes, 1));
    impl_->userDevice.push_back(*ptr);
#else
    (void)bytes;
    (void)ptr;
    ANVIL_THROW(ErrorCode::kUnsupported, "allocateDevice: this runtime has no CUDA backend");
#endif
  });
}

Status ExecutionContext::freeDevice(void* ptr) {
  return guarded([&] {
    if (!ptr) return;
#ifdef ANVIL_HAVE_CUDA_BACKEND
    cuda::DeviceRuntime& d = contextDevice(impl_->gpu.get(), "freeDevice");
    auto& owned = impl_->userDevice;
    auto it = std::find(owned.begin(), owned.end(), ptr);
    ANVIL_CHECK(it != owned.end(), ErrorCode::kInvalidArgument, "freeDevice(", ptr,
                "): not memory this context's allocateDevice returned (or freed already)");
    impl_->settle();
    owned.erase(it);
    d.free(ptr);
#else
    ANVIL_THROW(ErrorCode::kUnsupported, "freeDevice: this runtime has no CUDA backend");
#endif
  });
}

Status ExecutionContext::copyToDevice(void* deviceDst, const void* hostSrc, size_t bytes) {
  return guarded([&] {
#ifdef ANVIL_HAVE_CUDA_BACKEND
    cuda::DeviceRuntime& d = contextDevice(impl_->gpu.get(), "copyToDevice");
    d.copyAsync(deviceDst, hostSrc, bytes, cuda::CopyKind::kHostToDevice, impl_->stream);
    d.synchronize(impl_->stream);
#else
    (void)deviceDst, (void)hostSrc, (void)bytes;
    ANVIL_THROW(ErrorCode::kUnsupported, "copyToDevice: this runtime has no CUDA backend");
#endif
  });
}

Status ExecutionContext::copyFromDevice(void* hostDst, const void* deviceSrc, size_t bytes) {
  return guarded([&] {
#ifdef ANVIL_HAVE_CUDA_BACKEND
    cuda::DeviceRuntime& d = contextDevice(impl_->gpu.get(), "copyFromDevice");
    d.copyAsync(hostDst, deviceSrc, bytes, cuda::CopyKind::kDeviceToHost, impl_->stream);
    d.synchronize(impl_->stream);
#else
    (void)hostDst, (void)deviceSrc, (void)bytes;
    ANVIL_THROW(ErrorCode::kUnsupported, "copyFromDevice: this runtime has no CUDA backend");
#endif
  });
}

Status ExecutionContext::setOutputAllocator(const std::string& name, OutputAllocator* allocator) {
  return guarded([&] {
    bool isInput = false;
    const int k = impl_->e().ioIndex(name, &isInput);
    ANVIL_CHECK(!isInput, ErrorCode::kInvalidArgument, "'", name, "' is an input; output allocators are for outputs");
    impl_->allocators[size_t(k)] = allocator;
  });
}

Status ExecutionContext::getTensorShape(const std::string& name, std::vector<int64_t>* dims) {
  return guarded([&] {
    const Engine::Impl& en = impl_->e();
    bool isInput = false;
    const int k = en.ioIndex(name, &isInput);
    if (impl_->shapesDirty) impl_->applyShapes();
    const int id = isInput ? en.inputIds[size_t(k)] : en.outputIds[size_t(k)];
    const runtime::TensorView& v = impl_->views[size_t(id)];
    if (v.rank >= 0) *dims = v.extents();
    else *dims = descDims(impl_->types[size_t(id)].shape);
  });
}

Status ExecutionContext::run() {
  return guarded([&] {
#ifdef ANVIL_HAVE_CUDA_BACKEND
    if (impl_->gpu) impl_->active = impl_->stream;
#endif
    impl_->run();
  });
}

Status ExecutionContext::enqueue(void* cudaStream) {
  return guarded([&] {
#ifdef ANVIL_HAVE_CUDA_BACKEND
    Impl& c = *impl_;
    if (c.gpu) {
      c.active = c.stream;
      if (cudaStream) {
        auto it = std::find_if(c.adopted.begin(), c.adopted.end(), [&](const auto& p) { return p.first == cudaStream; });
        if (it == c.adopted.end()) {
          c.adopted.push_back({cudaStream, c.gpu->adoptStream(cudaStream)});
          it = c.adopted.end() - 1;
        }
        c.active = it->second;
      }
      c.run(true);
      return;
    }
#endif
    ANVIL_CHECK(cudaStream == nullptr, ErrorCode::kInvalidArgument, "enqueue: a CPU engine has no CUDA stream");
    impl_->run();
  });
}

Status ExecutionContext::synchronize() {
  return guarded([&] {
#ifdef ANVIL_HAVE_CUDA_BACKEND
    Impl& c = *impl_;
    if (!c.gpu) return;
    c.gpu->synchronize(c.stream);
    for (auto& [native, handle] : c.adopted) c.gpu->synchronize(handle);
    c.inFlight = false;
#endif
  });
}

const void* ExecutionContext::outputData(const std::string& name) const {
  const Engine::Impl& en = impl_->e();
  for (size_t k = 0; k < en.outputIds.size(); ++k)
    if (en.values[size_t(en.outputIds[k])]->name() == name) return impl_->views[size_t(en.outputIds[k])].data;
  return nullptr;
}

void ExecutionContext::setProfiler(Profiler profiler) { impl_->profiler = std::move(profiler); }

uint64_t ExecutionContext::activationBytes() const { return impl_->engine->plan.peakArenaBytes; }

int ExecutionContext::threads() const { return impl_->exec->threads(); }

}  // namespace anvil
