// layernorm-fusion: rewrites the decomposed layer normalization exporters emit (opset < 17
// torch, TF, hand-written) into one ONNX LayerNormalization:
//
//   mean = ReduceMean(x, axes)          d = Sub(x, mean)
//   var  = ReduceMean(Pow(d, 2) | Mul(d, d), axes)
//   n    = Div(d, Sqrt(Add(var, eps)))  | Mul(d, Reciprocal(Sqrt(...))) | Mul(d, Pow(Add(var, eps), -0.5))
//   y    = Mul(n, gamma)   (optional, either operand order)
//   z    = Add(y, beta)    (optional, either operand order)
//   ->  z = LayerNormalization(x, gamma, beta) {axis=-k, epsilon=eps}
//
// Declines when the reduced axes are not the trailing k axes of x (LayerNormalization
// normalizes over [axis, rank)), keepdims is 0, the two reductions differ, an intermediate
// has another reader, eps/gamma/beta are not true constants, or gamma/beta would broadcast
// beyond the normalized dims. Without gamma the fused node gets a ones Scale (static
// normalized dims needed).
#include "passes/fusion_util.h"
#include "passes/linear_rewrite.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

using fusion::isScalar;
using fusion::otherOperand;
using fusion::soleUser;

// gamma/beta: a true constant of x's type whose dims (right-aligned) are 1 or the dim of x,
// within the trailing k axes. The fused node needs it with exactly the normalized shape:
// `value` when the constant already has it, else `expanded` (a broadcast copy).
struct Param {
  ir::Value* value = nullptr;
  std::optional<ir::Tensor> expanded;
};

std::optional<Param> normalizedParam(const ir::Graph& g, ir::Value* p, const ir::Value* x, size_t k) {
  const ir::Tensor* t = trueConstantOf(g, p);
  if (!t || t->dtype() != x->dtype() || t->rank() > k) return std::nullopt;
  const ir::Shape& xs = x->shape();
  const size_t r = xs.rank();
  bool staticNorm = true;
  std::vector<int64_t> norm;
  for (size_t i = r - k; i < r; ++i) {
    staticNorm = staticNorm && xs[i].isStatic();
    norm.push_back(xs[i].value());
  }
  if (!staticNorm) {
    // Symbolic normalized dims: only a full-rank parameter without broadcast dims is usable.
    if (t->rank() != k) return std::nullopt;
    for (size_t i = 0; i < k; ++i)
      if (xs[r - k + i].isStatic() ? t->dim(i) != norm[i] : t->dim(i) == 1) return std::nullopt;
    return Param{p, std::nullopt};
  }
  for (size_t i = 0; i < t->rank(); ++i) {
    const int64_t pd = t->dim(i), xd = norm[k - t->rank() + i];
    if (pd != 1 && pd != xd) return std::nullopt;
  }
  if (t->dims() == norm) return Param{p, std::nullopt};
  // Expand: element i of the normalized shape reads the broadcast source element.
  ir::Tensor out(t->dtype(), norm);
  const size_t pr = t->rank();
  std::vector<int64_t> pos(k, 0);
  for (int64_t i = 0; i < out.numel(); ++i) {
    int64_t src = 0, stride = 1;
    for (size_t j = pr; j-- > 0;) {
      const int64_t pd = t->dim(j);
      src += (pd == 1 ? 0 : pos[k - pr + j]) * stride;
      stride *= pd;
    }
    out.setDouble(i, t->getDouble(src));
    for (size_t j = k; j-- > 0;) {
      if (++pos[j] < norm[j]) break;
      pos[j] = 0;
    }
  }
  return Param{nullptr, std::move(out)};
}

bool fuseAt(ir::Graph& g, ir::Node& norm) {
  // norm: Div(d, Sqrt(ve)) or Mul(d, Reciprocal(Sqrt(ve))) or Mul(d, Pow(ve, -0.5)).
  if (norm.numInputs() != 2 || norm.numOutputs() != 1) return false;
  std::vector<ir::Node*> dead;
  ir::Value* d = nullptr;
  ir::Value* ve = nullptr;
  auto viaSqrt = [&](ir::Value* cand, ir::Value* denom, bool reciprocal) {
    ir::Node* sq = nullptr;
    std::vector<ir::Node*> chain;
    if (reciprocal) {
      ir::Node* rec = producerIs(denom, "Reciprocal");
      if (rec && hasSingleUse(g, denom)) {
        sq = producerIs(rec->input(0), "Sqrt");
        if (sq && !hasSingleUse(g, rec->input(0))) sq = nullptr;
        if (sq) chain = {rec, sq};
      }
      ir::Node* pw = producerIs(denom, "Pow");
      if (!sq && pw && hasSingleUse(g, denom) && isScalar(g, pw->input(1), -0.5)) {
        d = cand;
        ve = pw->input(0);
        dead = {pw};
        return true;
      }
    } else {
      sq = producerIs(denom, "Sqrt");
      if (sq && !hasSingleUse(g, denom)) sq = nullptr;
      if (sq) chain = {sq};
    }
    if (!sq) return false;
    d = cand;
    ve = sq->input(0);
    dead = chain;
    return true;
  };
  if (norm.op() == "Div") {
    if (!viaSqrt(norm.input(0), norm.input(1), false)) return false;
  } else if (norm.op() == "Mul") {
    if (!viaSqrt(norm.input(0), norm.input(1), true) && !viaSqrt(norm.input(1), norm.input(0), true)) return false;
  } else {
    return false;
  }
  // ve = Add(var, eps)
  ir::Node* addEps = producerIs(ve, "Add");
  if (!addEps || !hasSingleUse(g, ve)) return false;
  ir::Value* var = nullptr;
  double eps = 0;
  for (int i = 0; i < 2 && !var; ++i) {
    auto s = fusion::scalarOf(g, addEps->input(size_t(i)));
    if (s && *s >= 0 && fusion::scalarKeepsShape(addEps->input(size_t(i)), addEps->input(size_t(1 - i)))) {
      var = addEps->input(size_t(1 - i));
      eps = *s;
    }
  }
  if (!var) return false;
  // var = ReduceMean(Pow(d, 2) | Mul(d, d), axes)
  ir::Node* rmVar = producerIs(var, "ReduceMean");
  if (!rmVar || !hasSingleUse(g, var)) return false;
  ir::Value* sqv = rmVar->input(0);
  ir::Node* square = producerIs(sqv, "Pow");
  if (square) {
    if (square->input(0) != d || !isScalar(g, square->input(1), 2.0, 0.0)) return false;
  } else {
    square = producerIs(sqv, "Mul");
    if (!square || square->input(0) != d || square->input(1) != d) return false;
  }
  if (!hasSingleUse(g, sqv)) return false;
  // d = Sub(x, mean), mean = ReduceMean(x, axes)
  ir::Node* sub = producerIs(d, "Sub");
  if (!sub || !fusion::usedOnlyBy(g, d, {square, &norm})) return false;
  ir::Value* x = sub->input(0);
  ir::Value* mean = sub->input(1);
  ir::Node* rmMean = producerIs(mean, "ReduceMean");
  if (!rmMean || rmMean->input(0) != x || !hasSingleUse(g, mean)) return false;
  if (!fusion::isFloatType(x->dtype()) || !x->shape().rankKnown() || x->shape().rank() == 0) return false;
  auto axesMean = fusion::reduceAxes(g, rmMean, true), axesVar = fusion::reduceAxes(g, rmVar, true);
  if (!axesMean || !axesVar || *axesMean != *axesVar) return false;
  const size_t r = x->shape().rank(), k = axesMean->size();
  for (size_t i = 0; i < k; ++i)
    if ((*axesMean)[i] != int64_t(r - k + i)) return false;  // not the trailing axes
  // The chain must keep x's shape (no broadcasting against a bigger eps etc.).
  if (norm.output(0)->shape() != x->shape()) return false;

  dead.insert(dead.end(), {addEps, rmVar, square, sub, rmMean, &norm});
  ir::Value* last = norm.output(0);
  std::optional<Param> gamma, beta;
  if (ir::Node* mul = soleUser(g, last); mul && mul->op() == "Mul" && mul->domain().empty()) {
    if (ir::Value* gv = otherOperand(mul, last)) {
      gamma = normalizedParam(g, gv, x, k);
      if (gamma) {
        dead.push_back(mul);
        last = mul->output(0);
      }
    }
  }
  if (ir::Node* add = soleUser(g, last); add && add->op() == "Add" && add->domain().empty()) {
    if (ir::Value* bv = otherOperand(add, last)) {
      beta = normalizedParam(g, bv, x, k);
      if (beta) {
        dead.push_back(add);
        last = add->output(0);
      }
    }
  }
  const std::string base = norm.name().empty() ? "layernorm" : norm.name();
  auto materialize = [&](Param& p, const std::string& suffix) {
    return p.value ? p.value : linear::addConstant(g, base + suffix, std::move(*p.expanded));
  };
  if (!gamma) {
    std::vector<int64_t> normDims;
    for (size_t i = r - k; i < r; ++i) {
      if (!x->shape()[i].isStatic()) return false;
      normDims.push_back(x->shape()[i].value());
    }
    ir::Tensor ones(x->dtype(), normDims);
    for (int64_t i = 0; i < ones.numel(); ++i) ones.setDouble(i, 1.0);
    gamma = Param{nullptr, std::move(ones)};
  }
  ir::Value* gammaV = materialize(*gamma, "_scale");
  ir::Value* betaV = beta ? materialize(*beta, "_bias") : nullptr;
  ir::Attributes attrs;
  attrs.set("axis", int64_t(-int64_t(k)));
  attrs.set("epsilon", float(eps));
  std::vector<ir::Value*> inputs = {x, gammaV};
  if (betaV) inputs.push_back(betaV);
  linear::replaceChain(g, last, dead, "LayerNormalization", "", base + "/LayerNormalization", inputs, std::move(attrs));
  return true;
}

}  // namespace

PassResult fuseLayerNorm(ir::Graph& g, const PassContext& /*ctx*/) {
  std::vector<Pattern> patterns = {
      {"layernorm-div", "Div", "", [](ir::Graph& gr, ir::Node& n) { return fuseAt(gr, n); }},
      {"layernorm-mul", "Mul", "", [](ir::Graph& gr, ir::Node& n) { return fuseAt(gr, n); }},
  };
  PassResult r;
  r.changed = applyPatterns(g, patterns, &r.stats);
  return r;
}

}  // namespace anvil::passes
