// Plain enums shared by the CUDA launchers (cuda/device.h) and the kernel templates
// (cuda/kernels/*.cuh); no CUDA headers here, so host code can name them. Element types
// are anvil::DataType (include/anvil/dtype.h), the one enum of the API, the IR and the
// backends.
#pragma once

#include <cstdint>

#include "anvil/dtype.h"

namespace anvil::cuda {

// The elementwise activations of cuda/kernels/activation.cuh.
enum class Activation : std::uint8_t {
  kRelu,     // max(x, 0); NaN stays NaN
  kSigmoid,  // 1 / (1 + exp(-x))
  kTanh,
  kGeluErf,  // x * Phi(x), the exact (erf) form of ONNX Gelu, approximate="none"
  kSilu,     // x * sigmoid(x), also called swish
  // Fused-epilogue only (the linear kernels' applyEpilogueActivation, with the desc's actAlpha
  // and actBeta): no standalone activation kernel serves these, so kActivationCount stops
  // before them.
  kLeakyRelu,    // x < 0 ? alpha * x : x
  kHardSigmoid,  // max(0, min(1, alpha * x + beta))
  kHardSwish,    // x * max(0, min(1, x / 6 + 1/2))
  kGeluTanh,     // 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))), ONNX Gelu approximate="tanh"
};
// The activations of the standalone kernels (cuda/kernels/activation.cu and the sim's).
inline constexpr int kActivationCount = 5;
// The activations of the linear kernels' fused epilogue: every one above.
inline constexpr int kEpilogueActivationCount = 9;

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
    case Activation::kLeakyRelu:
      return "leaky_relu";
    case Activation::kHardSigmoid:
      return "hard_sigmoid";
    case Activation::kHardSwish:
      return "hard_swish";
    case Activation::kGeluTanh:
      return "gelu_tanh";
  }
  return "unknown_activation";
}

// The short name kernel names start with ("f32_relu_..."); the IR's spelling, repeated
// here because the CUDA library links nothing of the IR.
inline const char* dtypeName(DataType t) {
  switch (t) {
    case DataType::kF32:
      return "f32";
    case DataType::kF16:
      return "f16";
    case DataType::kBF16:
      return "bf16";
    case DataType::kF64:
      return "f64";
    case DataType::kI8:
      return "i8";
    case DataType::kU8:
      return "u8";
    case DataType::kI32:
      return "i32";
    case DataType::kI64:
      return "i64";
    case DataType::kBool:
      return "bool";
    default:
      return "unsupported_type";
  }
}

}  // namespace anvil::cuda
