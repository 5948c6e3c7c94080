// The simulated DeviceRuntime: device memory is host memory recorded in a registry that every
// copy, fill and launch is checked against; each stream is an ordered queue run by its own
// worker thread, so the host really runs ahead as it does with a GPU; events complete when
// their queue reaches them; kernels run through cuda/sim on the stream's worker. The whole
// state sits under one mutex and one condition variable: simple, and fast enough for tests.
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "anvil/error.h"
#include "cuda/kernels/registry.h"
#include "cuda/runtime.h"
#include "cuda/sim/sim.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define ANVIL_SIM_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define ANVIL_SIM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define ANVIL_SIM_POISON(p, n) ((void)(p), (void)(n))
#define ANVIL_SIM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

namespace anvil::cuda {
namespace {

using ::anvil::detail::concat;
using Clock = std::chrono::steady_clock;

// Freed device memory stays reserved (filled with 0xff, poisoned under ASan) until this much
// has been freed after it, so a stale pointer is reported as a use after free rather than
// silently hitting a newer allocation.
constexpr std::size_t kQuarantineBytes = 64u << 20;
// New device memory reads as NaN (0xff bytes), like the sim's dynamic shared memory.
constexpr unsigned char kUninitialised = 0xff;

std::string hexPtr(std::uintptr_t p) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(p));
  return buf;
}
std::string range(const void* p, std::size_t bytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(p);
  return concat("[", hexPtr(a), ", ", hexPtr(a + bytes), ") (", bytes, " bytes)");
}
std::string str(Dim3 d) { return concat("(", d.x, ",", d.y, ",", d.z, ")"); }

struct SimEvent {
  std::uint64_t id = 0;
  std::uint64_t recorded = 0;   // records issued; a wait captures this number
  std::uint64_t completed = 0;  // the latest record its queue has reached
  Clock::time_point when{};
  // Set when a stream failed with a record of this event still queued: that record (and all
  // before it) will never complete, so waiters fail instead of hanging.
  std::uint64_t failedRecord = 0;
  std::exception_ptr failure;
};

// Device memory an op touches, kept so that a graph replay can check it again (the buffers
// may have been freed since the capture).
struct CheckedRange {
  const void* ptr = nullptr;
  std::size_t bytes = 0;
  std::string role;  // "destination", "input", ...
};

struct Op {
  enum class Kind : std::uint8_t { kCall, kRecord, kWait };
  Kind kind = Kind::kCall;
  std::string what;            // "launch of f32_relu_... grid (..) block (..)", for errors
  std::function<void()> call;  // kCall, run without the lock
  std::shared_ptr<SimEvent> event;
  std::uint64_t record = 0;    // kRecord: this record's number; kWait: the one to wait for
  std::vector<CheckedRange> ranges;
};

using SimGraph = std::vector<Op>;  // kCall ops only

struct SimStream {
  std::uint64_t id = 0;
  std::deque<Op> queue;
  bool busy = false;  // the worker is running an op taken off the queue
  bool stopping = false;
  std::exception_ptr error;  // sticky
  std::shared_ptr<SimGraph> capture;  // set between beginCapture and endCapture
  std::thread worker;
  bool idle() const { return queue.empty() && !busy; }
};

struct Allocation {
  std::size_t bytes = 0;    // as requested: the range checks use this, not the rounding
  std::size_t reserved = 0;  // as allocated
  bool freed = false;
};

class SimRuntime final : public DeviceRuntime {
 public:
  SimRuntime() { defaultStream_ = startStream(0); }

  ~SimRuntime() override {
    std::vector<std::unique_ptr<SimStream>> all;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto& [id, s] : streams_) all.push_back(std::move(s));
      streams_.clear();
      all.push_back(std::move(defaultStream_));
    }
    for (auto& s : all) stopAndJoin(*s);
    for (auto& [base, a] : device_) {
      ANVIL_SIM_UNPOISON(reinterpret_cast<void*>(base), a.reserved);
      std::free(reinterpret_cast<void*>(base));
    }
    for (auto& [base, bytes] : pinned_) std::free(reinterpret_cast<void*>(base));
  }

  std::string name() const override {
    return concat("cuda sim (host SIMT shim, ", sim::options().workers, " block workers)");
  }
  bool simulated() const override { return true; }

  // ---- memory ----

  void* allocate(std::size_t bytes) override {
    if (bytes == 0) return nullptr;
    if (bytes > (std::size_t{1} << 48)) {
      ANVIL_THROW(ErrorCode::kRuntimeError, "cuda sim: out of memory allocating ", bytes,
                  " bytes of device memory");
    }
    const std::size_t reserved = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, reserved);
    if (p == nullptr) {
      ANVIL_THROW(ErrorCode::kRuntimeError, "cuda sim: out of memory allocating ", bytes,
                  " bytes of device memory");
    }
    std::memset(p, kUninitialised, reserved);
    std::lock_guard<std::mutex> lock(mu_);
    device_[reinterpret_cast<std::uintptr_t>(p)] = Allocation{bytes, reserved, false};
    return p;
  }

  void free(void* ptr) override {
    if (ptr == nullptr) return;
    std::unique_lock<std::mutex> lock(mu_);
    // As cudaFree: the device first finishes its queued work, which may still use ptr.
    cv_.wait(lock, [&] { return allIdle(); });
    const auto p = reinterpret_cast<std::uintptr_t>(ptr);
    auto it = containing(p);
    if (it == device_.end()) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: free(", ptr,
                  "): not device memory allocated by this runtime");
    }
    if (it->first != p) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: free(", ptr, "): points ",
                  p - it->first, " bytes into device allocation ",
                  range(reinterpret_cast<void*>(it->first), it->second.bytes),
                  "; free takes the pointer allocate returned");
    }
    if (it->second.freed) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: double free of device allocation ",
                  range(ptr, it->second.bytes));
    }
    it->second.freed = true;
    std::memset(ptr, kUninitialised, it->second.reserved);
    ANVIL_SIM_POISON(ptr, it->second.reserved);
    quarantine_.push_back(p);
    quarantined_ += it->second.reserved;
    while (quarantined_ > kQuarantineBytes && quarantine_.size() > 1) {
      auto old = device_.find(quarantine_.front());
      quarantine_.pop_front();
      quarantined_ -= old->second.reserved;
      ANVIL_SIM_UNPOISON(reinterpret_cast<void*>(old->first), old->second.reserved);
      std::free(reinterpret_cast<void*>(old->first));
      device_.erase(old);
    }
  }

  bool isDeviceMemory(const void* ptr, std::size_t bytes) override {
    std::lock_guard<std::mutex> lock(mu_);
    const auto p = reinterpret_cast<std::uintptr_t>(ptr);
    auto it = containing(p);
    return it != device_.end() && !it->second.freed && p + bytes <= it->first + it->second.bytes;
  }

  void* allocateHost(std::size_t bytes) override {
    if (bytes == 0) return nullptr;
    if (bytes > (std::size_t{1} << 48)) {
      ANVIL_THROW(ErrorCode::kRuntimeError, "cuda sim: out of memory allocating ", bytes,
                  " bytes of pinned host memory");
    }
    const std::size_t reserved = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    void* p = std::aligned_alloc(kAlignment, reserved);
    if (p == nullptr) {
      ANVIL_THROW(ErrorCode::kRuntimeError, "cuda sim: out of memory allocating ", bytes,
                  " bytes of pinned host memory");
    }
    std::lock_guard<std::mutex> lock(mu_);
    pinned_[reinterpret_cast<std::uintptr_t>(p)] = bytes;
    return p;
  }

  void freeHost(void* ptr) override {
    if (ptr == nullptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = pinned_.find(reinterpret_cast<std::uintptr_t>(ptr));
    if (it == pinned_.end()) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: freeHost(", ptr,
                  "): not pinned host memory allocated by this runtime (freed twice?)");
    }
    pinned_.erase(it);
    std::free(ptr);
  }

  // ---- copies ----

  void copyAsync(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                 Stream stream) override {
    const std::string what = concat(copyKindName(kind), " copy of ", bytes, " bytes");
    if (bytes == 0) return;
    std::lock_guard<std::mutex> lock(mu_);
    SimStream& s = liveStream(stream, what.c_str());
    checkCopy(dst, src, bytes, kind, what);
    std::vector<CheckedRange> ranges;
    if (kind != CopyKind::kHostToDevice) ranges.push_back({src, bytes, "source"});
    if (kind != CopyKind::kDeviceToHost) ranges.push_back({dst, bytes, "destination"});
    enqueue(s, Op{Op::Kind::kCall, concat(what, " from ", src, " to ", dst),
                  [dst, src, bytes] { std::memmove(dst, src, bytes); }, nullptr, 0,
                  std::move(ranges)});
  }

  void copy(void* dst, const void* src, std::size_t bytes, CopyKind kind) override {
    copyAsync(dst, src, bytes, kind, Stream{});
    synchronize(Stream{});
  }

  void memsetAsync(void* dst, int value, std::size_t bytes, Stream stream) override {
    if (bytes == 0) return;
    const std::string what = concat("memset of ", bytes, " bytes");
    std::lock_guard<std::mutex> lock(mu_);
    SimStream& s = liveStream(stream, what.c_str());
    checkDevice(dst, bytes, "destination", what);
    enqueue(s, Op{Op::Kind::kCall, concat(what, " at ", dst),
                  [dst, value, bytes] { std::memset(dst, value, bytes); }, nullptr, 0,
                  {{dst, bytes, "destination"}}});
  }

  // ---- streams ----

  Stream createStream() override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::uint64_t id = nextId_++;
    streams_.emplace(id, startStream(id));
    return Stream{id};
  }

  void destroyStream(Stream stream) override {
    if (stream.isDefault()) {
      ANVIL_THROW(ErrorCode::kInvalidArgument,
                  "cuda sim: destroyStream: the default stream cannot be destroyed");
    }
    std::unique_ptr<SimStream> s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = streams_.find(stream.id);
      if (it == streams_.end()) throwUnknown("destroyStream", "stream", stream.id);
      s = std::move(it->second);
      streams_.erase(it);
    }
    stopAndJoin(*s);  // drains the queue
    if (s->error) std::rethrow_exception(s->error);
  }

  void synchronize(Stream stream) override {
    std::unique_lock<std::mutex> lock(mu_);
    SimStream* s = &stream_(stream, "synchronize");
    refuseWhileCapturing(*s, "synchronize");
    cv_.wait(lock, [&] {
      s = findStream(stream.id);  // may be destroyed meanwhile by another thread
      return s == nullptr || s->idle() || s->error;
    });
    if (s == nullptr) throwUnknown("synchronize", "stream", stream.id);
    if (s->error) std::rethrow_exception(s->error);
  }

  bool query(Stream stream) override {
    std::lock_guard<std::mutex> lock(mu_);
    SimStream& s = stream_(stream, "query");
    refuseWhileCapturing(s, "query");
    if (s.error) std::rethrow_exception(s.error);
    return s.idle();
  }

  void synchronizeDevice() override {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return allIdle(); });
    if (defaultStream_->error) std::rethrow_exception(defaultStream_->error);
    for (auto& [id, s] : streams_) {
      if (s->error) std::rethrow_exception(s->error);
    }
  }

  void* nativeStream(Stream stream) override {
    ANVIL_THROW(ErrorCode::kUnsupported, "cuda sim: stream ", stream.id,
                " has no native cudaStream_t (libraries such as cuBLASLt need a GPU)");
  }

  Stream adoptStream(void* nativeStream) override {
    ANVIL_THROW(ErrorCode::kUnsupported, "cuda sim: adoptStream(", nativeStream,
                "): the sim has no CUDA streams to adopt; create one with createStream");
  }

  // ---- events ----

  Event createEvent() override {
    std::lock_guard<std::mutex> lock(mu_);
    auto e = std::make_shared<SimEvent>();
    e->id = nextId_++;
    events_.emplace(e->id, e);
    return Event{e->id};
  }

  void destroyEvent(Event event) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (events_.erase(event.id) == 0) throwUnknown("destroyEvent", "event", event.id);
  }

  void record(Event event, Stream stream) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::shared_ptr<SimEvent>& e = event_(event, "record");
    SimStream& s = liveStream(stream, "record");
    refuseInCapture(s, "record");
    const std::uint64_t n = ++e->recorded;
    enqueue(s, Op{Op::Kind::kRecord, concat("record of event ", event.id), nullptr, e, n});
  }

  void wait(Stream stream, Event event) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string what = concat("wait(stream ", stream.id, ", event ", event.id, ")");
    const std::shared_ptr<SimEvent>& e = recordedEvent(event, what);
    SimStream& s = liveStream(stream, what.c_str());
    refuseInCapture(s, "wait");
    enqueue(s, Op{Op::Kind::kWait, concat("wait for event ", event.id), nullptr, e, e->recorded});
  }

  void synchronize(Event event) override {
    std::unique_lock<std::mutex> lock(mu_);
    const std::shared_ptr<SimEvent> e =
        recordedEvent(event, concat("synchronize(event ", event.id, ")"));
    const std::uint64_t n = e->recorded;
    cv_.wait(lock, [&] { return e->completed >= n || failedAt(*e, n); });
    if (e->completed < n) std::rethrow_exception(e->failure);
  }

  bool query(Event event) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::shared_ptr<SimEvent>& e = recordedEvent(event, concat("query(event ", event.id, ")"));
    if (e->completed >= e->recorded) return true;
    if (failedAt(*e, e->recorded)) std::rethrow_exception(e->failure);
    return false;
  }

  float elapsedMs(Event start, Event end) override {
    std::lock_guard<std::mutex> lock(mu_);
    const std::string what = concat("elapsedMs(event ", start.id, ", event ", end.id, ")");
    const SimEvent& a = *recordedEvent(start, what);
    const SimEvent& b = *recordedEvent(end, what);
    for (const SimEvent* e : {&a, &b}) {
      if (e->completed < e->recorded) {
        ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", what, ": event ", e->id,
                    " has not completed (synchronize it first)");
      }
    }
    return std::chrono::duration<float, std::milli>(b.when - a.when).count();
  }

  // ---- work ----

  void launch(const KernelLaunch& k, const LaunchShape& shape, Stream stream) override {
    checkLaunchFields(k, "cuda sim");
    const std::string what = concat("launch of ", k.name, " grid ", str(shape.grid), " block ",
                                    str(shape.block), " shared ", shape.sharedBytes);
    SimFace face = k.sim;
    if (face == nullptr) {
      const kernels::KernelEntry* entry = kernels::findSimKernel(k.name);
      if (entry == nullptr) {
        ANVIL_THROW(ErrorCode::kUnsupported, "cuda sim: ", what,
                    ": the kernel has no simulated build (it is not in the sim's registry)");
      }
      if (entry->argBytes != k.argBytes) {
        ANVIL_THROW(ErrorCode::kInternal, "cuda sim: ", what, ": the kernel takes ",
                    entry->argBytes, " bytes of arguments, the launch passes ", k.argBytes);
      }
      face = entry->sim;
    }
    const std::uint64_t threads = std::uint64_t(shape.block.x) * shape.block.y * shape.block.z;
    if (threads == 0 || threads > 1024 || shape.grid.x == 0 || shape.grid.y == 0 ||
        shape.grid.z == 0) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", what,
                  ": invalid launch configuration (a block holds 1 to 1024 threads, every grid "
                  "dimension is at least 1)");
    }
    // The arguments are copied now: the caller's pack dies when launch returns.
    auto args = std::shared_ptr<std::max_align_t[]>(
        new std::max_align_t[(k.argBytes + sizeof(std::max_align_t) - 1) /
                                 sizeof(std::max_align_t) +
                             1]);
    if (k.argBytes > 0) std::memcpy(args.get(), k.args, k.argBytes);
    std::lock_guard<std::mutex> lock(mu_);
    SimStream& s = liveStream(stream, what.c_str());
    std::vector<CheckedRange> ranges;
    for (std::size_t i = 0; i < k.rangeCount; ++i) {
      checkDevice(k.ranges[i].ptr, k.ranges[i].bytes, k.ranges[i].what, what);
      ranges.push_back({k.ranges[i].ptr, k.ranges[i].bytes, k.ranges[i].what});
    }
    enqueue(s, Op{Op::Kind::kCall, what,
                  [face, args, shape] {
                    sim::detail::launchErased(
                        dim3(shape.grid.x, shape.grid.y, shape.grid.z),
                        dim3(shape.block.x, shape.block.y, shape.block.z), shape.sharedBytes,
                        face, args.get());
                  },
                  nullptr, 0, std::move(ranges)});
  }

  [[noreturn]] static void noModules() {
    ANVIL_THROW(ErrorCode::kUnsupported, "cuda sim: it runs anvil's own kernels only; this step runs device code "
                "compiled at build time (NVRTC) or a vendor library, which needs a GPU");
  }
  void* loadModule(const void*, std::size_t) override { noModules(); }
  void* moduleFunction(void*, const char*) override { noModules(); }
  void unloadModule(void*) override { noModules(); }
  void launchFunction(void*, void**, const LaunchShape&, Stream) override { noModules(); }

  void launchHost(Stream stream, HostFunction fn, void* user) override {
    if (fn == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: launchHost of null");
    std::lock_guard<std::mutex> lock(mu_);
    SimStream& s = liveStream(stream, "launchHost");
    enqueue(s, Op{Op::Kind::kCall, "host function", [fn, user] { fn(user); }, nullptr, 0});
  }

  // ---- graphs ----

  void beginCapture(Stream stream) override {
    if (stream.isDefault()) {
      ANVIL_THROW(ErrorCode::kInvalidArgument,
                  "cuda sim: beginCapture: the default stream cannot be captured");
    }
    std::lock_guard<std::mutex> lock(mu_);
    SimStream& s = liveStream(stream, "beginCapture");
    if (s.capture) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: beginCapture: stream ", stream.id,
                  " is already capturing");
    }
    s.capture = std::make_shared<SimGraph>();
  }

  Graph endCapture(Stream stream) override {
    std::lock_guard<std::mutex> lock(mu_);
    SimStream& s = stream_(stream, "endCapture");
    if (!s.capture) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: endCapture: stream ", stream.id,
                  " is not capturing");
    }
    const Graph g{nextId_++};
    graphs_.emplace(g.id, std::move(s.capture));
    s.capture = nullptr;
    return g;
  }

  void launchGraph(Graph graph, Stream stream) override {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = graphs_.find(graph.id);
    if (it == graphs_.end()) throwUnknown("launchGraph", "graph", graph.id);
    SimStream& s = liveStream(stream, "launchGraph");
    // Check everything before queueing anything: a replay runs whole or not at all.
    for (const Op& op : *it->second) {
      const std::string what = concat("graph ", graph.id, ": ", op.what);
      for (const CheckedRange& r : op.ranges) checkDevice(r.ptr, r.bytes, r.role.c_str(), what);
    }
    for (const Op& op : *it->second) {
      Op copy = op;
      copy.what = concat("graph ", graph.id, ": ", op.what);
      enqueue(s, std::move(copy));
    }
  }

  void destroyGraph(Graph graph) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (graphs_.erase(graph.id) == 0) throwUnknown("destroyGraph", "graph", graph.id);
  }

 private:
  // ---- with mu_ held ----

  std::unique_ptr<SimStream> startStream(std::uint64_t id) {
    auto s = std::make_unique<SimStream>();
    s->id = id;
    SimStream* raw = s.get();
    s->worker = std::thread([this, raw] { work(*raw); });
    return s;
  }

  SimStream* findStream(std::uint64_t id) {
    if (id == 0) return defaultStream_.get();
    auto it = streams_.find(id);
    return it == streams_.end() ? nullptr : it->second.get();
  }

  [[noreturn]] void throwUnknown(const char* what, const char* kind, std::uint64_t id) const {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", what, ": ", kind, " ", id,
                id < nextId_ ? " was destroyed" : " was never created by this runtime");
  }

  SimStream& stream_(Stream stream, const char* what) {
    SimStream* s = findStream(stream.id);
    if (s == nullptr) throwUnknown(what, "stream", stream.id);
    return *s;
  }

  // A stream that can take work: a failed one rethrows its sticky error, as CUDA does.
  SimStream& liveStream(Stream stream, const char* what) {
    SimStream& s = stream_(stream, what);
    if (s.error) std::rethrow_exception(s.error);
    return s;
  }

  const std::shared_ptr<SimEvent>& event_(Event event, const char* what) {
    auto it = events_.find(event.id);
    if (it == events_.end()) throwUnknown(what, "event", event.id);
    return it->second;
  }

  // CUDA treats an event never recorded as complete; that hides a missing record, so here
  // it is an error (the real runtime does the same).
  const std::shared_ptr<SimEvent>& recordedEvent(Event event, const std::string& what) {
    const std::shared_ptr<SimEvent>& e = event_(event, what.c_str());
    if (e->recorded == 0) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", what, ": event ", event.id,
                  " was never recorded");
    }
    return e;
  }

  static bool failedAt(const SimEvent& e, std::uint64_t record) {
    return e.failure && e.failedRecord >= record;
  }

  bool allIdle() const {
    if (!defaultStream_->idle()) return false;
    for (const auto& [id, s] : streams_) {
      if (!s->idle()) return false;
    }
    return true;
  }

  // Capturing, work goes to the graph instead of the queue.
  void enqueue(SimStream& s, Op op) {
    if (s.capture) {
      s.capture->push_back(std::move(op));
      return;
    }
    s.queue.push_back(std::move(op));
    cv_.notify_all();
  }

  void refuseInCapture(const SimStream& s, const char* what) const {
    if (s.capture) {
      ANVIL_THROW(ErrorCode::kUnsupported, "cuda sim: ", what, " on stream ", s.id,
                  ", which is capturing a graph: the sim captures work on one stream only "
                  "(no events inside a capture)");
    }
  }

  void refuseWhileCapturing(const SimStream& s, const char* what) const {
    if (s.capture) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", what, "(stream ", s.id,
                  "): the stream is capturing a graph (endCapture first)");
    }
  }

  // The allocation holding address p, live or quarantined; end() if none.
  std::map<std::uintptr_t, Allocation>::iterator containing(std::uintptr_t p) {
    auto it = device_.upper_bound(p);
    if (it == device_.begin()) return device_.end();
    --it;
    return p < it->first + std::max(it->second.bytes, std::size_t{1}) ? it : device_.end();
  }

  // [ptr, ptr + bytes) must lie in one live allocation.
  void checkDevice(const void* ptr, std::size_t bytes, const char* role, const std::string& op) {
    if (bytes == 0) return;
    const auto p = reinterpret_cast<std::uintptr_t>(ptr);
    auto it = containing(p);
    if (it == device_.end()) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", op, ": ", role, " ",
                  range(ptr, bytes), " is not device memory allocated by this runtime");
    }
    const void* base = reinterpret_cast<const void*>(it->first);
    if (it->second.freed) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", op, ": use after free: ", role, " ",
                  range(ptr, bytes), " lies in device allocation ", range(base, it->second.bytes),
                  ", which was freed");
    }
    const std::uintptr_t end = it->first + it->second.bytes;
    if (p + bytes > end) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", op, ": out of bounds: ", role, " ",
                  range(ptr, bytes), " runs ", p + bytes - end,
                  " bytes past the end of device allocation ", range(base, it->second.bytes));
    }
  }

  // The host side of a copy must not be device memory: that is a wrong CopyKind.
  void checkHost(const void* ptr, std::size_t bytes, const char* role, CopyKind kind,
                 const std::string& op) {
    const auto p = reinterpret_cast<std::uintptr_t>(ptr);
    if (ptr == nullptr) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", op, ": null host ", role);
    }
    auto first = containing(p);
    auto last = containing(p + bytes - 1);
    if (first != device_.end() || last != device_.end()) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", op, ": the host ", role, " ",
                  range(ptr, bytes), " is device memory; ", copyKindName(kind),
                  " is the wrong copy kind");
    }
  }

  void checkCopy(void* dst, const void* src, std::size_t bytes, CopyKind kind,
                 const std::string& what) {
    switch (kind) {
      case CopyKind::kHostToDevice:
        checkHost(src, bytes, "source", kind, what);
        checkDevice(dst, bytes, "destination", what);
        return;
      case CopyKind::kDeviceToHost:
        checkDevice(src, bytes, "source", what);
        checkHost(dst, bytes, "destination", kind, what);
        return;
      case CopyKind::kDeviceToDevice:
        checkDevice(src, bytes, "source", what);
        checkDevice(dst, bytes, "destination", what);
        return;
    }
    ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: unknown copy kind ",
                static_cast<int>(kind));
  }

  // ---- workers ----

  void stopAndJoin(SimStream& s) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      s.stopping = true;
      cv_.notify_all();
    }
    s.worker.join();
  }

  // A stream's worker: runs its ops in order. After an op fails the rest are dropped (their
  // inputs are suspect), and events they would have recorded fail too, so that nothing waits
  // forever on them.
  void work(SimStream& s) {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return !s.queue.empty() || s.stopping; });
      if (s.queue.empty()) return;
      Op op = std::move(s.queue.front());
      s.queue.pop_front();
      s.busy = true;
      if (s.error) {
        if (op.kind == Op::Kind::kRecord) failEvent(*op.event, op.record, s.error);
      } else if (op.kind == Op::Kind::kRecord) {
        if (op.record > op.event->completed) {
          op.event->completed = op.record;
          op.event->when = Clock::now();
        }
      } else if (op.kind == Op::Kind::kWait) {
        SimEvent& e = *op.event;
        cv_.wait(lock, [&] { return e.completed >= op.record || failedAt(e, op.record); });
        if (e.completed < op.record) s.error = wrap(s, op, e.failure);
      } else {
        lock.unlock();
        std::exception_ptr error;
        try {
          op.call();
        } catch (...) {
          error = std::current_exception();
        }
        op.call = nullptr;  // drop the captured arguments before taking the lock again
        lock.lock();
        if (error) s.error = wrap(s, op, error);
      }
      s.busy = false;
      cv_.notify_all();
    }
  }

  void failEvent(SimEvent& e, std::uint64_t record, const std::exception_ptr& cause) {
    if (record > e.failedRecord) {
      e.failedRecord = record;
      e.failure = cause;
    }
  }

  // The sticky error of stream s: the op that failed and why, keeping the cause's code.
  static std::exception_ptr wrap(const SimStream& s, const Op& op, const std::exception_ptr& e) {
    ErrorCode code = ErrorCode::kRuntimeError;
    std::string why;
    try {
      std::rethrow_exception(e);
    } catch (const Error& err) {
      code = err.code();
      why = err.what();
    } catch (const std::exception& err) {
      why = err.what();
    } catch (...) {
      why = "a non-standard exception";
    }
    return std::make_exception_ptr(
        Error(code, concat("cuda sim: stream ", s.id, ": ", op.what, " failed: ", why)));
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::uint64_t nextId_ = 1;  // streams, events and graphs share the count
  std::unique_ptr<SimStream> defaultStream_;
  std::unordered_map<std::uint64_t, std::unique_ptr<SimStream>> streams_;
  std::unordered_map<std::uint64_t, std::shared_ptr<SimEvent>> events_;
  std::unordered_map<std::uint64_t, std::shared_ptr<SimGraph>> graphs_;
  std::map<std::uintptr_t, Allocation> device_;
  std::deque<std::uintptr_t> quarantine_;
  std::size_t quarantined_ = 0;
  std::unordered_map<std::uintptr_t, std::size_t> pinned_;
};

}  // namespace

std::unique_ptr<DeviceRuntime> simRuntime() { return std::make_unique<SimRuntime>(); }

}  // namespace anvil::cuda
