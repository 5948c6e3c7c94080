// The real DeviceRuntime over cudart. Handles map to CUDA objects through small tables under
// one mutex (a lookup costs well under a microsecond, next to the microseconds of a launch),
// which is what lets a destroyed stream or an unrecorded event be a clear error instead of
// undefined behaviour. Kernels launch through their nvcc-built face: a cudaLaunchKernel of
// the registered __global__ function (cuda/kernels/faces.cuh), so no <<<>>> is needed here.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "anvil/error.h"
#include "cuda/device.h"
#include "cuda/kernels/registry.h"
#include "cuda/runtime.h"

namespace anvil::cuda {

const char* copyKindName(CopyKind kind) {
  switch (kind) {
    case CopyKind::kHostToDevice:
      return "host-to-device";
    case CopyKind::kDeviceToHost:
      return "device-to-host";
    case CopyKind::kDeviceToDevice:
      return "device-to-device";
  }
  return "unknown-copy-kind";
}

void checkLaunchFields(const KernelLaunch& k, const std::string& runtime) {
  if (k.name == nullptr || k.name[0] == '\0') {
    ANVIL_THROW(ErrorCode::kInvalidArgument, runtime, ": a kernel launch without a name");
  }
  if (k.args == nullptr && k.argBytes > 0) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, runtime, ": launch of ", k.name, ": ", k.argBytes,
                " bytes of arguments at a null pointer");
  }
  if (k.ranges == nullptr && k.rangeCount > 0) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, runtime, ": launch of ", k.name, ": ", k.rangeCount,
                " device ranges at a null pointer");
  }
}

namespace kernels {

const KernelEntry* findDeviceKernel(std::string_view name) {
  static const std::vector<KernelEntry> table = [] {
    std::vector<KernelEntry> t;
    addActivationDeviceKernels(t);
    addSoftmaxDeviceKernels(t);
    addGemmDeviceKernels(t);
    addAttentionDeviceKernels(t);
    addDepthwiseDeviceKernels(t);
    addElementwiseDeviceKernels(t);
    addNormPoolDeviceKernels(t);
    addMovementDeviceKernels(t);
    addGemmTensorCoreDeviceKernels(t);
    addGemmI8TensorCoreDeviceKernels(t);
    return t;
  }();
  for (const KernelEntry& e : table) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

}  // namespace kernels

namespace {

using ::anvil::detail::concat;

std::string describe(cudaError_t e) {
  return concat(cudaGetErrorName(e), " (", static_cast<int>(e), "): ", cudaGetErrorString(e));
}

void checkCuda(cudaError_t e, const std::string& what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();  // a non-sticky error must not surface again in the next call
    ANVIL_THROW(ErrorCode::kRuntimeError, what, " failed: ", describe(e));
  }
}

cudaMemcpyKind toCuda(CopyKind kind) {
  switch (kind) {
    case CopyKind::kHostToDevice:
      return cudaMemcpyHostToDevice;
    case CopyKind::kDeviceToHost:
      return cudaMemcpyDeviceToHost;
    case CopyKind::kDeviceToDevice:
      return cudaMemcpyDeviceToDevice;
  }
  ANVIL_THROW(ErrorCode::kInvalidArgument, "unknown copy kind ", static_cast<int>(kind));
}

std::string str(Dim3 d) { return concat("(", d.x, ",", d.y, ",", d.z, ")"); }

class CudaRuntime final : public DeviceRuntime {
 public:
  explicit CudaRuntime(int device) : device_(device) {
    const ComputeCapability cc = computeCapability(device);
    name_ = concat("cuda:", device, " ", deviceName(device), " (sm_", cc.major, cc.minor, ")");
    current();
  }

  ~CudaRuntime() override {
    // Best effort: errors cannot leave a destructor, and the device may already be lost.
    cudaSetDevice(device_);
    for (auto& [id, s] : streams_) {
      cudaStreamSynchronize(s);
      if (adopted_.count(id) == 0) cudaStreamDestroy(s);
    }
    for (auto& [id, e] : events_) cudaEventDestroy(e.event);
    for (auto& [id, g] : graphs_) cudaGraphExecDestroy(g);
    (void)cudaGetLastError();
  }

  std::string name() const override { return name_; }
  bool simulated() const override { return false; }

  void* allocate(std::size_t bytes) override {
    if (bytes == 0) return nullptr;
    current();
    void* p = nullptr;
    checkCuda(cudaMalloc(&p, bytes), concat(name_, ": cudaMalloc(", bytes, " bytes)"));
    if (reinterpret_cast<std::uintptr_t>(p) % kAlignment != 0) {
      cudaFree(p);
      ANVIL_THROW(ErrorCode::kInternal, name_, ": cudaMalloc returned ", p,
                  ", not aligned to ", kAlignment, " bytes");
    }
    return p;
  }

  void free(void* ptr) override {
    if (ptr == nullptr) return;
    current();
    checkCuda(cudaFree(ptr), concat(name_, ": cudaFree(", ptr, ")"));
  }

  bool isDeviceMemory(const void* ptr, std::size_t bytes) override {
    (void)bytes;  // cudart tells the kind of memory, not the extent of its allocation
    if (ptr == nullptr) return false;
    current();
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
      (void)cudaGetLastError();
      return false;
    }
    return attr.type == cudaMemoryTypeDevice || attr.type == cudaMemoryTypeManaged;
  }

  void* allocateHost(std::size_t bytes) override {
    if (bytes == 0) return nullptr;
    current();
    void* p = nullptr;
    checkCuda(cudaMallocHost(&p, bytes), concat(name_, ": cudaMallocHost(", bytes, " bytes)"));
    return p;
  }

  void freeHost(void* ptr) override {
    if (ptr == nullptr) return;
    current();
    checkCuda(cudaFreeHost(ptr), concat(name_, ": cudaFreeHost(", ptr, ")"));
  }

  void copyAsync(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                 Stream stream) override {
    if (bytes == 0) return;
    const cudaStream_t s = native(stream, "copyAsync");
    current();
    checkCuda(cudaMemcpyAsync(dst, src, bytes, toCuda(kind), s),
              concat(name_, ": ", copyKindName(kind), " copy of ", bytes, " bytes from ", src,
                     " to ", dst, " on stream ", stream.id));
  }

  void copy(void* dst, const void* src, std::size_t bytes, CopyKind kind) override {
    if (bytes == 0) return;
    current();
    checkCuda(cudaMemcpy(dst, src, bytes, toCuda(kind)),
              concat(name_, ": ", copyKindName(kind), " copy of ", bytes, " bytes from ", src,
                     " to ", dst));
  }

  void memsetAsync(void* dst, int value, std::size_t bytes, Stream stream) override {
    if (bytes == 0) return;
    const cudaStream_t s = native(stream, "memsetAsync");
    current();
    checkCuda(cudaMemsetAsync(dst, value, bytes, s),
              concat(name_, ": memset of ", bytes, " bytes at ", dst, " on stream ", stream.id));
  }

  Stream createStream() override {
    current();
    cudaStream_t s = nullptr;
    // Non-blocking: no implicit ordering with the legacy default stream, as in the sim.
    checkCuda(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking),
              concat(name_, ": cudaStreamCreateWithFlags"));
    std::lock_guard<std::mutex> lock(mu_);
    const Stream h{nextId_++};
    streams_.emplace(h.id, s);
    return h;
  }

  void destroyStream(Stream stream) override {
    if (stream.isDefault()) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name_, ": the default stream cannot be destroyed");
    }
    cudaStream_t s = nullptr;
    bool adopted = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = streams_.find(stream.id);
      if (it == streams_.end()) throwUnknownStream(stream, "destroyStream");
      s = it->second;
      streams_.erase(it);
      adopted = adopted_.erase(stream.id) > 0;
    }
    current();
    const cudaError_t drained = cudaStreamSynchronize(s);
    if (!adopted) {
      checkCuda(cudaStreamDestroy(s),
                concat(name_, ": cudaStreamDestroy(stream ", stream.id, ")"));
    }
    checkCuda(drained, concat(name_, ": work on stream ", stream.id, " (drained by destroyStream)"));
  }

  void synchronize(Stream stream) override {
    const cudaStream_t s = native(stream, "synchronize");
    current();
    checkCuda(cudaStreamSynchronize(s), concat(name_, ": synchronize(stream ", stream.id, ")"));
  }

  bool query(Stream stream) override {
    const cudaStream_t s = native(stream, "query");
    current();
    const cudaError_t e = cudaStreamQuery(s);
    if (e == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    checkCuda(e, concat(name_, ": query(stream ", stream.id, ")"));
    return true;
  }

  void synchronizeDevice() override {
    current();
    checkCuda(cudaDeviceSynchronize(), concat(name_, ": cudaDeviceSynchronize"));
  }

  void* nativeStream(Stream stream) override { return native(stream, "nativeStream"); }

  Stream adoptStream(void* nativeStream) override {
    if (nativeStream == nullptr) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name_,
                  ": adoptStream(nullptr): the default stream is Stream{}");
    }
    std::lock_guard<std::mutex> lock(mu_);
    const Stream h{nextId_++};
    streams_.emplace(h.id, static_cast<cudaStream_t>(nativeStream));
    adopted_.insert(h.id);
    return h;
  }

  Event createEvent() override {
    current();
    cudaEvent_t e = nullptr;
    checkCuda(cudaEventCreate(&e), concat(name_, ": cudaEventCreate"));
    std::lock_guard<std::mutex> lock(mu_);
    const Event h{nextId_++};
    events_.emplace(h.id, EventState{e, false});
    return h;
  }

  void destroyEvent(Event event) override {
    cudaEvent_t e = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = events_.find(event.id);
      if (it == events_.end()) throwUnknownEvent(event, "destroyEvent");
      e = it->second.event;
      events_.erase(it);
    }
    current();
    checkCuda(cudaEventDestroy(e), concat(name_, ": cudaEventDestroy(event ", event.id, ")"));
  }

  void record(Event event, Stream stream) override {
    const cudaStream_t s = native(stream, "record");
    cudaEvent_t e = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      e = eventState(event, "record").event;
    }
    current();
    checkCuda(cudaEventRecord(e, s),
              concat(name_, ": record(event ", event.id, ", stream ", stream.id, ")"));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = events_.find(event.id);  // unless destroyed meanwhile by another thread
    if (it != events_.end()) it->second.recorded = true;
  }

  void wait(Stream stream, Event event) override {
    const cudaStream_t s = native(stream, "wait");
    const cudaEvent_t e = recordedEvent(event, concat("wait(stream ", stream.id, ", event ",
                                                      event.id, ")"));
    current();
    checkCuda(cudaStreamWaitEvent(s, e, 0),
              concat(name_, ": wait(stream ", stream.id, ", event ", event.id, ")"));
  }

  void synchronize(Event event) override {
    const cudaEvent_t e = recordedEvent(event, concat("synchronize(event ", event.id, ")"));
    current();
    checkCuda(cudaEventSynchronize(e), concat(name_, ": synchronize(event ", event.id, ")"));
  }

  bool query(Event event) override {
    const cudaEvent_t e = recordedEvent(event, concat("query(event ", event.id, ")"));
    current();
    const cudaError_t r = cudaEventQuery(e);
    if (r == cudaErrorNotReady) {
      (void)cudaGetLastError();
      return false;
    }
    checkCuda(r, concat(name_, ": query(event ", event.id, ")"));
    return true;
  }

  float elapsedMs(Event start, Event end) override {
    const std::string what = concat("elapsedMs(event ", start.id, ", event ", end.id, ")");
    const cudaEvent_t a = recordedEvent(start, what);
    const cudaEvent_t b = recordedEvent(end, what);
    current();
    float ms = 0;
    checkCuda(cudaEventElapsedTime(&ms, a, b), concat(name_, ": ", what));
    return ms;
  }

  void launch(const KernelLaunch& k, const LaunchShape& shape, Stream stream) override {
    checkLaunchFields(k, name_);
    DeviceFace face = k.device;
    if (face == nullptr) {
      const kernels::KernelEntry* entry = kernels::findDeviceKernel(k.name);
      if (entry == nullptr) {
        ANVIL_THROW(ErrorCode::kUnsupported, name_, ": kernel ", k.name,
                    " has no device build (it is not in the registry of nvcc-built kernels)");
      }
      if (entry->argBytes != k.argBytes) {
        ANVIL_THROW(ErrorCode::kInternal, name_, ": kernel ", k.name, " takes ", entry->argBytes,
                    " bytes of arguments, the launch passes ", k.argBytes);
      }
      face = entry->device;
    }
    const cudaStream_t s = native(stream, "launch");
    current();
    (void)cudaGetLastError();  // report this launch's error, not an earlier one
    checkCuda(static_cast<cudaError_t>(face(k.args, shape, s)),
              concat(name_, ": launch of ", k.name, " grid ", str(shape.grid), " block ",
                     str(shape.block), " shared ", shape.sharedBytes, " on stream ", stream.id));
  }

  void* loadModule(const void* image, std::size_t bytes) override {
    if (image == nullptr || bytes == 0) ANVIL_THROW(ErrorCode::kInvalidArgument, name_, ": loadModule of nothing");
    current();
    cudaLibrary_t lib = nullptr;
    checkCuda(cudaLibraryLoadData(&lib, image, nullptr, nullptr, 0, nullptr, nullptr, 0),
              concat(name_, ": cudaLibraryLoadData of ", bytes, " bytes"));
    return lib;
  }

  void* moduleFunction(void* module, const char* name) override {
    cudaKernel_t k = nullptr;
    checkCuda(cudaLibraryGetKernel(&k, static_cast<cudaLibrary_t>(module), name),
              concat(name_, ": cudaLibraryGetKernel(", name, ")"));
    return k;
  }

  void unloadModule(void* module) override {
    if (module) checkCuda(cudaLibraryUnload(static_cast<cudaLibrary_t>(module)), concat(name_, ": cudaLibraryUnload"));
  }

  void launchFunction(void* function, void** args, const LaunchShape& shape, Stream stream) override {
    const cudaStream_t s = native(stream, "launchFunction");
    current();
    (void)cudaGetLastError();
    // A cudaKernel_t is accepted where cudaLaunchKernel takes a function (CUDA 12+).
    checkCuda(cudaLaunchKernel(static_cast<const void*>(function), dim3(shape.grid.x, shape.grid.y, shape.grid.z),
                               dim3(shape.block.x, shape.block.y, shape.block.z), args, shape.sharedBytes, s),
              concat(name_, ": launch of a loaded function grid ", str(shape.grid), " block ", str(shape.block),
                     " on stream ", stream.id));
  }

  void launchHost(Stream stream, HostFunction fn, void* user) override {
    if (fn == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, name_, ": launchHost of null");
    const cudaStream_t s = native(stream, "launchHost");
    current();
    checkCuda(cudaLaunchHostFunc(s, fn, user),
              concat(name_, ": cudaLaunchHostFunc on stream ", stream.id));
  }

  void beginCapture(Stream stream) override {
    if (stream.isDefault()) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name_,
                  ": beginCapture: the default stream cannot be captured");
    }
    const cudaStream_t s = native(stream, "beginCapture");
    current();
    // Thread-local mode: other host threads may keep making unsafe calls (cudaMalloc, ...)
    // while this one captures.
    checkCuda(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal),
              concat(name_, ": beginCapture(stream ", stream.id, ")"));
  }

  Graph endCapture(Stream stream) override {
    const cudaStream_t s = native(stream, "endCapture");
    current();
    cudaGraph_t graph = nullptr;
    checkCuda(cudaStreamEndCapture(s, &graph),
              concat(name_, ": endCapture(stream ", stream.id, ")"));
    cudaGraphExec_t exec = nullptr;
    const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);  // the executable graph keeps what it needs
    checkCuda(e, concat(name_, ": cudaGraphInstantiate of the capture of stream ", stream.id));
    std::lock_guard<std::mutex> lock(mu_);
    const Graph g{nextId_++};
    graphs_.emplace(g.id, exec);
    return g;
  }

  void launchGraph(Graph graph, Stream stream) override {
    const cudaStream_t s = native(stream, "launchGraph");
    cudaGraphExec_t exec = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = graphs_.find(graph.id);
      if (it == graphs_.end()) throwUnknownGraph(graph, "launchGraph");
      exec = it->second;
    }
    current();
    checkCuda(cudaGraphLaunch(exec, s),
              concat(name_, ": launchGraph(graph ", graph.id, ", stream ", stream.id, ")"));
  }

  void destroyGraph(Graph graph) override {
    cudaGraphExec_t exec = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = graphs_.find(graph.id);
      if (it == graphs_.end()) throwUnknownGraph(graph, "destroyGraph");
      exec = it->second;
      graphs_.erase(it);
    }
    current();
    checkCuda(cudaGraphExecDestroy(exec), concat(name_, ": destroyGraph(graph ", graph.id, ")"));
  }

 private:
  struct EventState {
    cudaEvent_t event = nullptr;
    bool recorded = false;
  };

  // The runtime API acts on the calling thread's current device. Set only when it differs:
  // cheaper, and nothing but a query happens while a stream is being captured.
  void current() const {
    int now = -1;
    if (cudaGetDevice(&now) == cudaSuccess && now == device_) return;
    checkCuda(cudaSetDevice(device_), concat(name_, ": cudaSetDevice(", device_, ")"));
  }

  [[noreturn]] void throwUnknownStream(Stream stream, const char* what) const {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name_, ": ", what, ": stream ", stream.id,
                stream.id < nextId_ ? " was destroyed" : " was never created by this runtime");
  }
  [[noreturn]] void throwUnknownEvent(Event event, const char* what) const {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name_, ": ", what, ": event ", event.id,
                event.id < nextId_ ? " was destroyed" : " was never created by this runtime");
  }
  [[noreturn]] void throwUnknownGraph(Graph graph, const char* what) const {
    ANVIL_THROW(ErrorCode::kInvalidArgument, name_, ": ", what, ": graph ", graph.id,
                graph.id < nextId_ ? " was destroyed" : " was never created by this runtime");
  }

  cudaStream_t native(Stream stream, const char* what) {
    if (stream.isDefault()) return cudaStreamLegacy;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = streams_.find(stream.id);
    if (it == streams_.end()) throwUnknownStream(stream, what);
    return it->second;
  }

  // Caller holds mu_.
  EventState& eventState(Event event, const char* what) {
    auto it = events_.find(event.id);
    if (it == events_.end()) throwUnknownEvent(event, what);
    return it->second;
  }

  // CUDA treats an event never recorded as complete; that hides a missing record, so here
  // (and in the sim) it is an error.
  cudaEvent_t recordedEvent(Event event, const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    EventState& st = eventState(event, what.c_str());
    if (!st.recorded) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, name_, ": ", what, ": event ", event.id,
                  " was never recorded");
    }
    return st.event;
  }

  int device_;
  std::string name_;
  std::mutex mu_;
  std::uint64_t nextId_ = 1;  // streams, events and graphs share the count
  std::unordered_map<std::uint64_t, cudaStream_t> streams_;
  std::unordered_set<std::uint64_t> adopted_;  // streams_ that belong to the caller
  std::unordered_map<std::uint64_t, EventState> events_;
  std::unordered_map<std::uint64_t, cudaGraphExec_t> graphs_;
};

}  // namespace

std::unique_ptr<DeviceRuntime> cudaRuntime(int device) {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorInsufficientDriver || e == cudaErrorNoDevice ||
      (e == cudaSuccess && count == 0)) {
    (void)cudaGetLastError();
    ANVIL_THROW(ErrorCode::kUnsupported, "no CUDA device: cudaGetDeviceCount reports ",
                e == cudaSuccess ? std::string("0 devices") : describe(e),
                " (no GPU or no driver here); simRuntime() runs our kernels on the CPU");
  }
  checkCuda(e, "cudaGetDeviceCount");
  if (device < 0 || device >= count) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "CUDA device ", device, " does not exist: ", count,
                " devices");
  }
  return std::make_unique<CudaRuntime>(device);
}

}  // namespace anvil::cuda
