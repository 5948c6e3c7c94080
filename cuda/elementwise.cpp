// The checked launcher of the generic elementwise kernels (cuda/elementwise.h): element
// types mapped to the kernels' EwType, the numpy broadcast worked out into per-input steps,
// dimensions merged where every input is contiguous across them, one launch by name.
#include "cuda/elementwise.h"

#include <cstdint>

#include "anvil/error.h"
#include "cuda/arg_pack.h"
#include "cuda/types.h"

namespace anvil::cuda {
namespace {

using kernels::EwArgs;
using kernels::EwType;
using kernels::kEwMaxInputs;
using kernels::kEwMaxRank;

// The kernels' name of an element type for register file r; false where r cannot carry it.
bool ewTypeOf(EwRegisters r, DataType t, EwType* out) {
  if (r == EwRegisters::kBits) {
    switch (t) {
      case DataType::kF32: case DataType::kI32: case DataType::kU32: *out = EwType::kU32; return true;
      case DataType::kF16: case DataType::kBF16: case DataType::kI16: case DataType::kU16: *out = EwType::kU16; return true;
      case DataType::kI64: case DataType::kU64: case DataType::kF64: *out = EwType::kI64; return true;
      case DataType::kBool: *out = EwType::kBool; return true;
      case DataType::kI8: case DataType::kU8: *out = EwType::kU8; return true;
      default: return false;
    }
  }
  switch (t) {
    case DataType::kF32: *out = EwType::kF32; return true;
    case DataType::kF16: *out = EwType::kF16; return true;
    case DataType::kBF16: *out = EwType::kBF16; return true;
    case DataType::kBool: *out = EwType::kBool; return true;
    case DataType::kI8: *out = EwType::kI8; return true;
    case DataType::kU8: *out = EwType::kU8; return true;
    case DataType::kI16: *out = EwType::kI16; return true;
    case DataType::kU16: *out = EwType::kU16; return true;
    case DataType::kI32: *out = EwType::kI32; return true;
    case DataType::kU32: *out = EwType::kU32; return true;
    case DataType::kI64: *out = EwType::kI64; return true;
    default: return false;
  }
}

std::int64_t numelOf(const EwOperand& o) {
  std::int64_t n = 1;
  for (int d = 0; d < o.rank; ++d) n *= o.dims[d];
  return n;
}

bool partiallyOverlap(const void* x, std::size_t xBytes, const void* y, std::size_t yBytes) {
  const auto a = reinterpret_cast<std::uintptr_t>(x);
  const auto b = reinterpret_cast<std::uintptr_t>(y);
  return a != b && a < b + yBytes && b < a + xBytes;
}

}  // namespace

bool elementwiseTypeOk(EwRegisters r, DataType t) {
  EwType e;
  if (!ewTypeOf(r, t, &e)) return false;
  // Float registers store only float and bool outputs; integer registers no float types.
  if (r == EwRegisters::kI64) return !kernels::ewTypeIsFloat(e);
  return true;
}

void launchElementwise(DeviceRuntime& runtime, Stream stream, const ElementwiseDesc& d) {
  const char* what = d.what;
  const int n_in = d.numInputs;
  if (n_in < 1 || n_in > kEwMaxInputs)
    ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": ", n_in, " inputs; the kernels take 1..", kEwMaxInputs);
  if (d.registers == EwRegisters::kCast ? d.numInstrs != 0 || n_in != 1
                                         : d.numInstrs < 1 || d.numInstrs > kernels::kEwMaxInstrs)
    ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": a program of ", d.numInstrs, " instructions for ", n_in,
                " inputs; expected 1..", kernels::kEwMaxInstrs, " (Cast: none, one input)");
  const EwOperand& out = d.out;
  if (out.rank < 0 || out.rank > kEwMaxInputRank)
    ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": output rank ", out.rank, " is not in 0..", kEwMaxInputRank);

  EwArgs a{};
  a.numInputs = static_cast<std::int8_t>(n_in);
  a.numInstrs = static_cast<std::int8_t>(d.numInstrs);
  a.roundEach = d.roundEach ? 1 : 0;
  a.out = const_cast<void*>(out.data);
  const EwRegisters storeRegs = d.registers == EwRegisters::kCast ? EwRegisters::kF32 : d.registers;
  if (!ewTypeOf(storeRegs, out.dtype, &a.outType) ||
      (d.registers == EwRegisters::kF32 && !kernels::ewTypeIsFloat(a.outType) && a.outType != EwType::kBool) ||
      (d.registers == EwRegisters::kI64 && kernels::ewTypeIsFloat(a.outType)))
    ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": output type ", dtypeName(out.dtype), " (",
                static_cast<int>(out.dtype), ") is not served by these kernels");
  for (int c = 0; c < d.numInstrs; ++c) {
    const kernels::EwInstr& in = d.code[c];
    const int defined = n_in + c;
    if (static_cast<int>(in.op) >= static_cast<int>(kernels::EwOp::kCount) || in.a < 0 || in.a >= defined ||
        in.b >= defined || in.c >= defined)
      ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": instruction ", c, " (op ", static_cast<int>(in.op),
                  ") reads a register not defined before it");
    a.code[c] = in;
  }

  const std::int64_t n = numelOf(out);
  for (int d0 = 0; d0 < out.rank; ++d0)
    if (out.dims[d0] < 0) ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": output has a negative extent");
  a.n = n;

  // Per input: its type, whether it is full (the output's extents) or one element, and its
  // steps along the output's dimensions (right-aligned; 0 where broadcast).
  std::int64_t dims[kEwMaxInputRank];
  std::int64_t steps[kEwMaxInputs][kEwMaxInputRank] = {};
  bool contiguous = true;
  DeviceRange ranges[kEwMaxInputs + 1];
  const int r = out.rank;
  for (int d0 = 0; d0 < r; ++d0) dims[d0] = out.dims[d0];
  for (int k = 0; k < n_in; ++k) {
    const EwOperand& x = d.in[k];
    if (!ewTypeOf(d.registers == EwRegisters::kCast ? EwRegisters::kF32 : d.registers, x.dtype, &a.inType[k]))
      ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": input ", k, " has type ", dtypeName(x.dtype), " (",
                  static_cast<int>(x.dtype), "), not served by these kernels");
    if (x.rank < 0 || x.rank > r)
      ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": input ", k, " has rank ", x.rank, " above the output's ", r);
    const std::int64_t xn = numelOf(x);
    std::int64_t step = 1;
    bool same = x.rank == r;
    for (int j = x.rank - 1; j >= 0; --j) {
      const int od = r - x.rank + j;
      if (x.dims[j] != dims[od] && x.dims[j] != 1)
        ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": input ", k, " extent ", x.dims[j], " at axis ", j,
                    " does not broadcast to the output's ", dims[od]);
      same = same && x.dims[j] == dims[od];
      steps[k][od] = x.dims[j] == 1 ? 0 : step;
      step *= x.dims[j];
    }
    // Broadcast-compatible with as many elements as the output: the same dense layout,
    // whatever unit dimensions either spells ([7] for a [1,7] output).
    same = same || xn == n;
    if (d.registers == EwRegisters::kCast && !same)
      ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": Cast input and output extents differ");
    a.contigStep[k] = same ? 1 : 0;
    contiguous = contiguous && (same || xn == 1);
    a.in[k] = x.data;
    const std::size_t bytes = static_cast<std::size_t>(xn) * kernels::ewTypeBytes(a.inType[k]);
    if (n > 0 && x.data == nullptr)
      ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": null input ", k);
    const std::size_t outBytes = static_cast<std::size_t>(n) * kernels::ewTypeBytes(a.outType);
    if (n > 0 && partiallyOverlap(x.data, bytes, out.data, outBytes))
      ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": input ", k,
                  " overlaps the output partially; they must be equal (in place) or disjoint");
    if (n > 0 && x.data == out.data && !same)
      ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": input ", k, " is the output but is broadcast");
    ranges[k] = DeviceRange{x.data, bytes, "input"};
  }
  if (n == 0) return;
  if (out.data == nullptr) ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": null output");
  ranges[n_in] = DeviceRange{out.data, static_cast<std::size_t>(n) * kernels::ewTypeBytes(a.outType), "output"};

  const bool f32 = d.registers == EwRegisters::kF32;
  const bool single = d.numInstrs == 1 && n_in <= 3;
  const char* name;
  if (d.registers == EwRegisters::kCast) {
    name = kernels::kEwCastKernel;
  } else if (contiguous) {
    name = f32 ? (single ? kernels::kEwF32ContigSingleKernel : kernels::kEwF32ContigKernel)
               : (single ? kernels::kEwI64ContigSingleKernel : kernels::kEwI64ContigKernel);
  } else {
    // Drop unit dimensions and merge neighbours that every input steps through as one
    // ([N,C,H,W] x [N,C,1,1] becomes [N*C, H*W] x [N*C, 1]).
    int m = 0;
    std::int64_t mdims[kEwMaxInputRank];
    std::int64_t msteps[kEwMaxInputs][kEwMaxInputRank];
    for (int d0 = 0; d0 < r; ++d0) {
      if (dims[d0] == 1) continue;
      bool merge = m > 0;
      for (int k = 0; merge && k < n_in; ++k) merge = msteps[k][m - 1] == steps[k][d0] * dims[d0];
      if (merge) {
        mdims[m - 1] *= dims[d0];
        for (int k = 0; k < n_in; ++k) msteps[k][m - 1] = steps[k][d0];
        continue;
      }
      mdims[m] = dims[d0];
      for (int k = 0; k < n_in; ++k) msteps[k][m] = steps[k][d0];
      ++m;
    }
    if (m > kEwMaxRank)
      ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": the broadcast needs ", m,
                  " dimensions after merging; the kernels index at most ", kEwMaxRank);
    a.rank = static_cast<std::int8_t>(m);
    for (int d0 = 0; d0 < m; ++d0) {
      a.dims[d0] = mdims[d0];
      for (int k = 0; k < n_in; ++k) a.strides[k][d0] = msteps[k][d0];
    }
    name = f32 ? (single ? kernels::kEwF32StridedSingleKernel : kernels::kEwF32StridedKernel)
               : (single ? kernels::kEwI64StridedSingleKernel : kernels::kEwI64StridedKernel);
  }

  const auto pack = packArgs<EwArgs>(a);
  KernelLaunch k;
  k.name = name;
  k.args = &pack;
  k.argBytes = sizeof pack;
  k.ranges = ranges;
  k.rangeCount = static_cast<std::size_t>(n_in + 1);
  const LaunchShape shape{Dim3{kernels::elementwiseGrid(n)}, Dim3{static_cast<unsigned>(kernels::kEwBlock)}, 0};
  runtime.launch(k, shape, stream);
}

}  // namespace anvil::cuda
