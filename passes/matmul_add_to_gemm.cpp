// matmul-add-to-gemm: rewrite MatMul(A, B) + C as Gemm(A, B, C) when A and B are 2-D, B
// is a constant (weights) and C is a constant that broadcasts to [M, N] without growing
// the result (scalar, [N], [1, N], [M, 1], [M, N]). Two nodes become one, and Gemm's bias
// is applied in the GEMM's output pass.
//
// MatMuls with a batched A ([B, S, K] x [K, N], transformers) are left as they are: the
// Reshapes that would make them 2-D cost more than they save; linear-epilogue-fusion
// folds their bias into anvil.FusedMatMul instead. Only f32/f64 (f16 would round once
// instead of twice).
#include "passes/linear_rewrite.h"
#include "passes/pattern.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

bool rank2(const ir::Value* v) { return v->shape().rankKnown() && v->shape().rank() == 2; }

bool toGemm(ir::Graph& g, ir::Node& add) {
  if (add.numInputs() != 2 || !add.input(0) || !add.input(1)) return false;
  for (int side = 0; side < 2; ++side) {
    ir::Value* y = add.input(size_t(side));
    ir::Value* cv = add.input(size_t(1 - side));
    ir::Node* mm = producerIs(y, "MatMul");
    const ir::Tensor* c = linear::fixedConstant(g, cv);
    if (!mm || !c || !hasSingleUse(g, y)) continue;
    const ir::DataType t = y->dtype();
    if ((t != ir::DataType::kF32 && t != ir::DataType::kF64) || c->dtype() != t) continue;
    ir::Value* a = mm->input(0);
    ir::Value* b = mm->input(1);
    const ir::Tensor* bw = linear::fixedConstant(g, b);
    if (!rank2(a) || !bw || bw->rank() != 2 || !rank2(y)) continue;
    const ir::Dim& M = y->shape()[0];
    const int64_t N = bw->dim(1);
    if (c->rank() > 2) continue;
    bool ok = true;
    if (c->rank() >= 1) {
      const int64_t cn = c->dim(c->rank() - 1);
      ok = cn == 1 || cn == N;
    }
    if (ok && c->rank() == 2) {
      const int64_t cm = c->dim(0);
      ok = cm == 1 || (M.isStatic() && M.value() == cm);
    }
    if (!ok) continue;
    linear::replaceChain(g, add.output(0), {&add, mm}, "Gemm", "", mm->name(), {a, b, cv}, {}, mm);
    return true;
  }
  return false;
}

}  // namespace

PassResult fuseMatMulAdd(ir::Graph& g, const PassContext& /*ctx*/) {
  std::string stats;
  const int n = applyPatterns(g, {{"matmul-add-to-gemm", "Add", "", toGemm}}, &stats);
  return {n, stats};
}

}  // namespace anvil::passes
