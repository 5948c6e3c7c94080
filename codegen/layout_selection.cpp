// Blocked-layout regions and the graph edits around them (see layout_selection.h).
#include "codegen/layout_selection.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "ir/layout.h"
#include "ir/ops/anvil_linear.h"
#include "passes/graph_edit.h"
#include "runtime/kernel.h"

namespace anvil::codegen {

int hostNchwcBlock() {
  if (runtime::hostHas("avx512f")) return 16;
  if (runtime::hostHas("avx2") && runtime::hostHas("fma")) return 8;
  return 0;
}

bool isBlockableActivation(const ir::Value* v) {
  return v && !v->name().empty() && !v->isInitializer() && v->dtype() == ir::DataType::kF32 &&
         v->shape().rankKnown() && v->shape().rank() == 4 && v->shape().isStatic() && v->layout().isPlain();
}

namespace {

bool isGraphOutput(const ir::Graph& g, const ir::Value* v) {
  return std::find(g.outputs().begin(), g.outputs().end(), v) != g.outputs().end();
}

// Whether a node may join a region at all, before asking its kernels.
bool eligible(const ir::Graph& g, const ir::Node& n, const std::unordered_set<const ir::Value*>& observed) {
  if (passes::hasSubgraphs(n) || n.numOutputs() == 0) return false;
  bool anyActivationInput = false;
  for (const ir::Value* v : n.inputs()) anyActivationInput |= isBlockableActivation(v);
  if (!anyActivationInput) return false;
  for (const ir::Value* o : n.outputs()) {
    // A graph output is reordered back under its name; one a subgraph returns stays.
    if (!isBlockableActivation(o) || (observed.count(o) && !isGraphOutput(g, o))) return false;
    for (const ir::Node* u : g.users(o))
      if (u->owner() != &g) return false;  // read by a subgraph as an outer-scope value
  }
  return true;
}

struct UnionFind {
  std::vector<size_t> parent;
  explicit UnionFind(size_t n) : parent(n) { std::iota(parent.begin(), parent.end(), size_t(0)); }
  size_t find(size_t x) {
    while (parent[x] != x) x = parent[x] = parent[parent[x]];
    return x;
  }
  void unite(size_t a, size_t b) { parent[find(a)] = find(b); }
};

}  // namespace

std::vector<std::vector<ir::Node*>> findBlockedRegions(ir::Graph& g, int block,
                                                       const std::function<bool(const ir::Node&)>& servable) {
  const ir::Layout blocked = ir::Layout::nchwc(block);
  const auto observed = passes::observedOutputs(g);
  const auto& nodes = g.nodes();
  std::unordered_map<const ir::Node*, size_t> index;
  std::vector<char> in(nodes.size(), 0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    ir::Node& n = *nodes[i];
    index[&n] = i;
    if (!eligible(g, n, observed)) continue;
    // Ask with the node's activations blocked, then put the layouts back.
    std::vector<ir::Value*> set;
    for (ir::Value* v : n.inputs())
      if (isBlockableActivation(v)) set.push_back(v);
    for (ir::Value* v : n.outputs()) set.push_back(v);
    for (ir::Value* v : set) v->setLayout(blocked);
    bool ok = false;
    try {
      ok = servable(n);
    } catch (...) {
      ok = false;
    }
    for (ir::Value* v : set) v->setLayout(ir::Layout::plain());
    in[i] = ok;
  }
  UnionFind uf(nodes.size());
  std::unordered_map<const ir::Value*, size_t> firstOutsideConsumer;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (!in[i]) continue;
    for (const ir::Value* v : nodes[i]->inputs()) {
      if (!isBlockableActivation(v)) continue;
      const ir::Node* p = v->producer();
      auto it = p ? index.find(p) : index.end();
      if (it != index.end() && in[it->second]) {
        uf.unite(i, it->second);
      } else {  // enters from outside: consumers of one value share its Reorder
        auto [f, fresh] = firstOutsideConsumer.emplace(v, i);
        if (!fresh) uf.unite(i, f->second);
      }
    }
  }
  std::map<size_t, std::vector<ir::Node*>> groups;
  for (size_t i = 0; i < nodes.size(); ++i)
    if (in[i]) groups[uf.find(i)].push_back(nodes[i].get());
  std::vector<std::vector<ir::Node*>> out;
  for (auto& [root, members] : groups) out.push_back(std::move(members));
  return out;
}

AppliedRegion applyBlockedRegion(ir::Graph& g, const std::vector<ir::Node*>& region, int block,
                                 std::map<const ir::Value*, ir::TensorType>* declared,
                                 const std::function<bool(const ir::Node&, size_t)>& keepPlain) {
  const ir::Layout blocked = ir::Layout::nchwc(block);
  AppliedRegion r;
  r.nodes = region;
  const std::set<const ir::Node*> inRegion(region.begin(), region.end());
  auto reorder = [&](ir::Value* from, const ir::Layout& to, const std::string& suffix) {
    ir::Node* n = g.addNode("Reorder", "anvil", passes::uniqueName(g, from->name() + "_reorder" + suffix), {from},
                            {passes::uniqueName(g, from->name() + suffix)});
    n->attrs().set("to", ir::layoutName(to));
    ir::Value* out = n->output(0);
    out->setType(from->type());
    out->copyMetaFrom(*from);  // the same logical values: device and quantization grid carry over
    out->setLayout(to);
    (*declared)[out] = declared->count(from) ? declared->at(from) : from->type();
    r.reorders.push_back(n);
    return out;
  };
  // Region outputs first (before entry Reorders exist, so users() sees only real users).
  std::vector<std::pair<ir::Value*, std::vector<ir::Node*>>> exits;
  for (ir::Node* n : region)
    for (ir::Value* o : n->outputs()) {
      std::vector<ir::Node*> outside;
      for (ir::Node* u : g.users(o))
        if (!inRegion.count(u)) outside.push_back(u);
      exits.push_back({o, std::move(outside)});
    }
  // The region's outputs are blocked from here on (keepPlain asks with them so).
  for (auto& [o, outside] : exits) o->setLayout(blocked);
  // Entries: one Reorder per value coming from outside.
  std::unordered_map<const ir::Value*, ir::Value*> entry;
  for (ir::Node* n : region)
    for (size_t i = 0; i < n->numInputs(); ++i) {
      ir::Value* v = n->input(i);
      if (!isBlockableActivation(v)) continue;
      if (v->producer() && inRegion.count(v->producer())) continue;
      if (keepPlain && keepPlain(*n, i)) continue;
      auto it = entry.find(v);
      ir::Value* b = it != entry.end() ? it->second : (entry[v] = reorder(v, blocked, "_nchwc"));
      n->setInput(i, b);
      r.rewired.push_back({n, i, v});
    }
  for (auto& [o, outside] : exits) {
    r.blocked.push_back(o);
    const bool graphOutput = isGraphOutput(g, o);
    if (outside.empty() && !graphOutput) continue;
    ir::Value* plain = reorder(o, ir::Layout::plain(), "_plain");
    for (ir::Node* u : outside)
      for (size_t i = 0; i < u->numInputs(); ++i)
        if (u->input(i) == o) {
          u->setInput(i, plain);
          r.rewired.push_back({u, i, o});
        }
    if (graphOutput) {  // the caller binds the name: the row-major Reorder output takes it
      const std::string name = o->name();
      g.renameValue(o, passes::uniqueName(g, name + "_nchwc"));
      g.renameValue(plain, name);
      for (size_t i = 0; i < g.outputs().size(); ++i)
        if (g.outputs()[i] == o) g.setOutput(i, plain);
      r.renamed.push_back({o, plain, name});
    }
  }
  return r;
}

namespace {

bool f32OnCpu(const ir::Node& n) {
  return (n.precision() == ir::DataType::kUndefined || n.precision() == ir::DataType::kF32) &&
         n.device() == ir::Device::kCPU;
}

// A Conv or anvil.FusedConv without a residual (its epilogue in *e): the linear part of the
// pair.
bool convWithEpilogue(const ir::Node& n, ir::linear::Epilogue* e) {
  const bool conv = n.op() == "Conv" && n.domain().empty();
  const bool fused = n.op() == "FusedConv" && n.domain() == "anvil";
  if (!conv && !fused) return false;
  *e = ir::linear::Epilogue{};
  if (fused && !ir::linear::readEpilogue(n.attrs(), e).empty()) return false;
  if (e->residual || n.numOutputs() != 1 || n.numInputs() < 2) return false;
  const ir::Attributes& a = n.attrs();
  const std::string ap = a.getString("auto_pad", "NOTSET");
  return (ap.empty() || ap == "NOTSET") && a.getInts("dilations", {1, 1}) == std::vector<int64_t>{1, 1};
}

bool staticInitializer(const ir::Value* v, size_t rank) {
  return v && v->isInitializer() && v->dtype() == ir::DataType::kF32 && v->shape().isStatic() &&
         v->shape().rank() == rank && v->layout().isPlain();
}

}  // namespace

std::vector<ir::Node*> fuseBlockedConvDw(ir::Graph& g, int block, int threads,
                                         const std::function<bool(const ir::Node&)>& servable) {
  const ir::Layout blocked = ir::Layout::nchwc(block);
  const auto observed = passes::observedOutputs(g);
  std::vector<ir::Node*> depthwise;
  for (const auto& n : g.nodes()) depthwise.push_back(n.get());
  std::unordered_set<const ir::Node*> gone;  // removed by an earlier fusion
  std::vector<ir::Node*> fused;
  for (ir::Node* dw : depthwise) {
    if (gone.count(dw)) continue;
    ir::linear::Epilogue de, pe;
    if (!convWithEpilogue(*dw, &de) || !f32OnCpu(*dw)) continue;
    ir::Value* mid = dw->input(0);
    ir::Value* wd = dw->input(1);
    ir::Node* pw = mid ? mid->producer() : nullptr;
    if (!pw || !convWithEpilogue(*pw, &pe) || !f32OnCpu(*pw) || pw->owner() != &g || dw->owner() != &g) continue;
    if (!(mid->layout() == blocked) || !(dw->output(0)->layout() == blocked) || !pw->input(0) ||
        !(pw->input(0)->layout() == blocked))
      continue;
    if (observed.count(mid) || g.users(mid).size() != 1 || !mid->shape().isStatic() || mid->shape().rank() != 4)
      continue;
    ir::Value* w = pw->input(1);
    if (!staticInitializer(w, 4) || !staticInitializer(wd, 4)) continue;
    const std::vector<int64_t> md = mid->shape().extents(), wk = w->shape().extents(), dk = wd->shape().extents();
    const int64_t E = md[1];
    // The 1x1: group 1, stride 1, no padding.
    const ir::Attributes& pa = pw->attrs();
    if (wk[0] != E || wk[2] != 1 || wk[3] != 1 || pa.getInt("group", 1) != 1 ||
        pa.getInts("strides", {1, 1}) != std::vector<int64_t>{1, 1} ||
        pa.getInts("pads", {0, 0, 0, 0}) != std::vector<int64_t>{0, 0, 0, 0})
      continue;
    // The depthwise: one filter per channel.
    const ir::Attributes& da = dw->attrs();
    if (da.getInt("group", 1) != E || dk[0] != E || dk[1] != 1 ||
        da.getInts("kernel_shape", {dk[2], dk[3]}) != std::vector<int64_t>{dk[2], dk[3]})
      continue;
    const ir::Value* b = pw->numInputs() > 2 ? pw->input(2) : nullptr;
    const ir::Value* bd = dw->numInputs() > 2 ? dw->input(2) : nullptr;
    if ((b && !staticInitializer(b, 1)) || (bd && !staticInitializer(bd, 1))) continue;
    // Only where each thread's share of the 1x1's output is too large to stay in its core's
    // L2 beside the rest: smaller ones stay there between the two nodes anyway (the 28x28
    // pairs, 602-752 KB, 1.00-1.03x fused; at two threads mobilenet_v2's 56x56 pairs, 0.9 MB
    // a thread, 1.00x-1.01x, the whole model within noise).
    const int64_t bytes = md[0] * (E + block - 1) / block * block * md[2] * md[3] * int64_t(sizeof(float));
    if (bytes < kConvDwFuseBytes * std::max(1, threads)) continue;

    ir::Attributes attrs;
    ir::linear::writeEpilogue(pe, &attrs);
    ir::linear::writeEpilogue(de, &attrs, "dw_");
    attrs.set("dw_kernel_shape", std::vector<int64_t>{dk[2], dk[3]});
    attrs.set("dw_strides", da.getInts("strides", {1, 1}));
    attrs.set("dw_pads", da.getInts("pads", {0, 0, 0, 0}));
    std::vector<ir::Value*> inputs = {pw->input(0), w, const_cast<ir::Value*>(b), wd, const_cast<ir::Value*>(bd)};
    while (!inputs.empty() && !inputs.back()) inputs.pop_back();
    // Asked first on a probe node (its output typed and laid out as the depthwise's).
    ir::Node* probe = g.addNode("FusedConvDw", "anvil", "", inputs, {passes::uniqueName(g, dw->output(0)->name() + "_probe")});
    probe->attrs() = attrs;
    probe->output(0)->setType(dw->output(0)->type());
    probe->output(0)->copyMetaFrom(*dw->output(0));
    bool ok = false;
    try {
      ok = servable(*probe);
    } catch (...) {
      ok = false;
    }
    g.removeNode(probe);
    g.removeUnusedValues();
    if (!ok) continue;
    const std::string name = pw->name().empty() ? dw->name() : dw->name().empty() ? pw->name() : pw->name() + "+" + dw->name();
    gone.insert(dw);
    gone.insert(pw);
    ir::Node* n = passes::replaceNode(g, dw, "FusedConvDw", "anvil", inputs, attrs);
    n->setName(name);
    passes::removeIfUnused(g, pw);
    fused.push_back(n);
  }
  return fused;
}

void revertBlockedRegion(ir::Graph& g, const AppliedRegion& r) {
  for (auto it = r.renamed.rbegin(); it != r.renamed.rend(); ++it) {
    for (size_t i = 0; i < g.outputs().size(); ++i)
      if (g.outputs()[i] == it->plain) g.setOutput(i, it->blocked);
    g.renameValue(it->plain, passes::uniqueName(g, it->name + "_unused"));
    g.renameValue(it->blocked, it->name);
  }
  for (auto it = r.rewired.rbegin(); it != r.rewired.rend(); ++it) it->node->setInput(it->input, it->original);
  for (ir::Value* v : r.blocked) v->setLayout(ir::Layout::plain());
  for (ir::Node* n : r.reorders) g.removeNode(n);
}

}  // namespace anvil::codegen
