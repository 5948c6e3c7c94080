// The decoding of anvil.FusedElementwise programs for the CUDA tactics (fused_program.h):
// ir::ew ops mapped to the kernels' opcodes.
#include "cuda/tactics/fused_program.h"

#include <string>
#include <vector>

#include "ir/ops/anvil_elementwise.h"

namespace anvil::cuda::tactics {

namespace {

using kernels::EwOp;

bool toEwOp(ir::ew::Op op, EwOp* out) {
  using O = ir::ew::Op;
  switch (op) {
    case O::kAdd: *out = EwOp::kAdd; return true;
    case O::kSub: *out = EwOp::kSub; return true;
    case O::kMul: *out = EwOp::kMul; return true;
    case O::kDiv: *out = EwOp::kDiv; return true;
    case O::kPow: *out = EwOp::kPow; return true;
    case O::kMax: *out = EwOp::kMax; return true;
    case O::kMin: *out = EwOp::kMin; return true;
    case O::kPRelu: *out = EwOp::kPRelu; return true;
    case O::kClip: *out = EwOp::kClip; return true;
    case O::kAbs: *out = EwOp::kAbs; return true;
    case O::kNeg: *out = EwOp::kNeg; return true;
    case O::kExp: *out = EwOp::kExp; return true;
    case O::kLog: *out = EwOp::kLog; return true;
    case O::kSqrt: *out = EwOp::kSqrt; return true;
    case O::kReciprocal: *out = EwOp::kReciprocal; return true;
    case O::kSigmoid: *out = EwOp::kSigmoid; return true;
    case O::kTanh: *out = EwOp::kTanh; return true;
    case O::kRelu: *out = EwOp::kRelu; return true;
    case O::kErf: *out = EwOp::kErf; return true;
    case O::kFloor: *out = EwOp::kFloor; return true;
    case O::kCeil: *out = EwOp::kCeil; return true;
    case O::kRound: *out = EwOp::kRound; return true;
    case O::kSin: *out = EwOp::kSin; return true;
    case O::kCos: *out = EwOp::kCos; return true;
    case O::kSoftplus: *out = EwOp::kSoftplus; return true;
    case O::kSoftsign: *out = EwOp::kSoftsign; return true;
    case O::kSign: *out = EwOp::kSign; return true;
    case O::kHardSwish: *out = EwOp::kHardSwish; return true;
    case O::kMish: *out = EwOp::kMish; return true;
    case O::kLeakyRelu: *out = EwOp::kLeakyRelu; return true;
    case O::kElu: *out = EwOp::kElu; return true;
    case O::kSelu: *out = EwOp::kSelu; return true;
    case O::kCelu: *out = EwOp::kCelu; return true;
    case O::kHardSigmoid: *out = EwOp::kHardSigmoid; return true;
    case O::kThresholdedRelu: *out = EwOp::kThresholdedRelu; return true;
    case O::kGelu: *out = EwOp::kGeluErf; return true;
    case O::kCount: break;
  }
  return false;
}

}  // namespace

bool decodeFusedProgram(const ir::Node& n, FusedProgram* out) {
  const int inputs = int(n.numInputs());
  if (inputs < 1 || inputs > kernels::kEwMaxInputs) return false;
  for (const ir::Value* v : n.inputs())
    if (!v) return false;
  ir::ew::Program prog;
  if (!ir::ew::parseProgram(n.attrs().getStrings("program"), inputs, &prog).empty()) return false;
  if (prog.code.empty() || prog.code.size() > size_t(kernels::kEwMaxInstrs)) return false;
  FusedProgram p;
  p.numInputs = inputs;
  for (size_t c = 0; c < prog.code.size(); ++c) {
    const ir::ew::Instr& in = prog.code[c];
    kernels::EwInstr& k = p.code[c];
    if (!toEwOp(in.op, &k.op)) return false;
    if (in.op == ir::ew::Op::kGelu && in.p0 != 0) k.op = EwOp::kGeluTanh;
    k.a = std::int8_t(in.a);
    k.b = std::int8_t(in.b);
    k.c = std::int8_t(in.c);
    k.p0 = in.p0;
    k.p1 = in.p1;
  }
  p.numInstrs = int(prog.code.size());
  *out = p;
  return true;
}

}  // namespace anvil::cuda::tactics
