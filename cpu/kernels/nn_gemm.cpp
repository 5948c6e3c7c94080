// The float path of the reference GEMM (nn_util.h, gemmAccumulate) in AVX2 vectors: the
// same operations on every element as the portable loop, so the same bits, several times
// faster (the calibration run of the builder spends most of its time here: resnet50 at
// about 2 s per calibration image in the portable loop).
//
// Each c[m][n] is summed in the portable loop's order: k ascending, c = c + a * b with the
// product and the sum each rounded (no fused multiply-add: the target is "avx2" without
// "fma", and the project builds with -ffp-contract=off). Only the order in which different
// elements advance changes: register tiles of 4 rows x 16 columns keep c in registers over a
// block of k, so each b load serves four rows.
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/kernels/nn_util.h"

namespace anvil::cpu::kernels::nn {

namespace {

// c[r][0..16) += sum over k in [0, K) of a(r, k) * b[k][0..16), R rows, c in registers
// (the r loops unrolled: otherwise GCC keeps the accumulators in memory).
template <int R>
__attribute__((target("avx2"))) void tile16(int64_t K, const float* a, int64_t ars, int64_t acs, const float* b,
                                            int64_t ldb, float* c, int64_t ldc) {
  __m256 acc[R][2];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    acc[r][0] = _mm256_loadu_ps(c + r * ldc);
    acc[r][1] = _mm256_loadu_ps(c + r * ldc + 8);
  }
  for (int64_t k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(b + k * ldb), b1 = _mm256_loadu_ps(b + k * ldb + 8);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m256 s = _mm256_broadcast_ss(a + r * ars + k * acs);
      acc[r][0] = _mm256_add_ps(acc[r][0], _mm256_mul_ps(s, b0));
      acc[r][1] = _mm256_add_ps(acc[r][1], _mm256_mul_ps(s, b1));
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    _mm256_storeu_ps(c + r * ldc, acc[r][0]);
    _mm256_storeu_ps(c + r * ldc + 8, acc[r][1]);
  }
}

__attribute__((target("avx2"))) void gemmAvx2(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars,
                                              int64_t acs, const float* b, int64_t ldb, float* c, int64_t ldc) {
  // A block of b (kKBlock x kNBlock, 256 KiB) copied into 16-column panels, [panel][k][16],
  // stays in L2 while every row tile passes over it (read in place, b's rows lie ldb apart:
  // a Conv's im2col rows 12.5 KB at 56x56, one TLB page per k).
  constexpr int64_t kNBlock = 256, kKBlock = 256;
  std::vector<float> packed(size_t(std::min(kNBlock, N / 16 * 16) * std::min(kKBlock, K)));
  for (int64_t n0 = 0; n0 < N; n0 += kNBlock) {
    const int64_t n1 = std::min(N, n0 + kNBlock), panels = (n1 - n0) / 16, n16 = n0 + panels * 16;
    for (int64_t k0 = 0; k0 < K; k0 += kKBlock) {
      const int64_t kb = std::min(kKBlock, K - k0);
      const float* ak = a + k0 * acs;
      const float* bk = b + k0 * ldb;
      for (int64_t q = 0; q < panels; ++q)
        for (int64_t k = 0; k < kb; ++k)
          std::memcpy(packed.data() + (q * kb + k) * 16, bk + k * ldb + n0 + q * 16, 16 * sizeof(float));
      int64_t m = 0;
      for (; m + 4 <= M; m += 4)
        for (int64_t q = 0; q < panels; ++q)
          tile16<4>(kb, ak + m * ars, ars, acs, packed.data() + q * kb * 16, 16, c + m * ldc + n0 + q * 16, ldc);
      for (; m < M; ++m)
        for (int64_t q = 0; q < panels; ++q)
          tile16<1>(kb, ak + m * ars, ars, acs, packed.data() + q * kb * 16, 16, c + m * ldc + n0 + q * 16, ldc);
      // The last columns (fewer than 16) one element at a time, k ascending.
      for (int64_t mm = 0; mm < M; ++mm)
        for (int64_t n = n16; n < n1; ++n) {
          float s = c[mm * ldc + n];
          for (int64_t k = 0; k < kb; ++k) s += ak[mm * ars + k * acs] * bk[k * ldb + n];
          c[mm * ldc + n] = s;
        }
    }
  }
}

}  // namespace

bool gemmAccumulateF32Avx2(int64_t M, int64_t N, int64_t K, const float* a, int64_t ars, int64_t acs,
                           const float* b, int64_t ldb, float* c, int64_t ldc) {
  static const bool avx2 = __builtin_cpu_supports("avx2");
  if (!avx2) return false;
  gemmAvx2(M, N, K, a, ars, acs, b, ldb, c, ldc);
  return true;
}

}  // namespace anvil::cpu::kernels::nn
