// The scheduler of the host SIMT shim: one Boost.Context fiber per simulated CUDA thread, a
// per-block round-robin scheduler, a block barrier and a per-warp rendezvous for shuffles.
// Cooperative scheduling makes runs deterministic: thread 0 runs until it blocks, then
// thread 1, ..., so a missing __syncthreads usually shows up as a wrong number.
#include "cuda/sim/sim.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <boost/context/detail/fcontext.hpp>
#include <cstdio>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "anvil/error.h"

// Sanitizers must be told about stack switches, or they misreport (ASan) or crash (TSan).
#if defined(__SANITIZE_ADDRESS__)
#define ANVIL_SIM_ASAN 1
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(__SANITIZE_THREAD__)
#define ANVIL_SIM_TSAN 1
extern "C" {
void* __tsan_get_current_fiber();
void* __tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void* fiber);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
}
#endif

namespace anvil::cuda::sim {
namespace {

namespace bctx = boost::context::detail;
using ::anvil::detail::concat;
using detail::WarpOp;

constexpr unsigned kMaxThreadsPerBlock = 1024;
constexpr std::size_t kMaxDynamicShared = 227 * 1024;  // the sm_90 opt-in maximum

Options gOptions;
thread_local LaunchStats tlsStats;

const char* opName(WarpOp op) {
  switch (op) {
    case WarpOp::kSyncwarp:
      return "__syncwarp";
    case WarpOp::kShfl:
      return "__shfl_sync";
    case WarpOp::kShflUp:
      return "__shfl_up_sync";
    case WarpOp::kShflDown:
      return "__shfl_down_sync";
    case WarpOp::kShflXor:
      return "__shfl_xor_sync";
    case WarpOp::kBallot:
      return "__ballot_sync";
  }
  return "?";
}

std::string hex(unsigned v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string str(uint3 v) { return concat("(", v.x, ",", v.y, ",", v.z, ")"); }
std::string str(dim3 v) { return str(uint3{v.x, v.y, v.z}); }

std::size_t pageSize() {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// Stacks are mmap'ed once per OS thread and reused by every block it runs.
class StackPool {
 public:
  StackPool() = default;
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool() {
    release();
#if ANVIL_SIM_TSAN
    for (void* f : tsanFibers_) __tsan_destroy_fiber(f);
#endif
  }

  // Usable bytes of each stack: the requested size rounded up to pages.
  std::size_t size() const { return bytes_; }

  // Top of stack i (stacks grow down) for stacks of `bytes` usable bytes.
  void* top(std::size_t i, std::size_t bytes) {
    const std::size_t page = pageSize();
    bytes = (bytes + page - 1) / page * page;
    if (bytes != bytes_) {
      release();
      bytes_ = bytes;
    }
    while (stacks_.size() <= i) {
      void* base = mmap(nullptr, bytes + page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
      if (base == MAP_FAILED) {
        ANVIL_THROW(ErrorCode::kRuntimeError, "cuda sim: cannot map a ", bytes,
                    "-byte fiber stack");
      }
      mprotect(base, page, PROT_NONE);  // guard page below the stack
      stacks_.push_back(base);
    }
    return static_cast<char*>(stacks_[i]) + page + bytes;
  }

 private:
  void release() {
    const std::size_t page = pageSize();
    for (void* s : stacks_) munmap(s, bytes_ + page);
    stacks_.clear();
  }
  std::vector<void*> stacks_;
  std::size_t bytes_ = 0;

#if ANVIL_SIM_TSAN
 public:
  // TSan's fiber for simulated thread i; creating one per block costs a syscall-heavy
  // allocation, so they live as long as the stacks.
  void* tsanFiber(std::size_t i) {
    while (tsanFibers_.size() <= i) tsanFibers_.push_back(__tsan_create_fiber(0));
    return tsanFibers_[i];
  }

 private:
  std::vector<void*> tsanFibers_;
#endif
};

enum class Wait : std::uint8_t { kReady, kBlockBarrier, kWarp, kDone };

struct SimThread {
  bctx::fcontext_t ctx = nullptr;
  uint3 tid{};
  unsigned warp = 0;
  unsigned lane = 0;
  Wait wait = Wait::kReady;
  alignas(8) unsigned char result[8];
#if ANVIL_SIM_TSAN
  void* tsanFiber = nullptr;
#endif
#if ANVIL_SIM_ASAN
  const void* stackBottom = nullptr;
  std::size_t stackSize = 0;
#endif
};

// A warp collective in progress: the lanes of `mask` meet in `op`.
struct Group {
  unsigned mask = 0;
  unsigned arrived = 0;
  WarpOp op = WarpOp::kSyncwarp;
  int width = 32;
  std::size_t bytes = 0;
};

struct Warp {
  unsigned present = 0;  // lanes that exist (the last warp of a block may be partial)
  unsigned exited = 0;
  // Disjoint sub-warps may be in different collectives at once (independent thread
  // scheduling, sm_70+): one group per distinct mask. A waiting lane is in exactly one.
  std::vector<Group> groups;
  int args[32];
  alignas(8) unsigned char slots[32][8];
};

// The state of the block being run by this OS thread.
struct BlockRun {
  uint3 blockIdx{};
  dim3 blockDim{};
  dim3 gridDim{};
  std::vector<SimThread> threads;
  std::vector<Warp> warps;
  unsigned atBarrier = 0;
  unsigned done = 0;
  bctx::fcontext_t scheduler = nullptr;
  SimThread* current = nullptr;
  std::exception_ptr error;
  std::unique_ptr<unsigned char[]> shared;
  std::size_t sharedBytes = 0;
  unsigned char* sharedAligned = nullptr;
  detail::KernelThunk thunk = nullptr;
  const void* closure = nullptr;
#if ANVIL_SIM_TSAN
  void* tsanScheduler = nullptr;
#endif
#if ANVIL_SIM_ASAN
  const void* asanSchedulerBottom = nullptr;
  std::size_t asanSchedulerSize = 0;
#endif
};

thread_local BlockRun* tlsRun = nullptr;

std::string where(const BlockRun& run, const SimThread& t) {
  return concat("block ", str(run.blockIdx), " thread ", str(t.tid), " (warp ", t.warp, " lane ",
                t.lane, ")");
}

BlockRun& currentRun(const char* what) {
  if (tlsRun == nullptr || tlsRun->current == nullptr) {
    ANVIL_THROW(ErrorCode::kInternal, "cuda sim: ", what, " called outside a simulated kernel");
  }
  return *tlsRun;
}

// Scheduler side: run fiber t until it blocks or ends.
void resumeFiber(BlockRun& run, SimThread& t) {
#if ANVIL_SIM_TSAN
  __tsan_switch_to_fiber(t.tsanFiber, 0);
#endif
#if ANVIL_SIM_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, t.stackBottom, t.stackSize);
#endif
  bctx::transfer_t back = bctx::jump_fcontext(t.ctx, &run);
#if ANVIL_SIM_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  t.ctx = back.fctx;
}

// Fiber side: give control back to the scheduler; returns when resumed, unless `finished`.
void yieldToScheduler(BlockRun& run, bool finished = false) {
#if ANVIL_SIM_TSAN
  __tsan_switch_to_fiber(run.tsanScheduler, 0);
#endif
#if ANVIL_SIM_ASAN
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(finished ? nullptr : &fake, run.asanSchedulerBottom,
                                 run.asanSchedulerSize);
#endif
  bctx::transfer_t t = bctx::jump_fcontext(run.scheduler, nullptr);
#if ANVIL_SIM_ASAN
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#endif
  run.scheduler = t.fctx;
}

void fiberMain(bctx::transfer_t t) {
  BlockRun& run = *static_cast<BlockRun*>(t.data);
#if ANVIL_SIM_ASAN
  __sanitizer_finish_switch_fiber(nullptr, &run.asanSchedulerBottom, &run.asanSchedulerSize);
#endif
  run.scheduler = t.fctx;
  SimThread& self = *run.current;
  try {
    run.thunk(run.closure);
  } catch (const Error&) {
    if (!run.error) run.error = std::current_exception();
  } catch (const std::exception& e) {
    if (!run.error) {
      run.error = std::make_exception_ptr(Error(
          ErrorCode::kRuntimeError, concat("cuda sim: ", where(run, self), " threw: ", e.what())));
    }
  } catch (...) {
    if (!run.error) {
      run.error = std::make_exception_ptr(
          Error(ErrorCode::kRuntimeError,
                concat("cuda sim: ", where(run, self), " threw a non-std exception")));
    }
  }
  self.wait = Wait::kDone;
  ++run.done;
  run.warps[self.warp].exited |= 1u << self.lane;
  yieldToScheduler(run, /*finished=*/true);
  std::abort();  // a finished fiber is never resumed
}

[[noreturn]] void fail(const BlockRun& run, const SimThread& t, const std::string& msg) {
  ANVIL_THROW(ErrorCode::kRuntimeError, "cuda sim: ", where(run, t), ": ", msg);
}

// Lane l's source lane for a shuffle, following PTX shfl.sync: out-of-segment reads return
// the lane's own value.
unsigned sourceLane(WarpOp op, unsigned lane, int arg, int width) {
  const unsigned w = static_cast<unsigned>(width);
  const unsigned base = lane & ~(w - 1);
  const unsigned last = base + w - 1;
  switch (op) {
    case WarpOp::kShfl:
      return base + (static_cast<unsigned>(arg) & (w - 1));
    case WarpOp::kShflUp:
      return arg >= 0 && static_cast<unsigned>(arg) <= lane - base ? lane - arg : lane;
    case WarpOp::kShflDown:
      return arg >= 0 && lane + static_cast<unsigned>(arg) <= last ? lane + arg : lane;
    case WarpOp::kShflXor: {
      const unsigned j = lane ^ (static_cast<unsigned>(arg) & 31u);
      return j <= last ? j : lane;
    }
    default:
      return lane;
  }
}

// Run by the last lane to arrive: compute every lane's result, then release them.
void completeGroup(BlockRun& run, Warp& w, const Group& g, unsigned warpIndex, SimThread& self) {
  SimThread* lanes = &run.threads[warpIndex * 32];
  if (g.op == WarpOp::kBallot) {
    unsigned ballot = 0;
    for (unsigned l = 0; l < 32; ++l) {
      int p;
      if ((g.mask >> l) & 1u) {
        std::memcpy(&p, w.slots[l], sizeof p);
        if (p) ballot |= 1u << l;
      }
    }
    for (unsigned l = 0; l < 32; ++l) {
      if ((g.mask >> l) & 1u) std::memcpy(lanes[l].result, &ballot, sizeof ballot);
    }
  } else {
    for (unsigned l = 0; l < 32; ++l) {
      if (!((g.mask >> l) & 1u)) continue;
      const unsigned j = sourceLane(g.op, l, w.args[l], g.width);
      if (!((g.mask >> j) & 1u)) {
        fail(run, lanes[l],
             concat(opName(g.op), " reads lane ", j, ", which is not in mask ", hex(g.mask),
                    " (its value is undefined on a GPU)"));
      }
      std::memcpy(lanes[l].result, w.slots[j], g.bytes);
    }
  }
  for (unsigned l = 0; l < 32; ++l) {
    if (((g.mask >> l) & 1u) && &lanes[l] != &self) lanes[l].wait = Wait::kReady;
  }
}

std::string describeDeadlock(const BlockRun& run) {
  std::string msg = concat("cuda sim: deadlock in block ", str(run.blockIdx), " of ",
                           run.threads.size(), " threads: ");
  const unsigned exited = run.done;
  if (run.atBarrier > 0) {
    msg += concat(run.atBarrier, " threads wait at __syncthreads");
    if (exited > 0) {
      msg += concat(" but ", exited,
                    " threads exited (a __syncthreads that not every thread reaches)");
    }
    msg += "; ";
  }
  for (std::size_t i = 0; i < run.warps.size(); ++i) {
    const Warp& w = run.warps[i];
    for (const Group& g : w.groups) {
      msg += concat("warp ", i, ": lanes ", hex(g.arrived), " wait in ", opName(g.op), "(mask ",
                    hex(g.mask), ")");
      const unsigned missing = g.mask & ~g.arrived;
      if (missing & w.exited) msg += concat(", lanes ", hex(missing & w.exited), " exited");
      unsigned atSync = 0;
      for (unsigned l = 0; l < 32; ++l) {
        const std::size_t t = i * 32 + l;
        if (((missing >> l) & 1u) && t < run.threads.size() &&
            run.threads[t].wait == Wait::kBlockBarrier) {
          atSync |= 1u << l;
        }
      }
      if (atSync) msg += concat(", lanes ", hex(atSync), " wait at __syncthreads");
      msg += "; ";
    }
  }
  return msg;
}

// Runs one block to completion on this OS thread.
void runBlock(BlockRun& run, StackPool& stacks, std::size_t stackBytes, LaunchStats& stats) {
  const unsigned n = static_cast<unsigned>(run.threads.size());
  run.atBarrier = 0;
  run.done = 0;
  run.error = nullptr;
  for (Warp& w : run.warps) {
    w.groups.clear();
    w.exited = 0;
  }
  if (run.sharedBytes > 0) std::memset(run.sharedAligned, 0xff, run.sharedBytes);
  for (unsigned i = 0; i < n; ++i) {
    SimThread& t = run.threads[i];
    void* top = stacks.top(i, stackBytes);
#if ANVIL_SIM_ASAN
    // An abandoned fiber (after an error) leaves its redzones poisoned.
    t.stackBottom = static_cast<char*>(top) - stacks.size();
    t.stackSize = stacks.size();
    ASAN_UNPOISON_MEMORY_REGION(t.stackBottom, t.stackSize);
#endif
    t.ctx = bctx::make_fcontext(top, stacks.size(), fiberMain);
    t.wait = Wait::kReady;
  }
#if ANVIL_SIM_TSAN
  run.tsanScheduler = __tsan_get_current_fiber();
  for (unsigned i = 0; i < n; ++i) run.threads[i].tsanFiber = stacks.tsanFiber(i);
#endif
  tlsRun = &run;
  ::blockIdx = run.blockIdx;
  ::blockDim = run.blockDim;
  ::gridDim = run.gridDim;
  struct Reset {
    BlockRun& run;
    ~Reset() {
      run.current = nullptr;
      tlsRun = nullptr;
    }
  } reset{run};

  while (run.done < n) {
    bool progressed = false;
    for (SimThread& t : run.threads) {
      if (t.wait != Wait::kReady) continue;
      run.current = &t;
      ::threadIdx = t.tid;
      resumeFiber(run, t);
      ++stats.switches;
      progressed = true;
      // Abandon the other fibers: their stacks are reused, their frames never unwound.
      if (run.error) std::rethrow_exception(run.error);
    }
    if (!progressed) ANVIL_THROW(ErrorCode::kRuntimeError, describeDeadlock(run));
  }
}

void validateLaunch(dim3 grid, dim3 block, std::size_t sharedBytes) {
  const std::uint64_t threads = std::uint64_t(block.x) * block.y * block.z;
  if (threads == 0 || threads > kMaxThreadsPerBlock || block.z > 64) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: invalid launch configuration: block ",
                str(block), " has ", threads, " threads; a block needs 1 to ", kMaxThreadsPerBlock,
                " threads and blockDim.z <= 64");
  }
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7fffffffu || grid.y > 65535 ||
      grid.z > 65535) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: invalid launch configuration: grid ",
                str(grid), "; gridDim.x must be 1..2^31-1, y and z 1..65535");
  }
  if (sharedBytes > kMaxDynamicShared) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: ", sharedBytes,
                " bytes of dynamic shared memory exceed ", kMaxDynamicShared,
                " (the sm_90 opt-in maximum)");
  }
}

// Per OS thread: the block state and the stacks, reused across launches.
struct Worker {
  BlockRun run;
  StackPool stacks;

  void prepare(dim3 grid, dim3 block, std::size_t sharedBytes, detail::KernelThunk thunk,
               const void* closure) {
    const unsigned n = block.x * block.y * block.z;
    run.threads.resize(n);
    for (unsigned i = 0; i < n; ++i) {
      SimThread& t = run.threads[i];
      t.tid = uint3{i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
      t.warp = i / 32;
      t.lane = i % 32;
    }
    run.warps.assign((n + 31) / 32, Warp{});
    for (unsigned w = 0; w < run.warps.size(); ++w) {
      const unsigned lanes = std::min(32u, n - w * 32);
      run.warps[w].present = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1;
    }
    run.blockDim = block;
    run.gridDim = grid;
    if (sharedBytes > run.sharedBytes || !run.shared) {
      run.shared.reset(new unsigned char[sharedBytes + 16]);
    }
    run.sharedBytes = sharedBytes;
    run.sharedAligned = reinterpret_cast<unsigned char*>(
        (reinterpret_cast<std::uintptr_t>(run.shared.get()) + 15) & ~std::uintptr_t(15));
    run.thunk = thunk;
    run.closure = closure;
  }

  void runBlockAt(std::uint64_t linear, dim3 grid, std::size_t stackBytes, LaunchStats& stats) {
    run.blockIdx = uint3{static_cast<unsigned>(linear % grid.x),
                         static_cast<unsigned>((linear / grid.x) % grid.y),
                         static_cast<unsigned>(linear / (std::uint64_t(grid.x) * grid.y))};
    runBlock(run, stacks, stackBytes, stats);
    ++stats.blocks;
    stats.threads += run.threads.size();
  }
};

Worker& threadWorker() {
  thread_local Worker worker;
  return worker;
}

}  // namespace

void setOptions(const Options& options) {
  if (options.workers == 0) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: workers must be at least 1");
  }
  if (options.stackBytes < 16 * 1024) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "cuda sim: stackBytes ", options.stackBytes,
                " is below the 16 KiB minimum");
  }
  gOptions = options;
}

Options options() { return gOptions; }

LaunchStats lastLaunchStats() { return tlsStats; }

void* dynamicSharedMemory() { return currentRun("dynamicSharedMemory").sharedAligned; }

namespace detail {

void launchErased(dim3 grid, dim3 block, std::size_t sharedBytes, KernelThunk thunk,
                  const void* closure) {
  if (tlsRun != nullptr) {
    ANVIL_THROW(ErrorCode::kUnsupported,
                "cuda sim: a launch from inside a simulated kernel (dynamic parallelism)");
  }
  validateLaunch(grid, block, sharedBytes);
  const Options opts = gOptions;
  const std::uint64_t blocks = std::uint64_t(grid.x) * grid.y * grid.z;
  tlsStats = LaunchStats{};

  const unsigned workers = static_cast<unsigned>(std::min<std::uint64_t>(opts.workers, blocks));
  if (workers <= 1) {
    Worker& w = threadWorker();
    w.prepare(grid, block, sharedBytes, thunk, closure);
    for (std::uint64_t b = 0; b < blocks; ++b) w.runBlockAt(b, grid, opts.stackBytes, tlsStats);
    return;
  }

  // Blocks are handed out one at a time; the first error stops the hand-out.
  std::atomic<std::uint64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex errorMutex;
  std::exception_ptr firstError;
  std::atomic<std::uint64_t> switches{0}, threads{0};
  auto work = [&] {
    LaunchStats mine;
    try {
      Worker& w = threadWorker();
      w.prepare(grid, block, sharedBytes, thunk, closure);
      for (std::uint64_t b; !failed && (b = next.fetch_add(1)) < blocks;) {
        w.runBlockAt(b, grid, opts.stackBytes, mine);
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(errorMutex);
      if (!firstError) firstError = std::current_exception();
      failed = true;
    }
    switches += mine.switches;
    threads += mine.threads;
  };
  std::vector<std::thread> pool;
  pool.reserve(workers - 1);
  for (unsigned i = 1; i < workers; ++i) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  tlsStats = LaunchStats{blocks, threads.load(), switches.load()};
  if (firstError) std::rethrow_exception(firstError);
}

void syncthreads() {
  BlockRun& run = currentRun("__syncthreads");
  SimThread& self = *run.current;
  if (++run.atBarrier == run.threads.size()) {
    run.atBarrier = 0;
    for (SimThread& t : run.threads) {
      if (t.wait == Wait::kBlockBarrier) t.wait = Wait::kReady;
    }
    return;
  }
  self.wait = Wait::kBlockBarrier;
  yieldToScheduler(run);
}

void warpCollective(WarpOp op, unsigned mask, const void* value, std::size_t bytes, int arg,
                    int width, void* result) {
  BlockRun& run = currentRun(opName(op));
  SimThread& self = *run.current;
  Warp& w = run.warps[self.warp];
  const unsigned bit = 1u << self.lane;
  if (!(mask & bit)) {
    fail(run, self,
         concat(opName(op), " with mask ", hex(mask), ", which does not include the calling lane"));
  }
  if (mask & ~w.present) {
    fail(run, self,
         concat(opName(op), " with mask ", hex(mask), " names lanes ", hex(mask & ~w.present),
                " that do not exist (the block has ", run.threads.size(), " threads)"));
  }
  if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
    fail(run, self,
         concat(opName(op), " with width ", width, "; width must be a power of 2 from 1 to 32"));
  }
  auto it = std::find_if(w.groups.begin(), w.groups.end(),
                         [mask](const Group& g) { return g.mask == mask; });
  if (it == w.groups.end()) {
    w.groups.push_back(Group{mask, 0, op, width, bytes});
    it = w.groups.end() - 1;
  } else if (it->op != op || it->width != width || it->bytes != bytes) {
    fail(run, self,
         concat("calls ", opName(op), "(mask ", hex(mask), ", width ", width, ") while lanes ",
                hex(it->arrived), " of its warp wait in ", opName(it->op), "(mask ", hex(it->mask),
                ", width ", it->width, "): divergent warp collectives"));
  }
  std::memcpy(w.slots[self.lane], value, bytes);
  w.args[self.lane] = arg;
  it->arrived |= bit;
  if (it->arrived == it->mask) {
    const Group done = *it;
    w.groups.erase(it);
    completeGroup(run, w, done, self.warp, self);
  } else {
    self.wait = Wait::kWarp;
    yieldToScheduler(run);
  }
  std::memcpy(result, self.result, bytes);
}

}  // namespace detail
}  // namespace anvil::cuda::sim
