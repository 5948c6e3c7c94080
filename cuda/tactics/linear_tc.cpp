// The tensor-core linear layers on the CUDA backend: MatMul / anvil.FusedMatMul, Gemm /
// anvil.FusedGemm and Conv / anvil.FusedConv (2-D, not depthwise) with constant weights, in the
// f16 and bf16 precisions (a node the precision pass gave kF16 / kBF16), over the WMMA GEMM and
// implicit-GEMM convolution (cuda/linear_tc.h). Activations stay f32 in and out; prepare()
// packs the weights once into a blob of the precision's type (a GEMM's op(B) K x N row-major
// whatever transB says, a Conv's as stored); the kernels round the activations as they stage
// them and accumulate in f32, and run the same fused epilogue as the f32 SIMT tactics
// (cuda/tactics/linear.cpp), whose decoding this file shares (linear_common.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cuda/linear_tc.h"
#include "cuda/tactics/linear_common.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"

namespace anvil::cuda::tactics {

namespace {

using namespace linear_common;

// B as a constant of static shape; its values are packed at prepare().
bool constantB(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  return types.size() >= 2 && n.input(1) && n.input(1)->isInitializer() && types[1].shape.rankKnown() &&
         types[1].shape.isStatic();
}

// op(B) (k x n, B stored k x n, or n x k when transposed) as k x n row-major elements of
// `prec`: the blob the kernel reads with ldb = n. (A Conv's weights are k rows of n.)
std::string packB(const ir::Tensor& b, int64_t k, int64_t n, bool transposed, DataType prec) {
  std::string blob(size_t(k * n) * 2, '\0');
  const float* in = b.data<float>();
  for (int64_t kk = 0; kk < k; ++kk) {
    for (int64_t j = 0; j < n; ++j) {
      const float v = transposed ? in[j * k + kk] : in[kk * n + j];
      char* out = blob.data() + size_t(kk * n + j) * 2;
      if (prec == DataType::kF16) {
        const __half h = __float2half_rn(v);
        std::memcpy(out, &h, 2);
      } else {
        const __nv_bfloat16 h = __float2bfloat16_rn(v);
        std::memcpy(out, &h, 2);
      }
    }
  }
  return blob;
}

// The packed B's extents and blob, and the precision the kernel multiplies in.
struct PackedB {
  int64_t k = 0, n = 0;
  std::int32_t blob = 0;  // index in the step's blobs
  DataType prec = DataType::kF16;
};

const runtime::Blob& blobOf(const runtime::StepArgs& a, const PackedB& b) {
  if (b.blob >= a.numBlobs || a.blobs[b.blob].bytes != size_t(b.k * b.n) * 2)
    a.fail("the packed weights are not K x N of the layer's precision");
  return a.blobs[b.blob];
}

// ---- Gemm / anvil.FusedGemm ----

struct TcGemmParams {
  GemmParams gemm;
  PackedB b;
};

bool gemmSupports(DataType prec, const ir::Node& n, const std::vector<ir::TensorType>& types) {
  EpilogueCode e;
  if (n.precision() != prec || !commonSupports(n, types, &e) || !constantB(n, types)) return false;
  if (!rankIs(types[0], 2) || !rankIs(types[1], 2)) return false;
  const bool transB = n.attrs().getInt("transB", 0) != 0;
  return gemmCForm(n, types, staticDim(types[1], transB ? 0 : 1), e.residual).has_value();
}

void gemmPrepare(DataType prec, const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  TcGemmParams p;
  p.gemm = prepareGemmParams(info, prepared);
  const ir::Tensor& b = *info.constants[1];
  p.b.k = b.dims()[p.gemm.transB ? 1 : 0];
  p.b.n = b.dims()[p.gemm.transB ? 0 : 1];
  p.b.prec = prec;
  p.b.blob = std::int32_t(prepared->blobs.size());
  prepared->blobs.push_back(packB(b, p.b.k, p.b.n, p.gemm.transB, prec));
  prepared->packedInputs.push_back(1);
  prepared->setParams(p);
}

void gemmRun(const runtime::StepArgs& a) {
  const TcGemmParams& p = a.paramsAs<TcGemmParams>();
  const runtime::TensorView& A = a.in(0);
  runtime::TensorView& Y = a.out(0);
  const int64_t m = p.gemm.transA ? A.dims[1] : A.dims[0], k = p.gemm.transA ? A.dims[0] : A.dims[1];
  const int64_t n = p.b.n;
  if (k != p.b.k) a.fail("Gemm: inner dims of A and B differ");
  if (Y.rank != 2 || Y.dims[0] != m || Y.dims[1] != n) a.fail("Gemm: the output is not [M, N]");
  checkResidual(a, p.gemm.epilogue);
  GemmDesc d = GemmDesc::packed(1, m, n, k, p.gemm.transA, false, A.data, blobOf(a, p.b).data, Y.data, p.b.prec);
  setGemmEpilogue(a, p.gemm, m, n, &d);
  launchGemmTensorCore(runtimeOf(a), streamOf(a), d);
}

// ---- MatMul / anvil.FusedMatMul ----

// One B for every batch: B is [K], [K, N] or [1, ..., 1, K, N], so the output is A's rows
// (every dim but the last, flattened) times B: a single GEMM of M = numel(A) / K rows.
struct TcMatMulParams {
  EpilogueCode epilogue;
  MatMulBias bias = MatMulBias::kNone;
  PackedB b;
};

bool matmulSupports(DataType prec, const ir::Node& n, const std::vector<ir::TensorType>& types) {
  EpilogueCode e;
  if (n.precision() != prec || !commonSupports(n, types, &e) || !constantB(n, types)) return false;
  const ir::TensorType &a = types[0], &b = types[1];
  if (!a.shape.rankKnown() || a.shape.rank() < 1 || a.shape.rank() > size_t(runtime::kMaxRank)) return false;
  const size_t rb = b.shape.rank();
  if (rb < 1 || rb > size_t(runtime::kMaxRank)) return false;
  for (size_t i = 0; i + 2 < rb; ++i)
    if (b.shape[i].value() != 1) return false;  // a batch of weights: not this kernel's
  const int64_t kb = rb == 1 ? b.shape[0].value() : b.shape[rb - 2].value();
  const int64_t ka = staticDim(a, -1);
  if (ka >= 0 && ka != kb) return false;
  return matmulBiasForm(n, types).has_value();
}

void matmulPrepare(DataType prec, const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  const ir::Node& n = *info.node;
  TcMatMulParams p;
  decodeEpilogue(n, &p.epilogue);
  const std::optional<MatMulBias> bias = matmulBiasForm(n, info.maxTypes);
  ANVIL_CHECK(bias.has_value(), ErrorCode::kUnsupported, n.label(), ": the bias does not fit the CUDA GEMM");
  p.bias = *bias;
  const ir::Tensor& b = *info.constants[1];
  const std::vector<int64_t>& dims = b.dims();
  p.b.k = dims.size() == 1 ? dims[0] : dims[dims.size() - 2];
  p.b.n = dims.size() == 1 ? 1 : dims.back();
  p.b.prec = prec;
  if (p.bias == MatMulBias::kBlob) {  // blob 0, where matmulBias() reads it
    prepared->blobs.push_back(foldBias(*info.constants[2], p.b.n, 1.0f));
    prepared->packedInputs.push_back(2);
  }
  p.b.blob = std::int32_t(prepared->blobs.size());
  prepared->blobs.push_back(packB(b, p.b.k, p.b.n, false, prec));
  prepared->packedInputs.push_back(1);
  prepared->setParams(p);
}

void matmulRun(const runtime::StepArgs& a) {
  const TcMatMulParams& p = a.paramsAs<TcMatMulParams>();
  const runtime::TensorView& A = a.in(0);
  runtime::TensorView& Y = a.out(0);
  const int64_t k = A.dims[A.rank - 1], n = p.b.n;
  if (k != p.b.k) a.fail("MatMul: inner dims of A and B differ");
  int64_t m = 1;
  for (int i = 0; i + 1 < A.rank; ++i) m *= A.dims[i];
  if (Y.numel() != m * n) a.fail("MatMul: the output's extents do not match A x B");
  checkResidual(a, p.epilogue);
  GemmDesc d = GemmDesc::packed(1, m, n, k, false, false, A.data, blobOf(a, p.b).data, Y.data, p.b.prec);
  d.bias = matmulBias(a, p.bias, n);
  if (p.epilogue.residual) {
    d.z = a.in(int(lin::kResidualInput)).data;
    d.ldz = n;
  }
  setEpilogue(&d, p.epilogue);
  launchGemmTensorCore(runtimeOf(a), streamOf(a), d);
}

// ---- Conv / anvil.FusedConv: the implicit GEMM, weights packed [k, c / group, r, s] ----

struct TcConvParams {
  ConvParams conv;
  int64_t k = 0, cg = 0, r = 0, s = 0;
  std::int32_t blob = 0;
  DataType prec = DataType::kF16;
};

// Depthwise layers keep the direct f32 kernel: a 64-row tile of one output channel per group
// would waste 63/64 of every fragment.
bool convSupports(DataType prec, const ir::Node& n, const std::vector<ir::TensorType>& types) {
  return n.precision() == prec && anyConvSupports(n, types) && !isDepthwise(n, types) && constantB(n, types);
}

void convPrepare(DataType prec, const runtime::PrepareInfo& info, runtime::Prepared* prepared) {
  TcConvParams p;
  p.conv = prepareConvParams(info);
  const ir::Tensor& w = *info.constants[1];
  p.k = w.dims()[0], p.cg = w.dims()[1], p.r = w.dims()[2], p.s = w.dims()[3];
  p.prec = prec;
  p.blob = std::int32_t(prepared->blobs.size());
  // [k, cg * r * s] as stored: one GEMM row per output channel.
  prepared->blobs.push_back(packB(w, p.k, p.cg * p.r * p.s, false, prec));
  prepared->packedInputs.push_back(1);
  prepared->setParams(p);
}

void convRun(const runtime::StepArgs& a) {
  const TcConvParams& p = a.paramsAs<TcConvParams>();
  const Conv2dDesc d = conv2dDescOf(a, p.conv, p.k, p.cg, p.r, p.s);
  const int64_t kdim = p.cg * p.r * p.s;
  if (p.blob >= a.numBlobs || a.blobs[p.blob].bytes != size_t(p.k * kdim) * 2)
    a.fail("Conv: the packed weights are not [K, C / group, R, S] of the layer's precision");
  launchConv2dTensorCore(runtimeOf(a), streamOf(a), d, a.blobs[p.blob].data, p.prec);
}

void add(runtime::Kernels& k, const char* name, DataType prec, const char* op, const char* domain,
         runtime::SupportsFn supports, runtime::PrepareFn prepare, runtime::RunFn run) {
  runtime::Kernel c = cudaKernel(name, op, domain);
  c.precision = prec;
  c.supports = std::move(supports);
  c.prepare = std::move(prepare);
  c.run = std::move(run);
  k.add(std::move(c));
}

}  // namespace

void addTensorCoreKernels(runtime::Kernels& k) {
  for (const DataType prec : {DataType::kF16, DataType::kBF16}) {
    auto gs = [prec](const ir::Node& n, const std::vector<ir::TensorType>& t) { return gemmSupports(prec, n, t); };
    auto gp = [prec](const runtime::PrepareInfo& i, runtime::Prepared* out) { gemmPrepare(prec, i, out); };
    auto ms = [prec](const ir::Node& n, const std::vector<ir::TensorType>& t) { return matmulSupports(prec, n, t); };
    auto mp = [prec](const runtime::PrepareInfo& i, runtime::Prepared* out) { matmulPrepare(prec, i, out); };
    auto cs = [prec](const ir::Node& n, const std::vector<ir::TensorType>& t) { return convSupports(prec, n, t); };
    auto cp = [prec](const runtime::PrepareInfo& i, runtime::Prepared* out) { convPrepare(prec, i, out); };
    const char* gemm = gemmTensorCoreKernelName(prec);
    const char* conv = conv2dTensorCoreKernelName(prec);
    add(k, gemm, prec, "Gemm", "", gs, gp, gemmRun);
    add(k, gemm, prec, "FusedGemm", "anvil", gs, gp, gemmRun);
    add(k, gemm, prec, "MatMul", "", ms, mp, matmulRun);
    add(k, gemm, prec, "FusedMatMul", "anvil", ms, mp, matmulRun);
    add(k, conv, prec, "Conv", "", cs, cp, convRun);
    add(k, conv, prec, "FusedConv", "anvil", cs, cp, convRun);
  }
}

}  // namespace anvil::cuda::tactics
