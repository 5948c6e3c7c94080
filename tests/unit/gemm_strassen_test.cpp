// One level of Strassen over the GEMM engine (cpu/tactics/gemm_strassen.h) against a
// double-precision product: every extent odd and even (the padded second halves), M = 1..4
// (the small-M path under each product), K below, at and past the K blocks; 1 and 2 threads
// bitwise equal; the caller's epilogue seen exactly once per element, after its last
// contribution; the error within a normwise bound and measured against the plain
// gemmPackedB's on the same data. The AVX-512 families run where the CPU has them.
// The f32_gemm_strassen_* kernels (MatMul, Gemm and their fused forms) through the kernel
// contract against the reference kernel, with every epilogue, Gemm's C, alpha and beta,
// batched A, odd extents, fewer rows at run time than prepared for; their declines (a
// computed B, transA, shapes under the limits).
// GemmStrassenBench.DISABLED_VsPlain times it against gemmPackedB on the zoo's transformer
// shapes (ANVIL_BENCH_MNK=m,n,k;... ANVIL_BENCH_THREADS, ANVIL_BENCH_ISA=avx2|avx512|8x32).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "cpu/tactics/gemm_strassen.h"
#include "native_kernel_test_util.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeLinearKernels(Kernels& k);  // cpu/tactics/native_linear.cpp
}  // namespace anvil::runtime

using namespace anvil;
using namespace anvil::cpu::tactics;

namespace {

struct Family {
  GemmIsa isa;
  const char* name;
  const char* need;
};
const Family kFamilies[] = {{GemmIsa::kAvx2_6x16, "avx2", "avx2"},
                            {GemmIsa::kAvx512_14x32, "avx512", "avx512f"},
                            {GemmIsa::kAvx512_8x32, "8x32", "avx512f"}};

float* align64(std::vector<float>& v) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

struct StrassenRun {
  std::vector<float> c;     // M x N (ldc = N + 3)
  std::vector<int> visits;  // finish calls per element
  bool finishSawFinal = true;
};

// C = alpha A B by gemmStrassen (B packed from row-major or transposed storage), the finish
// adding 0.5 to every element it is handed.
StrassenRun runStrassen(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, const std::vector<float>& a,
                const std::vector<float>& b, bool transB, int threads) {
  std::vector<float> bpv(size_t(strassenPackedBFloats(c, K, N)) + 16);
  float* bp = align64(bpv);
  const StridedMatrix B = transB ? StridedMatrix{b.data(), 1, K} : StridedMatrix{b.data(), N, 1};
  strassenPackB(c, K, N, B, bp);
  std::vector<float> shv(size_t(strassenSharedFloats(M, K, N)) + 16, std::nanf(""));
  const int64_t slotFloats = roundUp(strassenSlotFloats(c, K), 16);
  std::vector<float> slv(size_t(threads * slotFloats) + 16);
  const TaskSlots slots{align64(slv), slotFloats, threads};
  const int64_t ldc = N + 3;
  StrassenRun r;
  r.c.assign(size_t(std::max<int64_t>(1, M * ldc)), std::nanf(""));
  r.visits.assign(size_t(std::max<int64_t>(1, M * N)), 0);
  auto fin = [&](int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* cp, int64_t ld) {
    EXPECT_EQ(cp, r.c.data() + i0 * ldc + j0);
    EXPECT_EQ(ld, ldc);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < cols; ++j) {
        ++r.visits[size_t((i0 + i) * N + j0 + j)];
        cp[i * ld + j] += 0.5f;
      }
  };
  const BlockEpilogue finRef(fin);
  auto ex = runtime::makeCpuExecutor(threads);
  gemmStrassen(c, M, N, K, alpha, {a.data(), K, 1}, bp, r.c.data(), ldc, align64(shv), threads > 1 ? ex.get() : nullptr,
               slots, &finRef);
  return r;
}

TEST(GemmStrassen, MatchesDoubleProductOnEveryExtentParity) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  int ran = 0;
  for (const Family& f : kFamilies) {
    if (!runtime::hostHas(f.need)) {
      std::printf("skipped %s: this CPU lacks %s\n", f.name, f.need);
      continue;
    }
    const GemmConfig& c = gemmConfig(f.isa);
    for (int64_t M : {1, 2, 3, 4, 7, 16, 33, 64})
      for (int64_t K : {1, 2, 9, 64, 257, 513})
        for (int64_t N : {1, 2, 17, 64, 97}) {
          const bool transB = (M + K + N) % 2 == 1;
          const float alpha = N == 17 ? -0.75f : 1.0f;
          std::vector<float> a(size_t(M * K)), b(size_t(K * N));
          for (float& v : a) v = u(rng);
          for (float& v : b) v = u(rng);
          const StrassenRun r1 = runStrassen(c, M, N, K, alpha, a, b, transB, 1);
          const StrassenRun r2 = runStrassen(c, M, N, K, alpha, a, b, transB, 2);
          const std::string where = std::string(f.name) + " M=" + std::to_string(M) + " K=" + std::to_string(K) +
                                    " N=" + std::to_string(N);
          ASSERT_EQ(std::memcmp(r1.c.data(), r2.c.data(), r1.c.size() * sizeof(float)), 0)
              << where << ": 1 and 2 threads differ bitwise";
          // The plain product of the same data, for its error.
          std::vector<float> bpv(size_t(packedBFloats(c, K, N)) + 16), slv(size_t(gemmPackedBSlotFloats(c, K)) + 16);
          std::vector<float> plain(size_t(M * N));
          packBPanels(c, K, N, transB ? StridedMatrix{b.data(), 1, K} : StridedMatrix{b.data(), N, 1}, 0,
                      ceilDiv(N, c.nr), align64(bpv));
          gemmPackedB(c, M, N, K, alpha, {a.data(), K, 1}, align64(bpv), plain.data(), N, nullptr,
                      {align64(slv), gemmPackedBSlotFloats(c, K), 1}, nullptr);
          double worst = 0, worstPlain = 0;
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < N; ++j) {
              double exact = 0;
              for (int64_t k = 0; k < K; ++k)
                exact += double(a[size_t(i * K + k)]) *
                         double(transB ? b[size_t(j * K + k)] : b[size_t(k * N + j)]);
              exact *= alpha;
              const double got = double(r1.c[size_t(i * (N + 3) + j)]) - 0.5;
              ASSERT_EQ(r1.visits[size_t(i * N + j)], 1) << where << " element " << i << "," << j;
              worst = std::max(worst, std::fabs(got - exact));
              worstPlain = std::max(worstPlain, std::fabs(double(plain[size_t(i * N + j)]) - exact));
            }
          // Normwise: |A|, |B| <= 1, so |dC| <= c K u with a small c for one level (the
          // sums double the operands' magnitudes: 4x the plain bound, plus the adds).
          const double bound = 8.0 * double(K + 4) * 0x1p-24;
          EXPECT_LE(worst, bound) << where << " (plain product's error " << worstPlain << ")";
          // Pad columns of C (ldc > N) untouched.
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = N; j < N + 3; ++j) ASSERT_TRUE(std::isnan(r1.c[size_t(i * (N + 3) + j)])) << where;
          ++ran;
        }
  }
  EXPECT_GT(ran, 0);
}

// The error on larger products stays within a few times the plain product's.
TEST(GemmStrassen, ErrorWithinAFewTimesThePlainProducts) {
  const Family& f = kFamilies[runtime::hostHas("avx512f") ? 1 : 0];
  if (!runtime::hostHas(f.need)) GTEST_SKIP() << "skipped: this CPU lacks " << f.need;
  const GemmConfig& c = gemmConfig(f.isa);
  std::mt19937 rng(11);
  std::normal_distribution<float> g(0.0f, 1.0f);
  const int64_t M = 128, K = 768, N = 384;
  std::vector<float> a(size_t(M * K)), b(size_t(K * N));
  for (float& v : a) v = g(rng);
  for (float& v : b) v = g(rng) * 0.05f;
  const StrassenRun r = runStrassen(c, M, N, K, 1.0f, a, b, false, 2);
  std::vector<float> bpv(size_t(packedBFloats(c, K, N)) + 16), slv(size_t(gemmPackedBSlotFloats(c, K)) + 16);
  std::vector<float> plain(size_t(M * N));
  packBPanels(c, K, N, {b.data(), N, 1}, 0, ceilDiv(N, c.nr), align64(bpv));
  gemmPackedB(c, M, N, K, 1.0f, {a.data(), K, 1}, align64(bpv), plain.data(), N, nullptr,
              {align64(slv), gemmPackedBSlotFloats(c, K), 1}, nullptr);
  double e2 = 0, p2 = 0, x2 = 0;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double exact = 0;
      for (int64_t k = 0; k < K; ++k) exact += double(a[size_t(i * K + k)]) * double(b[size_t(k * N + j)]);
      const double s = double(r.c[size_t(i * (N + 3) + j)]) - 0.5;
      e2 += (s - exact) * (s - exact);
      p2 += (double(plain[size_t(i * N + j)]) - exact) * (double(plain[size_t(i * N + j)]) - exact);
      x2 += exact * exact;
    }
  const double rel = std::sqrt(e2 / x2), relPlain = std::sqrt(p2 / x2);
  std::printf("relative rms error: strassen %.3g, plain %.3g (%.2fx)\n", rel, relPlain, rel / relPlain);
  EXPECT_LT(rel, 6.0 * relPlain + 1e-9);
  EXPECT_LT(rel, 1e-6);
}

// ---------------------------------------------------------------------------------------
// The kernels

using namespace anvil::testing::nk;
using Dims = std::vector<int64_t>;

runtime::Kernels& registry() { return registryOf<&runtime::registerNativeLinearKernels>(); }

std::vector<const runtime::Kernel*> strassenKernels() {
  std::vector<const runtime::Kernel*> out;
  for (const runtime::Kernel* k : registry().all())
    if (k->name.rfind("f32_gemm_strassen", 0) == 0) out.push_back(k);
  return out;
}

void setAct(ir::Attributes& at, const char* act, std::vector<float> params, int residual) {
  if (*act) at.set("activation", std::string(act));
  if (!params.empty()) at.set("activation_params", params);
  if (residual) {
    at.set("has_residual", int64_t(1));
    at.set("residual_order", std::string(residual == 1 ? "add_then_activate" : "activate_then_add"));
  }
}

std::vector<Case> strassenCases() {
  std::vector<Case> c;
  c.push_back({"MatMul_64x256x256", "MatMul", "", {Dims{64, 256}, Dims{256, 256}}, {false, true}, {}});
  c.push_back({"MatMul_65x301x257", "MatMul", "", {Dims{65, 301}, Dims{301, 257}}, {false, true}, {}});
  c.push_back({"MatMul_batch_2x17x300x260", "MatMul", "", {Dims{2, 17, 300}, Dims{300, 260}}, {false, true}, {}});
  struct A {
    const char* name;
    const char* act;
    std::vector<float> params;
    int residual;
  };
  const A acts[] = {{"none", "", {}, 0},          {"relu", "Relu", {}, 0},        {"clip", "Clip", {-0.5f, 0.75f}, 0},
                    {"gelu", "Gelu", {}, 0},      {"silu", "Silu", {}, 0},        {"tanh", "Tanh", {}, 0},
                    {"res_add_relu", "Relu", {}, 1}, {"res_gelu_add", "Gelu", {}, 2}, {"res_only", "", {}, 1}};
  for (const A& a : acts) {
    ir::Attributes at;
    setAct(at, a.act, a.params, a.residual);
    std::vector<std::optional<Dims>> in = {Dims{63, 300}, Dims{300, 257}, Dims{257}};
    std::vector<bool> k = {false, true, true};
    if (a.residual) in.push_back(Dims{63, 257}), k.push_back(false);
    c.push_back({std::string("FusedMatMul_63x300x257_biasN_") + a.name, "FusedMatMul", "anvil", in, k, at});
    ir::Attributes g = at;
    g.set("transB", int64_t(1));
    g.set("alpha", 0.5f);
    std::vector<std::optional<Dims>> gin = {Dims{40, 257}, Dims{260, 257}, Dims{260}};
    if (a.residual) gin.push_back(Dims{40, 260});
    c.push_back({std::string("FusedGemm_40x257x260_tB_CN_") + a.name, "FusedGemm", "anvil", gin, k, g});
  }
  for (int tB = 0; tB < 2; ++tB) {
    const std::string t = tB ? "_tB" : "";
    ir::Attributes g;
    if (tB) g.set("transB", int64_t(1));
    const Dims b = tB ? Dims{258, 256} : Dims{256, 258};
    c.push_back({"Gemm_33x256x258" + t + "_noC", "Gemm", "", {Dims{33, 256}, b}, {false, true}, g});
    ir::Attributes g2 = g;
    g2.set("alpha", -1.5f);
    g2.set("beta", 2.0f);
    c.push_back({"Gemm_33x256x258" + t + "_C_MN", "Gemm", "", {Dims{33, 256}, b, Dims{33, 258}}, {false, true, true},
                 g2});
    c.push_back({"Gemm_33x256x258" + t + "_C_N", "Gemm", "", {Dims{33, 256}, b, Dims{258}}, {false, true, true}, g});
  }
  return c;
}

TEST(GemmStrassenKernels, RegisteredForEveryVectorFamily) {
  int n = 0;
  for (const runtime::Kernel* k : strassenKernels()) {
    EXPECT_TRUE(k->strassen) << k->name;
    EXPECT_FALSE(k->requirements.empty()) << k->name << ": a vector family";
    ++n;
  }
  EXPECT_EQ(n, 3 * 2 * 2);  // (6x16, 14x32, 8x32) x (plain, fused) x (MatMul, Gemm)
  for (const runtime::Kernel* k : registry().all()) {
    if (k->name.rfind("f32_gemm_strassen", 0) != 0) {
      EXPECT_FALSE(k->strassen) << k->name;
    }
  }
}

TEST(GemmStrassenKernels, MatchReferenceAcrossThreads) {
  int ran = 0;
  const std::vector<Case> cases = strassenCases();
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    const Case& c = cases[ci];
    const Built b = build(c, uint32_t(ci) * 7919u + 3);
    const ir::Tensor want = reference(b);
    int served = 0;
    for (const runtime::Kernel* k : strassenKernels()) {
      if (k->op != c.op || k->domain != c.domain || !runtime::hostHasAll(k->requirements)) continue;
      ASSERT_TRUE(k->supports(*b.node, b.types())) << k->name << " on " << c.name;
      const PreparedKernel pk = prepare(*k, b, 2);
      EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << k->name;
      std::vector<std::vector<float>> outs;
      for (int threads : {1, 2}) {
        auto ex = runtime::makeCpuExecutor(threads);
        const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
        EXPECT_TRUE(r.guardsIntact) << k->name << " on " << c.name;
        EXPECT_TRUE(r.workspaceIntact) << k->name << " on " << c.name;
        EXPECT_EQ(compare(r.out, want), "") << k->name << " on " << c.name << " threads=" << threads;
        outs.push_back(r.out);
      }
      EXPECT_EQ(std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4), 0)
          << k->name << " on " << c.name << ": 1 and 2 threads differ bitwise";
      ++served, ++ran;
    }
    if (runtime::hostHas("avx2")) {
      EXPECT_GT(served, 0) << c.name;
    }
  }
  if (!runtime::hostHas("avx2")) GTEST_SKIP() << "skipped: this CPU lacks avx2";
  EXPECT_GT(ran, 0);
}

// Prepared at 64 rows (the profile's opt and max), run at fewer: the half-size rows and the
// quadrants follow the run's M (1 row: no second half; odd counts: a padded one).
TEST(GemmStrassenKernels, RunsRowCountsUnderTheProfiles) {
  if (!runtime::hostHas("avx2")) GTEST_SKIP() << "skipped: this CPU lacks avx2";
  ir::Attributes at;
  setAct(at, "Relu", {}, 0);
  auto mk = [&](int64_t m) {
    return Case{"rows" + std::to_string(m), "FusedMatMul", "anvil", {Dims{m, 300}, Dims{300, 257}, Dims{257}},
                {false, true, true}, at};
  };
  const Built prepared = build(mk(64), 17);
  int ran = 0;
  for (const runtime::Kernel* k : strassenKernels()) {
    if (k->op != "FusedMatMul" || !runtime::hostHasAll(k->requirements)) continue;
    const PreparedKernel pk = prepare(*k, prepared, 2);
    for (int64_t m : {1, 2, 5, 33, 64}) {
      Built b = build(mk(m), 23);
      b.tensors[1] = prepared.tensors[1];  // the prepared weight and bias
      b.tensors[2] = prepared.tensors[2];
      const ir::Tensor want = reference(b);
      for (int threads : {1, 2}) {
        auto ex = runtime::makeCpuExecutor(threads);
        const RunResult r = runKernel(*k, pk, b, want.dims(), *ex);
        EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << k->name << " M=" << m;
        EXPECT_EQ(compare(r.out, want), "") << k->name << " M=" << m << " threads=" << threads;
      }
      ++ran;
    }
  }
  EXPECT_GT(ran, 0);
}

TEST(GemmStrassenKernels, DeclinesWhatItCannotServe) {
  const runtime::Kernel* mm = nullptr;
  const runtime::Kernel* gm = nullptr;
  for (const runtime::Kernel* k : strassenKernels())
    if (k->name == "f32_gemm_strassen_6x16__avx2") (k->op == "MatMul" ? mm : gm) = k;
  ASSERT_NE(mm, nullptr);
  ASSERT_NE(gm, nullptr);
  // Shapes under the limits: K < 256 or N < 256.
  for (const Case& c : {Case{"k255", "MatMul", "", {Dims{64, 255}, Dims{255, 256}}, {false, true}, {}},
                        Case{"n255", "MatMul", "", {Dims{64, 256}, Dims{256, 255}}, {false, true}, {}}}) {
    const Built b = build(c, 5);
    EXPECT_FALSE(mm->supports(*b.node, b.types())) << c.name;
  }
  ir::Attributes ta;
  ta.set("transA", int64_t(1));
  const Built t = build(Case{"tA", "Gemm", "", {Dims{256, 64}, Dims{256, 256}}, {false, true}, ta}, 5);
  EXPECT_FALSE(gm->supports(*t.node, t.types()));
  // A computed B, or too few rows: prepare refuses (the builder then drops the candidate).
  if (!runtime::hostHas("avx2")) GTEST_SKIP() << "skipped: this CPU lacks avx2";
  const Built v = build(Case{"varB", "MatMul", "", {Dims{64, 256}, Dims{256, 256}}, {false, false}, {}}, 5);
  ASSERT_TRUE(mm->supports(*v.node, v.types()));
  EXPECT_THROW(prepare(*mm, v, 1), Error);
  const Built few = build(Case{"rows31", "MatMul", "", {Dims{31, 256}, Dims{256, 256}}, {false, true}, {}}, 5);
  EXPECT_THROW(prepare(*mm, few, 1), Error);
}

TEST(GemmStrassenBench, DISABLED_VsPlain) {
  const std::vector<BenchShape> shapes =
      benchShapes({{128, 3072, 768}, {128, 768, 3072}, {128, 2304, 768}, {128, 768, 768}, {197, 768, 192},
                   {197, 192, 768}, {197, 576, 192}, {196, 1536, 384}, {196, 384, 1536}, {512, 512, 512}});
  const int threads = std::getenv("ANVIL_BENCH_THREADS") ? std::max(1, std::atoi(std::getenv("ANVIL_BENCH_THREADS"))) : 1;
  const char* only = std::getenv("ANVIL_BENCH_ISA");
  auto ex = runtime::makeCpuExecutor(threads);
  for (const BenchShape s : shapes)
    for (const Family& f : kFamilies) {
      if (!runtime::hostHas(f.need) || (only && std::strcmp(only, f.name) != 0)) continue;
      const GemmConfig& c = gemmConfig(f.isa);
      const int64_t M = s.m, N = s.n, K = s.k;
      std::vector<float> a(size_t(M * K) + 16, 0.5f), b(size_t(K * N), 0.25f), cm(size_t(M * N) + 16);
      std::vector<float> bpv(size_t(packedBFloats(c, K, N)) + 16), spv(size_t(strassenPackedBFloats(c, K, N)) + 16);
      packBPanels(c, K, N, {b.data(), N, 1}, 0, ceilDiv(N, c.nr), align64(bpv));
      strassenPackB(c, K, N, {b.data(), N, 1}, align64(spv));
      const int64_t slotFloats = roundUp(gemmPackedBSlotFloats(c, K), 16);
      std::vector<float> slv(size_t(threads * slotFloats) + 16), shv(size_t(strassenSharedFloats(M, K, N)) + 16);
      const TaskSlots slots{align64(slv), slotFloats, threads};
      auto best = [&](auto&& fn) {
        double ms = 1e30;
        for (int r = 0; r < 7; ++r) {
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < 10; ++i) fn();
          ms = std::min(ms, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / 10);
        }
        return ms;
      };
      double plain = 0, fast = 0;
      for (int round = 0; round < 3; ++round) {  // alternated
        const double p = best([&] {
          gemmPackedB(c, M, N, K, 1.0f, {a.data(), K, 1}, align64(bpv), cm.data(), N, ex.get(), slots, nullptr);
        });
        const double q = best([&] {
          gemmStrassen(c, M, N, K, 1.0f, {a.data(), K, 1}, align64(spv), cm.data(), N, align64(shv), ex.get(), slots,
                       nullptr);
        });
        plain = round ? std::min(plain, p) : p;
        fast = round ? std::min(fast, q) : q;
      }
      std::printf("%-6s M=%-4ld N=%-5ld K=%-5ld t=%d  plain %7.3f ms  strassen %7.3f ms  %.3fx\n", f.name, M, N, K,
                  threads, plain, fast, fast / plain);
      std::fflush(stdout);
    }
}

}  // namespace
