// The elementwise family on the CUDA backend: unary math and activations, binary arithmetic
// and comparisons with numpy broadcasting, logic and bitwise ops, Mod, IsNaN/IsInf, Clip,
// Sum/Max/Min/Mean, Where, Expand, Identity, Cast and anvil.FusedElementwise, all served by
// the generic program kernels of cuda/kernels/elementwise.cuh through launchElementwise
// (cuda/elementwise.h). prepare() turns the node into a program of at most kEwMaxInstrs
// instructions (one for a plain op, a fold for the variadic ops, the node's own for
// FusedElementwise); run() only fills the launch descriptor from the step's views.
#include <algorithm>
#include <cctype>
#include <string>
#include <vector>

#include "cuda/elementwise.h"
#include "cuda/tactics/fused_program.h"
#include "cuda/tactics/tactic_util.h"
#include "cuda/tactics/tactics.h"
#include "ir/ops/anvil_elementwise.h"

namespace anvil::cuda::tactics {

namespace {

using kernels::EwInstr;
using kernels::EwOp;
using kernels::kEwMaxInputs;
using kernels::kEwMaxInstrs;

// What prepare() leaves for run(): the program, which node input each input register reads
// (Clip's min and max may be omitted), and how the values travel.
struct EwParams {
  EwInstr code[kEwMaxInstrs];
  std::int8_t inputOf[kEwMaxInputs];
  std::int8_t numInputs;
  std::int8_t numInstrs;
  EwRegisters registers;
  bool roundEach;
  bool copy;  // Identity, Cast to its own type: one device-to-device copy
};

// The value classes a registration serves.
enum class Kind { kFloat, kInt, kBool };

// The output rank the strided kernel is sure to index (merging only lowers it).
constexpr size_t kMaxOutputRank = size_t(kernels::kEwMaxRank);

bool isFloatType(DataType t) { return t == DataType::kF32 || t == DataType::kF16 || t == DataType::kBF16; }
bool isIntType(DataType t) {
  return t == DataType::kI8 || t == DataType::kU8 || t == DataType::kI32 || t == DataType::kI64;
}
bool kindServes(Kind k, DataType t) {
  switch (k) {
    case Kind::kFloat: return isFloatType(t);
    case Kind::kInt: return isIntType(t);
    case Kind::kBool: return t == DataType::kBool;
  }
  return false;
}
// Cast, Where, Expand and Identity: the types tested end to end.
bool isMovableType(DataType t) { return isFloatType(t) || isIntType(t) || t == DataType::kBool; }

// Every input present in `types` and every output has a known rank the kernels index.
bool ranksOk(const ir::Node& n, const std::vector<ir::TensorType>& types) {
  for (const ir::TensorType& t : types)
    if (t.dtype != DataType::kUndefined && (!t.shape.rankKnown() || t.shape.rank() > kMaxOutputRank)) return false;
  for (const ir::Value* v : n.outputs())
    if (!v->type().shape.rankKnown() || v->type().shape.rank() > kMaxOutputRank) return false;
  return true;
}

// Every present input has one element type, and `kind` serves it.
bool sameServedType(const std::vector<ir::TensorType>& types, Kind kind) {
  if (types.empty() || !kindServes(kind, types[0].dtype)) return false;
  for (const ir::TensorType& t : types)
    if (t.dtype != DataType::kUndefined && t.dtype != types[0].dtype) return false;
  return true;
}

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

const char* kindPrefix(Kind k) { return k == Kind::kFloat ? "f32" : k == Kind::kInt ? "int" : "bool"; }

std::string kernelName(const std::string& prefix, const std::string& op) {
  return prefix + "_" + lower(op) + "_eltwise_block" + std::to_string(kernels::kEwBlock);
}

EwInstr instr(EwOp op, int a, int b = -1, int c = -1, float p0 = 0, float p1 = 0) {
  EwInstr in;
  in.op = op;
  in.a = std::int8_t(a);
  in.b = std::int8_t(b);
  in.c = std::int8_t(c);
  in.p0 = p0;
  in.p1 = p1;
  return in;
}

// Params whose input registers are the node's inputs in order.
EwParams directParams(int numInputs, EwRegisters regs) {
  EwParams p{};
  p.numInputs = std::int8_t(numInputs);
  for (int k = 0; k < numInputs; ++k) p.inputOf[k] = std::int8_t(k);
  p.registers = regs;
  return p;
}

EwRegisters registersOf(Kind k) { return k == Kind::kFloat ? EwRegisters::kF32 : EwRegisters::kI64; }

// One launch of the prepared program on the step's views.
void runParams(const runtime::StepArgs& a) {
  const EwParams& p = a.paramsAs<EwParams>();
  runtime::TensorView& y = a.out(0);
  if (p.copy) {
    const runtime::TensorView& x = a.in(0);
    if (x.bytes() != y.bytes()) a.fail("copy of " + std::to_string(x.bytes()) + " bytes into " + std::to_string(y.bytes()));
    if (x.bytes() && x.data != y.data)
      runtimeOf(a).copyAsync(y.data, x.data, x.bytes(), CopyKind::kDeviceToDevice, streamOf(a));
    return;
  }
  ElementwiseDesc d;
  d.registers = p.registers;
  d.numInputs = p.numInputs;
  for (int k = 0; k < p.numInputs; ++k) {
    const int i = p.inputOf[k];
    if (!a.hasInput(i)) a.fail("input " + std::to_string(i) + " is missing");
    const runtime::TensorView& x = a.in(i);
    d.in[k] = EwOperand{x.data, x.dtype, x.rank, x.dims};
  }
  d.out = EwOperand{y.data, y.dtype, y.rank, y.dims};
  d.numInstrs = p.numInstrs;
  std::copy(p.code, p.code + p.numInstrs, d.code);
  d.roundEach = p.roundEach;
  d.what = a.node ? a.node->op().c_str() : "elementwise";
  launchElementwise(runtimeOf(a), streamOf(a), d);
}

runtime::Kernel entry(const std::string& name, const std::string& op, Kind kind, const std::string& domain = "") {
  runtime::Kernel k = cudaKernel(name, op, domain);
  if (kind != Kind::kFloat) k.precision = DataType::kUndefined;  // integer / bool values, no float math
  k.run = runParams;
  return k;
}

// ---- unary and binary ONNX ops -------------------------------------------------------

// An op computed by one instruction on its inputs (attributes from the node).
struct SimpleOp {
  const char* name;
  EwOp op;
  int inputs;      // 1 or 2
  bool floatOk, intOk, boolOk;  // which value classes it is registered for
};

const SimpleOp kSimpleOps[] = {
    {"Relu", EwOp::kRelu, 1, true, true, false},
    {"Abs", EwOp::kAbs, 1, true, true, false},
    {"Neg", EwOp::kNeg, 1, true, true, false},
    {"Sigmoid", EwOp::kSigmoid, 1, true, false, false},
    {"Tanh", EwOp::kTanh, 1, true, false, false},
    {"Erf", EwOp::kErf, 1, true, false, false},
    {"Exp", EwOp::kExp, 1, true, false, false},
    {"Log", EwOp::kLog, 1, true, false, false},
    {"Sqrt", EwOp::kSqrt, 1, true, false, false},
    {"Reciprocal", EwOp::kReciprocal, 1, true, false, false},
    {"Floor", EwOp::kFloor, 1, true, false, false},
    {"Ceil", EwOp::kCeil, 1, true, false, false},
    {"Round", EwOp::kRound, 1, true, false, false},
    {"Sin", EwOp::kSin, 1, true, false, false},
    {"Cos", EwOp::kCos, 1, true, false, false},
    {"Softplus", EwOp::kSoftplus, 1, true, false, false},
    {"Softsign", EwOp::kSoftsign, 1, true, false, false},
    {"Sign", EwOp::kSign, 1, true, false, false},
    {"HardSwish", EwOp::kHardSwish, 1, true, false, false},
    {"Mish", EwOp::kMish, 1, true, false, false},
    {"LeakyRelu", EwOp::kLeakyRelu, 1, true, false, false},
    {"Elu", EwOp::kElu, 1, true, false, false},
    {"Selu", EwOp::kSelu, 1, true, false, false},
    {"Celu", EwOp::kCelu, 1, true, false, false},
    {"HardSigmoid", EwOp::kHardSigmoid, 1, true, false, false},
    {"ThresholdedRelu", EwOp::kThresholdedRelu, 1, true, false, false},
    {"Gelu", EwOp::kGeluErf, 1, true, false, false},
    {"Not", EwOp::kNot, 1, false, false, true},
    {"Add", EwOp::kAdd, 2, true, true, false},
    {"Sub", EwOp::kSub, 2, true, true, false},
    {"Mul", EwOp::kMul, 2, true, true, false},
    {"Div", EwOp::kDiv, 2, true, true, false},
    {"Pow", EwOp::kPow, 2, true, false, false},
    {"PRelu", EwOp::kPRelu, 2, true, false, false},
    {"Equal", EwOp::kEqual, 2, true, true, true},
    {"Less", EwOp::kLess, 2, true, true, true},
    {"Greater", EwOp::kGreater, 2, true, true, true},
    {"LessOrEqual", EwOp::kLessOrEqual, 2, true, true, true},
    {"GreaterOrEqual", EwOp::kGreaterOrEqual, 2, true, true, true},
    {"And", EwOp::kAnd, 2, false, false, true},
    {"Or", EwOp::kOr, 2, false, false, true},
    {"Xor", EwOp::kXor, 2, false, false, true},
    {"Mod", EwOp::kMod, 2, true, true, false},
    {"BitwiseAnd", EwOp::kBitAnd, 2, false, true, true},
    {"BitwiseOr", EwOp::kBitOr, 2, false, true, true},
    {"BitwiseXor", EwOp::kBitXor, 2, false, true, true},
    {"BitwiseNot", EwOp::kBitNot, 1, false, true, true},  // bool: Not
    {"IsNaN", EwOp::kIsNaN, 1, true, false, false},
    {"IsInf", EwOp::kIsInf, 1, true, false, false},
};

// The node's float attributes as the instruction's p0/p1 (ONNX defaults when absent), or
// false for attribute values the kernels do not serve.
bool decodeAttributes(const ir::Node& n, EwInstr* in) {
  if (n.op() == "Gelu") {
    const std::string approx = n.attrs().getString("approximate", "none");
    if (approx != "none" && approx != "tanh") return false;
    in->op = approx == "tanh" ? EwOp::kGeluTanh : EwOp::kGeluErf;
    return true;
  }
  if (n.op() == "IsInf") {
    in->p0 = n.attrs().getInt("detect_negative", 1) != 0 ? 1.0f : 0.0f;
    in->p1 = n.attrs().getInt("detect_positive", 1) != 0 ? 1.0f : 0.0f;
    return true;
  }
  if (n.op() == "Mod") {
    const std::int64_t fmod = n.attrs().getInt("fmod", 0);
    in->p0 = float(fmod);
    return fmod == 0 || fmod == 1;
  }
  ir::ew::Op op;
  if (!ir::ew::opFromName(n.op(), &op)) return true;  // comparisons, logic: no attributes
  const ir::ew::OpInfo& info = ir::ew::opInfo(op);
  float p[2] = {info.defaults[0], info.defaults[1]};
  for (int j = 0; j < 2; ++j)
    if (info.params[j]) p[j] = n.attrs().getFloat(info.params[j], info.defaults[j]);
  if (n.op() == "Celu" && p[0] == 0) return false;  // the reference refuses alpha = 0
  in->p0 = p[0];
  in->p1 = p[1];
  return true;
}

void addSimple(runtime::Kernels& reg, SimpleOp s, Kind kind) {
  if (kind == Kind::kBool && s.op == EwOp::kBitNot) s.op = EwOp::kNot;  // ~ of a bool is its negation
  runtime::Kernel k = entry(kernelName(kindPrefix(kind), s.name), s.name, kind);
  k.supports = [s, kind](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    if (int(types.size()) != s.inputs || n.numOutputs() != 1 || !ranksOk(n, types)) return false;
    if (!sameServedType(types, kind)) return false;
    EwInstr in = instr(s.op, 0, s.inputs > 1 ? 1 : -1);
    return decodeAttributes(n, &in);
  };
  k.prepare = [s, kind](const runtime::PrepareInfo& info, runtime::Prepared* out) {
    EwParams p = directParams(s.inputs, registersOf(kind));
    EwInstr in = instr(s.op, 0, s.inputs > 1 ? 1 : -1);
    if (!decodeAttributes(*info.node, &in)) ANVIL_THROW(ErrorCode::kUnsupported, info.node->label(), ": attributes not served");
    p.code[0] = in;
    p.numInstrs = 1;
    out->setParams(p);
  };
  reg.add(std::move(k));
}

// Sum / Max / Min / Mean over 1..kEwMaxInputs inputs: a left fold, as the reference folds
// (Mean then divides by the count; floats only, the integer reference wraps before it divides).
void addVariadic(runtime::Kernels& reg, const char* name, EwOp op, Kind kind, bool mean = false) {
  runtime::Kernel k = entry(kernelName(kindPrefix(kind), name), name, kind);
  k.supports = [kind](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    if (types.empty() || types.size() > size_t(kEwMaxInputs) || n.numOutputs() != 1 || !ranksOk(n, types)) return false;
    for (const ir::TensorType& t : types)
      if (t.dtype == DataType::kUndefined) return false;
    return sameServedType(types, kind);
  };
  k.prepare = [op, kind, mean](const runtime::PrepareInfo& info, runtime::Prepared* out) {
    const int n = int(info.node->numInputs());
    EwParams p = directParams(n, registersOf(kind));
    if (n == 1) {
      p.code[0] = instr(EwOp::kIdentity, 0);
      p.numInstrs = 1;
    } else {
      p.code[0] = instr(op, 0, 1);
      for (int j = 2; j < n; ++j) p.code[j - 1] = instr(op, n + j - 2, j);
      p.numInstrs = std::int8_t(n - 1);
    }
    if (mean) {
      p.code[p.numInstrs] = instr(EwOp::kDivConst, n + p.numInstrs - 1, -1, -1, float(n));
      ++p.numInstrs;
    }
    out->setParams(p);
  };
  reg.add(std::move(k));
}

// Clip (x, min?, max?): min and max are inputs since opset 11 (the importer turns the
// attributes of older opsets into constant inputs); each holds one element.
void addClip(runtime::Kernels& reg) {
  runtime::Kernel k = entry(kernelName("f32", "Clip"), "Clip", Kind::kFloat);
  k.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    if (types.empty() || types.size() > 3 || n.numOutputs() != 1 || !ranksOk(n, types)) return false;
    return sameServedType(types, Kind::kFloat);
  };
  k.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* out) {
    const ir::Node& n = *info.node;
    EwParams p{};
    p.registers = EwRegisters::kF32;
    int regs = 0;
    int operand[3] = {-1, -1, -1};
    for (size_t i = 0; i < n.numInputs() && i < 3; ++i) {
      if (!n.input(i)) continue;
      operand[i] = regs;
      p.inputOf[regs++] = std::int8_t(i);
    }
    p.numInputs = std::int8_t(regs);
    p.code[0] = instr(EwOp::kClip, operand[0], operand[1], operand[2]);
    p.numInstrs = 1;
    out->setParams(p);
  };
  reg.add(std::move(k));
}

// Where (cond, x, y): elements move as bits, any served type.
void addWhere(runtime::Kernels& reg) {
  runtime::Kernel k = entry(kernelName("any", "Where"), "Where", Kind::kInt);
  k.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    return types.size() == 3 && n.numOutputs() == 1 && ranksOk(n, types) && types[0].dtype == DataType::kBool &&
           isMovableType(types[1].dtype) && types[2].dtype == types[1].dtype;
  };
  k.prepare = [](const runtime::PrepareInfo&, runtime::Prepared* out) {
    EwParams p = directParams(3, EwRegisters::kBits);
    p.code[0] = instr(EwOp::kWhere, 0, 1, 2);
    p.numInstrs = 1;
    out->setParams(p);
  };
  reg.add(std::move(k));
}

// Expand (x, shape): a broadcast copy; the extents are the output view's at run time, so the
// shape input (constant or computed) is not read.
void addExpand(runtime::Kernels& reg) {
  runtime::Kernel k = entry(kernelName("any", "Expand"), "Expand", Kind::kInt);
  k.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    if (types.size() != 2 || n.numOutputs() != 1 || !isMovableType(types[0].dtype)) return false;
    const ir::TensorType& x = types[0];
    const ir::TensorType& y = n.output(0)->type();
    return x.shape.rankKnown() && y.shape.rankKnown() && y.shape.rank() <= kMaxOutputRank &&
           x.shape.rank() <= y.shape.rank();
  };
  k.prepare = [](const runtime::PrepareInfo&, runtime::Prepared* out) {
    EwParams p = directParams(1, EwRegisters::kBits);
    p.code[0] = instr(EwOp::kIdentity, 0);
    p.numInstrs = 1;
    out->setParams(p);
  };
  reg.add(std::move(k));
}

void addIdentity(runtime::Kernels& reg) {
  runtime::Kernel k = entry(kernelName("any", "Identity"), "Identity", Kind::kInt);
  k.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    return types.size() == 1 && n.numOutputs() == 1 && types[0].dtype != DataType::kString &&
           types[0].dtype != DataType::kUndefined && ir::bitWidth(types[0].dtype) % 8 == 0;
  };
  k.prepare = [](const runtime::PrepareInfo&, runtime::Prepared* out) {
    EwParams p = directParams(1, EwRegisters::kBits);
    p.copy = true;
    out->setParams(p);
  };
  reg.add(std::move(k));
}

// Cast among f32, f16, bf16, i8, u8, i32, i64 and bool, converting as the reference does.
void addCast(runtime::Kernels& reg) {
  runtime::Kernel k = entry(kernelName("any", "Cast"), "Cast", Kind::kInt);
  k.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    if (types.size() != 1 || n.numOutputs() != 1 || !ranksOk(n, types)) return false;
    const std::int64_t to = n.attrs().getInt("to", 0);
    if (to <= 0 || to > ir::kMaxDataType) return false;
    return isMovableType(types[0].dtype) && isMovableType(DataType(to));
  };
  k.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* out) {
    EwParams p = directParams(1, EwRegisters::kCast);
    p.copy = info.minTypes[0].dtype == DataType(info.node->attrs().getInt("to", 0));
    out->setParams(p);
  };
  reg.add(std::move(k));
}

// ---- anvil.FusedElementwise -----------------------------------------------------------

// The node's program as kernel instructions (fused_program.h); false where it is not served.
bool fusedProgram(const ir::Node& n, EwParams* p) {
  FusedProgram prog;
  if (!decodeFusedProgram(n, &prog)) return false;
  *p = directParams(prog.numInputs, EwRegisters::kF32);
  std::copy(prog.code, prog.code + prog.numInstrs, p->code);
  p->numInstrs = std::int8_t(prog.numInstrs);
  return true;
}

void addFused(runtime::Kernels& reg) {
  runtime::Kernel k = entry("f32_fused_eltwise_program16_block256", "FusedElementwise", Kind::kFloat, "anvil");
  k.supports = [](const ir::Node& n, const std::vector<ir::TensorType>& types) {
    EwParams p;
    return n.numOutputs() == 1 && ranksOk(n, types) && sameServedType(types, Kind::kFloat) && fusedProgram(n, &p);
  };
  k.prepare = [](const runtime::PrepareInfo& info, runtime::Prepared* out) {
    EwParams p;
    if (!fusedProgram(*info.node, &p))
      ANVIL_THROW(ErrorCode::kUnsupported, info.node->label(), ": program not served by the CUDA interpreter");
    // The reference rounds every register to the element type: f16/bf16 chains must too.
    p.roundEach = info.minTypes[0].dtype != DataType::kF32;
    out->setParams(p);
  };
  reg.add(std::move(k));
}

}  // namespace

void addElementwiseKernels(runtime::Kernels& k) {
  for (const SimpleOp& s : kSimpleOps) {
    if (s.floatOk) addSimple(k, s, Kind::kFloat);
    if (s.intOk) addSimple(k, s, Kind::kInt);
    if (s.boolOk) addSimple(k, s, Kind::kBool);
  }
  for (Kind kind : {Kind::kFloat, Kind::kInt}) {
    addVariadic(k, "Sum", EwOp::kAdd, kind);
    addVariadic(k, "Max", EwOp::kMax, kind);
    addVariadic(k, "Min", EwOp::kMin, kind);
  }
  addVariadic(k, "Mean", EwOp::kAdd, Kind::kFloat, true);
  addClip(k);
  addWhere(k);
  addExpand(k);
  addIdentity(k);
  addCast(k);
  addFused(k);
}

}  // namespace anvil::cuda::tactics
