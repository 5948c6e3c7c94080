// See device_placement.h.
#include "codegen/device_placement.h"

#include <map>
#include <set>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "ir/layout.h"
#include "passes/graph_edit.h"

namespace anvil::codegen {

PlacementResult placeOnDevices(ir::Graph& g, const std::function<bool(const ir::Node&)>& onCuda,
                               const std::function<bool(const ir::Node&)>& isView) {
  PlacementResult r;
  for (const auto& v : g.values()) v->setDevice(ir::Device::kCPU);
  std::set<const ir::Value*> readBySubgraphs;
  for (const auto& n : g.nodes())
    for (const ir::Value* v : cpu::outerScopeValues(*n)) readBySubgraphs.insert(v);

  std::set<std::string> cpuOps;
  const std::vector<ir::Node*> nodes = [&] {
    std::vector<ir::Node*> out;
    for (const auto& n : g.nodes()) out.push_back(n.get());
    return out;
  }();
  for (ir::Node* n : nodes) {
    ir::Device d = ir::Device::kCPU;
    if (isView(*n)) {
      d = n->input(0)->device();
    } else {
      bool cuda = onCuda(*n);
      for (const ir::Value* o : n->outputs()) cuda &= !readBySubgraphs.count(o);
      d = cuda ? ir::Device::kCUDA : ir::Device::kCPU;
      ++(cuda ? r.cudaNodes : r.cpuNodes);
      if (!cuda) cpuOps.insert(n->domain().empty() ? n->op() : n->domain() + "." + n->op());
    }
    n->setDevice(d);
    for (ir::Value* o : n->outputs()) o->setDevice(d);
  }

  // One copy per value and direction, read by every node on the other side.
  std::map<std::pair<const ir::Value*, ir::Device>, ir::Value*> copies;
  auto copyOf = [&](ir::Value* v, ir::Device to) {
    auto key = std::make_pair(static_cast<const ir::Value*>(v), to);
    if (auto it = copies.find(key); it != copies.end()) return it->second;
    const std::string suffix = to == ir::Device::kCUDA ? "_to_cuda" : "_to_cpu";
    ir::Node* c = g.addNode("Copy", "anvil", passes::uniqueName(g, v->name() + suffix), {v},
                            {passes::uniqueName(g, v->name() + suffix)});
    c->attrs().set("to", std::string(ir::deviceName(to)));
    c->setDevice(ir::Device::kCUDA);  // both directions are CUDA steps: they need the device runtime
    ir::Value* out = c->output(0);
    out->setType(v->type());
    out->copyMetaFrom(*v);
    out->setDevice(to);
    ++r.copies;
    copies[key] = out;
    return out;
  };
  // Graph outputs are host memory (the caller's buffers): a result made on the GPU is
  // renamed and copied back into a host value of the output's name, which host readers
  // of the result then share.
  for (size_t i = 0; i < g.outputs().size(); ++i) {
    ir::Value* v = g.outputs()[i];
    if (v->device() != ir::Device::kCUDA) continue;
    const std::string name = v->name();
    g.renameValue(v, passes::uniqueName(g, name + "_cuda"));
    ir::Node* c = g.addNode("Copy", "anvil", passes::uniqueName(g, name + "_to_cpu"), {v}, {name});
    c->attrs().set("to", std::string("cpu"));
    c->setDevice(ir::Device::kCUDA);
    c->output(0)->setType(v->type());
    c->output(0)->copyMetaFrom(*v);
    c->output(0)->setDevice(ir::Device::kCPU);
    ++r.copies;
    copies[std::make_pair(static_cast<const ir::Value*>(v), ir::Device::kCPU)] = c->output(0);
    for (size_t j = i; j < g.outputs().size(); ++j)
      if (g.outputs()[j] == v) g.setOutput(j, c->output(0));
  }
  for (ir::Node* n : nodes) {
    if (isView(*n)) continue;
    // Shape and Size read only the extents of their input, never its data: no copy.
    if (n->schema() && n->schema()->has(ir::kTraitShapeOnly)) continue;
    for (size_t k = 0; k < n->numInputs(); ++k) {
      ir::Value* v = n->input(k);
      if (!v || v->isInitializer() || v->device() == n->device()) continue;
      n->setInput(k, copyOf(v, n->device()));
    }
  }
  g.topoSort();
  r.cpuOps.assign(cpuOps.begin(), cpuOps.end());
  return r;
}

}  // namespace anvil::codegen
