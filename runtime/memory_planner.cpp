// Greedy-by-size arena planning and the lifetime analysis of a graph's node outputs.
#include "runtime/memory_planner.h"

#include <algorithm>
#include <numeric>
#include <unordered_map>

namespace anvil::runtime {

MemoryPlan planMemory(const std::vector<BufferRequest>& requests, size_t alignment) {
  MemoryPlan plan;
  plan.offsets.assign(requests.size(), 0);
  std::vector<size_t> order(requests.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return requests[a].bytes > requests[b].bytes; });
  struct Placed {
    size_t offset, end;
    int first, last;
  };
  std::vector<Placed> placed;
  for (size_t idx : order) {
    const BufferRequest& r = requests[idx];
    const size_t size = (r.bytes + alignment - 1) / alignment * alignment;
    // Buffers alive at the same time, by offset.
    std::vector<Placed> live;
    for (const Placed& p : placed)
      if (!(p.last < r.first || r.last < p.first)) live.push_back(p);
    std::sort(live.begin(), live.end(), [](const Placed& a, const Placed& b) { return a.offset < b.offset; });
    size_t offset = 0;
    for (const Placed& p : live) {
      if (offset + size <= p.offset) break;
      offset = std::max(offset, p.end);
    }
    plan.offsets[idx] = offset;
    placed.push_back({offset, offset + size, r.first, r.last});
    plan.peakBytes = std::max(plan.peakBytes, offset + size);
  }
  return plan;
}

namespace {
bool isViewOp(const ir::Node& n) {
  static const char* kViews[] = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"};
  if (!n.domain().empty()) return false;
  for (const char* v : kViews)
    if (n.op() == v) return true;
  return n.op() == "Dropout" && n.numOutputs() >= 1;
}

// Nodes that read v: direct inputs, or references from inside their subgraphs.
void collectUses(const ir::Graph& g, std::unordered_map<const ir::Value*, int>& last, int step) {
  for (const auto& n : g.nodes()) {
    for (const ir::Value* in : n->inputs())
      if (in) last[in] = std::max(last[in], step);
    for (const auto& [name, a] : n->attrs().all()) {
      (void)name;
      if (auto* sg = std::get_if<std::shared_ptr<ir::Graph>>(&a.value)) collectUses(**sg, last, step);
      if (auto* gs = std::get_if<std::vector<std::shared_ptr<ir::Graph>>>(&a.value))
        for (const auto& s : *gs) collectUses(*s, last, step);
    }
  }
  for (const ir::Value* o : g.outputs()) last[o] = std::max(last[o], step);
}
}  // namespace

namespace {
GraphMemory planGraph(const ir::Graph& graph, const ir::Device* only, size_t alignment) {
  const auto& nodes = graph.nodes();
  const int end = int(nodes.size());
  std::unordered_map<const ir::Value*, int> last;
  for (int i = 0; i < end; ++i) {
    const ir::Node& n = *nodes[size_t(i)];
    for (const ir::Value* in : n.inputs())
      if (in) last[in] = std::max(last[in], i);
    for (const auto& [name, a] : n.attrs().all()) {
      (void)name;
      if (auto* sg = std::get_if<std::shared_ptr<ir::Graph>>(&a.value)) collectUses(**sg, last, i);
      if (auto* gs = std::get_if<std::vector<std::shared_ptr<ir::Graph>>>(&a.value))
        for (const auto& s : *gs) collectUses(*s, last, i);
    }
  }
  for (const ir::Value* o : graph.outputs()) last[o] = end;  // kept until outputs are read

  // Buffers: one per non-view output; a view output joins its input's buffer.
  std::unordered_map<const ir::Value*, int> bufferOf;
  std::vector<BufferRequest> reqs;
  GraphMemory gm;
  gm.nodeOutputs.resize(nodes.size());
  for (int i = 0; i < end; ++i) {
    const ir::Node& n = *nodes[size_t(i)];
    gm.nodeOutputs[size_t(i)].resize(n.numOutputs());
    for (size_t k = 0; k < n.numOutputs(); ++k) {
      const ir::Value* o = n.output(k);
      if (o->name().empty() || !o->shape().isStatic() || o->dtype() == ir::DataType::kString ||
          o->dtype() == ir::DataType::kUndefined || (only && o->device() != *only))
        continue;
      const size_t bytes = ir::storageBytes(o->dtype(), ir::storageElements(o->layout(), o->shape().extents()));
      int lastUse = last.count(o) ? last[o] : i;
      if (k == 0 && isViewOp(n) && n.input(0) && bufferOf.count(n.input(0)) &&
          reqs[size_t(bufferOf[n.input(0)])].bytes == bytes) {
        int b = bufferOf[n.input(0)];
        reqs[size_t(b)].last = std::max(reqs[size_t(b)].last, lastUse);
        bufferOf[o] = b;
        continue;
      }
      bufferOf[o] = int(reqs.size());
      reqs.push_back({bytes, i, std::max(lastUse, i)});
    }
  }
  MemoryPlan mp = planMemory(reqs, alignment);
  gm.peakBytes = mp.peakBytes;
  for (int i = 0; i < end; ++i) {
    const ir::Node& n = *nodes[size_t(i)];
    for (size_t k = 0; k < n.numOutputs(); ++k) {
      auto it = bufferOf.find(n.output(k));
      if (it == bufferOf.end()) continue;
      auto& slot = gm.nodeOutputs[size_t(i)][k];
      slot.offset = int64_t(mp.offsets[size_t(it->second)]);
      slot.bytes = reqs[size_t(it->second)].bytes;
      slot.alias = k == 0 && isViewOp(n) && n.input(0) && bufferOf.count(n.input(0)) &&
                   bufferOf[n.input(0)] == it->second;
    }
  }
  return gm;
}
}  // namespace

GraphMemory planGraphMemory(const ir::Graph& graph) { return planGraph(graph, nullptr, 64); }

GraphMemory planGraphMemory(const ir::Graph& graph, ir::Device device, size_t alignment) {
  return planGraph(graph, &device, alignment);
}

}  // namespace anvil::runtime
