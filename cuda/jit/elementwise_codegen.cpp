// The generator of fused elementwise kernels (elementwise_codegen.h): each op becomes one
// statement writing its register (infix for + - * / and negation, a __forceinline__ helper
// carrying the interpreter's formula for the rest), only the helpers a program uses are
// emitted, and attribute values are spelled as exact hexadecimal float literals. Registers the
// output does not depend on are left out (no loads of unread inputs, no dead statements).
#include "cuda/jit/elementwise_codegen.h"

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <vector>

#include "anvil/error.h"

namespace anvil::cuda::jit {

namespace {

using kernels::EwInstr;
using kernels::EwOp;

// A float exactly as CUDA C reads it back: a hexadecimal literal, or its bits where it is
// not finite (no INFINITY / NAN macros without headers).
std::string literal(float v) {
  char buf[64];
  if (!std::isfinite(v)) {
    std::uint32_t bits;
    std::memcpy(&bits, &v, sizeof bits);
    std::snprintf(buf, sizeof buf, "__int_as_float(0x%08x)", static_cast<unsigned>(bits));
  } else {
    std::snprintf(buf, sizeof buf, "(%af)", static_cast<double>(v));
  }
  return buf;
}

// The helper of an op (its definition, and helpers it calls), or null where the op is
// written inline. Formulas and their order are those of ewEvalFloat (elementwise.cuh).
struct Helper {
  const char* name;
  const char* definition;
  EwOp needs = EwOp::kCount;  // a helper this one calls
};

const Helper* helperOf(EwOp op) {
  static const Helper kMax{"anvil_max",
                           "static __device__ __forceinline__ float anvil_max(float a, float b) {\n"
                           "  if (a != a || b != b) return a != a ? a : b;\n"
                           "  return a < b ? b : a;\n}\n"};
  static const Helper kMin{"anvil_min",
                           "static __device__ __forceinline__ float anvil_min(float a, float b) {\n"
                           "  if (a != a || b != b) return a != a ? a : b;\n"
                           "  return b < a ? b : a;\n}\n"};
  static const Helper kPow{"anvil_pow",
                           "static __device__ __forceinline__ float anvil_pow(float x, float y) {\n"
                           "  return (float)pow((double)x, (double)y);\n}\n"};
  static const Helper kPRelu{"anvil_prelu",
                             "static __device__ __forceinline__ float anvil_prelu(float x, float s) {\n"
                             "  return x < 0.0f ? s * x : x;\n}\n"};
  static const Helper kClip{"anvil_clip",
                            "static __device__ __forceinline__ float anvil_clip_lo(float v, float lo) {\n"
                            "  return v < lo ? lo : v;\n}\n"
                            "static __device__ __forceinline__ float anvil_clip_hi(float v, float hi) {\n"
                            "  return v > hi ? hi : v;\n}\n"};
  static const Helper kRelu{"anvil_relu",
                            "static __device__ __forceinline__ float anvil_relu(float x) {\n"
                            "  return x < 0.0f ? 0.0f : x;\n}\n"};
  static const Helper kSigmoid{"anvil_sigmoid",
                               "static __device__ __forceinline__ float anvil_sigmoid(float x) {\n"
                               "  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));\n"
                               "  const float e = expf(x);\n"
                               "  return e / (1.0f + e);\n}\n"};
  static const Helper kSoftplus{"anvil_softplus",
                                "static __device__ __forceinline__ float anvil_softplus(float x) {\n"
                                "  return x > 0.0f ? x + log1pf(expf(-x)) : log1pf(expf(x));\n}\n"};
  static const Helper kSoftsign{"anvil_softsign",
                                "static __device__ __forceinline__ float anvil_softsign(float x) {\n"
                                "  return x / (1.0f + fabsf(x));\n}\n"};
  static const Helper kSign{"anvil_sign",
                            "static __device__ __forceinline__ float anvil_sign(float x) {\n"
                            "  if (x != x) return x;\n"
                            "  return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);\n}\n"};
  static const Helper kHardSwish{"anvil_hardswish",
                                 "static __device__ __forceinline__ float anvil_hardswish(float x) {\n"
                                 "  return x * fmaxf(0.0f, fminf(1.0f, x / 6.0f + 0.5f));\n}\n"};
  static const Helper kMish{"anvil_mish",
                            "static __device__ __forceinline__ float anvil_mish(float x) {\n"
                            "  return x * tanhf(anvil_softplus(x));\n}\n",
                            EwOp::kSoftplus};
  static const Helper kLeakyRelu{"anvil_leaky_relu",
                                 "static __device__ __forceinline__ float anvil_leaky_relu(float x, float alpha) {\n"
                                 "  return x < 0.0f ? alpha * x : x;\n}\n"};
  static const Helper kElu{"anvil_elu",
                           "static __device__ __forceinline__ float anvil_elu(float x, float alpha) {\n"
                           "  return x < 0.0f ? alpha * expm1f(x) : x;\n}\n"};
  static const Helper kSelu{"anvil_selu",
                            "static __device__ __forceinline__ float anvil_selu(float x, float alpha, float gamma) {\n"
                            "  return x > 0.0f ? gamma * x : gamma * alpha * expm1f(x);\n}\n"};
  static const Helper kCelu{"anvil_celu",
                            "static __device__ __forceinline__ float anvil_celu(float x, float alpha) {\n"
                            "  return fmaxf(0.0f, x) + fminf(0.0f, alpha * expm1f(x / alpha));\n}\n"};
  static const Helper kHardSigmoid{"anvil_hard_sigmoid",
                                   "static __device__ __forceinline__ float anvil_hard_sigmoid(float x, float alpha, "
                                   "float beta) {\n"
                                   "  return fmaxf(0.0f, fminf(1.0f, alpha * x + beta));\n}\n"};
  static const Helper kThresholdedRelu{"anvil_thresholded_relu",
                                       "static __device__ __forceinline__ float anvil_thresholded_relu(float x, "
                                       "float alpha) {\n"
                                       "  return x > alpha ? x : 0.0f;\n}\n"};
  static const Helper kGeluErf{"anvil_gelu_erf",
                               "static __device__ __forceinline__ float anvil_gelu_erf(float x) {\n"
                               "  return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));\n}\n"};
  static const Helper kGeluTanh{"anvil_gelu_tanh",
                                "static __device__ __forceinline__ float anvil_gelu_tanh(float x) {\n"
                                "  const float k = 0.79788456080286535588f;\n"
                                "  return 0.5f * x * (1.0f + tanhf(k * (x + 0.044715f * x * x * x)));\n}\n"};
  switch (op) {
    case EwOp::kMax: return &kMax;
    case EwOp::kMin: return &kMin;
    case EwOp::kPow: return &kPow;
    case EwOp::kPRelu: return &kPRelu;
    case EwOp::kClip: return &kClip;
    case EwOp::kRelu: return &kRelu;
    case EwOp::kSigmoid: return &kSigmoid;
    case EwOp::kSoftplus: return &kSoftplus;
    case EwOp::kSoftsign: return &kSoftsign;
    case EwOp::kSign: return &kSign;
    case EwOp::kHardSwish: return &kHardSwish;
    case EwOp::kMish: return &kMish;
    case EwOp::kLeakyRelu: return &kLeakyRelu;
    case EwOp::kElu: return &kElu;
    case EwOp::kSelu: return &kSelu;
    case EwOp::kCelu: return &kCelu;
    case EwOp::kHardSigmoid: return &kHardSigmoid;
    case EwOp::kThresholdedRelu: return &kThresholdedRelu;
    case EwOp::kGeluErf: return &kGeluErf;
    case EwOp::kGeluTanh: return &kGeluTanh;
    default: return nullptr;
  }
}

std::string reg(int r) { return "r" + std::to_string(r); }

// The right-hand side of instruction `in`; false for an op without a generated form.
bool expression(const EwInstr& in, std::string* out) {
  const std::string x = reg(in.a);
  const std::string y = in.b >= 0 ? reg(in.b) : "";
  const std::string p0 = literal(in.p0), p1 = literal(in.p1);
  const bool binary = in.b >= 0;
  switch (in.op) {
    case EwOp::kAdd: if (!binary) return false; *out = x + " + " + y; return true;
    case EwOp::kSub: if (!binary) return false; *out = x + " - " + y; return true;
    case EwOp::kMul: if (!binary) return false; *out = x + " * " + y; return true;
    case EwOp::kDiv: if (!binary) return false; *out = x + " / " + y; return true;
    case EwOp::kPow: if (!binary) return false; *out = "anvil_pow(" + x + ", " + y + ")"; return true;
    case EwOp::kMax: if (!binary) return false; *out = "anvil_max(" + x + ", " + y + ")"; return true;
    case EwOp::kMin: if (!binary) return false; *out = "anvil_min(" + x + ", " + y + ")"; return true;
    case EwOp::kPRelu: if (!binary) return false; *out = "anvil_prelu(" + x + ", " + y + ")"; return true;
    case EwOp::kClip: {
      // The lower bound first, then the upper (min > max gives max), as the interpreter.
      std::string v = x;
      if (in.b >= 0) v = "anvil_clip_lo(" + v + ", " + reg(in.b) + ")";
      if (in.c >= 0) v = "anvil_clip_hi(" + v + ", " + reg(in.c) + ")";
      *out = v;
      return true;
    }
    case EwOp::kIdentity: *out = x; return true;
    case EwOp::kAbs: *out = "fabsf(" + x + ")"; return true;
    case EwOp::kNeg: *out = "-" + x; return true;
    case EwOp::kRelu: *out = "anvil_relu(" + x + ")"; return true;
    case EwOp::kExp: *out = "expf(" + x + ")"; return true;
    case EwOp::kLog: *out = "logf(" + x + ")"; return true;
    case EwOp::kSqrt: *out = "sqrtf(" + x + ")"; return true;
    case EwOp::kReciprocal: *out = "1.0f / " + x; return true;
    case EwOp::kSigmoid: *out = "anvil_sigmoid(" + x + ")"; return true;
    case EwOp::kTanh: *out = "tanhf(" + x + ")"; return true;
    case EwOp::kErf: *out = "erff(" + x + ")"; return true;
    case EwOp::kFloor: *out = "floorf(" + x + ")"; return true;
    case EwOp::kCeil: *out = "ceilf(" + x + ")"; return true;
    case EwOp::kRound: *out = "rintf(" + x + ")"; return true;  // half to even
    case EwOp::kSin: *out = "sinf(" + x + ")"; return true;
    case EwOp::kCos: *out = "cosf(" + x + ")"; return true;
    case EwOp::kSoftplus: *out = "anvil_softplus(" + x + ")"; return true;
    case EwOp::kSoftsign: *out = "anvil_softsign(" + x + ")"; return true;
    case EwOp::kSign: *out = "anvil_sign(" + x + ")"; return true;
    case EwOp::kHardSwish: *out = "anvil_hardswish(" + x + ")"; return true;
    case EwOp::kMish: *out = "anvil_mish(" + x + ")"; return true;
    case EwOp::kLeakyRelu: *out = "anvil_leaky_relu(" + x + ", " + p0 + ")"; return true;
    case EwOp::kElu: *out = "anvil_elu(" + x + ", " + p0 + ")"; return true;
    case EwOp::kSelu: *out = "anvil_selu(" + x + ", " + p0 + ", " + p1 + ")"; return true;
    case EwOp::kCelu: *out = "anvil_celu(" + x + ", " + p0 + ")"; return true;
    case EwOp::kHardSigmoid: *out = "anvil_hard_sigmoid(" + x + ", " + p0 + ", " + p1 + ")"; return true;
    case EwOp::kThresholdedRelu: *out = "anvil_thresholded_relu(" + x + ", " + p0 + ")"; return true;
    case EwOp::kGeluErf: *out = "anvil_gelu_erf(" + x + ")"; return true;
    case EwOp::kGeluTanh: *out = "anvil_gelu_tanh(" + x + ")"; return true;
    default: return false;  // comparisons, logic, Mod, ...: not in the fused program language
  }
}

// Registers read before they are written, or inputs out of range.
bool operandsOk(const tactics::FusedProgram& p) {
  if (p.numInputs < 1 || p.numInputs > kernels::kEwMaxInputs || p.numInstrs < 1 ||
      p.numInstrs > kernels::kEwMaxInstrs)
    return false;
  for (int c = 0; c < p.numInstrs; ++c) {
    const EwInstr& in = p.code[c];
    const int defined = p.numInputs + c;
    if (in.a < 0 || in.a >= defined || in.b >= defined || in.c >= defined) return false;
  }
  return true;
}

// FNV-1a over the program's bytes: the entry name, stable across builds.
std::uint64_t programHash(const tactics::FusedProgram& p) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* data, size_t bytes) {
    const auto* b = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < bytes; ++i) h = (h ^ b[i]) * 1099511628211ull;
  };
  mix(&p.numInputs, sizeof p.numInputs);
  for (int c = 0; c < p.numInstrs; ++c) {
    const EwInstr& in = p.code[c];
    const std::int8_t fields[4] = {std::int8_t(in.op), in.a, in.b, in.c};
    mix(fields, sizeof fields);
    mix(&in.p0, sizeof in.p0);
    mix(&in.p1, sizeof in.p1);
  }
  return h;
}

}  // namespace

bool canGenerate(const tactics::FusedProgram& p) {
  if (!operandsOk(p)) return false;
  std::string e;
  for (int c = 0; c < p.numInstrs; ++c)
    if (!expression(p.code[c], &e)) return false;
  return true;
}

GeneratedKernel generateElementwiseKernel(const tactics::FusedProgram& p) {
  if (!operandsOk(p))
    ANVIL_THROW(ErrorCode::kUnsupported, "fused elementwise codegen: a program of ", p.numInstrs,
                " instructions over ", p.numInputs, " inputs reads a register not defined before it");
  constexpr int kIn = kernels::kEwMaxInputs, kRank = kernels::kEwMaxRank;
  GeneratedKernel k;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(programHash(p)));
  k.entry = std::string("anvil_fused_ew_") + hash;

  std::ostringstream s;
  s << "// anvil.FusedElementwise: " << p.numInstrs << " instructions over " << p.numInputs
    << " f32 inputs, generated by anvil (cuda/jit/elementwise_codegen.cpp).\n";
  s << "struct AnvilEwArgs {\n"
    << "  float* out;\n"
    << "  const float* in[" << kIn << "];\n"
    << "  long long n;\n"
    << "  long long dims[" << kRank << "];\n"
    << "  long long strides[" << kIn << "][" << kRank << "];\n"
    << "  long long contigStep[" << kIn << "];\n"
    << "  int rank;\n"
    << "  int strided;\n"
    << "};\n";

  // The registers the output depends on: inputs the program never reads are not loaded and
  // instructions whose results are never read not emitted (pure math: the same output).
  const int last = p.numInputs + p.numInstrs - 1;
  bool live[kernels::kEwMaxRegisters] = {};
  live[last] = true;
  for (int c = p.numInstrs - 1; c >= 0; --c) {
    const EwInstr& in = p.code[c];
    if (!live[p.numInputs + c]) continue;
    for (int r : {int(in.a), int(in.b), int(in.c)})
      if (r >= 0) live[r] = true;
  }
  std::vector<int> inputs;
  for (int j = 0; j < p.numInputs; ++j)
    if (live[j]) inputs.push_back(j);
  if (inputs.empty()) inputs.push_back(0);  // unreachable: instruction 0 reads an input

  // The helpers the program uses, each once, callees first.
  bool emitted[int(EwOp::kCount) + 1] = {};
  auto emit = [&](auto&& self, EwOp op) -> void {
    const Helper* h = helperOf(op);
    if (!h || emitted[int(op)]) return;
    if (h->needs != EwOp::kCount) self(self, h->needs);
    emitted[int(op)] = true;
    s << h->definition;
  };
  for (int c = 0; c < p.numInstrs; ++c)
    if (live[p.numInputs + c]) emit(emit, p.code[c].op);

  s << "extern \"C\" __global__ void __launch_bounds__(" << kJitEwBlock << ") " << k.entry
    << "(const AnvilEwArgs a) {\n"
    << "  const long long stride = (long long)blockDim.x * gridDim.x;\n"
    << "  for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < a.n; i += stride) {\n";
  // Each input's element for output element i.
  s << "    long long";
  for (size_t j = 0; j < inputs.size(); ++j) s << (j ? ", o" : " o") << inputs[j];
  s << ";\n    if (a.strided) {\n";
  for (int j : inputs) s << "      o" << j << " = 0;\n";
  s << "      long long rest = i;\n"
    << "      for (int d = a.rank - 1; d >= 0; --d) {\n"
    << "        const long long pos = rest % a.dims[d];\n"
    << "        rest /= a.dims[d];\n";
  for (int j : inputs) s << "        o" << j << " += pos * a.strides[" << j << "][d];\n";
  s << "      }\n    } else {\n";
  for (int j : inputs) s << "      o" << j << " = i * a.contigStep[" << j << "];\n";
  s << "    }\n";
  for (int j : inputs) s << "    const float " << reg(j) << " = a.in[" << j << "][o" << j << "];\n";
  for (int c = 0; c < p.numInstrs; ++c) {
    if (!live[p.numInputs + c]) continue;
    std::string e;
    if (!expression(p.code[c], &e))
      ANVIL_THROW(ErrorCode::kUnsupported, "fused elementwise codegen: instruction ", c, " (op ",
                  int(p.code[c].op), ") has no generated form");
    s << "    const float " << reg(p.numInputs + c) << " = " << e << ";\n";
  }
  s << "    a.out[i] = " << reg(p.numInputs + p.numInstrs - 1) << ";\n  }\n}\n";
  k.source = s.str();
  return k;
}

}  // namespace anvil::cuda::jit
