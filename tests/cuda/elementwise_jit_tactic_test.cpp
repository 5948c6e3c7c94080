// anvil.FusedElementwise compiled with NVRTC (cuda/tactics/elementwise_jit.cpp): the generated
// source (ops inlined in program order, exact literals, only the helpers used), NVRTC's CUBIN
// and PTX for sm_80 and sm_90 without a GPU, NVRTC's log in the error of a source that does
// not compile, the tactic's prepared blobs, the simulator's clear refusal to load them, and
// where a GPU is present the compiled kernel against the reference interpreter.
#include <algorithm>
#include <optional>

#include "anvil/error.h"
#include "cuda/device.h"
#include "cuda/jit/elementwise_codegen.h"
#include "cuda/jit/nvrtc.h"
#include "cuda/tactics/fused_program.h"
#include "tactic_test_util.h"

namespace anvil::cuda::testing {
namespace {

constexpr const char* kJit = "f32_fused_eltwise_nvrtc";

ir::Attributes program(const std::vector<std::string>& p) {
  ir::Attributes a;
  a.set("program", p);
  return a;
}

// One FusedElementwise node over runtime inputs of the given types.
std::unique_ptr<ir::Graph> fusedGraph(const std::vector<ir::TensorType>& inputs, const std::vector<std::string>& prog) {
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ir::Value* v = g->addValue("x" + std::to_string(i), inputs[i]);
    g->addInput(v);
    vs.push_back(v);
  }
  ir::Node* n = g->addNode("FusedElementwise", "anvil", "n0", vs, {"y"});
  n->attrs() = program(prog);
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  return g;
}

ir::TensorType f32(const std::vector<int64_t>& dims) { return ir::Tensor(DataType::kF32, dims).type(); }

const ir::Node& onlyNode(const ir::Graph& g) { return *g.nodes().front(); }

tactics::FusedProgram decoded(const ir::Node& n) {
  tactics::FusedProgram p;
  EXPECT_TRUE(tactics::decodeFusedProgram(n, &p)) << n.label();
  return p;
}

// Each of `parts` occurs in `s`, in this order.
void expectInOrder(const std::string& s, const std::vector<std::string>& parts) {
  size_t at = 0;
  for (const std::string& p : parts) {
    const size_t f = s.find(p, at);
    ASSERT_NE(f, std::string::npos) << "'" << p << "' missing (in order) from:\n" << s;
    at = f + p.size();
  }
}

bool isElf(const std::string& b) { return b.size() > 4 && b.compare(0, 4, "\x7f" "ELF") == 0; }

runtime::PrepareInfo prepareInfo(const ir::Node& n, int cc) {
  runtime::PrepareInfo info;
  info.node = &n;
  for (const ir::Value* v : n.inputs()) {
    info.minTypes.push_back(v->type());
    info.constants.push_back(nullptr);
  }
  info.optTypes = info.maxTypes = info.minTypes;
  info.maxOutputTypes = {n.output(0)->type()};
  info.cudaComputeCapability = cc;
  return info;
}

const std::vector<std::string> kSilu = {"Sigmoid 0", "Mul 0 2", "Add 3 1", "Relu 4"};

TEST(CudaElementwiseJit, GeneratesStraightLineCodeInProgramOrder) {
  auto g = fusedGraph({f32({2, 3}), f32({3})}, kSilu);
  const jit::GeneratedKernel k = jit::generateElementwiseKernel(decoded(onlyNode(*g)));
  EXPECT_EQ(k.entry.rfind("anvil_fused_ew_", 0), 0u) << k.entry;
  EXPECT_EQ(k.source.find("#include"), std::string::npos);
  EXPECT_EQ(k.source.find("anvil_max"), std::string::npos) << "only the helpers used";
  expectInOrder(k.source, {"float anvil_sigmoid(float x)", "float anvil_relu(float x)",
                           "extern \"C\" __global__ void __launch_bounds__(256) " + k.entry + "(const AnvilEwArgs a)",
                           "i += stride", "if (a.strided)", "o1 += pos * a.strides[1][d];",
                           "o0 = i * a.contigStep[0];", "const float r0 = a.in[0][o0];",
                           "const float r1 = a.in[1][o1];", "const float r2 = anvil_sigmoid(r0);",
                           "const float r3 = r0 * r2;", "const float r4 = r3 + r1;",
                           "const float r5 = anvil_relu(r4);", "a.out[i] = r5;"});
  // The same program names the same kernel; another program another.
  auto same = fusedGraph({f32({7, 9}), f32({1})}, kSilu);
  EXPECT_EQ(jit::generateElementwiseKernel(decoded(onlyNode(*same))).entry, k.entry);
  auto other = fusedGraph({f32({2, 3}), f32({3})}, {"Sigmoid 0", "Mul 0 2", "Add 3 1", "Relu 3"});
  EXPECT_NE(jit::generateElementwiseKernel(decoded(onlyNode(*other))).entry, k.entry);
}

TEST(CudaElementwiseJit, AttributesAndOptionalOperands) {
  auto g = fusedGraph({f32({4}), f32({1}), f32({1})},
                      {"LeakyRelu 0 alpha=0.2", "Clip 3 _ 2", "Clip 4 1 _", "Clip 5 1 2", "Gelu 6 approximate=tanh",
                       "Mish 7", "Selu 8"});
  const std::string s = jit::generateElementwiseKernel(decoded(onlyNode(*g))).source;
  // 0.2f exactly (0x3e4ccccd); Selu's defaults; helpers in first use, Mish's softplus before it.
  expectInOrder(s, {"anvil_leaky_relu(float x, float alpha)", "anvil_softplus(float x)", "anvil_mish(float x)",
                    "const float r3 = anvil_leaky_relu(r0, (0x1.99999ap-3f));",
                    "const float r4 = anvil_clip_hi(r3, r2);", "const float r5 = anvil_clip_lo(r4, r1);",
                    "const float r6 = anvil_clip_hi(anvil_clip_lo(r5, r1), r2);",
                    "const float r7 = anvil_gelu_tanh(r6);", "const float r8 = anvil_mish(r7);",
                    "const float r9 = anvil_selu(r8, (0x1.ac5afap+0f), (0x1.0cfabep+0f));"});
}

TEST(CudaElementwiseJit, LeavesOutWhatTheOutputDoesNotReadSoNvrtcDoesNotWarn) {
  auto g = fusedGraph({f32({4}), f32({4}), f32({4})}, {"Add 0 1", "Exp 2", "Relu 4"});
  const jit::GeneratedKernel k = jit::generateElementwiseKernel(decoded(onlyNode(*g)));
  EXPECT_EQ(k.source.find("r0 + r1"), std::string::npos) << k.source;
  EXPECT_EQ(k.source.find("a.in[0]"), std::string::npos) << k.source;
  EXPECT_EQ(k.source.find("a.in[1]"), std::string::npos) << k.source;
  expectInOrder(k.source, {"long long o2;", "const float r2 = a.in[2][o2];", "const float r4 = expf(r2);",
                           "const float r5 = anvil_relu(r4);", "a.out[i] = r5;"});
  ASSERT_TRUE(jit::nvrtcAvailable());
  EXPECT_EQ(jit::compileCuda(k.source, k.entry + ".cu", 90).log, "") << "NVRTC warned";
}

TEST(CudaElementwiseJit, NvrtcCompilesForSm80AndSm90WithoutAGpu) {
  ASSERT_TRUE(jit::nvrtcAvailable()) << "libnvrtc does not load on this machine";
  EXPECT_FALSE(jit::nvrtcVersion().empty());
  auto g = fusedGraph({f32({2, 3}), f32({3})}, kSilu);
  const jit::GeneratedKernel k = jit::generateElementwiseKernel(decoded(onlyNode(*g)));
  for (int cc : {80, 90}) {
    SCOPED_TRACE("sm_" + std::to_string(cc));
    const jit::NvrtcOutput out = jit::compileCuda(k.source, k.entry + ".cu", cc);
    EXPECT_TRUE(isElf(out.cubin));
    EXPECT_EQ(out.log, "") << "NVRTC warned";
    ASSERT_FALSE(out.ptx.empty());
    EXPECT_EQ(out.ptx.back(), '\0') << "PTX keeps its NUL for the module loader";
    EXPECT_NE(out.ptx.find(".entry " + k.entry), std::string::npos);
    EXPECT_NE(out.ptx.find(".target sm_" + std::to_string(cc)), std::string::npos);
    // One by-value parameter exactly as large as the host's argument struct.
    EXPECT_NE(out.ptx.find(k.entry + "_param_0[" + std::to_string(sizeof(jit::JitEwArgs)) + "]"), std::string::npos)
        << out.ptx.substr(0, 2000);
  }
}

TEST(CudaElementwiseJit, EveryOpOfTheProgramLanguageCompiles) {
  ASSERT_TRUE(jit::nvrtcAvailable());
  // Each op once, chained on register 2 upwards with input 1 as the second operand, in
  // programs of at most 16 instructions.
  const std::vector<std::string> ops = {
      "Add # 1", "Sub # 1", "Mul # 1", "Div # 1", "Pow # 1", "Max # 1", "Min # 1", "PRelu # 1", "Clip # 1 _",
      "Clip # _ 1", "Abs #", "Neg #", "Exp #", "Log #", "Sqrt #", "Reciprocal #", "Sigmoid #", "Tanh #", "Relu #",
      "Erf #", "Floor #", "Ceil #", "Round #", "Sin #", "Cos #", "Softplus #", "Softsign #", "Sign #",
      "HardSwish #", "Mish #", "LeakyRelu # alpha=0.1", "Elu # alpha=0.7", "Selu #", "Celu # alpha=1.5",
      "HardSigmoid #", "ThresholdedRelu # alpha=0.3", "Gelu # approximate=none", "Gelu # approximate=tanh"};
  for (size_t start = 0; start < ops.size(); start += 16) {
    std::vector<std::string> prog;
    for (size_t j = start; j < ops.size() && j < start + 16; ++j) {
      std::string t = ops[j];
      t.replace(t.find('#'), 1, std::to_string(prog.empty() ? 0 : 1 + prog.size()));
      prog.push_back(t);
    }
    auto g = fusedGraph({f32({5}), f32({5})}, prog);
    const jit::GeneratedKernel k = jit::generateElementwiseKernel(decoded(onlyNode(*g)));
    const jit::NvrtcOutput out = jit::compileCuda(k.source, k.entry + ".cu", 90);
    EXPECT_TRUE(isElf(out.cubin)) << prog.front();
    EXPECT_EQ(out.log, "") << "NVRTC warned";
  }
}

TEST(CudaElementwiseJit, SourceThatDoesNotCompileGivesNvrtcsLog) {
  ASSERT_TRUE(jit::nvrtcAvailable());
  try {
    jit::compileCuda("extern \"C\" __global__ void k(float* y) { y[0] = not_declared_anywhere; }\n", "broken.cu", 90);
    FAIL() << "compiled";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    const std::string m = e.what();
    EXPECT_NE(m.find("broken.cu"), std::string::npos) << m;
    EXPECT_NE(m.find("sm_90"), std::string::npos) << m;
    EXPECT_NE(m.find("not_declared_anywhere"), std::string::npos) << "NVRTC's log: " << m;
  }
  EXPECT_THROW(jit::compileCuda("", "x.cu", 0), Error);
}

TEST(CudaElementwiseJit, TacticPreparesCubinAndPtxBlobs) {
  auto g = fusedGraph({f32({2, 3, 5}), f32({3, 1})}, kSilu);
  const ir::Node& n = onlyNode(*g);
  const runtime::Kernel* k = cudaKernel(n, kJit);
  ASSERT_NE(k, nullptr);
  EXPECT_TRUE(k->gpuOnly);
  EXPECT_EQ(k->precision, DataType::kF32);
  EXPECT_TRUE(k->open && k->close && k->run);
  const std::vector<const runtime::Kernel*> s = supportingKernels(n, /*gpuOnly=*/true);
  EXPECT_NE(std::find(s.begin(), s.end(), k), s.end());

  runtime::Prepared prepared;
  k->prepare(prepareInfo(n, 90), &prepared);
  ASSERT_EQ(prepared.blobs.size(), 2u);
  EXPECT_TRUE(isElf(prepared.blobs[0]));
  EXPECT_NE(prepared.blobs[1].find(".target sm_90"), std::string::npos);
  const std::string entry = jit::generateElementwiseKernel(decoded(n)).entry;
  EXPECT_NE(prepared.blobs[1].find(".entry " + entry), std::string::npos);
  EXPECT_NE(prepared.params.find(entry), std::string::npos) << "params carry the entry name";
  EXPECT_EQ(prepared.workspaceBytes, 0u);

  // The target is required: without it there is nothing to compile for.
  runtime::Prepared none;
  try {
    k->prepare(prepareInfo(n, 0), &none);
    FAIL() << "prepared without a compute capability";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("cudaComputeCapability"), std::string::npos) << e.what();
  }
}

TEST(CudaElementwiseJit, SupportsRefusesWhatItDoesNotCompile) {
  const runtime::Kernel* k = runtime::Kernels::instance().find(Device::kCUDA, "FusedElementwise", "anvil", kJit);
  ASSERT_NE(k, nullptr);
  auto accepts = [&](const ir::Graph& g) {
    const ir::Node& n = onlyNode(g);
    std::vector<ir::TensorType> types;
    for (const ir::Value* v : n.inputs()) types.push_back(v->type());
    return k->supports(n, types);
  };
  EXPECT_TRUE(accepts(*fusedGraph({f32({7})}, {"Relu 0"})));
  // f16 (only f32 is generated), rank above the strided path's, 17 instructions.
  EXPECT_FALSE(accepts(*fusedGraph({ir::Tensor(DataType::kF16, {7}).type()}, {"Relu 0"})));
  EXPECT_FALSE(accepts(*fusedGraph({f32({1, 1, 1, 1, 1, 1, 7})}, {"Relu 0"})));
  std::vector<std::string> longest;
  for (int j = 0; j < 17; ++j) longest.push_back("Add " + std::to_string(j) + " 0");
  EXPECT_FALSE(accepts(*fusedGraph({f32({7})}, longest)));
  longest.pop_back();
  EXPECT_TRUE(accepts(*fusedGraph({f32({7})}, longest)));
}

TEST(CudaElementwiseJit, SimulatorRefusesToLoadTheModuleClearly) {
  auto g = fusedGraph({f32({7})}, {"Sigmoid 0", "Mul 0 1"});
  const ir::Node& n = onlyNode(*g);
  const runtime::Kernel* k = cudaKernel(n, kJit);
  ASSERT_NE(k, nullptr);
  runtime::Prepared prepared;
  k->prepare(prepareInfo(n, 90), &prepared);
  std::vector<runtime::Blob> blobs;
  for (const std::string& b : prepared.blobs) blobs.push_back({b.data(), b.size()});
  std::unique_ptr<DeviceRuntime> sim = simRuntime();
  runtime::OpenArgs o;
  o.node = &n;
  o.params = {prepared.params.data(), prepared.params.size()};
  o.blobs = blobs.data();
  o.numBlobs = int(blobs.size());
  o.device = sim.get();
  try {
    k->open(o);
    FAIL() << "the simulator loaded a module";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("cuda sim"), std::string::npos) << e.what();
  }
}

// ---- open, run and close against a recording runtime ----------------------------------

// A DeviceRuntime that only loads modules and records launches (run() never touches device
// memory, so host buffers stand in for it): the CUBIN may be refused as a GPU of another
// architecture would, and the PTX too.
class RecordingRuntime final : public DeviceRuntime {
 public:
  bool refuseCubin = false, refusePtx = false;
  std::vector<std::string> loaded;  // "cubin" / "ptx" per accepted loadModule
  std::string function;             // the name asked of moduleFunction
  int unloads = 0;
  std::vector<jit::JitEwArgs> launches;
  LaunchShape shape;

  std::string name() const override { return "recording"; }
  bool simulated() const override { return false; }
  void* loadModule(const void* image, std::size_t bytes) override {
    const std::string b(static_cast<const char*>(image), bytes);
    const bool cubin = isElf(b);
    if (cubin ? refuseCubin : refusePtx)
      ANVIL_THROW(ErrorCode::kRuntimeError, "recording: no kernel image is available for this device");
    EXPECT_TRUE(cubin || (b.back() == '\0' && b.find(".version") != std::string::npos)) << "neither CUBIN nor PTX";
    loaded.push_back(cubin ? "cubin" : "ptx");
    return &module_;
  }
  void* moduleFunction(void* module, const char* name) override {
    EXPECT_EQ(module, &module_);
    function = name;
    return &function_;
  }
  void unloadModule(void* module) override {
    EXPECT_EQ(module, &module_);
    ++unloads;
  }
  void launchFunction(void* f, void** args, const LaunchShape& s, Stream) override {
    EXPECT_EQ(f, &function_);
    launches.push_back(*static_cast<const jit::JitEwArgs*>(args[0]));
    shape = s;
  }

  [[noreturn]] static void no() { ANVIL_THROW(ErrorCode::kUnsupported, "recording runtime: not here"); }
  void* allocate(std::size_t) override { no(); }
  void free(void*) override { no(); }
  void* allocateHost(std::size_t) override { no(); }
  void freeHost(void*) override { no(); }
  void copyAsync(void*, const void*, std::size_t, CopyKind, Stream) override { no(); }
  void copy(void*, const void*, std::size_t, CopyKind) override { no(); }
  void memsetAsync(void*, int, std::size_t, Stream) override { no(); }
  Stream createStream() override { no(); }
  void destroyStream(Stream) override { no(); }
  void synchronize(Stream) override { no(); }
  bool query(Stream) override { no(); }
  void synchronizeDevice() override { no(); }
  void* nativeStream(Stream) override { no(); }
  Stream adoptStream(void*) override { no(); }
  Event createEvent() override { no(); }
  void destroyEvent(Event) override { no(); }
  void record(Event, Stream) override { no(); }
  void wait(Stream, Event) override { no(); }
  void synchronize(Event) override { no(); }
  bool query(Event) override { no(); }
  float elapsedMs(Event, Event) override { no(); }
  void launch(const KernelLaunch&, const LaunchShape&, Stream) override { no(); }
  void launchHost(Stream, HostFunction, void*) override { no(); }
  void beginCapture(Stream) override { no(); }
  Graph endCapture(Stream) override { no(); }
  void launchGraph(Graph, Stream) override { no(); }
  void destroyGraph(Graph) override { no(); }

 private:
  int module_ = 0, function_ = 0;
};

struct OpenedJit {
  runtime::Prepared prepared;
  std::vector<runtime::Blob> blobs;
  runtime::OpenArgs args;
};

void openArgs(const runtime::Kernel& k, const ir::Node& n, DeviceRuntime* rt, OpenedJit* o) {
  k.prepare(prepareInfo(n, 90), &o->prepared);
  for (const std::string& b : o->prepared.blobs) o->blobs.push_back({b.data(), b.size()});
  o->args.node = &n;
  o->args.params = {o->prepared.params.data(), o->prepared.params.size()};
  o->args.blobs = o->blobs.data();
  o->args.numBlobs = int(o->blobs.size());
  o->args.device = rt;
}

TEST(CudaElementwiseJit, OpensTheCubinElseThePtxAndClosesIt) {
  auto g = fusedGraph({f32({7})}, {"Exp 0", "Mul 1 0"});
  const ir::Node& n = onlyNode(*g);
  const runtime::Kernel* k = cudaKernel(n, kJit);
  ASSERT_NE(k, nullptr);
  const std::string entry = jit::generateElementwiseKernel(decoded(n)).entry;
  for (bool refuseCubin : {false, true}) {
    RecordingRuntime rt;
    rt.refuseCubin = refuseCubin;
    OpenedJit o;
    openArgs(*k, n, &rt, &o);
    void* state = k->open(o.args);
    ASSERT_NE(state, nullptr);
    EXPECT_EQ(rt.loaded, std::vector<std::string>{refuseCubin ? "ptx" : "cubin"});
    EXPECT_EQ(rt.function, entry);
    k->close(state, &rt);
    EXPECT_EQ(rt.unloads, 1);
  }
  RecordingRuntime rt;
  rt.refuseCubin = rt.refusePtx = true;
  OpenedJit o;
  openArgs(*k, n, &rt, &o);
  try {
    k->open(o.args);
    FAIL() << "opened with neither image loading";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kRuntimeError);
    const std::string m = e.what();
    EXPECT_NE(m.find("CUBIN"), std::string::npos) << m;
    EXPECT_NE(m.find("PTX"), std::string::npos) << m;
  }
}

// Element i's offset in input k as the generated kernel computes it from its arguments.
int64_t kernelOffset(const jit::JitEwArgs& a, int k, int64_t i) {
  if (!a.strided) return i * a.contigStep[k];
  int64_t o = 0, rest = i;
  for (int d = a.rank - 1; d >= 0; --d) {
    const int64_t pos = rest % a.dims[d];
    rest /= a.dims[d];
    o += pos * a.strides[k][d];
  }
  return o;
}

// The same offset by numpy's rule, from the unmerged extents.
int64_t broadcastOffset(const std::vector<int64_t>& x, const std::vector<int64_t>& y, int64_t i) {
  std::vector<int64_t> idx(y.size());
  for (size_t d = y.size(); d-- > 0;) {
    idx[d] = i % y[d];
    i /= y[d];
  }
  int64_t o = 0, step = 1;
  for (size_t j = x.size(); j-- > 0;) {
    const size_t od = y.size() - x.size() + j;
    if (x[j] != 1) o += idx[od] * step;
    step *= x[j];
  }
  return o;
}

TEST(CudaElementwiseJit, RunLaunchesWithTheBroadcastSteps) {
  const std::vector<std::vector<std::vector<int64_t>>> cases = {
      {{2, 3, 5, 7}, {2, 3, 1, 1}}, {{4, 33}, {33}, {1}}, {{1000}, {1000}}, {{2, 1, 4}, {3, 1}},
      {{5, 1}, {1, 6}},             {{}, {}},              {{1, 7}, {7}},     {{2, 3, 4, 5, 6, 7}, {3, 1, 5, 1, 7}},
      {{0, 5}, {5}}};
  for (const auto& shapes : cases) {
    std::vector<ir::TensorType> types;
    std::vector<std::string> prog = {"Relu 0"};
    for (size_t j = 0; j < shapes.size(); ++j) {
      types.push_back(f32(shapes[j]));
      if (j) prog.push_back("Add " + std::to_string(shapes.size() + j - 1) + " " + std::to_string(j));
    }
    auto g = fusedGraph(types, prog);
    const ir::Node& n = onlyNode(*g);
    SCOPED_TRACE(n.label());
    const runtime::Kernel* k = cudaKernel(n, kJit);
    ASSERT_NE(k, nullptr);
    RecordingRuntime rt;
    OpenedJit o;
    openArgs(*k, n, &rt, &o);
    void* state = k->open(o.args);

    // Host buffers stand in for device memory: run() only passes the pointers on.
    std::vector<std::vector<float>> buffers;
    std::vector<runtime::TensorView> ins(shapes.size()), outs(1);
    for (size_t j = 0; j < shapes.size(); ++j) {
      ins[j].dtype = DataType::kF32;
      ins[j].setExtents(shapes[j]);
      buffers.emplace_back(size_t(std::max<int64_t>(ins[j].numel(), 1)));
      ins[j].data = buffers.back().data();
    }
    const std::vector<int64_t> yDims = n.output(0)->shape().extents();
    outs[0].dtype = DataType::kF32;
    outs[0].setExtents(yDims);
    buffers.emplace_back(size_t(std::max<int64_t>(outs[0].numel(), 1)));
    outs[0].data = buffers.back().data();
    runtime::StepArgs a;
    a.node = &n;
    a.inputs = ins.data();
    a.numInputs = int(ins.size());
    a.outputs = outs.data();
    a.numOutputs = 1;
    a.params = o.args.params;
    a.device = &rt;
    a.state = state;
    k->run(a);
    k->close(state, &rt);

    const int64_t total = outs[0].numel();
    if (total == 0) {
      EXPECT_TRUE(rt.launches.empty()) << "nothing to launch for an empty output";
      continue;
    }
    ASSERT_EQ(rt.launches.size(), 1u);
    const jit::JitEwArgs& args = rt.launches[0];
    EXPECT_EQ(args.n, total);
    EXPECT_EQ(args.out, outs[0].data);
    EXPECT_EQ(rt.shape.block.x, 256u);
    EXPECT_GE(int64_t(rt.shape.grid.x) * 256, std::min<int64_t>(total, int64_t(1) << 24));
    for (size_t j = 0; j < shapes.size(); ++j) {
      EXPECT_EQ(args.in[j], ins[j].data);
      for (int64_t i = 0; i < total; ++i)
        if (kernelOffset(args, int(j), i) != broadcastOffset(shapes[j], yDims, i)) {
          ADD_FAILURE() << "input " << j << " element " << i << ": offset " << kernelOffset(args, int(j), i)
                        << ", want " << broadcastOffset(shapes[j], yDims, i) << (args.strided ? " (strided)" : "");
          break;
        }
    }
  }
}

// ---- on a GPU ----------------------------------------------------------------------------

// Runs the JIT kernel through runOnDevice on `rt`, its module opened from the prepared blobs
// for the device's compute capability and closed after.
std::vector<ir::Tensor> runJit(const runtime::Kernel& jitKernel, const ir::Node& n, const std::vector<ir::Tensor>& in,
                               DeviceRuntime& rt, int cc) {
  runtime::Prepared captured;
  void* state = nullptr;
  runtime::Kernel k = jitKernel;
  k.prepare = [&](const runtime::PrepareInfo& info, runtime::Prepared* out) {
    runtime::PrepareInfo withTarget = info;
    withTarget.cudaComputeCapability = cc;
    jitKernel.prepare(withTarget, out);
    captured = *out;
  };
  k.run = [&](const runtime::StepArgs& a) {
    std::vector<runtime::Blob> host;
    for (const std::string& b : captured.blobs) host.push_back({b.data(), b.size()});
    runtime::OpenArgs o;
    o.node = &n;
    o.params = a.params;
    o.blobs = host.data();
    o.numBlobs = int(host.size());
    o.device = &rt;
    state = jitKernel.open(o);
    runtime::StepArgs withState = a;
    withState.state = state;
    jitKernel.run(withState);
  };
  std::vector<ir::Tensor> out = runOnDevice(k, n, in, rt);
  jitKernel.close(state, &rt);
  return out;
}

TEST(CudaElementwiseJit, RunsOnAGpuAsTheReference) {
  if (deviceCount() == 0) GTEST_SKIP() << "no GPU";
  const ComputeCapability c = computeCapability(0);
  const int cc = c.major * 10 + c.minor;
  std::unique_ptr<DeviceRuntime> rt = cudaRuntime(0);
  struct Case {
    std::vector<std::vector<int64_t>> shapes;
    std::vector<std::string> prog;
  };
  const Case cases[] = {
      {{{2, 3, 5, 7}, {2, 3, 1, 1}}, kSilu},                                   // strided: an SE-like gate
      {{{4, 33}, {33}, {1}}, {"Mul 0 1", "Add 3 2", "Clip 4 2 _", "Tanh 5"}},  // strided and a scalar
      {{{1000}, {1000}}, {"Div 0 1", "Gelu 2 approximate=none", "HardSwish 3"}},  // contiguous
      {{{3, 17}, {1}}, {"Pow 0 1", "Softplus 2", "Mish 3", "Max 4 0", "Min 5 1"}},
      {{{0, 5}, {5}}, {"Add 0 1"}},                                                 // empty
  };
  for (const Case& t : cases) {
    SCOPED_TRACE(t.prog.front());
    std::vector<ir::TensorType> types;
    std::vector<ir::Tensor> in;
    for (size_t i = 0; i < t.shapes.size(); ++i) {
      types.push_back(f32(t.shapes[i]));
      in.push_back(randomTensor(DataType::kF32, t.shapes[i], uint32_t(11 + i), 0.25, 2));
    }
    auto g = fusedGraph(types, t.prog);
    const ir::Node& n = onlyNode(*g);
    const runtime::Kernel* k = cudaKernel(n, kJit);
    ASSERT_NE(k, nullptr);
    const std::vector<ir::Tensor> got = runJit(*k, n, in, *rt, cc);
    const std::vector<ir::Tensor> want = runReference(n, in);
    expectClose(got.at(0), want.at(0), 1e-5, 1e-5, t.prog.front());
  }
}

}  // namespace
}  // namespace anvil::cuda::testing
