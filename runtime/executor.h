// The executor: what runs a context's steps. Each ExecutionContext owns one; the CPU
// executor owns an intra-op thread pool (spin briefly, then sleep), so contexts on
// different threads run in parallel. The privacy modes (mpc, anon) plug in their own
// executors over the same plan. Kernels reach parallelism only through it.
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>

namespace anvil::runtime {

// A non-owning reference to a callable: passing a lambda never allocates (std::function
// may). The callable must outlive the call it is passed to.
template <typename Sig>
class FunctionRef;

template <typename R, typename... Args>
class FunctionRef<R(Args...)> {
 public:
  template <typename F, typename = std::enable_if_t<!std::is_same_v<std::decay_t<F>, FunctionRef>>>
  FunctionRef(F&& f)  // NOLINT: implicit, like std::function
      : obj_(const_cast<void*>(static_cast<const void*>(&f))), call_([](void* o, Args... a) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(o))(std::forward<Args>(a)...);
        }) {}
  R operator()(Args... a) const { return call_(obj_, std::forward<Args>(a)...); }

 private:
  void* obj_;
  R (*call_)(void*, Args...);
};

class Executor {
 public:
  virtual ~Executor() = default;
  // Intra-op threads (the caller's thread included).
  virtual int threads() const = 0;
  // Runs fn(0..n-1), spread over the pool; returns when all are done. Tasks must write
  // disjoint memory. A region entered from inside another runs serially on the caller.
  // The first exception thrown by a task is rethrown here.
  virtual void parallelFor(int64_t n, FunctionRef<void(int64_t)> fn) = 0;
};

// The CPU executor: a pool of threads-1 workers plus the calling thread. Workers spin for
// a short while after a region (a run's steps come back to back) and then sleep on a
// condition variable. No allocation after construction.
std::unique_ptr<Executor> makeCpuExecutor(int threads);

// Physical cores of this machine (hyper-threads not counted); at least 1.
int physicalCores();
// The default intra-op thread count: ANVIL_NUM_THREADS if set, else physicalCores().
int defaultThreads();

}  // namespace anvil::runtime
