// The device runtime seam of the CUDA backend: device and pinned memory, streams as ordered
// queues, events, async copies and type-erased kernel launches, behind one interface with two
// implementations: cudaRuntime() over cudart (runtime_cuda.cpp) and simRuntime(), which runs
// the same work on the CPU through cuda/sim (runtime_sim.cpp). No CUDA header here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace anvil::cuda {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

// A launch's shape: kernel<<<grid, block, sharedBytes>>>.
struct LaunchShape {
  Dim3 grid;
  Dim3 block;
  std::size_t sharedBytes = 0;  // dynamic shared memory
};

// Handles are plain values naming an object of the runtime that made them. Ids count up
// from 1 and are never reused, so a destroyed handle is always recognised as such.
// Stream{} (id 0) is the default stream: one runtime-wide ordered queue that is NOT
// implicitly ordered with created streams (those are cudaStreamNonBlocking on a GPU);
// order across streams with events.
struct Stream {
  std::uint64_t id = 0;
  bool isDefault() const { return id == 0; }
  friend bool operator==(Stream a, Stream b) { return a.id == b.id; }
};
struct Event {
  std::uint64_t id = 0;
  friend bool operator==(Event a, Event b) { return a.id == b.id; }
};
struct Graph {
  std::uint64_t id = 0;
};

enum class CopyKind : std::uint8_t { kHostToDevice, kDeviceToHost, kDeviceToDevice };
const char* copyKindName(CopyKind kind);  // "host-to-device", ...

// The two faces of one kernel instantiation; `args` points at an ArgPack (cuda/arg_pack.h)
// of exactly the kernel's parameter types.
// nvcc-built: launches on `stream` (a cudaStream_t) and returns the cudaError_t of the launch.
using DeviceFace = int (*)(const void* args, const LaunchShape& shape, void* stream);
// Host-compiled against cuda/sim: the body one simulated thread runs (sim::detail::KernelThunk).
using SimFace = void (*)(const void* args);
// A host function run in stream order (cudaLaunchHostFunc): it must not call the runtime.
using HostFunction = void (*)(void* user);

// Device memory a kernel reads or writes; the sim checks each against its allocations.
struct DeviceRange {
  const void* ptr = nullptr;
  std::size_t bytes = 0;
  const char* what = "";  // "input", "output", ... for messages
};

// One kernel launch, erased. The runtime finds the face it needs by `name` in its registry of
// our kernels (cuda/kernels/registry.h) unless the launch brings that face itself.
struct KernelLaunch {
  const char* name = "";  // "f32_softmax_row_block256": the registry key and what errors say
  const void* args = nullptr;
  std::size_t argBytes = 0;  // sizeof the ArgPack; checked against the registry's entry
  const DeviceRange* ranges = nullptr;
  std::size_t rangeCount = 0;
  DeviceFace device = nullptr;  // optional: a face outside the registry (tests, later JIT)
  SimFace sim = nullptr;
};

// Every call either does what it says or throws anvil::Error: kInvalidArgument for misuse
// (unknown or destroyed handles, bad ranges, an event never recorded), kUnsupported for what
// a runtime cannot do, kRuntimeError for failures of the device or of queued work. Work that
// fails after it was queued (a kernel error) is sticky on its stream: every later
// synchronize, query or enqueue on that stream throws it, naming the operation.
// All members may be called from several host threads.
class DeviceRuntime {
 public:
  static constexpr std::size_t kAlignment = 256;  // of allocate() (cudaMalloc's guarantee)

  virtual ~DeviceRuntime() = default;
  virtual std::string name() const = 0;  // "cuda:0 NVIDIA H200 (sm_90)", "cuda sim (...)"
  virtual bool simulated() const = 0;

  // Device memory, aligned to kAlignment, uninitialised; 0 bytes gives nullptr. free waits
  // for all queued work first (as cudaFree does); free(nullptr) does nothing.
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void free(void* ptr) = 0;
  // Whether [ptr, ptr + bytes) is device memory this runtime's work may use (a caller's
  // buffer bound with MemoryLocation::kDevice is checked so): the sim knows its live
  // allocations; cudart asks cudaPointerGetAttributes. A runtime that cannot tell says true.
  virtual bool isDeviceMemory(const void* ptr, std::size_t bytes) {
    (void)ptr;
    (void)bytes;
    return true;
  }
  // Page-locked host memory (cudaMallocHost): what async copies stage through.
  virtual void* allocateHost(std::size_t bytes) = 0;
  virtual void freeHost(void* ptr) = 0;

  // Copies and fills in stream order; copy() is ordered on the default stream and returns
  // when it is done (cudaMemcpy).
  virtual void copyAsync(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                         Stream stream) = 0;
  virtual void copy(void* dst, const void* src, std::size_t bytes, CopyKind kind) = 0;
  virtual void memsetAsync(void* dst, int value, std::size_t bytes, Stream stream) = 0;

  virtual Stream createStream() = 0;
  // Waits for the stream's work, then destroys it; throws its sticky error if it had one.
  virtual void destroyStream(Stream stream) = 0;
  virtual void synchronize(Stream stream) = 0;
  virtual bool query(Stream stream) = 0;  // true when all its work has finished
  virtual void synchronizeDevice() = 0;   // every stream; throws the first sticky error
  // The cudaStream_t behind a handle, to hand to libraries (cuBLASLt, cuDNN); the sim has none.
  virtual void* nativeStream(Stream stream) = 0;
  // A handle for a caller's cudaStream_t (enqueue on the caller's stream): destroyStream
  // drains it and forgets the handle but leaves the stream to its owner. kUnsupported in the
  // sim, which has no CUDA streams.
  virtual Stream adoptStream(void* nativeStream) = 0;

  virtual Event createEvent() = 0;
  virtual void destroyEvent(Event event) = 0;  // work already waiting on it is unaffected
  // Completes when `stream` reaches this point; re-recording moves it to the new point.
  virtual void record(Event event, Stream stream) = 0;
  // Work queued on `stream` after this waits for the event's latest record.
  virtual void wait(Stream stream, Event event) = 0;
  virtual void synchronize(Event event) = 0;
  virtual bool query(Event event) = 0;  // true once its latest record completed
  // Milliseconds from `start` to `end`; both must have completed.
  virtual float elapsedMs(Event start, Event end) = 0;

  virtual void launch(const KernelLaunch& kernel, const LaunchShape& shape, Stream stream) = 0;
  // Device code compiled at build time (NVRTC: a CUBIN for the target, or PTX that the driver
  // compiles on load), loaded per context: loadModule returns a handle, moduleFunction the
  // handle of a __global__ function in it (extern "C" name), launchFunction launches it with
  // `args` as cudaLaunchKernel takes them (an array of pointers to each argument). The sim
  // runs only anvil's own kernels: kUnsupported there.
  virtual void* loadModule(const void* image, std::size_t bytes) = 0;
  virtual void* moduleFunction(void* module, const char* name) = 0;
  virtual void unloadModule(void* module) = 0;
  virtual void launchFunction(void* function, void** args, const LaunchShape& shape, Stream stream) = 0;
  virtual void launchHost(Stream stream, HostFunction fn, void* user) = 0;

  // Stream capture (CUDA graphs): between beginCapture and endCapture the work queued on
  // `stream` is recorded, not run, and launchGraph replays it, in order, on any stream.
  // Captured arguments and pointers are fixed: a replay reads the same buffers (copy new
  // inputs into them first). The default stream cannot be captured; synchronize and query of
  // a capturing stream are errors (they would invalidate a CUDA capture); host memory in
  // captured copies must be pinned on a GPU. The sim captures one stream only: record and
  // wait inside a capture are kUnsupported there (a GPU allows cross-stream fork/join).
  virtual void beginCapture(Stream stream) = 0;
  virtual Graph endCapture(Stream stream) = 0;
  virtual void launchGraph(Graph graph, Stream stream) = 0;
  virtual void destroyGraph(Graph graph) = 0;
};

// The checks both runtimes make of a KernelLaunch before anything else: a name, and no null
// pointer behind a non-zero argBytes or rangeCount. `runtime` starts the message.
void checkLaunchFields(const KernelLaunch& kernel, const std::string& runtime);

// The runtime of CUDA device `device`. kUnsupported "no CUDA device" where there is no
// driver or no GPU, kInvalidArgument for a device that does not exist.
std::unique_ptr<DeviceRuntime> cudaRuntime(int device = 0);

// The simulated runtime (link anvil_cuda_sim): runs our kernels on the CPU.
std::unique_ptr<DeviceRuntime> simRuntime();

}  // namespace anvil::cuda
