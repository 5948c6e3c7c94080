// lstm-stack-fusion: a chain of forward LSTM layers, each reading the previous one's
// hidden sequence through a Squeeze of the directions axis (how PyTorch exports
// nn.LSTM(num_layers=L)), becomes one anvil.LSTMStack node (ir/ops/anvil_sequence.cpp):
//
//   Y0, Yh0, Yc0 = LSTM(X, W0, R0, B0, -, h0, c0)
//   Y1, Yh1, Yc1 = LSTM(Squeeze(Y0, [1]), W1, R1, B1, -, h1, c1)
//   ->  Y1, Yh0, Yc0, Yh1, Yc1 = anvil.LSTMStack(X, W0, R0, B0, h0, c0, W1, R1, B1, h1, c1)
//
// and a further LSTM on a stack's Squeezed Y joins it. Same results: the stack's kernels
// compute each layer as the LSTM kernels do; what a runtime gains is that the layers may
// overlap in time (layer l + 1 runs step t once layer l has produced h_t).
//
// Fused only what the stack means: direction forward, layout 0, the default activations,
// no clip, no peepholes, no input_forget, no sequence_lens, float32, constant W and R (and
// B); the intermediate Y read by the Squeeze alone and the Squeezed sequence by the next
// LSTM alone (neither a graph output); the next layer's initial states not computed from
// the earlier layers' outputs.
#include <unordered_set>

#include "passes/fusion_util.h"
#include "passes/graph_edit.h"
#include "passes/linear_rewrite.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

bool plainForwardLstm(const ir::Graph& g, const ir::Node& n) {
  if (n.op() != "LSTM" || !n.domain().empty()) return false;
  const ir::Attributes& a = n.attrs();
  if (a.getString("direction", "forward") != "forward" || a.getInt("layout", 0) != 0) return false;
  if (a.has("activations") || a.has("activation_alpha") || a.has("activation_beta") || a.has("clip")) return false;
  if (a.getInt("input_forget", 0) != 0) return false;
  if (n.input(4) || n.input(7)) return false;  // sequence_lens, peepholes
  if (!n.input(0) || n.input(0)->dtype() != ir::DataType::kF32) return false;
  const ir::Tensor* w = n.input(1) ? trueConstantOf(g, n.input(1)) : nullptr;
  const ir::Tensor* r = n.input(2) ? trueConstantOf(g, n.input(2)) : nullptr;
  if (!w || !r || w->rank() != 3 || r->rank() != 3 || w->dim(0) != 1 || r->dim(0) != 1) return false;
  if (w->dtype() != ir::DataType::kF32 || r->dtype() != ir::DataType::kF32) return false;
  const int64_t H = r->dim(2);
  if (r->dim(1) != 4 * H || w->dim(1) != 4 * H) return false;
  if (n.input(3) && !trueConstantOf(g, n.input(3))) return false;
  if (a.has("hidden_size") && a.getInt("hidden_size", 0) != H) return false;
  return n.hasDefaultMeta() || (n.precision() == ir::DataType::kF32 && n.device() == ir::Device::kCPU);
}

int64_t hiddenOf(const ir::Graph& g, const ir::Node& lstm) { return trueConstantOf(g, lstm.input(2))->dim(2); }

// Whether Squeeze `sq` removes exactly axis 1 of its rank-4 input.
bool squeezesDirections(const ir::Node& sq) {
  const ir::Value* x = sq.input(0);
  if (!x->shape().rankKnown() || x->shape().rank() != 4) return false;
  std::vector<int64_t> axes;
  if (sq.input(1)) {
    const ir::Tensor* t = constantOf(sq.input(1));
    if (!t) return false;
    axes = t->toInt64Vector();
  } else {
    axes = sq.attrs().getInts("axes");
  }
  return axes.size() == 1 && (axes[0] == 1 || axes[0] == -3);
}

// Whether `v` is computed (transitively) from an output of `from`.
bool dependsOn(const ir::Value* v, const ir::Node* from) {
  std::vector<const ir::Value*> stack = {v};
  std::unordered_set<const ir::Node*> seen;
  while (!stack.empty()) {
    const ir::Value* cur = stack.back();
    stack.pop_back();
    const ir::Node* p = cur ? cur->producer() : nullptr;
    if (!p || !seen.insert(p).second) continue;
    if (p == from) return true;
    for (const ir::Value* in : p->inputs()) stack.push_back(in);
  }
  return false;
}

// One output the new node takes over: its uses (graph outputs included) and name.
struct Taken {
  ir::Value* old = nullptr;  // null: the output is absent
  std::string name;
  ir::TensorType type;
  ir::Value meta;
  ir::Value* hold = nullptr;
};

bool fuseAt(ir::Graph& g, ir::Node& next) {
  if (!plainForwardLstm(g, next)) return false;
  ir::Value* seq = next.input(0);
  ir::Node* sq = producerIs(seq, "Squeeze");
  if (!sq || !hasSingleUse(g, seq) || !squeezesDirections(*sq)) return false;
  ir::Value* y = sq->input(0);
  ir::Node* prev = y->producer();
  if (!prev || prev->output(0) != y || !hasSingleUse(g, y)) return false;
  const bool prevIsStack = prev->op() == "LSTMStack" && prev->domain() == "anvil";
  if (!prevIsStack && !plainForwardLstm(g, *prev)) return false;
  if (prevIsStack && !prev->hasDefaultMeta() &&
      !(prev->precision() == ir::DataType::kF32 && prev->device() == ir::Device::kCPU))
    return false;
  for (size_t i : {size_t(5), size_t(6)})
    if (next.input(i) && dependsOn(next.input(i), prev)) return false;
  // Inputs and outputs of the stack, layer by layer.
  std::vector<ir::Value*> inputs;
  std::vector<ir::Value*> outs;  // Y, then Y_h and Y_c per layer (null: absent)
  std::vector<int64_t> hidden;
  auto outputOf = [](const ir::Node& n, size_t i) -> ir::Value* {
    ir::Value* v = i < n.numOutputs() ? n.output(i) : nullptr;
    return v && !v->name().empty() ? v : nullptr;
  };
  if (prevIsStack) {
    inputs = prev->inputs();
    inputs.resize(1 + 5 * ((prev->numOutputs() - 1) / 2), nullptr);  // 1 + 5L inputs for 1 + 2L outputs
    hidden = prev->attrs().getInts("hidden_sizes");
    for (size_t i = 1; i < prev->numOutputs(); ++i) outs.push_back(outputOf(*prev, i));
  } else {
    inputs = {prev->input(0), prev->input(1), prev->input(2), prev->input(3), prev->input(5), prev->input(6)};
    hidden = {hiddenOf(g, *prev)};
    outs = {outputOf(*prev, 1), outputOf(*prev, 2)};
  }
  for (size_t i : {size_t(1), size_t(2), size_t(3), size_t(5), size_t(6)}) inputs.push_back(next.input(i));
  hidden.push_back(hiddenOf(g, next));
  outs.push_back(outputOf(next, 1));
  outs.push_back(outputOf(next, 2));
  outs.insert(outs.begin(), outputOf(next, 0));
  const int64_t L = int64_t(hidden.size());
  if (int64_t(inputs.size()) != 1 + 5 * L || int64_t(outs.size()) != 1 + 2 * L) return false;
  if (!outs[0]) return false;  // nothing reads the last layer's sequence: not this pattern
  const std::string name = prev->name().empty()   ? (next.name().empty() ? std::string("LSTMStack") : next.name())
                           : next.name().empty() ? prev->name()
                                                 : prev->name() + "+" + next.name();
  // Park every taken output's uses on a placeholder, keep the inputs alive with an
  // output-less keeper, drop the old nodes (freeing the names), then make the stack with
  // the old names and move the uses onto it (so no graph output is renamed).
  std::vector<Taken> taken(outs.size());
  for (size_t i = 0; i < outs.size(); ++i) {
    if (!outs[i]) continue;
    Taken& t = taken[i];
    t.old = outs[i];
    t.name = outs[i]->name();
    t.type = outs[i]->type();
    t.meta.copyMetaFrom(*outs[i]);
    t.hold = g.addValue(linear::freshName(g, t.name + "__hold"), t.type);
    g.replaceAllUses(outs[i], t.hold);
  }
  std::vector<ir::Value*> keep;
  for (ir::Value* v : inputs)
    if (v) keep.push_back(v);
  ir::Node* keeper = g.addNode("__keep", "", "", keep, {});
  g.removeNode(&next);
  g.removeNode(sq);
  g.removeNode(prev);
  g.removeUnusedValues();
  std::vector<std::string> outNames;
  for (const Taken& t : taken) outNames.push_back(t.old ? (g.lookup(t.name) ? linear::freshName(g, t.name) : t.name) : "");
  ir::Node* n = g.addNode("LSTMStack", "anvil", name, inputs, outNames);
  g.removeNode(keeper);
  n->attrs().set("layers", L);
  n->attrs().set("hidden_sizes", hidden);
  for (size_t i = 0; i < taken.size(); ++i) {
    if (!taken[i].old) continue;
    ir::Value* o = n->output(i);
    o->setType(taken[i].type);
    o->copyMetaFrom(taken[i].meta);
    g.replaceAllUses(taken[i].hold, o);
  }
  g.removeUnusedValues();
  return true;
}

}  // namespace

PassResult fuseLstmStacks(ir::Graph& g, const PassContext& /*ctx*/) {
  std::vector<Pattern> patterns = {
      {"lstm-stack", "LSTM", "", [](ir::Graph& gr, ir::Node& n) { return fuseAt(gr, n); }},
  };
  PassResult r;
  r.changed = applyPatterns(g, patterns, &r.stats);
  return r;
}

}  // namespace anvil::passes
