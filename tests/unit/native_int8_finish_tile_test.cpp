// The fused INT8 Conv tile with the finish (i8FinishTile, cpu/tactics/int8_gemm.h) against
// its definition: the plain tile into an f32 scratch, then finishTile's AVX-512 rows, bit for
// bit in the u8 outputs. Direct, on random operands, so that every step the fused tile does
// shows: a Clip whose bounds lie inside the output's range (where calibrated models put the
// range at the clipped values, the quantizer's saturation hides the upper bound), a residual
// added before or after the activation, output zero points 0 and not, tails of the column
// vectors, and the bias added as the tile's without an epilogue.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "cpu/tactics/int8_gemm.h"

namespace anvil::cpu::tactics {
namespace {

struct Operands {
  int64_t KG = 0, gStride = 0;
  std::vector<uint32_t> bc, vec;
  std::vector<int32_t> zc;
  std::vector<float> sc, bias;
  std::vector<uint8_t> zq;
};

Operands randomOperands(int64_t KG, int nvec, std::mt19937& rng) {
  Operands o;
  o.KG = KG;
  o.gStride = int64_t(nvec) * 16;
  std::uniform_int_distribution<uint32_t> word;
  o.bc.resize(size_t(KG * 8));
  o.vec.resize(size_t(KG * o.gStride));
  for (uint32_t& w : o.bc) w = word(rng);
  for (uint32_t& w : o.vec) w = word(rng);
  std::uniform_int_distribution<int32_t> z(-20000, 20000);
  std::uniform_real_distribution<float> s(0.5e-5f, 2e-5f), b(-0.5f, 0.5f);
  for (int r = 0; r < 8; ++r) {
    o.zc.push_back(z(rng));
    o.sc.push_back(s(rng));
    o.bias.push_back(b(rng));
  }
  o.zq.resize(size_t(8 * o.gStride));
  for (uint8_t& q : o.zq) q = uint8_t(word(rng));
  return o;
}

TEST(NativeInt8FinishTile, FusedTileIsTheTileThenFinishTile) {
  RowFinish probe;
  probe.noNaN = true;
  if (!i8FinishTile(I8Isa::kAvx512Vnni, probe, false, false, 8, 3)) GTEST_SKIP() << "skipped: no AVX-512 VNNI";
  std::mt19937 rng(4242);
  int cases = 0, clipped = 0;
  for (int64_t KG : {1, 16, 37})
    for (int nvec = 1; nvec <= 3; ++nvec)
      for (int cols : {nvec * 16, nvec * 16 - 5})
        for (bool epilogue : {true, false})
          for (int act = 0; act <= 2; ++act)
            for (int zmode = 0; zmode < 3; ++zmode) {  // 0 no residual, 1 added first, 2 after the activation
              if (cols <= (nvec - 1) * 16) continue;
              if (!epilogue && (act != 0 || zmode != 0)) continue;
              const Operands o = randomOperands(KG, nvec, rng);
              // The reference tile's f32 values fix the output grid: the range's middle 80%
              // and a Clip inside it, so each bound and the saturation are exercised.
              std::vector<float> y(size_t(8 * o.gStride));
              i8Tile(I8Isa::kAvx512Vnni, true, 8, nvec)(KG, o.bc.data(), o.vec.data(), o.gStride, nullptr,
                                                         o.zc.data(), o.sc.data(), epilogue ? nullptr : o.bias.data(),
                                                         y.data(), o.gStride, cols);
              float lo = INFINITY, hi = -INFINITY;
              for (int r = 0; r < 8; ++r)
                for (int j = 0; j < cols; ++j) lo = std::min(lo, y[size_t(r * o.gStride + j)]),
                                               hi = std::max(hi, y[size_t(r * o.gStride + j)]);
              const float span = std::max(hi - lo, 1e-3f);
              RowFinish f;
              f.noNaN = true;
              f.epilogue = epilogue;
              f.act = act;
              f.p0 = act == 1 ? 0.0f : lo + 0.3f * span;
              f.p1 = lo + 0.7f * span;
              f.addFirst = zmode != 2;
              f.zScale = span / 400.0f;
              f.zZero = int32_t(rng() % 256);
              f.yInv = 255.0f / (0.8f * span);
              f.yZero = (cases % 2) ? 0 : int32_t(std::lround(-(lo + 0.1f * span) * f.yInv)) & 0xff;
              const bool z = epilogue && zmode != 0;
              I8FinishTile fused = i8FinishTile(I8Isa::kAvx512Vnni, f, z, false, 8, nvec);
              ASSERT_NE(fused, nullptr);
              const int64_t ldo = o.gStride + 3;
              std::vector<uint8_t> want(size_t(8 * ldo), 0xAB), got(size_t(8 * ldo), 0xAB);
              finishTile(f, y.data(), o.gStride, 8, cols, o.bias.data(), 1, nullptr, nullptr,
                         z ? o.zq.data() : nullptr, o.gStride, want.data(), nullptr, ldo, 2);
              fused(KG, o.bc.data(), o.vec.data(), o.gStride, o.zc.data(), o.sc.data(), f, o.bias.data(),
                    z ? o.zq.data() : nullptr, o.gStride, got.data(), ldo, cols);
              for (int r = 0; r < 8; ++r)
                for (int64_t j = 0; j < ldo; ++j)
                  ASSERT_EQ(int(got[size_t(r * ldo + j)]), int(want[size_t(r * ldo + j)]))
                      << "KG " << KG << " nvec " << nvec << " cols " << cols << " epilogue " << epilogue << " act "
                      << act << " z " << zmode << " row " << r << " col " << j;
              // The Clip's upper bound bites: some value above p1 that the grid still
              // resolves (below the quantizer's saturation), so dropping the bound shows.
              if (act == 2)
                for (float v : y) clipped += v > f.p1 && v * f.yInv + float(f.yZero) < 250.0f;
              ++cases;
            }
  EXPECT_GT(cases, 150);
  EXPECT_GT(clipped, 0);
}

}  // namespace
}  // namespace anvil::cpu::tactics
