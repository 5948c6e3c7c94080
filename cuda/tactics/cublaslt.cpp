// cuBLASLt tactics for the GEMM layers (gpuOnly: they need a GPU at build and run time, so
// the builder offers them only where it times on one): MatMul / anvil.FusedMatMul / Gemm /
// anvil.FusedGemm with a constant 2-D weight, f32, static extents, and an epilogue cuBLASLt
// runs exactly as ONNX does — none, bias [N], ReLU, ReLU after bias. (cuBLASLt's GELU
// epilogue is the tanh form, not ONNX's erf Gelu: those layers stay on our own kernels.)
// cuBLASLt's heuristic proposes algorithms for the problem; each of the first four is its own
// tactic, "cublaslt_heuristic_<i>", which the builder times against our SIMT GEMM.
//
// Row-major C[M,N] = A[M,K] B[K,N] is column-major C^T[N,M] = B^T[N,K] A^T[K,M]: cuBLASLt's
// A is our B (op N, or T when B is stored [N,K]), its B is our A, D is our C with ld N; the
// bias vector runs along D's rows, i.e. our N.
//
// libcublasLt is loaded with dlopen on first use: the runtime links nothing of it and starts
// (and runs every other tactic) where it is absent.
#include <cublasLt.h>

#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "cuda/tactics/dynamic_library.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cuda::tactics {

namespace {

namespace lin = ir::linear;

// The cuBLASLt entry points this file uses, from the shared library.
struct Lt {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtMatmulDescCreate) descCreate = nullptr;
  decltype(&cublasLtMatmulDescDestroy) descDestroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) descSet = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layoutCreate = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layoutDestroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) prefCreate = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) prefDestroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) prefSet = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
};

const Lt& lt() {
  static Lt l;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    static DynamicLibrary lib({"libcublasLt.so.13", "libcublasLt.so"});
    lib.get(l.create, "cublasLtCreate");
    lib.get(l.destroy, "cublasLtDestroy");
    lib.get(l.descCreate, "cublasLtMatmulDescCreate");
    lib.get(l.descDestroy, "cublasLtMatmulDescDestroy");
    lib.get(l.descSet, "cublasLtMatmulDescSetAttribute");
    lib.get(l.layoutCreate, "cublasLtMatrixLayoutCreate");
    lib.get(l.layoutDestroy, "cublasLtMatrixLayoutDestroy");
    lib.get(l.prefCreate, "cublasLtMatmulPreferenceCreate");
    lib.get(l.prefDestroy, "cublasLtMatmulPreferenceDestroy");
    lib.get(l.prefSet, "cublasLtMatmulPreferenceSetAttribute");
    lib.get(l.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    lib.get(l.matmul, "cublasLtMatmul");
    error = lib.error();
  });
  ANVIL_CHECK(error.empty(), ErrorCode::kUnsupported, "cuBLASLt tactic: ", error);
  return l;
}

void check(cublasStatus_t s, const char* what) {
  ANVIL_CHECK(s == CUBLAS_STATUS_SUCCESS, ErrorCode::kRuntimeError, "cuBLASLt: ", what, " failed with status ",
              static_cast<int>(s));
}

constexpr int kHeuristics = 4;                    // tactics per op: the first four proposals
constexpr uint64_t kWorkspace = uint64_t(4) << 20;  // what cuBLASLt may use (the step's device workspace)

struct Params {
  int64_t m = 0, n = 0, k = 0;
  int32_t transB = 0;
  int32_t bias = -1;  // input holding the [N] bias, -1: none
  int32_t relu = 0;
  int32_t algo = 0;   // which heuristic proposal
};

// The problem of a node at static extents, or false when cuBLASLt cannot run it exactly.
bool decode(const ir::Node& n, const std::vector<ir::TensorType>& t, Params* p) {
  for (const auto& x : t)
    if (x.dtype != DataType::kUndefined && (x.dtype != DataType::kF32 || !x.shape.isStatic())) return false;
  if (t.size() < 2 || !n.input(1) || !n.input(1)->isInitializer() || t[1].shape.rank() != 2) return false;
  if (n.numOutputs() != 1 || n.output(0)->dtype() != DataType::kF32) return false;
  const bool fused = n.domain() == "anvil";
  if (fused) {
    lin::Epilogue e;
    if (!lin::readEpilogue(n.attrs(), &e).empty() || e.residual) return false;
    if (e.act != lin::Activation::kNone && e.act != lin::Activation::kRelu) return false;
    p->relu = e.act == lin::Activation::kRelu;
  }
  const ir::Shape& a = t[0].shape;
  if (!a.rankKnown() || a.rank() < 2) return false;
  const bool gemm = n.op() == "Gemm" || n.op() == "FusedGemm";
  if (gemm) {
    if (a.rank() != 2 || n.attrs().getInt("transA", 0) != 0 || n.attrs().getFloat("alpha", 1.0f) != 1.0f) return false;
    p->transB = int32_t(n.attrs().getInt("transB", 0));
  }
  const int64_t k = a[a.rank() - 1].value();
  int64_t m = 1;
  for (size_t i = 0; i + 1 < a.rank(); ++i) m *= a[i].value();
  const int64_t bk = t[1].shape[p->transB ? 1 : 0].value(), bn = t[1].shape[p->transB ? 0 : 1].value();
  if (bk != k || m <= 0 || bn <= 0 || k <= 0) return false;
  p->m = m;
  p->n = bn;
  p->k = k;
  if (t.size() > 2 && t[2].dtype != DataType::kUndefined) {  // Gemm C / FusedMatMul bias: only a plain [N] bias
    const ir::Shape& c = t[2].shape;
    const bool vector = (c.rank() == 1 && c[0].value() == bn) || (c.rank() == 2 && c[0].value() == 1 && c[1].value() == bn);
    if (!vector || (gemm && n.attrs().getFloat("beta", 1.0f) != 1.0f)) return false;
    p->bias = 2;
  }
  return true;
}

struct State {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
};

void destroy(State* s) {
  const Lt& l = lt();
  if (s->a) l.layoutDestroy(s->a);
  if (s->b) l.layoutDestroy(s->b);
  if (s->d) l.layoutDestroy(s->d);
  if (s->desc) l.descDestroy(s->desc);
  if (s->handle) l.destroy(s->handle);
  delete s;
}

void* open(const runtime::OpenArgs& o) {
  const Params& p = *static_cast<const Params*>(o.params.data);
  const Lt& l = lt();
  auto* s = new State;
  try {
    check(l.create(&s->handle), "cublasLtCreate (a GPU is needed)");
    check(l.descCreate(&s->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "cublasLtMatmulDescCreate");
    const cublasOperation_t ta = p.transB ? CUBLAS_OP_T : CUBLAS_OP_N, tb = CUBLAS_OP_N;
    check(l.descSet(s->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)), "set TRANSA");
    check(l.descSet(s->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)), "set TRANSB");
    const cublasLtEpilogue_t epi = p.bias >= 0 ? (p.relu ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_BIAS)
                                               : (p.relu ? CUBLASLT_EPILOGUE_RELU : CUBLASLT_EPILOGUE_DEFAULT);
    check(l.descSet(s->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)), "set EPILOGUE");
    // Column-major views: cuBLASLt's A = our B ([N,K] as used), B = our A ([K,M]), D = C ([N,M]).
    const uint64_t aRows = p.transB ? uint64_t(p.k) : uint64_t(p.n), aCols = p.transB ? uint64_t(p.n) : uint64_t(p.k);
    check(l.layoutCreate(&s->a, CUDA_R_32F, aRows, aCols, int64_t(aRows)), "layout A");
    check(l.layoutCreate(&s->b, CUDA_R_32F, uint64_t(p.k), uint64_t(p.m), p.k), "layout B");
    check(l.layoutCreate(&s->d, CUDA_R_32F, uint64_t(p.n), uint64_t(p.m), p.n), "layout D");
    cublasLtMatmulPreference_t pref = nullptr;
    check(l.prefCreate(&pref), "cublasLtMatmulPreferenceCreate");
    const uint64_t ws = kWorkspace;
    cublasStatus_t st = l.prefSet(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws));
    cublasLtMatmulHeuristicResult_t results[kHeuristics] = {};
    int found = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = l.heuristic(s->handle, s->desc, s->a, s->b, s->d, s->d, pref, kHeuristics, results, &found);
    l.prefDestroy(pref);
    check(st, "cublasLtMatmulAlgoGetHeuristic");
    ANVIL_CHECK(p.algo < found, ErrorCode::kUnsupported, "cuBLASLt proposes ", found, " algorithms for this GEMM, not ",
                p.algo + 1);
    s->algo = results[p.algo].algo;
  } catch (...) {
    destroy(s);
    throw;
  }
  return s;
}

void run(const runtime::StepArgs& a) {
  const Params& p = a.paramsAs<Params>();
  auto* s = static_cast<State*>(a.state);
  if (!s) a.fail("the cuBLASLt step was not opened");
  const Lt& l = lt();
  if (p.bias >= 0) {
    const void* bias = a.in(p.bias).data;
    check(l.descSet(s->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)), "set BIAS_POINTER");
  }
  const float one = 1.0f, zero = 0.0f;
  DeviceRuntime& rt = runtimeOf(a);
  const cublasStatus_t st =
      l.matmul(s->handle, s->desc, &one, a.in(1).data, s->a, a.in(0).data, s->b, &zero, a.out(0).data, s->d,
               a.out(0).data, s->d, &s->algo, a.workspace, a.workspaceBytes,
               static_cast<cudaStream_t>(rt.nativeStream(streamOf(a))));
  if (st != CUBLAS_STATUS_SUCCESS) a.fail("cublasLtMatmul failed with status " + std::to_string(int(st)));
}

}  // namespace

bool cublasLtServes(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  Params p;
  return decode(n, types, &p);
}

void addCublasLtKernels(runtime::Kernels& k) {
  for (const char* op : {"MatMul", "FusedMatMul", "Gemm", "FusedGemm"}) {
    const std::string domain = std::string(op).rfind("Fused", 0) == 0 ? "anvil" : "";
    for (int i = 0; i < kHeuristics; ++i) {
      runtime::Kernel c = cudaKernel("cublaslt_heuristic_" + std::to_string(i), op, domain);
      c.gpuOnly = true;
      c.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
        Params p;
        return decode(n, t, &p);
      };
      c.prepare = [i](const runtime::PrepareInfo& info, runtime::Prepared* out) {
        Params p;
        ANVIL_CHECK(decode(*info.node, info.optTypes, &p), ErrorCode::kInternal, info.node->label(),
                    ": cuBLASLt prepare() of a node it does not serve");
        for (size_t j = 0; j < info.minTypes.size(); ++j)
          ANVIL_CHECK(info.minTypes[j].shape.extents() == info.maxTypes[j].shape.extents(), ErrorCode::kUnsupported,
                      info.node->label(), ": cuBLASLt tactics serve one shape (their layouts are made when a context "
                      "opens)");
        p.algo = i;
        out->setParams(p);
        out->workspaceBytes = kWorkspace;
      };
      c.open = open;
      c.close = [](void* s, DeviceRuntime*) { destroy(static_cast<State*>(s)); };
      c.run = run;
      k.add(std::move(c));
    }
  }
}

}  // namespace anvil::cuda::tactics
