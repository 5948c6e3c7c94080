// Plain enums shared by the CUDA launchers (cuda/device.h) and the kernel templates
// (cuda/kernels/*.cuh); no CUDA headers here, so host code can name them.
#pragma once

#include <cstdint>

namespace anvil::cuda {

// The elementwise activations of cuda/kernels/activation.cuh.
enum class Activation : std::uint8_t {
  kRelu,     // max(x, 0); NaN stays NaN
  kSigmoid,  // 1 / (1 + exp(-x))
  kTanh,
  kGeluErf,  // x * Phi(x), the exact (erf) form of ONNX Gelu, approximate="none"
  kSilu,     // x * sigmoid(x), also called swish
};
inline constexpr int kActivationCount = 5;

// Element types the CUDA kernels take.
enum class DType : std::uint8_t { kF32, kF16 };

inline const char* activationName(Activation a) {
  switch (a) {
    case Activation::kRelu:
      return "relu";
    case Activation::kSigmoid:
      return "sigmoid";
    case Activation::kTanh:
      return "tanh";
    case Activation::kGeluErf:
      return "gelu_erf";
    case Activation::kSilu:
      return "silu";
  }
  return "unknown_activation";
}

inline const char* dtypeName(DType t) { return t == DType::kF32 ? "f32" : "f16"; }

}  // namespace anvil::cuda
