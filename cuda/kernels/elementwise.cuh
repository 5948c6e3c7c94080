// The generic elementwise kernels: one grid-stride loop that interprets a small program
// (EwArgs, elementwise_args.h) per output element, over up to kEwMaxInputs numpy-broadcast
// inputs. Three register files: f32 (float ops on f32/f16/bf16 storage, comparisons to bool),
// i64 (integer and bool ops with numpy's wrapping semantics; Where/Expand/Identity move raw
// bits through them) and Cast. Each comes contiguous (every input full or one element, no
// index math) or strided (rank <= kEwMaxRank, per-input steps, 0 where broadcast).
// Compiled by nvcc (cuda/kernels/elementwise.cu) and by the host compiler against cuda/sim.
#pragma once

#include <cmath>
#include <cstdint>

#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/elementwise_args.h"

namespace anvil::cuda::kernels {

// ---- loads and stores by element type ------------------------------------------------

__device__ __forceinline__ bool ewIsFloat(EwType t) {
  return t == EwType::kF32 || t == EwType::kF16 || t == EwType::kBF16;
}

__device__ __forceinline__ float ewLoadFloat(const void* p, std::int64_t i, EwType t) {
  switch (t) {
    case EwType::kF32: return static_cast<const float*>(p)[i];
    case EwType::kF16: return __half2float(static_cast<const __half*>(p)[i]);
    case EwType::kBF16: return __bfloat162float(static_cast<const __nv_bfloat16*>(p)[i]);
    case EwType::kBool: return static_cast<const std::uint8_t*>(p)[i] != 0 ? 1.0f : 0.0f;
    case EwType::kI8: return static_cast<float>(static_cast<const std::int8_t*>(p)[i]);
    case EwType::kU8: return static_cast<float>(static_cast<const std::uint8_t*>(p)[i]);
    case EwType::kI16: return static_cast<float>(static_cast<const std::int16_t*>(p)[i]);
    case EwType::kU16: return static_cast<float>(static_cast<const std::uint16_t*>(p)[i]);
    case EwType::kI32: return static_cast<float>(static_cast<const std::int32_t*>(p)[i]);
    case EwType::kU32: return static_cast<float>(static_cast<const std::uint32_t*>(p)[i]);
    case EwType::kI64: return static_cast<float>(static_cast<const long long*>(p)[i]);
  }
  return 0.0f;
}

// Integers widen to i64 (sign or zero extended); f16/f32 storage reaches here only as its
// bits (kU16/kU32), for the ops that move elements without looking at them.
__device__ __forceinline__ long long ewLoadInt(const void* p, std::int64_t i, EwType t) {
  switch (t) {
    case EwType::kBool: return static_cast<const std::uint8_t*>(p)[i] != 0 ? 1 : 0;
    case EwType::kI8: return static_cast<const std::int8_t*>(p)[i];
    case EwType::kU8: return static_cast<const std::uint8_t*>(p)[i];
    case EwType::kI16: return static_cast<const std::int16_t*>(p)[i];
    case EwType::kF16: case EwType::kBF16:
    case EwType::kU16: return static_cast<const std::uint16_t*>(p)[i];
    case EwType::kI32: return static_cast<const std::int32_t*>(p)[i];
    case EwType::kF32:
    case EwType::kU32: return static_cast<const std::uint32_t*>(p)[i];
    case EwType::kI64: return static_cast<const long long*>(p)[i];
  }
  return 0;
}

__device__ __forceinline__ void ewStoreFloat(void* p, std::int64_t i, EwType t, float v) {
  switch (t) {
    case EwType::kF32: static_cast<float*>(p)[i] = v; return;
    case EwType::kF16: static_cast<__half*>(p)[i] = __float2half_rn(v); return;
    case EwType::kBF16: static_cast<__nv_bfloat16*>(p)[i] = __float2bfloat16_rn(v); return;
    case EwType::kBool: static_cast<std::uint8_t*>(p)[i] = v != 0.0f ? 1 : 0; return;  // NaN: true
    default: return;  // the launcher sends float registers only to these types
  }
}

// Integers narrow by truncation (modular, as numpy's wrapping arithmetic and C++20 casts).
__device__ __forceinline__ void ewStoreInt(void* p, std::int64_t i, EwType t, long long v) {
  const auto u = static_cast<unsigned long long>(v);
  switch (t) {
    case EwType::kBool: static_cast<std::uint8_t*>(p)[i] = v != 0 ? 1 : 0; return;
    case EwType::kI8: case EwType::kU8: static_cast<std::uint8_t*>(p)[i] = static_cast<std::uint8_t>(u); return;
    case EwType::kF16: case EwType::kBF16: case EwType::kI16:
    case EwType::kU16: static_cast<std::uint16_t*>(p)[i] = static_cast<std::uint16_t>(u); return;
    case EwType::kF32: case EwType::kI32:
    case EwType::kU32: static_cast<std::uint32_t*>(p)[i] = static_cast<std::uint32_t>(u); return;
    case EwType::kI64: static_cast<long long*>(p)[i] = v; return;
  }
}

// A float rounded to a narrower float type and back (the fused program's per-instruction
// rounding); f32 and non-float types unchanged.
__device__ __forceinline__ float ewRoundTo(float v, EwType t) {
  if (t == EwType::kF16) return __half2float(__float2half_rn(v));
  if (t == EwType::kBF16) return __bfloat162float(__float2bfloat16_rn(v));
  return v;
}

// ---- one instruction ------------------------------------------------------------------

__device__ __forceinline__ float ewNanAware(float a, float b, bool max) {
  if (a != a || b != b) return a != a ? a : b;  // NaN propagates
  return max ? (a < b ? b : a) : (b < a ? b : a);
}

__device__ __forceinline__ float ewSoftplus(float x) {
  return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));
}

// The formulas of the reference kernels, in f32 (their compute type for f32/f16/bf16), in
// the same order of operations.
__device__ __forceinline__ float ewEvalFloat(const EwInstr& in, float x, float y, float z) {
  switch (in.op) {
    case EwOp::kAdd: return x + y;
    case EwOp::kSub: return x - y;
    case EwOp::kMul: return x * y;
    case EwOp::kDiv: return x / y;
    // The reference raises in double and rounds once.
    case EwOp::kPow: return static_cast<float>(pow(static_cast<double>(x), static_cast<double>(y)));
    case EwOp::kMax: return ewNanAware(x, y, true);
    case EwOp::kMin: return ewNanAware(x, y, false);
    case EwOp::kPRelu: return x < 0.0f ? y * x : x;
    case EwOp::kEqual: return x == y ? 1.0f : 0.0f;
    case EwOp::kLess: return x < y ? 1.0f : 0.0f;
    case EwOp::kGreater: return x > y ? 1.0f : 0.0f;
    case EwOp::kLessOrEqual: return x <= y ? 1.0f : 0.0f;
    case EwOp::kGreaterOrEqual: return x >= y ? 1.0f : 0.0f;
    case EwOp::kAnd: return (x != 0.0f && y != 0.0f) ? 1.0f : 0.0f;
    case EwOp::kOr: return (x != 0.0f || y != 0.0f) ? 1.0f : 0.0f;
    case EwOp::kXor: return ((x != 0.0f) != (y != 0.0f)) ? 1.0f : 0.0f;
    case EwOp::kMod: return fmodf(x, y);  // floats always take C fmod, as the reference does
    case EwOp::kIsNaN: return x != x ? 1.0f : 0.0f;
    case EwOp::kIsInf:
      return ((x == INFINITY && in.p1 != 0.0f) || (x == -INFINITY && in.p0 != 0.0f)) ? 1.0f : 0.0f;
    case EwOp::kDivConst: return x / in.p0;
    case EwOp::kClip: {
      float v = x;
      if (in.b >= 0 && v < y) v = y;  // NaN compares false and stays
      if (in.c >= 0 && v > z) v = z;  // min > max gives max, as ONNX specifies
      return v;
    }
    case EwOp::kWhere: return x != 0.0f ? y : z;
    case EwOp::kIdentity: return x;
    case EwOp::kNot: return x != 0.0f ? 0.0f : 1.0f;
    case EwOp::kAbs: return fabsf(x);
    case EwOp::kNeg: return -x;
    case EwOp::kRelu: return x < 0.0f ? 0.0f : x;  // NaN stays NaN
    case EwOp::kExp: return expf(x);
    case EwOp::kLog: return logf(x);
    case EwOp::kSqrt: return sqrtf(x);
    case EwOp::kReciprocal: return 1.0f / x;
    case EwOp::kSigmoid: {
      if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
      const float e = expf(x);
      return e / (1.0f + e);
    }
    case EwOp::kTanh: return tanhf(x);
    case EwOp::kErf: return erff(x);
    case EwOp::kFloor: return floorf(x);
    case EwOp::kCeil: return ceilf(x);
    case EwOp::kRound: return rintf(x);  // half to even
    case EwOp::kSin: return sinf(x);
    case EwOp::kCos: return cosf(x);
    case EwOp::kSoftplus: return ewSoftplus(x);
    case EwOp::kSoftsign: return x / (1.0f + fabsf(x));
    case EwOp::kSign:
      if (x != x) return x;  // NaN
      return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
    case EwOp::kHardSwish: return x * fmaxf(0.0f, fminf(1.0f, x / 6.0f + 0.5f));
    case EwOp::kMish: return x * tanhf(ewSoftplus(x));
    case EwOp::kLeakyRelu: return x < 0.0f ? in.p0 * x : x;
    case EwOp::kElu: return x < 0.0f ? in.p0 * expm1f(x) : x;
    case EwOp::kSelu: return x > 0.0f ? in.p1 * x : in.p1 * in.p0 * expm1f(x);
    case EwOp::kCelu: return fmaxf(0.0f, x) + fminf(0.0f, in.p0 * expm1f(x / in.p0));
    case EwOp::kHardSigmoid: return fmaxf(0.0f, fminf(1.0f, in.p0 * x + in.p1));
    case EwOp::kThresholdedRelu: return x > in.p0 ? x : 0.0f;
    case EwOp::kGeluErf: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
    case EwOp::kGeluTanh: {
      const float k = 0.79788456080286535588f;  // sqrt(2 / pi)
      return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));
    }
    // Integer-only: ewEvalInt's (the program builder never gives them float operands).
    case EwOp::kBitAnd:
    case EwOp::kBitOr:
    case EwOp::kBitXor:
    case EwOp::kBitNot:
    case EwOp::kCount: break;
  }
  return x;
}

// Integer ops with numpy's semantics: + - * wrap (done unsigned: no signed-overflow UB),
// division truncates toward zero, x / 0 is 0 and x / -1 is the wrapped negation. Values of
// narrower types arrive widened; the store truncates, which is their own wrapping.
__device__ __forceinline__ long long ewEvalInt(const EwInstr& in, long long x, long long y, long long z) {
  using U = unsigned long long;
  switch (in.op) {
    case EwOp::kAdd: return static_cast<long long>(U(x) + U(y));
    case EwOp::kSub: return static_cast<long long>(U(x) - U(y));
    case EwOp::kMul: return static_cast<long long>(U(x) * U(y));
    case EwOp::kDiv:
      if (y == 0) return 0;
      if (y == -1) return static_cast<long long>(U(0) - U(x));
      return x / y;
    case EwOp::kMax: return x < y ? y : x;
    case EwOp::kMin: return y < x ? y : x;
    case EwOp::kEqual: return x == y;
    case EwOp::kLess: return x < y;
    case EwOp::kGreater: return x > y;
    case EwOp::kLessOrEqual: return x <= y;
    case EwOp::kGreaterOrEqual: return x >= y;
    case EwOp::kAnd: return x != 0 && y != 0;
    case EwOp::kOr: return x != 0 || y != 0;
    case EwOp::kXor: return (x != 0) != (y != 0);
    case EwOp::kMod: {
      // numpy's remainder (sign of the divisor) unless fmod (sign of the dividend); x % 0 and
      // x % -1 are 0. Widened unsigned values are never negative, so one formula serves both.
      if (y == 0 || y == -1) return 0;
      long long r = x % y;
      if (in.p0 == 0.0f && r != 0 && ((r < 0) != (y < 0))) r += y;
      return r;
    }
    case EwOp::kBitAnd: return x & y;
    case EwOp::kBitOr: return x | y;
    case EwOp::kBitXor: return x ^ y;
    case EwOp::kBitNot: return ~x;
    case EwOp::kWhere: return x != 0 ? y : z;
    case EwOp::kNot: return x == 0;
    case EwOp::kAbs: return x < 0 ? static_cast<long long>(U(0) - U(x)) : x;
    case EwOp::kNeg: return static_cast<long long>(U(0) - U(x));
    case EwOp::kRelu: return x < 0 ? 0 : x;
    default: return x;  // kIdentity; the launcher sends no other op here
  }
}

// A float to an integer as the reference's doubleToInt: NaN -> 0, truncated toward zero,
// saturated to the i64 range; the store then wraps it to the target type.
__device__ __forceinline__ long long ewFloatToInt(float f) {
  if (f != f) return 0;  // NaN
  const float t = truncf(f);
  if (t >= 9223372036854775807.0f) return 9223372036854775807LL;  // 2^63 as a float
  if (t <= -9223372036854775808.0f) return -9223372036854775807LL - 1;
  return static_cast<long long>(t);
}

// ---- the kernels ------------------------------------------------------------------------

// Each input's element for output element i.
// Inputs: a bound on a.numInputs known at compile time (unused slots have step 0).
template <bool Contiguous, int Inputs>
__device__ __forceinline__ void ewOffsets(const EwArgs& a, std::int64_t i, std::int64_t (&off)[Inputs]) {
  // Loops over inputs run to a constant bound so that off[] stays in registers.
  if constexpr (Contiguous) {
    ANVIL_UNROLL
    for (int k = 0; k < Inputs; ++k) off[k] = a.contigStep[k] ? i : 0;
  } else {
    ANVIL_UNROLL
    for (int k = 0; k < Inputs; ++k) off[k] = 0;
    std::int64_t rest = i;
    for (int d = a.rank - 1; d >= 0; --d) {
      const std::int64_t pos = rest % a.dims[d];
      rest /= a.dims[d];
      ANVIL_UNROLL
      for (int k = 0; k < Inputs; ++k) off[k] += pos * a.strides[k][d];
    }
  }
}

// The operand register r of a single-instruction program, picked from the three loaded
// inputs by selects (no indexed array, so no local memory).
template <typename V>
__device__ __forceinline__ V ewPick(int r, V v0, V v1, V v2) {
  return r == 0 ? v0 : r == 1 ? v1 : r == 2 ? v2 : V(0);
}

// Single: the program is one instruction over at most 3 inputs (every plain ONNX op), kept in
// registers; otherwise the general interpreter with a register array.
template <bool Contiguous, bool Single>
__global__ void elementwise_f32(EwArgs a) {
  const std::int64_t stride = std::int64_t(blockDim.x) * gridDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    if constexpr (Single) {
      std::int64_t off[3];
      ewOffsets<Contiguous, 3>(a, i, off);
      float v[3] = {0.0f, 0.0f, 0.0f};
      ANVIL_UNROLL
      for (int k = 0; k < 3; ++k)
        if (k < a.numInputs) v[k] = ewLoadFloat(a.in[k], off[k], a.inType[k]);
      const EwInstr& in = a.code[0];
      const float r = ewEvalFloat(in, ewPick(in.a, v[0], v[1], v[2]), ewPick(in.b, v[0], v[1], v[2]),
                                  ewPick(in.c, v[0], v[1], v[2]));
      ewStoreFloat(a.out, i, a.outType, r);
    } else {
      std::int64_t off[kEwMaxInputs];
      ewOffsets<Contiguous, kEwMaxInputs>(a, i, off);
      float r[kEwMaxRegisters];
      ANVIL_UNROLL
      for (int k = 0; k < kEwMaxInputs; ++k)
        if (k < a.numInputs) r[k] = ewLoadFloat(a.in[k], off[k], a.inType[k]);
      for (int c = 0; c < a.numInstrs; ++c) {
        const EwInstr& in = a.code[c];
        float v = ewEvalFloat(in, r[in.a], in.b >= 0 ? r[in.b] : 0.0f, in.c >= 0 ? r[in.c] : 0.0f);
        if (a.roundEach) v = ewRoundTo(v, a.outType);
        r[a.numInputs + c] = v;
      }
      ewStoreFloat(a.out, i, a.outType, r[a.numInputs + a.numInstrs - 1]);
    }
  }
}

template <bool Contiguous, bool Single>
__global__ void elementwise_i64(EwArgs a) {
  const std::int64_t stride = std::int64_t(blockDim.x) * gridDim.x;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    if constexpr (Single) {
      std::int64_t off[3];
      ewOffsets<Contiguous, 3>(a, i, off);
      long long v[3] = {0, 0, 0};
      ANVIL_UNROLL
      for (int k = 0; k < 3; ++k)
        if (k < a.numInputs) v[k] = ewLoadInt(a.in[k], off[k], a.inType[k]);
      const EwInstr& in = a.code[0];
      const long long r = ewEvalInt(in, ewPick(in.a, v[0], v[1], v[2]), ewPick(in.b, v[0], v[1], v[2]),
                                    ewPick(in.c, v[0], v[1], v[2]));
      ewStoreInt(a.out, i, a.outType, r);
    } else {
      std::int64_t off[kEwMaxInputs];
      ewOffsets<Contiguous, kEwMaxInputs>(a, i, off);
      long long r[kEwMaxRegisters];
      ANVIL_UNROLL
      for (int k = 0; k < kEwMaxInputs; ++k)
        if (k < a.numInputs) r[k] = ewLoadInt(a.in[k], off[k], a.inType[k]);
      for (int c = 0; c < a.numInstrs; ++c) {
        const EwInstr& in = a.code[c];
        r[a.numInputs + c] = ewEvalInt(in, r[in.a], in.b >= 0 ? r[in.b] : 0, in.c >= 0 ? r[in.c] : 0);
      }
      ewStoreInt(a.out, i, a.outType, r[a.numInputs + a.numInstrs - 1]);
    }
  }
}

// Cast of input 0 (same extents as the output) to the output's type, as the reference's
// convert(): to bool x != 0 (NaN true); float to int by ewFloatToInt; int to int modular;
// int to float through f32 (int -> f32 -> f16 rounds twice, as the reference does). A template
// only so that the header may define it in several translation units (elementwise.cu, sim);
// the launcher uses the contiguous form, Cast keeping the extents.
template <bool Contiguous>
__global__ void elementwise_cast(EwArgs a) {
  static_assert(Contiguous, "Cast reads its input at the output's index");
  const std::int64_t stride = std::int64_t(blockDim.x) * gridDim.x;
  const EwType from = a.inType[0], to = a.outType;
  for (std::int64_t i = std::int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < a.n; i += stride) {
    if (ewIsFloat(from)) {
      const float f = ewLoadFloat(a.in[0], i, from);
      if (ewIsFloat(to) || to == EwType::kBool) ewStoreFloat(a.out, i, to, f);
      else ewStoreInt(a.out, i, to, ewFloatToInt(f));
    } else {
      const long long v = ewLoadInt(a.in[0], i, from);
      if (ewIsFloat(to)) ewStoreFloat(a.out, i, to, static_cast<float>(v));
      else ewStoreInt(a.out, i, to, v);
    }
  }
}

}  // namespace anvil::cuda::kernels
