// Reference kernels of the anvil-domain linear ops (anvil.FusedConv / FusedGemm /
// FusedMatMul): the reference kernel of the ONNX op on the first inputs, then the epilogue
// (ir/ops/anvil_linear.h) element by element, rounding to the element type after every
// step exactly as the unfused chain of nodes would.
#include "cpu/dispatch.h"
#include "cpu/reference.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::kernels {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;

// Output 0 of the reference kernel of `op` run on inputs [0, n) of ctx's node.
Tensor runBase(KernelContext& ctx, const std::string& op, size_t n) {
  const RefKernel* k = KernelRegistry::instance().find(op);
  ctx.check(k != nullptr, op + " has no reference kernel");
  std::vector<const Tensor*> in;
  for (size_t i = 0; i < n; ++i) in.push_back(ctx.hasInput(i) ? &ctx.input(i) : nullptr);
  KernelContext inner(ctx.node(), in, [&ctx](const ir::Graph&, const std::vector<Tensor>&) -> std::vector<Tensor> {
    ctx.fail("a linear op has no subgraph");
  });
  (*k)(inner);
  return inner.outputs()[0];
}

template <typename T>
void epilogue(const Epilogue& e, const Tensor& y, const Tensor* bias, const Tensor* z, Tensor& out) {
  using C = ComputeT<T>;
  const T* yp = y.data<T>();
  T* op = out.data<T>();
  const T* zp = e.residual ? z->data<T>() : nullptr;
  const T* bp = bias ? bias->data<T>() : nullptr;
  const int64_t nb = bias ? bias->numel() : 0, last = y.rank() ? y.dim(y.rank() - 1) : 1;
  auto round = [](C v) { return C(T(v)); };
  for (int64_t i = 0; i < y.numel(); ++i) {
    C v = C(yp[i]);
    if (bp) v = round(v + C(bp[nb == 1 ? 0 : i % last]));
    if (zp && e.addFirst) v = round(v + C(zp[i]));
    if (e.act == Activation::kSilu) {  // Sigmoid then Mul: two rounded steps
      Epilogue s;
      s.act = Activation::kSigmoid;
      v = round(v * round(ir::linear::activate(s, v)));
    } else {
      v = round(ir::linear::activate(e, v));
    }
    if (zp && !e.addFirst) v = round(v + C(zp[i]));
    op[i] = T(v);
  }
}

// The fused op: base op on inputs [0, nBase), then (FusedMatMul) the bias of input 2, then
// the epilogue.
void fusedKernel(KernelContext& ctx, const std::string& baseOp, size_t nBase, bool matmulBias) {
  Epilogue e;
  const std::string err = ir::linear::readEpilogue(ctx.attrs(), &e);
  if (!err.empty()) ctx.fail(err);
  ctx.check(ctx.hasInput(ir::linear::kResidualInput) == e.residual,
            "input 3 (Z) must be given exactly when has_residual is 1");
  Tensor y = runBase(ctx, baseOp, nBase);
  const Tensor* bias = matmulBias && ctx.hasInput(2) ? &ctx.input(2) : nullptr;
  if (bias) {
    const int64_t last = y.rank() ? y.dim(y.rank() - 1) : 1;
    ctx.check(bias->dtype() == y.dtype() && bias->rank() == 1 && (bias->numel() == last || bias->numel() == 1),
              "bias must be [" + std::to_string(last) + "] of the output's type, got " + bias->summary());
  }
  if (e.residual) {
    const Tensor& z = ctx.input(ir::linear::kResidualInput);
    ctx.check(z.dtype() == y.dtype() && z.dims() == y.dims(),
              "Z must have the output's type and shape " + y.summary() + ", got " + z.summary());
  }
  Tensor& out = ctx.allocOutput(0, y.dtype(), y.dims());
  dispatchFloat(y.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    epilogue<T>(e, y, bias, e.residual ? &ctx.input(ir::linear::kResidualInput) : nullptr, out);
  });
}

}  // namespace

void registerAnvilLinearKernels(KernelRegistry& r) {
  r.add("FusedConv", "anvil", [](KernelContext& ctx) { fusedKernel(ctx, "Conv", 3, false); });
  r.add("FusedGemm", "anvil", [](KernelContext& ctx) { fusedKernel(ctx, "Gemm", 3, false); });
  r.add("FusedMatMul", "anvil", [](KernelContext& ctx) { fusedKernel(ctx, "MatMul", 2, true); });
}

}  // namespace anvil::cpu::kernels

namespace anvil::cpu {

Tensor fusedLinearEpilogue(const ir::Node& node, const Tensor& v, const Tensor* z) {
  ir::linear::Epilogue e;
  const std::string err = ir::linear::readEpilogue(node.attrs(), &e);
  ANVIL_CHECK(err.empty(), ErrorCode::kInvalidModel, node.label(), ": ", err);
  ANVIL_CHECK(!e.residual || (z && z->dtype() == v.dtype() && z->dims() == v.dims()), ErrorCode::kInvalidModel,
              node.label(), ": Z must have the output's type and shape ", v.summary());
  Tensor out(v.dtype(), v.dims());
  dispatchFloat(v.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    kernels::epilogue<T>(e, v, nullptr, z, out);
  });
  return out;
}

}  // namespace anvil::cpu
