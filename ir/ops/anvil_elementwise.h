// The program of anvil.FusedElementwise: a straight-line list of elementwise ops over
// registers, evaluated once per output element. Shared by the schema
// (ir/ops/anvil_elementwise.cpp), the fusion pass (passes/elementwise_fusion.cpp) and the
// reference kernel (cpu/kernels/anvil_elementwise.cpp).
//
// Registers 0..n-1 hold the node's n inputs (numpy-broadcast to the output); instruction k
// writes register n+k; the last instruction's register is the output. The attribute
// `program` (strings) holds one instruction per entry:
//   "<Op> <operand> [<operand> ...] [<name>=<value> ...]"
// operands are register numbers ("_" for an omitted optional operand: Clip's min/max);
// named values are the ONNX op's float attributes (LeakyRelu alpha=0.01) or Gelu's
// approximate=none|tanh. Example (SiLU then a residual add, inputs x, z):
//   program=["Sigmoid 0", "Mul 0 2", "Add 3 1"]
// Each instruction computes exactly what the ONNX op's reference kernel computes for one
// element (same formula, in the compute type, rounded to the element type after every
// instruction), so a fused chain gives the numbers of the unfused chain.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

namespace anvil::ir::ew {

enum class Op {
  // binary (numpy broadcasting)
  kAdd, kSub, kMul, kDiv, kPow, kMax, kMin, kPRelu,
  // ternary: x, min (optional), max (optional)
  kClip,
  // unary
  kAbs, kNeg, kExp, kLog, kSqrt, kReciprocal, kSigmoid, kTanh, kRelu, kErf, kFloor, kCeil, kRound,
  kSin, kCos, kSoftplus, kSoftsign, kSign, kHardSwish, kMish,
  // unary with attributes
  kLeakyRelu, kElu, kSelu, kCelu, kHardSigmoid, kThresholdedRelu, kGelu,
  kCount
};

struct OpInfo {
  const char* name;
  int operands;               // 1, 2 or 3
  const char* params[2];      // float attributes, in order (null: none)
  float defaults[2];          // their ONNX defaults
};

inline const OpInfo& opInfo(Op op) {
  static const OpInfo kInfo[int(Op::kCount)] = {
      {"Add", 2, {}, {}},         {"Sub", 2, {}, {}},         {"Mul", 2, {}, {}},
      {"Div", 2, {}, {}},         {"Pow", 2, {}, {}},         {"Max", 2, {}, {}},
      {"Min", 2, {}, {}},         {"PRelu", 2, {}, {}},       {"Clip", 3, {}, {}},
      {"Abs", 1, {}, {}},         {"Neg", 1, {}, {}},         {"Exp", 1, {}, {}},
      {"Log", 1, {}, {}},         {"Sqrt", 1, {}, {}},        {"Reciprocal", 1, {}, {}},
      {"Sigmoid", 1, {}, {}},     {"Tanh", 1, {}, {}},        {"Relu", 1, {}, {}},
      {"Erf", 1, {}, {}},         {"Floor", 1, {}, {}},       {"Ceil", 1, {}, {}},
      {"Round", 1, {}, {}},       {"Sin", 1, {}, {}},         {"Cos", 1, {}, {}},
      {"Softplus", 1, {}, {}},    {"Softsign", 1, {}, {}},    {"Sign", 1, {}, {}},
      {"HardSwish", 1, {}, {}},   {"Mish", 1, {}, {}},
      {"LeakyRelu", 1, {"alpha"}, {0.01f}},
      {"Elu", 1, {"alpha"}, {1.0f}},
      {"Selu", 1, {"alpha", "gamma"}, {1.67326319217681884765625f, 1.05070102214813232421875f}},
      {"Celu", 1, {"alpha"}, {1.0f}},
      {"HardSigmoid", 1, {"alpha", "beta"}, {0.2f, 0.5f}},
      {"ThresholdedRelu", 1, {"alpha"}, {1.0f}},
      {"Gelu", 1, {}, {}},  // approximate=none|tanh (p0: 0 none, 1 tanh)
  };
  return kInfo[int(op)];
}

inline bool opFromName(const std::string& name, Op* out) {
  for (int i = 0; i < int(Op::kCount); ++i)
    if (name == opInfo(Op(i)).name) {
      *out = Op(i);
      return true;
    }
  return false;
}

struct Instr {
  Op op = Op::kAdd;
  int a = -1, b = -1, c = -1;  // operand registers (-1: omitted)
  float p0 = 0, p1 = 0;        // attributes (Gelu: p0 = 1 for tanh)
};

struct Program {
  int numInputs = 0;
  std::vector<Instr> code;
  int numRegisters() const { return numInputs + int(code.size()); }
};

// One instruction as program text.
inline std::string formatInstr(const Instr& in) {
  const OpInfo& info = opInfo(in.op);
  std::ostringstream os;
  os << info.name;
  const int ops[3] = {in.a, in.b, in.c};
  for (int k = 0; k < info.operands; ++k) {
    if (ops[k] < 0) os << " _";
    else os << " " << ops[k];
  }
  if (in.op == Op::kGelu) {
    os << " approximate=" << (in.p0 != 0 ? "tanh" : "none");
  } else {
    const float p[2] = {in.p0, in.p1};
    for (int k = 0; k < 2 && info.params[k]; ++k) {
      char buf[32];
      snprintf(buf, sizeof buf, "%.9g", double(p[k]));
      os << " " << info.params[k] << "=" << buf;
    }
  }
  return os.str();
}

inline std::vector<std::string> formatProgram(const Program& p) {
  std::vector<std::string> out;
  for (const Instr& in : p.code) out.push_back(formatInstr(in));
  return out;
}

// Parses the `program` attribute of a node with `numInputs` inputs; returns "" or what is
// wrong (naming the instruction).
inline std::string parseProgram(const std::vector<std::string>& text, int numInputs, Program* out) {
  out->numInputs = numInputs;
  out->code.clear();
  if (text.empty()) return "program is empty";
  for (size_t k = 0; k < text.size(); ++k) {
    const std::string where = "instruction " + std::to_string(k) + " '" + text[k] + "': ";
    std::istringstream is(text[k]);
    std::string tok;
    if (!(is >> tok)) return where + "empty";
    Instr in;
    if (!opFromName(tok, &in.op)) return where + "unknown op '" + tok + "'";
    const OpInfo& info = opInfo(in.op);
    in.p0 = info.defaults[0];
    in.p1 = info.defaults[1];
    int* ops[3] = {&in.a, &in.b, &in.c};
    const int defined = numInputs + int(k);
    for (int j = 0; j < info.operands; ++j) {
      if (!(is >> tok)) return where + "expected " + std::to_string(info.operands) + " operands";
      if (tok == "_") {
        if (!(in.op == Op::kClip && j > 0)) return where + "operand " + std::to_string(j) + " may not be omitted";
        continue;
      }
      char* end = nullptr;
      const long r = strtol(tok.c_str(), &end, 10);
      if (tok.empty() || *end != 0 || r < 0 || r >= defined)
        return where + "operand '" + tok + "' is not a register defined before (0.." + std::to_string(defined - 1) + ")";
      *ops[j] = int(r);
    }
    while (is >> tok) {
      const size_t eq = tok.find('=');
      if (eq == std::string::npos) return where + "unexpected '" + tok + "'";
      const std::string name = tok.substr(0, eq), value = tok.substr(eq + 1);
      if (in.op == Op::kGelu && name == "approximate") {
        if (value != "none" && value != "tanh") return where + "approximate must be none or tanh";
        in.p0 = value == "tanh" ? 1.0f : 0.0f;
        continue;
      }
      int slot = -1;
      for (int j = 0; j < 2; ++j)
        if (info.params[j] && name == info.params[j]) slot = j;
      if (slot < 0) return where + "unknown attribute '" + name + "'";
      char* end = nullptr;
      const float v = strtof(value.c_str(), &end);
      if (value.empty() || *end != 0) return where + "attribute '" + name + "' is not a number";
      (slot == 0 ? in.p0 : in.p1) = v;
    }
    out->code.push_back(in);
  }
  return "";
}

// ---- evaluation: one instruction on one element, in compute type C ---------------------

template <typename C>
inline C sigmoidOf(C x) {
  if (x >= C(0)) return C(1) / (C(1) + std::exp(-x));
  const C e = std::exp(x);
  return e / (C(1) + e);
}

template <typename C>
inline C softplusOf(C x) {
  return x > C(0) ? C(x + std::log1p(std::exp(-x))) : C(std::log1p(std::exp(x)));
}

template <typename C>
inline C nanAware(C a, C b, bool max) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) ? a : b;
  return max ? (a < b ? b : a) : (b < a ? b : a);
}

// The formulas of the ONNX reference kernels (cpu/kernels/elementwise*.cpp) for floats.
template <typename C>
inline C evalInstr(const Instr& in, C x, C y, C z, bool hasY, bool hasZ) {
  switch (in.op) {
    case Op::kAdd: return x + y;
    case Op::kSub: return x - y;
    case Op::kMul: return x * y;
    case Op::kDiv: return x / y;
    case Op::kPow: return C(std::pow(double(x), double(y)));
    case Op::kMax: return nanAware(x, y, true);
    case Op::kMin: return nanAware(x, y, false);
    case Op::kPRelu: return x < C(0) ? C(y * x) : x;
    case Op::kClip: {
      C v = x;
      if (hasY && v < y) v = y;
      if (hasZ && v > z) v = z;
      return v;
    }
    case Op::kAbs: return std::fabs(x);
    case Op::kNeg: return -x;
    case Op::kExp: return std::exp(x);
    case Op::kLog: return std::log(x);
    case Op::kSqrt: return std::sqrt(x);
    case Op::kReciprocal: return C(1) / x;
    case Op::kSigmoid: return sigmoidOf(x);
    case Op::kTanh: return std::tanh(x);
    case Op::kRelu: return x < C(0) ? C(0) : x;
    case Op::kErf: return std::erf(x);
    case Op::kFloor: return std::floor(x);
    case Op::kCeil: return std::ceil(x);
    case Op::kRound: return std::nearbyint(x);
    case Op::kSin: return std::sin(x);
    case Op::kCos: return std::cos(x);
    case Op::kSoftplus: return softplusOf(x);
    case Op::kSoftsign: return x / (C(1) + std::fabs(x));
    case Op::kSign:
      if (std::isnan(x)) return x;
      return x > C(0) ? C(1) : (x < C(0) ? C(-1) : C(0));
    case Op::kHardSwish: return x * std::fmax(C(0), std::fmin(C(1), x / C(6) + C(0.5)));
    case Op::kMish: return x * std::tanh(softplusOf(x));
    case Op::kLeakyRelu: return x < C(0) ? C(C(double(in.p0)) * x) : x;
    case Op::kElu: return x < C(0) ? C(C(double(in.p0)) * std::expm1(x)) : x;
    case Op::kSelu:
      return x > C(0) ? C(C(double(in.p1)) * x) : C(C(double(in.p1)) * C(double(in.p0)) * std::expm1(x));
    case Op::kCelu: {
      const C alpha = C(double(in.p0));
      return C(std::fmax(C(0), x) + std::fmin(C(0), C(alpha * std::expm1(x / alpha))));
    }
    case Op::kHardSigmoid: return std::fmax(C(0), std::fmin(C(1), C(double(in.p0)) * x + C(double(in.p1))));
    case Op::kThresholdedRelu: return x > C(double(in.p0)) ? x : C(0);
    case Op::kGelu:
      if (in.p0 != 0) {
        const C k = C(0.79788456080286535588);  // sqrt(2 / pi)
        return C(C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x))));
      }
      return C(C(0.5) * x * (C(1) + std::erf(x * C(0.70710678118654752440))));
    case Op::kCount: break;
  }
  return x;
}

}  // namespace anvil::ir::ew
