// Shared by the CUDA sim and device tests: plain double-precision reference loops, seeded
// inputs with the awkward values up front, buffers with sentinel guards on both sides, and
// tolerance checks that report the first bad element.
#pragma once

#include <cuda_fp16.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "cuda/types.h"

namespace anvil::cuda::testing {

inline float toF(float x) { return x; }
inline float toF(__half x) { return __half2float(x); }
template <typename T>
T fromF(float x);
template <>
inline float fromF<float>(float x) {
  return x;
}
template <>
inline __half fromF<__half>(float x) {
  return __float2half_rn(x);
}

template <typename T>
constexpr DataType dtypeOf() {
  return std::is_same_v<T, float> ? DataType::kF32 : DataType::kF16;
}

inline double referenceActivation(Activation a, double x) {
  switch (a) {
    case Activation::kRelu:
      return x < 0 ? 0.0 : x;
    case Activation::kSigmoid:
      return 1.0 / (1.0 + std::exp(-x));
    case Activation::kTanh:
      return std::tanh(x);
    case Activation::kGeluErf:
      return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
    case Activation::kSilu:
      return x / (1.0 + std::exp(-x));
    default:  // the fused-epilogue-only activations have no standalone kernel
      break;
  }
  return NAN;
}

// Row softmax in double, each row shifted by its max.
inline std::vector<double> referenceSoftmax(const std::vector<float>& x, std::int64_t rows,
                                            std::int64_t cols) {
  std::vector<double> y(x.size());
  for (std::int64_t r = 0; r < rows; ++r) {
    double m = -INFINITY;
    for (std::int64_t c = 0; c < cols; ++c) m = std::max(m, double(x[r * cols + c]));
    double s = 0;
    for (std::int64_t c = 0; c < cols; ++c) s += std::exp(double(x[r * cols + c]) - m);
    for (std::int64_t c = 0; c < cols; ++c)
      y[r * cols + c] = std::exp(double(x[r * cols + c]) - m) / s;
  }
  return y;
}

// Uniform values in [lo, hi] rounded to T, with zeros, tiny and saturating values first so
// that even n = 7 meets them.
template <typename T>
std::vector<T> makeInput(std::size_t n, std::uint32_t seed, float lo = -8.0f, float hi = 8.0f) {
  static const float kSpecial[] = {0.0f, -0.0f, 80.0f, -80.0f, 1e-3f, -1e-3f, 15.0f, -15.0f, 0.5f};
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<T> v(n);
  for (std::size_t i = 0; i < n; ++i) {
    v[i] = fromF<T>(i < std::size(kSpecial) && lo < 0 ? kSpecial[i] : dist(rng));
  }
  return v;
}

// Tolerances: f32 within 1e-5 relative; f16 within one half ulp of the exact value plus the
// f32 error (2^-10 relative), with absolute floors below each type's normal range.
template <typename T>
struct Tolerance;
template <>
struct Tolerance<float> {
  static constexpr double rel = 1e-5;
  static constexpr double abs = 1e-38;
};
template <>
struct Tolerance<__half> {
  static constexpr double rel = 1.0 / 1024;
  static constexpr double abs = 1.0 / (1 << 24);
};

// Element i of `got` against `want`; "" when all are within tolerance, else the first miss.
template <typename T>
std::string compare(const T* got, const std::vector<double>& want, double rel = Tolerance<T>::rel,
                    double abs = Tolerance<T>::abs) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = toF(got[i]);
    if (!(std::fabs(g - want[i]) <= rel * std::fabs(want[i]) + abs)) {
      std::ostringstream os;
      os.precision(9);
      os << "element " << i << ": got " << g << ", want " << want[i] << " (rel error "
         << std::fabs(g - want[i]) / std::fabs(want[i]) << ")";
      return os.str();
    }
  }
  return "";
}

// A buffer of n elements with kGuard sentinel elements on each side; the interior starts
// as sentinels too, so an element the kernel never writes fails the comparison.
template <typename T>
class Guarded {
 public:
  static constexpr std::size_t kGuard = 67;

  explicit Guarded(std::size_t n) : n_(n), all_(n + 2 * kGuard, sentinel()) {}
  Guarded(const std::vector<T>& init) : Guarded(init.size()) {
    std::memcpy(static_cast<void*>(data()), init.data(), init.size() * sizeof(T));
  }

  T* data() { return all_.data() + kGuard; }
  const T* data() const { return all_.data() + kGuard; }
  std::size_t size() const { return n_; }
  // The whole allocation, guards included, to copy to and from a device.
  std::vector<T>& all() { return all_; }

  // "" when both guards hold their sentinels, else which element changed.
  std::string guardDamage() const {
    for (std::size_t i = 0; i < all_.size(); ++i) {
      if (i >= kGuard && i < kGuard + n_) continue;
      if (std::memcmp(&all_[i], &kSentinelBits, sizeof(T)) != 0) {
        const long off = i < kGuard ? long(i) - long(kGuard) : long(i - kGuard - n_);
        return (i < kGuard ? "write before the buffer at offset " : "write past the end at +") +
               std::to_string(off);
      }
    }
    return "";
  }

 private:
  // NaNs with a payload no kernel computes.
  static constexpr std::uint32_t kSentinelBits = sizeof(T) == 4 ? 0x7fbadbadu : 0x7eadu;
  static T sentinel() {
    T t;
    std::memcpy(static_cast<void*>(&t), &kSentinelBits, sizeof(T));
    return t;
  }
  std::size_t n_;
  std::vector<T> all_;
};

inline const Activation kAllActivations[] = {Activation::kRelu, Activation::kSigmoid,
                                             Activation::kTanh, Activation::kGeluErf,
                                             Activation::kSilu};

}  // namespace anvil::cuda::testing
