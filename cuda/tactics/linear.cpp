// The linear layers on the CUDA backend: Conv / anvil.FusedConv over the implicit-GEMM
// convolution (depthwise layers over the direct depthwise kernel), Gemm / anvil.FusedGemm and MatMul / anvil.FusedMatMul over the SIMT GEMM
// (cuda/linear.h), f32, with the fused epilogue (bias, residual Z added before the
// activation, one activation of cuda/types.h or a Clip) run in the kernels' store. Extents are read
// from the tensors at run() so one prepared step serves a whole profile; weights are read
// where the engine put them, except a Gemm C or FusedMatMul bias that only broadcasts
// along rows after prepare() folds it into an [N] bias blob.
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "cuda/depthwise.h"
#include "cuda/linear.h"
#include "cuda/tactics/linear_common.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"
#include "ir/ops/anvil_linear.h"
#include "ir/ops/nn_util.h"

namespace anvil::cuda::tactics {

namespace {

using namespace linear_common;
namespace lin = ir::linear;

// ---- Gemm / anvil.FusedGemm ----

bool gemmSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  EpilogueCode e;
  if (!commonSupports(n, types, &e) || types.size() < 2) return false;
  if (!rankIs(types[0], 2) || !rankIs(types[1], 2)) return false;
  const bool transB = n.attrs().getInt("transB", 0) != 0;
  return gemmCForm(n, types, staticDim(types[1], transB ? 0 : 1), e.residual).has_value();
}

void gemmPrepare(const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  prepared->setParams(prepareGemmParams(info, prepared));
}

void gemmRun(const runtime::StepArgs& a) {
  const GemmParams& p = a.paramsAs<GemmParams>();
  const runtime::TensorView &A = a.in(0), &B = a.in(1);
  runtime::TensorView& Y = a.out(0);
  const int64_t m = p.transA ? A.dims[1] : A.dims[0], k = p.transA ? A.dims[0] : A.dims[1];
  const int64_t n = p.transB ? B.dims[0] : B.dims[1];
  if ((p.transB ? B.dims[1] : B.dims[0]) != k) a.fail("Gemm: inner dims of A and B differ");
  if (Y.rank != 2 || Y.dims[0] != m || Y.dims[1] != n) a.fail("Gemm: the output is not [M, N]");
  checkResidual(a, p.epilogue);
  GemmDesc d = GemmDesc::packed(1, m, n, k, p.transA, p.transB, A.data, B.data, Y.data);
  setGemmEpilogue(a, p, m, n, &d);
  launchGemm(runtimeOf(a), streamOf(a), d);
}

// ---- MatMul / anvil.FusedMatMul ----

struct MatMulParams {
  EpilogueCode epilogue;
  MatMulBias bias = MatMulBias::kNone;
};

bool matmulSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  EpilogueCode e;
  if (!commonSupports(n, types, &e) || types.size() < 2) return false;
  for (int i = 0; i < 2; ++i)
    if (!types[size_t(i)].shape.rankKnown() || types[size_t(i)].shape.rank() < 1 ||
        types[size_t(i)].shape.rank() > size_t(runtime::kMaxRank))
      return false;
  return matmulBiasForm(n, types).has_value();
}

void matmulPrepare(const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  const ir::Node& n = *info.node;
  MatMulParams p;
  decodeEpilogue(n, &p.epilogue);
  const std::optional<MatMulBias> bias = matmulBiasForm(n, info.maxTypes);
  ANVIL_CHECK(bias.has_value(), ErrorCode::kUnsupported, n.label(), ": the bias does not fit the CUDA GEMM");
  p.bias = *bias;
  if (p.bias == MatMulBias::kBlob) {
    const int64_t bigN = info.maxTypes[1].shape.rank() == 1 ? 1 : staticDim(info.maxTypes[1], -1);
    prepared->blobs.push_back(foldBias(*info.constants[2], bigN, 1.0f));
    prepared->packedInputs.push_back(2);
  }
  prepared->setParams(p);
}

// numpy MatMul: the output's batch dims split into an outer part, one GEMM launch per index,
// and the longest inner suffix over which A and B each are either dense or broadcast (batch
// stride M*K / K*N or 0), one batched launch covering it.
void matmulRun(const runtime::StepArgs& a) {
  const MatMulParams& p = a.paramsAs<MatMulParams>();
  const runtime::TensorView &A = a.in(0), &B = a.in(1);
  runtime::TensorView& Y = a.out(0);
  const int ra = A.rank, rb = B.rank;
  const int64_t m = ra == 1 ? 1 : A.dims[ra - 2], k = A.dims[ra - 1];
  const int64_t kb = rb == 1 ? B.dims[0] : B.dims[rb - 2], n = rb == 1 ? 1 : B.dims[rb - 1];
  if (k != kb) a.fail("MatMul: inner dims of A and B differ");
  const int na = ra > 2 ? ra - 2 : 0, nbB = rb > 2 ? rb - 2 : 0;
  const int nb = na > nbB ? na : nbB;
  // Per output batch dim: its extent and A's / B's extents and element steps (0: broadcast).
  int64_t out[runtime::kMaxRank], ae[runtime::kMaxRank], be[runtime::kMaxRank];
  int64_t as[runtime::kMaxRank], bs[runtime::kMaxRank];
  int64_t stepA = m * k, stepB = k * n;
  for (int i = nb - 1; i >= 0; --i) {
    const int ia = i - (nb - na), ib = i - (nb - nbB);
    ae[i] = ia >= 0 ? A.dims[ia] : 1;
    be[i] = ib >= 0 ? B.dims[ib] : 1;
    if (ae[i] != be[i] && ae[i] != 1 && be[i] != 1) a.fail("MatMul: batch dims do not broadcast");
    out[i] = ae[i] == 1 ? be[i] : ae[i];
    as[i] = ae[i] == 1 ? 0 : stepA;
    bs[i] = be[i] == 1 ? 0 : stepB;
    stepA *= ae[i];
    stepB *= be[i];
  }
  // The inner suffix [split, nb): each operand dense (its extents are the output's) or
  // broadcast (all 1) across it.
  int split = nb;
  bool aDense = true, aOnes = true, bDense = true, bOnes = true;
  for (int i = nb - 1; i >= 0; --i) {
    const bool ad = aDense && ae[i] == out[i], a1 = aOnes && ae[i] == 1;
    const bool bd = bDense && be[i] == out[i], b1 = bOnes && be[i] == 1;
    if (!(ad || a1) || !(bd || b1)) break;
    aDense = ad, aOnes = a1, bDense = bd, bOnes = b1;
    split = i;
  }
  int64_t inner = 1, outer = 1;
  for (int i = split; i < nb; ++i) inner *= out[i];
  for (int i = 0; i < split; ++i) outer *= out[i];
  if (Y.numel() != outer * inner * m * n) a.fail("MatMul: the output's extents do not match A x B");
  checkResidual(a, p.epilogue);

  const void* bias = matmulBias(a, p.bias, n);
  const float* z = p.epilogue.residual ? a.in(int(lin::kResidualInput)).as<const float>() : nullptr;
  const auto* pa = A.as<const float>();
  const auto* pb = B.as<const float>();
  auto* py = Y.as<float>();
  int64_t coord[runtime::kMaxRank] = {};
  for (int64_t o = 0; o < outer; ++o) {
    int64_t offA = 0, offB = 0;
    for (int i = 0; i < split; ++i) offA += coord[i] * as[i], offB += coord[i] * bs[i];
    const int64_t offY = o * inner * m * n;
    GemmDesc d = GemmDesc::packed(inner, m, n, k, false, false, pa + offA, pb + offB, py + offY);
    d.strideA = aDense ? m * k : 0;
    d.strideB = bDense ? k * n : 0;
    if (inner == 1) d.strideA = d.strideB = 0;
    d.bias = bias;
    if (z) {
      d.z = z + offY;
      d.ldz = n;
      d.strideZ = m * n;
    }
    setEpilogue(&d, p.epilogue);
    launchGemm(runtimeOf(a), streamOf(a), d);
    for (int i = split - 1; i >= 0; --i) {
      if (++coord[i] < out[i]) break;
      coord[i] = 0;
    }
  }
}

// ---- Conv / anvil.FusedConv ----

bool convSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  return anyConvSupports(n, types) && !isDepthwise(n, types);
}

bool depthwiseSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  return anyConvSupports(n, types) && isDepthwise(n, types);
}

void convPrepare(const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  prepared->setParams(prepareConvParams(info));
}

template <bool kDepthwise>
void convRun(const runtime::StepArgs& a) {
  const runtime::TensorView& W = a.in(1);
  Conv2dDesc d = conv2dDescOf(a, a.paramsAs<ConvParams>(), W.dims[0], W.dims[1], W.dims[2], W.dims[3]);
  d.weight = W.as<const float>();
  if constexpr (kDepthwise) launchDepthwiseConv2d(runtimeOf(a), streamOf(a), d);
  else launchConv2d(runtimeOf(a), streamOf(a), d);
}

std::string gemmTacticName() {
  std::string s = gemmKernelName(false, false);  // "f32_gemm_simt_64x64x16_4x4_nn"
  return s.substr(0, s.size() - 3);
}

void add(runtime::Kernels& k, const std::string& name, const char* op, const char* domain,
         const runtime::SupportsFn& supports, const runtime::PrepareFn& prepare, const runtime::RunFn& run) {
  runtime::Kernel c = cudaKernel(name, op, domain);
  c.supports = supports;
  c.prepare = prepare;
  c.run = run;
  k.add(std::move(c));
}

}  // namespace

void addLinearKernels(runtime::Kernels& k) {
  const std::string gemm = gemmTacticName(), conv = conv2dKernelName();
  add(k, gemm, "Gemm", "", gemmSupports, gemmPrepare, gemmRun);
  add(k, gemm, "FusedGemm", "anvil", gemmSupports, gemmPrepare, gemmRun);
  add(k, gemm, "MatMul", "", matmulSupports, matmulPrepare, matmulRun);
  add(k, gemm, "FusedMatMul", "anvil", matmulSupports, matmulPrepare, matmulRun);
  add(k, conv, "Conv", "", convSupports, convPrepare, convRun<false>);
  add(k, conv, "FusedConv", "anvil", convSupports, convPrepare, convRun<false>);
  const std::string depthwise = depthwiseConv2dKernelName();
  add(k, depthwise, "Conv", "", depthwiseSupports, convPrepare, convRun<true>);
  add(k, depthwise, "FusedConv", "anvil", depthwiseSupports, convPrepare, convRun<true>);
}

}  // namespace anvil::cuda::tactics
