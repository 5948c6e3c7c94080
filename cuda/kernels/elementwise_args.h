// The parameters of the generic elementwise kernels (elementwise.cuh): a small program of
// elementwise instructions over registers, up to kEwMaxInputs numpy-broadcast inputs of rank
// <= kEwMaxRank, their element types and the output's. Plain C++ (no CUDA header), so the host
// launcher (cuda/elementwise.cpp) packs exactly the struct the kernels take by value.
#pragma once

#include <cstdint>

namespace anvil::cuda::kernels {

inline constexpr int kEwMaxInputs = 8;   // anvil.FusedElementwise may read several operands
inline constexpr int kEwMaxRank = 6;     // output rank after merging contiguous dimensions
inline constexpr int kEwMaxInstrs = 16;  // instructions of one program
inline constexpr int kEwMaxRegisters = kEwMaxInputs + kEwMaxInstrs;

// Element types as the kernels load and store them. U16/U32 carry f16/f32 bits unchanged
// through the integer registers (Where, Expand, Identity move bits, not values).
enum class EwType : std::uint8_t { kF32, kF16, kBF16, kBool, kI8, kU8, kI16, kU16, kI32, kU32, kI64 };

inline constexpr int ewTypeBytes(EwType t) {
  switch (t) {
    case EwType::kBool: case EwType::kI8: case EwType::kU8: return 1;
    case EwType::kF16: case EwType::kBF16: case EwType::kI16: case EwType::kU16: return 2;
    case EwType::kF32: case EwType::kI32: case EwType::kU32: return 4;
    case EwType::kI64: return 8;
  }
  return 0;
}
inline constexpr bool ewTypeIsFloat(EwType t) {
  return t == EwType::kF32 || t == EwType::kF16 || t == EwType::kBF16;
}

// Instruction opcodes. The float-register kernel evaluates every one with the formulas of
// the reference kernels (cpu/kernels/elementwise*.cpp, ir/ops/anvil_elementwise.h); the
// integer-register kernel only those marked [int] (numpy's wrapping integer semantics).
enum class EwOp : std::uint8_t {
  // binary
  kAdd, kSub, kMul, kDiv, kPow, kMax, kMin, kPRelu,          // [int]: Add Sub Mul Div Max Min
  kEqual, kLess, kGreater, kLessOrEqual, kGreaterOrEqual,    // [int]; 1 or 0
  kAnd, kOr, kXor,                                           // [int] on 0/1
  kMod,                                                      // [int] (p0: fmod); floats: C fmod
  kBitAnd, kBitOr, kBitXor,                                  // [int only]
  // ternary: Clip (x, min?, max?), Where (cond, x, y) [int]
  kClip, kWhere,
  // unary
  kIdentity, kNot, kAbs, kNeg, kRelu,                        // [int]
  kBitNot,                                                   // [int only]
  kIsNaN, kIsInf,                                            // 1 or 0; IsInf: p0 detect -inf, p1 +inf
  kDivConst,                                                 // x / p0 (Mean's last step)
  kExp, kLog, kSqrt, kReciprocal, kSigmoid, kTanh, kErf, kFloor, kCeil, kRound, kSin, kCos,
  kSoftplus, kSoftsign, kSign, kHardSwish, kMish,
  // unary with attributes p0, p1
  kLeakyRelu, kElu, kSelu, kCelu, kHardSigmoid, kThresholdedRelu, kGeluErf, kGeluTanh,
  kCount
};

struct EwInstr {
  EwOp op = EwOp::kIdentity;
  std::int8_t a = -1, b = -1, c = -1;  // operand registers; -1: omitted (Clip's min/max)
  float p0 = 0, p1 = 0;                // attributes (LeakyRelu alpha, HardSigmoid alpha/beta, ...)
};

// out[i] = the last register of the program run on the inputs' elements broadcast to i.
// Registers 0..numInputs-1 hold the inputs, instruction k writes register numInputs + k.
// dims are the output's extents (rank after merging, innermost last) and strides[k][d] input
// k's element step along output dimension d (0 where broadcast); the contiguous kernels use
// neither (each input is full, step 1, or one element, step 0: contigStep[k]).
struct EwArgs {
  void* out;
  const void* in[kEwMaxInputs];
  std::int64_t n;  // output elements
  std::int64_t dims[kEwMaxRank];
  std::int64_t strides[kEwMaxInputs][kEwMaxRank];
  std::int8_t contigStep[kEwMaxInputs];
  EwType inType[kEwMaxInputs];
  EwType outType;
  std::int8_t rank;
  std::int8_t numInputs;
  std::int8_t numInstrs;
  // Round every register the program writes to the output's (half) type, as the reference
  // of anvil.FusedElementwise does between instructions.
  std::int8_t roundEach;
  EwInstr code[kEwMaxInstrs];
};

}  // namespace anvil::cuda::kernels

namespace anvil::cuda::kernels {

// Launch shape of every elementwise kernel (both runtimes): 256 threads, the grid capped so
// that threads stride over big tensors.
inline constexpr int kEwBlock = 256;
inline constexpr std::int64_t kEwMaxGrid = 1 << 16;
inline unsigned elementwiseGrid(std::int64_t n) {
  const std::int64_t blocks = (n + kEwBlock - 1) / kEwBlock;
  return static_cast<unsigned>(blocks < kEwMaxGrid ? blocks : kEwMaxGrid);
}

// The registered instantiations (the names spell register file, indexing and block).
// "single": one instruction over at most 3 inputs, in registers; "program": the interpreter.
inline constexpr const char* kEwF32ContigSingleKernel = "f32_elementwise_single_contig_block256";
inline constexpr const char* kEwF32StridedSingleKernel = "f32_elementwise_single_strided6_block256";
inline constexpr const char* kEwF32ContigKernel = "f32_elementwise_program16_contig_block256";
inline constexpr const char* kEwF32StridedKernel = "f32_elementwise_program16_strided6_block256";
inline constexpr const char* kEwI64ContigSingleKernel = "i64_elementwise_single_contig_block256";
inline constexpr const char* kEwI64StridedSingleKernel = "i64_elementwise_single_strided6_block256";
inline constexpr const char* kEwI64ContigKernel = "i64_elementwise_program16_contig_block256";
inline constexpr const char* kEwI64StridedKernel = "i64_elementwise_program16_strided6_block256";
inline constexpr const char* kEwCastKernel = "any_cast_contig_block256";

}  // namespace anvil::cuda::kernels
