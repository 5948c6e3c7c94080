// Kernel registry and the reference interpreter that executes graphs node by node.
#include "cpu/reference.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>

#include "cpu/kernels/families.h"

namespace anvil::cpu {

const Tensor& KernelContext::input(size_t i) const {
  if (!hasInput(i)) fail("input " + std::to_string(i) + " is required but absent");
  return *inputs_[i];
}

Tensor& KernelContext::allocOutput(size_t i, DataType dtype, std::vector<int64_t> dims) {
  if (i < slots_.size() && slots_[i].data && slots_[i].allocate && dtype != DataType::kString) {
    const size_t need = ir::storageBytes(dtype, ir::numelOf(dims));
    if (need <= slots_[i].bytes) {
      std::memset(slots_[i].data, 0, need);
      outputs_.at(i) = Tensor::wrapMutable(dtype, std::move(dims), slots_[i].data);
      return outputs_[i];
    }
  }
  outputs_.at(i) = Tensor(dtype, std::move(dims));
  return outputs_[i];
}

void KernelContext::fail(const std::string& message) const {
  ANVIL_THROW(ErrorCode::kRuntimeError, node_.label(), ": ", message);
}

KernelRegistry& KernelRegistry::instance() {
  static KernelRegistry* registry = [] {
    auto* r = new KernelRegistry();
    for (auto fn : kernels::kFamilies) fn(*r);
    return r;
  }();
  return *registry;
}

void KernelRegistry::add(const std::string& op, const std::string& domain, RefKernel kernel) {
  ANVIL_CHECK(kernels_.count({op, domain}) == 0, ErrorCode::kInternal, "kernel ", op, " registered twice");
  kernels_[{op, domain}] = std::move(kernel);
}

const RefKernel* KernelRegistry::find(const std::string& op, const std::string& domain) const {
  auto it = kernels_.find({op, domain});
  return it == kernels_.end() ? nullptr : &it->second;
}

std::vector<std::pair<std::string, std::string>> KernelRegistry::ops() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [key, k] : kernels_) out.emplace_back(key.second, key.first);
  return out;
}

namespace {

struct Env {
  std::unordered_map<const ir::Value*, Tensor> values;
  const Env* parent = nullptr;
  const Tensor* find(const ir::Value* v) const {
    for (const Env* e = this; e; e = e->parent) {
      auto it = e->values.find(v);
      if (it != e->values.end()) return &it->second;
    }
    return nullptr;
  }
};

void execGraph(const ir::Graph& g, Env& env, const ExecHooks* hooks = nullptr);

// A produced tensor must agree with what inference promised for its value.
void checkAgainstInferred(const ir::Node& node, const ir::Value& v, const Tensor& t) {
  const ir::TensorType& want = v.type();
  if (want.dtype != DataType::kUndefined && want.dtype != t.dtype())
    ANVIL_THROW(ErrorCode::kInternal, node.label(), ": output '", v.name(), "' is ", t.summary(),
                " but inference said ", want.str());
  if (!want.shape.admits(t.dims()))
    ANVIL_THROW(ErrorCode::kInternal, node.label(), ": output '", v.name(), "' is ", t.summary(),
                " but inference said ", want.str());
}

std::vector<Tensor> runNodeIn(const ir::Node& node, const std::vector<const Tensor*>& inputs, const Env* env,
                              const RefKernel* kernel = nullptr,
                              std::vector<KernelContext::Slot> slots = {}) {
  if (!kernel) kernel = KernelRegistry::instance().find(node.op(), node.domain());
  ANVIL_CHECK(kernel != nullptr, ErrorCode::kUnsupported, node.label(), ": no reference kernel for this op");
  SubgraphRunner runner = [env](const ir::Graph& body, const std::vector<Tensor>& ins) {
    Env child;
    child.parent = env;
    ANVIL_CHECK(ins.size() <= body.inputs().size(), ErrorCode::kRuntimeError, "subgraph '", body.name(),
                "' takes ", body.inputs().size(), " inputs, got ", ins.size());
    for (size_t i = 0; i < ins.size(); ++i) child.values[body.inputs()[i]] = ins[i];
    execGraph(body, child);
    std::vector<Tensor> outs;
    for (const ir::Value* o : body.outputs()) {
      const Tensor* t = child.find(o);
      ANVIL_CHECK(t != nullptr, ErrorCode::kRuntimeError, "subgraph '", body.name(), "' output '", o->name(),
                  "' was not computed");
      outs.push_back(*t);
    }
    return outs;
  };
  KernelContext ctx(node, inputs, runner);
  if (!slots.empty()) ctx.setOutputSlots(std::move(slots));
  try {
    (*kernel)(ctx);
  } catch (const Error& e) {
    std::string msg = e.what();
    if (msg.find(node.label()) == std::string::npos) msg = node.label() + ": " + msg;
    throw Error(e.code(), msg);
  } catch (const std::exception& e) {
    ANVIL_THROW(ErrorCode::kRuntimeError, node.label(), ": ", e.what());
  }
  return std::move(ctx.outputs());
}

void execGraph(const ir::Graph& g, Env& env, const ExecHooks* hooks) {
  for (const ir::Value* v : g.initializers())
    if (!env.values.count(v)) env.values[v] = *v->initializer();
  for (size_t index = 0; index < g.nodes().size(); ++index) {
    const ir::Node& node = *g.nodes()[index];
    std::vector<const Tensor*> ins;
    for (const ir::Value* in : node.inputs()) {
      if (!in || in->name().empty()) {
        ins.push_back(nullptr);
        continue;
      }
      const Tensor* t = env.find(in);
      ANVIL_CHECK(t != nullptr, ErrorCode::kInvalidModel, node.label(), ": input '", in->name(),
                  "' is not computed by any earlier node");
      ins.push_back(t);
    }
    const RefKernel* kernel = hooks && hooks->kernelFor ? hooks->kernelFor(index) : nullptr;
    std::vector<KernelContext::Slot> slots;
    if (hooks && hooks->slotsFor) slots = hooks->slotsFor(index);
    auto t0 = std::chrono::steady_clock::now();
    std::vector<Tensor> outs = runNodeIn(node, ins, &env, kernel, slots);
    for (size_t i = 0; i < node.numOutputs(); ++i) {
      const ir::Value* o = node.output(i);
      if (o->name().empty()) continue;
      ANVIL_CHECK(i < outs.size() && outs[i].defined(), ErrorCode::kInternal, node.label(),
                  ": kernel did not produce output ", i, " ('", o->name(), "')");
      if (!hooks || hooks->checkInferred) checkAgainstInferred(node, *o, outs[i]);
      // A planned output must live in its slot: views and heap results are copied in, so
      // the slot they came from may be reused once it is dead.
      if (i < slots.size() && slots[i].data && outs[i].raw() != slots[i].data &&
          outs[i].dtype() != DataType::kString && outs[i].nbytes() <= slots[i].bytes) {
        if (outs[i].nbytes()) std::memcpy(slots[i].data, outs[i].raw(), outs[i].nbytes());
        outs[i] = Tensor::wrapMutable(outs[i].dtype(), outs[i].dims(), slots[i].data);
      }
      env.values[o] = std::move(outs[i]);
    }
    if (hooks && hooks->onNodeDone)
      hooks->onNodeDone(index, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
}

}  // namespace

std::vector<Tensor> Interpreter::run(const ir::Graph& graph, const std::map<std::string, Tensor>& inputs,
                                     const ExecHooks* hooks) {
  Env env;
  for (const ir::Value* in : graph.inputs()) {
    auto it = inputs.find(in->name());
    if (it == inputs.end()) {
      ANVIL_CHECK(in->isInitializer(), ErrorCode::kInvalidArgument, "graph input '", in->name(),
                  "' was not given");
      continue;
    }
    const Tensor& t = it->second;
    const ir::TensorType& want = in->type();
    ANVIL_CHECK(want.dtype == DataType::kUndefined || want.dtype == t.dtype(), ErrorCode::kInvalidArgument,
                "input '", in->name(), "' is ", t.summary(), ", the model expects ", want.str());
    ANVIL_CHECK(want.shape.admits(t.dims()), ErrorCode::kShapeMismatch, "input '", in->name(), "' has shape ",
                ir::Shape::fromExtents(t.dims()).str(), ", the model expects ", want.shape.str());
    env.values[in] = t;
  }
  for (const auto& [name, t] : inputs) {
    bool known = false;
    for (const ir::Value* in : graph.inputs()) known |= in->name() == name;
    ANVIL_CHECK(known, ErrorCode::kInvalidArgument, "the model has no input named '", name, "'");
  }
  execGraph(graph, env, hooks);
  std::vector<Tensor> outs;
  for (const ir::Value* o : graph.outputs()) {
    const Tensor* t = env.find(o);
    ANVIL_CHECK(t != nullptr, ErrorCode::kInvalidModel, "graph output '", o->name(), "' is never computed");
    outs.push_back(*t);
  }
  return outs;
}

std::vector<Tensor> Interpreter::runNode(const ir::Node& node, const std::vector<const Tensor*>& inputs) {
  Env env;
  return runNodeIn(node, inputs, &env);
}

}  // namespace anvil::cpu

namespace anvil::cpu {

std::vector<Tensor> Interpreter::runNodeScoped(const ir::Node& node, const std::vector<const Tensor*>& inputs,
                                               const std::vector<std::pair<const ir::Value*, Tensor>>& outer,
                                               const RefKernel* kernel, std::vector<KernelContext::Slot> slots) {
  Env env;
  for (const auto& [v, t] : outer) env.values[v] = t;
  return runNodeIn(node, inputs, &env, kernel, std::move(slots));
}

namespace {
void collectGraphs(const ir::Graph& g, std::vector<const ir::Graph*>& out) {
  out.push_back(&g);
  for (const auto& n : g.nodes())
    for (const auto& [name, a] : n->attrs().all()) {
      if (const auto* sg = std::get_if<std::shared_ptr<ir::Graph>>(&a.value)) {
        if (*sg) collectGraphs(**sg, out);
      } else if (const auto* gs = std::get_if<std::vector<std::shared_ptr<ir::Graph>>>(&a.value)) {
        for (const auto& x : *gs)
          if (x) collectGraphs(*x, out);
      }
    }
}
}  // namespace

std::vector<const ir::Value*> outerScopeValues(const ir::Node& node) {
  std::vector<const ir::Graph*> inner;
  for (const auto& [name, a] : node.attrs().all()) {
    if (const auto* sg = std::get_if<std::shared_ptr<ir::Graph>>(&a.value)) {
      if (*sg) collectGraphs(**sg, inner);
    } else if (const auto* gs = std::get_if<std::vector<std::shared_ptr<ir::Graph>>>(&a.value)) {
      for (const auto& x : *gs)
        if (x) collectGraphs(*x, inner);
    }
  }
  std::vector<const ir::Value*> out;
  auto consider = [&](const ir::Value* v) {
    if (!v || v->name().empty()) return;
    if (std::find(inner.begin(), inner.end(), v->owner()) != inner.end()) return;
    if (std::find(out.begin(), out.end(), v) == out.end()) out.push_back(v);
  };
  for (const ir::Graph* g : inner) {
    for (const auto& n : g->nodes())
      for (const ir::Value* v : n->inputs()) consider(v);
    for (const ir::Value* v : g->outputs()) consider(v);
  }
  return out;
}

}  // namespace anvil::cpu
