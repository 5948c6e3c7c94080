// What the CUDA linear tactics share (linear.cpp's SIMT f32 ones and linear_tc.cpp's tensor-core
// ones): the fused epilogue in the kernels' terms, the forms a Gemm C or a FusedMatMul bias takes
// into the GEMM epilogue, the Conv window, and the step-time checks around them.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "cuda/linear.h"
#include "ir/graph.h"
#include "ir/ops/anvil_linear.h"
#include "ir/ops/nn_util.h"
#include "runtime/kernel.h"

namespace anvil::cuda::tactics::linear_common {

namespace lin = ir::linear;

// The epilogue as the kernels run it: clip(act(linear + bias + Z)). act -1: none; Clip is
// no activation and its bounds.
struct EpilogueCode {
  std::int32_t act = -1;
  bool residual = false;
  float clipLo = -std::numeric_limits<float>::infinity();
  float clipHi = std::numeric_limits<float>::infinity();
  float actAlpha = 0.0f, actBeta = 0.0f;  // LeakyRelu's alpha; HardSigmoid's alpha and beta
};

template <typename Desc>
inline void setEpilogue(Desc* d, const EpilogueCode& e) {
  if (e.act >= 0) d->activation = static_cast<Activation>(e.act);
  d->clipLo = e.clipLo;
  d->clipHi = e.clipHi;
  d->actAlpha = e.actAlpha;
  d->actBeta = e.actBeta;
}

// The node's epilogue in the kernels' terms, or false when they cannot run it (an activation
// the GPU epilogue lacks, or the residual added after a real activation or clip). Plain ONNX ops have
// none.
inline bool decodeEpilogue(const ir::Node& n, EpilogueCode* out) {
  *out = {};
  if (n.domain() != "anvil") return true;
  lin::Epilogue e;
  if (!lin::readEpilogue(n.attrs(), &e).empty()) return false;
  switch (e.act) {
    case lin::Activation::kNone: break;
    case lin::Activation::kRelu: out->act = static_cast<std::int32_t>(Activation::kRelu); break;
    case lin::Activation::kSigmoid: out->act = static_cast<std::int32_t>(Activation::kSigmoid); break;
    case lin::Activation::kTanh: out->act = static_cast<std::int32_t>(Activation::kTanh); break;
    case lin::Activation::kGelu: out->act = static_cast<std::int32_t>(Activation::kGeluErf); break;
    case lin::Activation::kSilu: out->act = static_cast<std::int32_t>(Activation::kSilu); break;
    case lin::Activation::kClip:  // mobilenet's Relu6
      out->clipLo = e.p0;
      out->clipHi = e.p1;
      break;
    case lin::Activation::kLeakyRelu:
      out->act = static_cast<std::int32_t>(Activation::kLeakyRelu);
      out->actAlpha = e.p0;
      break;
    case lin::Activation::kHardSigmoid:
      out->act = static_cast<std::int32_t>(Activation::kHardSigmoid);
      out->actAlpha = e.p0;
      out->actBeta = e.p1;
      break;
    case lin::Activation::kHardSwish: out->act = static_cast<std::int32_t>(Activation::kHardSwish); break;
    case lin::Activation::kGeluTanh: out->act = static_cast<std::int32_t>(Activation::kGeluTanh); break;
    default: return false;
  }
  if (e.residual && !e.addFirst && e.act != lin::Activation::kNone) return false;
  out->residual = e.residual;
  return true;
}

inline bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
inline bool present(const std::vector<ir::TensorType>& types, size_t i) {
  return i < types.size() && types[i].dtype != DataType::kUndefined;
}
inline bool rankIs(const ir::TensorType& t, size_t r) { return t.shape.rankKnown() && t.shape.rank() == r; }
// A static extent of dim i (negative from the back), or -1.
inline int64_t staticDim(const ir::TensorType& t, int i) {
  if (!t.shape.rankKnown()) return -1;
  const int r = int(t.shape.rank());
  const int k = i < 0 ? i + r : i;
  if (k < 0 || k >= r || !t.shape[size_t(k)].isStatic()) return -1;
  return t.shape[size_t(k)].value();
}

// Every present input f32, the residual (when the epilogue has one) present; the node's
// output f32.
inline bool commonSupports(const ir::Node& n, const std::vector<ir::TensorType>& types, EpilogueCode* e) {
  if (!decodeEpilogue(n, e)) return false;
  for (size_t i = 0; i < types.size(); ++i)
    if (present(types, i) && !isF32(types[i])) return false;
  if (e->residual != present(types, lin::kResidualInput)) return false;
  if (n.numOutputs() != 1 || n.output(0)->dtype() != DataType::kF32) return false;
  return true;
}

// The residual Z must be a dense tensor of the output's extents.
inline void checkResidual(const runtime::StepArgs& a, const EpilogueCode& e) {
  if (!e.residual) return;
  const runtime::TensorView& z = a.in(int(lin::kResidualInput));
  const runtime::TensorView& y = a.out(0);
  bool same = z.rank == y.rank;
  for (int i = 0; same && i < y.rank; ++i) same = z.dims[i] == y.dims[i];
  if (!same) a.fail("the residual Z must have the output's extents");
}

// A row-broadcast operand (Gemm C of [N], [1, N], [1] or a scalar; a FusedMatMul bias [1])
// folded into n floats scale * c.
inline std::string foldBias(const ir::Tensor& c, int64_t n, float scale) {
  std::string blob(size_t(n) * sizeof(float), '\0');
  auto* out = reinterpret_cast<float*>(blob.data());
  const float* in = c.data<float>();
  for (int64_t j = 0; j < n; ++j) out[j] = scale * in[c.numel() == 1 ? 0 : j];
  return blob;
}

// ---- Gemm / anvil.FusedGemm ----

// How C reaches the kernel's epilogue.
enum class GemmC : std::int32_t {
  kNone,
  kBias,      // [N] or [1, N] with beta = 1: the kernel's bias as stored
  kBiasBlob,  // constant and broadcast along rows: beta * C folded into an [N] blob
  kZ,         // [M, N]: the kernel's beta * Z (only without a residual)
};

struct GemmParams {
  EpilogueCode epilogue;
  GemmC c = GemmC::kNone;
  bool transA = false, transB = false;
  float alpha = 1.0f, beta = 1.0f;
};

// C's form, or nullopt when the kernels cannot apply it. N is op(B)'s column count (-1 when
// not static).
inline std::optional<GemmC> gemmCForm(const ir::Node& n, const std::vector<ir::TensorType>& types, int64_t bigN,
                               bool residual) {
  if (!present(types, 2)) return GemmC::kNone;
  const ir::TensorType& c = types[2];
  if (!c.shape.rankKnown() || c.shape.rank() > 2) return std::nullopt;
  const float beta = n.attrs().getFloat("beta", 1.0f);
  const bool constant = n.input(2) && n.input(2)->isInitializer();
  const int64_t last = c.shape.rank() == 0 ? 1 : staticDim(c, -1);
  const int64_t rows = c.shape.rank() == 2 ? staticDim(c, 0) : 1;
  const bool rowBroadcast = rows == 1 && (last == bigN || last == 1) && last >= 0;
  if (rowBroadcast && last == bigN && beta == 1.0f) return GemmC::kBias;
  if (rowBroadcast && constant && bigN >= 0) return GemmC::kBiasBlob;
  if (c.shape.rank() == 2 && rows != 1 && last != 1 && !residual) return GemmC::kZ;  // [M, N], checked at run
  return std::nullopt;
}

// gemmPrepare's params (the transposes, alpha, beta, the epilogue and C's form); a C folded
// into a bias goes to prepared->blobs[0].
inline GemmParams prepareGemmParams(const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  const ir::Node& n = *info.node;
  GemmParams p;
  decodeEpilogue(n, &p.epilogue);
  p.transA = n.attrs().getInt("transA", 0) != 0;
  p.transB = n.attrs().getInt("transB", 0) != 0;
  p.alpha = n.attrs().getFloat("alpha", 1.0f);
  p.beta = n.attrs().getFloat("beta", 1.0f);
  const int64_t bigN = staticDim(info.maxTypes[1], p.transB ? 0 : 1);
  const std::optional<GemmC> form = gemmCForm(n, info.maxTypes, bigN, p.epilogue.residual);
  ANVIL_CHECK(form.has_value(), ErrorCode::kUnsupported, n.label(), ": C ", info.maxTypes[2].str(),
              " does not reach the CUDA GEMM's epilogue");
  p.c = *form;
  if (p.c == GemmC::kBiasBlob) {
    prepared->blobs.push_back(foldBias(*info.constants[2], bigN, p.beta));
    prepared->packedInputs.push_back(2);
  }
  return p;
}

// The Gemm's alpha, epilogue, C and residual on d (an m x n output).
inline void setGemmEpilogue(const runtime::StepArgs& a, const GemmParams& p, int64_t m, int64_t n, GemmDesc* d) {
  d->alpha = p.alpha;
  setEpilogue(d, p.epilogue);
  switch (p.c) {
    case GemmC::kNone: break;
    case GemmC::kBias:
      if (a.in(2).numel() != n) a.fail("Gemm: C does not hold N values");
      d->bias = a.in(2).data;
      break;
    case GemmC::kBiasBlob:
      if (a.numBlobs < 1 || a.blobs[0].bytes != size_t(n) * sizeof(float)) a.fail("Gemm: the folded C is not N wide");
      d->bias = a.blobs[0].data;
      break;
    case GemmC::kZ: {
      const runtime::TensorView& c = a.in(2);
      if (c.rank != 2 || c.dims[0] != m || c.dims[1] != n) a.fail("Gemm: C is neither [M, N] nor a row broadcast");
      d->z = c.data;
      d->ldz = n;
      d->beta = p.beta;
      break;
    }
  }
  if (p.epilogue.residual) {
    d->z = a.in(int(lin::kResidualInput)).data;
    d->ldz = n;
    d->beta = 1.0f;
  }
}

// ---- MatMul / anvil.FusedMatMul ----

enum class MatMulBias : std::int32_t { kNone, kDirect, kBlob };

inline std::optional<MatMulBias> matmulBiasForm(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  if (n.domain() != "anvil" || !present(types, 2)) return MatMulBias::kNone;
  const ir::TensorType& b = types[2];
  const int64_t bigN = types[1].shape.rankKnown() && types[1].shape.rank() == 1 ? 1 : staticDim(types[1], -1);
  const int64_t len = staticDim(b, 0);
  if (!rankIs(b, 1) || len < 0) return std::nullopt;
  const bool constant = n.input(2) && n.input(2)->isInitializer();
  if (bigN >= 0 && len == bigN) return MatMulBias::kDirect;
  if (bigN >= 0 && len == 1 && constant) return MatMulBias::kBlob;  // one value for N columns
  if (bigN < 0 && len != 1) return MatMulBias::kDirect;              // [N] against a dynamic N: checked at run
  return std::nullopt;
}

// The FusedMatMul bias as the kernel reads it (a folded one in prepared blob 0), or null.
inline const void* matmulBias(const runtime::StepArgs& a, MatMulBias form, int64_t n) {
  if (form == MatMulBias::kDirect) {
    if (a.in(2).numel() != n) a.fail("FusedMatMul: the bias does not hold N values");
    return a.in(2).data;
  }
  if (form == MatMulBias::kBlob) {
    if (a.numBlobs < 1 || a.blobs[0].bytes != size_t(n) * sizeof(float)) a.fail("FusedMatMul: the folded bias is not N wide");
    return a.blobs[0].data;
  }
  return nullptr;
}

// ---- Conv / anvil.FusedConv ----

struct ConvParams {
  EpilogueCode epilogue;
  std::int32_t autoPad = 0;  // ir::nn::AutoPad
  int64_t strides[2] = {1, 1}, dilations[2] = {1, 1}, pads[4] = {0, 0, 0, 0};
  int64_t group = 1;
  bool hasBias = false;
};

// The 2-D window attributes; false when they are invalid.
inline bool readConvWindow(const ir::Node& n, const std::vector<ir::TensorType>& types, ir::nn::Window* w) {
  std::vector<int64_t> kernel;
  if (types.size() >= 2 && rankIs(types[1], 4)) {
    const int64_t r = staticDim(types[1], 2), s = staticDim(types[1], 3);
    if (r >= 0 && s >= 0) kernel = {r, s};
  }
  return ir::nn::readWindow(n.attrs(), 2, kernel, w).empty();
}

inline bool anyConvSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  EpilogueCode e;
  if (!commonSupports(n, types, &e) || types.size() < 2) return false;
  if (!rankIs(types[0], 4) || !rankIs(types[1], 4)) return false;  // 2-D only
  if (present(types, 2) && !rankIs(types[2], 1)) return false;
  ir::nn::Window w;
  if (!readConvWindow(n, types, &w)) return false;
  return n.attrs().getInt("group", 1) >= 1;
}

// A depthwise layer of multiplier 1 (group = channels = output channels, static): the direct
// kernel's, not an implicit GEMM's (which would use 1/64 of its tile), so that each conv has
// exactly one CUDA kernel.
inline bool isDepthwise(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  const int64_t c = staticDim(types[0], 1), k = staticDim(types[1], 0), cg = staticDim(types[1], 1);
  const int64_t group = n.attrs().getInt("group", 1);
  return c > 1 && group == c && k == c && cg == 1;
}

// convPrepare's params: the window, the group, the bias and the epilogue.
inline ConvParams prepareConvParams(const runtime::PrepareInfo& info) {
  const ir::Node& n = *info.node;
  ConvParams p;
  decodeEpilogue(n, &p.epilogue);
  ir::nn::Window w;
  ANVIL_CHECK(readConvWindow(n, info.maxTypes, &w), ErrorCode::kUnsupported, n.label(), ": bad Conv window");
  p.autoPad = static_cast<std::int32_t>(w.autoPad);
  for (int i = 0; i < 2; ++i) p.strides[i] = w.strides[size_t(i)], p.dilations[i] = w.dilations[size_t(i)];
  for (int i = 0; i < 4; ++i) p.pads[i] = w.pads[size_t(i)];
  p.group = n.attrs().getInt("group", 1);
  p.hasBias = present(info.maxTypes, 2);
  return p;
}

// The step's conv for weights of k x cg x r x s (cg = input channels per group): X, Y, the
// window, bias, Z and the epilogue checked and filled in; the caller sets the weights.
inline Conv2dDesc conv2dDescOf(const runtime::StepArgs& a, const ConvParams& p, int64_t k, int64_t cg, int64_t r,
                               int64_t s) {
  const runtime::TensorView& X = a.in(0);
  runtime::TensorView& Y = a.out(0);
  Conv2dDesc d;
  d.n = X.dims[0], d.c = X.dims[1], d.h = X.dims[2], d.w = X.dims[3];
  d.k = k, d.r = r, d.s = s;
  d.groups = p.group;
  if (cg * p.group != d.c) a.fail("Conv: the weights' input channels times group differ from X's channels");
  ir::nn::WindowDim wh, ww;
  const auto ap = static_cast<ir::nn::AutoPad>(p.autoPad);
  if (!ir::nn::forwardDim(d.h, d.r, p.strides[0], p.dilations[0], p.pads[0], p.pads[2], ap, false, &wh).empty() ||
      !ir::nn::forwardDim(d.w, d.s, p.strides[1], p.dilations[1], p.pads[1], p.pads[3], ap, false, &ww).empty())
    a.fail("Conv: the window is larger than the padded input");
  d.strideH = p.strides[0], d.strideW = p.strides[1];
  d.dilationH = p.dilations[0], d.dilationW = p.dilations[1];
  d.padTop = wh.padBegin, d.padBottom = wh.padEnd, d.padLeft = ww.padBegin, d.padRight = ww.padEnd;
  if (Y.rank != 4 || Y.dims[0] != d.n || Y.dims[1] != d.k || Y.dims[2] != wh.out || Y.dims[3] != ww.out)
    a.fail("Conv: the output's extents differ from the window's");
  checkResidual(a, p.epilogue);
  d.x = X.as<const float>();
  if (p.hasBias) {
    if (a.in(2).numel() != d.k) a.fail("Conv: the bias does not hold one value per output channel");
    d.bias = a.in(2).as<const float>();
  }
  if (p.epilogue.residual) d.z = a.in(int(lin::kResidualInput)).as<const float>();
  d.y = Y.as<float>();
  setEpilogue(&d, p.epilogue);
  return d;
}

}  // namespace anvil::cuda::tactics::linear_common
