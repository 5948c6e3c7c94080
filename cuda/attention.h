// Scaled dot-product attention on the CUDA backend: the checked launcher of the f32
// flash-style kernel (cuda/kernels/attention.cuh) on a DeviceRuntime. No CUDA header here.
#pragma once

#include <cstdint>
#include <limits>
#include <string>

#include "cuda/runtime.h"

namespace anvil::cuda {

enum class AttentionMask : std::int32_t { kNone = 0, kAdd = 1, kFillTrue = 2, kFillFalse = 3 };

// Y = softmax(mask(scale * Q . K^T)) . V per batch b < outer and head h < heads; f32 in device
// memory. Each operand is addressed by element strides over (b, h, row) with contiguous
// columns: Q [sq, d], K [sk, d], V [sk, dv], Y [sq, dv] per (b, h); a 0 stride broadcasts.
// The mask (kAdd: f32, the fill kinds: bool bytes) element of (b, h, i, j) is at
// mask[b * maskB + h * maskH + i * maskI + j * maskJ]. d and dv are 1..attentionMaxHead().
// Y must not overlap Q, K, V or the mask.
struct AttentionDesc {
  std::int64_t outer = 1, heads = 1;
  std::int64_t sq = 0, sk = 0, d = 0, dv = 0;
  const float* q = nullptr;
  std::int64_t qB = 0, qH = 0, qS = 0;
  const float* k = nullptr;
  std::int64_t kB = 0, kH = 0, kS = 0;
  const float* v = nullptr;
  std::int64_t vB = 0, vH = 0, vS = 0;
  float* y = nullptr;
  std::int64_t yB = 0, yH = 0, yS = 0;
  AttentionMask maskKind = AttentionMask::kNone;
  const void* mask = nullptr;
  std::int64_t maskB = 0, maskH = 0, maskI = 0, maskJ = 0;
  float scale = 1.0f;
  float fill = -std::numeric_limits<float>::infinity();
};

// "f32_attention_flash_q8_k32_block128": query rows and keys per block tile, threads.
std::string attentionKernelName();
// The largest head size (d, dv) the kernel takes.
std::int64_t attentionMaxHead();

// Asynchronous on `stream`. kInvalidArgument naming the kernel and the field for a bad
// descriptor, before anything is queued; nothing is launched when Y is empty.
void launchAttention(DeviceRuntime& runtime, Stream stream, const AttentionDesc& desc);

}  // namespace anvil::cuda
