// cuDNN convolution tactics (gpuOnly: they need a GPU at build and run time, so the builder
// offers them only where it times on one): Conv / anvil.FusedConv, 2-D NCHW f32, static
// extents, symmetric pads, through cudnnConvolutionBiasActivationForward —
//   y = act(conv(x, w) + z + bias)
// which is exactly the fused op's add_then_activate epilogue for act in {none, ReLU} (the
// only activations that call fuses). A layer without a bias gets a zero bias blob. FP32
// math only (CUDNN_FMA_MATH: no TF32, so results stay those of an f32 convolution).
// cuDNN's forward heuristic ranks algorithms for the problem; each of the first three is its
// own tactic, "cudnn_heuristic_<i>", timed by the builder against our implicit GEMM. Without
// an activation cuDNN runs this call only with the implicit precomputed GEMM algorithm: the
// rank-0 tactic uses it and the others decline.
//
// libcudnn is loaded with dlopen on first use: the runtime links nothing of it.

#include <limits>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

// cuDNN 9 marks this legacy API deprecated; it is the one that fuses bias, residual and
// activation into the convolution call.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <cudnn.h>

#include "cuda/tactics/linear_common.h"
#include "cuda/tactics/dynamic_library.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"

namespace anvil::cuda::tactics {

namespace {

using namespace linear_common;

struct Dnn {
  decltype(&cudnnCreate) create = nullptr;
  decltype(&cudnnDestroy) destroy = nullptr;
  decltype(&cudnnSetStream) setStream = nullptr;
  decltype(&cudnnCreateTensorDescriptor) tensorCreate = nullptr;
  decltype(&cudnnSetTensor4dDescriptor) tensorSet = nullptr;
  decltype(&cudnnDestroyTensorDescriptor) tensorDestroy = nullptr;
  decltype(&cudnnCreateFilterDescriptor) filterCreate = nullptr;
  decltype(&cudnnSetFilter4dDescriptor) filterSet = nullptr;
  decltype(&cudnnDestroyFilterDescriptor) filterDestroy = nullptr;
  decltype(&cudnnCreateConvolutionDescriptor) convCreate = nullptr;
  decltype(&cudnnSetConvolution2dDescriptor) convSet = nullptr;
  decltype(&cudnnSetConvolutionGroupCount) convGroups = nullptr;
  decltype(&cudnnSetConvolutionMathType) convMath = nullptr;
  decltype(&cudnnDestroyConvolutionDescriptor) convDestroy = nullptr;
  decltype(&cudnnCreateActivationDescriptor) actCreate = nullptr;
  decltype(&cudnnSetActivationDescriptor) actSet = nullptr;
  decltype(&cudnnDestroyActivationDescriptor) actDestroy = nullptr;
  decltype(&cudnnGetConvolutionForwardAlgorithm_v7) heuristic = nullptr;
  decltype(&cudnnGetConvolutionForwardWorkspaceSize) workspace = nullptr;
  decltype(&cudnnConvolutionBiasActivationForward) forward = nullptr;
};

const Dnn& dnn() {
  static Dnn d;
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    static DynamicLibrary lib({"libcudnn.so.9", "libcudnn.so"});
    lib.get(d.create, "cudnnCreate");
    lib.get(d.destroy, "cudnnDestroy");
    lib.get(d.setStream, "cudnnSetStream");
    lib.get(d.tensorCreate, "cudnnCreateTensorDescriptor");
    lib.get(d.tensorSet, "cudnnSetTensor4dDescriptor");
    lib.get(d.tensorDestroy, "cudnnDestroyTensorDescriptor");
    lib.get(d.filterCreate, "cudnnCreateFilterDescriptor");
    lib.get(d.filterSet, "cudnnSetFilter4dDescriptor");
    lib.get(d.filterDestroy, "cudnnDestroyFilterDescriptor");
    lib.get(d.convCreate, "cudnnCreateConvolutionDescriptor");
    lib.get(d.convSet, "cudnnSetConvolution2dDescriptor");
    lib.get(d.convGroups, "cudnnSetConvolutionGroupCount");
    lib.get(d.convMath, "cudnnSetConvolutionMathType");
    lib.get(d.convDestroy, "cudnnDestroyConvolutionDescriptor");
    lib.get(d.actCreate, "cudnnCreateActivationDescriptor");
    lib.get(d.actSet, "cudnnSetActivationDescriptor");
    lib.get(d.actDestroy, "cudnnDestroyActivationDescriptor");
    lib.get(d.heuristic, "cudnnGetConvolutionForwardAlgorithm_v7");
    lib.get(d.workspace, "cudnnGetConvolutionForwardWorkspaceSize");
    lib.get(d.forward, "cudnnConvolutionBiasActivationForward");
    error = lib.error();
  });
  ANVIL_CHECK(error.empty(), ErrorCode::kUnsupported, "cuDNN tactic: ", error);
  return d;
}

void check(cudnnStatus_t s, const char* what) {
  ANVIL_CHECK(s == CUDNN_STATUS_SUCCESS, ErrorCode::kRuntimeError, "cuDNN: ", what, " failed with status ",
              static_cast<int>(s));
}

constexpr int kHeuristics = 3;
constexpr uint64_t kWorkspace = uint64_t(32) << 20;

struct Params {
  int32_t n, c, h, w, k, cg, r, s, oh, ow;
  int32_t padH, padW, strideH, strideW, dilationH, dilationW, group;
  int32_t relu = 0, residual = 0, hasBias = 0, rank = 0;
};

// The problem at static extents, or false when cuDNN's fused call cannot compute it exactly.
bool decode(const ir::Node& n, const std::vector<ir::TensorType>& t, Params* p) {
  if (!anyConvSupports(n, t)) return false;
  for (const auto& x : t)
    if (x.dtype != DataType::kUndefined && !x.shape.isStatic()) return false;
  EpilogueCode e;
  if (!decodeEpilogue(n, &e)) return false;
  const bool relu = e.act == static_cast<std::int32_t>(Activation::kRelu);
  if ((e.act >= 0 && !relu) || e.clipLo != -std::numeric_limits<float>::infinity() ||
      e.clipHi != std::numeric_limits<float>::infinity())
    return false;
  if (!n.input(1) || !n.input(1)->isInitializer()) return false;  // weights as constants
  ir::nn::Window w;
  if (!readConvWindow(n, t, &w)) return false;
  const auto dims = [](const ir::TensorType& x) { return x.shape.extents(); };
  const std::vector<int64_t> x = dims(t[0]), f = dims(t[1]);
  ir::nn::WindowDim wh, ww;
  if (!ir::nn::forwardDim(x[2], f[2], w.strides[0], w.dilations[0], w.pads[0], w.pads[2], w.autoPad, false, &wh).empty() ||
      !ir::nn::forwardDim(x[3], f[3], w.strides[1], w.dilations[1], w.pads[1], w.pads[3], w.autoPad, false, &ww).empty())
    return false;
  if (wh.padBegin != wh.padEnd || ww.padBegin != ww.padEnd) return false;  // cuDNN pads both sides alike
  const int64_t group = n.attrs().getInt("group", 1);
  if (f[1] * group != x[1] || f[0] % group != 0) return false;
  *p = Params{int32_t(x[0]), int32_t(x[1]), int32_t(x[2]), int32_t(x[3]), int32_t(f[0]), int32_t(f[1]),
              int32_t(f[2]), int32_t(f[3]), int32_t(wh.out), int32_t(ww.out), int32_t(wh.padBegin),
              int32_t(ww.padBegin), int32_t(w.strides[0]), int32_t(w.strides[1]), int32_t(w.dilations[0]),
              int32_t(w.dilations[1]), int32_t(group)};
  p->relu = relu;
  p->residual = e.residual;
  p->hasBias = present(t, 2);
  return true;
}

struct State {
  cudnnHandle_t handle = nullptr;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr, bias = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  cudnnConvolutionFwdAlgo_t algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM;
};

void destroy(State* s) {
  const Dnn& d = dnn();
  if (s->x) d.tensorDestroy(s->x);
  if (s->y) d.tensorDestroy(s->y);
  if (s->bias) d.tensorDestroy(s->bias);
  if (s->w) d.filterDestroy(s->w);
  if (s->conv) d.convDestroy(s->conv);
  if (s->act) d.actDestroy(s->act);
  if (s->handle) d.destroy(s->handle);
  delete s;
}

void* open(const runtime::OpenArgs& o) {
  const Params& p = *static_cast<const Params*>(o.params.data);
  const Dnn& d = dnn();
  auto* s = new State;
  try {
    check(d.create(&s->handle), "cudnnCreate (a GPU is needed)");
    check(d.tensorCreate(&s->x), "x descriptor");
    check(d.tensorSet(s->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.n, p.c, p.h, p.w), "x descriptor");
    check(d.tensorCreate(&s->y), "y descriptor");
    check(d.tensorSet(s->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.n, p.k, p.oh, p.ow), "y descriptor");
    check(d.tensorCreate(&s->bias), "bias descriptor");
    check(d.tensorSet(s->bias, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, p.k, 1, 1), "bias descriptor");
    check(d.filterCreate(&s->w), "filter descriptor");
    check(d.filterSet(s->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.k, p.cg, p.r, p.s), "filter descriptor");
    check(d.convCreate(&s->conv), "convolution descriptor");
    check(d.convSet(s->conv, p.padH, p.padW, p.strideH, p.strideW, p.dilationH, p.dilationW, CUDNN_CROSS_CORRELATION,
                    CUDNN_DATA_FLOAT),
          "convolution descriptor");
    check(d.convGroups(s->conv, p.group), "group count");
    check(d.convMath(s->conv, CUDNN_FMA_MATH), "math type (FP32, no TF32)");
    check(d.actCreate(&s->act), "activation descriptor");
    check(d.actSet(s->act, p.relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY, CUDNN_PROPAGATE_NAN, 0.0),
          "activation descriptor");
    if (p.relu) {
      cudnnConvolutionFwdAlgoPerf_t perf[kHeuristics] = {};
      int found = 0;
      check(d.heuristic(s->handle, s->x, s->w, s->conv, s->y, kHeuristics, &found, perf), "forward heuristic");
      ANVIL_CHECK(p.rank < found && perf[p.rank].status == CUDNN_STATUS_SUCCESS, ErrorCode::kUnsupported,
                  "cuDNN ranks ", found, " algorithms for this convolution, not ", p.rank + 1);
      s->algo = perf[p.rank].algo;
    } else {
      ANVIL_CHECK(p.rank == 0, ErrorCode::kUnsupported,
                  "cuDNN fuses an identity activation with the implicit precomputed GEMM only");
    }
    size_t need = 0;
    check(d.workspace(s->handle, s->x, s->w, s->conv, s->y, s->algo, &need), "workspace size");
    ANVIL_CHECK(need <= kWorkspace, ErrorCode::kUnsupported, "cuDNN algorithm ", int(s->algo), " wants ", need,
                " bytes of workspace, more than the step's ", kWorkspace);
  } catch (...) {
    destroy(s);
    throw;
  }
  return s;
}

void run(const runtime::StepArgs& a) {
  const Params& p = a.paramsAs<Params>();
  auto* s = static_cast<State*>(a.state);
  if (!s) a.fail("the cuDNN step was not opened");
  const Dnn& d = dnn();
  DeviceRuntime& rt = runtimeOf(a);
  check(d.setStream(s->handle, static_cast<cudaStream_t>(rt.nativeStream(streamOf(a)))), "cudnnSetStream");
  const float one = 1.0f, zero = 0.0f;
  void* y = a.out(0).data;
  const void* z = p.residual ? a.in(int(lin::kResidualInput)).data : y;
  const void* bias = p.hasBias ? a.in(2).data : a.blobs[0].data;  // a zero bias where the layer has none
  const cudnnStatus_t st = d.forward(s->handle, &one, s->x, a.in(0).data, s->w, a.in(1).data, s->conv, s->algo,
                                     a.workspace, a.workspaceBytes, p.residual ? &one : &zero, s->y, z, s->bias, bias,
                                     s->act, s->y, y);
  if (st != CUDNN_STATUS_SUCCESS) a.fail("cudnnConvolutionBiasActivationForward failed with status " + std::to_string(int(st)));
}

}  // namespace

bool cudnnServes(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  Params p;
  return decode(n, types, &p);
}

void addCudnnKernels(runtime::Kernels& k) {
  for (const auto& [op, domain] : {std::pair<const char*, const char*>{"Conv", ""}, {"FusedConv", "anvil"}})
    for (int i = 0; i < kHeuristics; ++i) {
      runtime::Kernel c = cudaKernel("cudnn_heuristic_" + std::to_string(i), op, domain);
      c.gpuOnly = true;
      c.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& t) {
        Params p;
        return decode(n, t, &p);
      };
      c.prepare = [i](const runtime::PrepareInfo& info, runtime::Prepared* out) {
        Params p;
        ANVIL_CHECK(decode(*info.node, info.optTypes, &p), ErrorCode::kInternal, info.node->label(),
                    ": cuDNN prepare() of a node it does not serve");
        for (size_t j = 0; j < info.minTypes.size(); ++j)
          ANVIL_CHECK(info.minTypes[j].shape.extents() == info.maxTypes[j].shape.extents(), ErrorCode::kUnsupported,
                      info.node->label(), ": cuDNN tactics serve one shape (their descriptors are made when a "
                      "context opens)");
        p.rank = i;
        out->setParams(p);
        if (!p.hasBias) out->blobs.push_back(std::string(size_t(p.k) * sizeof(float), '\0'));
        out->workspaceBytes = kWorkspace;
      };
      c.open = open;
      c.close = [](void* s, DeviceRuntime*) { destroy(static_cast<State*>(s)); };
      c.run = run;
      k.add(std::move(c));
    }
}

}  // namespace anvil::cuda::tactics

#pragma GCC diagnostic pop
