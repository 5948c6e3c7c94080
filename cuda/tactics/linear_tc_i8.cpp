// The INT8 linear layers on the CUDA backend: MatMul / anvil.FusedMatMul, Gemm / anvil.FusedGemm
// and Conv / anvil.FusedConv (2-D, not depthwise) with constant weights, in the INT8 precision
// (a node the precision pass gave kI8), over the s8 WMMA GEMM and implicit-GEMM convolution
// (cuda/linear_tc.h). The quantization is the CPU INT8 kernels', through their own helpers
// (cpu/tactics/int8_support.h, int8_gemm.h): input 0's per-tensor u8 grid from calibration (or
// a Q/DQ model), weights symmetric per output feature (max |w| / 127, or the model's scales),
// so both devices compute the same integer sums and the same f32 dequantization
// float(sum (q_x - z_x) q_w) * (s_x * s_w). Activations stay f32 in and out on the GPU: the
// kernel quantizes as it stages and dequantizes in its epilogue, so the builder's INT8 chains
// (u8 values between INT8 layers) do not form around these steps (supports() takes f32 only).
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/tactics/int8_gemm.h"
#include "cpu/tactics/int8_support.h"
#include "cuda/linear_tc.h"
#include "cuda/tactics/linear_common.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"

namespace anvil::cuda::tactics {

namespace {

using namespace linear_common;

// The quantized weight's blobs and the activation grid, as prepared.
struct I8Weights {
  int64_t n = 0, k = 0;         // features, reduction length
  std::int32_t blob = 0;        // s8 [n][k]; blob + 1: scale f32 [n]; blob + 2: offset s32 [n]
  float xInv = 1.0f;            // 1 / s_x
  std::int32_t xZero = 0;       // z_x
};

template <typename T>
std::string bytesOf(const std::vector<T>& v) {
  std::string s(v.size() * sizeof(T), '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

// The common INT8 conditions: the node computes in INT8 with no f32 components (the CPU's
// fp32_channels / adaptive modes), input 0 carries its per-tensor grid, the weight (input 1)
// is constant with K in [1, kInt8TensorCoreMaxK] and its own quantization, if any, per
// feature along featureAxis.
bool int8Supports(const ir::Node& n, int64_t k, int64_t features, int64_t featureAxis) {
  if (n.precision() != DataType::kI8 || cpu::tactics::int8MixedParams(n)) return false;
  if (!cpu::tactics::perTensorQuant(n.input(0), nullptr, nullptr)) return false;
  if (k < 1 || k > kInt8TensorCoreMaxK || features < 1) return false;
  const float* given;
  return cpu::tactics::weightQuant(n, featureAxis, features, &given);
}

// Quantizes the weight (feature f's value i at w[f * fs + i * ks]) into the three blobs and
// reads input 0's grid; alpha goes into the scales.
I8Weights prepareWeights(const runtime::PrepareInfo& info, int64_t features, int64_t k, int64_t fs, int64_t ks,
                         int64_t featureAxis, float alpha, runtime::Prepared* prepared) {
  const ir::Node& n = *info.node;
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w && w->dtype() == DataType::kF32, ErrorCode::kInternal, n.label(),
              ": the INT8 tensor-core kernels need a constant f32 weight (input 1)");
  float sx = 1.0f;
  I8Weights p;
  ANVIL_CHECK(cpu::tactics::perTensorQuant(n.input(0), &sx, &p.xZero), ErrorCode::kInvalidModel, n.label(),
              ": input 0 has no per-tensor u8 quantization");
  p.xInv = 1.0f / sx;  // as the CPU kernels' invScale
  const float* given;
  ANVIL_CHECK(cpu::tactics::weightQuant(n, featureAxis, features, &given), ErrorCode::kInvalidModel, n.label(),
              ": the weight's quantization is not per output feature with zero offsets");
  const cpu::tactics::I8Weights q = cpu::tactics::quantizeWeights(w->data<float>(), features, k, fs, ks, given);
  // The per-feature operands of float(acc - offset[f]) * scale[f], from the CPU kernels' own
  // helper: the kernel's sums are over q_x - 128, so its zero-point correction is
  // (z_x - 128) * colsum[f]; a Q/DQ import's int32 bias joins it and its requantization
  // ((s_x * s_w[f]) / s_y, s_x a chain link's qdq_x_scale) replaces the plain scale, exactly
  // as on the CPU.
  std::string scale, offset;
  cpu::tactics::int8FeatureOperands(n, p.xZero - 128, q.sums, q.scale, sx, alpha, features, &offset, &scale);
  p.n = features;
  p.k = k;
  p.blob = std::int32_t(prepared->blobs.size());
  prepared->blobs.push_back(bytesOf(q.q));
  prepared->blobs.push_back(std::move(scale));
  prepared->blobs.push_back(std::move(offset));
  prepared->packedInputs.push_back(1);
  return p;
}

// The prepared blobs as device pointers for a launch (checked against the prepared extents).
struct I8Operands {
  const void* weights;
  Int8Quant q;
};
I8Operands operandsOf(const runtime::StepArgs& a, const I8Weights& w) {
  if (w.blob + 2 >= a.numBlobs || a.blobs[w.blob].bytes != size_t(w.n * w.k) ||
      a.blobs[w.blob + 1].bytes != size_t(w.n) * 4 || a.blobs[w.blob + 2].bytes != size_t(w.n) * 4)
    a.fail("the quantized weights, scales or offsets do not match the layer's features");
  I8Operands o;
  o.weights = a.blobs[w.blob].data;
  o.q.scale = static_cast<const float*>(a.blobs[w.blob + 1].data);
  o.q.offset = static_cast<const std::int32_t*>(a.blobs[w.blob + 2].data);
  o.q.xInv = w.xInv;
  o.q.xZero = w.xZero;
  return o;
}

bool constantB(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  return types.size() >= 2 && n.input(1) && n.input(1)->isInitializer() && types[1].shape.rankKnown() &&
         types[1].shape.isStatic();
}

// ---- Gemm / anvil.FusedGemm ----

struct I8GemmParams {
  GemmParams gemm;
  I8Weights w;
};

bool gemmSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  EpilogueCode e;
  if (!commonSupports(n, types, &e) || !constantB(n, types)) return false;
  if (!rankIs(types[0], 2) || !rankIs(types[1], 2)) return false;
  const bool transB = n.attrs().getInt("transB", 0) != 0;
  const int64_t k = staticDim(types[1], transB ? 1 : 0), bigN = staticDim(types[1], transB ? 0 : 1);
  if (!int8Supports(n, k, bigN, transB ? 0 : 1)) return false;
  return gemmCForm(n, types, bigN, e.residual).has_value();
}

void gemmPrepare(const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  I8GemmParams p;
  p.gemm = prepareGemmParams(info, prepared);  // a folded C first: blob 0, where setGemmEpilogue reads it
  const std::vector<int64_t>& dims = info.constants[1]->dims();
  const int64_t k = dims[p.gemm.transB ? 1 : 0], n = dims[p.gemm.transB ? 0 : 1];
  // B stored k x n (feature f's value i at f + i * n) or, transposed, n x k.
  p.w = prepareWeights(info, n, k, p.gemm.transB ? k : 1, p.gemm.transB ? 1 : n, p.gemm.transB ? 0 : 1,
                       p.gemm.alpha, prepared);
  prepared->setParams(p);
}

void gemmRun(const runtime::StepArgs& a) {
  const I8GemmParams& p = a.paramsAs<I8GemmParams>();
  const runtime::TensorView& A = a.in(0);
  runtime::TensorView& Y = a.out(0);
  const int64_t m = p.gemm.transA ? A.dims[1] : A.dims[0], k = p.gemm.transA ? A.dims[0] : A.dims[1];
  const int64_t n = p.w.n;
  if (k != p.w.k) a.fail("Gemm: inner dims of A and B differ");
  if (Y.rank != 2 || Y.dims[0] != m || Y.dims[1] != n) a.fail("Gemm: the output is not [M, N]");
  checkResidual(a, p.gemm.epilogue);
  const I8Operands o = operandsOf(a, p.w);
  GemmDesc d = GemmDesc::packed(1, m, n, k, p.gemm.transA, true, A.data, o.weights, Y.data, DataType::kI8);
  setGemmEpilogue(a, p.gemm, m, n, &d);
  d.alpha = 1.0f;  // in the scales
  launchGemmInt8TensorCore(runtimeOf(a), streamOf(a), d, o.q);
}

// ---- MatMul / anvil.FusedMatMul: one B for every batch, A's rows flattened into M ----

struct I8MatMulParams {
  EpilogueCode epilogue;
  MatMulBias bias = MatMulBias::kNone;
  I8Weights w;
};

bool matmulSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  EpilogueCode e;
  if (!commonSupports(n, types, &e) || !constantB(n, types)) return false;
  const ir::TensorType &a = types[0], &b = types[1];
  if (!a.shape.rankKnown() || a.shape.rank() < 1 || a.shape.rank() > size_t(runtime::kMaxRank)) return false;
  const size_t rb = b.shape.rank();
  if (rb < 1 || rb > size_t(runtime::kMaxRank)) return false;
  for (size_t i = 0; i + 2 < rb; ++i)
    if (b.shape[i].value() != 1) return false;  // a batch of weights: not this kernel's
  const int64_t kb = rb == 1 ? b.shape[0].value() : b.shape[rb - 2].value();
  const int64_t bigN = rb == 1 ? 1 : b.shape[rb - 1].value();
  const int64_t ka = staticDim(a, -1);
  if (ka >= 0 && ka != kb) return false;
  if (!int8Supports(n, kb, bigN, int64_t(rb) - 1)) return false;
  return matmulBiasForm(n, types).has_value();
}

void matmulPrepare(const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  const ir::Node& n = *info.node;
  I8MatMulParams p;
  decodeEpilogue(n, &p.epilogue);
  const std::optional<MatMulBias> bias = matmulBiasForm(n, info.maxTypes);
  ANVIL_CHECK(bias.has_value(), ErrorCode::kUnsupported, n.label(), ": the bias does not fit the CUDA GEMM");
  p.bias = *bias;
  const std::vector<int64_t>& dims = info.constants[1]->dims();
  const int64_t k = dims.size() == 1 ? dims[0] : dims[dims.size() - 2];
  const int64_t bigN = dims.size() == 1 ? 1 : dims.back();
  if (p.bias == MatMulBias::kBlob) {  // blob 0, where matmulBias() reads it
    prepared->blobs.push_back(foldBias(*info.constants[2], bigN, 1.0f));
    prepared->packedInputs.push_back(2);
  }
  // B stored k x n: feature f's value i at f + i * n.
  p.w = prepareWeights(info, bigN, k, 1, bigN, int64_t(dims.size()) - 1, 1.0f, prepared);
  prepared->setParams(p);
}

void matmulRun(const runtime::StepArgs& a) {
  const I8MatMulParams& p = a.paramsAs<I8MatMulParams>();
  const runtime::TensorView& A = a.in(0);
  runtime::TensorView& Y = a.out(0);
  const int64_t k = A.dims[A.rank - 1], n = p.w.n;
  if (k != p.w.k) a.fail("MatMul: inner dims of A and B differ");
  int64_t m = 1;
  for (int i = 0; i + 1 < A.rank; ++i) m *= A.dims[i];
  if (Y.numel() != m * n) a.fail("MatMul: the output's extents do not match A x B");
  checkResidual(a, p.epilogue);
  const I8Operands o = operandsOf(a, p.w);
  GemmDesc d = GemmDesc::packed(1, m, n, k, false, true, A.data, o.weights, Y.data, DataType::kI8);
  d.bias = matmulBias(a, p.bias, n);
  if (p.epilogue.residual) {
    d.z = a.in(int(lin::kResidualInput)).data;
    d.ldz = n;
  }
  setEpilogue(&d, p.epilogue);
  launchGemmInt8TensorCore(runtimeOf(a), streamOf(a), d, o.q);
}

// ---- Conv / anvil.FusedConv: the implicit GEMM, weights quantized per output channel ----

struct I8ConvParams {
  ConvParams conv;
  int64_t cg = 0, r = 0, s = 0;
  I8Weights w;
};

// Depthwise layers keep the direct f32 kernel, as the f16 / bf16 tactics do.
bool convSupports(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  if (!anyConvSupports(n, types) || isDepthwise(n, types) || !constantB(n, types)) return false;
  const int64_t k = staticDim(types[1], 0);
  const int64_t kdim = staticDim(types[1], 1) * staticDim(types[1], 2) * staticDim(types[1], 3);
  return int8Supports(n, kdim, k, 0);
}

void convPrepare(const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  I8ConvParams p;
  p.conv = prepareConvParams(info);
  const std::vector<int64_t>& dims = info.constants[1]->dims();
  p.cg = dims[1], p.r = dims[2], p.s = dims[3];
  const int64_t kdim = p.cg * p.r * p.s;
  // [k, cg * r * s] as stored: one GEMM row per output channel.
  p.w = prepareWeights(info, dims[0], kdim, kdim, 1, 0, 1.0f, prepared);
  prepared->setParams(p);
}

void convRun(const runtime::StepArgs& a) {
  const I8ConvParams& p = a.paramsAs<I8ConvParams>();
  const Conv2dDesc d = conv2dDescOf(a, p.conv, p.w.n, p.cg, p.r, p.s);
  const I8Operands o = operandsOf(a, p.w);
  launchConv2dInt8TensorCore(runtimeOf(a), streamOf(a), d, o.weights, o.q);
}

void add(runtime::Kernels& k, const char* name, const char* op, const char* domain, runtime::SupportsFn supports,
         runtime::PrepareFn prepare, runtime::RunFn run) {
  runtime::Kernel c = cudaKernel(name, op, domain);
  c.precision = DataType::kI8;
  c.supports = std::move(supports);
  c.prepare = std::move(prepare);
  c.run = std::move(run);
  k.add(std::move(c));
}

}  // namespace

void addInt8TensorCoreKernels(runtime::Kernels& k) {
  const char* gemm = gemmTensorCoreKernelName(DataType::kI8);
  const char* conv = conv2dTensorCoreKernelName(DataType::kI8);
  add(k, gemm, "Gemm", "", gemmSupports, gemmPrepare, gemmRun);
  add(k, gemm, "FusedGemm", "anvil", gemmSupports, gemmPrepare, gemmRun);
  add(k, gemm, "MatMul", "", matmulSupports, matmulPrepare, matmulRun);
  add(k, gemm, "FusedMatMul", "anvil", matmulSupports, matmulPrepare, matmulRun);
  add(k, conv, "Conv", "", convSupports, convPrepare, convRun);
  add(k, conv, "FusedConv", "anvil", convSupports, convPrepare, convRun);
}

}  // namespace anvil::cuda::tactics
