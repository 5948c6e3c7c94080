// The GEMM engine's register-tile epilogue for MatMul/Gemm (gemmPackedBFused,
// cpu/tactics/gemm.cpp) against the second pass it replaces (gemmPackedB with epilogueRow
// over each finished block, cpu/tactics/fused_linear.cpp): the same bits for every
// activation, with a column bias, one bias value or none, the residual before or after the
// activation or none, on odd shapes (M from 1 through the small-M kernels to 3137 = a one-row
// tile tail, N off the 16/32-column panels, K inside one block and past it, where the last
// block adds C in the tile kernel), per vector family; the output between sentinels and
// padding columns that must stay untouched; and the values against a double-precision
// evaluation of the same epilogue.
// TileActivation: the in-register Relu and Clip (epi::act8 / act16, also the blocked Conv
// tiles' epilogue) bit for bit against the reference formula on NaN, signed zeros, the
// bounds and infinities.
// GemmTileEpilogue.DISABLED_Timing (run with --gtest_also_run_disabled_tests) times the
// product alone, with the pass and with the tile epilogue, one thread, interleaved, median
// thread CPU time (ANVIL_BENCH_MNK=m,n,k; default convnext_tiny's MLP, 3136 x 384 x 96).
#include <gtest/gtest.h>
#include <time.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/tactics/epilogue_act.h"
#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "ir/ops/anvil_linear.h"
#include "runtime/clock.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace {

using namespace anvil::cpu::tactics;
using anvil::ir::linear::Activation;
using anvil::ir::linear::Epilogue;

// 64-byte aligned floats inside a vector (the packed panels' alignment).
float* aligned(std::vector<float>& v) {
  return reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(v.data()) + 63) & ~uintptr_t(63));
}

constexpr float kSentinel = -12345.5f;
constexpr int64_t kGuard = 64, kPad = 5;  // floats before/after C, padding columns per row

struct Shape {
  int64_t M, N, K;
};

// Activation parameters where it takes them (Clip bounds inside the values' range).
Epilogue epilogueOf(int act, int residual) {
  Epilogue e;
  e.act = Activation(act);
  if (e.act == Activation::kClip) e.p0 = -0.5f, e.p1 = 0.75f;
  if (e.act == Activation::kLeakyRelu) e.p0 = 0.1f;
  if (e.act == Activation::kHardSigmoid) e.p0 = 0.2f, e.p1 = 0.5f;
  e.residual = residual != 0;
  e.addFirst = residual != 2;
  return e;
}

// The values where a max/min form could differ from "x < lo ? lo : x": NaN (either sign),
// zeros of both signs against zero bounds, values at the bounds, infinities. Clip with
// bounds (-0.5, 0.75), (0, 6) (ReLU6) and (-0.0, +0.0).
const float kSpecials[] = {NAN, -NAN, 0.0f, -0.0f, -0.5f, 0.75f, 6.0f, -1e-30f, 1e-30f, 1.5f, -2.0f,
                           INFINITY, -INFINITY, 5.9999995f, 6.0000005f, 0.25f};
constexpr int kNumSpecials = int(sizeof(kSpecials) / sizeof(float));

uint32_t bitsOf(float v) {
  uint32_t u;
  std::memcpy(&u, &v, 4);
  return u;
}

template <int A>
__attribute__((target("avx2,fma"))) void act8Of(const float* x, float p0, float p1, float* y, int n) {
  for (int i = 0; i < n; i += 8)
    _mm256_storeu_ps(y + i, epi::act8<A>(_mm256_loadu_ps(x + i), _mm256_set1_ps(p0), _mm256_set1_ps(p1)));
}
template <int A>
__attribute__((target("avx512f"))) void act16Of(const float* x, float p0, float p1, float* y, int n) {
  for (int i = 0; i < n; i += 16)
    _mm512_storeu_ps(y + i, epi::act16<A>(_mm512_loadu_ps(x + i), _mm512_set1_ps(p0), _mm512_set1_ps(p1)));
}

TEST(TileActivation, ReluAndClipKeepNaNAndSignedZerosAsTheReference) {
  static_assert(kNumSpecials % 16 == 0);
  const bool avx2 = anvil::runtime::hostHasAll({"avx2", "fma"}), avx512 = anvil::runtime::hostHas("avx512f");
  if (!avx2) GTEST_SKIP() << "skipped: no AVX2/FMA";
  const std::pair<float, float> bounds[] = {{-0.5f, 0.75f}, {0.0f, 6.0f}, {-0.0f, 0.0f}};
  int checked = 0;
  for (const auto& [lo, hi] : bounds)
    for (Activation a : {Activation::kRelu, Activation::kClip}) {
      Epilogue e;
      e.act = a;
      e.p0 = lo, e.p1 = hi;
      float got8[kNumSpecials], got16[kNumSpecials];
      if (a == Activation::kRelu) {
        act8Of<epi::kRelu>(kSpecials, lo, hi, got8, kNumSpecials);
        if (avx512) act16Of<epi::kRelu>(kSpecials, lo, hi, got16, kNumSpecials);
      } else {
        act8Of<epi::kClip>(kSpecials, lo, hi, got8, kNumSpecials);
        if (avx512) act16Of<epi::kClip>(kSpecials, lo, hi, got16, kNumSpecials);
      }
      for (int i = 0; i < kNumSpecials; ++i) {
        const float want = anvil::ir::linear::activate<float>(e, kSpecials[i]);
        const std::string what = std::string(anvil::ir::linear::activationName(a)) + "(" +
                                 std::to_string(kSpecials[i]) + ") bounds " + std::to_string(lo) + ", " +
                                 std::to_string(hi);
        EXPECT_EQ(bitsOf(got8[i]), bitsOf(want)) << what << ": 8 lanes gave " << got8[i] << ", want " << want;
        if (avx512) {
          EXPECT_EQ(bitsOf(got16[i]), bitsOf(want)) << what << ": 16 lanes gave " << got16[i];
        }
        ++checked;
      }
    }
  EXPECT_EQ(checked, 6 * kNumSpecials);
}

TEST(GemmTileEpilogue, SameBitsAsThePassForEveryActivation) {
  struct Family {
    GemmIsa isa;
    const char* name;
    std::vector<std::string> needs;
  };
  const Family families[] = {{GemmIsa::kAvx2_6x16, "avx2_6x16", {"avx2", "fma"}},
                             {GemmIsa::kAvx512_14x32, "avx512_14x32", {"avx512f"}},
                             {GemmIsa::kAvx512_8x32, "avx512_8x32", {"avx512f"}}};
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto ex = anvil::runtime::makeCpuExecutor(2);
  int checked = 0, skipped = 0;
  for (const Family& f : families) {
    if (!anvil::runtime::hostHasAll(f.needs)) {
      std::printf("[ skipped ] %s: this CPU lacks %s\n", f.name, anvil::runtime::firstMissing(f.needs).c_str());
      ++skipped;
      continue;
    }
    const GemmConfig& c = gemmConfig(f.isa);
    ASSERT_TRUE(gemmPackedAFusedSupports(c)) << f.name;
    const Shape shapes[] = {{1, 17, 9},  {3, 45, 300},   {7, 100, 9},  {17, 33, c.kc + 1},
                            {63, 45, 300}, {2 * c.mr + 1, 1, 37}, {3137, 45, 9}};
    for (const Shape& s : shapes) {
      const int64_t M = s.M, N = s.N, K = s.K, ldc = N + kPad;
      std::vector<float> a(size_t(M * K)), b(size_t(K * N)), colBias(static_cast<size_t>(N)), z(size_t(M * ldc));
      for (float& v : a) v = dist(rng);
      for (float& v : b) v = dist(rng);
      for (float& v : colBias) v = dist(rng);
      for (float& v : z) v = 2.0f * dist(rng);
      std::vector<float> bp(size_t(packedBFloats(c, K, N)) + 16);
      packBPanels(c, K, N, {b.data(), N, 1}, 0, ceilDiv(N, c.nr), aligned(bp));
      std::vector<float> slot(size_t(2 * gemmPackedBSlotFloats(c, K)) + 16);
      const TaskSlots slots{aligned(slot), gemmPackedBSlotFloats(c, K), 2};
      // The exact products, for the value check.
      std::vector<double> dot(size_t(M * N), 0.0);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < N; ++j)
            dot[size_t(i * N + j)] += double(0.75f * a[size_t(i * K + k)]) * double(b[size_t(k * N + j)]);
      // The big shape with one bias/residual mix per activation; the others with all nine.
      const bool big = M > 1000;
      for (int act = 0; act < TileEpilogue::kActs; ++act)
        for (int biasMode = 0; biasMode < 3; ++biasMode)      // column bias, one value, none
          for (int residual = 0; residual < 3; ++residual) {  // none, add first, add after
            if (big && (biasMode != act % 3 || residual != (act / 3) % 3)) continue;
            const Epilogue e = epilogueOf(act, residual);
            const float* cb = biasMode == 0 ? colBias.data() : nullptr;
            const float rowBias = biasMode == 1 ? 0.375f : 0.0f;
            const float* zp = residual ? z.data() : nullptr;
            const EpilogueRow row = epilogueRow(e);
            auto pass = [&](int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* cp, int64_t ld) {
              for (int64_t r = 0; r < rows; ++r)
                row(e, cp + r * ld, zp ? zp + (i0 + r) * ldc + j0 : nullptr, cb ? cb + j0 : nullptr, rowBias, cols);
            };
            const BlockEpilogue ep(pass);
            std::vector<float> want(size_t(M * ldc + 2 * kGuard), kSentinel), got(want.size(), kSentinel);
            gemmPackedB(c, M, N, K, 0.75f, {a.data(), K, 1}, aligned(bp), want.data() + kGuard, ldc, ex.get(), slots,
                        &ep);
            TileEpilogue te;
            te.act = act;
            te.p0 = e.p0;
            te.p1 = e.p1;
            te.addFirst = e.addFirst;
            te.rowBias = rowBias;
            te.colBias = cb;
            te.z = zp;
            gemmPackedBFused(c, M, N, K, 0.75f, {a.data(), K, 1}, aligned(bp), got.data() + kGuard, ldc, ex.get(),
                             slots, &ep, te);
            const std::string what = std::string(f.name) + " " + std::to_string(M) + "x" + std::to_string(N) + "x" +
                                     std::to_string(K) + " act " + std::to_string(act) + anvil::ir::linear::activationName(e.act) + " bias " + std::to_string(biasMode) +
                                     " residual " + std::to_string(residual);
            for (int64_t i = 0; i < kGuard; ++i) {
              ASSERT_EQ(got[size_t(i)], kSentinel) << what << ": wrote before C";
              ASSERT_EQ(got[got.size() - 1 - size_t(i)], kSentinel) << what << ": wrote after C";
            }
            for (int64_t i = 0; i < M; ++i) {
              const float* g = got.data() + kGuard + i * ldc;
              const float* w = want.data() + kGuard + i * ldc;
              for (int64_t j = N; j < ldc; ++j) ASSERT_EQ(g[j], kSentinel) << what << ": wrote a padding column";
              ASSERT_EQ(std::memcmp(g, w, size_t(N) * 4), 0) << what << ": row " << i << " differs from the pass";
              for (int64_t j = 0; j < N; ++j) {
                double v = dot[size_t(i * N + j)] + rowBias + (cb ? cb[j] : 0.0f);
                const double zv = zp ? double(zp[i * ldc + j]) : 0.0;
                if (residual == 1) v += zv;
                v = anvil::ir::linear::activate<double>(e, v);
                if (residual == 2) v += zv;
                ASSERT_NEAR(double(g[j]), v, 2e-5 * (1.0 + std::fabs(v))) << what << " at (" << i << ", " << j << ")";
              }
            }
            ++checked;
          }
    }
  }
  std::printf("[ note ] %d tile-epilogue products compared with the pass and the double evaluation\n", checked);
  if (skipped == 3) GTEST_SKIP() << "skipped: no AVX2/FMA or AVX-512";
  EXPECT_GT(checked, 100);
}

TEST(GemmTileEpilogue, DISABLED_Timing) {
  int64_t M = 3136, N = 384, K = 96;
  if (const char* v = std::getenv("ANVIL_BENCH_MNK")) std::sscanf(v, "%ld,%ld,%ld", &M, &N, &K);
  for (GemmIsa isa : {GemmIsa::kAvx2_6x16, GemmIsa::kAvx512_14x32}) {
    if (!anvil::runtime::hostHasAll(isa == GemmIsa::kAvx2_6x16 ? std::vector<std::string>{"avx2", "fma"}
                                                               : std::vector<std::string>{"avx512f"}))
      continue;
    const GemmConfig& c = gemmConfig(isa);
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> a(size_t(M * K)), b(size_t(K * N)), bias(static_cast<size_t>(N)), y(size_t(M * N));
    for (float& v : a) v = dist(rng);
    for (float& v : b) v = dist(rng);
    for (float& v : bias) v = dist(rng);
    std::vector<float> bp(size_t(packedBFloats(c, K, N)) + 16);
    packBPanels(c, K, N, {b.data(), N, 1}, 0, ceilDiv(N, c.nr), aligned(bp));
    std::vector<float> slot(size_t(gemmPackedBSlotFloats(c, K)) + 16);
    const TaskSlots slots{aligned(slot), gemmPackedBSlotFloats(c, K), 1};
    for (int act : {int(TileEpilogue::kNone), int(TileEpilogue::kRelu), int(TileEpilogue::kGelu),
                    int(TileEpilogue::kGeluTanh), int(TileEpilogue::kSilu), int(TileEpilogue::kTanh)}) {
      const Epilogue e = epilogueOf(act, 0);
      const EpilogueRow row = epilogueRow(e);
      auto pass = [&](int64_t, int64_t rows, int64_t j0, int64_t cols, float* cp, int64_t ld) {
        for (int64_t r = 0; r < rows; ++r) row(e, cp + r * ld, nullptr, bias.data() + j0, 0.0f, cols);
      };
      const BlockEpilogue ep(pass);
      TileEpilogue te;
      te.act = act;
      te.colBias = bias.data();
      std::vector<double> t[3];
      for (int rep = 0; rep < 15; ++rep)
        for (int v = 0; v < 3; ++v) {
          const double t0 = anvil::runtime::threadCpuMs();
          if (v == 0) gemmPackedB(c, M, N, K, 1.0f, {a.data(), K, 1}, aligned(bp), y.data(), N, nullptr, slots, nullptr);
          if (v == 1) gemmPackedB(c, M, N, K, 1.0f, {a.data(), K, 1}, aligned(bp), y.data(), N, nullptr, slots, &ep);
          if (v == 2)
            gemmPackedBFused(c, M, N, K, 1.0f, {a.data(), K, 1}, aligned(bp), y.data(), N, nullptr, slots, &ep, te);
          t[v].push_back(anvil::runtime::threadCpuMs() - t0);
        }
      for (auto& v : t) std::sort(v.begin(), v.end());
      std::printf("  %s %ldx%ldx%ld %-9s product %.3f  + pass %.3f  tile %.3f ms (median thread CPU)\n",
                  isa == GemmIsa::kAvx2_6x16 ? "avx2  " : "avx512", long(M), long(N), long(K),
                  act ? anvil::ir::linear::activationName(Activation(act)) : "bias", t[0][7], t[1][7], t[2][7]);
    }
  }
}

}  // namespace
