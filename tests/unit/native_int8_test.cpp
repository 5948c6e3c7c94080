// The INT8 kernels (cpu/tactics/native_int8.cpp on cpu/tactics/int8_gemm.h) through the
// kernel contract: a one-node graph whose node the test sets to DataType::kI8, with the
// per-tensor quantization of input 0 set on its value as calibration would, then
// supports(), prepare() (the weight's raw input replaced by NaNs), run() with the output
// between sentinel guards and a guarded workspace, on 1 and 2 executor threads. Each run is
// checked against (a) a plain C++ emulation of the INT8 numerics (quantize x, symmetric
// per-feature weights, exact int32 sums, zero-point correction, f32 dequantization, then
// the f32 epilogue), exactly for the piecewise-linear epilogues; (b) the f32 reference
// kernel within the quantization error bound derived per element; and every ISA variant
// (AVX-512 VNNI, AVX-VNNI, AVX2, and the portable family with no ISA requirement) must
// give the same bits. Saturation: inputs far outside
// the calibrated range, all-255 x all-127 at K = 4096, weights' own per-axis scales.
// Components in f32 (tactic params fp32_channels, adaptive_tau / adaptive_test): flagged
// components against the f32 reference kernel within 1e-5 of the output's range, the rest
// against the emulation bit for bit, the profiler's counters, on every family.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <random>

#include <immintrin.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cpu/tactics/int8_gemm.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "ir/ops/anvil_linear.h"
#include "native_kernel_test_util.h"
#include "op_test_util.h"
#include "runtime/clock.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeInt8Kernels(Kernels& k);  // cpu/tactics/native_int8.cpp
void registerNativeInt8PixelsKernels(Kernels& k);  // cpu/tactics/native_int8_conv_pixels.cpp (the bench only)
}  // namespace anvil::runtime
namespace anvil::cpu::tactics {
void adaptiveRowFilterForTest(ir::linear::Activation act, int test, float tau, const float* nsum, const float* v0,
                              const float* scales, float scale, const float* bias, int64_t n, bool scalar, float* arg,
                              uint8_t* maybe, uint8_t* exact);  // cpu/tactics/native_int8.cpp
void adaptiveProductFlagsForTest(float tau, const float* nsum, const float* v0, const float* scales, float scale,
                                 int64_t n, bool scalar, uint8_t* out);  // cpu/tactics/native_int8.cpp
bool adaptiveConditionLowerForTest(ir::linear::Activation act, const float* v, int64_t n,
                                   float* lo);  // cpu/tactics/native_int8.cpp
void adaptiveBytePathForTest(bool on);  // cpu/tactics/native_int8.cpp
}  // namespace anvil::cpu::tactics

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;
using anvil::testing::In;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeInt8Kernels>(); }

std::vector<const runtime::Kernel*> kernelsFor(const std::string& op, const std::string& domain) {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op && k->domain == domain) out.push_back(k);
  return out;
}

// ---------------------------------------------------------------------------------------
// Cases

// How input 0 is calibrated: from the data's range, or a narrow range (most inputs clamp),
// or z = 0 (every negative input clamps to 0).
enum class Calib { kRange, kNarrow, kZeroPoint0 };

// How the data is drawn: uniform [-1, 1], or input 0 scaled far past its calibrated range.
struct I8Case {
  Case c;
  Calib calib = Calib::kRange;
  float xScale = 1.0f;        // input 0 drawn from [-xScale, xScale]
  bool weightScales = false;  // the weight carries its own per-axis quantization
  bool specials = false;      // input 0 holds NaN, +-inf, +-1e30 and exact half steps
};

ir::Attributes gemmAttrs(int tA, int tB, float alpha, float beta) {
  ir::Attributes at;
  if (tA) at.set("transA", int64_t(tA));
  if (tB) at.set("transB", int64_t(tB));
  if (alpha != 1.0f) at.set("alpha", alpha);
  if (beta != 1.0f) at.set("beta", beta);
  return at;
}

ir::Attributes convAttrs(Dims w, Dims strides, Dims dilations, Dims pads, const std::string& autoPad = "") {
  ir::Attributes at;
  if (!strides.empty()) at.set("strides", strides);
  if (!dilations.empty()) at.set("dilations", dilations);
  if (!pads.empty()) at.set("pads", pads);
  if (!autoPad.empty()) at.set("auto_pad", autoPad);
  at.set("kernel_shape", Dims{w[2], w[3]});
  return at;
}

struct Epi {
  const char* name;
  const char* act;
  std::vector<float> params;
  int residual;  // 0 none, 1 add_then_activate, 2 activate_then_add
};
const std::vector<Epi>& epilogues() {
  static const std::vector<Epi> e = {
      {"none", "", {}, 0},         {"relu", "Relu", {}, 0},          {"clip", "Clip", {-0.5f, 0.75f}, 0},
      {"sigmoid", "Sigmoid", {}, 0}, {"gelu", "Gelu", {}, 0},        {"silu", "Silu", {}, 0},
      {"res_add_relu", "Relu", {}, 1}, {"res_relu_add", "Relu", {}, 2}, {"res_only", "", {}, 1},
  };
  return e;
}
bool transcendental(const ir::Attributes& at) {
  const std::string a = at.getString("activation", "");
  return !(a.empty() || a == "Relu" || a == "Clip");
}

void setEpilogue(const Epi& e, ir::Attributes& at) {
  if (*e.act) at.set("activation", std::string(e.act));
  if (!e.params.empty()) at.set("activation_params", e.params);
  if (e.residual) {
    at.set("has_residual", int64_t(1));
    at.set("residual_order", std::string(e.residual == 1 ? "add_then_activate" : "activate_then_add"));
  }
}

std::vector<I8Case> allCases() {
  std::vector<I8Case> c;
  auto add = [&](std::string name, std::string op, std::string domain, std::vector<std::optional<Dims>> in,
                 std::vector<bool> constant, ir::Attributes at, Calib calib = Calib::kRange, float xScale = 1.0f,
                 bool ws = false, bool specials = false) {
    c.push_back({{std::move(name), std::move(op), std::move(domain), std::move(in), std::move(constant), at}, calib,
                 xScale, ws, specials});
  };
  {  // Special inputs through every quantizer: MatMul rows, the 1x1 tiles, the direct form.
    const Dims w1{17, 13, 1, 1}, w3{17, 13, 3, 3};
    add("MatMul_specials", "MatMul", "", {Dims{7, 300}, Dims{300, 17}}, {false, true}, {}, Calib::kRange, 1.0f, false,
        true);
    add("Conv_1x1_specials", "Conv", "", {Dims{1, 13, 9, 11}, w1}, {false, true}, convAttrs(w1, {}, {}, {}),
        Calib::kRange, 1.0f, false, true);
    add("Conv_3x3_specials", "Conv", "", {Dims{1, 13, 9, 11}, w3}, {false, true}, convAttrs(w3, {}, {}, {1, 1, 1, 1}),
        Calib::kRange, 1.0f, false, true);
    add("Conv_3x3_s2_specials", "Conv", "", {Dims{1, 13, 9, 11}, w3}, {false, true},
        convAttrs(w3, {2, 2}, {}, {1, 1, 1, 1}), Calib::kRange, 1.0f, false, true);
  }
  for (int64_t m : {1, 7, 17, 63})
    for (int64_t k : {1, 3, 5, 17, 63, 300})
      for (int64_t n : {1, 7, 17, 33, 100}) {
        const std::string s = std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n);
        add("MatMul_" + s, "MatMul", "", {Dims{m, k}, Dims{k, n}}, {false, true}, {});
      }
  add("MatMul_batch_2x3x7x13", "MatMul", "", {Dims{2, 3, 7, 13}, Dims{13, 9}}, {false, true}, {});
  add("MatMul_vec_13", "MatMul", "", {Dims{13}, Dims{13, 40}}, {false, true}, {});
  add("MatMul_128x768x200", "MatMul", "", {Dims{128, 768}, Dims{768, 200}}, {false, true}, {});
  add("MatMul_narrow_calib", "MatMul", "", {Dims{17, 63}, Dims{63, 33}}, {false, true}, {}, Calib::kNarrow);
  add("MatMul_far_outside", "MatMul", "", {Dims{17, 63}, Dims{63, 33}}, {false, true}, {}, Calib::kRange, 100.0f);
  add("MatMul_zp0", "MatMul", "", {Dims{7, 300}, Dims{300, 17}}, {false, true}, {}, Calib::kZeroPoint0);
  add("MatMul_weight_scales", "MatMul", "", {Dims{17, 63}, Dims{63, 33}}, {false, true}, {}, Calib::kRange, 1.0f,
      true);
  for (int tA = 0; tA < 2; ++tA)
    for (int tB = 0; tB < 2; ++tB)
      for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{7, 13, 33}, {17, 63, 5}, {1, 300, 100}}) {
        const std::string s = std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N) + "_tA" +
                              std::to_string(tA) + "tB" + std::to_string(tB);
        const Dims a = tA ? Dims{K, M} : Dims{M, K}, b = tB ? Dims{N, K} : Dims{K, N};
        add("Gemm_" + s + "_noC", "Gemm", "", {a, b}, {false, true}, gemmAttrs(tA, tB, 1.0f, 1.0f));
        add("Gemm_" + s + "_C_MN", "Gemm", "", {a, b, Dims{M, N}}, {false, true, true}, gemmAttrs(tA, tB, 0.5f, 2.0f));
        add("Gemm_" + s + "_C_N", "Gemm", "", {a, b, Dims{N}}, {false, true, false}, gemmAttrs(tA, tB, 1.5f, -1.0f));
        add("Gemm_" + s + "_C_M1", "Gemm", "", {a, b, Dims{M, 1}}, {false, true, true}, gemmAttrs(tA, tB, 1.0f, 0.5f));
      }
  add("Gemm_C_scalar", "Gemm", "", {Dims{7, 13}, Dims{13, 33}, Dims{}}, {false, true, true}, gemmAttrs(0, 0, 1.0f, 2.0f));
  add("Gemm_C_1N_tA", "Gemm", "", {Dims{13, 7}, Dims{13, 33}, Dims{1, 33}}, {false, true, true},
      gemmAttrs(1, 0, -0.5f, 0.25f));
  add("Gemm_alpha0", "Gemm", "", {Dims{6, 9}, Dims{9, 17}, Dims{17}}, {false, true, true}, gemmAttrs(0, 0, 0.0f, 1.0f));
  add("Gemm_weight_scales_tB", "Gemm", "", {Dims{17, 63}, Dims{33, 63}, Dims{33}}, {false, true, true},
      gemmAttrs(0, 1, 1.0f, 1.0f), Calib::kRange, 1.0f, true);
  // Conv: Cin 1, 3, 13; Cout 1, 5, 17, 40; 1x1, 3x3, 5x5 with pads, stride 2, dilation 2, batch 2.
  for (int64_t ci : {1, 3, 13})
    for (int64_t co : {1, 5, 17, 40}) {
      const std::string s = "_ci" + std::to_string(ci) + "_co" + std::to_string(co);
      const Dims w1{co, ci, 1, 1}, w3{co, ci, 3, 3}, w5{co, ci, 5, 5};
      add("Conv_1x1_b2" + s, "Conv", "", {Dims{2, ci, 7, 9}, w1, Dims{co}}, {false, true, true}, convAttrs(w1, {}, {}, {}));
      add("Conv_3x3_p1" + s, "Conv", "", {Dims{1, ci, 9, 11}, w3, Dims{co}}, {false, true, true},
          convAttrs(w3, {}, {}, {1, 1, 1, 1}));
      add("Conv_5x5_p2_s2_b2" + s, "Conv", "", {Dims{2, ci, 11, 10}, w5}, {false, true},
          convAttrs(w5, {2, 2}, {}, {2, 2, 2, 2}));
      add("Conv_3x3_d2_p2" + s, "Conv", "", {Dims{1, ci, 12, 13}, w3, Dims{co}}, {false, true, true},
          convAttrs(w3, {}, {2, 2}, {2, 2, 2, 2}));
    }
  {
    const Dims w{6, 3, 3, 2};
    add("Conv_asym_pads", "Conv", "", {Dims{1, 3, 8, 8}, w, Dims{6}}, {false, true, true}, convAttrs(w, {}, {}, {0, 1, 2, 3}));
    add("Conv_asym_stride", "Conv", "", {Dims{1, 3, 9, 17}, Dims{5, 3, 2, 3}}, {false, true},
        convAttrs(Dims{5, 3, 2, 3}, {1, 3}, {2, 1}, {1, 0, 0, 1}));
    add("Conv_same_upper_s2", "Conv", "", {Dims{1, 3, 10, 11}, Dims{4, 3, 3, 3}}, {false, true},
        convAttrs(Dims{4, 3, 3, 3}, {2, 2}, {}, {}, "SAME_UPPER"));
    // Stride 1 without im2col: 5x5, a 3x1 whose positions are the pixels (stores in place),
    // several position chunks and channel groups with a partial last group, batch 2.
    const Dims w5{6, 7, 5, 5}, w31{9, 6, 3, 1}, wd{33, 37, 3, 3};
    add("Conv_5x5_p2_s1", "Conv", "", {Dims{2, 7, 9, 10}, w5, Dims{6}}, {false, true, true},
        convAttrs(w5, {}, {}, {2, 2, 2, 2}));
    add("Conv_3x1_p1_inplace", "Conv", "", {Dims{1, 6, 11, 13}, w31, Dims{9}}, {false, true, true},
        convAttrs(w31, {}, {}, {1, 0, 1, 0}));
    add("Conv_3x3_37to33_b2_chunks", "Conv", "", {Dims{2, 37, 23, 19}, wd, Dims{33}}, {false, true, true},
        convAttrs(wd, {}, {}, {1, 1, 1, 1}));
    add("Conv_3x3_s2_chunks", "Conv", "", {Dims{1, 37, 41, 39}, wd}, {false, true},
        convAttrs(wd, {2, 2}, {}, {1, 1, 1, 1}));
    // Strides split the padded image into phases: patchify (4x4 stride 4 over extents it
    // does not divide), 2x2 stride 2, stride 3 with dilation 2 and pads, unequal strides.
    const Dims w44{8, 3, 4, 4}, w22{6, 5, 2, 2}, w33{5, 6, 3, 3};
    add("Conv_4x4_s4_patchify", "Conv", "", {Dims{1, 3, 13, 17}, w44, Dims{8}}, {false, true, true},
        convAttrs(w44, {4, 4}, {}, {}));
    add("Conv_2x2_s2_b2", "Conv", "", {Dims{2, 5, 9, 8}, w22}, {false, true}, convAttrs(w22, {2, 2}, {}, {}));
    add("Conv_3x3_s3_d2_p2", "Conv", "", {Dims{1, 6, 17, 16}, w33, Dims{5}}, {false, true, true},
        convAttrs(w33, {3, 3}, {2, 2}, {2, 1, 2, 2}));
    add("Conv_3x3_s2x1", "Conv", "", {Dims{1, 6, 11, 10}, w33}, {false, true}, convAttrs(w33, {2, 1}, {}, {1, 1, 1, 1}));
    // A stem large enough for two tasks with one channel group: the tasks split its rows.
    const Dims w7{16, 3, 7, 7};
    add("Conv_7x7_s2_p3_stem_rows", "Conv", "", {Dims{1, 3, 45, 43}, w7, Dims{16}}, {false, true, true},
        convAttrs(w7, {2, 2}, {}, {3, 3, 3, 3}));
    const Dims w1{7, 5, 1, 1};
    add("Conv_1x1_s2", "Conv", "", {Dims{1, 5, 9, 7}, w1}, {false, true}, convAttrs(w1, {2, 2}, {}, {}));
    add("Conv_1x1_pad", "Conv", "", {Dims{1, 5, 4, 3}, w1}, {false, true}, convAttrs(w1, {}, {}, {1, 0, 0, 2}));
    // Several pixel tiles, output-channel panels and tails; the in-place 1x1 rows.
    const Dims wb{40, 64, 3, 3}, wp{64, 256, 1, 1};
    add("Conv_3x3_64to40_30x31", "Conv", "", {Dims{1, 64, 30, 31}, wb, Dims{40}}, {false, true, true},
        convAttrs(wb, {}, {}, {1, 1, 1, 1}));
    add("Conv_1x1_256to64_20x25_b2", "Conv", "", {Dims{2, 256, 20, 25}, wp, Dims{64}}, {false, true, true},
        convAttrs(wp, {}, {}, {}));
    add("Conv_far_outside", "Conv", "", {Dims{1, 13, 9, 11}, Dims{17, 13, 3, 3}, Dims{17}}, {false, true, true},
        convAttrs(Dims{17, 13, 3, 3}, {}, {}, {1, 1, 1, 1}), Calib::kRange, 50.0f);
    add("Conv_zp0", "Conv", "", {Dims{1, 13, 9, 11}, Dims{17, 13, 3, 3}}, {false, true},
        convAttrs(Dims{17, 13, 3, 3}, {}, {}, {1, 1, 1, 1}), Calib::kZeroPoint0);
    add("Conv_weight_scales", "Conv", "", {Dims{2, 13, 9, 11}, Dims{17, 13, 3, 3}, Dims{17}}, {false, true, true},
        convAttrs(Dims{17, 13, 3, 3}, {}, {}, {1, 1, 1, 1}), Calib::kRange, 1.0f, true);
  }
  // The fused ops with each epilogue.
  for (const Epi& e : epilogues()) {
    auto fused = [&](std::string name, std::string op, std::vector<std::optional<Dims>> in, std::vector<bool> constant,
                     ir::Attributes at, const Dims& out) {
      setEpilogue(e, at);
      if (e.residual) {
        while (in.size() < 3) in.push_back(std::nullopt), constant.push_back(false);
        in.push_back(out);
        constant.resize(4, false);
      }
      add(op + "_" + name + "_" + e.name, op, "anvil", in, constant, at);
    };
    fused("7x17x130_biasN", "FusedMatMul", {Dims{7, 17}, Dims{17, 130}, Dims{130}}, {false, true, true}, {}, {7, 130});
    fused("batch_2x63x7x17_bias1", "FusedMatMul", {Dims{2, 63, 7}, Dims{7, 17}, Dims{1}}, {false, true, true}, {},
          {2, 63, 17});
    fused("17x63x33_tB_CN", "FusedGemm", {Dims{17, 63}, Dims{33, 63}, Dims{33}}, {false, true, true},
          gemmAttrs(0, 1, 0.5f, 1.0f), {17, 33});
    fused("17x63x70_CMN", "FusedGemm", {Dims{17, 63}, Dims{63, 70}, Dims{17, 70}}, {false, true, true},
          gemmAttrs(0, 0, 0.5f, 2.0f), {17, 70});
    const Dims w3{7, 5, 3, 3}, w1{40, 16, 1, 1};
    fused("3x3_pad1_b2", "FusedConv", {Dims{2, 5, 9, 11}, w3, Dims{7}}, {false, true, true},
          convAttrs(w3, {}, {}, {1, 1, 1, 1}), {2, 7, 9, 11});
    fused("1x1_nobias", "FusedConv", {Dims{1, 16, 17, 15}, w1}, {false, true}, convAttrs(w1, {}, {}, {}),
          {1, 40, 17, 15});
  }
  return c;
}

const std::vector<I8Case>& cases() {
  static const std::vector<I8Case> c = allCases();
  return c;
}

// ---------------------------------------------------------------------------------------
// Building: the harness's one-node graph with data drawn per input, then the INT8 setup.

struct Calibration {
  float scale;
  int32_t zp;
};

Built buildI8(const I8Case& ic, uint32_t seed, Calibration* cal) {
  const Case& c = ic.c;
  Built b;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<In> ins;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i]) {
      b.tensors.emplace_back();
      ins.push_back({});
      continue;
    }
    Tensor t(DataType::kF32, *c.inputs[i]);
    for (int64_t j = 0; j < t.numel(); ++j) t.data<float>()[j] = dist(rng) * (i == 0 ? ic.xScale : 1.0f);
    const bool constant = i < c.constant.size() && c.constant[i];
    ins.push_back({"in" + std::to_string(i), t.type(), constant ? std::optional<Tensor>(t.clone()) : std::nullopt});
    b.tensors.push_back(std::move(t));
  }
  ir::Node* node;
  if (c.domain.empty()) {
    b.graph = anvil::testing::oneNode(c.op, ins, c.attrs);
    node = b.graph->nodes().front().get();
  } else {
    auto g = std::make_unique<ir::Graph>();
    std::vector<ir::Value*> vs;
    for (size_t i = 0; i < ins.size(); ++i) {
      if (ins[i].name.empty()) {
        vs.push_back(nullptr);
        continue;
      }
      ir::Value* v = ins[i].init ? g->addInitializer(ins[i].name, *ins[i].init) : g->addValue(ins[i].name, ins[i].type);
      if (!ins[i].init) g->addInput(v);
      vs.push_back(v);
    }
    node = g->addNode(c.op, c.domain, "n0", vs, {"y0"});
    node->attrs() = c.attrs;
    g->addOutput(node->output(0));
    ir::inferShapes(*g);
    b.graph = std::move(g);
  }
  b.node = node;
  // Calibration of input 0 from the range [-1, 1] the data is drawn from (before xScale).
  float lo = -1.0f, hi = 1.0f;
  if (ic.calib == Calib::kNarrow) lo = -0.05f, hi = 0.1f;
  if (ic.calib == Calib::kZeroPoint0) lo = 0.0f;
  cal->scale = (hi - lo) / 255.0f;
  cal->zp = int32_t(std::nearbyint(-lo / cal->scale));
  if (ic.specials) {  // NaN, infinities, huge values and exact half steps of the scale
    float* x = b.tensors[0].data<float>();
    const float sp[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity(), 1e30f, -1e30f};
    for (int64_t i = 0; i < b.tensors[0].numel(); i += 3)
      x[i] = (i / 3) % 2 ? sp[(i / 6) % 5] : cal->scale * (float((i / 6) % 41) - 20.5f);
  }
  node->setPrecision(DataType::kI8);
  node->input(0)->setQuantization(ir::Quantization{Tensor::scalar<float>(DataType::kF32, cal->scale),
                                                   Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(cal->zp)),
                                                   std::nullopt});
  return b;
}

// The feature axis of the weight and the feature count.
int64_t featureAxis(const Case& c) {
  if (c.op == "Conv" || c.op == "FusedConv") return 0;
  if ((c.op == "Gemm" || c.op == "FusedGemm") && c.attrs.getInt("transB", 0)) return 0;
  return 1;
}

// Gives the weight its own per-axis scales: 1.5x the derived ones (so q_w stays within
// +-85), perturbed per feature.
std::vector<float> setWeightScales(Built& b, const I8Case& ic) {
  const Tensor& w = b.tensors[1];
  const int64_t axis = featureAxis(ic.c), N = w.dim(size_t(axis));
  std::vector<float> s(size_t(N), 0.0f);
  for (int64_t i = 0; i < w.numel(); ++i) {
    int64_t f;
    if (axis == 0) f = i / (w.numel() / N);
    else f = i % N;
    s[size_t(f)] = std::max(s[size_t(f)], std::fabs(w.data<float>()[i]));
  }
  for (int64_t f = 0; f < N; ++f) s[size_t(f)] = s[size_t(f)] / 127.0f * (1.5f + 0.01f * float(f % 7));
  const_cast<ir::Node*>(b.node)->input(1)->setQuantization(
      ir::Quantization{Tensor::fromVector<float>(DataType::kF32, {N}, s), Tensor(), axis});
  return s;
}

// ---------------------------------------------------------------------------------------
// The emulation of the INT8 numerics, element by element

uint8_t quantX(float x, const Calibration& cal) {
  const float v = x * (1.0f / cal.scale);
  if (std::isnan(v)) return uint8_t(cal.zp);
  const double r = std::nearbyint(double(std::clamp(v, -1e6f, 1e6f)));  // half to even
  return uint8_t(std::clamp<int64_t>(int64_t(r) + cal.zp, 0, 255));
}

struct QW {
  std::vector<int32_t> q;  // [N][K]
  std::vector<float> s;
  std::vector<int64_t> sums;
};

// Feature f's value k at w[f * fs + k * ks].
QW quantW(const float* w, int64_t N, int64_t K, int64_t fs, int64_t ks, const std::vector<float>& given) {
  QW r;
  r.q.resize(size_t(N * K));
  r.s.resize(size_t(N));
  r.sums.assign(size_t(N), 0);
  for (int64_t f = 0; f < N; ++f) {
    float m = 0.0f;
    for (int64_t k = 0; k < K; ++k) m = std::max(m, std::fabs(w[f * fs + k * ks]));
    const float s = given.empty() ? (m > 0.0f ? m / 127.0f : 1.0f) : given[size_t(f)];
    r.s[size_t(f)] = s;
    for (int64_t k = 0; k < K; ++k) {
      const int32_t q = int32_t(std::clamp(std::nearbyint(w[f * fs + k * ks] / s), -127.0f, 127.0f));
      r.q[size_t(f * K + k)] = q;
      r.sums[size_t(f)] += q;
    }
  }
  return r;
}

// The f32 epilogue after dequantization, in the kernels' order.
float finish(const ir::linear::Epilogue& e, bool fused, float v, const float* z) {
  if (!fused) return v;
  if (z && e.residual && e.addFirst) v = v + *z;
  v = ir::linear::activate<float>(e, v);
  if (z && e.residual && !e.addFirst) v = v + *z;
  return v;
}

struct Emulated {
  std::vector<float> y;      // the INT8 result
  std::vector<double> bound;  // per element: |f32 result - y| allowed by the quantization error
  // Adaptive precision's inputs per element: the corrected integer sum, sum |q_x - z_x|
  // |q_w|, and the activation's argument (the dequantized product plus bias / beta C, plus Z
  // when the residual is added first).
  std::vector<int64_t> corr, nsum;
  std::vector<float> pre;
  std::vector<double> absScale;  // |the product's scale|: nsum * absScale is sum |w| |x| in real units
};

Emulated emulate(const Built& b, const I8Case& ic, const Calibration& cal, const std::vector<float>& given) {
  const Case& c = ic.c;
  const bool fused = c.domain == "anvil";
  ir::linear::Epilogue e;
  if (fused) {
    EXPECT_EQ(ir::linear::readEpilogue(c.attrs, &e), "");
  }
  const float* X = b.tensors[0].data<float>();
  const float* W = b.tensors[1].data<float>();
  const float* Z = b.tensors.size() > 3 && b.tensors[3].defined() ? b.tensors[3].data<float>() : nullptr;
  const float* B2 = b.tensors.size() > 2 && b.tensors[2].defined() ? b.tensors[2].data<float>() : nullptr;
  // Lipschitz bound of the activations on the error (GELU and SiLU slightly above 1).
  const double lip = e.act == ir::linear::Activation::kNone || e.act == ir::linear::Activation::kRelu ||
                             e.act == ir::linear::Activation::kClip
                         ? 1.0
                         : 1.2;
  Emulated out;
  const double sx = cal.scale;
  if (c.op == "Conv" || c.op == "FusedConv") {
    const Dims& xd = b.tensors[0].dims();
    const Dims& wd = b.tensors[1].dims();
    const Dims yd = b.node->output(0)->shape().extents();
    const int64_t Nn = xd[0], C = xd[1], H = xd[2], Wd = xd[3], M = wd[0], kH = wd[2], kW = wd[3];
    const int64_t OH = yd[2], OW = yd[3], K = C * kH * kW;
    const Dims s = c.attrs.getInts("strides", {1, 1}), d = c.attrs.getInts("dilations", {1, 1});
    Dims pads = c.attrs.getInts("pads", {0, 0, 0, 0});
    if (c.attrs.getString("auto_pad", "") == "SAME_UPPER") {
      for (int i = 0; i < 2; ++i) {
        const int64_t in = xd[size_t(2 + i)], ek = (wd[size_t(2 + i)] - 1) * d[size_t(i)] + 1;
        const int64_t o = (in + s[size_t(i)] - 1) / s[size_t(i)];
        const int64_t total = std::max<int64_t>(0, (o - 1) * s[size_t(i)] + ek - in);
        pads[size_t(i)] = total / 2;
      }
    }
    const QW q = quantW(W, M, K, K, 1, given);
    out.y.resize(size_t(Nn * M * OH * OW));
    out.bound.resize(out.y.size());
    out.corr.resize(out.y.size());
    out.nsum.resize(out.y.size());
    out.absScale.resize(out.y.size());
    out.pre.resize(out.y.size());
    for (int64_t n = 0; n < Nn; ++n)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            int64_t acc = 0, nsum = 0;
            double bound = 0;
            for (int64_t ci = 0; ci < C; ++ci)
              for (int64_t kh = 0; kh < kH; ++kh)
                for (int64_t kw = 0; kw < kW; ++kw) {
                  const int64_t ih = oh * s[0] - pads[0] + kh * d[0], iw = ow * s[1] - pads[1] + kw * d[1];
                  const bool in = ih >= 0 && ih < H && iw >= 0 && iw < Wd;
                  const float x = in ? X[((n * C + ci) * H + ih) * Wd + iw] : 0.0f;
                  const int32_t qx = in ? quantX(x, cal) : cal.zp;
                  const int64_t k = (ci * kH + kh) * kW + kw;
                  const float w = W[m * K + k];
                  acc += int64_t(qx) * q.q[size_t(m * K + k)];
                  nsum += std::abs(int64_t(qx) - cal.zp) * std::abs(int64_t(q.q[size_t(m * K + k)]));
                  const double xh = sx * (qx - cal.zp);
                  bound += sx * std::fabs(w) + 0.5 * q.s[size_t(m)] * std::fabs(xh);
                  (void)x;
                }
            const int32_t corr = int32_t(acc - int64_t(cal.zp) * q.sums[size_t(m)]);
            float v = float(corr) * (float(sx) * q.s[size_t(m)]);
            const size_t oi = size_t(((n * M + m) * OH + oh) * OW + ow);
            const bool act = fused && (e.residual || e.act != ir::linear::Activation::kNone);
            out.corr[oi] = corr;
            out.nsum[oi] = nsum;
            out.absScale[oi] = std::fabs(double(float(sx) * q.s[size_t(m)]));
            out.pre[oi] = v + (B2 ? B2[m] : 0.0f) + (Z && e.residual && e.addFirst ? Z[oi] : 0.0f);
            if (act) v = finish(e, true, v + (B2 ? B2[m] : 0.0f), Z ? Z + oi : nullptr);
            else if (B2) v = v + B2[m];
            out.y[oi] = v;
            out.bound[oi] = lip * bound;
          }
    return out;
  }
  // MatMul / Gemm.
  const bool gemm = c.op == "Gemm" || c.op == "FusedGemm";
  const int tA = gemm ? int(c.attrs.getInt("transA", 0)) : 0, tB = gemm ? int(c.attrs.getInt("transB", 0)) : 0;
  const float alpha = gemm ? c.attrs.getFloat("alpha", 1.0f) : 1.0f, beta = gemm ? c.attrs.getFloat("beta", 1.0f) : 1.0f;
  const Dims& ad = b.tensors[0].dims();
  const Dims& bd = b.tensors[1].dims();
  const int64_t K = tB ? bd[1] : bd[0], N = tB ? bd[0] : bd[1];
  const int64_t M = gemm ? (tA ? ad[1] : ad[0]) : b.tensors[0].numel() / K;
  const QW q = quantW(W, N, K, tB ? K : 1, tB ? 1 : N, given);
  out.y.resize(size_t(M * N));
  out.bound.resize(out.y.size());
  out.corr.resize(out.y.size());
  out.nsum.resize(out.y.size());
  out.absScale.resize(out.y.size());
  out.pre.resize(out.y.size());
  const Tensor* Ct = gemm && b.tensors.size() > 2 && b.tensors[2].defined() ? &b.tensors[2] : nullptr;
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0, nsum = 0;
      double bound = 0;
      for (int64_t k = 0; k < K; ++k) {
        const float x = tA ? X[k * M + m] : X[m * K + k];
        const int32_t qx = quantX(x, cal);
        acc += int64_t(qx) * q.q[size_t(n * K + k)];
        nsum += std::abs(int64_t(qx) - cal.zp) * std::abs(int64_t(q.q[size_t(n * K + k)]));
        const float w = tB ? W[n * K + k] : W[k * N + n];
        bound += sx * std::fabs(w) + 0.5 * q.s[size_t(n)] * std::fabs(sx * (qx - cal.zp));
      }
      const int32_t corr = int32_t(acc - int64_t(cal.zp) * q.sums[size_t(n)]);
      float v = float(corr) * ((float(sx) * q.s[size_t(n)]) * alpha);
      const size_t oi = size_t(m * N + n);
      out.corr[oi] = corr;
      out.nsum[oi] = nsum;
      out.absScale[oi] = std::fabs(double((float(sx) * q.s[size_t(n)]) * alpha));
      const bool addZ = fused && Z && e.residual && e.addFirst;
      if (gemm) {
        if (Ct) {
          const Dims& cd = Ct->dims();
          const int64_t cM = cd.size() == 2 ? cd[0] : 1, cN = cd.empty() ? 1 : cd.back();
          v += beta * Ct->data<float>()[(cM == 1 ? 0 : m) * cN + (cN == 1 ? 0 : n)];
        }
        out.pre[oi] = v + (addZ ? Z[oi] : 0.0f);
        if (fused && (e.residual || e.act != ir::linear::Activation::kNone))
          v = finish(e, true, v + 0.0f, Z ? Z + oi : nullptr);
        bound *= std::fabs(alpha);
      } else if (fused) {
        const int64_t nb = B2 ? b.tensors[2].numel() : 0;
        out.pre[oi] = v + (nb == 1 ? B2[0] : nb == N ? B2[n] : 0.0f) + (addZ ? Z[oi] : 0.0f);
        v = v + (nb == 1 ? B2[0] : 0.0f);
        if (nb == N) v = v + B2[n];
        v = finish(e, true, v, Z ? Z + oi : nullptr);
      }
      if (!gemm && !fused) out.pre[oi] = v;
      out.y[oi] = v;
      out.bound[oi] = lip * bound;
    }
  return out;
}

// ---------------------------------------------------------------------------------------
// The parametrised test: every case, every ISA variant the host has, 1 and 2 threads

struct P8 {
  size_t index;
};
void PrintTo(const P8& p, std::ostream* os) { *os << cases()[p.index].c.name; }

class NativeInt8 : public ::testing::TestWithParam<P8> {};

TEST_P(NativeInt8, MatchesEmulationBitwiseAcrossThreadsAndIsas) {
  const I8Case& ic = cases()[GetParam().index];
  Calibration cal;
  Built b = buildI8(ic, uint32_t(GetParam().index) * 7919u + 11, &cal);
  std::vector<float> given;
  if (ic.weightScales) given = setWeightScales(b, ic);
  const Emulated want = emulate(b, ic, cal, given);
  const Tensor ref = reference(b);  // f32, on the unquantized data
  ASSERT_EQ(size_t(ref.numel()), want.y.size());
  const bool exact = !(ic.c.domain == "anvil" && transcendental(ic.c.attrs));
  double maxWant = 0;
  for (float v : want.y) maxWant = std::max(maxWant, double(std::fabs(v)));
  std::vector<float> first;
  std::string firstName;
  int ran = 0;
  for (const runtime::Kernel* k : kernelsFor(ic.c.op, ic.c.domain)) {
    ASSERT_TRUE(k->supports(*b.node, b.types())) << k->name << " declined " << ic.c.name;
    if (!runtime::hostHasAll(k->requirements)) {
      std::printf("skipped %s: this CPU lacks %s\n", k->name.c_str(), runtime::firstMissing(k->requirements).c_str());
      continue;
    }
    ++ran;
    const PreparedKernel pk = prepare(*k, b, 2);
    EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << k->name;
    std::vector<std::vector<float>> outs;
    for (int threads : {1, 2}) {
      auto ex = runtime::makeCpuExecutor(threads);
      const RunResult r = runKernel(*k, pk, b, ref.dims(), *ex);
      EXPECT_TRUE(r.guardsIntact) << k->name << " wrote outside the output (threads=" << threads << ")";
      EXPECT_TRUE(r.workspaceIntact) << k->name << " wrote past the workspace (threads=" << threads << ")";
      outs.push_back(r.out);
    }
    ASSERT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0)
        << k->name << ": 1 and 2 threads differ bitwise";
    const std::vector<float>& got = outs[0];
    // (a) the emulation: bitwise for the piecewise-linear epilogues, within a few ulp of
    // the output's range for the vector exp/erf polynomials against libm.
    int64_t mismatches = 0;
    double maxErr = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      if (got[i] != want.y[i]) ++mismatches;
      maxErr = std::max(maxErr, std::fabs(double(got[i]) - want.y[i]));
    }
    if (exact) {
      EXPECT_EQ(mismatches, 0) << k->name << ": max error " << maxErr;
    } else {
      EXPECT_LE(maxErr, 2e-6 * std::max(maxWant, 1e-3)) << k->name;
    }
    // (b) the f32 result within the quantization error bound (inputs inside the range).
    if (ic.xScale == 1.0f && ic.calib == Calib::kRange && !ic.specials) {
      for (size_t i = 0; i < got.size(); ++i) {
        const double err = std::fabs(double(got[i]) - ref.data<float>()[i]);
        ASSERT_LE(err, want.bound[i] + 1e-5 * std::max(maxWant, 1.0))
            << k->name << " at " << i << ": got " << got[i] << " f32 " << ref.data<float>()[i];
      }
    }
    // Every ISA: the same bits.
    if (first.empty()) {
      first = got;
      firstName = k->name;
    } else {
      EXPECT_EQ(std::memcmp(first.data(), got.data(), got.size() * 4), 0) << k->name << " and " << firstName << " differ";
    }
  }
  EXPECT_GT(ran, 0) << "no kernel ran";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeInt8,
                         ::testing::ValuesIn([] {
                           std::vector<P8> p;
                           for (size_t i = 0; i < cases().size(); ++i) p.push_back({i});
                           return p;
                         }()),
                         [](const ::testing::TestParamInfo<P8>& p) { return cases()[p.param.index].c.name; });

// ---------------------------------------------------------------------------------------
// Saturation and exactness at the int32 limits

// Every activation quantizes to 255 and every weight to +127 (or -127): K = 4096 products of
// 255 * 127 sum to 132,648,960 exactly; with z_x = 255 the correction cancels them to 0.
TEST(NativeInt8Saturation, AllMaxProductsAreExact) {
  for (int zp : {0, 255})
    for (float sign : {1.0f, -1.0f}) {
      const int64_t M = 3, K = 4096, N = 20;
      I8Case ic{{"sat", "MatMul", "", {Dims{M, K}, Dims{K, N}}, {false, true}, {}}, Calib::kRange, 1.0f, false};
      Calibration cal;
      Built b = buildI8(ic, 5, &cal);
      std::fill(b.tensors[0].data<float>(), b.tensors[0].data<float>() + M * K, 1e6f);  // far above: 255
      // Rebuild the weight initializer with every value = sign * 0.5 (q = +-127, s_w = 0.5/127).
      ir::Graph& g = *b.graph;
      Tensor w(DataType::kF32, {K, N});
      std::fill(w.data<float>(), w.data<float>() + K * N, sign * 0.5f);
      ir::Node* node = const_cast<ir::Node*>(b.node);
      ir::Value* wv = g.addInitializer("w_sat", w.clone());
      node->setInput(1, wv);
      b.tensors[1] = w;
      const float sx = 0.01f;
      node->input(0)->setQuantization(ir::Quantization{Tensor::scalar<float>(DataType::kF32, sx),
                                                       Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(zp)),
                                                       std::nullopt});
      const int32_t acc = int32_t(sign) * 255 * 127 * int32_t(K);
      const int32_t corr = acc - zp * int32_t(sign) * 127 * int32_t(K);
      const float want = float(corr) * (sx * (0.5f / 127.0f));
      for (const runtime::Kernel* k : kernelsFor("MatMul", "")) {
        if (!runtime::hostHasAll(k->requirements)) continue;
        ASSERT_TRUE(k->supports(*b.node, b.types())) << k->name;
        const PreparedKernel pk = prepare(*k, b, 1);
        auto ex = runtime::makeCpuExecutor(1);
        const RunResult r = runKernel(*k, pk, b, {M, N}, *ex);
        for (float v : r.out) ASSERT_EQ(v, want) << k->name << " zp=" << zp << " sign=" << sign;
      }
    }
}

// A profile whose max shapes exceed the run's: prepare() at the max, run() at the smaller
// extents (a different image size for the direct Conv, fewer rows for MatMul).
TEST(NativeInt8Prepare, RunsShapesBelowThePreparedMax) {
  const Dims w3{6, 5, 3, 3};
  const std::vector<std::pair<I8Case, Dims>> cases = {
      {{{"conv", "Conv", "", {Dims{1, 5, 9, 11}, w3, Dims{6}}, {false, true, true}, convAttrs(w3, {}, {}, {1, 1, 1, 1})}},
       Dims{2, 5, 15, 17}},
      {{{"conv_s2", "Conv", "", {Dims{1, 5, 9, 11}, w3}, {false, true}, convAttrs(w3, {2, 2}, {}, {1, 1, 1, 1})}},
       Dims{2, 5, 15, 17}},
      {{{"matmul", "MatMul", "", {Dims{7, 17}, Dims{17, 9}}, {false, true}, {}}}, Dims{40, 17}},
  };
  for (const auto& [ic, maxX] : cases) {
    Calibration cal;
    const Built b = buildI8(ic, 9, &cal);
    const Emulated want = emulate(b, ic, cal, {});
    const Dims out = b.node->output(0)->shape().extents();
    for (const runtime::Kernel* k : kernelsFor(ic.c.op, "")) {
      if (!runtime::hostHasAll(k->requirements)) continue;
      PreparedKernel pk;
      runtime::PrepareInfo info;
      info.node = b.node;
      info.minTypes = info.optTypes = info.maxTypes = b.types();
      info.maxTypes[0] = ir::TensorType{DataType::kF32, ir::Shape::fromExtents(maxX)};
      for (size_t i = 0; i < b.tensors.size(); ++i)
        info.constants.push_back(b.node->input(i) ? b.node->input(i)->initializer() : nullptr);
      info.threads = 2;
      k->prepare(info, &pk.prepared);
      pk.params = std::make_unique<Aligned>(pk.prepared.params.size());
      std::memcpy(pk.params->p, pk.prepared.params.data(), pk.prepared.params.size());
      for (const std::string& bl : pk.prepared.blobs) {
        pk.blobs.push_back(std::make_unique<Aligned>(bl.size()));
        std::memcpy(pk.blobs.back()->p, bl.data(), bl.size());
        pk.views.push_back({pk.blobs.back()->p, bl.size()});
      }
      auto ex = runtime::makeCpuExecutor(2);
      const RunResult r = runKernel(*k, pk, b, out, *ex);
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << k->name << " on " << ic.c.name;
      EXPECT_EQ(std::memcmp(r.out.data(), want.y.data(), want.y.size() * 4), 0) << k->name << " on " << ic.c.name;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Declines and registration

TEST(NativeInt8Supports, DeclinesWhatItCannotRun) {
  I8Case ic{{"d", "MatMul", "", {Dims{4, 8}, Dims{8, 5}}, {false, true}, {}}, Calib::kRange, 1.0f, false};
  Calibration cal;
  for (const runtime::Kernel* k : kernelsFor("MatMul", "")) {
    {
      Built b = buildI8(ic, 1, &cal);
      EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
      const_cast<ir::Node*>(b.node)->setPrecision(DataType::kF32);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took an f32 node";
    }
    {
      Built b = buildI8(ic, 1, &cal);
      const_cast<ir::Node*>(b.node)->input(0)->setQuantization(std::nullopt);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took an input without quantization";
    }
    {
      Built b = buildI8(ic, 1, &cal);
      const_cast<ir::Node*>(b.node)->input(0)->setQuantization(ir::Quantization{
          Tensor::scalar<float>(DataType::kF32, 0.1f), Tensor::scalar<int8_t>(DataType::kI8, int8_t(0)), std::nullopt});
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took an s8 zero point";
    }
    {
      Built b = buildI8(ic, 1, &cal);
      const_cast<ir::Node*>(b.node)->input(0)->setQuantization(
          ir::Quantization{Tensor::fromVector<float>(DataType::kF32, {8}, std::vector<float>(8, 0.1f)), Tensor(), 1});
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a per-axis activation";
    }
    {  // The weight's quantization along K instead of the features, or with offsets.
      Built b = buildI8(ic, 1, &cal);
      ir::Value* w = const_cast<ir::Node*>(b.node)->input(1);
      w->setQuantization(ir::Quantization{Tensor::fromVector<float>(DataType::kF32, {8}, std::vector<float>(8, 0.1f)),
                                          Tensor(), 0});
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
      w->setQuantization(ir::Quantization{Tensor::fromVector<float>(DataType::kF32, {5}, std::vector<float>(5, 0.1f)),
                                          Tensor::fromVector<int8_t>(DataType::kI8, {5}, std::vector<int8_t>(5, 3)), 1});
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
      w->setQuantization(ir::Quantization{Tensor::fromVector<float>(DataType::kF32, {5}, std::vector<float>(5, 0.1f)),
                                          Tensor::fromVector<int8_t>(DataType::kI8, {5}, std::vector<int8_t>(5, 0)), 1});
      EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
    }
    {  // A weight computed at run time.
      I8Case v = ic;
      v.c.constant = {false, false};
      Built b = buildI8(v, 1, &cal);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a non-constant weight";
    }
    {  // K past the exact int32 range.
      I8Case big{{"big", "MatMul", "", {Dims{1, cpu::tactics::kI8MaxK + 1}, Dims{cpu::tactics::kI8MaxK + 1, 1}}, {false, true}, {}},
                 Calib::kRange, 1.0f, false};
      Built b = buildI8(big, 1, &cal);
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took K = 66001";
    }
  }
  // Grouped and depthwise Convs stay f32.
  const Dims wg{6, 2, 3, 3};
  ir::Attributes at = convAttrs(wg, {}, {}, {1, 1, 1, 1});
  at.set("group", int64_t(2));
  I8Case g{{"g", "Conv", "", {Dims{1, 4, 7, 7}, wg}, {false, true}, at}, Calib::kRange, 1.0f, false};
  Built b = buildI8(g, 1, &cal);
  for (const runtime::Kernel* k : kernelsFor("Conv", "")) EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
}

TEST(NativeInt8Registration, EveryOpHasEachIsa) {
  for (const auto& [op, domain] : std::vector<std::pair<std::string, std::string>>{
           {"MatMul", ""}, {"Gemm", ""}, {"Conv", ""}, {"FusedMatMul", "anvil"}, {"FusedGemm", "anvil"},
           {"FusedConv", "anvil"}}) {
    std::map<std::string, int> isas;
    for (const runtime::Kernel* k : kernelsFor(op, domain)) {
      EXPECT_EQ(k->precision, DataType::kI8) << k->name;
      EXPECT_EQ(k->name.rfind("i8_", 0), 0u) << k->name;
      isas[k->requirements.empty() ? "portable" : k->requirements.back()]++;
      if (k->requirements.empty()) {
        EXPECT_NE(k->name.find("_portable"), std::string::npos) << k->name;
      }
    }
    EXPECT_EQ(isas["portable"], 1) << op;
    EXPECT_EQ(isas["avx512vnni"], 1) << op;
    EXPECT_EQ(isas["avxvnni"], 1) << op;
    EXPECT_EQ(isas["fma"], 1) << op;
  }
}

// The quantizer: half to even, clamps, NaN to the zero point; vector and scalar agree.
TEST(NativeInt8Quantize, RoundsHalfToEvenAndClamps) {
  using cpu::tactics::quantizeU8;
  using cpu::tactics::quantizeU8One;
  EXPECT_EQ(quantizeU8One(0.5f, 1.0f, 10), 10);
  EXPECT_EQ(quantizeU8One(1.5f, 1.0f, 10), 12);
  EXPECT_EQ(quantizeU8One(-2.5f, 1.0f, 10), 8);
  EXPECT_EQ(quantizeU8One(1e30f, 1.0f, 10), 255);
  EXPECT_EQ(quantizeU8One(-1e30f, 1.0f, 10), 0);
  EXPECT_EQ(quantizeU8One(std::numeric_limits<float>::infinity(), 1.0f, 10), 255);
  EXPECT_EQ(quantizeU8One(std::numeric_limits<float>::quiet_NaN(), 1.0f, 10), 10);
  std::vector<float> x(1000);
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> d(-300.0f, 300.0f);
  for (float& v : x) v = std::nearbyint(d(rng) * 2.0f) / 2.0f;  // many exact halves
  x[5] = std::numeric_limits<float>::quiet_NaN();
  x[6] = 1e20f;
  x[7] = -std::numeric_limits<float>::infinity();
  std::vector<uint8_t> q(x.size());
  quantizeU8(x.data(), int64_t(x.size()), 1.0f, 77, q.data());
  for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(q[i], quantizeU8One(x[i], 1.0f, 77)) << i << ": " << x[i];
}

// ---------------------------------------------------------------------------------------
// Benchmark (run with --gtest_also_run_disabled_tests): each INT8 kernel against every f32
// kernel the builder could pick for the same node (prepacked GEMM families, Winograd,
// pixel-rows Conv), one thread (ANVIL_BENCH_THREADS=2 adds two), best of several runs.

}  // namespace

namespace anvil::runtime {
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp
void registerNativeConvRowsKernels(Kernels& k);  // cpu/tactics/native_conv_rows.cpp
}  // namespace anvil::runtime

namespace {

runtime::Kernels& f32Registry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeLinearKernels(*r);
    runtime::registerNativeWinogradKernels(*r);
    runtime::registerNativeConvRowsKernels(*r);
    return r;
  }();
  return *k;
}

double timeKernel(const runtime::Kernel& k, const Built& b, const Dims& outDims, int threads, int reps) {
  const PreparedKernel pk = prepare(k, b, threads);
  Step step(k, pk, b, outDims, true);
  auto ex = runtime::makeCpuExecutor(threads);
  for (int i = 0; i < 3; ++i) step.run(*ex);
  double best = 1e30;
  for (int round = 0; round < 7; ++round) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) step.run(*ex);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
  }
  return best;
}

TEST(NativeInt8Bench, DISABLED_VsF32) {
  const char* env = std::getenv("ANVIL_BENCH_THREADS");
  const int maxThreads = env ? std::atoi(env) : 1;
  const Dims w3{64, 64, 3, 3}, w1{64, 256, 1, 1}, ws2{128, 128, 3, 3};
  const std::vector<I8Case> shapes = {
      {{"conv3x3_64to64_56x56", "Conv", "", {Dims{1, 64, 56, 56}, w3, Dims{64}}, {false, true, true},
        convAttrs(w3, {}, {}, {1, 1, 1, 1})}},
      {{"conv1x1_256to64_56x56", "Conv", "", {Dims{1, 256, 56, 56}, w1, Dims{64}}, {false, true, true},
        convAttrs(w1, {}, {}, {})}},
      {{"conv1x1_256to64_28x28", "Conv", "", {Dims{1, 256, 28, 28}, w1, Dims{64}}, {false, true, true},
        convAttrs(w1, {}, {}, {})}},
      {{"conv3x3_s2_128to128_28x28", "Conv", "", {Dims{1, 128, 28, 28}, ws2, Dims{128}}, {false, true, true},
        convAttrs(ws2, {2, 2}, {}, {1, 1, 1, 1})}},
      {{"matmul_128x768x768", "MatMul", "", {Dims{128, 768}, Dims{768, 768}}, {false, true}, {}}},
      {{"matmul_1x768x768", "MatMul", "", {Dims{1, 768}, Dims{768, 768}}, {false, true}, {}}},
      {{"matmul_128x768x3072", "MatMul", "", {Dims{128, 768}, Dims{768, 3072}}, {false, true}, {}}},
      // digits_mlp_illcond's fc1 and fc2 at batch 64 (short K, then short N).
      {{"matmul_64x64x256", "MatMul", "", {Dims{64, 64}, Dims{64, 256}}, {false, true}, {}}},
      {{"matmul_64x256x64", "MatMul", "", {Dims{64, 256}, Dims{256, 64}}, {false, true}, {}}},
      {{"fusedgemm_relu_64x64x256", "FusedGemm", "anvil", {Dims{64, 64}, Dims{256, 64}, Dims{256}},
        {false, true, true}, [] { ir::Attributes a = gemmAttrs(0, 1, 1.0f, 1.0f); a.set("activation", std::string("Relu")); return a; }()}},
  };
  const char* only = std::getenv("ANVIL_BENCH_ONLY");  // a substring of the shape names
  const bool f32 = std::getenv("ANVIL_BENCH_NO_F32") == nullptr;
  for (const I8Case& ic : shapes) {
    if (only && ic.c.name.find(only) == std::string::npos) continue;
    Calibration cal;
    const Built b = buildI8(ic, 7, &cal);
    const Dims out = b.node->output(0)->shape().extents();
    const Dims& wd = b.tensors[1].dims();
    const double ops = 2.0 * double(ir::numelOf(out)) * double(ic.c.op == "Conv" ? wd[1] * wd[2] * wd[3] : wd[0]);
    for (int t = 1; t <= maxThreads; ++t) {
      std::printf("%s, %d thread(s), %.2f GOP\n", ic.c.name.c_str(), t, ops * 1e-9);
      double bestF32 = 1e30;
      std::string bestName;
      for (const runtime::Kernel* k : f32Registry().all()) {
        if (!f32 || k->op != ic.c.op || !runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types()))
          continue;
        const double s = timeKernel(*k, b, out, t, ops > 1e9 ? 5 : 20);
        std::printf("  %-44s %8.3f ms %7.1f GOP/s\n", k->name.c_str(), s * 1e3, ops / s * 1e-9);
        if (s < bestF32) bestF32 = s, bestName = k->name;
      }
      const char* only = std::getenv("ANVIL_BENCH_KERNEL");  // a substring of the i8 kernels' names
      for (const runtime::Kernel* k : kernelsFor(ic.c.op, ic.c.domain)) {
        if (!runtime::hostHasAll(k->requirements) || (only && k->name.find(only) == std::string::npos)) continue;
        const double s = timeKernel(*k, b, out, t, ops > 1e9 ? 5 : 20);
        std::printf("  %-44s %8.3f ms %7.1f GOP/s  %.2fx the best f32 (%s)\n", k->name.c_str(), s * 1e3,
                    ops / s * 1e-9, bestF32 / s, bestName.c_str());
      }
    }
  }
}

}  // namespace

namespace {

// The arithmetic of the AVX2 forms alone, register to register, in multiply-adds per ns
// against the f32 FMA in the same process: what a u8 x s8 AVX2 kernel can reach on the
// host. Each loop is one asm block (8 independent accumulators, operands in registers):
// written as intrinsics, GCC's register copies around the per-chain barriers cost the
// integer forms up to 20% on Zen1. AMD EPYC family 23 model 1 (Zen1, the AVX2-only
// reference machine; thread CPU time, best of 7 interleaved, three runs, 2026-12): FMA
// 22.4-23.7, vpmaddwd + vpaddd 1.00-1.02x that, vpmaddubsw + vpmaddwd by ones + vpaddd
// 0.95-0.99x, vpmaddubsw + vpxor + vpsrad + 2 vpaddd 1.24-1.35x (exact only where no pair
// of products passes 32767). Zen1 issues vector integer multiplies on one pipe and FMAs on
// two, so no exact u8 x s8 form beats f32 by more than that 1.3x there.
#define ANVIL_MAC_LOOP(body)                                                                       \
  __asm__ volatile("vzeroall\n1:\n" body "dec %0\njnz 1b\nvzeroupper\n"                            \
                   : "+r"(n)::"cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", \
                     "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15")

// kForm 0: f32 vfmadd231ps; 1: vpmaddwd + vpaddd (the AVX2 tiles' s16 pairs); 2:
// vpmaddubsw, vpmaddwd by ones, vpaddd (u8 quads widened by a multiply); 3: vpmaddubsw,
// then vpxor 0x8000 + vpaddd and vpsrad 16 + vpaddd (the low and high s16 halves summed
// apart, no second multiply). Operands are zeros (vzeroall): no denormals, same timing.
template <int kForm>
__attribute__((noinline)) void macLoop(int64_t n) {
  if (kForm == 0)
    ANVIL_MAC_LOOP(
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm0\n"
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm1\n"
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm2\n"
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm3\n"
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm4\n"
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm5\n"
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm6\n"
    "vfmadd231ps %%ymm14, %%ymm15, %%ymm7\n");
  else if (kForm == 1)
    ANVIL_MAC_LOOP(
    "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n vpaddd %%ymm8, %%ymm0, %%ymm0\n"
    "vpmaddwd %%ymm14, %%ymm15, %%ymm9\n vpaddd %%ymm9, %%ymm1, %%ymm1\n"
    "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n vpaddd %%ymm10, %%ymm2, %%ymm2\n"
    "vpmaddwd %%ymm14, %%ymm15, %%ymm11\n vpaddd %%ymm11, %%ymm3, %%ymm3\n"
    "vpmaddwd %%ymm14, %%ymm15, %%ymm8\n vpaddd %%ymm8, %%ymm4, %%ymm4\n"
    "vpmaddwd %%ymm14, %%ymm15, %%ymm9\n vpaddd %%ymm9, %%ymm5, %%ymm5\n"
    "vpmaddwd %%ymm14, %%ymm15, %%ymm10\n vpaddd %%ymm10, %%ymm6, %%ymm6\n"
    "vpmaddwd %%ymm14, %%ymm15, %%ymm11\n vpaddd %%ymm11, %%ymm7, %%ymm7\n");
  else if (kForm == 2)
    ANVIL_MAC_LOOP(
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm8\n vpmaddwd %%ymm13, %%ymm8, %%ymm8\n vpaddd %%ymm8, %%ymm0, %%ymm0\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm9\n vpmaddwd %%ymm13, %%ymm9, %%ymm9\n vpaddd %%ymm9, %%ymm1, %%ymm1\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm10\n vpmaddwd %%ymm13, %%ymm10, %%ymm10\n vpaddd %%ymm10, %%ymm2, %%ymm2\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm11\n vpmaddwd %%ymm13, %%ymm11, %%ymm11\n vpaddd %%ymm11, %%ymm3, %%ymm3\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm8\n vpmaddwd %%ymm13, %%ymm8, %%ymm8\n vpaddd %%ymm8, %%ymm4, %%ymm4\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm9\n vpmaddwd %%ymm13, %%ymm9, %%ymm9\n vpaddd %%ymm9, %%ymm5, %%ymm5\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm10\n vpmaddwd %%ymm13, %%ymm10, %%ymm10\n vpaddd %%ymm10, %%ymm6, %%ymm6\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm11\n vpmaddwd %%ymm13, %%ymm11, %%ymm11\n vpaddd %%ymm11, %%ymm7, %%ymm7\n");
  else
    ANVIL_MAC_LOOP(
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm8\n vpxor %%ymm12, %%ymm8, %%ymm10\n vpsrad $16, %%ymm8, %%ymm8\n"
    "vpaddd %%ymm10, %%ymm0, %%ymm0\n vpaddd %%ymm8, %%ymm4, %%ymm4\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm9\n vpxor %%ymm12, %%ymm9, %%ymm11\n vpsrad $16, %%ymm9, %%ymm9\n"
    "vpaddd %%ymm11, %%ymm1, %%ymm1\n vpaddd %%ymm9, %%ymm5, %%ymm5\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm8\n vpxor %%ymm12, %%ymm8, %%ymm10\n vpsrad $16, %%ymm8, %%ymm8\n"
    "vpaddd %%ymm10, %%ymm2, %%ymm2\n vpaddd %%ymm8, %%ymm6, %%ymm6\n"
    "vpmaddubsw %%ymm14, %%ymm15, %%ymm9\n vpxor %%ymm12, %%ymm9, %%ymm11\n vpsrad $16, %%ymm9, %%ymm9\n"
    "vpaddd %%ymm11, %%ymm3, %%ymm3\n vpaddd %%ymm9, %%ymm7, %%ymm7\n");
}
#undef ANVIL_MAC_LOOP

TEST(NativeInt8Bench, DISABLED_Avx2MacRates) {
  if (!runtime::hostHas("avx2") || !runtime::hostHas("fma")) GTEST_SKIP() << "needs AVX2 and FMA";
  const int64_t iters = 2000000;
  // Multiply-adds per loop iteration: 8 FMAs of 8, 8 vpmaddwd of 16, 8 / 4 vpmaddubsw of 32.
  const double macs[4] = {8.0 * 8, 8.0 * 16, 8.0 * 32, 4.0 * 32};
  const char* names[4] = {"f32 vfmadd231ps", "vpmaddwd + vpaddd", "vpmaddubsw + vpmaddwd(1) + vpaddd",
                          "vpmaddubsw + vpxor/vpsrad + 2 vpaddd"};
  void (*loops[4])(int64_t) = {macLoop<0>, macLoop<1>, macLoop<2>, macLoop<3>};
  double best[4] = {0, 0, 0, 0};
  for (int round = 0; round < 7; ++round)  // the forms interleaved, best of 7 each
    for (int f = 0; f < 4; ++f) {
      const double t0 = runtime::threadCpuMs();
      loops[f](iters);
      const double s = (runtime::threadCpuMs() - t0) * 1e-3;
      best[f] = std::max(best[f], macs[f] * double(iters) / s * 1e-9);
    }
  for (int f = 0; f < 4; ++f)
    std::printf("  %-40s %6.1f multiply-adds/ns  %.2fx the FMA\n", names[f], best[f], best[f] / best[0]);
}

// The MatMul tiles that also fetch a share of the next weight block (i8TileNext): the plain
// tiles' bits for every row count, vector count, group count and share (all of the next
// block, a third, one row), the share ending at an inaccessible page (prefetches past the
// last block never fault); none for the portable family.
TEST(NativeInt8Tiles, PrefetchingTilesMatchThePlainOnesAndStayInBounds) {
  using namespace cpu::tactics;
  EXPECT_EQ(i8TileNext(I8Isa::kPortable, 1, 1), nullptr);
  const long page = sysconf(_SC_PAGESIZE);
  std::mt19937 rng(3);
  int checked = 0;
  for (I8Isa isa : {I8Isa::kAvx512Vnni, I8Isa::kAvxVnni, I8Isa::kAvx2}) {
    const char* req = isa == I8Isa::kAvx512Vnni ? "avx512vnni" : isa == I8Isa::kAvxVnni ? "avxvnni" : "avx2";
    if (!runtime::hostHas(req)) {
      std::printf("  skipped %s: not on this CPU\n", req);
      continue;
    }
    const I8Config& c = i8Config(isa);
    const int64_t width = int64_t(c.nv) * c.lanes;
    for (int64_t KG : {int64_t(1), int64_t(5), int64_t(64), int64_t(193)}) {
      // The next block: KG rows of width words, ending right at a PROT_NONE page.
      const size_t bytes = size_t(KG * width) * 4, mapped = (bytes + size_t(page) - 1) / size_t(page) * size_t(page);
      char* map = static_cast<char*>(
          mmap(nullptr, mapped + size_t(page), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
      ASSERT_NE(map, MAP_FAILED);
      ASSERT_EQ(mprotect(map + mapped, size_t(page), PROT_NONE), 0);
      const auto* next = reinterpret_cast<const uint32_t*>(map + mapped - bytes);
      std::vector<uint32_t> bc(size_t(KG * c.mr)), vec(size_t(KG * width));
      for (uint32_t& v : bc) v = uint32_t(rng());
      for (uint32_t& v : vec) v = uint32_t(rng());
      std::vector<int32_t> zc(static_cast<size_t>(width));
      std::vector<float> sc(static_cast<size_t>(width));
      for (int64_t j = 0; j < width; ++j) zc[size_t(j)] = int32_t(rng() % 2001) - 1000, sc[size_t(j)] = 1e-3f * float(j + 1);
      for (int r = 1; r <= c.mr; ++r)
        for (int nv = 1; nv <= c.nv; ++nv) {
          const I8TileNext tn = i8TileNext(isa, r, nv);
          ASSERT_NE(tn, nullptr);
          const int cols = nv * c.lanes - (nv > 1 ? 3 : 0);
          const int64_t share = std::array<int64_t, 3>{KG, std::max<int64_t>(1, KG / 3), 1}[size_t(r % 3)];
          std::vector<float> want(size_t(c.mr * width), -7.0f), got = want;
          i8Tile(isa, false, r, nv)(KG, bc.data(), vec.data(), width, nullptr, zc.data(), sc.data(), nullptr,
                                    want.data(), width, cols);
          tn(KG, bc.data(), vec.data(), width, nullptr, zc.data(), sc.data(), nullptr, got.data(), width, cols,
             PanelPrefetch{next + (KG - share) * width, share});
          ASSERT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0)
              << req << " rows " << r << " nv " << nv << " KG " << KG;
          ++checked;
        }
      munmap(map, mapped + size_t(page));
    }
  }
  if (checked == 0) GTEST_SKIP() << "no vector INT8 family on this CPU";
}

// The micro-kernels alone on operands in L1 (K = 512): GOP/s per register tile (thread
// CPU time, so other processes on a shared box do not count).
TEST(NativeInt8Bench, DISABLED_TilePeak) {
  using namespace cpu::tactics;
  const int64_t KG = 128;
  std::vector<uint32_t> bc(size_t(KG * 8), 0x01020304u), vec(size_t(KG * 48), 0x05060708u);
  std::vector<int32_t> zc(64, 0);
  std::vector<float> sc(64, 1.0f), out(8 * 48);
  for (I8Isa isa : {I8Isa::kAvx512Vnni, I8Isa::kAvxVnni, I8Isa::kAvx2}) {
    const char* req = isa == I8Isa::kAvx512Vnni ? "avx512vnni" : isa == I8Isa::kAvxVnni ? "avxvnni" : "avx2";
    if (!runtime::hostHas(req)) continue;
    const I8Config& c = i8Config(isa);
    for (int r = 1; r <= c.mr; ++r)
      for (int nv = 1; nv <= c.nv; ++nv) {
        const I8Tile t = i8Tile(isa, false, r, nv);
        const int64_t gStride = int64_t(nv) * c.lanes;
        const int reps = 20000;
        double best = 1e30;
        for (int round = 0; round < 5; ++round) {
          const double t0 = runtime::threadCpuMs();
          for (int i = 0; i < reps; ++i)
            t(KG, bc.data(), vec.data(), gStride, nullptr, zc.data(), sc.data(), nullptr, out.data(), 48, int(gStride));
          best = std::min(best, (runtime::threadCpuMs() - t0) * 1e-3 / reps);
        }
        const double ops = 2.0 * double(r) * double(gStride) * double(KG * c.kg);
        std::printf("  %-12s %dx%-3d %7.1f GOP/s\n", req, r, int(gStride), ops / best * 1e-9);
      }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Components in f32: fp32_channels (fixed output features) and adaptive precision
// (adaptive_tau / adaptive_test: components flagged at run time). Every family, 1 and 2
// threads bitwise, guards; flagged components against the f32 reference kernel within
// 1e-5 of the output's range, the others against the INT8 emulation bit for bit.

namespace {

const I8Case& caseNamed(const std::string& name) {
  for (const I8Case& c : cases())
    if (c.c.name == name) return c;
  ADD_FAILURE() << "no case " << name;
  return cases()[0];
}

bool isConv(const Case& c) { return c.op == "Conv" || c.op == "FusedConv"; }

// The output feature of element i: a Conv's channel, a MatMul/Gemm column.
int64_t featureOf(const Case& c, const Dims& out, size_t i) {
  if (isConv(c)) return int64_t(i) / (out[2] * out[3]) % out[1];
  return int64_t(i) % out.back();
}

// One run through the contract with the profiler's counters, the output between sentinel
// guards and a guarded workspace.
struct Counted {
  std::vector<float> out;
  uint64_t recomputed = 0, computed = 0;
  bool guardsIntact = true, workspaceIntact = true;
};

Counted runCounted(const runtime::Kernel& k, const PreparedKernel& pk, const Built& b, const Dims& outDims,
                   int threads) {
  std::vector<runtime::TensorView> in;
  for (const Tensor& t : b.tensors) in.push_back(viewOf(t));
  const int64_t n = ir::numelOf(outDims), guard = 64;
  std::vector<float> buf(size_t(n + 2 * guard), 12345.0f);
  runtime::TensorView out;
  out.data = buf.data() + guard;
  out.dtype = DataType::kF32;
  out.setExtents(outDims);
  Aligned ws(std::max<size_t>(1, size_t(pk.prepared.workspaceBytes)));
  std::atomic<uint64_t> counters[2];
  counters[0] = 0;
  counters[1] = 0;
  auto ex = runtime::makeCpuExecutor(threads);
  runtime::StepArgs a;
  a.node = b.node;
  a.inputs = in.data();
  a.numInputs = int(in.size());
  a.outputs = &out;
  a.numOutputs = 1;
  a.params = {pk.params->p, pk.prepared.params.size()};
  a.blobs = pk.views.data();
  a.numBlobs = int(pk.views.size());
  a.workspace = ws.p;
  a.workspaceBytes = pk.prepared.workspaceBytes;
  a.executor = ex.get();
  a.counters = counters;
  k.run(a);
  Counted r;
  r.out.assign(buf.begin() + guard, buf.begin() + guard + n);
  for (int64_t i = 0; i < guard; ++i)
    if (buf[size_t(i)] != 12345.0f || buf[size_t(guard + n + i)] != 12345.0f) r.guardsIntact = false;
  r.workspaceIntact = ws.tailIntact();
  r.recomputed = counters[0];
  r.computed = counters[1];
  return r;
}

double maxAbs(const Tensor& t) {
  double m = 0;
  for (int64_t i = 0; i < t.numel(); ++i) m = std::max(m, double(std::fabs(t.data<float>()[i])));
  return m;
}

// Runs every family the host has on b (its node's tactic params set by the caller): 1 and 2
// threads agree bitwise and in their counters, the guards hold, every family gives the same
// bits. Calls check(kernel name, output, recomputed) once per family; returns how many ran.
int runFamilies(const I8Case& ic, const Built& b, const Dims& out,
                const std::function<void(const std::string&, const std::vector<float>&, uint64_t)>& check) {
  std::vector<float> first;
  std::string firstName;
  int ran = 0;
  for (const runtime::Kernel* k : kernelsFor(ic.c.op, ic.c.domain)) {
    EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
    if (!runtime::hostHasAll(k->requirements)) continue;
    ++ran;
    const PreparedKernel pk = prepare(*k, b, 2);
    const Counted r1 = runCounted(*k, pk, b, out, 1), r2 = runCounted(*k, pk, b, out, 2);
    EXPECT_TRUE(r1.guardsIntact && r2.guardsIntact) << k->name << " wrote outside the output";
    EXPECT_TRUE(r1.workspaceIntact && r2.workspaceIntact) << k->name << " wrote past the workspace";
    EXPECT_EQ(std::memcmp(r1.out.data(), r2.out.data(), r1.out.size() * 4), 0) << k->name << ": 1 and 2 threads differ";
    EXPECT_EQ(r1.recomputed, r2.recomputed) << k->name;
    // The profile's counts come from layers with components in f32 only (a plain INT8 layer
    // reports none).
    const ir::Attributes& tp = b.node->tacticParams();
    const bool counted = tp.has("adaptive_tau") || !tp.getInts("fp32_channels", {}).empty();
    EXPECT_EQ(r1.computed, counted ? uint64_t(r1.out.size()) : 0) << k->name;
    EXPECT_EQ(r2.computed, counted ? uint64_t(r1.out.size()) : 0) << k->name;
    check(k->name, r1.out, r1.recomputed);
    if (first.empty()) {
      first = r1.out;
      firstName = k->name;
    } else {
      EXPECT_EQ(std::memcmp(first.data(), r1.out.data(), first.size() * 4), 0) << k->name << " and " << firstName;
    }
  }
  return ran;
}

const char* const kMixedCases[] = {
    "MatMul_17x63x33",           "MatMul_batch_2x3x7x13",   "Gemm_7x13x33_tA1tB1_C_MN",
    "Gemm_17x63x5_tA0tB1_C_N",   "FusedMatMul_7x17x130_biasN_relu", "FusedGemm_17x63x33_tB_CN_gelu",
    "Conv_3x3_p1_ci13_co17",     "Conv_3x1_p1_inplace",     "Conv_1x1_b2_ci13_co40",
    "Conv_3x3_s2_chunks",        "Conv_5x5_p2_s2_b2_ci3_co5", "Conv_3x3_d2_p2_ci13_co40",
    "FusedConv_3x3_pad1_b2_res_add_relu", "FusedConv_1x1_nobias_sigmoid", "FusedConv_3x3_pad1_b2_res_relu_add",
    "Conv_asym_pads",            "Conv_asym_stride",        "Conv_same_upper_s2",
    "Conv_4x4_s4_patchify",      "Conv_1x1_s2",             "Conv_1x1_256to64_20x25_b2",
};

TEST(NativeInt8Mixed, Fp32ChannelsAreF32AndTheRestInt8) {
  for (const char* name : kMixedCases) {
    const I8Case& ic = caseNamed(name);
    Calibration cal;
    Built b = buildI8(ic, 101, &cal);
    const Emulated want = emulate(b, ic, cal, {});
    const Tensor ref = reference(b);
    const Dims out = ref.dims();
    const int64_t N = isConv(ic.c) ? out[1] : out.back();
    const double tol = 1e-5 * std::max(maxAbs(ref), 1e-3);
    const bool exact = !(ic.c.domain == "anvil" && transcendental(ic.c.attrs));
    std::vector<std::vector<int64_t>> sets = {{}, {0}, {N - 1}, {}, {}};
    for (int64_t f = 0; f < N; f += 2) sets[3].push_back(f);
    for (int64_t f = 0; f < N; ++f) sets[4].push_back(f);
    for (size_t si = 0; si < sets.size(); ++si) {
      const std::vector<int64_t>& set = sets[si];
      std::vector<char> flagged(size_t(N), 0);
      for (int64_t f : set) flagged[size_t(f)] = 1;
      const_cast<ir::Node*>(b.node)->tacticParams().set("fp32_channels", set);
      uint64_t expect = 0;
      for (size_t i = 0; i < want.y.size(); ++i) expect += flagged[size_t(featureOf(ic.c, out, i))];
      const int ran = runFamilies(ic, b, out, [&](const std::string& k, const std::vector<float>& got, uint64_t rec) {
        EXPECT_EQ(rec, expect) << k << " on " << name << " set " << si;
        for (size_t i = 0; i < got.size(); ++i) {
          if (flagged[size_t(featureOf(ic.c, out, i))]) {
            ASSERT_LE(std::fabs(double(got[i]) - ref.data<float>()[i]), tol)
                << k << " on " << name << " set " << si << " at " << i << ": f32 " << ref.data<float>()[i];
          } else if (exact) {
            ASSERT_EQ(got[i], want.y[i]) << k << " on " << name << " set " << si << " at " << i;
          } else {
            ASSERT_LE(std::fabs(double(got[i]) - want.y[i]), 2e-6 * std::max(maxAbs(ref), 1e-3)) << k << " at " << i;
          }
        }
      });
      EXPECT_GT(ran, 0);
    }
  }
}

TEST(NativeInt8Mixed, DeclinesBadTacticParams) {
  const I8Case& ic = caseNamed("MatMul_17x63x33");
  Calibration cal;
  for (const runtime::Kernel* k : kernelsFor("MatMul", "")) {
    Built b = buildI8(ic, 3, &cal);
    ir::Node* node = const_cast<ir::Node*>(b.node);
    node->tacticParams().set("fp32_channels", Dims{0, 33});
    EXPECT_THROW(prepare(*k, b, 1), Error) << k->name << ": feature 33 of 33";
    node->tacticParams() = {};
    node->tacticParams().set("adaptive_tau", 0.0f);
    EXPECT_THROW(prepare(*k, b, 1), Error) << k->name << ": tau 0";
    node->tacticParams().set("adaptive_tau", 1.0f);
    node->tacticParams().set("adaptive_test", std::string("sum"));
    EXPECT_THROW(prepare(*k, b, 1), Error) << k->name << ": test sum";
  }
}

// The adaptive tests' expectation per element from the emulation (the activations here are
// none or Relu: kappa_phi 1, or 0 at or below 0): the product and ratio values, compared
// with a margin of 2x either side of tau (inside it the kernel's float rounding decides).
struct Expect {
  std::vector<char> surelyFlagged, surelyKept;
  size_t flagged = 0, kept = 0;
};

Expect expectFlags(const Emulated& e, bool relu, int test, double tau) {
  Expect x;
  x.surelyFlagged.assign(e.y.size(), 0);
  x.surelyKept.assign(e.y.size(), 0);
  for (size_t i = 0; i < e.y.size(); ++i) {
    const double kphi = relu ? (e.pre[i] > 0 ? 1.0 : 0.0) : 1.0;
    const double kv = e.corr[i] == 0 ? HUGE_VAL : double(e.nsum[i]) / std::fabs(double(e.corr[i]));
    const double prod = kv * kphi / 255.0, ratio = kphi / std::fabs(double(e.pre[i]));
    double hi = 0, lo = 0;  // the larger and the smaller of the values the test uses, vs tau
    if (test == 0) hi = lo = prod;
    if (test == 1) hi = lo = ratio;
    if (test == 2) hi = std::max(prod, ratio), lo = hi;
    if (std::isnan(hi)) hi = lo = 0;  // 0 / 0 (Relu at 0): not flagged
    // With an activation, the argument's sign within the product's error (sum |w| |x| / 255)
    // flags it whatever the test (Mixed::flag).
    const double sign = relu ? double(e.nsum[i]) * e.absScale[i] / 255.0 / std::fabs(double(e.pre[i])) : 0.0;
    const bool signSure = relu && sign > 2.0, signMaybe = relu && !(sign < 0.5);
    if (hi > 2 * tau || signSure) x.surelyFlagged[i] = 1, ++x.flagged;
    if (lo < 0.5 * tau && !signMaybe) x.surelyKept[i] = 1, ++x.kept;
  }
  return x;
}

// A quantile of the test's values (tau that flags about 1 - q of the components).
double tauAt(const Emulated& e, bool relu, int test, double q) {
  std::vector<double> v;
  for (size_t i = 0; i < e.y.size(); ++i) {
    const double kphi = relu ? (e.pre[i] > 0 ? 1.0 : 0.0) : 1.0;
    const double kv = e.corr[i] == 0 ? HUGE_VAL : double(e.nsum[i]) / std::fabs(double(e.corr[i]));
    const double prod = kv * kphi / 255.0, ratio = kphi / std::fabs(double(e.pre[i]));
    double t = test == 0 ? prod : test == 1 ? ratio : std::max(prod, ratio);
    v.push_back(std::isnan(t) ? 0.0 : std::min(t, 1e30));
  }
  std::sort(v.begin(), v.end());
  return std::max(1e-6, v[size_t(q * double(v.size() - 1))]);
}

void checkAdaptive(const I8Case& ic, Built& b, const Calibration& cal, const std::string& what,
                   const std::vector<char>* mustFlag = nullptr) {
  const Emulated want = emulate(b, ic, cal, {});
  const Tensor ref = reference(b);
  const Dims out = ref.dims();
  const double tol = 1e-5 * std::max(maxAbs(ref), 1e-3);
  const bool relu = ic.c.attrs.getString("activation", "") == "Relu";
  const char* tests[] = {"product", "ratio", "both"};
  for (int test = 0; test < 3; ++test)
    for (double q : {0.95, 0.5}) {
      const double tau = tauAt(want, relu, test, q);
      ir::Node* node = const_cast<ir::Node*>(b.node);
      node->tacticParams().set("adaptive_tau", float(tau));
      node->tacticParams().set("adaptive_test", std::string(tests[test]));
      const Expect x = expectFlags(want, relu, test, double(float(tau)));
      if (mustFlag && test == 0 && q == 0.5)
        for (size_t i = 0; i < mustFlag->size(); ++i)
          if ((*mustFlag)[i]) {
            ASSERT_TRUE(x.surelyFlagged[i]) << what << ": the cancelling component " << i << " has a small kappa";
          }
      const int ran = runFamilies(ic, b, out, [&](const std::string& k, const std::vector<float>& got, uint64_t rec) {
        const std::string at = k + " on " + what + " (" + tests[test] + ", tau " + std::to_string(tau) + ")";
        EXPECT_GE(rec, x.flagged) << at;
        EXPECT_LE(rec, got.size() - x.kept) << at;
        for (size_t i = 0; i < got.size(); ++i) {
          const bool nearF32 = std::fabs(double(got[i]) - ref.data<float>()[i]) <= tol;
          if (x.surelyKept[i]) {
            ASSERT_EQ(got[i], want.y[i]) << at << " at " << i;
          } else if (x.surelyFlagged[i]) {
            ASSERT_TRUE(nearF32) << at << " at " << i << ": got " << got[i] << " f32 " << ref.data<float>()[i];
          } else {
            ASSERT_TRUE(nearF32 || got[i] == want.y[i]) << at << " at " << i;
          }
        }
      });
      EXPECT_GT(ran, 0);
    }
  // tau huge: nothing recomputed but the components whose corrected sum is exactly 0
  // (kappa_v = +inf, unless a Relu's kappa_phi is 0 there) and, with the Relu, those whose
  // argument's sign is within the product's error; the INT8 bits elsewhere.
  ir::Node* node = const_cast<ir::Node*>(b.node);
  node->tacticParams().set("adaptive_tau", 1e30f);
  node->tacticParams().set("adaptive_test", std::string("product"));
  std::vector<char> zero(want.y.size(), 0);
  uint64_t zeros = 0;
  for (size_t i = 0; i < want.y.size(); ++i)
    if ((want.corr[i] == 0 && (!relu || want.pre[i] > 0)) ||
        (relu && double(want.nsum[i]) * want.absScale[i] > 255.0 * std::fabs(double(want.pre[i]))))
      zero[i] = 1, ++zeros;
  runFamilies(ic, b, out, [&](const std::string& k, const std::vector<float>& got, uint64_t rec) {
    EXPECT_EQ(rec, zeros) << k << " on " << what;
    for (size_t i = 0; i < got.size(); ++i) {
      if (zero[i]) {
        ASSERT_LE(std::fabs(double(got[i]) - ref.data<float>()[i]), tol) << k << " on " << what << " at " << i;
      } else {
        ASSERT_EQ(got[i], want.y[i]) << k << " on " << what << " at " << i;
      }
    }
  });
  // tau tiny (no activation: kappa_phi = 1 everywhere): everything recomputed, the f32 result.
  if (!relu) {
    node->tacticParams().set("adaptive_tau", 1e-30f);
    runFamilies(ic, b, out, [&](const std::string& k, const std::vector<float>& got, uint64_t rec) {
      EXPECT_EQ(rec, uint64_t(got.size())) << k << " on " << what;
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_LE(std::fabs(double(got[i]) - ref.data<float>()[i]), tol) << k << " on " << what << " at " << i;
    });
  }
  node->tacticParams() = {};
}

// Cancellation by construction: A's rows repeat their first half (x[k + K/2] = x[k]) and
// every fifth column of B is its own negation across the halves plus 1e-3 noise, so those
// components are ~0 while sum |w| |x| is large: INT8 loses them, the adaptive test flags
// them, and they come back as f32.
TEST(NativeInt8Adaptive, FlagsCancellationAndKeepsTheRestInt8) {
  const int64_t M = 16, K = 256, N = 40;
  I8Case ic{{"cancel", "MatMul", "", {Dims{M, K}, Dims{K, N}}, {false, true}, {}}, Calib::kRange, 1.0f, false};
  Calibration cal;
  Built b = buildI8(ic, 17, &cal);
  float* x = b.tensors[0].data<float>();
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K / 2; ++k) x[m * K + K / 2 + k] = x[m * K + k];
  Tensor w = b.tensors[1].clone();
  float* wp = w.data<float>();
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> noise(-1e-3f, 1e-3f);
  for (int64_t n = 3; n < N; n += 5)
    for (int64_t k = 0; k < K / 2; ++k) wp[(K / 2 + k) * N + n] = -wp[k * N + n] + noise(rng);
  ir::Node* node = const_cast<ir::Node*>(b.node);
  node->setInput(1, b.graph->addInitializer("w_cancel", w.clone()));
  b.tensors[1] = w;
  std::vector<char> mustFlag(size_t(M * N), 0);
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 3; n < N; n += 5) mustFlag[size_t(m * N + n)] = 1;
  checkAdaptive(ic, b, cal, "cancel", &mustFlag);
}

TEST(NativeInt8Adaptive, EveryLayerKind) {
  for (const char* name : kMixedCases) {
    const I8Case& ic = caseNamed(name);
    const std::string act = ic.c.attrs.getString("activation", "");
    if (!(act.empty() || act == "Relu")) continue;  // expectFlags knows kappa_phi of none and Relu
    Calibration cal;
    Built b = buildI8(ic, 211, &cal);
    checkAdaptive(ic, b, cal, name);
  }
}

// Both items at once: fixed features in f32 whatever the adaptive test says.
TEST(NativeInt8Adaptive, WithFp32Channels) {
  const I8Case& ic = caseNamed("Conv_3x3_p1_ci13_co17");
  Calibration cal;
  Built b = buildI8(ic, 7, &cal);
  const Emulated want = emulate(b, ic, cal, {});
  const Tensor ref = reference(b);
  const Dims out = ref.dims();
  const double tol = 1e-5 * std::max(maxAbs(ref), 1e-3);
  ir::Node* node = const_cast<ir::Node*>(b.node);
  node->tacticParams().set("fp32_channels", Dims{2, 16});
  node->tacticParams().set("adaptive_tau", 1e30f);
  runFamilies(ic, b, out, [&](const std::string& k, const std::vector<float>& got, uint64_t rec) {
    EXPECT_EQ(rec, uint64_t(2 * out[2] * out[3])) << k;
    for (size_t i = 0; i < got.size(); ++i) {
      const int64_t f = featureOf(ic.c, out, i);
      if (f == 2 || f == 16) {
        ASSERT_LE(std::fabs(double(got[i]) - ref.data<float>()[i]), tol) << k << " at " << i;
      } else {
        ASSERT_EQ(got[i], want.y[i]) << k << " at " << i;
      }
    }
  });
}

}  // namespace

namespace {

// The cost of components in f32 (run with --gtest_also_run_disabled_tests): per shape the
// best f32 kernel, plain INT8, fp32_channels on ~5% of the features, adaptive precision
// with tau at the 95th percentile of kappa (~5% recomputed), each INT8 family the host has
// (ANVIL_BENCH_KERNEL: a substring of their names), one thread, best of several runs.
TEST(NativeInt8Bench, DISABLED_MixedCost) {
  const Dims w3{64, 64, 3, 3}, w1{64, 256, 1, 1}, wd2{32, 16, 3, 3}, wd3{64, 32, 3, 3};
  const std::vector<I8Case> shapes = {
      // digits_cnn's (docs/precision.md) second and third convolutions: batch 64 of tiny images
      {{"conv3x3_16to32_8x8_b64", "Conv", "", {Dims{64, 16, 8, 8}, wd2, Dims{32}}, {false, true, true},
        convAttrs(wd2, {}, {}, {1, 1, 1, 1})}},
      {{"conv3x3_32to64_4x4_b64", "Conv", "", {Dims{64, 32, 4, 4}, wd3, Dims{64}}, {false, true, true},
        convAttrs(wd3, {}, {}, {1, 1, 1, 1})}},
      {{"conv3x3_64to64_56x56", "Conv", "", {Dims{1, 64, 56, 56}, w3, Dims{64}}, {false, true, true},
        convAttrs(w3, {}, {}, {1, 1, 1, 1})}},
      {{"conv1x1_256to64_56x56", "Conv", "", {Dims{1, 256, 56, 56}, w1, Dims{64}}, {false, true, true},
        convAttrs(w1, {}, {}, {})}},
      {{"matmul_128x768x768", "MatMul", "", {Dims{128, 768}, Dims{768, 768}}, {false, true}, {}}},
  };
  const char* only = std::getenv("ANVIL_BENCH_KERNEL");
  for (const I8Case& ic : shapes) {
    Calibration cal;
    Built b = buildI8(ic, 7, &cal);
    const Dims out = b.node->output(0)->shape().extents();
    const int64_t N = isConv(ic.c) ? out[1] : out.back();
    const Emulated want = emulate(b, ic, cal, {});
    const double tau = tauAt(want, false, 0, 0.95);
    double bestF32 = 1e30;
    std::string bestName;
    const char* mode = std::getenv("ANVIL_BENCH_MODE");  // "static" / "adaptive": that mode only, for profiles
    for (const runtime::Kernel* k : f32Registry().all()) {
      if (mode || k->op != ic.c.op || !runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types()))
        continue;
      const double s = timeKernel(*k, b, out, 1, 10);
      if (s < bestF32) bestF32 = s, bestName = k->name;
    }
    std::printf("%s: best f32 %.3f ms (%s); adaptive tau %.4g\n", ic.c.name.c_str(), bestF32 * 1e3, bestName.c_str(),
                tau);
    ir::Node* node = const_cast<ir::Node*>(b.node);
    for (const runtime::Kernel* k : kernelsFor(ic.c.op, "")) {
      if (!runtime::hostHasAll(k->requirements) || (only && k->name.find(only) == std::string::npos)) continue;
      node->tacticParams() = {};
      Dims ch;
      for (int64_t f = 0; f < N; f += 20) ch.push_back(f);  // 5%
      if (mode) {  // "static" or "adaptive"
        if (std::string(mode) == "static")
          node->tacticParams().set("fp32_channels", ch);
        else
          node->tacticParams().set("adaptive_tau", float(tau));
        std::printf("  %s %s %.3f ms\n", k->name.c_str(), mode, 1e3 * timeKernel(*k, b, out, 1, 50));
        continue;
      }
      const double plain = timeKernel(*k, b, out, 1, 10);
      node->tacticParams().set("fp32_channels", ch);
      const double fixed = timeKernel(*k, b, out, 1, 10);
      node->tacticParams() = {};
      node->tacticParams().set("adaptive_tau", float(tau));
      const double adaptive = timeKernel(*k, b, out, 1, 10);
      const Counted c = runCounted(*k, prepare(*k, b, 1), b, out, 1);
      std::printf("  %-40s int8 %7.3f ms | fp32_channels %zu/%lld %7.3f ms (%.2fx) | adaptive %.1f%% %7.3f ms (%.2fx)"
                  " | f32 %.2fx int8\n",
                  k->name.c_str(), plain * 1e3, ch.size(), (long long)N, fixed * 1e3, fixed / plain,
                  100.0 * double(c.recomputed) / double(c.computed), adaptive * 1e3, adaptive / plain, bestF32 / plain);
      node->tacticParams() = {};
    }
  }
}

}  // namespace

namespace {

// The transcendental activations' kappa_phi (sigmoid, GELU, SiLU) with every test: each
// component is either the INT8 result (within the vector exp's few ulp) or the f32 one.
TEST(NativeInt8Adaptive, TranscendentalActivations) {
  for (const char* name : {"FusedGemm_17x63x33_tB_CN_gelu", "FusedConv_1x1_nobias_sigmoid", "FusedMatMul_7x17x130_biasN_silu",
                           "FusedConv_3x3_pad1_b2_gelu"}) {
    const I8Case& ic = caseNamed(name);
    Calibration cal;
    Built b = buildI8(ic, 5, &cal);
    const Emulated want = emulate(b, ic, cal, {});
    const Tensor ref = reference(b);
    const double tol = 1e-5 * std::max(maxAbs(ref), 1e-3);
    ir::Node* node = const_cast<ir::Node*>(b.node);
    for (const char* test : {"product", "ratio", "both"})
      for (float tau : {0.02f, 0.2f, 2.0f}) {
        node->tacticParams().set("adaptive_tau", tau);
        node->tacticParams().set("adaptive_test", std::string(test));
        runFamilies(ic, b, ref.dims(), [&](const std::string& k, const std::vector<float>& got, uint64_t) {
          for (size_t i = 0; i < got.size(); ++i) {
            const bool int8 = std::fabs(double(got[i]) - want.y[i]) <= 2e-6 * std::max(maxAbs(ref), 1e-3);
            const bool f32 = std::fabs(double(got[i]) - ref.data<float>()[i]) <= tol;
            ASSERT_TRUE(int8 || f32) << k << " on " << name << " (" << test << ", tau " << tau << ") at " << i;
          }
        });
      }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Lowered I/O: input 0, Z and output 0 as u8 values with a per-tensor quantization (a chain
// of i8 kernels keeps its activations quantized). Every combination against the f32-I/O
// kernel through the contract's identities, bit for bit, on every family the CPU has, at 1
// and 2 threads: a u8 input gives the bits of the f32 input float(q - z) * s, a u8 Z those
// of the f32 Z float(q - z_z) * s_z, a u8 output is quantizeU8One(y, 1 / s_y, z_y) of the
// f32 output y.

namespace {

enum LowBits { kLX = 1, kLZ = 2, kLY = 4 };

ir::Quantization perTensorQ(float s, int32_t zp) {
  return ir::Quantization{Tensor::scalar<float>(DataType::kF32, s), Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(zp)),
                          std::nullopt};
}

// Input i of b becomes the u8 tensor q (the f32 tensor's extents), its value typed u8.
void lowerInput(Built& b, size_t i, const std::vector<uint8_t>& q) {
  Tensor t(DataType::kU8, b.tensors[i].dims());
  std::memcpy(t.data<uint8_t>(), q.data(), q.size());
  ir::Value* v = const_cast<ir::Node*>(b.node)->input(i);
  v->setType(ir::TensorType{DataType::kU8, v->shape()});
  b.tensors[i] = std::move(t);
}

void lowerOutput(Built& b, float s, int32_t zp) {
  ir::Value* y = const_cast<ir::Node*>(b.node)->output(0);
  y->setType(ir::TensorType{DataType::kU8, y->shape()});
  y->setQuantization(perTensorQ(s, zp));
}

// q = quantizeU8One(x) of an f32 tensor, and x replaced by its dequantized values.
std::vector<uint8_t> quantizeInPlace(Tensor& x, float s, int32_t zp) {
  std::vector<uint8_t> q(size_t(x.numel()));
  float* d = x.data<float>();
  for (int64_t i = 0; i < x.numel(); ++i) {
    q[size_t(i)] = cpu::tactics::quantizeU8One(d[i], 1.0f / s, zp);
    d[i] = float(int32_t(q[size_t(i)]) - zp) * s;
  }
  return q;
}

// The kernel prepared for 2 threads, run at 1 and 2: the output's bytes (both runs equal,
// guards and workspace intact).
std::vector<uint8_t> runBothThreads(const runtime::Kernel& k, const Built& b, const Dims& outDims, DataType outType) {
  const PreparedKernel pk = prepare(k, b, 2);
  std::vector<std::vector<uint8_t>> outs;
  for (int threads : {1, 2}) {
    auto ex = runtime::makeCpuExecutor(threads);
    Step step(k, pk, b, outDims, false, outType);
    step.run(*ex);
    const RunResult r = step.result();
    EXPECT_TRUE(r.guardsIntact) << k.name << " wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(r.workspaceIntact) << k.name << " wrote past the workspace (threads=" << threads << ")";
    outs.push_back(r.bytes);
  }
  EXPECT_TRUE(outs[0] == outs[1]) << k.name << ": 1 and 2 threads differ bitwise";
  return outs[0];
}

const Epi& epiNamed(const std::string& n) {
  for (const Epi& e : epilogues())
    if (n == e.name) return e;
  ADD_FAILURE() << "no epilogue " << n;
  return epilogues().front();
}

std::vector<I8Case> allLowCases() {
  std::vector<I8Case> c;
  auto add = [&](std::string name, std::string op, std::string domain, std::vector<std::optional<Dims>> in,
                 std::vector<bool> constant, ir::Attributes at) {
    c.push_back({{std::move(name), std::move(op), std::move(domain), std::move(in), std::move(constant), at},
                 Calib::kRange, 1.0f, false, false});
  };
  // Conv: the 1x1 tiles (odd C), the direct form (3x3 pad 1, stride 2, the 7x7 stride-2 stem
  // with C = 3, the 1x1 stride-2 downsample, a 3x1 whose positions are the pixels, several
  // position chunks), batch 2.
  const Dims w1a{13, 17, 1, 1}, w1b{40, 63, 1, 1}, w3a{7, 17, 3, 3}, w3b{17, 63, 3, 3}, w7{16, 3, 7, 7};
  const Dims w1s{9, 17, 1, 1}, w31{9, 6, 3, 1}, wd{33, 37, 3, 3};
  add("Conv_1x1_17to13_b2", "Conv", "", {Dims{2, 17, 7, 9}, w1a, Dims{13}}, {false, true, true}, convAttrs(w1a, {}, {}, {}));
  add("Conv_1x1_63to40", "Conv", "", {Dims{1, 63, 5, 6}, w1b}, {false, true}, convAttrs(w1b, {}, {}, {}));
  add("Conv_3x3_p1_17to7_b2", "Conv", "", {Dims{2, 17, 9, 11}, w3a, Dims{7}}, {false, true, true},
      convAttrs(w3a, {}, {}, {1, 1, 1, 1}));
  add("Conv_3x3_s2_p1_63to17", "Conv", "", {Dims{1, 63, 13, 12}, w3b}, {false, true},
      convAttrs(w3b, {2, 2}, {}, {1, 1, 1, 1}));
  add("Conv_7x7_s2_p3_stem", "Conv", "", {Dims{1, 3, 23, 21}, w7, Dims{16}}, {false, true, true},
      convAttrs(w7, {2, 2}, {}, {3, 3, 3, 3}));
  add("Conv_7x7_s2_p3_stem_rows", "Conv", "", {Dims{1, 3, 45, 43}, w7, Dims{16}}, {false, true, true},
      convAttrs(w7, {2, 2}, {}, {3, 3, 3, 3}));
  add("Conv_1x1_s2_17to9", "Conv", "", {Dims{1, 17, 9, 7}, w1s}, {false, true}, convAttrs(w1s, {2, 2}, {}, {}));
  add("Conv_3x1_p1_inplace", "Conv", "", {Dims{1, 6, 11, 13}, w31, Dims{9}}, {false, true, true},
      convAttrs(w31, {}, {}, {1, 0, 1, 0}));
  add("Conv_3x3_37to33_b2_chunks", "Conv", "", {Dims{2, 37, 23, 19}, wd, Dims{33}}, {false, true, true},
      convAttrs(wd, {}, {}, {1, 1, 1, 1}));
  // MatMul / Gemm with odd M, K, N.
  add("MatMul_7x63x17", "MatMul", "", {Dims{7, 63}, Dims{63, 17}}, {false, true}, {});
  add("MatMul_17x5x33", "MatMul", "", {Dims{17, 5}, Dims{5, 33}}, {false, true}, {});
  add("MatMul_1x300x100", "MatMul", "", {Dims{1, 300}, Dims{300, 100}}, {false, true}, {});
  add("MatMul_batch_2x3x7x13", "MatMul", "", {Dims{2, 3, 7, 13}, Dims{13, 9}}, {false, true}, {});
  add("Gemm_7x13x33_CN", "Gemm", "", {Dims{7, 13}, Dims{13, 33}, Dims{33}}, {false, true, true},
      gemmAttrs(0, 0, 1.5f, -1.0f));
  add("Gemm_tA_7x13x33_CMN", "Gemm", "", {Dims{13, 7}, Dims{13, 33}, Dims{7, 33}}, {false, true, true},
      gemmAttrs(1, 0, 0.5f, 2.0f));
  add("Gemm_tB_17x63x33", "Gemm", "", {Dims{17, 63}, Dims{33, 63}}, {false, true}, gemmAttrs(0, 1, 1.0f, 1.0f));
  // The fused ops with and without a residual Z.
  auto fused = [&](std::string name, std::string op, std::vector<std::optional<Dims>> in, std::vector<bool> constant,
                   ir::Attributes at, const Dims& out, const Epi& e) {
    setEpilogue(e, at);
    if (e.residual) {
      while (in.size() < 3) in.push_back(std::nullopt), constant.push_back(false);
      in.push_back(out);
      constant.resize(4, false);
    }
    add(op + "_" + name + "_" + e.name, op, "anvil", in, constant, at);
  };
  const Dims f1{40, 16, 1, 1}, f3{7, 5, 3, 3}, f3s{7, 17, 3, 3};
  // (clip: finishTile's other activation; silu: the EpilogueRow-then-quantize path.)
  // (res_add_silu: a u8 Z through the row-then-quantize path.)
  static const Epi resSilu{"res_add_silu", "Silu", {}, 1};
  std::vector<const Epi*> epis;
  for (const char* e : {"res_add_relu", "res_relu_add", "res_only", "relu", "clip", "silu"}) epis.push_back(&epiNamed(e));
  epis.push_back(&resSilu);
  for (const Epi* ep : epis) {
    const Epi& e = *ep;
    fused("1x1", "FusedConv", {Dims{1, 16, 17, 15}, f1, Dims{40}}, {false, true, true}, convAttrs(f1, {}, {}, {}),
          {1, 40, 17, 15}, e);
    fused("3x3_p1_b2", "FusedConv", {Dims{2, 5, 9, 11}, f3, Dims{7}}, {false, true, true},
          convAttrs(f3, {}, {}, {1, 1, 1, 1}), {2, 7, 9, 11}, e);
    fused("17x63x33_tB_CN", "FusedGemm", {Dims{17, 63}, Dims{33, 63}, Dims{33}}, {false, true, true},
          gemmAttrs(0, 1, 0.5f, 1.0f), {17, 33}, e);
    fused("7x17x130_biasN", "FusedMatMul", {Dims{7, 17}, Dims{17, 130}, Dims{130}}, {false, true, true}, {}, {7, 130},
          e);
  }
  fused("3x3_s2_p1_nobias", "FusedConv", {Dims{1, 17, 9, 11}, f3s}, {false, true},
        convAttrs(f3s, {2, 2}, {}, {1, 1, 1, 1}), {1, 7, 5, 6}, epiNamed("res_add_relu"));
  fused("batch_2x63x7x17_bias1", "FusedMatMul", {Dims{2, 63, 7}, Dims{7, 17}, Dims{1}}, {false, true, true}, {},
        {2, 63, 17}, epiNamed("res_relu_add"));
  return c;
}

const std::vector<I8Case>& lowCases() {
  static const std::vector<I8Case> c = allLowCases();
  return c;
}

// A case's f32-I/O graph (input 0 and Z at their dequantized values) and the u8 data.
struct LowData {
  Built f32;
  Calibration cal;
  std::vector<uint8_t> qx, qz;
  float sz = 2.0f / 255.0f;  // Z drawn from [-1, 1]
  int32_t zz = 131;
  bool hasZ = false;
};

LowData lowData(const I8Case& ic, uint32_t seed) {
  LowData d;
  d.f32 = buildI8(ic, seed, &d.cal);
  d.qx = quantizeInPlace(d.f32.tensors[0], d.cal.scale, d.cal.zp);
  d.hasZ = d.f32.tensors.size() > 3 && d.f32.tensors[3].defined();
  if (d.hasZ) d.qz = quantizeInPlace(d.f32.tensors[3], d.sz, d.zz);
  return d;
}

// The same node with the inputs and output in `bits` lowered (y's quantization sy, zy).
Built lowered(const I8Case& ic, uint32_t seed, const LowData& d, int bits, float sy, int32_t zy) {
  Calibration cal;
  Built b = buildI8(ic, seed, &cal);
  b.tensors[0] = d.f32.tensors[0].clone();
  if (d.hasZ) b.tensors[3] = d.f32.tensors[3].clone();
  if (bits & kLX) lowerInput(b, 0, d.qx);
  if (bits & kLZ) {
    lowerInput(b, 3, d.qz);
    const_cast<ir::Node*>(b.node)->input(3)->setQuantization(perTensorQ(d.sz, d.zz));
  }
  if (bits & kLY) lowerOutput(b, sy, zy);
  return b;
}

struct PL {
  size_t index;
};
void PrintTo(const PL& p, std::ostream* os) { *os << lowCases()[p.index].c.name; }

class NativeInt8Lowered : public ::testing::TestWithParam<PL> {};

TEST_P(NativeInt8Lowered, EveryCombinationMatchesTheF32KernelBitwise) {
  const I8Case& ic = lowCases()[GetParam().index];
  const uint32_t seed = uint32_t(GetParam().index) * 104729u + 5;
  const LowData d = lowData(ic, seed);
  const Dims outDims = d.f32.node->output(0)->shape().extents();
  int ran = 0;
  for (const runtime::Kernel* k : kernelsFor(ic.c.op, ic.c.domain)) {
    if (!runtime::hostHasAll(k->requirements)) {
      std::printf("skipped %s: this CPU lacks %s\n", k->name.c_str(), runtime::firstMissing(k->requirements).c_str());
      continue;
    }
    ++ran;
    ASSERT_TRUE(k->supports(*d.f32.node, d.f32.types())) << k->name;
    std::vector<float> y(size_t(ir::numelOf(outDims)));
    {
      const std::vector<uint8_t> bytes = runBothThreads(*k, d.f32, outDims, DataType::kF32);
      ASSERT_EQ(bytes.size(), y.size() * 4);
      std::memcpy(y.data(), bytes.data(), bytes.size());
    }
    // The output's grid: 90% of its range (the ends saturate).
    float lo = 0.0f, hi = 0.0f;
    for (float v : y) lo = std::min(lo, v), hi = std::max(hi, v);
    const float sy = std::max(0.9f * (hi - lo) / 255.0f, 1e-6f);
    const int32_t zy = std::clamp(int32_t(std::nearbyint(-0.9f * lo / sy)), 0, 255);
    for (int bits = 1; bits < 8; ++bits) {
      if ((bits & kLZ) && !d.hasZ) continue;
      const Built b = lowered(ic, seed, d, bits, sy, zy);
      ASSERT_TRUE(k->supports(*b.node, b.types())) << k->name << " declined lowered bits " << bits;
      const std::vector<uint8_t> got = runBothThreads(*k, b, outDims, bits & kLY ? DataType::kU8 : DataType::kF32);
      int64_t mismatches = 0, first = -1;
      if (bits & kLY) {
        ASSERT_EQ(got.size(), y.size());
        for (size_t i = 0; i < y.size(); ++i)
          if (got[i] != cpu::tactics::quantizeU8One(y[i], 1.0f / sy, zy) && mismatches++ == 0) first = int64_t(i);
      } else {
        ASSERT_EQ(got.size(), y.size() * 4);
        for (size_t i = 0; i < y.size(); ++i)
          if (std::memcmp(got.data() + 4 * i, &y[i], 4) != 0 && mismatches++ == 0) first = int64_t(i);
      }
      EXPECT_EQ(mismatches, 0) << k->name << " lowered bits " << bits << " (1 X, 2 Z, 4 Y): first at " << first;
    }
  }
  EXPECT_GT(ran, 0) << "no kernel ran";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeInt8Lowered,
                         ::testing::ValuesIn([] {
                           std::vector<PL> p;
                           for (size_t i = 0; i < lowCases().size(); ++i) p.push_back({i});
                           return p;
                         }()),
                         [](const ::testing::TestParamInfo<PL>& p) { return lowCases()[p.param.index].c.name; });

// supports() declines lowered values it cannot honour: u8 without a quantization, a
// per-axis one, an s8 zero point, and u8 I/O on a node with components in f32.
TEST(NativeInt8Lowered, SupportsDeclinesWhatItCannotHonour) {
  const I8Case* fc = nullptr;
  const I8Case* mm = nullptr;
  for (const I8Case& c : lowCases()) {
    if (c.c.name == "FusedConv_1x1_res_add_relu") fc = &c;
    if (c.c.name == "MatMul_7x63x17") mm = &c;
  }
  ASSERT_TRUE(fc && mm);
  for (const I8Case* ic : {fc, mm}) {
    const LowData d = lowData(*ic, 3);
    const int all = d.hasZ ? 7 : 5;
    for (const runtime::Kernel* k : kernelsFor(ic->c.op, ic->c.domain)) {
      auto low = [&](int bits) { return lowered(*ic, 3, d, bits, 0.05f, 7); };
      {
        const Built b = low(all);
        EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
      }
      {
        Built b = low(all);
        const_cast<ir::Node*>(b.node)->input(0)->setQuantization(std::nullopt);
        EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a u8 X without quantization";
      }
      {
        Built b = low(all);
        const_cast<ir::Node*>(b.node)->input(0)->setQuantization(
            ir::Quantization{Tensor::fromVector<float>(DataType::kF32, {3}, std::vector<float>(3, 0.1f)), Tensor(), 1});
        EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a per-axis u8 X";
      }
      {
        Built b = low(all);
        const_cast<ir::Node*>(b.node)->output(0)->setQuantization(std::nullopt);
        EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a u8 output without quantization";
      }
      {
        Built b = low(all);
        const_cast<ir::Node*>(b.node)->output(0)->setQuantization(
            ir::Quantization{Tensor::fromVector<float>(DataType::kF32, {3}, std::vector<float>(3, 0.1f)), Tensor(), 1});
        EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a per-axis u8 output";
      }
      {
        Built b = low(all);
        const_cast<ir::Node*>(b.node)->output(0)->setQuantization(ir::Quantization{
            Tensor::scalar<float>(DataType::kF32, 0.1f), Tensor::scalar<int8_t>(DataType::kI8, int8_t(0)), std::nullopt});
        EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took an s8 zero point on a u8 output";
      }
      if (d.hasZ) {
        Built b = low(all);
        const_cast<ir::Node*>(b.node)->input(3)->setQuantization(std::nullopt);
        EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took a u8 Z without quantization";
      }
      // Components in f32 need the f32 input and output: each lowered value alone is declined.
      for (int bits : {int(kLX), int(kLZ), int(kLY)}) {
        if ((bits & kLZ) && !d.hasZ) continue;
        for (const char* param : {"fp32_channels", "adaptive_tau"}) {
          Built b = low(bits);
          ir::Node* n = const_cast<ir::Node*>(b.node);
          if (std::string(param) == "fp32_channels") n->tacticParams().set(param, Dims{0, 1});
          else n->tacticParams().set(param, 0.5f);
          EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name << " took " << param << " with lowered bits " << bits;
        }
      }
      {  // The same with f32 I/O is fine.
        Built b = low(0);
        const_cast<ir::Node*>(b.node)->tacticParams().set("fp32_channels", Dims{0, 1});
        EXPECT_TRUE(k->supports(*b.node, b.types())) << k->name;
      }
    }
  }
}

}  // namespace

namespace {

// Lowered I/O's cost per resnet50 layer shape: f32 I/O, u8 input and output (Z f32), and
// everything u8, one thread (ANVIL_BENCH_THREADS), the kernels whose names contain
// ANVIL_BENCH_KERNEL (default avx512vnni, else every family the CPU has).
TEST(NativeInt8Bench, DISABLED_LoweredIo) {
  const char* env = std::getenv("ANVIL_BENCH_THREADS");
  const int threads = env ? std::atoi(env) : 1;
  const char* kenv = std::getenv("ANVIL_BENCH_KERNEL");
  const std::string kfilter = kenv ? kenv : "avx512vnni";
  struct Shape {
    std::string name;
    Dims x, w;
    Dims strides, pads;
    const char* epi;
  };
  const std::vector<Shape> shapes = {
      {"1x1_256to64_56x56_relu", {1, 256, 56, 56}, {64, 256, 1, 1}, {}, {}, "relu"},
      {"1x1_64to256_56x56_relu_Z", {1, 64, 56, 56}, {256, 64, 1, 1}, {}, {}, "res_add_relu"},
      {"3x3_64to64_56x56_relu", {1, 64, 56, 56}, {64, 64, 3, 3}, {}, {1, 1, 1, 1}, "relu"},
      {"3x3_s2_128to128_56to28_relu", {1, 128, 56, 56}, {128, 128, 3, 3}, {2, 2}, {1, 1, 1, 1}, "relu"},
      {"3x3_128to128_28x28_relu", {1, 128, 28, 28}, {128, 128, 3, 3}, {}, {1, 1, 1, 1}, "relu"},
      {"1x1_s2_256to512_56to28", {1, 256, 56, 56}, {512, 256, 1, 1}, {2, 2}, {}, "none"},
      {"3x3_512to512_7x7_relu", {1, 512, 7, 7}, {512, 512, 3, 3}, {}, {1, 1, 1, 1}, "relu"},
      {"1x1_1024to256_14x14_relu", {1, 1024, 14, 14}, {256, 1024, 1, 1}, {}, {}, "relu"},
      {"1x1_256to1024_14x14_relu_Z", {1, 256, 14, 14}, {1024, 256, 1, 1}, {}, {}, "res_add_relu"},
      {"3x3_256to256_14x14_relu", {1, 256, 14, 14}, {256, 256, 3, 3}, {}, {1, 1, 1, 1}, "relu"},
      {"7x7_s2_3to64_224_stem_relu", {1, 3, 224, 224}, {64, 3, 7, 7}, {2, 2}, {3, 3, 3, 3}, "relu"},
  };
  const char* only = std::getenv("ANVIL_BENCH_ONLY");
  // bert-like FusedMatMul (bias, and the residual Z of the attention output).
  const std::vector<Shape> matmuls = {
      {"matmul_128x768x768_bias", {128, 768}, {768, 768}, {}, {}, "none"},
      {"matmul_128x768x768_bias_Z", {128, 768}, {768, 768}, {}, {}, "res_only"},
      {"matmul_128x768x3072_bias_relu", {128, 768}, {768, 3072}, {}, {}, "relu"},
  };
  for (const Shape& s : matmuls) {
    if (only && s.name.find(only) == std::string::npos) continue;
    ir::Attributes at;
    const Epi& e = epiNamed(s.epi);
    setEpilogue(e, at);
    const Dims out{s.x[0], s.w[1]};
    std::vector<std::optional<Dims>> in = {s.x, s.w, Dims{s.w[1]}};
    std::vector<bool> constant = {false, true, true};
    if (e.residual) in.push_back(out), constant.push_back(false);
    const I8Case ic{{s.name, "FusedMatMul", "anvil", in, constant, at}, Calib::kRange, 1.0f, false, false};
    const LowData d = lowData(ic, 7);
    const double ops = 2.0 * double(ir::numelOf(out)) * double(s.w[0]);
    std::printf("%s, %d thread(s), %.3f GOP\n", s.name.c_str(), threads, ops * 1e-9);
    for (const runtime::Kernel* k : kernelsFor("FusedMatMul", "anvil")) {
      if (!runtime::hostHasAll(k->requirements) || k->name.find(kfilter) == std::string::npos) continue;
      std::vector<std::pair<int, double>> best;
      std::vector<Built> bs;
      std::vector<std::unique_ptr<PreparedKernel>> pks;
      std::vector<std::unique_ptr<Step>> steps;
      auto ex = runtime::makeCpuExecutor(threads);
      for (int bits : {0, int(kLX), int(kLY), kLX | kLY, kLX | kLY | kLZ}) {
        if ((bits & kLZ) && !d.hasZ) continue;
        bs.push_back(lowered(ic, 7, d, bits, 0.05f, 3));
        best.push_back({bits, 1e30});
      }
      for (size_t i = 0; i < bs.size(); ++i) {
        pks.push_back(std::make_unique<PreparedKernel>(prepare(*k, bs[i], threads)));
        steps.push_back(std::make_unique<Step>(*k, *pks[i], bs[i], out, true,
                                               best[i].first & kLY ? DataType::kU8 : DataType::kF32));
        for (int r = 0; r < 3; ++r) steps[i]->run(*ex);
      }
      for (int round = 0; round < 15; ++round)
        for (size_t i = 0; i < steps.size(); ++i) {
          const auto t0 = std::chrono::steady_clock::now();
          for (int r = 0; r < 10; ++r) steps[i]->run(*ex);
          best[i].second = std::min(best[i].second, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 10);
        }
      for (const auto& [bits, t] : best)
        std::printf("  %-40s %-10s %8.3f ms %7.1f GOP/s  %.2fx f32 I/O\n", k->name.c_str(),
                    bits == 0 ? "f32 I/O" : bits == kLX ? "u8 X" : bits == kLY ? "u8 Y" : bits == 5 ? "u8 X+Y" : "u8 X+Y+Z",
                    t * 1e3, ops / t * 1e-9, best[0].second / t);
    }
  }
  for (const Shape& s : shapes) {
    if (only && s.name.find(only) == std::string::npos) continue;
    ir::Attributes at = convAttrs(s.w, s.strides, {}, s.pads);
    const Epi& e = epiNamed(s.epi);
    setEpilogue(e, at);
    const int64_t OH = (s.x[2] + (s.pads.empty() ? 0 : 2 * s.pads[0]) - s.w[2]) / (s.strides.empty() ? 1 : s.strides[0]) + 1;
    const int64_t OW = (s.x[3] + (s.pads.empty() ? 0 : 2 * s.pads[1]) - s.w[3]) / (s.strides.empty() ? 1 : s.strides[1]) + 1;
    const Dims out{1, s.w[0], OH, OW};
    std::vector<std::optional<Dims>> in = {s.x, s.w, Dims{s.w[0]}};
    std::vector<bool> constant = {false, true, true};
    if (e.residual) in.push_back(out), constant.push_back(false);
    const I8Case ic{{s.name, "FusedConv", "anvil", in, constant, at}, Calib::kRange, 1.0f, false, false};
    const LowData d = lowData(ic, 7);
    const double ops = 2.0 * double(ir::numelOf(out)) * double(s.w[1] * s.w[2] * s.w[3]);
    std::printf("%s, %d thread(s), %.3f GOP\n", s.name.c_str(), threads, ops * 1e-9);
    // Both INT8 Conv families (the pixels kernel takes outputs of at most 784 pixels).
    auto& both = anvil::testing::nk::registryOf<&runtime::registerNativeInt8Kernels,
                                                &runtime::registerNativeInt8PixelsKernels>();
    for (const runtime::Kernel* k : both.all()) {
      if (k->op != "FusedConv" || k->domain != "anvil") continue;
      if (!runtime::hostHasAll(k->requirements) || k->name.find(kfilter) == std::string::npos) continue;
      if (!k->supports(*lowered(ic, 7, d, 0, 0.05f, 3).node, lowered(ic, 7, d, 0, 0.05f, 3).types())) continue;
      // The variants timed in turn, round after round, each keeping its best (the shared box's
      // load changes over seconds).
      struct Variant {
        int bits;
        Built b;
        std::unique_ptr<PreparedKernel> pk;
        std::unique_ptr<Step> step;
        double best = 1e30;
      };
      std::vector<Variant> vs;
      auto ex = runtime::makeCpuExecutor(threads);
      for (int bits : {0, int(kLX), int(kLY), kLX | kLY, kLX | kLY | kLZ}) {
        if ((bits & kLZ) && !d.hasZ) continue;
        Variant v;
        v.bits = bits;
        v.b = lowered(ic, 7, d, bits, 0.05f, 3);
        v.pk = std::make_unique<PreparedKernel>(prepare(*k, v.b, threads));
        v.step = std::make_unique<Step>(*k, *v.pk, v.b, out, true, bits & kLY ? DataType::kU8 : DataType::kF32);
        for (int i = 0; i < 3; ++i) v.step->run(*ex);
        vs.push_back(std::move(v));
      }
      const int reps = 10;
      for (int round = 0; round < 15; ++round)
        for (Variant& v : vs) {
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < reps; ++i) v.step->run(*ex);
          v.best = std::min(v.best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / reps);
        }
      for (const Variant& v : vs) {
        const int bits = v.bits;
        std::printf("  %-40s %-10s %8.3f ms %7.1f GOP/s  %.2fx f32 I/O\n", k->name.c_str(),
                    bits == 0 ? "f32 I/O" : bits == kLX ? "u8 X" : bits == kLY ? "u8 Y" : bits == 5 ? "u8 X+Y" : "u8 X+Y+Z",
                    v.best * 1e3, ops / v.best * 1e-9, vs[0].best / v.best);
      }
    }
  }
}

}  // namespace

namespace {

// finishTile's code paths (scalar, AVX2, AVX-512, as far as the host has them) against the
// f32 kernels' EpilogueRow followed by quantizeU8One, bit for bit: values with NaN, +-inf,
// +-0.0, exact half steps of the output grid and saturating ones; None / Relu / Clip, Z f32
// or u8 before or after the activation, a per-row and a per-column bias, u8 or f32 output,
// widths 1..40 (every tail); output zero points 100 and 0 (where a Relu before the u8 store
// is left out), and RowFinish::noNaN on the same values with the NaN replaced.
TEST(NativeInt8Finish, EveryPathMatchesEpilogueRowAndQuantizer) {
  using cpu::tactics::RowFinish;
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  const float ys = 0.02f, zs = 0.03f;
  const int32_t zz = 77;
  const int rows = 3;
  const int64_t ld = 48;
  std::vector<float> y(size_t(rows * ld)), colBias(static_cast<size_t>(ld)), rowBias = {0.25f, -0.0f, -1.5f};
  std::vector<uint8_t> zq(size_t(rows * ld));
  for (size_t i = 0; i < y.size(); ++i) {
    y[i] = dist(rng);
    zq[i] = uint8_t(rng() & 0xff);
  }
  for (float& v : colBias) v = dist(rng) * 0.1f;
  const float specials[] = {std::numeric_limits<float>::quiet_NaN(), INFINITY, -INFINITY, 0.0f, -0.0f,
                            ys * 10.5f, ys * -3.5f, 1e30f, -1e30f};
  for (size_t i = 0; i < 9; ++i) y[i * 5] = specials[i];
  std::vector<float> zf(zq.size());
  for (size_t i = 0; i < zq.size(); ++i) zf[i] = float(int32_t(zq[i]) - zz) * zs;
  const std::vector<float> yAny = y;
  std::vector<float> yNoNaN = y;
  yNoNaN[0] = ys * -0.5f;  // the NaN's place: a half step below 0
  int checked = 0;
  for (int yz : {100, 0})
  for (bool noNaN : {false, true})
  for (int act : {0, 1, 2})
    for (bool epilogue : {false, true})
      for (int zKind : {0, 1, 2})
        for (bool addFirst : {true, false})
          for (bool cb : {false, true})
            for (bool u8 : {true, false}) {
              if (!epilogue && (zKind || cb || act || !addFirst)) continue;
              ir::linear::Epilogue e;
              e.act = ir::linear::Activation(act);
              e.p0 = -0.5f;
              e.p1 = 0.75f;
              e.residual = zKind != 0;
              e.addFirst = addFirst;
              const std::vector<float>& y = noNaN ? yNoNaN : yAny;
              RowFinish f;
              f.noNaN = noNaN;
              f.epilogue = epilogue;
              f.act = act;
              f.p0 = e.p0;
              f.p1 = e.p1;
              f.addFirst = addFirst;
              f.zScale = zs;
              f.zZero = zz;
              f.yInv = 1.0f / ys;
              f.yZero = yz;
              const cpu::tactics::EpilogueRow row = cpu::tactics::epilogueRow(e);
              for (int64_t n = 1; n <= 40; ++n) {
                // The reference: the row in place, then the quantizer.
                std::vector<float> want = y;
                std::vector<uint8_t> wantQ(want.size());
                for (int r = 0; r < rows; ++r) {
                  float* wr = want.data() + r * ld;
                  if (epilogue)
                    row(e, wr, zKind ? zf.data() + r * ld : nullptr, cb ? colBias.data() : nullptr, rowBias[size_t(r)], n);
                  for (int64_t j = 0; j < n; ++j) wantQ[size_t(r * ld + j)] = cpu::tactics::quantizeU8One(wr[j], f.yInv, yz);
                }
                for (int level = 0; level <= 2; ++level) {
                  std::vector<uint8_t> gotQ(want.size(), 0xcd);
                  std::vector<float> gotF(want.size(), 12345.0f);
                  cpu::tactics::finishTile(f, y.data(), ld, rows, n, rowBias.data(), 1, cb ? colBias.data() : nullptr,
                                           zKind == 1 ? zf.data() : nullptr, zKind == 2 ? zq.data() : nullptr, ld,
                                           u8 ? gotQ.data() : nullptr, u8 ? nullptr : gotF.data(), ld, level);
                  for (int r = 0; r < rows; ++r)
                    for (int64_t j = 0; j < ld; ++j) {
                      const size_t i = size_t(r * ld + j);
                      if (j >= n) {  // past the row: untouched
                        ASSERT_TRUE(u8 ? gotQ[i] == 0xcd : gotF[i] == 12345.0f) << "wrote past n = " << n;
                        continue;
                      }
                      if (u8) {
                        ASSERT_EQ(int(gotQ[i]), int(wantQ[i])) << "level " << level << " yz " << yz << " noNaN " << noNaN
                                                               << " act " << act << " z " << zKind
                                                               << " addFirst " << addFirst << " n " << n << " at " << i;
                      } else {
                        ASSERT_EQ(std::memcmp(&gotF[i], &want[i], 4), 0)
                            << "level " << level << " act " << act << " z " << zKind << " addFirst " << addFirst
                            << " n " << n << " at " << i << ": " << gotF[i] << " vs " << want[i];
                      }
                    }
                  ++checked;
                }
              }
            }
  EXPECT_GT(checked, 0);
}

// The adaptive test filters each row of components with a cheap bound of kappa_phi before
// the exact test (straight to bits, eight at a time in float on AVX2 hosts, with a lower
// bound that flags for certain; Mixed::maybeRow in double otherwise): it may keep components
// the exact test leaves out, never drop one it flags, and never flag for certain one it
// leaves out. Every bounded
// activation, each test (product, ratio, both), on rows of random values spanning many
// magnitudes with edge values mixed in (0, signed zero, subnormals, huge, infinities, NaN,
// the GELU cap's edge, components right at the threshold), both paths; and the filter must
// still filter (else it saves nothing).
TEST(NativeInt8Adaptive, RowFilterKeepsEveryComponentTheExactTestFlags) {
  using A = ir::linear::Activation;
  std::mt19937 rng(17);
  std::uniform_real_distribution<double> u(-1.0, 1.0), e(-12.0, 12.0);
  const float edges[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-30f, 3e38f, -3e38f, INFINITY, -INFINITY, NAN,
                         -37.0f, -36.99f, -37.01f, 1e-7f, 60.0f, -60.0f, 1e19f, -1e19f};
  int64_t flagged = 0, kept = 0, total = 0, sure = 0, vectorFlagged = 0;
  for (A act : {A::kRelu, A::kTanh, A::kSigmoid, A::kSilu, A::kGelu, A::kGeluTanh})
    for (int test : {0, 1, 2})
      for (float tau : {0.3f, 0.1f, 0.01f})
        for (int row = 0; row < 40; ++row) {
          const int64_t n = 1 + int64_t(rng() % 64);
          const size_t len = static_cast<size_t>(n);
          std::vector<float> nsum(len), v0(len), scales(len), actIn(len);
          for (int64_t i = 0; i < n; ++i) {
            const size_t I = size_t(i);
            actIn[I] = float(u(rng) * 8.0 * std::pow(10.0, e(rng) / 6.0));
            v0[I] = float(u(rng) * std::pow(10.0, e(rng) / 3.0));
            scales[I] = float(std::pow(10.0, -2.0 - 4.0 * (u(rng) + 1.0)));
            // nsum >= |v0| / scale in the kernels (a sum of absolute values); up to 1e4 times more.
            nsum[I] = float(std::fabs(double(v0[I])) / scales[I] * std::pow(10.0, 2.0 * (u(rng) + 1.0)));
            if (rng() % 6 == 0) {
              const float x = edges[rng() % (sizeof edges / sizeof edges[0])];
              switch (rng() % 3) {
                case 0: actIn[I] = x; break;
                case 1: v0[I] = x; break;
                default: nsum[I] = std::fabs(x); break;
              }
            }
            if (rng() % 8 == 0) {  // right at the product test's threshold for kappa_phi = 1
              nsum[I] = float(255.0 * double(tau) * std::fabs(double(v0[I])) / scales[I]);
              actIn[I] = 0.0f;
            }
          }
          const bool perComponent = (row & 1) != 0;
          // The argument reaches the filter as v0 + bias (a FilterRow's adds): bias = actIn - v0
          // gives actIn, or near it, and the edge values (infinities, NaN) through the sum.
          std::vector<float> bias(len), arg(len);
          for (size_t I = 0; I < len; ++I) bias[I] = actIn[I] - v0[I];
          for (bool scalar : {false, true}) {
            std::vector<uint8_t> maybe(len), exact(len);
            cpu::tactics::adaptiveRowFilterForTest(act, test, tau, nsum.data(), v0.data(),
                                                   perComponent ? scales.data() : nullptr, scales[0], bias.data(), n,
                                                   scalar, arg.data(), maybe.data(), exact.data());
            actIn = arg;
            for (int64_t i = 0; i < n; ++i) {
              const size_t I = size_t(i);
              if (maybe[I] == 2) {  // flagged for certain: no exact test follows
                ASSERT_TRUE(exact[I]) << "activation " << int(act) << " test " << test << " tau " << tau
                                      << (scalar ? " scalar" : " vector") << ": component " << i << " actIn "
                                      << actIn[I] << " v0 " << v0[I] << " nsum " << nsum[I] << " scale "
                                      << (perComponent ? scales[I] : scales[0]) << " sure but not flagged";
                ++sure;
              }
              ASSERT_LE(maybe[I], scalar ? 1 : 2);
              if (exact[I]) {
                ASSERT_TRUE(maybe[I]) << "activation " << int(act) << " test " << test << " tau " << tau
                                      << (scalar ? " scalar" : " vector") << ": component " << i << " actIn "
                                      << actIn[I] << " v0 " << v0[I] << " nsum " << nsum[I] << " scale "
                                      << (perComponent ? scales[I] : scales[0]);
              }
              flagged += exact[I];
              kept += maybe[I] != 0;
              if (!scalar) vectorFlagged += exact[I];
              ++total;
            }
          }
        }
  std::printf("[ note ] %lld of %lld components flagged, %lld kept by the filter; vector path: %lld of %lld "
              "flagged for certain\n",
              (long long)flagged, (long long)total, (long long)kept, (long long)sure, (long long)vectorFlagged);
  EXPECT_LT(kept, total * 9 / 10);  // it filters
  if (runtime::hostHasAll({"avx2", "fma"})) {
    EXPECT_GT(sure, vectorFlagged / 2);  // and decides most flags itself
  }
}

}  // namespace

namespace {

// The product test without an activation (every component's exact test when a layer has no
// activation: nsum |scale| > 255 tau |v0|, or v0 = 0) in float, eight at a time on AVX2
// hosts: the same decision as the scalar loop for every component, edge values included.
TEST(NativeInt8Adaptive, ProductFlagsVectorEqualsScalar) {
  std::mt19937 rng(23);
  std::uniform_real_distribution<double> u(-1.0, 1.0);
  const float edges[] = {0.0f, -0.0f, 1e-40f, -1e-40f, 1e-38f, 3e38f, -3e38f, INFINITY, -INFINITY, NAN};
  int64_t flagged = 0, total = 0;
  for (float tau : {0.3f, 0.1f, 0.01f})
    for (int row = 0; row < 200; ++row) {
      const int64_t n = 1 + int64_t(rng() % 64);
      const size_t len = size_t(n);
      std::vector<float> nsum(len), v0(len), scales(len);
      for (size_t i = 0; i < len; ++i) {
        v0[i] = float(u(rng) * std::pow(10.0, 4.0 * u(rng)));
        scales[i] = float(std::pow(10.0, -2.0 - 4.0 * (u(rng) + 1.0)));
        nsum[i] = float(std::fabs(double(v0[i])) / scales[i] * std::pow(10.0, 2.0 * (u(rng) + 1.0)));
        if (rng() % 6 == 0) {
          const float x = edges[rng() % (sizeof edges / sizeof edges[0])];
          if (rng() % 2) v0[i] = x;
          else nsum[i] = std::fabs(x);
        }
        if (rng() % 8 == 0) nsum[i] = float(255.0 * double(tau) * std::fabs(double(v0[i])) / scales[i]);  // at the edge
      }
      const bool perComponent = (row & 1) != 0;
      std::vector<uint8_t> vec(len), ref(len);
      const float* sc = perComponent ? scales.data() : nullptr;
      cpu::tactics::adaptiveProductFlagsForTest(tau, nsum.data(), v0.data(), sc, scales[0], n, false, vec.data());
      cpu::tactics::adaptiveProductFlagsForTest(tau, nsum.data(), v0.data(), sc, scales[0], n, true, ref.data());
      for (size_t i = 0; i < len; ++i) {
        ASSERT_EQ(vec[i], ref[i]) << "tau " << tau << " component " << i << " nsum " << nsum[i] << " v0 " << v0[i];
        flagged += ref[i];
        ++total;
      }
    }
  EXPECT_GT(flagged, total / 20);
  EXPECT_LT(flagged, total * 19 / 20);
}

}  // namespace

namespace {

// The row filter flags a component for certain (no exact test) from a lower bound of
// kappa_phi: it must stay at or below the exact condition (in double) for every argument.
// A dense grid over [-8, 8] (where the bounds are nonzero: |v| <= 3 at most), every float
// near 0, and values across the range.
TEST(NativeInt8Adaptive, ConditionLowerBounds) {
  using A = ir::linear::Activation;
  std::vector<float> v;
  for (int i = -800000; i <= 800000; ++i) v.push_back(float(i) * 1e-5f);
  for (float x = 1e-30f; x < 1e-2f; x *= 1.01f) v.push_back(x), v.push_back(-x);
  for (float x = 8.0f; x < 3e38f; x *= 1.5f) v.push_back(x), v.push_back(-x);
  for (float x : {0.0f, -0.0f, 1e-45f, -1e-45f, 3.0f, -3.0f, 1.0f, -1.0f, -0.5f, 3.4e38f, -3.4e38f})
    v.push_back(x);
  while (v.size() % 8) v.push_back(0.0f);
  std::vector<float> lo(v.size());
  for (A act : {A::kRelu, A::kTanh, A::kSigmoid, A::kSilu, A::kGelu, A::kGeluTanh}) {
    if (!cpu::tactics::adaptiveConditionLowerForTest(act, v.data(), int64_t(v.size()), lo.data())) {
      GTEST_SKIP() << "skipped: no AVX2";
    }
    ir::linear::Epilogue e;
    e.act = act;
    int64_t positive = 0;
    for (size_t i = 0; i < v.size(); ++i) {
      const double exact = ir::linear::activationCondition(e, double(v[i]));
      ASSERT_TRUE(lo[i] >= 0.0f) << int(act) << " at " << v[i];
      if (lo[i] > 0.0f) {
        // Relu's is exact; the others keep a margin (their float evaluation errs by ~1e-7)
        ASSERT_LE(double(lo[i]), act == A::kRelu ? exact : exact * 0.9995) << "activation " << int(act) << " at v = " << v[i];
        ++positive;
      }
    }
    EXPECT_GT(positive, int64_t(v.size() / 10)) << int(act);  // a bound that is not always 0
  }
}

}  // namespace

namespace {

// The adaptive row filter goes straight to bits where the host has AVX2; through flag bytes
// (in double) otherwise. Both must make the same decisions: the same outputs bit for bit and
// the same count recomputed. MatMul (bias per column or one), Gemm (C per column, C [M, N]
// gathered per row), Conv (with and without bias) with every fused epilogue (none, Relu, Clip, Sigmoid, GELU, SiLU, a residual
// before or after the activation, a residual alone) and Tanh, on rows whose width is not a
// multiple of 8.
TEST(NativeInt8Adaptive, FilterBitsEqualBytes) {
  std::vector<I8Case> all;
  for (const char* base : {"FusedMatMul_7x17x130_biasN", "FusedMatMul_batch_2x63x7x17_bias1", "FusedGemm_17x63x33_tB_CN",
                           "FusedGemm_17x63x70_CMN", "FusedConv_3x3_pad1_b2", "FusedConv_1x1_nobias"}) {
    for (const Epi& e : epilogues()) all.push_back(caseNamed(std::string(base) + "_" + e.name));
    I8Case t = caseNamed(std::string(base) + "_none");
    t.c.attrs.set("activation", std::string("Tanh"));
    all.push_back(t);
  }
  int compared = 0;
  for (const I8Case& ic : all) {
    Calibration cal;
    Built b = buildI8(ic, 29, &cal);
    const Dims out = reference(b).dims();
    ir::Node* node = const_cast<ir::Node*>(b.node);
    for (const char* test : {"product", "both"})
      for (float tau : {0.3f, 0.03f}) {
        node->tacticParams().set("adaptive_tau", tau);
        node->tacticParams().set("adaptive_test", std::string(test));
        for (const runtime::Kernel* k : kernelsFor(ic.c.op, ic.c.domain)) {
          if (!runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
          const PreparedKernel pk = prepare(*k, b, 1);
          cpu::tactics::adaptiveBytePathForTest(true);
          const Counted bytes = runCounted(*k, pk, b, out, 1);
          cpu::tactics::adaptiveBytePathForTest(false);
          const Counted bits = runCounted(*k, pk, b, out, 1);
          const std::string at = k->name + " on " + ic.c.name + " " + ic.c.attrs.getString("activation", "") + " (" +
                                 test + ", tau " + std::to_string(tau) + ")";
          EXPECT_EQ(bytes.recomputed, bits.recomputed) << at;
          ASSERT_EQ(std::memcmp(bytes.out.data(), bits.out.data(), bits.out.size() * 4), 0) << at;
          ++compared;
        }
      }
  }
  EXPECT_GT(compared, 0);
}

}  // namespace
