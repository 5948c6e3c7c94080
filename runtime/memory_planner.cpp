// Greedy-by-size arena planning and the lifetime analysis of a graph's node outputs, with
// views sharing their input's buffer and Concat inputs planned inside their Concat's output.
#include "runtime/memory_planner.h"

#include <algorithm>
#include <numeric>
#include <unordered_set>
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

bool concatInPlaceShape(const ir::Node& n) {
  if (n.op() != "Concat" || !n.domain().empty() || n.numOutputs() != 1 || n.inputs().empty()) return false;
  const ir::Value* y = n.output(0);
  if (!y || !y->shape().isStatic() || y->dtype() == ir::DataType::kString || y->dtype() == ir::DataType::kUndefined)
    return false;
  const std::vector<int64_t> yd = y->shape().extents();
  const int64_t rank = int64_t(yd.size());
  int64_t axis = n.attrs().getInt("axis", 0);
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return false;
  // Every extent before the axis 1: each input is then one contiguous run of the output.
  for (int64_t d = 0; d < axis; ++d)
    if (yd[size_t(d)] != 1) return false;
  const ir::Layout& ly = y->layout();
  const bool blocked = ly.family() == "NCHWc";
  if (!ly.isPlain() && !(blocked && ly.block() > 0 && rank == 4 && axis == 1)) return false;
  int64_t sum = 0;
  for (size_t i = 0; i < n.inputs().size(); ++i) {
    const ir::Value* x = n.input(i);
    if (!x || !x->shape().isStatic() || x->dtype() != y->dtype() || !(x->layout() == ly)) return false;
    const std::vector<int64_t> xd = x->shape().extents();
    if (int64_t(xd.size()) != rank) return false;
    for (int64_t d = 0; d < rank; ++d)
      if (d != axis && xd[size_t(d)] != yd[size_t(d)]) return false;
    // Blocked: whole channel blocks but for the last input (its padding is the output's).
    if (blocked && i + 1 < n.inputs().size() && xd[1] % ly.block() != 0) return false;
    sum += xd[size_t(axis)];
  }
  return sum == yd[size_t(axis)];
}

namespace {
GraphMemory planGraph(const ir::Graph& graph, const ir::Device* only, size_t alignment,
                      const std::unordered_set<const ir::Node*>* inPlaceConcats) {
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

  auto bytesOf = [](const ir::Value* v) {
    return ir::storageBytes(v->dtype(), ir::storageElements(v->layout(), v->shape().extents()));
  };
  // Concat inputs inside their Concat's output: value -> (the output, byte offset in it).
  // Only a top-level node's sole output of a value read by no view, once by the Concat,
  // not a graph output, not made by a view (it lies in its input's buffer) and not itself
  // a Concat's (no nesting): its producer then writes the slice directly and nothing else
  // can see the difference. Saves squeezenet's fire
  // modules their copy of both expand outputs (8 Concats, ~8% of its time).
  struct Inside {
    const ir::Value* whole;
    size_t offset;
  };
  std::unordered_map<const ir::Value*, Inside> inside;
  if (inPlaceConcats && !inPlaceConcats->empty()) {
    std::unordered_map<const ir::Value*, const ir::Node*> producer;
    std::unordered_set<const ir::Value*> excluded(graph.outputs().begin(), graph.outputs().end());
    for (const auto& np : nodes) {
      for (const ir::Value* o : np->outputs())
        if (o) producer[o] = np.get();
      if (isViewOp(*np) && np->input(0)) excluded.insert(np->input(0));
    }
    for (const auto& np : nodes) {
      const ir::Node& c = *np;
      if (!inPlaceConcats->count(&c) || !concatInPlaceShape(c)) continue;
      if (only && c.output(0)->device() != *only) continue;
      size_t offset = 0;
      for (size_t k = 0; k < c.inputs().size(); ++k) {
        const ir::Value* x = c.input(k);
        const auto p = producer.find(x);
        // At an aligned offset only: kernels may count on the arena's alignment.
        bool ok = offset % alignment == 0 && p != producer.end() && !excluded.count(x) && !inside.count(x) &&
                  p->second->op() != "Concat" && !isViewOp(*p->second) && p->second->numOutputs() == 1 &&
                  (!only || x->device() == *only) && !x->name().empty();
        for (size_t j = 0; j < c.inputs().size() && ok; ++j) ok = j == k || c.input(j) != x;
        if (ok) inside[x] = {c.output(0), offset};
        offset += bytesOf(x);
      }
    }
  }

  // Buffers: one per non-view output; a view output joins its input's buffer; a Concat
  // input inside its output joins the output's, made at the first such input's producer.
  std::unordered_map<const ir::Value*, int> bufferOf;
  std::unordered_map<const ir::Value*, size_t> subOffset;
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
      const size_t bytes = bytesOf(o);
      int lastUse = last.count(o) ? last[o] : i;
      if (const auto in = inside.find(o); in != inside.end()) {
        auto w = bufferOf.find(in->second.whole);
        if (w == bufferOf.end()) {
          w = bufferOf.emplace(in->second.whole, int(reqs.size())).first;
          reqs.push_back({bytesOf(in->second.whole), i, i});
        }
        reqs[size_t(w->second)].last = std::max(reqs[size_t(w->second)].last, lastUse);
        bufferOf[o] = w->second;
        subOffset[o] = in->second.offset;
        ++gm.concatInputsInPlace;
        continue;
      }
      if (const auto w = bufferOf.find(o); w != bufferOf.end()) {  // an in-place Concat's output
        reqs[size_t(w->second)].last = std::max(reqs[size_t(w->second)].last, std::max(lastUse, i));
        continue;
      }
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
      const auto sub = subOffset.find(n.output(k));
      slot.inConcat = sub != subOffset.end();
      slot.offset = int64_t(mp.offsets[size_t(it->second)] + (slot.inConcat ? sub->second : 0));
      slot.bytes = slot.inConcat ? bytesOf(n.output(k)) : reqs[size_t(it->second)].bytes;
      slot.alias = !slot.inConcat && k == 0 && isViewOp(n) && n.input(0) && bufferOf.count(n.input(0)) &&
                   bufferOf[n.input(0)] == it->second;
    }
  }
  return gm;
}
}  // namespace

GraphMemory planGraphMemory(const ir::Graph& graph, const std::unordered_set<const ir::Node*>* inPlaceConcats) {
  return planGraph(graph, nullptr, 64, inPlaceConcats);
}

GraphMemory planGraphMemory(const ir::Graph& graph, ir::Device device, size_t alignment) {
  return planGraph(graph, &device, alignment, nullptr);
}

}  // namespace anvil::runtime
