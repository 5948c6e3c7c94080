// batchnorm-folding: fold an inference-mode BatchNormalization into the Conv,
// ConvTranspose or Gemm that feeds it. With s = scale / sqrt(var + eps) per output channel,
// the weights of channel m are multiplied by s[m] and the bias becomes
// (b[m] - mean[m]) * s[m] + B[m]; the BatchNormalization node disappears.
//
// Declines (leaves the graph alone) unless: the BN is in inference mode with only its Y
// output read; every BN parameter, the weights and the bias are constants; the linear
// op's output is read only by the BN; the element type is f32 or f64 (folded in double,
// rounded once). A lone BatchNormalization is kept: its reference kernel is already one
// pass, and Mul + Add would add a node.
//
// scale-into-matmul: the same for a constant Mul by a per-output-column scale c (its dims 1
// but the last) after MatMul(X, W) [+ bias]: W's columns and the bias are multiplied by c
// (ConvNeXt's layer scale, once transpose-cancellation has moved it next to its MatMul).
#include <cmath>

#include "passes/linear_rewrite.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

using ir::DataType;
using ir::Tensor;

bool foldableType(DataType t) { return t == DataType::kF32 || t == DataType::kF64; }

// The BN's per-channel affine map y = a[c] * x + b[c], or false when BN is not foldable.
bool bnAffine(const ir::Graph& g, const ir::Node& bn, int64_t channels, std::vector<double>* a,
              std::vector<double>* b) {
  if (bn.attrs().getInt("training_mode", 0) != 0) return false;
  for (size_t o = 1; o < bn.numOutputs(); ++o)
    if (bn.output(o) && !bn.output(o)->name().empty() && (!g.users(bn.output(o)).empty() || isGraphOutput(g, bn.output(o))))
      return false;
  const Tensor* p[4];
  for (size_t i = 0; i < 4; ++i) {
    p[i] = linear::fixedConstant(g, bn.input(i + 1));
    if (!p[i] || p[i]->numel() != channels) return false;
    if (p[i]->dtype() != DataType::kF32 && p[i]->dtype() != DataType::kF64 && p[i]->dtype() != DataType::kF16 &&
        p[i]->dtype() != DataType::kBF16)
      return false;
  }
  const double eps = bn.attrs().getFloat("epsilon", 1e-5f);
  a->resize(size_t(channels));
  b->resize(size_t(channels));
  for (int64_t c = 0; c < channels; ++c) {
    const double var = p[3]->getDouble(c);
    if (!(var + eps > 0)) return false;  // would not be finite
    const double s = p[0]->getDouble(c) / std::sqrt(var + eps);
    (*a)[size_t(c)] = s;
    (*b)[size_t(c)] = p[1]->getDouble(c) - p[2]->getDouble(c) * s;
  }
  return true;
}

// Conv / ConvTranspose: scales W per output channel, returns the new (W, B) initializers.
bool foldIntoConv(ir::Graph& g, ir::Node& conv, ir::Node& bn) {
  const Tensor* w = linear::fixedConstant(g, conv.input(1));
  if (!w || !foldableType(w->dtype()) || w->rank() < 3) return false;
  const Tensor* bias = conv.input(2) ? linear::fixedConstant(g, conv.input(2)) : nullptr;
  if (conv.input(2) && (!bias || bias->dtype() != w->dtype())) return false;
  const bool transpose = conv.op() == "ConvTranspose";
  const int64_t group = conv.attrs().getInt("group", 1);
  if (group < 1 || w->dim(0) % group != 0) return false;
  // Output channels: Conv W [M, C/g, k...]; ConvTranspose W [C, M/g, k...] with M = g * W[1].
  const int64_t M = transpose ? w->dim(1) * group : w->dim(0);
  if (bias && bias->numel() != M) return false;
  std::vector<double> a, b;
  if (!bnAffine(g, bn, M, &a, &b)) return false;
  // BN normalizes dim 1 of the conv output, whose extent is M.
  const ir::Shape& ys = conv.output(0)->shape();
  if (!ys.rankKnown() || ys.rank() < 2 || !ys[1].isStatic() || ys[1].value() != M) return false;

  Tensor nw(w->dtype(), w->dims());
  const int64_t inner = w->numel() / (w->dim(0) * w->dim(1));  // kernel elements
  const int64_t cPerGroup = w->dim(0) / group;                  // ConvTranspose: input channels per group
  for (int64_t i0 = 0; i0 < w->dim(0); ++i0)
    for (int64_t i1 = 0; i1 < w->dim(1); ++i1) {
      const int64_t m = transpose ? (i0 / cPerGroup) * w->dim(1) + i1 : i0;
      for (int64_t k = 0; k < inner; ++k) {
        const int64_t idx = (i0 * w->dim(1) + i1) * inner + k;
        nw.setDouble(idx, w->getDouble(idx) * a[size_t(m)]);
      }
    }
  Tensor nb(w->dtype(), {M});
  for (int64_t m = 0; m < M; ++m) nb.setDouble(m, (bias ? bias->getDouble(m) : 0.0) * a[size_t(m)] + b[size_t(m)]);

  const std::string base = conv.input(1)->name();
  ir::Value* wv = linear::addConstant(g, base + "_bn", std::move(nw));
  ir::Value* bv = linear::addConstant(g, base + "_bn_bias", std::move(nb));
  linear::replaceChain(g, bn.output(0), {&bn, &conv}, conv.op(), "", conv.name(), {conv.input(0), wv, bv},
                       conv.attrs());
  return true;
}

// Gemm [M, N] followed by BN over N: scales op(B)'s columns; C becomes beta*C*a + b.
bool foldIntoGemm(ir::Graph& g, ir::Node& gemm, ir::Node& bn) {
  const Tensor* bw = linear::fixedConstant(g, gemm.input(1));
  if (!bw || !foldableType(bw->dtype()) || bw->rank() != 2) return false;
  const ir::Shape& ys = gemm.output(0)->shape();
  if (!ys.rankKnown() || ys.rank() != 2) return false;
  const bool transB = gemm.attrs().getInt("transB", 0) != 0;
  const int64_t N = transB ? bw->dim(0) : bw->dim(1), K = transB ? bw->dim(1) : bw->dim(0);
  const Tensor* c = gemm.input(2) ? linear::fixedConstant(g, gemm.input(2)) : nullptr;
  if (gemm.input(2) && (!c || c->dtype() != bw->dtype())) return false;
  // C must be a row vector (broadcast over M): scalar, [N], [1], [1, N] or [1, 1].
  if (c) {
    if (c->rank() > 2 || (c->rank() == 2 && c->dim(0) != 1)) return false;
    if (c->numel() != 1 && c->numel() != N) return false;
  }
  std::vector<double> a, b;
  if (!bnAffine(g, bn, N, &a, &b)) return false;
  const double beta = gemm.attrs().getFloat("beta", 1.0f);

  Tensor nw(bw->dtype(), bw->dims());
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t idx = transB ? n * K + k : k * N + n;
      nw.setDouble(idx, bw->getDouble(idx) * a[size_t(n)]);
    }
  Tensor nc(bw->dtype(), {N});
  for (int64_t n = 0; n < N; ++n) {
    const double cv = c ? beta * c->getDouble(c->numel() == 1 ? 0 : n) : 0.0;
    nc.setDouble(n, cv * a[size_t(n)] + b[size_t(n)]);
  }
  const std::string base = gemm.input(1)->name();
  ir::Value* wv = linear::addConstant(g, base + "_bn", std::move(nw));
  ir::Value* cv = linear::addConstant(g, base + "_bn_bias", std::move(nc));
  ir::Attributes attrs = gemm.attrs();
  attrs.set("beta", 1.0f);
  linear::replaceChain(g, bn.output(0), {&bn, &gemm}, "Gemm", "", gemm.name(), {gemm.input(0), wv, cv}, attrs);
  return true;
}

bool foldBn(ir::Graph& g, ir::Node& bn) {
  if (bn.numInputs() < 5 || !bn.input(0)) return false;
  ir::Value* x = bn.input(0);
  if (!foldableType(x->dtype()) || !hasSingleUse(g, x)) return false;
  if (ir::Node* conv = producerIs(x, "Conv")) return foldIntoConv(g, *conv, bn);
  if (ir::Node* convT = producerIs(x, "ConvTranspose")) return foldIntoConv(g, *convT, bn);
  if (ir::Node* gemm = producerIs(x, "Gemm")) return foldIntoGemm(g, *gemm, bn);
  return false;
}

// Mul(MatMul(X, W) [+ b], c) -> MatMul(X, W * c) [+ b * c], c and b per output column.
bool foldScaleIntoMatMul(ir::Graph& g, ir::Node& mul) {
  if (mul.numInputs() != 2 || !mul.input(0) || !mul.input(1)) return false;
  const Tensor* c = nullptr;
  ir::Value* v = nullptr;
  for (size_t i = 0; i < 2 && !c; ++i)
    if ((c = linear::fixedConstant(g, mul.input(i)))) v = mul.input(1 - i);
  if (!c || !v || !foldableType(c->dtype()) || !hasSingleUse(g, v)) return false;
  ir::Node* add = producerIs(v, "Add");
  ir::Node* mm = add ? nullptr : producerIs(v, "MatMul");
  const Tensor* bias = nullptr;
  ir::Value* bv = nullptr;
  if (add) {
    for (size_t i = 0; i < 2 && !mm; ++i) {
      ir::Node* m = producerIs(add->input(i), "MatMul");
      if (m && hasSingleUse(g, add->input(i))) mm = m, bv = add->input(1 - i);
    }
    bias = bv ? linear::fixedConstant(g, bv) : nullptr;
    if (!mm || !bias || bias->dtype() != c->dtype()) return false;
  }
  if (!mm) return false;
  const Tensor* w = linear::fixedConstant(g, mm->input(1));
  const ir::Shape& ys = v->shape();
  if (!w || w->dtype() != c->dtype() || w->rank() != 2 || !ys.rankKnown() || ys.rank() < 1) return false;
  const int64_t K = w->dim(0), N = w->dim(1);
  // c and the bias: every dim 1 but the last (N or 1), no rank beyond the output's.
  auto perColumn = [&](const Tensor* t) {
    if (t->rank() > ys.rank()) return false;
    for (size_t i = 0; i + 1 < t->rank(); ++i)
      if (t->dim(i) != 1) return false;
    return t->numel() == 1 || (t->rank() >= 1 && t->dim(t->rank() - 1) == N);
  };
  if (!perColumn(c) || (bias && !perColumn(bias))) return false;
  const ir::Dim& last = ys[ys.rank() - 1];
  if (!last.isStatic() || last.value() != N) return false;
  auto at = [](const Tensor* t, int64_t n) { return t->getDouble(t->numel() == 1 ? 0 : n); };
  Tensor nw(w->dtype(), w->dims());
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) nw.setDouble(k * N + n, w->getDouble(k * N + n) * at(c, n));
  const std::string base = mm->input(1)->name();
  ir::Value* wv = linear::addConstant(g, base + "_scaled", std::move(nw));
  if (!add) {
    linear::replaceChain(g, mul.output(0), {&mul, mm}, "MatMul", "", mm->name(), {mm->input(0), wv}, mm->attrs());
    return true;
  }
  Tensor nb(bias->dtype(), {N});
  for (int64_t n = 0; n < N; ++n) nb.setDouble(n, at(bias, n) * at(c, n));
  ir::Value* nbv = linear::addConstant(g, bv->name() + "_scaled", std::move(nb));
  ir::Node* m2 = g.addNode("MatMul", "", mm->name(), {mm->input(0), wv},
                           {linear::freshName(g, mm->output(0)->name() + "_scaled")});
  m2->copyMetaFrom(*mm);
  m2->output(0)->setType(mm->output(0)->type());
  linear::replaceChain(g, mul.output(0), {&mul, add, mm}, "Add", "", add->name(), {m2->output(0), nbv}, add->attrs());
  return true;
}

}  // namespace

PassResult foldBatchNorm(ir::Graph& g, const PassContext& /*ctx*/) {
  std::string stats;
  const int n = applyPatterns(g,
                              {{"bn-into-linear", "BatchNormalization", "", foldBn},
                               {"scale-into-matmul", "Mul", "", foldScaleIntoMatMul}},
                              &stats);
  return {n, stats};
}

}  // namespace anvil::passes
