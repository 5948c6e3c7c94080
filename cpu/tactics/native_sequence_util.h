// Shared by the native sequence-family kernels (attention, fused elementwise chains,
// recurrent layers): their registration hooks and the small helpers they use to carve a
// step's workspace without allocating.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "runtime/kernel.h"

namespace anvil::runtime::seq {

void registerAttentionKernels(Kernels& k);          // native_sequence_attention.cpp
void registerFusedElementwiseKernels(Kernels& k);   // native_sequence_elementwise.cpp
void registerRecurrentKernels(Kernels& k);          // native_sequence_rnn.cpp

constexpr size_t kAlign = 64;
inline constexpr size_t alignUp(size_t n, size_t a = kAlign) { return (n + a - 1) / a * a; }
inline constexpr int64_t roundUp(int64_t n, int64_t m) { return (n + m - 1) / m * m; }

// Hands out 64-byte aligned pieces of a workspace in order; the same sequence of takes
// at prepare (base null) gives the byte count run() will need.
class Carver {
 public:
  explicit Carver(void* base = nullptr) : base_(static_cast<char*>(base)) {}
  template <typename T>
  T* take(int64_t count) {
    T* p = base_ ? reinterpret_cast<T*>(base_ + used_) : nullptr;
    used_ += alignUp(size_t(count) * sizeof(T));
    return p;
  }
  size_t used() const { return used_; }

 private:
  char* base_;
  size_t used_ = 0;
};

// How many tasks to split `work` (multiply-adds or element-ops) into: at most `most`, and
// few enough that each gets about kMinTaskWork (waking a worker costs microseconds; a
// tiny step runs faster on the caller alone). Bits never depend on it: every kernel
// computes each element in one task, in a fixed order.
constexpr int64_t kMinTaskWork = int64_t(1) << 17;
inline int64_t taskCount(int64_t most, double work) {
  const double byWork = work / double(kMinTaskWork);
  return std::max<int64_t>(1, std::min<int64_t>(most, byWork < 1 ? 1 : int64_t(byWork)));
}

// Tasks for an elementwise program of `instructions` over `elements`: one per kMinTaskWork
// element-instructions, or one per kElementwiseGrain elements where that gives more (the
// grain of the plain elementwise ops, native_ops_elementwise.cpp, too): a short program is bound by
// moving its operands, not by its instructions. convnext_tiny's residual steps (14x14x384
// and 7x7x768, 3 instructions) ran in one task at two threads and took 44-50 us against 26
// at one thread (half their input in the other core's cache, written there by the GEMM
// before them); in two tasks 10-27 us (the model's 18 such steps 0.97 -> 0.70 ms, Intel
// AVX-512 guest).
constexpr int64_t kElementwiseGrain = 16384;
inline int64_t elementwiseTasks(int64_t most, int64_t elements, int64_t instructions) {
  const int64_t perElement = std::max<int64_t>(instructions, kMinTaskWork / kElementwiseGrain);
  return taskCount(most, double(elements) * double(perElement));
}

// Whether every type is statically shaped (the builder asks supports() per profile shape).
inline bool allStatic(const std::vector<ir::TensorType>& types) {
  for (const ir::TensorType& t : types)
    if (t.dtype != DataType::kUndefined && !t.shape.isStatic()) return false;
  return true;
}

// x < 0 ? m : x with m computed for every element and chosen by a mask: GCC vectorizes
// this, where it keeps a multiply under a branch scalar (FP exceptions) and random signs
// mispredict (PRelu, LeakyRelu: 3.4-4.0 ms over 802816 elements that way, 0.22-0.25 so).
// The same values as the branch: the same bits.
inline float negativeSelect(float x, float m) {
  const uint32_t neg = 0u - uint32_t(x < 0.0f);
  return std::bit_cast<float>((std::bit_cast<uint32_t>(m) & neg) | (std::bit_cast<uint32_t>(x) & ~neg));
}

}  // namespace anvil::runtime::seq
