// Reference kernels of the anvil-domain linear ops (anvil.FusedConv / FusedGemm /
// FusedMatMul): the reference kernel of the ONNX op on the first inputs, then the epilogue
// (ir/ops/anvil_linear.h) element by element, rounding to the element type after every
// step exactly as the unfused chain of nodes would.
#include <algorithm>
#include <cstring>

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

// anvil.FusedConvDw: the 1x1 Conv's reference kernel and epilogue (inputs 0-2, the node's
// own activation attributes), then the depthwise Conv of that with its bias and activation,
// each output the bias plus its taps in row-major order, rounded as the unfused nodes round.
template <typename T>
void depthwise(const Tensor& v, const Tensor& wd, const Tensor* bd, const ir::linear::DwWindow& w,
               const Epilogue& e, Tensor& out) {
  using C = ComputeT<T>;
  const int64_t N = v.dim(0), E = v.dim(1), H = v.dim(2), W = v.dim(3), OH = out.dim(2), OW = out.dim(3);
  const T* vp = v.data<T>();
  const T* fp = wd.data<T>();
  const T* bp = bd ? bd->data<T>() : nullptr;
  T* op = out.data<T>();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < E; ++c) {
      const T* plane = vp + (n * E + c) * H * W;
      const T* f = fp + c * w.kH * w.kW;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          C acc = bp ? C(bp[c]) : C(0);
          for (int64_t i = 0; i < w.kH; ++i) {
            const int64_t ih = oh * w.sH - w.pads[0] + i;
            if (ih < 0 || ih >= H) continue;
            for (int64_t j = 0; j < w.kW; ++j) {
              const int64_t iw = ow * w.sW - w.pads[1] + j;
              if (iw >= 0 && iw < W) acc += C(plane[ih * W + iw]) * C(f[i * w.kW + j]);
            }
          }
          op[((n * E + c) * OH + oh) * OW + ow] = T(ir::linear::activate(e, C(T(acc))));
        }
    }
}

void fusedConvDwKernel(KernelContext& ctx) {
  Epilogue de;
  ir::linear::DwWindow w;
  std::string err = ir::linear::readEpilogue(ctx.node().attrs(), &de, "dw_");
  if (err.empty()) err = ir::linear::readDwWindow(ctx.node().attrs(), &w);
  ctx.check(err.empty(), err);
  ctx.check(ctx.hasInput(ir::linear::kDwFilterInput), "the depthwise filter Wd (input 3) is required");
  const Tensor v = cpu::fusedLinearEpilogue(ctx.node(), runBase(ctx, "Conv", 3), nullptr);
  const Tensor& wd = ctx.input(ir::linear::kDwFilterInput);
  const Tensor* bd = ctx.hasInput(ir::linear::kDwBiasInput) ? &ctx.input(ir::linear::kDwBiasInput) : nullptr;
  ctx.check(v.rank() == 4, "X must be [N, C, H, W]");
  const int64_t E = v.dim(1);
  ctx.check(wd.dtype() == v.dtype() && wd.dims() == std::vector<int64_t>{E, 1, w.kH, w.kW},
            "Wd must be [E, 1, kh, kw] of X's type, got " + wd.summary());
  ctx.check(!bd || (bd->dtype() == v.dtype() && bd->dims() == std::vector<int64_t>{E}),
            "Bd must be [E] of X's type");
  const int64_t spanH = v.dim(2) + w.pads[0] + w.pads[2] - w.kH, spanW = v.dim(3) + w.pads[1] + w.pads[3] - w.kW;
  ctx.check(spanH >= 0 && spanW >= 0, "the depthwise window is larger than the padded image");
  Tensor& out = ctx.allocOutput(0, v.dtype(), {v.dim(0), E, spanH / w.sH + 1, spanW / w.sW + 1});
  dispatchFloat(v.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    depthwise<T>(v, wd, bd, w, de, out);
  });
}

// The 4-D tensor t with its dims in the order perm (out dim i = t's dim perm[i]), any
// fixed-size element type.
Tensor permute4(const Tensor& t, const int (&perm)[4]) {
  const size_t es = t.nbytes() / size_t(std::max<int64_t>(1, t.numel()));
  std::vector<int64_t> od(4), stride(4);
  for (int i = 0; i < 4; ++i) od[size_t(i)] = t.dim(size_t(perm[i]));
  stride[3] = 1;
  for (int i = 2; i >= 0; --i) stride[size_t(i)] = stride[size_t(i) + 1] * t.dim(size_t(i) + 1);
  Tensor out(t.dtype(), od);
  if (t.numel() == 0) return out;
  const char* src = static_cast<const char*>(t.raw());
  char* dst = static_cast<char*>(out.mutableRaw());
  int64_t o = 0;
  for (int64_t a = 0; a < od[0]; ++a)
    for (int64_t b = 0; b < od[1]; ++b)
      for (int64_t c = 0; c < od[2]; ++c)
        for (int64_t d = 0; d < od[3]; ++d, ++o) {
          const int64_t i = a * stride[size_t(perm[0])] + b * stride[size_t(perm[1])] +
                            c * stride[size_t(perm[2])] + d * stride[size_t(perm[3])];
          std::memcpy(dst + size_t(o) * es, src + size_t(i) * es, es);
        }
  return out;
}

// anvil.ConvNhwc: the Conv reference kernel on X read as [N, C, H, W], its result stored
// channels-last: the same values as Transpose -> Conv -> Transpose.
void convNhwcKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.rank() == 4, "X must be [N, H, W, C], got " + x.summary());
  ctx.check(x.dtype() != DataType::kString, "X must be numeric");
  const Tensor xt = permute4(x, {0, 3, 1, 2});
  const RefKernel* k = KernelRegistry::instance().find("Conv");
  ctx.check(k != nullptr, "Conv has no reference kernel");
  std::vector<const Tensor*> in{&xt};
  for (size_t i = 1; i < 3; ++i) in.push_back(ctx.hasInput(i) ? &ctx.input(i) : nullptr);
  KernelContext inner(ctx.node(), in, [&ctx](const ir::Graph&, const std::vector<Tensor>&) -> std::vector<Tensor> {
    ctx.fail("Conv has no subgraph");
  });
  (*k)(inner);
  const Tensor& y = inner.outputs()[0];
  ctx.check(y.rank() == 4, "ConvNhwc is 2-D only");
  Tensor& out = ctx.allocOutput(0, y.dtype(), {y.dim(0), y.dim(2), y.dim(3), y.dim(1)});
  const Tensor yt = permute4(y, {0, 2, 3, 1});
  if (yt.numel() > 0) std::memcpy(out.mutableRaw(), yt.raw(), yt.nbytes());
}

}  // namespace

void registerAnvilLinearKernels(KernelRegistry& r) {
  r.add("FusedConv", "anvil", [](KernelContext& ctx) { fusedKernel(ctx, "Conv", 3, false); });
  r.add("FusedGemm", "anvil", [](KernelContext& ctx) { fusedKernel(ctx, "Gemm", 3, false); });
  r.add("FusedMatMul", "anvil", [](KernelContext& ctx) { fusedKernel(ctx, "MatMul", 2, true); });
  r.add("FusedConvDw", "anvil", fusedConvDwKernel);
  r.add("ConvNhwc", "anvil", convNhwcKernel);
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
