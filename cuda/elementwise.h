// The checked launcher of the generic elementwise kernels (cuda/kernels/elementwise.cuh): a
// program of up to kEwMaxInstrs instructions over up to kEwMaxInputs inputs broadcast to the
// output (numpy rules), one launch on a DeviceRuntime + Stream. It works out the broadcast
// steps, merges dimensions that are contiguous in every input and picks the contiguous
// kernel when every input is full or a single element.
#pragma once

#include <cstdint>

#include "anvil/dtype.h"
#include "cuda/kernels/elementwise_args.h"
#include "cuda/runtime.h"

namespace anvil::cuda {

inline constexpr int kEwMaxInputRank = 12;  // before merging (runtime::kMaxRank)

// A dense row-major tensor in device memory.
struct EwOperand {
  const void* data = nullptr;
  DataType dtype = DataType::kUndefined;
  int rank = 0;
  const std::int64_t* dims = nullptr;
};

enum class EwRegisters : std::uint8_t {
  kF32,   // values load as f32 (f32, f16, bf16, bool, integers), the program runs in f32
  kI64,   // integers and bool load widened to i64 (numpy's wrapping integer semantics)
  kBits,  // elements move as raw bits through the i64 registers (Where, Expand, Identity)
  kCast,  // Cast of input 0 to the output type (one element per element, no program)
};

struct ElementwiseDesc {
  EwRegisters registers = EwRegisters::kF32;
  int numInputs = 0;
  EwOperand in[kernels::kEwMaxInputs];
  EwOperand out;  // out.data is written
  int numInstrs = 0;
  kernels::EwInstr code[kernels::kEwMaxInstrs];
  bool roundEach = false;  // round every register to a half output type (anvil.FusedElementwise)
  const char* what = "elementwise";  // the op, for messages
};

// The element types each register file loads and stores; bits serves any 1/2/4/8-byte type.
bool elementwiseTypeOk(EwRegisters r, DataType t);

// Checks everything (kInvalidArgument naming `what`), then enqueues one launch; nothing for an
// empty output.
void launchElementwise(DeviceRuntime& runtime, Stream stream, const ElementwiseDesc& desc);

}  // namespace anvil::cuda
