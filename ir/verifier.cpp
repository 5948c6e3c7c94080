// The IR verifier: one walk per graph in node order, with the set of values defined so
// far and the sets of the enclosing graphs (as they were at the owning node) in scope.
#include "ir/verifier.h"

#include <cmath>
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "ir/op_schema.h"

namespace anvil::ir {

namespace {

using Scope = std::unordered_set<const Value*>;

std::string valueText(const Value* v) { return v->name().empty() ? "<unnamed value>" : "'" + v->name() + "'"; }
std::string nodeText(const Node& n, size_t i) { return n.label() + " (node #" + std::to_string(i) + ")"; }
std::string graphText(const Graph* g) { return g ? "'" + g->name() + "'" : "<none>"; }

std::vector<std::pair<std::string, const Graph*>> subgraphsOf(const Node& n) {
  std::vector<std::pair<std::string, const Graph*>> out;
  for (const auto& [name, a] : n.attrs().all()) {
    if (auto* g = std::get_if<std::shared_ptr<Graph>>(&a.value)) out.emplace_back(name, g->get());
    if (auto* gs = std::get_if<std::vector<std::shared_ptr<Graph>>>(&a.value))
      for (const auto& g : *gs) out.emplace_back(name, g.get());
  }
  return out;
}

// Every value a node reads: its inputs and what its subgraphs read from outside.
void collectReads(const Node& n, std::vector<const Value*>& out) {
  for (const Value* v : n.inputs())
    if (v) out.push_back(v);
  for (const auto& [name, sub] : subgraphsOf(n)) {
    if (!sub) continue;
    for (const auto& sn : sub->nodes()) collectReads(*sn, out);
    for (const Value* v : sub->outputs())
      if (v) out.push_back(v);
  }
}

class Verifier {
 public:
  explicit Verifier(const VerifyOptions& options) : opt_(options) {}

  std::vector<std::string> run(const Graph& g) {
    std::vector<const Scope*> outer;
    graph(g, outer, "graph " + graphText(&g));
    return std::move(errors_);
  }

 private:
  void error(const std::string& where, const std::string& what) { errors_.push_back(where + ": " + what); }

  static bool isAncestor(const Graph* a, const Graph& g) {
    for (const Graph* p = g.parent(); p; p = p->parent())
      if (p == a) return true;
    return false;
  }

  // Why `v`, read in `g`, is not visible there.
  std::string whyUndefined(const Value* v, const Graph& g,
                           const std::unordered_map<const Value*, size_t>& producerIndex, size_t here,
                           bool cycle) {
    auto it = producerIndex.find(v);
    if (it != producerIndex.end()) {
      if (it->second == here) return "is an output of the same node";
      const Node& p = *g.nodes()[it->second];
      return "is used before it is defined by " + nodeText(p, it->second) +
             (cycle ? "" : "; nodes are not in topological order (Graph::topoSort)");
    }
    if (v->owner() == &g) return "is not defined: no producer, not a graph input or initializer";
    if (!v->owner()) return "belongs to no graph";
    if (isAncestor(v->owner(), g))
      return "belongs to enclosing graph " + graphText(v->owner()) +
             " but is not defined there before the node that owns this subgraph";
    return "belongs to graph " + graphText(v->owner()) + ", which is not visible here";
  }

  static bool visible(const Value* v, const Scope& here, const std::vector<const Scope*>& outer) {
    if (here.count(v)) return true;
    for (const Scope* s : outer)
      if (s->count(v)) return true;
    return false;
  }

  // Reports one cycle among the nodes of `g` (edges from producers to readers, including
  // reads from inside subgraphs); returns whether there is one.
  bool findCycle(const Graph& g, const std::unordered_map<const Value*, size_t>& producerIndex,
                 const std::string& where) {
    const size_t n = g.nodes().size();
    std::vector<int> state(n, 0);  // 0 new, 1 on the stack, 2 done
    std::vector<size_t> stack;
    std::function<bool(size_t)> visit = [&](size_t i) {
      state[i] = 1;
      stack.push_back(i);
      std::vector<const Value*> reads;
      collectReads(*g.nodes()[i], reads);
      for (const Value* v : reads) {
        auto it = producerIndex.find(v);
        if (it == producerIndex.end()) continue;
        size_t j = it->second;
        if (state[j] == 1) {
          std::string path;
          size_t from = 0;
          while (stack[from] != j) ++from;
          for (size_t k = from; k < stack.size(); ++k) path += nodeText(*g.nodes()[stack[k]], stack[k]) + " -> ";
          error(where, "cycle: " + path + nodeText(*g.nodes()[j], j));
          return true;
        }
        if (state[j] == 0 && visit(j)) return true;
      }
      stack.pop_back();
      state[i] = 2;
      return false;
    };
    for (size_t i = 0; i < n; ++i)
      if (state[i] == 0 && visit(i)) return true;
    return false;
  }

  void checkValueMeta(const Value* v, const std::string& where) {
    if (std::string d = layoutDefect(v->layout(), v->type()); !d.empty())
      error(where, "value " + valueText(v) + ": " + d);
    if (v->quantization())
      if (std::string d = quantizationDefect(*v->quantization(), v->type()); !d.empty())
        error(where, "value " + valueText(v) + ": " + d);
  }

  void checkNodeMeta(const Node& n, const std::string& at) {
    const DataType p = n.precision();
    if (p != DataType::kUndefined && !isFloat(p) && !isInteger(p))
      error(at, std::string("precision ") + dtypeName(p) + " is not a numeric type");
    for (const auto& [name, a] : n.tacticParams().all())
      if (a.kind() == Attribute::Kind::kGraph || a.kind() == Attribute::Kind::kGraphs)
        error(at, "tactic parameter '" + name + "' holds a graph");
  }

  void graph(const Graph& g, std::vector<const Scope*>& outer, const std::string& where) {
    Scope defined;
    std::unordered_map<const Value*, std::string> definedAs;
    auto define = [&](const Value* v, const std::string& as) {
      auto [it, inserted] = definedAs.emplace(v, as);
      if (!inserted) error(where, "value " + valueText(v) + " is defined twice: as " + it->second + " and as " + as);
      defined.insert(v);
      if (inserted) checkValueMeta(v, where);
    };

    for (size_t i = 0; i < g.inputs().size(); ++i) {
      const Value* v = g.inputs()[i];
      if (!v) {
        error(where, "graph input #" + std::to_string(i) + " is null");
        continue;
      }
      if (v->owner() != &g)
        error(where, "graph input " + valueText(v) + " belongs to graph " + graphText(v->owner()));
      define(v, "graph input #" + std::to_string(i));
    }
    for (const Value* v : g.initializers()) {
      auto it = definedAs.find(v);
      if (it != definedAs.end() && it->second.rfind("graph input", 0) == 0) continue;  // a default
      define(v, "an initializer");
    }

    std::unordered_map<const Value*, size_t> producerIndex;
    for (size_t i = 0; i < g.nodes().size(); ++i)
      for (const Value* o : g.nodes()[i]->outputs())
        if (o) producerIndex.emplace(o, i);
    const bool cycle = findCycle(g, producerIndex, where);

    for (size_t i = 0; i < g.nodes().size(); ++i) {
      const Node& n = *g.nodes()[i];
      const std::string at = where + ": " + nodeText(n, i);
      if (n.owner() != &g) error(at, "node belongs to graph " + graphText(n.owner()));
      checkNodeMeta(n, at);

      const OpSchema* s = n.schema() ? n.schema() : OpRegistry::instance().find(n.op(), n.domain());
      if (!s && !opt_.allowUnknownOps) {
        error(at, "op '" + (n.domain().empty() ? n.op() : n.domain() + "." + n.op()) + "' is not in the op table");
      }
      if (s) {
        const int nin = int(n.numInputs()), nout = int(n.numOutputs());
        auto range = [](int lo, int hi) {
          return hi < 0 ? std::to_string(lo) + " or more" : lo == hi ? std::to_string(lo)
                                                                     : std::to_string(lo) + ".." + std::to_string(hi);
        };
        if (nin < s->minInputs || (s->maxInputs >= 0 && nin > s->maxInputs))
          error(at, "has " + std::to_string(nin) + " inputs, expected " + range(s->minInputs, s->maxInputs));
        if (nout < s->minOutputs || (s->maxOutputs >= 0 && nout > s->maxOutputs))
          error(at, "has " + std::to_string(nout) + " outputs, expected " + range(s->minOutputs, s->maxOutputs));
        for (int j = 0; j < std::min(nin, s->minInputs); ++j)
          if (!n.input(size_t(j))) error(at, "required input " + std::to_string(j) + " is omitted");
      }

      for (size_t j = 0; j < n.numInputs(); ++j) {
        const Value* v = n.input(j);
        if (v && !visible(v, defined, outer))
          error(at, "input " + std::to_string(j) + " " + valueText(v) + " " +
                        whyUndefined(v, g, producerIndex, i, cycle));
      }

      for (const auto& [attrName, sub] : subgraphsOf(n)) {
        const std::string subAt = at + ", attribute '" + attrName + "'";
        if (!sub) {
          error(subAt, "holds a null graph");
          continue;
        }
        if (sub->parent() != &g)
          error(subAt, "subgraph " + graphText(sub) + " has parent " + graphText(sub->parent()) +
                           ", expected the enclosing graph " + graphText(&g));
        outer.push_back(&defined);
        graph(*sub, outer, subAt + ": graph " + graphText(sub));
        outer.pop_back();
      }

      for (size_t k = 0; k < n.numOutputs(); ++k) {
        const Value* v = n.output(k);
        if (!v) {
          error(at, "output " + std::to_string(k) + " is null");
          continue;
        }
        if (v->owner() != &g) error(at, "output " + valueText(v) + " belongs to graph " + graphText(v->owner()));
        if (v->producer() != &n)
          error(at, "output " + valueText(v) + " records " +
                        (v->producer() ? v->producer()->label() : std::string("no producer")) + " as its producer");
        define(v, "output " + std::to_string(k) + " of " + nodeText(n, i));
      }
    }

    for (size_t k = 0; k < g.outputs().size(); ++k) {
      const Value* v = g.outputs()[k];
      if (!v) {
        error(where, "graph output #" + std::to_string(k) + " is null");
      } else if (!visible(v, defined, outer)) {
        error(where, "graph output #" + std::to_string(k) + " " + valueText(v) + " " +
                         whyUndefined(v, g, {}, SIZE_MAX, cycle));
      }
    }
  }

  const VerifyOptions& opt_;
  std::vector<std::string> errors_;
};

}  // namespace

std::string layoutDefect(const Layout& l, const TensorType& t) {
  if (l.isPlain()) return "";
  const std::string name = layoutName(l);
  if (layoutNeedsBlock(l) && l.block() == 0) return "layout " + name + " needs a block size (" + name + "8...)";
  if (knownLayoutRank(l) >= 0 && !layoutNeedsBlock(l) && l.block() != 0)
    return "layout family " + l.family() + " takes no block size, got " + name;
  const int rank = knownLayoutRank(l);
  if (rank >= 0 && t.shape.rankKnown() && int(t.shape.rank()) != rank)
    return "layout " + name + " needs rank " + std::to_string(rank) + ", the value is " + t.str();
  return "";
}

std::string quantizationDefect(const Quantization& q, const TensorType& t) {
  const Tensor& s = q.scale;
  if (!s.defined()) return "quantization without a scale";
  if (s.dtype() != DataType::kF32 && s.dtype() != DataType::kF16 && s.dtype() != DataType::kBF16)
    return std::string("quantization scale is ") + s.summary() + ", expected f32, f16 or bf16";
  if (!q.axis && s.rank() != 0)
    return "per-tensor quantization needs a scalar scale, got " + s.summary() + " (per axis: give an axis)";
  if (q.axis) {
    if (s.rank() != 1) return "per-axis quantization needs a 1-D scale, got " + s.summary();
    if (*q.axis < 0) return "quantization axis must be >= 0, got " + std::to_string(*q.axis);
    if (t.shape.rankKnown()) {
      if (*q.axis >= int64_t(t.shape.rank()))
        return "quantization axis " + std::to_string(*q.axis) + " is out of range for " + t.str();
      const Dim& d = t.shape[size_t(*q.axis)];
      if (d.isStatic() && d.value() != s.dim(0))
        return "quantization scale " + s.summary() + " does not match dim " + std::to_string(*q.axis) + " of " +
               t.str();
    }
  }
  for (int64_t i = 0; i < s.numel(); ++i) {
    const double v = s.getDouble(i);
    if (!(v > 0) || v == INFINITY)
      return "quantization scale #" + std::to_string(i) + " is " + std::to_string(v) + ", expected finite and > 0";
  }
  const Tensor& z = q.zeroPoint;
  if (z.defined()) {
    if (!isInteger(z.dtype()) && !isFloat(z.dtype()))
      return "quantization zero point is " + z.summary() + ", expected an integer or 8-bit float type";
    if (z.dims() != s.dims()) return "quantization zero point " + z.summary() + " does not match scale " + s.summary();
    if ((isInteger(t.dtype) || (isFloat(t.dtype) && bitWidth(t.dtype) <= 8)) && z.dtype() != t.dtype)
      return "quantization zero point is " + z.summary() + " but the value is " + t.str();
  }
  return "";
}

std::vector<std::string> verifyErrors(const Graph& graph, const VerifyOptions& options) {
  return Verifier(options).run(graph);
}

void verify(const Graph& graph, const VerifyOptions& options) {
  std::vector<std::string> errors = verifyErrors(graph, options);
  if (errors.empty()) return;
  std::string msg = "verify: " + std::to_string(errors.size()) + " defect(s)";
  for (const std::string& e : errors) msg += "\n  " + e;
  throw Error(ErrorCode::kInvalidModel, msg);
}

}  // namespace anvil::ir
