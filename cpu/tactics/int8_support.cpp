// The shared conditions of the INT8 kernel families (see int8_support.h).
#include "cpu/tactics/int8_support.h"

#include <climits>
#include <cmath>
#include <cstring>
#include <vector>

#include "cpu/tactics/int8_gemm.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::tactics {

bool perTensorQuant(const ir::Value* v, float* scale, int32_t* zp) {
  if (!v || !v->quantization() || !v->quantization()->perTensor()) return false;
  const ir::Quantization& q = *v->quantization();
  if (q.scale.dtype() != DataType::kF32 || q.scale.numel() != 1 || q.scale.rank() != 0) return false;
  const float s = q.scale.data<float>()[0];
  if (!(s > 0.0f) || !std::isfinite(s)) return false;
  int32_t z = 0;
  if (q.zeroPoint.defined()) {
    if (q.zeroPoint.dtype() != DataType::kU8 || q.zeroPoint.numel() != 1) return false;
    z = q.zeroPoint.data<uint8_t>()[0];
  }
  if (scale) *scale = s;
  if (zp) *zp = z;
  return true;
}

bool loweredQuant(const ir::Value* v, float* scale, int32_t* zp) {
  if (v && v->quantization() && v->quantization()->zeroPoint.defined() && v->quantization()->zeroPoint.rank() != 0)
    return false;
  return perTensorQuant(v, scale, zp);
}

bool weightQuant(const ir::Node& n, int64_t featureAxis, int64_t N, const float** scales) {
  *scales = nullptr;
  const ir::Value* w = n.input(1);
  if (!w || !w->quantization()) return true;
  const ir::Quantization& q = *w->quantization();
  if (q.perTensor() || *q.axis != featureAxis) return false;
  if (q.scale.dtype() != DataType::kF32 || q.scale.rank() != 1 || q.scale.numel() != N) return false;
  for (int64_t i = 0; i < N; ++i)
    if (!(q.scale.data<float>()[i] > 0.0f) || !std::isfinite(q.scale.data<float>()[i])) return false;
  if (q.zeroPoint.defined()) {
    if (q.zeroPoint.dtype() != DataType::kI8 || q.zeroPoint.numel() != N) return false;
    for (int64_t i = 0; i < N; ++i)
      if (q.zeroPoint.data<int8_t>()[i] != 0) return false;
  }
  *scales = q.scale.data<float>();
  return true;
}

bool convAttrsOf(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  if (!w.rankKnown() || w.rank() != 4 || !w[2].isStatic() || !w[3].isStatic()) return false;
  const ir::Attributes& at = n.attrs();
  a->group = at.getInt("group", 1);
  a->kH = w[2].value();
  a->kW = w[3].value();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {a->kH, a->kW});
  if (ks.size() != 2 || ks[0] != a->kH || ks[1] != a->kW) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || d.size() != 2 || s[0] <= 0 || s[1] <= 0 || d[0] <= 0 || d[1] <= 0) return false;
  a->sH = s[0], a->sW = s[1], a->dH = d[0], a->dW = d[1];
  return decodeConvPads(at, a);
}

bool int8MixedParams(const ir::Node& n) {
  const ir::Attributes& tp = n.tacticParams();
  return tp.has("fp32_channels") || tp.has("adaptive_tau") || tp.has("adaptive_test");
}

bool int8ModelRequant(const ir::Node& n, int64_t N, Int8ModelRequant* r) {
  *r = Int8ModelRequant();
  const ir::Attributes& tp = n.tacticParams();
  if (!tp.has("qdq_out_scale") && !tp.has("qdq_bias")) return true;
  const float s = tp.getFloat("qdq_out_scale", 0.0f);
  const std::vector<int64_t> b = tp.getInts("qdq_bias");
  if (!(s > 0.0f) || !std::isfinite(s) || int64_t(b.size()) != N) return false;
  for (int64_t v : b)
    if (v < INT32_MIN || v > INT32_MAX) return false;
  r->on = true;
  r->outScale = s;
  r->bias.assign(b.begin(), b.end());
  return true;
}

void int8FeatureOperands(const ir::Node& n, int32_t zx, const std::vector<int32_t>& colsum,
                         const std::vector<float>& wScale, float sx, float alpha, int64_t padded, std::string* zc,
                         std::string* sc) {
  const int64_t N = int64_t(colsum.size());
  Int8ModelRequant r;
  ANVIL_CHECK(int8ModelRequant(n, N, &r), ErrorCode::kInvalidModel, n.label(),
              ": qdq_bias must hold one int32 per output feature and qdq_out_scale a finite scale > 0");
  ANVIL_CHECK(!r.on || alpha == 1.0f, ErrorCode::kInternal, n.label(), ": a requantized node has alpha 1");
  // A Q/DQ chain link (passes/qdq_fusion.cpp): the input holds the producer's value in
  // steps of its grid (scale 1), the real scale is qdq_x_scale.
  sx = n.tacticParams().getFloat("qdq_x_scale", sx);
  zc->assign(size_t(padded) * 4, '\0');
  sc->assign(size_t(padded) * 4, '\0');
  for (int64_t f = 0; f < N; ++f) {
    const int64_t z64 = int64_t(zx) * colsum[size_t(f)] - (r.on ? r.bias[size_t(f)] : 0);
    ANVIL_CHECK(z64 >= INT32_MIN && z64 <= INT32_MAX, ErrorCode::kUnsupported, n.label(),
                ": the zero-point correction less the int32 bias of feature ", f, " leaves int32");
    const int32_t z = int32_t(z64);
    // onnxruntime's output scale: X_scale * W_scale[f] / Y_scale, left to right in f32.
    const float s = r.on ? (sx * wScale[size_t(f)]) / r.outScale : (sx * wScale[size_t(f)]) * alpha;
    std::memcpy(zc->data() + f * 4, &z, 4);
    std::memcpy(sc->data() + f * 4, &s, 4);
  }
}

namespace {
// A u8 value this node can read or write: per-tensor quantized, and the node not mixed.
bool lowerable(const ir::Node& n, const ir::Value* v) { return perTensorQuant(v, nullptr, nullptr) && !int8MixedParams(n); }

// The node's requantization, if any, is well formed and on a plain Conv / Gemm / MatMul
// (no fused epilogue, Gemm alpha 1, no f32 components) with an f32 output and no bias
// input (the bias is in qdq_bias).
bool requantFits(const ir::Node& n, int64_t N) {
  Int8ModelRequant r;
  if (!int8ModelRequant(n, N, &r)) return false;
  if (n.tacticParams().has("qdq_x_scale")) {
    const float xs = n.tacticParams().getFloat("qdq_x_scale", 0.0f);
    if (!(xs > 0.0f) || !std::isfinite(xs) || int8MixedParams(n)) return false;
  }
  if (!r.on) return true;
  if (!n.domain().empty() || int8MixedParams(n) || n.attrs().getFloat("alpha", 1.0f) != 1.0f) return false;
  if (n.input(2) || !n.output(0)) return false;
  // A lowered output holds round(value) + z: its grid is the steps (scale 1).
  float s = 0.0f;
  if (n.output(0)->dtype() != DataType::kF32 && !(n.output(0)->dtype() == DataType::kU8 && perTensorQuant(n.output(0), &s, nullptr) && s == 1.0f))
    return false;
  return n.op() == "Conv" || n.op() == "Gemm" || n.op() == "MatMul";
}
}  // namespace

bool int8LinearSupports(const ir::Node& n, const std::vector<ir::TensorType>& in, int64_t K, int64_t N,
                        int64_t featureAxis) {
  if (n.precision() != DataType::kI8 || !perTensorQuant(n.input(0), nullptr, nullptr)) return false;
  if (!n.input(1) || !n.input(1)->isInitializer() || K < 1 || K > kI8MaxK || N < 1) return false;
  if (!requantFits(n, N)) return false;
  const float* s;
  const bool xOk = in[0].dtype == DataType::kF32 || (in[0].dtype == DataType::kU8 && lowerable(n, n.input(0)));
  const ir::Value* y = n.output(0);
  const bool yOk = y && (y->dtype() == DataType::kF32 || (y->dtype() == DataType::kU8 && lowerable(n, y)));
  return weightQuant(n, featureAxis, N, &s) && xOk && in[1].dtype == DataType::kF32 && yOk;
}

bool int8FusedEpilogueSupports(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  const size_t zi = ir::linear::kResidualInput;
  if (zi >= in.size() || in[zi].dtype != DataType::kU8) return fusedEpilogueSupported(n, in);
  if (!lowerable(n, n.input(zi))) return false;
  std::vector<ir::TensorType> t = in;
  t[zi].dtype = DataType::kF32;
  return fusedEpilogueSupported(n, t);
}

bool supportsPlainInt8Conv2d(const ir::Node& n, const std::vector<ir::TensorType>& in, bool fused, int64_t maxPixels) {
  auto isF32 = [](const ir::TensorType& t) { return t.dtype == DataType::kF32; };
  auto rank4 = [](const ir::TensorType& t) { return t.shape.rankKnown() && t.shape.rank() == 4; };
  auto absent = [&](size_t i) { return i >= in.size() || in[i].dtype == DataType::kUndefined; };
  if (n.precision() != DataType::kI8 || in.size() < 2 || !rank4(in[0]) || !rank4(in[1])) return false;
  if (!in[0].shape.isStatic() || !in[1].shape.isStatic()) return false;
  if (!absent(2) && (!isF32(in[2]) || !in[2].shape.rankKnown() || in[2].shape.rank() != 1)) return false;
  if (int8MixedParams(n)) return false;
  if (!perTensorQuant(n.input(0), nullptr, nullptr) || !n.input(1) || !n.input(1)->isInitializer() || !isF32(in[1]))
    return false;
  if (in[0].dtype == DataType::kU8) {
    if (!loweredQuant(n.input(0), nullptr, nullptr)) return false;
  } else if (!isF32(in[0])) {
    return false;
  }
  const ir::Value* y = n.output(0);
  if (!y) return false;
  if (y->dtype() == DataType::kU8) {
    if (!loweredQuant(y, nullptr, nullptr)) return false;
  } else if (y->dtype() != DataType::kF32) {
    return false;
  }
  ConvAttrs a;
  if (!convAttrsOf(n, in[1].shape, &a) || a.group != 1) return false;
  const std::vector<int64_t> xd = in[0].shape.extents(), wd = in[1].shape.extents();
  const int64_t K = wd[1] * wd[2] * wd[3];
  if (K < 1 || K > kI8MaxK || wd[0] < 1) return false;
  Conv2dGeom g;
  if (!conv2dGeometry(a, xd.data(), wd[0], &g) || g.C != wd[1]) return false;
  if (g.OH * g.OW > maxPixels) return false;
  const float* s;
  if (!weightQuant(n, 0, wd[0], &s) || !requantFits(n, wd[0])) return false;
  if (!fused) return true;
  ir::linear::Epilogue e;
  if (!ir::linear::readEpilogue(n.attrs(), &e).empty()) return false;
  const size_t zi = ir::linear::kResidualInput;
  const bool hasZ = !absent(zi);
  if (hasZ != e.residual) return false;
  if (!hasZ || isF32(in[zi])) return true;
  return in[zi].dtype == DataType::kU8 && loweredQuant(n.input(zi), nullptr, nullptr);
}

std::vector<int64_t> staticExtents(const runtime::PrepareInfo& info, size_t i, const char* what) {
  ANVIL_CHECK(i < info.maxTypes.size() && info.maxTypes[i].shape.isStatic(), ErrorCode::kInternal,
              info.node->label(), ": ", what, " has no static extents at the profile's max shapes");
  return info.maxTypes[i].shape.extents();
}

Int8ConvSetup readInt8ConvSetup(const runtime::PrepareInfo& info, bool fused) {
  const ir::Node& n = *info.node;
  Int8ConvSetup p;
  if (fused) p.epi = EpilogueParams::of(readFusedEpilogue(n));
  ANVIL_CHECK(perTensorQuant(n.input(0), &p.scale, &p.zeroPoint), ErrorCode::kInvalidModel, n.label(),
              ": input 0 has no per-tensor u8 quantization");
  p.invScale = 1.0f / p.scale;
  p.inU8 = info.maxTypes[0].dtype == DataType::kU8;
  const size_t zi = ir::linear::kResidualInput;
  if (fused && p.epi.residual && zi < info.maxTypes.size() && info.maxTypes[zi].dtype == DataType::kU8) {
    p.zU8 = true;
    ANVIL_CHECK(loweredQuant(n.input(zi), &p.zScale, &p.zZero), ErrorCode::kInvalidModel, n.label(),
                ": Z is u8 without a per-tensor quantization");
  }
  if (n.output(0)->dtype() == DataType::kU8) {
    p.outU8 = true;
    float sy;
    ANVIL_CHECK(loweredQuant(n.output(0), &sy, &p.outZero), ErrorCode::kInvalidModel, n.label(),
                ": the u8 output has no per-tensor quantization");
    p.outInv = 1.0f / sy;
  }
  ANVIL_CHECK(convAttrsOf(n, info.maxTypes[1].shape, &p.conv) && p.conv.group == 1, ErrorCode::kInvalidModel,
              n.label(), ": not a 2-D single-group Conv");
  const std::vector<int64_t> xd = staticExtents(info, 0, "X"), wd = staticExtents(info, 1, "W");
  ANVIL_CHECK(conv2dGeometry(p.conv, xd.data(), wd[0], &p.g) && wd[1] == p.g.C, ErrorCode::kInvalidModel, n.label(),
              ": X ", info.maxTypes[0].str(), " and W ", info.maxTypes[1].str(), " do not fit the Conv attributes");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w && w->dtype() == DataType::kF32, ErrorCode::kInternal, n.label(),
              ": the INT8 Conv needs a constant f32 weight (input 1)");
  p.weights = w->data<float>();
  ANVIL_CHECK(weightQuant(n, 0, p.g.M, &p.givenScales), ErrorCode::kInvalidModel, n.label(),
              ": the weight's quantization is not per output channel with zero offsets");
  return p;
}

RowFinish rowFinishOf(const ir::linear::Epilogue& e, bool epilogue, float zScale, int32_t zZero, float yInv,
                      int32_t yZero) {
  RowFinish f;
  f.epilogue = epilogue;
  f.act = int(e.act);
  f.p0 = e.p0;
  f.p1 = e.p1;
  f.addFirst = e.addFirst;
  f.zScale = zScale;
  f.zZero = zZero;
  f.yInv = yInv;
  f.yZero = yZero;
  return f;
}

}  // namespace anvil::cpu::tactics
