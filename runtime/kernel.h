// Backend-neutral kernels (tactics) and the views they run on. A kernel's life:
//   supports(node, types)   at build, for the profile's min, opt and max input types;
//   prepare(info, &prepared) once at build: decodes attributes into a params blob, packs
//                            constant weights into blobs (stored 64-byte aligned in the
//                            engine's mapped weights section), sizes the workspace;
//   run(args)               at every run: raw pointers, fixed extents, the context's
//                            executor; no allocation, no attribute decoding.
// The registry is keyed by (device, op, domain, precision). Backends register here
// (cpu: cpu/kernels_v2.cpp via registerCpuKernels); the engine loader only looks kernels
// up by name and version and checks their requirements against the host.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "anvil/anvil.hpp"
#include "ir/graph.h"
#include "runtime/executor.h"

namespace anvil::cuda {
class DeviceRuntime;  // cuda/runtime.h
}

namespace anvil::runtime {

constexpr int kMaxRank = 12;

// A tensor as a kernel sees it: a pointer, an element type and fixed extents.
struct TensorView {
  void* data = nullptr;
  DataType dtype = DataType::kUndefined;
  int32_t rank = 0;  // -1: extents known only after the step runs (a dynamic output)
  int64_t dims[kMaxRank] = {};

  bool present() const { return dtype != DataType::kUndefined; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < rank; ++i) n *= dims[i];
    return rank < 0 ? -1 : n;
  }
  size_t bytes() const { return rank < 0 ? 0 : ir::storageBytes(dtype, numel()); }
  int64_t dim(int i) const { return dims[i < 0 ? i + rank : i]; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data);
  }
  std::vector<int64_t> extents() const { return std::vector<int64_t>(dims, dims + (rank < 0 ? 0 : rank)); }
  void setExtents(const std::vector<int64_t>& e);  // throws when the rank exceeds kMaxRank
};

// Read-only bytes in the engine (params, prepared weights), 64-byte aligned.
struct Blob {
  const void* data = nullptr;
  size_t bytes = 0;
  template <typename T>
  const T* as() const {
    return static_cast<const T*>(data);
  }
};

// Outputs whose extents are only known once their step ran: the kernel asks for memory
// here (the runtime serves it from the context's dynamic pool, or from the caller's
// OutputAllocator for graph outputs) and then writes it.
class DynamicOutputs {
 public:
  virtual ~DynamicOutputs() = default;
  // Sets outputs[output] to dtype/extents with fresh memory and returns the pointer.
  virtual void* allocate(int output, DataType dtype, const int64_t* dims, int rank) = 0;
};

struct StepArgs {
  const ir::Node* node = nullptr;  // attributes, names for errors; kernels with prepared params need not read it
  const TensorView* inputs = nullptr;  // absent optional inputs: !present()
  int numInputs = 0;
  TensorView* outputs = nullptr;  // static outputs: data and extents set; dynamic: rank -1
  int numOutputs = 0;
  Blob params;
  const Blob* blobs = nullptr;
  int numBlobs = 0;
  void* workspace = nullptr;  // 64-byte aligned, workspaceBytes long
  size_t workspaceBytes = 0;
  Executor* executor = nullptr;  // never null while running
  DynamicOutputs* dynamic = nullptr;
  // While profiling (null otherwise): [0] output components a kernel recomputed in a higher
  // precision, [1] components it computed (kernels with components in a higher precision
  // only, fp32_channels or adaptive: a plain INT8 layer reports none); add with relaxed order.
  std::atomic<uint64_t>* counters = nullptr;
  // CUDA steps (Kernel::device == kCUDA): the context's device runtime and the id of the
  // cuda::Stream to enqueue on. Their tensor data, blobs and workspace are device memory
  // (params stay host bytes); run() only enqueues: it never synchronizes, never reads device
  // memory on the host and never allocates. Null / 0 for CPU steps.
  cuda::DeviceRuntime* device = nullptr;
  uint64_t stream = 0;
  // What the kernel's open() made for this context (null without an open()).
  void* state = nullptr;

  const TensorView& in(int i) const { return inputs[i]; }
  TensorView& out(int i) const { return outputs[i]; }
  bool hasInput(int i) const { return i < numInputs && inputs[i].present(); }
  template <typename P>
  const P& paramsAs() const {
    return *static_cast<const P*>(params.data);
  }
  [[noreturn]] void fail(const std::string& message) const;  // kRuntimeError naming the node
};

// What prepare() sees: the node and its input types over the profile, and the data of
// its constant inputs.
struct PrepareInfo {
  const ir::Node* node = nullptr;
  std::vector<ir::TensorType> minTypes, optTypes, maxTypes;  // per input (absent: kUndefined)
  std::vector<ir::TensorType> maxOutputTypes;                // per output at the max shapes
  std::vector<const ir::Tensor*> constants;                  // per input: initializer data or null
  int threads = 1;                                           // intra-op threads it will run with
  // > 0: split every run's work into this many tasks (at most `threads`), the builder having
  // timed it as the fastest of the kernel's taskSplits; 0: the kernel's own rule.
  int tasks = 0;
  int cudaComputeCapability = 0;  // CUDA builds: the target GPU (major * 10 + minor, 90 for 9.0); else 0
};

struct Prepared {
  std::string params;              // a POD blob the kernel reinterprets (64-byte aligned)
  std::vector<std::string> blobs;  // prepared weights
  uint64_t workspaceBytes = 0;     // enough for every shape of the profile
  // Constant inputs the kernel no longer reads at run time (it uses its blobs): the
  // engine stores them only if another step needs them.
  std::vector<int> packedInputs;
  // Serializes a trivially copyable struct as the params blob.
  template <typename P>
  void setParams(const P& p) {
    params.assign(reinterpret_cast<const char*>(&p), sizeof(P));
  }
};

// What open() sees when a context is made: the step's node, params and prepared blobs (host
// bytes, as in the engine), and for a CUDA step the context's device runtime.
struct OpenArgs {
  const ir::Node* node = nullptr;
  Blob params;
  const Blob* blobs = nullptr;
  int numBlobs = 0;
  cuda::DeviceRuntime* device = nullptr;
};

using SupportsFn = std::function<bool(const ir::Node&, const std::vector<ir::TensorType>&)>;
// Per-context state of a step (a module loaded from prepared device code, a library handle):
// made once per context, handed to every run as StepArgs::state, closed with the context.
using OpenFn = std::function<void*(const OpenArgs&)>;
using CloseFn = std::function<void(void* state, cuda::DeviceRuntime* device)>;
using PrepareFn = std::function<void(const PrepareInfo&, Prepared*)>;
using RunFn = std::function<void(const StepArgs&)>;
// The task counts worth timing for a step (at info.optTypes, info.threads); empty: none.
using TaskSplitsFn = std::function<std::vector<int>(const PrepareInfo&)>;

struct Kernel {
  std::string name;   // spells the variant: "f32_gemm_packed_6x16__avx2"; "ref" = reference
  int version = 1;    // bump on any change of numerics or prepared layout (engine + timing cache)
  Device device = Device::kCPU;
  std::string op, domain;  // domain "" = ai.onnx
  DataType precision = DataType::kF32;  // compute precision served; kUndefined: any (ref)
  // Host features ("avx2", "fma", "avx512f", ...) of a CPU kernel; for a CUDA kernel the
  // lowest compute capability it runs on, "sm_80" (checked against the engine's target,
  // not against the building host).
  std::vector<std::string> requirements;
  bool dynamicShapes = false;  // serves steps whose extents are only known at run time
  // > 0: serves the node only with its activations in NCHW<nchwcBlock>c (every non-constant
  // rank-4 input and every rank-4 output; see cpu/tactics/nchwc.h), as the layout selection
  // of the builder assigns them. 0: row-major values only. The builder offers a node only
  // the kernels whose layout matches its values'.
  int nchwcBlock = 0;
  // With nchwcBlock > 0: input 0 stays row-major while the outputs are blocked (a stem that
  // reads the model's input image and writes the first blocked activation, so no Reorder
  // of the image or of the stem's output is needed). The builder gives a node this form
  // only when its input 0 is a graph input.
  bool nchwcPlainInput = false;
  // A CUDA kernel that runs only on a real GPU (code compiled at build time, vendor
  // libraries): offered only where the builder times on one, never in a cross-build or on
  // the simulator.
  bool gpuOnly = false;
  // One level of Strassen's algorithm (cpu/tactics/gemm_strassen.h): fewer multiply-adds
  // and a normwise error bound. Offered only where BuilderConfig::strassen (--noStrassen).
  bool strassen = false;
  SupportsFn supports;         // null: every node of the op
  PrepareFn prepare;           // null: no prepared state
  OpenFn open;                 // null: no per-context state
  CloseFn close;
  RunFn run;
  // Null, or the splits of a step's work into tasks that the builder times as separate
  // candidates (each prepared with PrepareInfo::tasks), where no fixed threshold is known
  // to choose well (cpu/tactics/task_split.h).
  TaskSplitsFn taskSplits;
};

class Kernels {
 public:
  // Every backend's kernels, registered on first use.
  static Kernels& instance();
  void add(Kernel k);
  // Kernels of a device for a node, "ref" first: CPU kernels whose requirements the host
  // meets; every CUDA kernel (see cudaTargetMeets).
  std::vector<const Kernel*> forNode(Device device, const ir::Node& node) const;
  const Kernel* find(Device device, const std::string& op, const std::string& domain, const std::string& name) const;
  std::vector<const Kernel*> all() const;

 private:
  std::vector<std::unique_ptr<Kernel>> kernels_;
  mutable std::mutex mu_;
};

// Whether this host meets a requirement ("avx2", "sm_90", ...), and all of a set.
bool hostHas(const std::string& requirement);
bool hostHasAll(const std::vector<std::string>& requirements);
// The first requirement the host lacks, or "".
std::string firstMissing(const std::vector<std::string>& requirements);
// This CPU's features as engines record them: "x86-64+avx2+fma+...".
std::string hostCpuIsa();
// Whether a GPU of compute capability `cc` (major * 10 + minor: 90 for 9.0) meets a CUDA
// kernel's requirements ("sm_80": cc >= 80). Any other requirement is not met.
bool cudaTargetMeets(const std::vector<std::string>& requirements, int cc);

// Backends register their kernels through these (called once by Kernels::instance()).
void registerCpuKernels(Kernels& k);   // cpu backend (cpu/backend.cpp)
void registerCudaKernels(Kernels& k);  // cuda backend (cuda/tactics/registry.cpp), where built

}  // namespace anvil::runtime
