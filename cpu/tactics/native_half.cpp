// Native CPU kernels (runtime/kernel.h) of the linear family in reduced precision: MatMul,
// Gemm, Conv and the fused anvil.FusedMatMul / FusedGemm / FusedConv on nodes whose
// precision (set by the precision pass) is FP16 or BF16. Activations stay f32 row-major
// (NCHW for Conv); the reduced precision lives in the prepared weights and the kernel:
//  - f16_*: constant weights rounded once to IEEE half (round to nearest even), stored as
//    half panels (half the bytes of f32), widened exactly in the micro-kernel
//    (gemm_kernels.h, gemmPackedBHalf) and for Conv once per run into the workspace; f32
//    activations and accumulation and the f32 epilogue: the f32 kernel's bits on the
//    half-rounded weights.
//  - bf16_*: weights rounded once to bfloat16 (stored as K pairs), activations rounded as
//    their panels are packed, pair products accumulated in f32 by vdpbf16ps or by its
//    bitwise emulation on the f32 micro-kernels (AVX2 and AVX-512; gemm_bf16.h); then the
//    same f32 epilogue. The builder times the families; all give the same bits.
// Only the im2col ("prepacked") Conv path exists in these precisions: on the dev box the
// f32 Winograd / NCHWc kernels run ResNet-18's 3x3 layers faster than any of these, so a
// precision pass gains nothing by lowering such Convs (batch-1 MatMul/Gemm, bound by
// streaming weights, run about 2x faster in either precision).
// prepare() packs the weights and decodes attributes; run() reads views, params, blobs and
// workspace only (no allocation), bitwise equal for any thread count.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/tactics/gemm_bf16.h"
#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/task_split.h"
#include "ir/ops/anvil_linear.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;
using runtime::Kernel;
using runtime::Kernels;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;
using runtime::TensorView;

enum class HalfOp : int32_t { kMatMul = 0, kGemm = 1, kConv = 2 };

// run()'s parameters: trivially copyable, no padding bytes (engines compare params bytes).
struct HalfParams {
  HalfOp op = HalfOp::kMatMul;
  int32_t bf16 = 0;    // 0: f16 weights (family = GemmIsa); 1: bf16 (family = Bf16Isa)
  int32_t family = 0;
  int32_t tasks = 1;   // workspace slots
  int32_t fused = 0;   // an anvil.Fused* op (epilogue below)
  int32_t transA = 0;  // Gemm
  float alpha = 1.0f, beta = 1.0f;
  int32_t reserved0 = 0, reserved1 = 0;
  int64_t K = 0, N = 0, M = 0;  // the prepared weight: B [K x N]; Conv filter [M x K]
  ConvAttrs conv;
  EpilogueParams epi;
  int32_t reserved2 = 0;
};
static_assert(sizeof(HalfParams) == 10 * 4 + 3 * 8 + sizeof(ConvAttrs) + sizeof(EpilogueParams) + 4,
              "HalfParams must have no padding bytes");

// Workspace: a shared region (Conv filters widened per run), then one slot per task.
struct Layout {
  int64_t shared = 0, slot = 0;  // floats, multiples of 16
  int64_t total(int64_t tasks) const { return shared + tasks * slot; }
};

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}
bool rankIs(const ir::TensorType& t, size_t lo, size_t hi) {
  return t.shape.rankKnown() && t.shape.rank() >= lo && t.shape.rank() <= hi;
}
const ir::Tensor* constantOf(const ir::Node& n, size_t i) {
  const ir::Value* v = n.input(i);
  return v ? v->initializer() : nullptr;
}

std::vector<int64_t> staticExtents(const PrepareInfo& info, size_t i, const char* what) {
  ANVIL_CHECK(i < info.maxTypes.size() && info.maxTypes[i].shape.isStatic(), ErrorCode::kInternal,
              info.node->label(), ": ", what, " has no static extents at the profile's max shapes");
  return info.maxTypes[i].shape.extents();
}

// Tasks: by the f32 linear kernels' flops threshold (task_split.h; no timed split here).
int tasksOf(const StepArgs& a, const HalfParams& p, double flops) { return stepTasks(p.tasks, 0, a.executor, flops); }

float* workspace(const StepArgs& a, const Layout& l, int tasks) {
  if (uint64_t(l.total(tasks)) * sizeof(float) > a.workspaceBytes)
    a.fail("the shapes need a larger workspace than prepared (outside the profile?)");
  return static_cast<float*>(a.workspace);
}

// ---------------------------------------------------------------------------------------
// Half conversion (F16C: every host of the f16 kernels has it)

// f32 -> IEEE half, round to nearest even. A finite weight whose half is infinite
// (|w| >= 65520) is refused: it would turn the layer's outputs into inf/NaN; the node
// should stay in f32 (or the model be rescaled).
__attribute__((target("f16c"))) std::vector<uint16_t> toHalf(const ir::Node& n, const std::vector<float>& src) {
  std::vector<uint16_t> out(src.size());
  for (size_t i = 0; i < src.size(); ++i) {
    out[i] = uint16_t(_cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    ANVIL_CHECK(!std::isfinite(src[i]) || (out[i] & 0x7fffu) != 0x7c00u, ErrorCode::kUnsupported, n.label(),
                ": weight ", src[i], " is outside the FP16 range (|w| <= 65504); keep this node in f32");
  }
  return out;
}

__attribute__((target("avx2,f16c"))) void halfToFloat(const uint16_t* src, int64_t n, float* dst) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

template <typename T>
std::string bytesOf(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

// ---------------------------------------------------------------------------------------
// supports()

bool matmulShapes(const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !rankIs(in[0], 1, runtime::kMaxRank) ||
      !rankIs(in[1], 1, runtime::kMaxRank) || !in[1].shape.isStatic())
    return false;
  const std::vector<int64_t> b = in[1].shape.extents();
  for (size_t i = 0; i + 2 < b.size(); ++i)
    if (b[i] != 1) return false;  // one B for every batch
  const ir::Dim& k = in[0].shape[in[0].shape.rank() - 1];
  return !k.isStatic() || k.value() == (b.size() == 1 ? b[0] : b[b.size() - 2]);
}

bool supportsMatMul(DataType prec, bool fused, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (n.precision() != prec || !matmulShapes(in) || !constantOf(n, 1)) return false;
  if (!fused) return true;
  return fusedEpilogueSupported(n, in) && (absent(in, 2) || (isF32(in[2]) && rankIs(in[2], 1, 1)));
}

bool supportsGemm(DataType prec, bool fused, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (n.precision() != prec || in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !rankIs(in[0], 2, 2) ||
      !rankIs(in[1], 2, 2) || !constantOf(n, 1))
    return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !rankIs(in[2], 0, 2))) return false;
  return !fused || fusedEpilogueSupported(n, in);
}

// The 2-D Conv attributes against the filter shape w; false when not a group-1 2-D Conv.
bool convAttrs(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  if (!w.rankKnown() || w.rank() != 4 || !w.isStatic()) return false;
  const ir::Attributes& at = n.attrs();
  a->group = at.getInt("group", 1);
  a->kH = w[2].value();
  a->kW = w[3].value();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {a->kH, a->kW});
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (ks.size() != 2 || ks[0] != a->kH || ks[1] != a->kW || s.size() != 2 || d.size() != 2) return false;
  if (s[0] <= 0 || s[1] <= 0 || d[0] <= 0 || d[1] <= 0) return false;
  a->sH = s[0], a->sW = s[1], a->dH = d[0], a->dW = d[1];
  return decodeConvPads(at, a) && a->group == 1;
}

bool supportsConv(DataType prec, bool fused, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (n.precision() != prec || in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !rankIs(in[0], 4, 4) ||
      !rankIs(in[1], 4, 4) || !constantOf(n, 1))
    return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !rankIs(in[2], 1, 1))) return false;
  ConvAttrs a;
  return convAttrs(n, in[1].shape, &a) && (!fused || fusedEpilogueSupported(n, in));
}

// ---------------------------------------------------------------------------------------
// prepare()

HalfParams baseParams(HalfOp op, bool bf16, int32_t family, bool fused, const PrepareInfo& info) {
  HalfParams p;
  p.op = op;
  p.bf16 = bf16 ? 1 : 0;
  p.family = family;
  p.tasks = std::max(1, info.threads);
  if (fused) {
    p.fused = 1;
    p.epi = EpilogueParams::of(readFusedEpilogue(*info.node));
  }
  return p;
}

int64_t gemmSlotFloats(const HalfParams& p, int64_t K) {
  return p.bf16 ? gemmBf16PackedBSlotFloats(bf16Config(Bf16Isa(p.family)), K)
                : gemmPackedBHalfSlotFloats(gemmConfig(GemmIsa(p.family)), K);
}

// B [K x N] (element (k, n) at w[k * rs + n * cs]) packed for the kernel's family.
std::string packWeightB(const HalfParams& p, const ir::Node& n, const float* w, int64_t K, int64_t N, int64_t rs,
                        int64_t cs) {
  const StridedMatrix B{w, rs, cs};
  if (p.bf16) {
    const Bf16Config& c = bf16Config(Bf16Isa(p.family));
    std::vector<uint32_t> packed(size_t(bf16PackedBUnits(c, K, N)));
    packBf16B(c, K, N, B, packed.data());
    return bytesOf(packed);
  }
  const GemmConfig& c = gemmConfig(GemmIsa(p.family));
  std::vector<float> packed(size_t(packedBFloats(c, K, N)));
  packBPanels(c, K, N, B, 0, ceilDiv(N, c.nr), packed.data());
  return bytesOf(toHalf(n, packed));
}

void prepareMatMul(bool bf16, int32_t family, bool fused, const PrepareInfo& info, Prepared* out) {
  HalfParams p = baseParams(HalfOp::kMatMul, bf16, family, fused, info);
  const std::vector<int64_t> bd = staticExtents(info, 1, "B");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w, ErrorCode::kInternal, info.node->label(), ": B must be a constant");
  p.K = bd.size() == 1 ? bd[0] : bd[bd.size() - 2];
  p.N = bd.size() == 1 ? 1 : bd.back();
  out->blobs.push_back(packWeightB(p, *info.node, w->data<float>(), p.K, p.N, p.N, 1));
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(p.tasks * gemmSlotFloats(p, p.K)) * sizeof(float);
  out->setParams(p);
}

void prepareGemm(bool bf16, int32_t family, bool fused, const PrepareInfo& info, Prepared* out) {
  HalfParams p = baseParams(HalfOp::kGemm, bf16, family, fused, info);
  const ir::Attributes& at = info.node->attrs();
  p.transA = at.getInt("transA", 0) != 0;
  const bool transB = at.getInt("transB", 0) != 0;
  p.alpha = at.getFloat("alpha", 1.0f);
  p.beta = at.getFloat("beta", 1.0f);
  const std::vector<int64_t> bd = staticExtents(info, 1, "B");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w, ErrorCode::kInternal, info.node->label(), ": B must be a constant");
  p.K = transB ? bd[1] : bd[0];
  p.N = transB ? bd[0] : bd[1];
  out->blobs.push_back(
      packWeightB(p, *info.node, w->data<float>(), p.K, p.N, transB ? 1 : p.N, transB ? p.K : 1));
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(p.tasks * gemmSlotFloats(p, p.K)) * sizeof(float);
  out->setParams(p);
}

Layout convLayout(const HalfParams& p) {
  Layout l;
  if (p.bf16) {
    const Bf16Config& c = bf16Config(Bf16Isa(p.family));
    const int64_t im2col = Im2colPacker::scratchFloats(256, c.nc, c.nr);
    if (c.kernels) {
      l.slot = roundUp(gemmBf16PackedASlotFloats(c, im2col), 16);
    } else {  // the emulation: the widened filter, the f32 driver with a rounding packer
      l.shared = roundUp(bf16PackedAUnits(c, p.M, p.K), 16);
      const GemmConfig& f = gemmConfig(c.packer);
      l.slot = roundUp(gemmPackedASlotFloats(f, Bf16SwappedPacker::scratchFloats(256, c.nc, im2col)), 16);
    }
  } else {
    const GemmConfig& c = gemmConfig(GemmIsa(p.family));
    l.shared = roundUp(packedAFloats(c, p.M, p.K), 16);
    l.slot = roundUp(gemmPackedASlotFloats(c, Im2colPacker::scratchFloats(c.kc, c.nc, c.nr)), 16);
  }
  return l;
}

void prepareConv(bool bf16, int32_t family, bool fused, const PrepareInfo& info, Prepared* out) {
  HalfParams p = baseParams(HalfOp::kConv, bf16, family, fused, info);
  ANVIL_CHECK(convAttrs(*info.node, info.maxTypes[1].shape, &p.conv), ErrorCode::kInvalidModel, info.node->label(),
              ": not a group-1 2-D Conv this kernel handles");
  const std::vector<int64_t> xd = staticExtents(info, 0, "X"), wd = staticExtents(info, 1, "W");
  Conv2dGeom g;
  ANVIL_CHECK(conv2dGeometry(p.conv, xd.data(), wd[0], &g) && wd[1] == g.Cg, ErrorCode::kInvalidModel,
              info.node->label(), ": X ", info.maxTypes[0].str(), " and W ", info.maxTypes[1].str(),
              " do not fit the Conv attributes");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w, ErrorCode::kInternal, info.node->label(), ": W must be a constant");
  p.M = g.M;
  p.K = g.Cg * g.kH * g.kW;
  const StridedMatrix W{w->data<float>(), p.K, 1};
  if (bf16) {
    const Bf16Config& c = bf16Config(Bf16Isa(family));
    std::vector<uint32_t> packed(size_t(ceilDiv(p.K, 2) * roundUp(p.M, c.mr)));
    packBf16APairs(c, p.M, p.K, W, packed.data());
    out->blobs.push_back(bytesOf(packed));
  } else {
    const GemmConfig& c = gemmConfig(GemmIsa(family));
    std::vector<float> packed(size_t(packedAFloats(c, p.M, p.K)));
    packAPanels(c, p.M, p.K, W, 1.0f, 0, ceilDiv(p.M, c.mr), packed.data());
    out->blobs.push_back(bytesOf(toHalf(*info.node, packed)));
  }
  out->packedInputs.push_back(1);
  out->workspaceBytes = uint64_t(convLayout(p).total(p.tasks)) * sizeof(float);
  out->setParams(p);
}

// ---------------------------------------------------------------------------------------
// run()

// The residual Z of a fused op, or null.
const float* residualOf(const StepArgs& a, const HalfParams& p) {
  if (!p.fused || !p.epi.residual) return nullptr;
  if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
  const TensorView& z = a.in(int(ir::linear::kResidualInput));
  if (z.numel() != a.out(0).numel()) a.fail("Z must have the output's shape");
  return z.as<float>();
}

// C[M x N] = alpha * A * B (+ the epilogue) with the prepared B of either precision.
void gemmB(const StepArgs& a, const HalfParams& p, int64_t M, float alpha, StridedMatrix A, float* C, int T,
           const BlockEpilogue* ep) {
  float* ws = static_cast<float*>(a.workspace);
  const int64_t slot = gemmSlotFloats(p, p.K);
  if (uint64_t(T * slot) * sizeof(float) > a.workspaceBytes) a.fail("the workspace is smaller than prepared");
  const TaskSlots slots{ws, slot, T};
  if (p.bf16)
    gemmBf16PackedB(bf16Config(Bf16Isa(p.family)), M, p.N, p.K, alpha, A, a.blobs[0].as<uint32_t>(), C, p.N,
                    a.executor, slots, ep);
  else
    gemmPackedBHalf(gemmConfig(GemmIsa(p.family)), M, p.N, p.K, alpha, A, a.blobs[0].as<uint16_t>(), C, p.N,
                    a.executor, slots, ep);
}

void runMatMul(const StepArgs& a) {
  const HalfParams& p = a.paramsAs<HalfParams>();
  const TensorView& A = a.in(0);
  TensorView& Y = a.out(0);
  if (A.rank < 1 || A.dims[A.rank - 1] != p.K) a.fail("A's last extent differs from the prepared B's K");
  int64_t M = 1;
  for (int i = 0; i + 1 < A.rank; ++i) M *= A.dims[i];
  if (Y.numel() != M * p.N) a.fail("the output extents differ from A x B's");
  if (Y.numel() == 0) return;
  const int64_t N = p.N;
  const float* bias = nullptr;
  float rowBias = 0.0f;
  if (p.fused && a.hasInput(2)) {
    const TensorView& bv = a.in(2);
    if (bv.numel() == N) bias = bv.as<float>();
    else if (bv.numel() == 1) rowBias = bv.as<float>()[0];
    else a.fail("bias must have N values or one");
  }
  const float* zp = residualOf(a, p);
  const Epilogue epi = p.epi.get();
  const EpilogueRow row = epilogueRow(epi);
  const bool hasEpilogue = p.fused && (bias || rowBias != 0.0f || zp || epi.act != Activation::kNone);
  auto ep = [&](int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* cp, int64_t ldc) {
    for (int64_t r = 0; r < rows; ++r)
      row(epi, cp + r * ldc, zp ? zp + (i0 + r) * N + j0 : nullptr, bias ? bias + j0 : nullptr, rowBias, cols);
  };
  const BlockEpilogue epRef(ep);
  const int T = tasksOf(a, p, 2.0 * double(Y.numel()) * double(p.K));
  gemmB(a, p, M, 1.0f, {A.as<float>(), p.K, 1}, Y.as<float>(), T, hasEpilogue ? &epRef : nullptr);
}

void runGemm(const StepArgs& a) {
  const HalfParams& p = a.paramsAs<HalfParams>();
  const TensorView& A = a.in(0);
  if (A.rank != 2) a.fail("Gemm's A must be 2-D");
  const int64_t M = p.transA ? A.dims[1] : A.dims[0], K = p.transA ? A.dims[0] : A.dims[1], N = p.N;
  if (K != p.K) a.fail("A's K differs from the prepared B's");
  float* yp = a.out(0).as<float>();
  if (M == 0 || N == 0) return;
  const GemmC gc = gemmCOf(a, M, N);
  const float* cp = gc.data;
  const int64_t rsC = gc.rowStride, csC = gc.colStride;
  const float* zp = residualOf(a, p);
  const Epilogue epi = p.epi.get();
  const EpilogueRow row = epilogueRow(epi);
  const bool act = p.fused && (zp || epi.act != Activation::kNone);
  const float beta = p.beta;
  // Y += beta * C, then the activation: the f32 Gemm kernels' order. A column-bias C goes in
  // as the epilogue row's bias: one vector pass instead of a strided scalar loop per output.
  const bool colBias = gemmCIsColumnBias(gc, beta);
  auto ep = [&](int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* y, int64_t ldc) {
    for (int64_t r = 0; r < rows; ++r) {
      float* yr = y + r * ldc;
      const float* z = zp ? zp + (i0 + r) * N + j0 : nullptr;
      if (colBias) {
        row(epi, yr, z, cp + j0, 0.0f, cols);
        continue;
      }
      if (cp) {
        const float* cr = cp + (i0 + r) * rsC + j0 * csC;
        for (int64_t j = 0; j < cols; ++j) yr[j] += beta * cr[j * csC];
      }
      if (act) row(epi, yr, z, nullptr, 0.0f, cols);
    }
  };
  const BlockEpilogue epRef(ep);
  const StridedMatrix Am = p.transA ? StridedMatrix{A.as<float>(), 1, M} : StridedMatrix{A.as<float>(), K, 1};
  const int T = tasksOf(a, p, 2.0 * double(M) * double(N) * double(K));
  gemmB(a, p, M, p.alpha, Am, yp, T, cp || act ? &epRef : nullptr);
}

bool pointwise(const Conv2dGeom& g) {
  return g.kH == 1 && g.kW == 1 && g.sH == 1 && g.sW == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 && g.pr == 0;
}

// The register-tile epilogue for this activation (the tile kernels take every one, numbered
// as ir::linear::Activation), or false (then a pass over each block).
bool tileEpilogueOf(const Epilogue& epi, bool act, TileEpilogue* t) {
  t->act = act ? int32_t(epi.act) : TileEpilogue::kNone;
  t->p0 = epi.p0;
  t->p1 = epi.p1;
  t->addFirst = epi.addFirst;
  return true;
}

void runConv(const StepArgs& a) {
  const HalfParams& p = a.paramsAs<HalfParams>();
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  Conv2dGeom g;
  if (X.rank != 4 || !conv2dGeometry(p.conv, X.dims, p.M, &g) || g.Cg * g.kH * g.kW != p.K)
    a.fail("X does not fit the prepared filter and the Conv attributes");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  const int64_t M = g.M, K = p.K, P = g.OH * g.OW;
  const int T = tasksOf(a, p, 2.0 * double(Y.numel()) * double(K));
  const Layout l = convLayout(p);
  float* ws = workspace(a, l, T);
  const TaskSlots slots{ws + l.shared, l.slot, T};
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != M) a.fail("B must have one value per output channel");
    bias = a.in(2).as<float>();
  }
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const float* zp = residualOf(a, p);
  const Epilogue epi = p.epi.get();
  const EpilogueRow row = epilogueRow(epi);
  static constexpr Epilogue kNoEpilogue{};
  const EpilogueRow biasRow = epilogueRow(kNoEpilogue);
  const bool act = p.fused && (zp || epi.act != Activation::kNone);
  const bool hasEpilogue = bias || act;

  // The filter as the family's A panels: f16 and the bf16 emulation widen the blob into
  // the shared region once per run (M x K conversions against M x K x pixels FMAs).
  const GemmConfig* fc = p.bf16 ? nullptr : &gemmConfig(GemmIsa(p.family));
  const Bf16Config* bc = p.bf16 ? &bf16Config(Bf16Isa(p.family)) : nullptr;
  const void* ap = a.blobs[0].data;
  if (l.shared > 0) {
    const int64_t chunk = p.bf16 ? bc->mr : 8;  // whole units of the conversion
    const int64_t chunks = p.bf16 ? ceilDiv(K, 2) * roundUp(M, bc->mr) / chunk : ceilDiv(packedAFloats(*fc, M, K), chunk);
    const int64_t n = std::min<int64_t>(T, chunks);
    a.executor->parallelFor(n, [&](int64_t t) {
      const int64_t c0 = rangeBegin(chunks, t, n), c1 = rangeBegin(chunks, t + 1, n);
      if (p.bf16) {
        expandBf16APairs(*bc, a.blobs[0].as<uint32_t>() + c0 * chunk, (c1 - c0) * chunk, ws + 2 * c0 * chunk);
      } else {
        const int64_t e1 = std::min(packedAFloats(*fc, M, K), c1 * chunk);
        halfToFloat(a.blobs[0].as<uint16_t>() + c0 * chunk, e1 - c0 * chunk, ws + c0 * chunk);
      }
    });
    ap = ws;
  }
  // The bf16 emulation runs the f32 driver and kernels (fc) over the padded K in bf16 K
  // blocks, its input rounded and swapped by Bf16SwappedPacker.
  const bool emulated = p.bf16 && !bc->kernels;
  if (emulated) fc = &gemmConfig(bc->packer);
  const int64_t Kf = emulated ? roundUp(K, 2) : K, kBlock = emulated ? bf16KBlock(K) : 0;
  const int nr = p.bf16 ? bc->nr : fc->nr;
  const int64_t nc = p.bf16 ? bc->nc : fc->nc;
  // Work items: (image, range of column panels), at least two per task where the shape
  // allows, every task the same count where it can (as the f32 Conv kernels).
  const int64_t colPanels = ceilDiv(P, nr);
  int64_t chunks = std::min(colPanels, std::max(ceilDiv(P, nc), ceilDiv(2 * T, g.N)));
  if (g.N * chunks < 8 * T)
    for (int64_t more = chunks; more <= std::min(colPanels, chunks + T); ++more)
      if ((g.N * more) % T == 0) {
        chunks = more;
        break;
      }
  const int64_t items = g.N * chunks, n = std::min<int64_t>(T, items);
  const bool pw = pointwise(g);
  TileEpilogue tile;
  const bool tiled = (!p.bf16 || emulated) && hasEpilogue && K > 0 && P >= 256 && gemmPackedAFusedSupports(*fc) &&
                     tileEpilogueOf(epi, act, &tile);
  a.executor->parallelFor(n, [&](int64_t t) {
    float* slot = slots.slot(t);
    for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
      const int64_t img = it / chunks, ch = it % chunks;
      const int64_t j0 = rangeBegin(colPanels, ch, chunks) * nr;
      const int64_t j1 = std::min(P, rangeBegin(colPanels, ch + 1, chunks) * nr);
      if (j0 >= j1) continue;
      float* yg = yp + img * M * P;
      const float* xg = xp + img * g.C * g.H * g.W;
      auto ep = [&](int64_t i0, int64_t rows, int64_t jb, int64_t cols, float* y, int64_t ldy) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t m = i0 + r;
          if (act)
            row(epi, y + r * ldy, zp ? zp + (img * M + m) * P + jb : nullptr, nullptr, bias ? bias[m] : 0.0f, cols);
          else
            biasRow(kNoEpilogue, y + r * ldy, nullptr, nullptr, bias[m], cols);
        }
      };
      const BlockEpilogue epRef(ep);
      const BlockEpilogue* epp = hasEpilogue ? &epRef : nullptr;
      const StridedBPacker direct({xg, P, 1});
      const Im2colPacker im2col(xg, g, xp, xp + X.numel());
      const BPacker& input = pw ? static_cast<const BPacker&>(direct) : static_cast<const BPacker&>(im2col);
      const Bf16SwappedPacker swapped(input, K);
      const BPacker& packer = emulated ? static_cast<const BPacker&>(swapped) : input;
      if (p.bf16 && !emulated) {
        gemmBf16PackedA(*bc, M, K, ap, packer, j0, j1, yg, P, slot, epp);
      } else if (tiled) {
        TileEpilogue te = tile;
        te.bias = bias;
        te.z = zp && act ? zp + img * M * P : nullptr;
        gemmPackedAFused(*fc, M, Kf, static_cast<const float*>(ap), packer, j0, j1, yg, P, slot, te, kBlock);
      } else {
        gemmPackedA(*fc, M, Kf, static_cast<const float*>(ap), packer, j0, j1, yg, P, slot, epp, kBlock);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Registration

struct Family {
  bool bf16;
  int32_t isa;         // GemmIsa or Bf16Isa
  const char* tile;    // "6x16"
  const char* suffix;  // "__avx2"
  std::vector<std::string> requirements;
};

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeHalfKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  // AVX2 f16 needs F16C for vcvtph2ps; every AVX-512F CPU has it. The bf16 AVX2 and
  // AVX-512 (no BF16) families emulate vdpbf16ps bitwise (gemm_bf16.h): for hosts without
  // AVX-512 BF16, and where the instruction is slower than two FMAs (the builder times
  // them against the vdpbf16ps family; all give the same bits).
  const Family families[] = {
      {false, int32_t(GemmIsa::kAvx2_6x16), "6x16", "__avx2", {"avx2", "fma", "f16c"}},
      {false, int32_t(GemmIsa::kAvx512_14x32), "14x32", "__avx512", {"avx512f"}},
      {true, int32_t(Bf16Isa::kAvx2Emu_6x16), "6x16", "__avx2", {"avx2", "fma"}},
      {true, int32_t(Bf16Isa::kAvx512Bf16_14x32), "14x32", "__avx512bf16", {"avx512f", "avx512bf16"}},
      {true, int32_t(Bf16Isa::kAvx512Emu_14x32), "14x32", "__avx512", {"avx512f"}},
  };
  struct OpKind {
    HalfOp op;
    const char* base;  // the name after the precision
    const char* onnx;
    const char* fusedOp;
  };
  const OpKind kinds[] = {{HalfOp::kMatMul, "gemm_prepacked", "MatMul", "FusedMatMul"},
                          {HalfOp::kGemm, "gemm_prepacked", "Gemm", "FusedGemm"},
                          {HalfOp::kConv, "conv2d_prepacked", "Conv", "FusedConv"}};
  for (const Family& f : families)
    for (const OpKind& o : kinds)
      for (bool fused : {false, true}) {
        const DataType prec = f.bf16 ? DataType::kBF16 : DataType::kF16;
        const bool bf16 = f.bf16;
        const int32_t isa = f.isa;
        Kernel kn;
        kn.name = std::string(bf16 ? "bf16_" : "f16_") + o.base + "_" + f.tile + (fused ? "_epilogue" : "") + f.suffix;
        kn.version = fused ? 2 : 1;  // 2: SiLU, Sigmoid and Tanh epilogues with vmath.h's new e^-x
        kn.op = fused ? o.fusedOp : o.onnx;
        kn.domain = fused ? "anvil" : "";
        kn.precision = prec;
        kn.requirements = f.requirements;
        switch (o.op) {
          case HalfOp::kMatMul:
            kn.supports = [prec, fused](const ir::Node& n, const std::vector<ir::TensorType>& in) {
              return supportsMatMul(prec, fused, n, in);
            };
            kn.prepare = [bf16, isa, fused](const PrepareInfo& i, Prepared* out) { prepareMatMul(bf16, isa, fused, i, out); };
            kn.run = runMatMul;
            break;
          case HalfOp::kGemm:
            kn.supports = [prec, fused](const ir::Node& n, const std::vector<ir::TensorType>& in) {
              return supportsGemm(prec, fused, n, in);
            };
            kn.prepare = [bf16, isa, fused](const PrepareInfo& i, Prepared* out) { prepareGemm(bf16, isa, fused, i, out); };
            kn.run = runGemm;
            break;
          case HalfOp::kConv:
            kn.supports = [prec, fused](const ir::Node& n, const std::vector<ir::TensorType>& in) {
              return supportsConv(prec, fused, n, in);
            };
            kn.prepare = [bf16, isa, fused](const PrepareInfo& i, Prepared* out) { prepareConv(bf16, isa, fused, i, out); };
            kn.run = runConv;
            break;
        }
        k.add(std::move(kn));
      }
}

}  // namespace anvil::runtime
