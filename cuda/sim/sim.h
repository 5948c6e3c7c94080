// The host SIMT shim: lets the kernel templates in cuda/kernels/*.cuh compile with a host
// compiler and run on the CPU, one fiber per CUDA thread, so tests check their numbers on
// machines without a GPU. It models threads, blocks, __shared__, __syncthreads, warp
// shuffles/votes and atomics; it does not model timing, memory spaces or the warp lockstep.
#pragma once

#if defined(__CUDACC__)
#error "cuda/sim/sim.h is for the host compiler; nvcc builds the real kernels"
#endif

// cuda_fp16.h compiles in host code: it brings __half with host conversions, and through
// vector_types.h dim3/uint3 and crt/host_defines.h (__host__/__device__/__global__ empty).
#include <cuda_fp16.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

namespace anvil::cuda::sim {

struct Options {
  // OS threads that run blocks in parallel (the caller is one of them). Blocks are
  // independent in CUDA, so any value must give the same results for a correct kernel.
  unsigned workers = 1;
  // Stack of each simulated thread; the page below it is a guard, so overflow faults.
  std::size_t stackBytes = 64 * 1024;
};
// Not synchronized with launches: set it before launching, from one thread.
void setOptions(const Options& options);
Options options();

// What the last launch on this OS thread did, for tests of the shim itself.
struct LaunchStats {
  std::uint64_t blocks = 0;
  std::uint64_t threads = 0;
  std::uint64_t switches = 0;  // fiber resumptions
};
LaunchStats lastLaunchStats();

// The dynamic shared memory of the running block (the launch's sharedBytes), 16-byte
// aligned, filled with 0xff bytes (NaN as floats) at each block start to expose reads of
// memory nobody wrote.
void* dynamicSharedMemory();

namespace detail {

using KernelThunk = void (*)(const void* closure);
void launchErased(dim3 grid, dim3 block, std::size_t sharedBytes, KernelThunk thunk,
                  const void* closure);

enum class WarpOp : std::uint8_t { kSyncwarp, kShfl, kShflUp, kShflDown, kShflXor, kBallot };
// One warp-wide rendezvous: every lane named in mask must make the same call; the last one
// to arrive computes all results. value/result hold up to 8 bytes.
void warpCollective(WarpOp op, unsigned mask, const void* value, std::size_t bytes, int arg,
                    int width, void* result);
void syncthreads();

template <typename T>
T shuffle(WarpOp op, unsigned mask, T var, int arg, int width) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>,
                "warp shuffles move at most 8 trivially copyable bytes");
  T out;
  warpCollective(op, mask, &var, sizeof(T), arg, width, &out);
  return out;
}

template <typename T>
T atomicMaxMin(T* address, T val, bool isMax) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while ((isMax ? old < val : val < old) && !ref.compare_exchange_weak(old, val)) {
  }
  return old;
}

}  // namespace detail

// Runs kernel over grid x block simulated threads and returns when all have finished, like
// kernel<<<grid, block, sharedBytes>>>(args...) followed by a synchronize. Arguments are
// converted to the kernel's parameter types once and passed by value to every thread.
// A kernel error (deadlock, divergent barrier, bad shuffle mask, an exception) is thrown
// as anvil::Error naming the block and thread.
template <typename... Params, typename... Args>
void launch(dim3 grid, dim3 block, std::size_t sharedBytes, void (*kernel)(Params...),
            Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "wrong number of kernel arguments");
  struct Closure {
    void (*kernel)(Params...);
    std::tuple<std::decay_t<Params>...> args;
  };
  const Closure closure{kernel, std::tuple<std::decay_t<Params>...>(std::forward<Args>(args)...)};
  detail::launchErased(
      grid, block, sharedBytes,
      [](const void* p) {
        const auto* c = static_cast<const Closure*>(p);
        std::apply(c->kernel, c->args);
      },
      &closure);
}

}  // namespace anvil::cuda::sim

// ---- the CUDA built-ins, for kernel code compiled by the host compiler ----

#undef __shared__
// One instance per OS thread = per running block; kernels must not write `static __shared__`.
#define __shared__ static thread_local
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

// Variables rather than macros, so that members of the same name elsewhere are untouched.
// The scheduler sets threadIdx before it resumes a fiber and the others per block; all fibers
// of a block run on the OS thread that owns the block, so thread_local is exact. Kernels
// must treat them as read-only (nvcc, which builds the same kernels, enforces it).
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
inline constexpr int warpSize = 32;

inline void __syncthreads() { ::anvil::cuda::sim::detail::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) {
  int unused = 0;
  ::anvil::cuda::sim::detail::warpCollective(::anvil::cuda::sim::detail::WarpOp::kSyncwarp, mask,
                                             &unused, sizeof unused, 0, 32, &unused);
}
// Memory fences: a block runs on one OS thread, blocks on others.
inline void __threadfence_block() { std::atomic_signal_fence(std::memory_order_seq_cst); }
inline void __threadfence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

template <typename T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
  return ::anvil::cuda::sim::detail::shuffle(::anvil::cuda::sim::detail::WarpOp::kShfl, mask, var,
                                             srcLane, width);
}
template <typename T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::anvil::cuda::sim::detail::shuffle(::anvil::cuda::sim::detail::WarpOp::kShflUp, mask, var,
                                             static_cast<int>(delta), width);
}
template <typename T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  return ::anvil::cuda::sim::detail::shuffle(::anvil::cuda::sim::detail::WarpOp::kShflDown, mask,
                                             var, static_cast<int>(delta), width);
}
template <typename T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
  return ::anvil::cuda::sim::detail::shuffle(::anvil::cuda::sim::detail::WarpOp::kShflXor, mask,
                                             var, laneMask, width);
}
inline unsigned __ballot_sync(unsigned mask, int predicate) {
  unsigned out = 0;
  const int p = predicate != 0;
  ::anvil::cuda::sim::detail::warpCollective(::anvil::cuda::sim::detail::WarpOp::kBallot, mask, &p,
                                             sizeof p, 0, 32, &out);
  return out;
}
inline int __any_sync(unsigned mask, int predicate) { return __ballot_sync(mask, predicate) != 0; }
inline int __all_sync(unsigned mask, int predicate) {
  return __ballot_sync(mask, predicate) == mask;
}

// Atomics: exact across blocks running on different OS threads.
template <typename T>
T atomicAdd(T* address, T val) {
  return std::atomic_ref<T>(*address).fetch_add(val);
}
template <typename T>
T atomicSub(T* address, T val) {
  return std::atomic_ref<T>(*address).fetch_sub(val);
}
template <typename T>
T atomicExch(T* address, T val) {
  return std::atomic_ref<T>(*address).exchange(val);
}
template <typename T>
T atomicCAS(T* address, T compare, T val) {
  std::atomic_ref<T>(*address).compare_exchange_strong(compare, val);
  return compare;
}
template <typename T>
T atomicMax(T* address, T val) {
  return ::anvil::cuda::sim::detail::atomicMaxMin(address, val, true);
}
template <typename T>
T atomicMin(T* address, T val) {
  return ::anvil::cuda::sim::detail::atomicMaxMin(address, val, false);
}
template <typename T>
T atomicAnd(T* address, T val) {
  return std::atomic_ref<T>(*address).fetch_and(val);
}
template <typename T>
T atomicOr(T* address, T val) {
  return std::atomic_ref<T>(*address).fetch_or(val);
}
template <typename T>
T atomicXor(T* address, T val) {
  return std::atomic_ref<T>(*address).fetch_xor(val);
}

// Device math that has no host declaration. expf, tanhf, erff, ... come from <cmath>; the
// fast intrinsics map to the accurate host functions (tests then bound the error of the
// accurate path; the device's __expf is looser).
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x >= 1.0f ? 1.0f : (x > 0.0f ? x : 0.0f); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __clz(int x) { return std::countl_zero(static_cast<unsigned>(x)); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }
template <typename T>
T __ldg(const T* p) {
  return *p;
}
