// ArgPack: a kernel's arguments as one trivially copyable value, so a launch can be erased to
// (bytes, face) and queued (the sim copies the bytes at enqueue), then unpacked by the face
// into the kernel call. Plain C++17: nvcc, the host compiler and the sim all include it.
#pragma once

#include <cstddef>
#include <type_traits>
#include <utility>

namespace anvil::cuda {

// head/tail recursion rather than std::tuple, which is not trivially copyable. The last
// member ends the recursion (no empty tail), so the size is that of a plain struct of the
// parameters: {const float*, float*, int64_t} is 24 bytes.
template <typename... Ts>
struct ArgPack;
template <>
struct ArgPack<> {};
template <typename T>
struct ArgPack<T> {
  T head;
};
template <typename T, typename U, typename... Ts>
struct ArgPack<T, U, Ts...> {
  T head;
  ArgPack<U, Ts...> tail;
};

// f(args...) with the pack's members in order.
template <typename F>
decltype(auto) applyPack(F&& f, const ArgPack<>&) {
  return f();
}
template <typename F, typename T, typename... Done>
decltype(auto) applyPack(F&& f, const ArgPack<T>& pack, const Done&... done) {
  return f(done..., pack.head);
}
template <typename F, typename T, typename U, typename... Ts, typename... Done>
decltype(auto) applyPack(F&& f, const ArgPack<T, U, Ts...>& pack, const Done&... done) {
  return applyPack(f, pack.tail, done..., pack.head);
}

namespace detail {
template <typename... Ts>
struct PackBuilder;
template <>
struct PackBuilder<> {
  static ArgPack<> make() { return {}; }
};
template <typename T>
struct PackBuilder<T> {
  static ArgPack<T> make(T x) { return {x}; }
};
template <typename T, typename U, typename... Ts>
struct PackBuilder<T, U, Ts...> {
  static ArgPack<T, U, Ts...> make(T x, U y, Ts... zs) {
    return {x, PackBuilder<U, Ts...>::make(y, zs...)};
  }
};
}  // namespace detail

// packArgs<const float*, float*, std::int64_t>(x, y, n): spell the kernel's parameter types
// exactly (the face reads the bytes back as those types).
template <typename... Ts, typename... Args>
ArgPack<Ts...> packArgs(Args&&... args) {
  static_assert(sizeof...(Ts) == sizeof...(Args), "one argument per kernel parameter");
  static_assert(std::is_trivially_copyable_v<ArgPack<Ts...>>,
                "kernel arguments must be trivially copyable (as CUDA requires)");
  return detail::PackBuilder<Ts...>::make(static_cast<Ts>(std::forward<Args>(args))...);
}

// The pack type of a kernel function pointer: PackOf<&kernel<float>>.
template <typename F>
struct KernelParams;
template <typename... P>
struct KernelParams<void (*)(P...)> {
  using Pack = ArgPack<P...>;
};
template <auto K>
using PackOf = typename KernelParams<decltype(K)>::Pack;

}  // namespace anvil::cuda
