// The harness the native-kernel tests share (native_linear_test, native_winograd_test):
// a case is one node with its inputs' extents and which are initializers; build() makes
// the graph and seeded data, reference() runs the reference kernel, prepare() calls a
// kernel's prepare() and replaces the inputs it packed by NaNs (run() must read only its
// blobs), and Step runs the kernel through the contract with the output between sentinel
// guards and a guarded workspace, on an executor of the given thread count.
#pragma once

#include <gtest/gtest.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "op_test_util.h"
#include "runtime/clock.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::testing::nk {

using Dims = std::vector<int64_t>;
using ir::Tensor;

struct Case {
  std::string name;  // [A-Za-z0-9_]
  std::string op, domain;
  std::vector<std::optional<Dims>> inputs;  // nullopt: omitted
  std::vector<bool> constant;               // per input: an initializer
  ir::Attributes attrs;
};

// ---------------------------------------------------------------------------------------
// One node, its reference output, and the kernel run through the contract

struct Built {
  std::unique_ptr<ir::Graph> graph;
  const ir::Node* node = nullptr;
  std::vector<Tensor> tensors;  // undefined where omitted
  std::vector<ir::TensorType> types() const {
    std::vector<ir::TensorType> t;
    for (const Tensor& x : tensors) t.push_back(x.defined() ? x.type() : ir::TensorType{});
    return t;
  }
};

// Why this CPU cannot run a kernel, as the op tests report it: "skipped: no AVX-512" where
// an AVX-512 feature is missing, "skipped: no AVX2" for AVX2, FMA or F16C, else "skipped:
// this CPU lacks <feature>"; empty where the host runs it.
inline std::string skipReason(const runtime::Kernel& k) {
  if (runtime::hostHasAll(k.requirements)) return "";
  const std::string missing = runtime::firstMissing(k.requirements);
  if (missing.rfind("avx512", 0) == 0) return "skipped: no AVX-512";
  if (missing == "avx2" || missing == "fma" || missing == "f16c") return "skipped: no AVX2";
  return "skipped: this CPU lacks " + missing;
}

inline Built build(const Case& c, uint32_t seed) {
  Built b;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<In> ins;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i]) {
      b.tensors.emplace_back();
      ins.push_back({});
      continue;
    }
    Tensor t(DataType::kF32, *c.inputs[i]);
    for (int64_t j = 0; j < t.numel(); ++j) t.data<float>()[j] = dist(rng);
    const bool constant = i < c.constant.size() && c.constant[i];
    ins.push_back({"in" + std::to_string(i), t.type(), constant ? std::optional<Tensor>(t) : std::nullopt});
    b.tensors.push_back(std::move(t));
  }
  if (c.domain.empty()) {
    b.graph = anvil::testing::oneNode(c.op, ins, c.attrs);
    b.node = b.graph->nodes().front().get();
  } else {  // oneNode builds ai.onnx nodes
    auto g = std::make_unique<ir::Graph>();
    std::vector<ir::Value*> vs;
    for (size_t i = 0; i < ins.size(); ++i) {
      if (ins[i].name.empty()) {
        vs.push_back(nullptr);
        continue;
      }
      ir::Value* v = ins[i].init ? g->addInitializer(ins[i].name, *ins[i].init) : g->addValue(ins[i].name, ins[i].type);
      if (!ins[i].init) g->addInput(v);
      vs.push_back(v);
    }
    ir::Node* n = g->addNode(c.op, c.domain, "n0", vs, {"y0"});
    n->attrs() = c.attrs;
    g->addOutput(n->output(0));
    ir::inferShapes(*g);
    b.graph = std::move(g);
    b.node = n;
  }
  return b;
}

inline Tensor reference(const Built& b) {
  std::vector<const Tensor*> in;
  for (const Tensor& t : b.tensors) in.push_back(t.defined() ? &t : nullptr);
  return cpu::Interpreter::runNode(*b.node, in)[0];
}

// 64-byte aligned bytes with a sentinel tail (a run that writes past its workspace is caught).
struct Aligned {
  static constexpr size_t kTail = 256;
  static constexpr unsigned char kMark = 0xa5;
  void* p = nullptr;
  size_t n = 0;
  explicit Aligned(size_t bytes) : n(bytes) {
    p = std::aligned_alloc(64, ((bytes + kTail + 63) / 64) * 64);
    std::memset(static_cast<char*>(p) + bytes, kMark, kTail);
  }
  ~Aligned() { std::free(p); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  bool tailIntact() const {
    for (size_t i = 0; i < kTail; ++i)
      if (static_cast<const unsigned char*>(p)[n + i] != kMark) return false;
    return true;
  }
};

struct PreparedKernel {
  runtime::Prepared prepared;
  std::unique_ptr<Aligned> params;
  std::vector<std::unique_ptr<Aligned>> blobs;
  std::vector<runtime::Blob> views;
};

// minTypes: the profile's min shapes where they differ from the case's (a dynamic profile).
// tasks: PrepareInfo::tasks (a split the builder timed; 0: the kernel's own rule).
inline PreparedKernel prepare(const runtime::Kernel& k, const Built& b, int threads,
                              const std::vector<ir::TensorType>& minTypes = {}, int tasks = 0) {
  PreparedKernel pk;
  runtime::PrepareInfo info;
  info.node = b.node;
  info.minTypes = info.optTypes = info.maxTypes = b.types();
  if (!minTypes.empty()) info.minTypes = minTypes;
  info.maxOutputTypes = {b.node->output(0)->type()};
  for (size_t i = 0; i < b.tensors.size(); ++i) {
    const ir::Value* v = b.node->input(i);
    info.constants.push_back(v ? v->initializer() : nullptr);
  }
  info.threads = threads;
  info.tasks = tasks;
  if (k.prepare) k.prepare(info, &pk.prepared);
  // The engine stores params and blobs 64-byte aligned: so do we.
  pk.params = std::make_unique<Aligned>(std::max<size_t>(1, pk.prepared.params.size()));
  std::memcpy(pk.params->p, pk.prepared.params.data(), pk.prepared.params.size());
  for (const std::string& s : pk.prepared.blobs) {
    pk.blobs.push_back(std::make_unique<Aligned>(std::max<size_t>(1, s.size())));
    std::memcpy(pk.blobs.back()->p, s.data(), s.size());
    pk.views.push_back({pk.blobs.back()->p, s.size()});
  }
  return pk;
}

inline runtime::TensorView viewOf(const Tensor& t) {
  runtime::TensorView v;
  if (!t.defined()) return v;
  v.data = const_cast<void*>(t.raw());
  v.dtype = t.dtype();
  v.setExtents(t.dims());
  return v;
}

constexpr uint32_t kSentinel = 0x7fa5a5a5u;  // a NaN no kernel produces
constexpr int64_t kGuard = 67;

struct RunResult {
  std::vector<float> out;      // an f32 output
  std::vector<uint8_t> bytes;  // the output's bytes (any type)
  bool guardsIntact = true, workspaceIntact = true;
};

// A step ready to run: input views (packed inputs handed over as NaNs: run() must read its
// blob instead), the output between sentinel guards, a workspace with a sentinel tail.
class Step {
 public:
  // alignedOut: the output starts on a 64-byte boundary (as in an engine's arena; the timing
  // runs use it), else at an odd offset (the correctness runs: no kernel may assume it).
  // outType: the output's type (u8 for the INT8 kernels' lowered outputs), guarded bytewise.
  Step(const runtime::Kernel& k, const PreparedKernel& pk, const Built& b, const Dims& outDims,
       bool alignedOut = false, DataType outType = DataType::kF32)
      : k_(k), poisoned_(b.tensors.size()), ws_(size_t(pk.prepared.workspaceBytes)) {
    for (size_t i = 0; i < b.tensors.size(); ++i) {
      const auto& packedIn = pk.prepared.packedInputs;
      if (std::find(packedIn.begin(), packedIn.end(), int(i)) != packedIn.end()) {
        poisoned_[i] = Tensor(DataType::kF32, b.tensors[i].dims());
        std::fill(poisoned_[i].data<float>(), poisoned_[i].data<float>() + poisoned_[i].numel(),
                  std::numeric_limits<float>::quiet_NaN());
        in_.push_back(viewOf(poisoned_[i]));
      } else {
        in_.push_back(viewOf(b.tensors[i]));
      }
    }
    n_ = ir::numelOf(outDims);
    outBytes_ = int64_t(ir::storageBytes(outType, n_));
    words_ = (outBytes_ + 3) / 4;
    buf_.assign(size_t(words_ + 2 * kGuard + 16), kSentinel);
    off_ = kGuard;
    if (alignedOut)
      while (reinterpret_cast<uintptr_t>(buf_.data() + off_) % 64 != 0) ++off_;
    out_.data = buf_.data() + off_;
    out_.dtype = outType;
    out_.setExtents(outDims);
    a_.node = b.node;
    a_.inputs = in_.data();
    a_.numInputs = int(in_.size());
    a_.outputs = &out_;
    a_.numOutputs = 1;
    a_.params = {pk.params->p, pk.prepared.params.size()};
    a_.blobs = pk.views.data();
    a_.numBlobs = int(pk.views.size());
    a_.workspace = ws_.p;
    a_.workspaceBytes = pk.prepared.workspaceBytes;
  }

  void run(runtime::Executor& ex) {
    a_.executor = &ex;
    k_.run(a_);
  }

  RunResult result() const {
    RunResult r;
    const auto* base = reinterpret_cast<const unsigned char*>(buf_.data() + off_);
    r.bytes.assign(base, base + outBytes_);
    if (out_.dtype == DataType::kF32) {
      r.out.resize(size_t(n_));
      std::memcpy(r.out.data(), buf_.data() + off_, size_t(n_) * sizeof(float));
    }
    for (size_t i = 0; i < buf_.size(); ++i)
      if ((int64_t(i) < off_ || int64_t(i) >= off_ + words_) && buf_[i] != kSentinel) r.guardsIntact = false;
    const auto* mark = reinterpret_cast<const unsigned char*>(&kSentinel);  // the last word's bytes past the output
    for (int64_t i = outBytes_; i < words_ * 4; ++i)
      if (base[i] != mark[i % 4]) r.guardsIntact = false;
    r.workspaceIntact = ws_.tailIntact();
    return r;
  }

 private:
  const runtime::Kernel& k_;
  std::vector<Tensor> poisoned_;
  std::vector<runtime::TensorView> in_;
  int64_t n_ = 0, off_ = kGuard, outBytes_ = 0, words_ = 0;
  std::vector<uint32_t> buf_;
  runtime::TensorView out_;
  Aligned ws_;
  runtime::StepArgs a_;
};

inline RunResult runKernel(const runtime::Kernel& k, const PreparedKernel& pk, const Built& b, const Dims& outDims,
                    runtime::Executor& ex) {
  Step step(k, pk, b, outDims);
  step.run(ex);
  return step.result();
}

// Tolerance: max |got - want| <= 3e-5 * max |want|. Both accumulate in f32 but in different
// orders (K blocks, FMA vs separate multiply-add, alpha folded into A); for sums of up to
// ~600 terms of magnitude <= 1 the rounding differences stay near sqrt(K) * 2^-24 relative
// to the output's range (about 1.5e-6 at K = 600), and the epilogue's vector exp is within
// 2 ulp; 3e-5 leaves a margin without letting an indexing mistake (an error of order 1) pass.
// Winograd's transformed sums pass 2e-4 (see native_winograd_test.cpp).
inline std::string compare(const std::vector<float>& got, const Tensor& want, double tolerance = 3e-5) {
  double maxRef = 0, maxErr = 0;
  int64_t worst = -1;
  for (int64_t i = 0; i < want.numel(); ++i) maxRef = std::max(maxRef, std::fabs(double(want.data<float>()[i])));
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double e = std::fabs(double(got[size_t(i)]) - want.data<float>()[i]);
    if (!(e <= maxErr)) {
      maxErr = std::isnan(e) ? INFINITY : e;
      worst = i;
    }
  }
  if (maxErr <= tolerance * std::max(maxRef, 1e-6)) return "";
  char msg[200];
  std::snprintf(msg, sizeof msg, "max error %.3g at flat index %lld (got %.9g, want %.9g), max |ref| %.3g", maxErr,
                (long long)worst, got[size_t(worst)], want.data<float>()[worst], maxRef);
  return msg;
}

// Kernel k on b prepared for and run with 1, 2 and 3 threads: no write outside the output or
// the workspace, the result within compare()'s tolerance of want, and the same bits at
// every thread count. name labels the failures.
inline void expectEveryThreadCount(const runtime::Kernel& k, const Built& b, const Tensor& want,
                                   const std::string& name) {
  std::vector<std::vector<float>> outs;
  for (int threads : {1, 2, 3}) {
    const PreparedKernel pk = prepare(k, b, threads);
    auto ex = runtime::makeCpuExecutor(threads);
    const RunResult r = runKernel(k, pk, b, want.dims(), *ex);
    EXPECT_TRUE(r.guardsIntact) << name << " wrote outside the output (" << threads << " threads)";
    EXPECT_TRUE(r.workspaceIntact) << name << " wrote past the workspace (" << threads << " threads)";
    EXPECT_EQ(compare(r.out, want), "") << name << ", " << threads << " threads";
    outs.push_back(r.out);
  }
  for (size_t i = 1; i < outs.size(); ++i)
    EXPECT_EQ(std::memcmp(outs[0].data(), outs[i].data(), outs[0].size() * sizeof(float)), 0)
        << name << ": the thread counts differ bitwise";
}

// GFLOP/s of body() doing `flops`: the best of `reps` runs, each measured on the thread's CPU
// time (preemption on the shared machine does not count against it).
template <typename F>
inline double bestGflops(F body, double flops, int reps) {
  double best = 0;
  for (int i = 0; i < reps; ++i) {
    const double t0 = runtime::threadCpuMs();
    body();
    const double s = (runtime::threadCpuMs() - t0) * 1e-3;
    best = std::max(best, flops / s * 1e-9);
  }
  return best;
}

// The single-core FMA peak loops: independent accumulator chains (more than latency x
// ports, so the loop is throughput-bound), 2 x lanes flops per FMA. The unrolled loop keeps
// the chains in registers and the sum at the end keeps them alive; an empty asm with a
// "+x" / "+v" operand on each chain (an earlier form) made GCC 12 keep the array on the
// stack, a load and a store per FMA: 50 / 57 GFLOP/s reported on a core whose peak is
// 117 / 217 (bench/runtime_bench --fma-peak), and the GEMM tests' percentages 3x too high.
__attribute__((target("avx2,fma"), noinline)) inline float fmaLoopAvx2(int64_t iters) {
  __m256 c[12];
#pragma GCC unroll 12
  for (int i = 0; i < 12; ++i) c[i] = _mm256_set1_ps(float(i));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(1e-4f);
  for (int64_t it = 0; it < iters; ++it)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) c[i] = _mm256_fmadd_ps(a, c[i], b);
  __m256 s = c[0];
#pragma GCC unroll 12
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, c[i]);
  return _mm256_cvtss_f32(s);
}

__attribute__((target("avx512f"), noinline)) inline float fmaLoopAvx512(int64_t iters) {
  __m512 c[24];
#pragma GCC unroll 24
  for (int i = 0; i < 24; ++i) c[i] = _mm512_set1_ps(float(i));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(1e-4f);
  for (int64_t it = 0; it < iters; ++it)
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) c[i] = _mm512_fmadd_ps(a, c[i], b);
  __m512 s = c[0];
#pragma GCC unroll 24
  for (int i = 1; i < 24; ++i) s = _mm512_add_ps(s, c[i]);
  // Summed from memory: GCC 12's _mm512_reduce_add_ps (and the 256-bit extracts) go through
  // an undefined vector and warn. The value only keeps the loop alive.
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, s);
  float sum = 0.0f;
  for (float v : lanes) sum += v;
  return sum;
}

// The single-core FMA peak in GFLOP/s, best of 5: fmaLoopAvx2 for `iters` iterations (12
// chains of 8 lanes) or, avx512, fmaLoopAvx512 for iters / 2 (24 chains of 16 lanes).
inline double fmaPeakGflops(bool avx512, int64_t iters) {
  if (avx512)
    return bestGflops([&] { volatile float r = fmaLoopAvx512(iters / 2); (void)r; }, 2.0 * 16 * 24 * double(iters / 2), 5);
  return bestGflops([&] { volatile float r = fmaLoopAvx2(iters); (void)r; }, 2.0 * 8 * 12 * double(iters), 5);
}


// One parametrised test instance: a kernel (by name) on a case (by index).
struct Param {
  std::string kernel;
  size_t caseIndex;
  std::string caseName;
};
inline void PrintTo(const Param& p, std::ostream* os) { *os << p.kernel << " on " << p.caseName; }

// Every (kernel, case) pair where the kernel implements the case's op and supports it.
inline std::vector<Param> supportedPairs(const std::vector<const runtime::Kernel*>& kernels,
                                         const std::vector<Case>& cases) {
  std::vector<Param> out;
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const Built b = build(c, 1);
    for (const runtime::Kernel* k : kernels)
      if (k->op == c.op && k->domain == c.domain && (!k->supports || k->supports(*b.node, b.types())))
        out.push_back({k->name, i, c.name});
  }
  return out;
}

// The kernels of the given families' register functions in a registry of their own, built
// once per list (unit_tests does not link the runtime, whose Kernels::instance() gathers
// every backend): registryOf<&runtime::registerNativeLinearKernels>().
template <void (*... Register)(runtime::Kernels&)>
runtime::Kernels& registryOf() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    (Register(*r), ...);
    return r;
  }();
  return *k;
}

// GEMM shapes (M, N, K) for the benchmarks: ANVIL_BENCH_MNK="m,n,k;m,n,k;..." where set,
// else `fallback`.
struct BenchShape {
  int64_t m, n, k;
};
inline std::vector<BenchShape> benchShapes(std::vector<BenchShape> fallback) {
  const char* e = std::getenv("ANVIL_BENCH_MNK");
  if (!e) return fallback;
  std::vector<BenchShape> shapes;
  for (const char* p = e; *p;) {
    BenchShape s{};
    int used = 0;
    if (std::sscanf(p, "%ld,%ld,%ld%n", &s.m, &s.n, &s.k, &used) != 3) break;
    shapes.push_back(s);
    p += used;
    if (*p == ';') ++p;
  }
  return shapes;
}

}  // namespace anvil::testing::nk
