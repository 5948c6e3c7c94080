// Schemas of the anvil-domain linear ops: Conv / Gemm / MatMul with a fused epilogue
// (bias, activation, residual Add; see ir/ops/anvil_linear.h). Each keeps its ONNX op's
// inputs and attributes, adds the residual Z as input 3, and infers its output exactly
// like the ONNX op (the ONNX op's own inference runs on the first inputs).
#include "ir/op_schema.h"
#include "ir/ops/anvil_linear.h"
#include "ir/ops/infer_util.h"

namespace anvil::ir::ops {

namespace {

// Runs the ONNX op's inference on inputs [0, n) of the fused node.
TensorType baseInference(const InferContext& c, const std::string& baseOp, size_t n) {
  const OpSchema* base = OpRegistry::instance().find(baseOp);
  c.check(base != nullptr, baseOp + " is not in the op table");
  std::vector<const TensorType*> types;
  std::vector<const Tensor*> values;
  std::vector<const std::vector<Dim>*> shapeValues;
  for (size_t i = 0; i < n; ++i) {
    types.push_back(c.hasInput(i) ? &c.inputType(i) : nullptr);
    values.push_back(c.inputValue(i));
    shapeValues.push_back(c.inputShapeValue(i));
  }
  InferContext inner(c.node(), types, values, shapeValues);
  base->infer(inner);
  return inner.outputs()[0];
}

bool isComputeFloat(DataType t) {
  return t == DataType::kF32 || t == DataType::kF64 || t == DataType::kF16 || t == DataType::kBF16;
}

void checkEpilogue(const InferContext& c, const TensorType& out) {
  linear::Epilogue e;
  const std::string err = linear::readEpilogue(c.attrs(), &e);
  if (!err.empty()) c.fail(err);
  c.check(isComputeFloat(out.dtype), std::string("fused linear ops take float types, got ") + dtypeName(out.dtype));
  const bool hasZ = c.hasInput(linear::kResidualInput);
  c.check(hasZ == e.residual, e.residual ? "has_residual=1 needs the residual input Z (input 3)"
                                         : "input 3 (Z) is given but has_residual is 0");
  if (!hasZ) return;
  const TensorType& z = c.inputType(linear::kResidualInput);
  c.check(z.dtype == out.dtype, std::string("Z must have the output's type ") + dtypeName(out.dtype) + ", got " +
                                    dtypeName(z.dtype));
  if (!z.shape.rankKnown() || !out.shape.rankKnown()) return;
  c.check(z.shape.rank() == out.shape.rank(), "Z " + z.shape.str() + " must have the output's shape " + out.shape.str());
  for (size_t i = 0; i < z.shape.rank(); ++i)
    if (z.shape[i].isStatic() && out.shape[i].isStatic())
      c.check(z.shape[i].value() == out.shape[i].value(),
              "Z " + z.shape.str() + " must have the output's shape " + out.shape.str());
}

void inferFusedConv(InferContext& c) {
  TensorType out = baseInference(c, "Conv", 3);
  checkEpilogue(c, out);
  c.setOutput(0, out);
}

void inferFusedGemm(InferContext& c) {
  TensorType out = baseInference(c, "Gemm", 3);
  checkEpilogue(c, out);
  c.setOutput(0, out);
}

// MatMul, plus a bias of the output's last dim: [N] (or one value).
void inferFusedMatMul(InferContext& c) {
  TensorType out = baseInference(c, "MatMul", 2);
  c.check(isComputeFloat(out.dtype), std::string("FusedMatMul takes float types, got ") + dtypeName(out.dtype));
  if (c.hasInput(2)) {
    const TensorType& b = c.inputType(2);
    c.check(b.dtype == out.dtype, "bias must have the output's type");
    if (b.shape.rankKnown()) {
      c.check(b.shape.rank() == 1, "bias must be 1-D [N], got " + b.shape.str());
      if (out.shape.rankKnown() && out.shape.rank() >= 1) {
        const Dim& n = out.shape[out.shape.rank() - 1];
        if (b.shape[0].isStatic() && n.isStatic())
          c.check(b.shape[0].value() == n.value() || b.shape[0].value() == 1,
                  "bias " + b.shape.str() + " does not match the output's last dim " + n.str());
      }
    }
  }
  checkEpilogue(c, out);
  c.setOutput(0, out);
}

// anvil.FusedConvDw (ir/ops/anvil_linear.h): [N, E, OH, OW].
void inferFusedConvDw(InferContext& c) {
  const TensorType& x = c.inputType(0);
  c.check(isComputeFloat(x.dtype), std::string("FusedConvDw takes float types, got ") + dtypeName(x.dtype));
  for (size_t i = 1; i <= linear::kDwBiasInput; ++i)
    if (c.hasInput(i)) c.check(c.inputDtype(i) == x.dtype, "every input must have X's type");
  c.check(c.hasInput(linear::kDwFilterInput), "the depthwise filter Wd (input 3) is required");
  linear::Epilogue pe, de;
  std::string err = linear::readEpilogue(c.attrs(), &pe);
  if (err.empty()) err = linear::readEpilogue(c.attrs(), &de, "dw_");
  if (!err.empty()) c.fail(err);
  c.check(!pe.residual && !de.residual, "FusedConvDw has no residual input");
  linear::DwWindow w;
  err = linear::readDwWindow(c.attrs(), &w);
  if (!err.empty()) c.fail(err);
  const Shape &xs = x.shape, &ws = c.inputShape(1), &ds = c.inputShape(linear::kDwFilterInput);
  c.check(!xs.rankKnown() || xs.rank() == 4, "X must be [N, C, H, W], got " + xs.str());
  c.check(!ws.rankKnown() || ws.rank() == 4, "W must be [E, C, 1, 1], got " + ws.str());
  c.check(!ds.rankKnown() || ds.rank() == 4, "Wd must be [E, 1, kh, kw], got " + ds.str());
  Dim e;
  if (ws.rankKnown()) {
    e = ws[0];
    c.check((!ws[2].isStatic() || ws[2].value() == 1) && (!ws[3].isStatic() || ws[3].value() == 1),
            "W must be a 1x1 filter, got " + ws.str());
    if (xs.rankKnown() && xs[1].isStatic() && ws[1].isStatic())
      c.check(xs[1].value() == ws[1].value(), "X's channels " + xs[1].str() + " differ from W's " + ws[1].str());
  }
  if (ds.rankKnown()) {
    if (e.isStatic() && ds[0].isStatic()) c.check(ds[0].value() == e.value(), "Wd must have E = " + e.str() + " filters");
    c.check(!ds[1].isStatic() || ds[1].value() == 1, "Wd must be [E, 1, kh, kw], got " + ds.str());
    c.check((!ds[2].isStatic() || ds[2].value() == w.kH) && (!ds[3].isStatic() || ds[3].value() == w.kW),
            "Wd " + ds.str() + " differs from dw_kernel_shape");
  }
  for (size_t b : {size_t(2), linear::kDwBiasInput})
    if (c.hasInput(b) && c.inputShape(b).rankKnown()) {
      const Shape& bs = c.inputShape(b);
      c.check(bs.rank() == 1 && (!bs[0].isStatic() || !e.isStatic() || bs[0].value() == e.value()),
              "the biases must be [E], got " + bs.str());
    }
  if (!xs.rankKnown()) {
    c.setOutput(0, x.dtype, Shape({Dim(), e, Dim(), Dim()}));
    return;
  }
  auto out = [&](const Dim& in, int64_t k, int64_t s, int64_t p0, int64_t p1) {
    if (!in.isStatic()) return Dim();
    const int64_t span = in.value() + p0 + p1 - k;
    c.check(span >= 0, "the depthwise window is larger than the padded image");
    return Dim(span / s + 1);
  };
  c.setOutput(0, x.dtype,
              Shape({xs[0], e, out(xs[2], w.kH, w.sH, w.pads[0], w.pads[2]), out(xs[3], w.kW, w.sW, w.pads[1], w.pads[3])}));
}

// anvil.ConvNhwc: Conv on channels-last activations. X [N, H, W, C] -> Y [N, OH, OW, M]; W,
// B and every attribute as the ONNX Conv's (2-D only). Conv's own inference runs on X's
// extents read as [N, C, H, W].
void inferConvNhwc(InferContext& c) {
  const TensorType& x = c.inputType(0);
  c.check(!x.shape.rankKnown() || x.shape.rank() == 4, "X must be [N, H, W, C], got " + x.shape.str());
  if (!x.shape.rankKnown()) {
    c.setOutput(0, x.dtype, Shape({Dim(), Dim(), Dim(), Dim()}));
    return;
  }
  const Shape& s = x.shape;
  TensorType nchw{x.dtype, Shape({s[0], s[3], s[1], s[2]})};
  const OpSchema* conv = OpRegistry::instance().find("Conv");
  c.check(conv != nullptr, "Conv is not in the op table");
  std::vector<const TensorType*> types{&nchw};
  std::vector<const Tensor*> values{nullptr};
  std::vector<const std::vector<Dim>*> shapeValues{nullptr};
  for (size_t i = 1; i < 3; ++i) {
    types.push_back(c.hasInput(i) ? &c.inputType(i) : nullptr);
    values.push_back(c.inputValue(i));
    shapeValues.push_back(c.inputShapeValue(i));
  }
  InferContext inner(c.node(), types, values, shapeValues);
  conv->infer(inner);
  const TensorType& y = inner.outputs()[0];
  c.check(y.shape.rankKnown() && y.shape.rank() == 4, "ConvNhwc is 2-D only");
  c.setOutput(0, y.dtype, Shape({y.shape[0], y.shape[2], y.shape[3], y.shape[1]}));
}

}  // namespace

void registerAnvilLinearOps(OpRegistry& r) {
  const uint32_t fused = kTraitLinear | kTraitFused;
  r.add({.name = "FusedConv", .domain = "anvil", .minInputs = 2, .maxInputs = 4, .traits = fused,
         .infer = inferFusedConv,
         .summary = "Conv(X, W, B) then the epilogue: activation and residual Add of Z (input 3)"});
  r.add({.name = "FusedGemm", .domain = "anvil", .minInputs = 2, .maxInputs = 4, .traits = fused,
         .infer = inferFusedGemm,
         .summary = "Gemm(A, B, C) then the epilogue: activation and residual Add of Z (input 3)"});
  r.add({.name = "FusedMatMul", .domain = "anvil", .minInputs = 2, .maxInputs = 4, .traits = fused,
         .infer = inferFusedMatMul,
         .summary = "MatMul(A, B) + bias[N] (input 2) then the epilogue: activation and residual Add of Z"});
  r.add({.name = "FusedConvDw", .domain = "anvil", .minInputs = 4, .maxInputs = 5, .traits = fused,
         .infer = inferFusedConvDw,
         .summary = "1x1 Conv(X, W, B) and its activation, then the depthwise Conv of that (Wd, Bd: inputs 3, "
                    "4; dw_kernel_shape, dw_strides, dw_pads) and its activation (dw_activation): one node, the "
                    "1x1 result never stored whole"});
  r.add({.name = "ConvNhwc", .domain = "anvil", .minInputs = 2, .maxInputs = 3, .traits = kTraitNone,
         .infer = inferConvNhwc,
         .summary = "Conv(X, W, B) on channels-last activations: X [N, H, W, C], Y [N, OH, OW, M]; W, B and the "
                    "attributes as Conv's (2-D). Made by transpose-cancellation from Transpose -> depthwise Conv "
                    "-> Transpose"});
}

}  // namespace anvil::ir::ops
