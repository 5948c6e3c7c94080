// The host emulation of the nvcuda::wmma subset our tensor-core kernels use (16x16x16
// fragments of __half / __nv_bfloat16 operands with f32 accumulators, and of signed char
// operands with int accumulators, sm_72's integer shape), so they run in cuda/sim.
// Every lane holds the whole 16x16 tile (num_elements is 256 here, 8 on a GPU): kernels may
// only apply the same operation to every element of a fragment, never rely on which element
// a lane holds. Each call is warp-collective as on a GPU: all 32 lanes must make the same
// call with the same pointer and ldm, or the sim reports a divergent warp.
#pragma once

#if defined(__CUDACC__)
#error "cuda/sim/wmma.h is for the host compiler; nvcc has <mma.h>"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "anvil/error.h"
#include "cuda/sim/sim.h"

namespace nvcuda::wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

namespace detail {

// The tile a fragment holds: op(A) is M x K, op(B) K x N, the accumulator M x N.
template <typename Use, int M, int N, int K>
struct TileOf;
template <int M, int N, int K>
struct TileOf<matrix_a, M, N, K> {
  static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct TileOf<matrix_b, M, N, K> {
  static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct TileOf<accumulator, M, N, K> {
  static constexpr int rows = M, cols = N;
};

inline float widen(float x) { return x; }
inline float widen(__half x) { return __half2float(x); }
inline float widen(__nv_bfloat16 x) { return __bfloat162float(x); }

// The accumulator an operand type multiplies into: f32 for the float types, s32 for s8.
template <typename T>
using AccOf = std::conditional_t<std::is_same_v<T, signed char>, int, float>;

// One wmma call as a warp rendezvous. The sim tells collectives apart by (op, width, bytes):
// __syncwarp with a byte count no plain __syncwarp (4) uses, one per call kind, so a lane in
// load_matrix_sync while another is in mma_sync is reported as divergent. Then lane 0's
// `key` (pointer, ldm, layout) is shuffled to every lane: a GPU takes these from the warp as
// a whole, so a lane that passes different ones is a kernel bug.
enum class Call : int { kFill = 5, kLoad = 6, kMma = 7, kStore = 8 };
inline void rendezvous(Call call, const char* what, std::uint64_t key = 0) {
  namespace simd = ::anvil::cuda::sim::detail;
  unsigned char unused[8] = {};
  simd::warpCollective(simd::WarpOp::kSyncwarp, 0xffffffffu, unused, static_cast<std::size_t>(call),
                       0, 32, unused);
  if (call == Call::kMma || call == Call::kFill) return;
  const std::uint64_t lane0 = simd::shuffle(simd::WarpOp::kShfl, 0xffffffffu, key, 0, 32);
  if (lane0 != key) {
    ANVIL_THROW(::anvil::ErrorCode::kInvalidArgument, "nvcuda::wmma::", what,
                ": the lanes of a warp pass different pointers, ldm or layouts");
  }
}

// What the GPU requires of a fragment load or store: a 256-bit aligned pointer and a row
// stride of a multiple of 16 bytes that covers the 16 stored columns.
template <typename T>
std::uint64_t checkedKey(const char* what, const T* p, unsigned ldm, int layout) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  if (p == nullptr || addr % 32 != 0) {
    ANVIL_THROW(::anvil::ErrorCode::kInvalidArgument, "nvcuda::wmma::", what, ": pointer ", p,
                " is not 256-bit aligned");
  }
  if (ldm < 16 || (ldm * sizeof(T)) % 16 != 0) {
    ANVIL_THROW(::anvil::ErrorCode::kInvalidArgument, "nvcuda::wmma::", what, ": ldm ", ldm,
                " is not a multiple of ", 16 / sizeof(T), " elements of at least 16");
  }
  return static_cast<std::uint64_t>(addr) ^ (static_cast<std::uint64_t>(ldm) << 40) ^
         (static_cast<std::uint64_t>(layout) << 63);
}

// The last product each warp's lanes computed, by content. Every lane holds the whole tile,
// so the 32 lanes of a warp multiply the same fragments: the first computes, the others find
// identical inputs here and copy the result (32x less arithmetic, the sim's main cost in these
// kernels). A lane whose fragments differ computes its own; per OS thread, so per running block.
template <typename T, int M, int N, int K>
struct MmaMemo {
  bool valid = false;
  T a[M * K];
  T b[K * N];
  AccOf<T> c[M * N];
  AccOf<T> d[M * N];
};
template <typename T, int M, int N, int K>
MmaMemo<T, M, N, K>& memoOfWarp() {
  constexpr unsigned kSlots = 8;
  thread_local MmaMemo<T, M, N, K> slots[kSlots];
  const unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  return slots[(linear / 32) % kSlots];
}

}  // namespace detail

// x holds the whole tile row-major: x[r * cols + c].
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  static_assert(M == 16 && N == 16 && K == 16, "the sim emulates the 16x16x16 shape only");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float> || std::is_same_v<T, int>
                                                 : std::is_same_v<T, __half> ||
                                                       std::is_same_v<T, __nv_bfloat16> ||
                                                       std::is_same_v<T, signed char>,
                "the sim emulates __half / __nv_bfloat16 operands with f32 accumulators and "
                "signed char operands with int accumulators");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_void_v<Layout>
                                                 : std::is_same_v<Layout, row_major> ||
                                                       std::is_same_v<Layout, col_major>,
                "operand fragments are row_major or col_major; accumulators have no layout");

 public:
  using element_type = T;
  using storage_element_type = T;
  static constexpr int rows = detail::TileOf<Use, M, N, K>::rows;
  static constexpr int cols = detail::TileOf<Use, M, N, K>::cols;
  static constexpr int num_elements = rows * cols;
  T x[num_elements];
};

template <typename Use, int M, int N, int K, typename T, typename Layout>
void fill_fragment(fragment<Use, M, N, K, T, Layout>& f, const T& v) {
  detail::rendezvous(detail::Call::kFill, "fill_fragment");
  for (T& e : f.x) e = v;
}

// An operand tile: element (r, c) at p[r * ldm + c] (row_major) or p[c * ldm + r].
template <typename Use, int M, int N, int K, typename T, typename Layout>
void load_matrix_sync(fragment<Use, M, N, K, T, Layout>& f, const T* p, unsigned ldm) {
  static_assert(!std::is_same_v<Use, accumulator>, "an accumulator load takes a layout_t");
  constexpr bool kRow = std::is_same_v<Layout, row_major>;
  detail::rendezvous(detail::Call::kLoad, "load_matrix_sync",
                     detail::checkedKey("load_matrix_sync", p, ldm, kRow ? 0 : 1));
  using Frag = fragment<Use, M, N, K, T, Layout>;
  for (int r = 0; r < Frag::rows; ++r) {
    for (int c = 0; c < Frag::cols; ++c) {
      f.x[r * Frag::cols + c] = kRow ? p[r * ldm + c] : p[c * ldm + r];
    }
  }
}

template <int M, int N, int K, typename Acc>
void load_matrix_sync(fragment<accumulator, M, N, K, Acc>& f, const Acc* p, unsigned ldm,
                      layout_t layout) {
  detail::rendezvous(detail::Call::kLoad, "load_matrix_sync",
                     detail::checkedKey("load_matrix_sync", p, ldm, layout));
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < N; ++c) {
      f.x[r * N + c] = layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r];
    }
  }
}

template <int M, int N, int K, typename Acc>
void store_matrix_sync(Acc* p, const fragment<accumulator, M, N, K, Acc>& f, unsigned ldm,
                       layout_t layout) {
  detail::rendezvous(detail::Call::kStore, "store_matrix_sync",
                     detail::checkedKey("store_matrix_sync", p, ldm, layout));
  for (int r = 0; r < M; ++r) {
    for (int c = 0; c < N; ++c) {
      (layout == mem_row_major ? p[r * ldm + c] : p[c * ldm + r]) = f.x[r * N + c];
    }
  }
}

// d = a . b + c with f32 accumulation. Products of two __half or two __nv_bfloat16 are exact
// in f32; the sim adds them in k order (a GPU's order and internal precision differ, within
// f32 rounding of the sum). d may be c.
template <int M, int N, int K, typename T, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, M, N, K, float>& d,
              const fragment<matrix_a, M, N, K, T, LayoutA>& a,
              const fragment<matrix_b, M, N, K, T, LayoutB>& b,
              const fragment<accumulator, M, N, K, float>& c) {
  static_assert(!std::is_same_v<T, signed char>, "s8 operands accumulate into int fragments");
  detail::rendezvous(detail::Call::kMma, "mma_sync");
  detail::MmaMemo<T, M, N, K>& memo = detail::memoOfWarp<T, M, N, K>();
  if (memo.valid && std::memcmp(memo.a, a.x, sizeof memo.a) == 0 &&
      std::memcmp(memo.b, b.x, sizeof memo.b) == 0 && std::memcmp(memo.c, c.x, sizeof memo.c) == 0) {
    std::memcpy(d.x, memo.d, sizeof memo.d);
    return;
  }
  float out[M * N];
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      float s = c.x[i * N + j];
      for (int k = 0; k < K; ++k) {
        s = std::fma(detail::widen(a.x[i * K + k]), detail::widen(b.x[k * N + j]), s);
      }
      out[i * N + j] = s;
    }
  }
  std::memcpy(memo.a, a.x, sizeof memo.a);
  std::memcpy(memo.b, b.x, sizeof memo.b);
  std::memcpy(memo.c, c.x, sizeof memo.c);  // before d: d may be c
  std::memcpy(memo.d, out, sizeof memo.d);
  memo.valid = true;
  std::memcpy(d.x, out, sizeof out);
}

// d = a . b + c for s8 operands: s32 accumulation, exact (the sim sums in int64 and wraps to
// int32 as the hardware's adders do; the kernels keep K small enough that no sum wraps, so
// the result is the exact integer dot product whatever the order). d may be c.
template <int M, int N, int K, typename LayoutA, typename LayoutB>
void mma_sync(fragment<accumulator, M, N, K, int>& d,
              const fragment<matrix_a, M, N, K, signed char, LayoutA>& a,
              const fragment<matrix_b, M, N, K, signed char, LayoutB>& b,
              const fragment<accumulator, M, N, K, int>& c) {
  detail::rendezvous(detail::Call::kMma, "mma_sync");
  detail::MmaMemo<signed char, M, N, K>& memo = detail::memoOfWarp<signed char, M, N, K>();
  if (memo.valid && std::memcmp(memo.a, a.x, sizeof memo.a) == 0 &&
      std::memcmp(memo.b, b.x, sizeof memo.b) == 0 && std::memcmp(memo.c, c.x, sizeof memo.c) == 0) {
    std::memcpy(d.x, memo.d, sizeof memo.d);
    return;
  }
  int out[M * N];
  for (int i = 0; i < M; ++i) {
    for (int j = 0; j < N; ++j) {
      std::int64_t s = c.x[i * N + j];
      for (int k = 0; k < K; ++k) s += std::int64_t{a.x[i * K + k]} * b.x[k * N + j];
      out[i * N + j] = static_cast<int>(static_cast<std::uint32_t>(s));
    }
  }
  std::memcpy(memo.a, a.x, sizeof memo.a);
  std::memcpy(memo.b, b.x, sizeof memo.b);
  std::memcpy(memo.c, c.x, sizeof memo.c);  // before d: d may be c
  std::memcpy(memo.d, out, sizeof memo.d);
  memo.valid = true;
  std::memcpy(d.x, out, sizeof out);
}

}  // namespace nvcuda::wmma
