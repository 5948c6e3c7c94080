// elementwise-fusion: replaces each maximal group of f32 elementwise ops (unary, binary with
// numpy broadcasting, Clip) whose intermediates are read only inside the group by one
// anvil.FusedElementwise node whose `program` attribute lists the ops over registers
// (ir/ops/anvil_elementwise.h). The kernel then makes one pass over memory instead of one
// per op, with no temporaries.
//
// Grouping: nodes are visited from the graph's end; a fusable node not yet grouped roots a
// group, and a producer joins when it is fusable and every reader of its output is already
// in the group (so the group stays convex and its intermediates vanish). Leaves (graph
// inputs, constants, other nodes' outputs) become the fused node's inputs, each once.
// Groups of one node are left alone, except ops the native op kernels do not serve alone
// (cpu/tactics/native_ops_elementwise.cpp serves the arithmetic, comparisons and the common
// activations): a lone PRelu, Max, Min, Elu, Mish, ... becomes a one-instruction program,
// whose kernel is vectorized, instead of running the reference kernel.
//
// Fusable: ai.onnx ops the program knows, f32 inputs and output, known ranks, and shapes
// whose broadcast is the node's output (PRelu's slope and Clip's bounds may not enlarge x).
// Values read by subgraphs or that are graph outputs (except the root's) never become
// intermediates. Runs after linear-epilogue-fusion, which takes the activations that
// directly follow Conv/Gemm/MatMul; what remains here are free-standing chains.
#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "ir/ops/anvil_elementwise.h"
#include "passes/fusion_util.h"
#include "passes/linear_rewrite.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

namespace ew = ir::ew;

// The program instruction for node n (operands not yet filled), or nullopt when n cannot
// join a fused chain.
std::optional<ew::Instr> instrFor(const ir::Node& n) {
  if (!n.domain().empty() || n.numOutputs() != 1 || hasSubgraphs(n)) return std::nullopt;
  ew::Instr in;
  if (n.op() == "Sum" && n.numInputs() == 2) in.op = ew::Op::kAdd;  // variadic in ONNX
  else if (!ew::opFromName(n.op(), &in.op)) return std::nullopt;
  const ew::OpInfo& info = ew::opInfo(in.op);
  const size_t nin = n.numInputs();
  if (in.op == ew::Op::kClip) {
    if (nin < 1 || nin > 3 || !n.input(0)) return std::nullopt;
  } else if (in.op == ew::Op::kMax || in.op == ew::Op::kMin) {
    if (nin != 2) return std::nullopt;  // variadic in ONNX; the program is binary
  } else if (int(nin) != info.operands) {
    return std::nullopt;
  }
  // Every attribute must be one the program carries (unknown ones would be dropped).
  in.p0 = info.defaults[0];
  in.p1 = info.defaults[1];
  for (const auto& [name, attr] : n.attrs().all()) {
    if (in.op == ew::Op::kGelu && name == "approximate") {
      const std::string a = n.attrs().getString("approximate", "none");
      if (a != "none" && a != "tanh") return std::nullopt;
      in.p0 = a == "tanh" ? 1.0f : 0.0f;
      continue;
    }
    int slot = -1;
    for (int j = 0; j < 2; ++j)
      if (info.params[j] && name == info.params[j]) slot = j;
    if (slot < 0 || attr.kind() != ir::Attribute::Kind::kFloat) return std::nullopt;
    (slot == 0 ? in.p0 : in.p1) = std::get<float>(attr.value);
  }
  // Types and shapes.
  const ir::Value* out = n.output(0);
  if (out->dtype() != ir::DataType::kF32 || !out->shape().rankKnown()) return std::nullopt;
  for (size_t i = 0; i < nin; ++i) {
    const ir::Value* v = n.input(i);
    if (!v) {
      if (in.op == ew::Op::kClip && i > 0) continue;
      return std::nullopt;
    }
    if (v->dtype() != ir::DataType::kF32 || !v->shape().rankKnown()) return std::nullopt;
    if (v->shape().rank() > out->shape().rank()) return std::nullopt;
  }
  if (in.op == ew::Op::kPRelu || in.op == ew::Op::kClip) {
    // The output is x's shape (unidirectional broadcast / one-element bounds).
    if (out->shape() != n.input(0)->shape()) return std::nullopt;
    if (in.op == ew::Op::kClip)
      for (size_t i = 1; i < nin; ++i)
        if (n.input(i) && n.input(i)->shape().numel() != 1) return std::nullopt;
  }
  return in;
}

// Values read inside any subgraph (captured from an enclosing scope) must stay.
void collectSubgraphReads(const ir::Graph& g, std::unordered_set<const ir::Value*>* out) {
  for (const auto& np : g.nodes())
    for (const auto& [name, attr] : np->attrs().all()) {
      (void)name;
      std::vector<const ir::Graph*> subs;
      if (auto* s = std::get_if<std::shared_ptr<ir::Graph>>(&attr.value)) subs.push_back(s->get());
      if (auto* ss = std::get_if<std::vector<std::shared_ptr<ir::Graph>>>(&attr.value))
        for (const auto& s : *ss) subs.push_back(s.get());
      for (const ir::Graph* sg : subs) {
        for (const auto& sn : sg->nodes())
          for (const ir::Value* v : sn->inputs())
            if (v) out->insert(v);
        for (const ir::Value* v : sg->outputs()) out->insert(v);
        collectSubgraphReads(*sg, out);
      }
    }
}

// The program's ops that no native kernel of their own serves (see the header).
bool aloneNeedsProgram(const ir::Node& n, const ew::Instr& in) {
  if (n.op() == "Sum") return true;  // two inputs (instrFor)
  switch (in.op) {
    case ew::Op::kMax: case ew::Op::kMin: case ew::Op::kPRelu: case ew::Op::kRound: case ew::Op::kSin:
    case ew::Op::kCos: case ew::Op::kSoftsign: case ew::Op::kSign: case ew::Op::kMish: case ew::Op::kElu:
    case ew::Op::kSelu: case ew::Op::kCelu: case ew::Op::kThresholdedRelu:
      return true;
    default:
      return false;
  }
}

}  // namespace

PassResult fuseElementwiseChains(ir::Graph& g, const PassContext& /*ctx*/) {
  // Readers of each value, by node (a node reading a value twice counts once).
  std::unordered_map<const ir::Value*, std::vector<ir::Node*>> readers;
  for (const auto& np : g.nodes()) {
    std::set<const ir::Value*> seen;
    for (const ir::Value* v : np->inputs())
      if (v && seen.insert(v).second) readers[v].push_back(np.get());
  }
  std::unordered_set<const ir::Value*> pinned;
  collectSubgraphReads(g, &pinned);
  for (const ir::Value* v : g.outputs()) pinned.insert(v);

  std::unordered_map<const ir::Node*, size_t> order;
  std::unordered_map<const ir::Node*, ew::Instr> instr;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    const ir::Node* n = g.nodes()[i].get();
    order[n] = i;
    if (auto in = instrFor(*n)) instr[n] = *in;
  }

  std::unordered_set<const ir::Node*> grouped;
  std::vector<std::vector<ir::Node*>> groups;
  for (size_t i = g.nodes().size(); i-- > 0;) {
    ir::Node* root = g.nodes()[i].get();
    if (!instr.count(root) || grouped.count(root)) continue;
    std::vector<ir::Node*> group = {root};
    std::unordered_set<const ir::Node*> in = {root};
    grouped.insert(root);
    for (bool grew = true; grew;) {
      grew = false;
      for (size_t k = 0; k < group.size(); ++k) {
        for (ir::Value* v : group[k]->inputs()) {
          ir::Node* p = v ? v->producer() : nullptr;
          if (!p || !instr.count(p) || grouped.count(p) || pinned.count(v)) continue;
          bool inside = true;
          for (const ir::Node* u : readers[v]) inside = inside && in.count(u);
          if (!inside) continue;
          group.push_back(p);
          in.insert(p);
          grouped.insert(p);
          grew = true;
        }
      }
    }
    if (group.size() >= 2 || aloneNeedsProgram(*root, instr.at(root))) groups.push_back(std::move(group));
  }

  PassResult r;
  for (std::vector<ir::Node*>& group : groups) {
    std::sort(group.begin(), group.end(), [&](const ir::Node* a, const ir::Node* b) { return order[a] < order[b]; });
    ir::Node* root = group.back();
    std::unordered_set<const ir::Value*> produced;
    for (const ir::Node* n : group) produced.insert(n->output(0));
    // Registers: the leaves first (in order of first use), then one per node.
    std::vector<ir::Value*> inputs;
    std::unordered_map<const ir::Value*, int> reg;
    for (const ir::Node* n : group)
      for (ir::Value* v : n->inputs())
        if (v && !produced.count(v) && !reg.count(v)) {
          reg[v] = int(inputs.size());
          inputs.push_back(v);
        }
    ew::Program prog;
    prog.numInputs = int(inputs.size());
    for (const ir::Node* n : group) {
      ew::Instr in = instr.at(n);
      int* ops[3] = {&in.a, &in.b, &in.c};
      for (size_t j = 0; j < n->numInputs() && j < 3; ++j)
        *ops[j] = n->input(j) ? reg.at(n->input(j)) : -1;
      reg[n->output(0)] = prog.numInputs + int(prog.code.size());
      prog.code.push_back(in);
    }
    ir::Attributes attrs;
    attrs.set("program", ew::formatProgram(prog));
    const std::string name = (root->name().empty() ? std::string("ew") : root->name()) + "/FusedElementwise";
    linear::replaceChain(g, root->output(0), group, "FusedElementwise", "anvil", name, inputs, std::move(attrs));
    r.changed += int(group.size());
  }
  if (!groups.empty()) {
    g.topoSort();
    r.stats = "fused=" + std::to_string(groups.size()) + " groups of " + std::to_string(r.changed) + " nodes";
  }
  return r;
}

}  // namespace anvil::passes
