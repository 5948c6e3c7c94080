// anvil.FusedElementwise compiled at build time: prepare() generates one CUDA C kernel for the
// node's program (cuda/jit/elementwise_codegen.h) and compiles it with NVRTC for the target's
// compute capability (CUBIN) and as PTX for later GPUs; both are the step's prepared blobs.
// open() loads the module in each context (the CUBIN, else the PTX), run() launches its
// function with the views' pointers and broadcast steps, close() unloads it. gpuOnly: offered
// only where the builder times on a real GPU of the target (the simulator runs only anvil's
// own kernels), so cross-builds keep the interpreting kernel (elementwise.cpp).
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "cuda/jit/elementwise_codegen.h"
#include "cuda/jit/nvrtc.h"
#include "cuda/tactics/fused_program.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"

namespace anvil::cuda::tactics {

namespace {

using kernels::kEwMaxInputs;
using kernels::kEwMaxRank;

constexpr const char* kJitFusedName = "f32_fused_eltwise_nvrtc";

// What prepare() leaves for open() and run(); blobs are [CUBIN, PTX].
struct JitParams {
  char entry[40];  // "anvil_fused_ew_" + 16 hex digits, NUL-terminated
  int numInputs;
  int computeCapability;  // of the CUBIN
};
static_assert(sizeof("anvil_fused_ew_0123456789abcdef") <= sizeof(JitParams::entry));

// A context's loaded module and the kernel's handle in it.
struct JitState {
  void* module = nullptr;
  void* function = nullptr;
};

// f32 everywhere, ranks the strided path indexes without merging.
bool typesOk(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  if (types.empty() || n.numOutputs() != 1) return false;
  for (const ir::TensorType& t : types)
    if (t.dtype != DataType::kF32 || !t.shape.rankKnown() || t.shape.rank() > size_t(kEwMaxRank)) return false;
  const ir::TensorType& y = n.output(0)->type();
  return y.dtype == DataType::kF32 && y.shape.rankKnown() && y.shape.rank() <= size_t(kEwMaxRank);
}

// NVRTC output per (compute capability, source): a model repeats its fused programs, and the
// builder prepares each candidate once per node.
jit::NvrtcOutput compiled(const std::string& source, const std::string& name, int cc) {
  static std::mutex mu;
  static std::map<std::pair<int, std::string>, jit::NvrtcOutput> cache;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = cache.find({cc, source});
    if (it != cache.end()) return it->second;
  }
  jit::NvrtcOutput out = jit::compileCuda(source, name, cc);
  std::lock_guard<std::mutex> lock(mu);
  return cache.emplace(std::make_pair(cc, source), std::move(out)).first->second;
}

void prepareJit(const runtime::PrepareInfo& info, runtime::Prepared* out) {
  const ir::Node& n = *info.node;
  FusedProgram prog;
  if (!decodeFusedProgram(n, &prog) || !jit::canGenerate(prog))
    ANVIL_THROW(ErrorCode::kUnsupported, n.label(), ": program not served by ", kJitFusedName);
  if (info.cudaComputeCapability < 10)
    ANVIL_THROW(ErrorCode::kInvalidArgument, n.label(), ": ", kJitFusedName,
                " compiles for the target GPU; PrepareInfo::cudaComputeCapability is not set");
  const jit::GeneratedKernel g = jit::generateElementwiseKernel(prog);
  const jit::NvrtcOutput bin = compiled(g.source, g.entry + ".cu", info.cudaComputeCapability);
  JitParams p{};
  std::strncpy(p.entry, g.entry.c_str(), sizeof p.entry - 1);
  p.numInputs = prog.numInputs;
  p.computeCapability = info.cudaComputeCapability;
  out->setParams(p);
  out->blobs = {bin.cubin, bin.ptx};
}

void* openJit(const runtime::OpenArgs& o) {
  const std::string what = o.node ? o.node->label() : std::string(kJitFusedName);
  if (!o.device) ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": ", kJitFusedName, " opened without a device runtime");
  if (o.params.bytes != sizeof(JitParams) || o.numBlobs != 2)
    ANVIL_THROW(ErrorCode::kInvalidEngine, what, ": ", kJitFusedName, " expects its params and [CUBIN, PTX] blobs");
  const JitParams& p = *o.params.as<JitParams>();
  DeviceRuntime& rt = *o.device;
  void* module = nullptr;
  try {
    module = rt.loadModule(o.blobs[0].data, o.blobs[0].bytes);
  } catch (const Error& cubinError) {
    // A runtime that loads no modules at all (the simulator) says so itself.
    if (cubinError.code() == ErrorCode::kUnsupported) throw;
    // A GPU the CUBIN was not built for (a later architecture): the driver compiles the PTX.
    try {
      module = rt.loadModule(o.blobs[1].data, o.blobs[1].bytes);
    } catch (const Error& ptxError) {
      ANVIL_THROW(ErrorCode::kRuntimeError, what, ": ", kJitFusedName, " for sm_", p.computeCapability,
                  " loads neither as CUBIN (", cubinError.what(), ") nor as PTX (", ptxError.what(), ")");
    }
  }
  auto* s = new JitState{module, nullptr};
  try {
    s->function = rt.moduleFunction(module, p.entry);
  } catch (...) {
    rt.unloadModule(module);
    delete s;
    throw;
  }
  return s;
}

void closeJit(void* state, DeviceRuntime* device) {
  auto* s = static_cast<JitState*>(state);
  if (!s) return;
  void* module = s->module;
  delete s;
  if (device && module) device->unloadModule(module);
}

// The launch on the step's views: per input its steps along the output's dimensions (numpy
// broadcasting, right-aligned, 0 where broadcast), the contiguous path where every input is
// full or one element, else the strided one over dimensions merged where every input steps
// through them as one (as the interpreting kernels' launcher does).
void runJit(const runtime::StepArgs& a) {
  const JitParams& p = a.paramsAs<JitParams>();
  const auto* s = static_cast<const JitState*>(a.state);
  if (!s || !s->function) a.fail(std::string(kJitFusedName) + " ran without its module (open() was not called)");
  const runtime::TensorView& y = a.out(0);
  if (y.dtype != DataType::kF32 || y.rank < 0 || y.rank > runtime::kMaxRank) a.fail("output must be f32 of known rank");
  if (p.numInputs < 1 || p.numInputs > kEwMaxInputs || a.numInputs != p.numInputs)
    a.fail("expects " + std::to_string(p.numInputs) + " inputs");
  jit::JitEwArgs args{};
  const int r = y.rank;
  const std::int64_t n = y.numel();
  args.out = y.as<float>();
  args.n = n;
  std::int64_t steps[kEwMaxInputs][runtime::kMaxRank] = {};
  bool contiguous = true;
  for (int k = 0; k < p.numInputs; ++k) {
    if (!a.hasInput(k)) a.fail("input " + std::to_string(k) + " is missing");
    const runtime::TensorView& x = a.in(k);
    if (x.dtype != DataType::kF32 || x.rank < 0 || x.rank > r)
      a.fail("input " + std::to_string(k) + " must be f32 of rank at most the output's");
    std::int64_t step = 1;
    bool same = x.rank == r;
    for (int j = x.rank - 1; j >= 0; --j) {
      const int od = r - x.rank + j;
      if (x.dims[j] != y.dims[od] && x.dims[j] != 1)
        a.fail("input " + std::to_string(k) + " does not broadcast to the output at axis " + std::to_string(j));
      same = same && x.dims[j] == y.dims[od];
      steps[k][od] = x.dims[j] == 1 ? 0 : step;
      step *= x.dims[j];
    }
    const std::int64_t xn = x.numel();
    same = same || xn == n;  // the same dense layout, whatever unit dimensions either spells
    contiguous = contiguous && (same || xn == 1);
    args.contigStep[k] = same ? 1 : 0;
    args.in[k] = x.as<const float>();
    if (n > 0 && !x.data) a.fail("input " + std::to_string(k) + " is null");
  }
  if (n == 0) return;
  if (!y.data) a.fail("output is null");
  if (!contiguous) {
    int m = 0;
    std::int64_t msteps[kEwMaxInputs][runtime::kMaxRank];
    for (int d = 0; d < r; ++d) {
      if (y.dims[d] == 1) continue;
      bool merge = m > 0;
      for (int k = 0; merge && k < p.numInputs; ++k) merge = msteps[k][m - 1] == steps[k][d] * y.dims[d];
      if (merge) {
        args.dims[m - 1] *= y.dims[d];
        for (int k = 0; k < p.numInputs; ++k) msteps[k][m - 1] = steps[k][d];
        continue;
      }
      if (m == kEwMaxRank) a.fail("the broadcast needs more than " + std::to_string(kEwMaxRank) + " dimensions");
      args.dims[m] = y.dims[d];
      for (int k = 0; k < p.numInputs; ++k) msteps[k][m] = steps[k][d];
      ++m;
    }
    for (int d = 0; d < m; ++d)
      for (int k = 0; k < p.numInputs; ++k) args.strides[k][d] = msteps[k][d];
    args.rank = m;
    args.strided = 1;
  }
  void* argv[1] = {&args};
  const LaunchShape shape{Dim3{kernels::elementwiseGrid(n)}, Dim3{unsigned(jit::kJitEwBlock)}, 0};
  runtimeOf(a).launchFunction(s->function, argv, shape, streamOf(a));
}

}  // namespace

void addJitKernels(runtime::Kernels& reg) {
  runtime::Kernel k = cudaKernel(kJitFusedName, "FusedElementwise", "anvil");
  k.gpuOnly = true;
  k.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    FusedProgram prog;
    return typesOk(n, types) && decodeFusedProgram(n, &prog) && jit::canGenerate(prog);
  };
  k.prepare = prepareJit;
  k.open = openJit;
  k.close = closeJit;
  k.run = runJit;
  reg.add(std::move(k));
}

}  // namespace anvil::cuda::tactics
