// Every CPU tactic of MatMul, Gemm and Conv against the reference kernel (or, until one is
// registered, a naive double-accumulating loop here) on odd shapes: tile edges below, at
// and above each tile, primes, K = 0, batch broadcast, Gemm transposes with every C shape,
// Conv with groups, depthwise, strides, dilations, asymmetric and automatic pads. Outputs
// go into a planned slot with sentinel guards on both sides. TacticBench.DISABLED_Timing
// doubles as the benchmark (--gtest_also_run_disabled_tests).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <random>

#include <time.h>

#include "cpu/reference.h"
#include "cpu/tactics.h"
#include "cpu/tactics/gemm_kernels.h"
#include "ir/graph.h"

using namespace anvil;
using anvil::cpu::KernelContext;
using anvil::cpu::Tactic;
using anvil::cpu::TacticRegistry;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using Dims = std::vector<int64_t>;

struct OpCase {
  std::string name;  // unique within the op, [A-Za-z0-9_]
  std::string op;
  std::vector<std::optional<Dims>> inputs;  // nullopt: input omitted
  std::function<void(ir::Attributes&)> attrs = [](ir::Attributes&) {};
};

// ---------------------------------------------------------------------------------------
// The cases

std::vector<OpCase> matmulCases() {
  std::vector<OpCase> c;
  auto mm = [&](std::string name, Dims a, Dims b) { c.push_back({"MatMul_" + name, "MatMul", {a, b}}); };
  // M x K x N around the tiles (4x4, 6x16, 14x32) and cache blocks (kc 192/256, mc 72/84, nc 1024).
  const std::vector<std::array<int64_t, 3>> mkn = {
      {1, 1, 1},    {1, 7, 1},     {7, 13, 33},  {6, 16, 16},   {5, 15, 15},   {7, 17, 17},   {14, 32, 32},
      {13, 31, 31}, {15, 33, 33},  {4, 4, 4},    {3, 3, 5},     {29, 64, 97},  {37, 1, 19},   {85, 193, 65},
      {73, 257, 47}, {100, 300, 40}, {2, 129, 1031}, {130, 20, 7}, {3, 0, 5},   {64, 128, 96}, {169, 11, 3}};
  for (auto [m, k, n] : mkn)
    mm(std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n), {m, k}, {k, n});
  mm("0x5x3", {0, 5}, {5, 3});
  mm("vec_mat", {13}, {13, 7});
  mm("mat_vec", {5, 13}, {13});
  mm("vec_vec", {13}, {13});
  mm("batch_vec", {3, 5, 13}, {13});
  mm("batchA_sharedB", {2, 3, 7, 13}, {13, 9});
  mm("sharedA_batchB", {7, 13}, {2, 13, 5});
  mm("batch_same", {4, 5, 11}, {4, 11, 6});
  mm("batch_bcast_both", {2, 1, 7, 13}, {3, 13, 9});
  mm("batch_bcast_4d", {1, 3, 5, 8}, {2, 1, 8, 17});
  mm("batch_ones_B", {3, 6, 17}, {1, 1, 17, 18});
  mm("batch_many_small", {24, 3, 5}, {24, 5, 4});
  return c;
}

std::vector<OpCase> gemmCases() {
  std::vector<OpCase> c;
  auto gemm = [&](std::string name, int64_t M, int64_t K, int64_t N, int tA, int tB, float alpha, float beta,
                  std::optional<Dims> C) {
    Dims a = tA ? Dims{K, M} : Dims{M, K}, b = tB ? Dims{N, K} : Dims{K, N};
    c.push_back({"Gemm_" + name, "Gemm", {a, b, C}, [=](ir::Attributes& at) {
                   if (tA) at.set("transA", int64_t(tA));
                   if (tB) at.set("transB", int64_t(tB));
                   if (alpha != 1.0f) at.set("alpha", alpha);
                   if (beta != 1.0f) at.set("beta", beta);
                 }});
  };
  for (auto [M, K, N] : std::vector<std::array<int64_t, 3>>{{7, 13, 33}, {17, 29, 5}, {33, 257, 20}, {1, 1, 1}}) {
    const std::string s = std::to_string(M) + "x" + std::to_string(K) + "x" + std::to_string(N);
    for (int tA = 0; tA < 2; ++tA)
      for (int tB = 0; tB < 2; ++tB) {
        const std::string t = "_tA" + std::to_string(tA) + "tB" + std::to_string(tB);
        gemm(s + t + "_noC", M, K, N, tA, tB, 1.0f, 1.0f, std::nullopt);
        gemm(s + t + "_C_MN", M, K, N, tA, tB, 0.5f, 2.0f, Dims{M, N});
      }
    gemm(s + "_C_N", M, K, N, 0, 0, 1.5f, -1.0f, Dims{N});
    gemm(s + "_C_1N", M, K, N, 1, 0, 1.0f, 0.25f, Dims{1, N});
    gemm(s + "_C_M1", M, K, N, 0, 1, -0.5f, 3.0f, Dims{M, 1});
    gemm(s + "_C_11", M, K, N, 1, 1, 2.0f, 0.5f, Dims{1, 1});
    gemm(s + "_C_scalar", M, K, N, 0, 0, 1.0f, 1.0f, Dims{});
    gemm(s + "_C_1", M, K, N, 0, 0, 1.0f, 2.0f, Dims{1});
  }
  gemm("K0_C", 5, 0, 7, 0, 0, 1.0f, 2.0f, Dims{5, 7});
  gemm("K0_noC", 5, 0, 7, 1, 1, 1.0f, 1.0f, std::nullopt);
  gemm("alpha0", 6, 9, 17, 0, 0, 0.0f, 1.0f, Dims{17});
  gemm("beta0", 6, 9, 17, 0, 1, 1.0f, 0.0f, Dims{6, 17});
  gemm("big_tA", 90, 200, 70, 1, 0, 1.0f, 1.0f, Dims{70});
  return c;
}

struct ConvSpec {
  Dims x, w;
  bool bias = true;
  int64_t group = 1;
  Dims strides, dilations, pads;
  std::string autoPad;
};

std::vector<OpCase> convCases() {
  std::vector<OpCase> c;
  auto conv = [&](std::string name, ConvSpec s) {
    std::vector<std::optional<Dims>> in = {s.x, s.w};
    if (s.bias) in.push_back(Dims{s.w[0]});
    c.push_back({"Conv_" + name, "Conv", in, [s](ir::Attributes& at) {
                   if (s.group != 1) at.set("group", s.group);
                   if (!s.strides.empty()) at.set("strides", s.strides);
                   if (!s.dilations.empty()) at.set("dilations", s.dilations);
                   if (!s.pads.empty()) at.set("pads", s.pads);
                   if (!s.autoPad.empty()) at.set("auto_pad", s.autoPad);
                   at.set("kernel_shape", Dims{s.w[2], s.w[3]});
                 }});
  };
  conv("3x3_pad1", {{1, 3, 7, 9}, {5, 3, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}});
  conv("3x3_nobias", {{2, 3, 7, 9}, {5, 3, 3, 3}, false, 1, {}, {}, {1, 1, 1, 1}});
  conv("1x1", {{2, 8, 5, 6}, {13, 8, 1, 1}, false});
  conv("1x1_bias_stride2", {{1, 8, 9, 7}, {4, 8, 1, 1}, true, 1, {2, 2}});
  conv("1x1_pad", {{1, 5, 4, 3}, {3, 5, 1, 1}, true, 1, {}, {}, {1, 0, 0, 2}});
  conv("3x3_stride2", {{1, 4, 11, 13}, {6, 4, 3, 3}, true, 1, {2, 2}, {}, {1, 1, 1, 1}});
  conv("3x3_dilation2", {{1, 3, 12, 10}, {4, 3, 3, 3}, true, 1, {}, {2, 2}, {2, 2, 2, 2}});
  conv("asym_pads", {{1, 2, 8, 8}, {3, 2, 3, 2}, true, 1, {}, {}, {0, 1, 2, 3}});
  conv("asym_stride", {{1, 3, 9, 17}, {5, 3, 2, 3}, true, 1, {1, 3}, {2, 1}, {1, 0, 0, 1}});
  conv("7x7_stride2", {{1, 3, 23, 19}, {8, 3, 7, 7}, true, 1, {2, 2}, {}, {3, 3, 3, 3}});
  conv("groups3", {{2, 6, 9, 9}, {9, 2, 3, 3}, true, 3, {}, {}, {1, 1, 1, 1}});
  conv("groups2_stride2_nobias", {{3, 4, 10, 7}, {6, 2, 3, 3}, false, 2, {2, 2}, {}, {0, 1, 1, 0}});
  conv("wide_K", {{1, 32, 20, 20}, {40, 32, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}});
  conv("kernel_eq_input", {{1, 3, 5, 5}, {7, 3, 5, 5}, true});
  conv("same_upper_s2", {{1, 3, 10, 11}, {4, 3, 3, 3}, true, 1, {2, 2}, {}, {}, "SAME_UPPER"});
  conv("same_lower_even_k", {{1, 3, 10, 11}, {4, 3, 4, 4}, true, 1, {2, 1}, {}, {}, "SAME_LOWER"});
  conv("same_upper_dil", {{1, 2, 9, 9}, {3, 2, 3, 3}, false, 1, {}, {2, 2}, {}, "SAME_UPPER"});
  conv("valid", {{1, 3, 10, 11}, {4, 3, 3, 3}, true, 1, {}, {}, {}, "VALID"});
  conv("dw_3x3", {{1, 16, 10, 20}, {16, 1, 3, 3}, true, 16, {}, {}, {1, 1, 1, 1}});
  conv("dw_3x3_wide_row", {{1, 2, 6, 37}, {2, 1, 3, 3}, true, 2, {}, {}, {1, 1, 1, 1}});
  conv("dw_3x3_stride2", {{2, 8, 17, 35}, {8, 1, 3, 3}, true, 8, {2, 2}, {}, {1, 1, 1, 1}});
  conv("dw_stride2_nopad", {{1, 3, 16, 40}, {3, 1, 3, 3}, false, 3, {2, 2}});
  conv("dw_multiplier2", {{1, 4, 9, 11}, {8, 1, 3, 3}, true, 4, {}, {}, {1, 1, 1, 1}});
  conv("dw_5x5_s3_d2", {{1, 3, 29, 40}, {3, 1, 5, 5}, true, 3, {3, 3}, {2, 2}, {4, 4, 4, 4}});
  conv("dw_7x7_asym", {{1, 5, 19, 27}, {5, 1, 7, 7}, false, 5, {}, {}, {3, 2, 1, 4}});
  conv("dw_same_upper_s2", {{1, 6, 14, 33}, {6, 1, 3, 3}, true, 6, {2, 2}, {}, {}, "SAME_UPPER"});
  conv("dw_narrow_row", {{1, 3, 5, 6}, {3, 1, 3, 3}, true, 3, {}, {}, {1, 1, 1, 1}});
  conv("dw_stride2_wide_row", {{1, 2, 9, 80}, {2, 1, 3, 3}, true, 2, {2, 2}, {}, {1, 1, 1, 1}});
  conv("dw_1ch_to_4", {{2, 1, 7, 19}, {4, 1, 3, 3}, true, 1, {}, {}, {1, 1, 1, 1}});
  return c;
}

const std::vector<OpCase>& allCases() {
  static const std::vector<OpCase> cases = [] {
    std::vector<OpCase> all;
    for (auto f : {matmulCases, gemmCases, convCases})
      for (OpCase& c : f()) all.push_back(std::move(c));
    return all;
  }();
  return cases;
}

// ---------------------------------------------------------------------------------------
// Building and running one node

struct Built {
  std::unique_ptr<ir::Graph> graph = std::make_unique<ir::Graph>();
  ir::Node* node = nullptr;
  std::vector<Tensor> tensors;  // undefined where omitted
  std::vector<const Tensor*> ptrs() const {
    std::vector<const Tensor*> p;
    for (const Tensor& t : tensors) p.push_back(t.defined() ? &t : nullptr);
    return p;
  }
  std::vector<ir::TensorType> types() const {
    std::vector<ir::TensorType> ty;
    for (const Tensor& t : tensors) ty.push_back(t.defined() ? t.type() : ir::TensorType{});
    return ty;
  }
};

Built build(const OpCase& c, uint32_t seed = 1) {
  Built b;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<ir::Value*> values;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i]) {
      b.tensors.emplace_back();
      values.push_back(nullptr);
      continue;
    }
    Tensor t(DataType::kF32, *c.inputs[i]);
    for (int64_t j = 0; j < t.numel(); ++j) t.data<float>()[j] = dist(rng);
    values.push_back(b.graph->addValue("in" + std::to_string(i), t.type()));
    b.tensors.push_back(std::move(t));
  }
  b.node = b.graph->addNode(c.op, "", c.name, values, {"y"});
  c.attrs(b.node->attrs());
  return b;
}

KernelContext makeContext(const Built& b) {
  return KernelContext(*b.node, b.ptrs(), [](const ir::Graph&, const std::vector<Tensor>&) {
    return std::vector<Tensor>{};
  });
}

// ---------------------------------------------------------------------------------------
// Naive oracles (double accumulation), used until the reference kernels are registered

Tensor naiveMatMul(const Built& b) {
  const Tensor &A = b.tensors[0], &B = b.tensors[1];
  Dims ad = A.dims(), bd = B.dims();
  const bool av = ad.size() == 1, bv = bd.size() == 1;
  if (av) ad.insert(ad.begin(), 1);
  if (bv) bd.push_back(1);
  const int64_t M = ad[ad.size() - 2], K = ad.back(), N = bd.back();
  Dims ba(ad.begin(), ad.end() - 2), bb(bd.begin(), bd.end() - 2);
  const size_t r = std::max(ba.size(), bb.size());
  ba.insert(ba.begin(), r - ba.size(), 1);
  bb.insert(bb.begin(), r - bb.size(), 1);
  Dims batch(r), out;
  for (size_t i = 0; i < r; ++i) batch[i] = std::max(ba[i], bb[i]);
  out = batch;
  if (!av) out.push_back(M);
  if (!bv) out.push_back(N);
  Tensor y(DataType::kF32, out);
  const int64_t nb = ir::numelOf(batch);
  for (int64_t bi = 0; bi < nb; ++bi) {
    int64_t oa = 0, ob = 0, sa = 1, sb = 1;
    for (int64_t i = int64_t(r) - 1, rem = bi; i >= 0; --i) {
      const int64_t idx = rem % batch[i];
      rem /= batch[i];
      oa += (ba[i] == 1 ? 0 : idx) * sa;
      ob += (bb[i] == 1 ? 0 : idx) * sb;
      sa *= ba[i];
      sb *= bb[i];
    }
    const float* ap = A.data<float>() + oa * M * K;
    const float* bp = B.data<float>() + ob * K * N;
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += double(ap[m * K + k]) * bp[k * N + n];
        y.data<float>()[(bi * M + m) * N + n] = float(s);
      }
  }
  return y;
}

Tensor naiveGemm(const Built& b) {
  const ir::Attributes& at = b.node->attrs();
  const bool tA = at.getInt("transA", 0), tB = at.getInt("transB", 0);
  const double alpha = at.getFloat("alpha", 1.0f), beta = at.getFloat("beta", 1.0f);
  const Tensor &A = b.tensors[0], &B = b.tensors[1];
  const int64_t M = tA ? A.dim(1) : A.dim(0), K = tA ? A.dim(0) : A.dim(1), N = tB ? B.dim(0) : B.dim(1);
  Tensor y(DataType::kF32, {M, N});
  for (int64_t m = 0; m < M; ++m)
    for (int64_t n = 0; n < N; ++n) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k)
        s += double(A.data<float>()[tA ? k * M + m : m * K + k]) * B.data<float>()[tB ? n * K + k : k * N + n];
      s *= alpha;
      if (b.tensors.size() > 2 && b.tensors[2].defined()) {
        const Tensor& C = b.tensors[2];
        const int64_t cM = C.rank() == 2 ? C.dim(0) : 1, cN = C.rank() >= 1 ? C.dim(C.rank() - 1) : 1;
        s += beta * C.data<float>()[(cM == 1 ? 0 : m) * cN + (cN == 1 ? 0 : n)];
      }
      y.data<float>()[m * N + n] = float(s);
    }
  return y;
}

Tensor naiveConv(const Built& b) {
  const ir::Attributes& at = b.node->attrs();
  const Tensor &X = b.tensors[0], &W = b.tensors[1];
  const int64_t N = X.dim(0), C = X.dim(1), H = X.dim(2), Wd = X.dim(3);
  const int64_t M = W.dim(0), kH = W.dim(2), kW = W.dim(3), G = at.getInt("group", 1), Cg = C / G, Mg = M / G;
  const Dims s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  Dims p = at.getInts("pads", {0, 0, 0, 0});
  const std::string ap = at.getString("auto_pad", "NOTSET");
  if (ap == "VALID") p = {0, 0, 0, 0};
  if (ap == "SAME_UPPER" || ap == "SAME_LOWER") {
    const Dims in = {H, Wd}, k = {kH, kW};
    for (int i = 0; i < 2; ++i) {
      const int64_t out = (in[i] + s[i] - 1) / s[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in[i]);
      p[i] = ap == "SAME_UPPER" ? total / 2 : total - total / 2;
      p[i + 2] = total - p[i];
    }
  }
  const int64_t OH = (H + p[0] + p[2] - (kH - 1) * d[0] - 1) / s[0] + 1;
  const int64_t OW = (Wd + p[1] + p[3] - (kW - 1) * d[1] - 1) / s[1] + 1;
  Tensor y(DataType::kF32, {N, M, OH, OW});
  const bool hasBias = b.tensors.size() > 2 && b.tensors[2].defined();
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m) {
      const int64_t g = m / Mg;
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double acc = hasBias ? b.tensors[2].data<float>()[m] : 0.0;
          for (int64_t ci = 0; ci < Cg; ++ci)
            for (int64_t kh = 0; kh < kH; ++kh)
              for (int64_t kw = 0; kw < kW; ++kw) {
                const int64_t ih = oh * s[0] - p[0] + kh * d[0], iw = ow * s[1] - p[1] + kw * d[1];
                if (ih < 0 || ih >= H || iw < 0 || iw >= Wd) continue;
                acc += double(X.data<float>()[((n * C + g * Cg + ci) * H + ih) * Wd + iw]) *
                       W.data<float>()[((m * Cg + ci) * kH + kh) * kW + kw];
              }
          y.data<float>()[((n * M + m) * OH + oh) * OW + ow] = float(acc);
        }
    }
  return y;
}

bool haveReference(const std::string& op) { return cpu::KernelRegistry::instance().find(op) != nullptr; }

// The oracle: the registered reference kernel when there is one, else the naive loops.
Tensor oracle(const Built& b) {
  if (const cpu::RefKernel* ref = cpu::KernelRegistry::instance().find(b.node->op())) {
    KernelContext ctx = makeContext(b);
    (*ref)(ctx);
    return ctx.outputs()[0];
  }
  const std::string& op = b.node->op();
  return op == "MatMul" ? naiveMatMul(b) : op == "Gemm" ? naiveGemm(b) : naiveConv(b);
}

// Runs a tactic with its output in a planned slot guarded by sentinels on both sides.
constexpr uint32_t kSentinel = 0x7fa5a5a5u;  // a NaN no kernel produces
constexpr int64_t kGuard = 67;

struct Guarded {
  std::vector<uint32_t> buf;
  Tensor out;
  bool inSlot = false, guardsIntact = true;
};

Guarded runGuarded(const Tactic& t, const Built& b, int64_t outNumel) {
  Guarded g;
  g.buf.assign(size_t(outNumel + 2 * kGuard), kSentinel);
  void* slot = g.buf.data() + kGuard;
  KernelContext ctx = makeContext(b);
  ctx.setOutputSlots({{slot, size_t(outNumel) * 4}});
  t.run(ctx);
  g.out = ctx.outputs()[0];
  g.inSlot = g.out.raw() == slot || outNumel == 0;
  for (int64_t i = 0; i < kGuard; ++i)
    if (g.buf[i] != kSentinel || g.buf[g.buf.size() - 1 - i] != kSentinel) g.guardsIntact = false;
  return g;
}

// max |got - want| <= 1e-5 * max |want|; returns a failure message or "".
std::string compare(const Tensor& got, const Tensor& want) {
  if (got.dims() != want.dims()) return "shape " + got.summary() + ", expected " + want.summary();
  double maxRef = 0, maxErr = 0;
  int64_t worst = -1;
  for (int64_t i = 0; i < want.numel(); ++i) maxRef = std::max(maxRef, std::fabs(double(want.data<float>()[i])));
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double e = std::fabs(double(got.data<float>()[i]) - want.data<float>()[i]);
    if (!(e <= maxErr)) {
      maxErr = std::isnan(e) ? INFINITY : e;
      worst = i;
    }
  }
  if (maxErr <= 1e-5 * maxRef) return "";
  char msg[200];
  std::snprintf(msg, sizeof msg, "max error %.3g at flat index %lld (got %.9g, want %.9g), max |ref| %.3g",
                maxErr, (long long)worst, got.data<float>()[worst], want.data<float>()[worst], maxRef);
  return msg;
}

// ---------------------------------------------------------------------------------------
// The parametrised test: every (tactic, case) pair where the tactic supports the node

struct Param {
  std::string tactic;
  size_t caseIndex;
};
void PrintTo(const Param& p, std::ostream* os) { *os << p.tactic << " on " << allCases()[p.caseIndex].name; }

std::vector<Param> allParams() {
  std::vector<Param> out;
  const auto tactics = TacticRegistry::instance().all();
  for (size_t i = 0; i < allCases().size(); ++i) {
    const OpCase& c = allCases()[i];
    const Built b = build(c);
    for (const Tactic* t : tactics)
      if (t->op == c.op && t->domain.empty() && t->supports(*b.node, b.types())) out.push_back({t->name, i});
  }
  return out;
}

class TacticOps : public ::testing::TestWithParam<Param> {};

TEST_P(TacticOps, MatchesReference) {
  const OpCase& c = allCases()[GetParam().caseIndex];
  const Tactic* t = TacticRegistry::instance().find(c.op, "", GetParam().tactic);
  ASSERT_NE(t, nullptr);
  if (!cpu::cpuHas(t->isa)) GTEST_SKIP() << "this CPU lacks " << t->isa;
  const Built b = build(c, uint32_t(GetParam().caseIndex) * 7919u + 1);
  const Tensor want = oracle(b);
  RecordProperty("oracle", haveReference(c.op) ? "reference kernel" : "naive loop");
  const Guarded g = runGuarded(*t, b, want.numel());
  EXPECT_TRUE(g.guardsIntact) << "wrote outside the output slot";
  EXPECT_TRUE(g.inSlot) << "output not placed in the planned slot";
  const std::string err = compare(g.out, want);
  EXPECT_EQ(err, "") << t->name << " on " << c.name;
}

INSTANTIATE_TEST_SUITE_P(Tactic, TacticOps, ::testing::ValuesIn(allParams()),
                         [](const ::testing::TestParamInfo<Param>& p) {
                           return p.param.tactic + "__" + allCases()[p.param.caseIndex].name;
                         });

// ---------------------------------------------------------------------------------------
// Registration, declines, determinism

std::vector<const Tactic*> tacticsFor(const std::string& op) {  // ai.onnx only
  std::vector<const Tactic*> out;
  for (const Tactic* t : TacticRegistry::instance().all())
    if (t->op == op && t->domain.empty()) out.push_back(t);
  return out;
}

TEST(TacticRegistration, EnoughTacticsPerOp) {
  EXPECT_GE(tacticsFor("MatMul").size(), 3u);
  EXPECT_GE(tacticsFor("Gemm").size(), 3u);
  EXPECT_GE(tacticsFor("Conv").size(), 2u);
  for (const std::string op : {"MatMul", "Gemm", "Conv"})
    for (const Tactic* t : tacticsFor(op)) EXPECT_EQ(t->name.rfind("f32_", 0), 0u) << t->name;
}

TEST(TacticRegistration, EveryTacticHasACase) {
  std::map<std::string, int> covered;
  for (const Param& p : allParams()) covered[allCases()[p.caseIndex].op + "/" + p.tactic]++;
  for (const std::string op : {"MatMul", "Gemm", "Conv"})  // other ops' tactics have their own tests
    for (const Tactic* t : tacticsFor(op))
      EXPECT_GE(covered[t->op + "/" + t->name], 5) << t->op << "/" << t->name << " is barely exercised";
}

TEST(TacticSupports, DeclinesWhatItCannotRun) {
  auto supports = [](const Tactic* t, const std::string& op, std::vector<ir::TensorType> types,
                     std::function<void(ir::Attributes&)> attrs = {}) {
    ir::Graph g;
    std::vector<ir::Value*> vals;
    for (size_t i = 0; i < types.size(); ++i) vals.push_back(g.addValue("i" + std::to_string(i), types[i]));
    ir::Node* n = g.addNode(op, "", "n", vals, {"y"});
    if (attrs) attrs(n->attrs());
    return t->supports(*n, types);
  };
  const ir::TensorType f16m{DataType::kF16, ir::Shape{4, 4}}, f32m{DataType::kF32, ir::Shape{4, 4}};
  for (const Tactic* t : tacticsFor("MatMul")) EXPECT_FALSE(supports(t, "MatMul", {f16m, f16m})) << t->name;
  for (const Tactic* t : tacticsFor("Gemm")) {
    EXPECT_FALSE(supports(t, "Gemm", {f32m, {DataType::kF64, ir::Shape{4, 4}}})) << t->name;
    EXPECT_FALSE(supports(t, "Gemm", {{DataType::kF32, ir::Shape{2, 4, 4}}, f32m})) << t->name;
  }
  const ir::TensorType x1d{DataType::kF32, ir::Shape{1, 4, 9}}, w1d{DataType::kF32, ir::Shape{4, 4, 3}};
  const ir::TensorType x{DataType::kF32, ir::Shape{1, 4, 9, 9}}, w{DataType::kF32, ir::Shape{8, 4, 3, 3}};
  const ir::TensorType wdw{DataType::kF32, ir::Shape{4, 1, 3, 3}};
  for (const Tactic* t : tacticsFor("Conv")) {
    EXPECT_FALSE(supports(t, "Conv", {x1d, w1d})) << t->name << " took a 1-D Conv";
    EXPECT_FALSE(supports(t, "Conv", {{DataType::kF16, x.shape}, {DataType::kF16, w.shape}})) << t->name;
    const bool dw = supports(t, "Conv", {x, wdw}, [](ir::Attributes& a) { a.set("group", int64_t(4)); });
    const bool dense = supports(t, "Conv", {x, w});
    EXPECT_TRUE(dw || !cpu::cpuHas(t->isa)) << t->name << " declined a depthwise Conv";
    if (t->name.find("dwconv") != std::string::npos) {
      EXPECT_FALSE(dense) << t->name << " took a dense Conv";
    }
  }
}

// Every element is computed by one task in a fixed order: bitwise equal for any thread count.
TEST(TacticThreads, BitwiseDeterministic) {
  const std::vector<std::string> names = {"MatMul_85x193x65", "MatMul_batch_many_small", "Gemm_33x257x20_C_N",
                                          "Conv_wide_K", "Conv_groups3", "Conv_dw_3x3_stride2"};
  for (const std::string& name : names) {
    const auto it = std::find_if(allCases().begin(), allCases().end(), [&](const OpCase& c) { return c.name == name; });
    ASSERT_NE(it, allCases().end()) << name;
    const Built b = build(*it, 5);
    for (const Tactic* t : tacticsFor(it->op)) {
      if (!cpu::cpuHas(t->isa) || !t->supports(*b.node, b.types())) continue;
      std::vector<Tensor> outs;
      for (int threads : {1, 2, 3, 5}) {
        cpu::tactics::setNumThreads(threads);
        KernelContext ctx = makeContext(b);
        t->run(ctx);
        outs.push_back(ctx.outputs()[0]);
      }
      cpu::tactics::setNumThreads(0);
      for (size_t i = 1; i < outs.size(); ++i) EXPECT_TRUE(outs[i].sameAs(outs[0])) << t->name << " on " << name;
    }
  }
}

TEST(TacticThreads, ParallelForRunsEveryTaskOnceAndNests) {
  cpu::tactics::setNumThreads(4);
  std::vector<int> hits(1000, 0);
  cpu::tactics::parallelFor(10, [&](int64_t i) {
    cpu::tactics::parallelFor(100, [&](int64_t j) { hits[size_t(i * 100 + j)]++; });  // nested: serial
  });
  cpu::tactics::setNumThreads(0);
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), 1000);
}

// ---------------------------------------------------------------------------------------
// Timing: median of 10 runs per tactic (and the reference, or the naive loop without one).

// Median wall time, and median CPU time of the calling thread (what a single-threaded run
// costs even when the shared machine preempts it).
struct Timing {
  double wallMs, cpuMs;
};

Timing medianMs(const std::function<void()>& f, int reps = 10) {
  auto cpuNow = [] {
    timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec * 1e3 + t.tv_nsec * 1e-6;
  };
  f();  // warm up: page in, grow scratch
  std::vector<double> wall, cpu;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = cpuNow();
    f();
    cpu.push_back(cpuNow() - c0);
    wall.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

void benchCase(const OpCase& c, double flops) {
  const Built b = build(c);
  std::printf("%s (%.3f GFLOP)\n", c.name.c_str(), flops * 1e-9);
  for (int threads : {1, 0}) {
    cpu::tactics::setNumThreads(threads);
    std::printf("  threads=%d%s\n", cpu::tactics::numThreads(),
                threads == 1 ? "  (wall median | this thread's CPU-time median)" : "  (wall median)");
    auto report = [&](const std::string& name, const std::function<void()>& f) {
      const Timing t = medianMs(f);
      if (threads == 1)
        std::printf("    %-34s %9.3f ms %8.2f GFLOP/s | %9.3f ms %8.2f GFLOP/s\n", name.c_str(), t.wallMs,
                    flops / (t.wallMs * 1e6), t.cpuMs, flops / (t.cpuMs * 1e6));
      else
        std::printf("    %-34s %9.3f ms %8.2f GFLOP/s\n", name.c_str(), t.wallMs, flops / (t.wallMs * 1e6));
    };
    if (haveReference(c.op)) {
      report("ref", [&] {
        KernelContext ctx = makeContext(b);
        (*cpu::KernelRegistry::instance().find(c.op))(ctx);
      });
    } else if (threads == 1) {
      report("naive (no ref kernel yet)", [&] { oracle(b); });
    }
    for (const Tactic* t : tacticsFor(c.op)) {
      if (!cpu::cpuHas(t->isa) || !t->supports(*b.node, b.types())) continue;
      report(t->name, [&] {
        KernelContext ctx = makeContext(b);
        t->run(ctx);
      });
    }
  }
  cpu::tactics::setNumThreads(0);
}

TEST(TacticBench, DISABLED_Timing) {
  benchCase({"MatMul_256x512x512", "MatMul", {Dims{256, 512}, Dims{512, 512}}}, 2.0 * 256 * 512 * 512);
  const OpCase conv{"Conv_resnet_64x56x56_3x3", "Conv", {Dims{1, 64, 56, 56}, Dims{64, 64, 3, 3}, Dims{64}},
                    [](ir::Attributes& a) { a.set("pads", Dims{1, 1, 1, 1}); }};
  benchCase(conv, 2.0 * 64 * 56 * 56 * 64 * 9);
  const OpCase dw{"Conv_dw_mobilenet_1x144x56x56_3x3", "Conv", {Dims{1, 144, 56, 56}, Dims{144, 1, 3, 3}, Dims{144}},
                  [](ir::Attributes& a) {
                    a.set("pads", Dims{1, 1, 1, 1});
                    a.set("group", int64_t(144));
                  }};
  benchCase(dw, 2.0 * 144 * 56 * 56 * 9);
}

}  // namespace
