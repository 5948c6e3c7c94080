// The CPU backend's entry in the kernel registry (runtime/kernel.h): every op's reference
// kernel as the kernel "ref" (it also serves values whose extents are known only at run
// time), run through an adapter, and the native kernels of cpu/tactics
// (registerNativeCpuKernels).
#include <cstring>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "runtime/kernel.h"

namespace anvil::cpu {

namespace {

using runtime::StepArgs;
using runtime::TensorView;

ir::Tensor viewOf(const TensorView& v) {
  return ir::Tensor::view(v.dtype, v.extents(), nullptr, v.data);
}

// Runs a KernelContext kernel on a step's views: inputs are wrapped without copying,
// outer-scope values of subgraphs follow the node's own inputs (outerScopeValues), and
// the results are copied into the step's outputs (static ones planned by the runtime,
// dynamic ones allocated through args.dynamic). Allocates: it serves the reference path.
void runAdapted(const RefKernel& kernel, const StepArgs& a) {
  const ir::Node& node = *a.node;
  std::vector<ir::Tensor> held(size_t(a.numInputs));
  std::vector<const ir::Tensor*> ins(node.numInputs(), nullptr);
  for (int i = 0; i < a.numInputs; ++i)
    if (a.inputs[i].present()) held[size_t(i)] = viewOf(a.inputs[i]);
  for (size_t i = 0; i < node.numInputs() && int(i) < a.numInputs; ++i)
    if (a.inputs[i].present()) ins[i] = &held[i];
  std::vector<std::pair<const ir::Value*, ir::Tensor>> outer;
  if (node.schema() && node.schema()->has(ir::kTraitControlFlow)) {
    const auto values = outerScopeValues(node);
    for (size_t k = 0; k < values.size(); ++k) {
      const size_t idx = node.numInputs() + k;
      if (int(idx) < a.numInputs && a.inputs[idx].present()) outer.emplace_back(values[k], held[idx]);
    }
  }
  std::vector<ir::Tensor> outs = Interpreter::runNodeScoped(node, ins, outer, &kernel, {});
  for (int i = 0; i < a.numOutputs && size_t(i) < outs.size(); ++i) {
    TensorView& o = a.outputs[i];
    if (!o.present() || !outs[size_t(i)].defined()) continue;
    const ir::Tensor& t = outs[size_t(i)];
    if (o.rank < 0) {
      ANVIL_CHECK(a.dynamic != nullptr, ErrorCode::kInternal, node.label(), ": output ", i,
                  " has run-time extents but the runtime gave no allocator");
      a.dynamic->allocate(i, t.dtype(), t.dims().data(), int(t.rank()));
    } else {
      ANVIL_CHECK(t.dims() == o.extents() && t.dtype() == o.dtype, ErrorCode::kInternal, node.label(), ": output ",
                  i, " is ", t.summary(), " but the plan has ",
                  ir::TensorType{o.dtype, ir::Shape::fromExtents(o.extents())}.str());
    }
    if (t.dtype() == DataType::kString) {
      auto* dst = o.as<std::string>();
      for (int64_t k = 0; k < t.numel(); ++k) dst[k] = t.str(k);
    } else if (t.nbytes() && t.raw() != o.data) {
      std::memcpy(o.data, t.raw(), t.nbytes());
    }
  }
}

}  // namespace

}  // namespace anvil::cpu

namespace anvil::runtime {

void registerNativeCpuKernels(Kernels& k);  // cpu/tactics/native.cpp

void registerCpuKernels(Kernels& k) {
  for (const auto& [domain, op] : cpu::KernelRegistry::instance().ops()) {
    const cpu::RefKernel* ref = cpu::KernelRegistry::instance().find(op, domain);
    Kernel r;
    r.name = "ref";
    r.version = 1;
    r.op = op;
    r.domain = domain;
    r.precision = DataType::kUndefined;
    r.dynamicShapes = true;
    r.run = [ref](const StepArgs& a) { cpu::runAdapted(*ref, a); };
    k.add(std::move(r));
  }
  registerNativeCpuKernels(k);
}

}  // namespace anvil::runtime
