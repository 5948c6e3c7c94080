// Kernels of the blocked layout NCHW<b>c (cpu/tactics/nchwc.h) other than the dense
// convolutions: anvil.Reorder, elementwise ops, GlobalAveragePool, Concat.
// Each comes in two variants, block 8 (AVX2 + FMA) and block 16 (AVX-512), from one body
// (native_nchwc_ops_body.inc) compiled once per ISA: a block is one vector, so every op
// works on whole blocks; padding lanes are written as zeros after the op.
//   x32_reorder_nchw<b>c        plain <-> blocked ([b x HW] <-> [HW x b] register tiles)
//   f32_binary_nchw<b>c         Add / Sub / Mul / Div: operands blocked of the output's
//                               extents, blocked [N|1, C, 1, 1] (the squeeze-and-excitation
//                               scale) or a constant of one element or per channel
//   f32_unary_nchw<b>c          Relu, Sigmoid, Tanh, HardSigmoid, HardSwish, Clip
//   f32_global_{avg,max}pool_nchw<b>c   [N, C, H, W] -> [N, C, 1, 1]
//   x32_concat_nchw<b>c         axis 1, every input but the last a whole number of blocks
// Measured (one thread, this shared 2-core AVX-512 VM, NativeNchwcOps.ReorderTiming, bytes
// read + written): Reorder [1,96,56,56] to blocked 53-64 us (38-45 GB/s), to plain 54-59 us
// (41-45 GB/s), a memcpy of the same bytes 44-48 us (50-55 GB/s); [1,1280,7,7] (in L2) to
// blocked 8.7-12.5 us (40-57 GB/s), to plain 12.5-13.6 us (37-40 GB/s), memcpy 4.5-5.2 us.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cpu/tactics/native_ops_util.h"
#include "cpu/tactics/nchwc.h"
#include "cpu/tactics/vmath.h"
#include "runtime/kernel.h"

// GCC 12 warns that the unspecified merge source (_mm512_undefined_ps) inside some AVX-512
// intrinsics may be used uninitialized (the intrinsics fill every lane).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

namespace anvil::runtime {

namespace {

namespace nchwc = cpu::nchwc;

// Columns (positions of the plane) a Reorder unit moves: 64 tiles, 1024 positions of 16
// channels (64 KB) at b = 16.
constexpr int64_t kStripTiles = 64;
// Positions an elementwise unit covers.
constexpr int64_t kStripLen = 1024;

struct ReorderParams {
  int32_t toBlocked = 0;
};

enum EltOp : int32_t { kAdd, kSub, kMul, kDiv, kRelu, kSigmoid, kTanh, kHardSigmoid, kHardSwish, kClip };
enum Form : int32_t { kFull, kChannel, kConst };

struct EltParams {
  int32_t op = kAdd;
  int32_t form[2] = {kFull, kFull};
  int32_t blob[2] = {-1, -1};  // kConst: the blob of its [ceil(C/b) * b] padded values
  float alpha = 0, beta = 0;   // HardSigmoid
};

struct PoolParams {
  int32_t max = 0;
};

// GlobalAveragePool sums each lane in double (two positions a step, four chains), not in
// four f32 chains: the f32 form was faster (NativeNchwcOps.DISABLED_GapTiming, one thread,
// [1,1280,7,7]: 2.9 against 4.0-4.3 us at b = 16, 2.0-2.3 against 4.5 us at b = 8; the
// plain f32_global_avgpool takes 16 us, f32_global_avgpool_f64x32__avx512 8.5-9 us) but
// misses the mean by up to ~1e-6 relative where the plain kernels, and this one, stay within
// 1.2e-7 of the exact mean (native_pool_dw_test's bound). [1,576,14,14]: 7.0-7.4 us (f32
// chains 3.5-5.0, plain 27-29, f64x32 10); [1,64,56,56]: 11-12.8 us (f32 chains 5.3-8.6,
// plain 55-60, f64x32 12).
constexpr bool kF64Sum = true;

}  // namespace

// ---- AVX2 + FMA, b = 8 ---------------------------------------------------------------------

#pragma GCC push_options
#pragma GCC target("avx2,fma")

namespace nchwc_avx2 {
namespace {
namespace nchwc = cpu::nchwc;
namespace nops = runtime::nops;

struct V {
  using T = __m256;
  static constexpr int B = 8;
  static T load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, T v) { _mm256_storeu_ps(p, v); }
  static __m256i lanes(int n) { return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)); }
  static T loadN(const float* p, int n) { return _mm256_maskload_ps(p, lanes(n)); }
  static void storeN(float* p, T v, int n) { _mm256_maskstore_ps(p, lanes(n), v); }
  static T zero() { return _mm256_setzero_ps(); }
  static T set1(float f) { return _mm256_set1_ps(f); }
  static T add(T a, T b) { return _mm256_add_ps(a, b); }
  static T sub(T a, T b) { return _mm256_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm256_mul_ps(a, b); }
  static T div(T a, T b) { return _mm256_div_ps(a, b); }
  static T min(T a, T b) { return _mm256_min_ps(a, b); }
  static T max(T a, T b) { return _mm256_max_ps(a, b); }
  static T andv(T a, T b) { return _mm256_and_ps(a, b); }
  static T orv(T a, T b) { return _mm256_or_ps(a, b); }
  static T keep(int n) { return _mm256_castsi256_ps(lanes(n)); }
  static T nanMask(T v) { return _mm256_cmp_ps(v, v, _CMP_UNORD_Q); }
  static T blendNaN(T v, T nan) { return _mm256_blendv_ps(v, _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()), nan); }
  static T sigmoid(T v) { return cpu::vmath::keepNaN(cpu::vmath::sigmoid8(v), v); }
  static T tanh(T v) { return cpu::vmath::keepNaN(cpu::vmath::tanh8(v), v); }

  static void transpose(T (&v)[8]) {
    T a[8], b[8];
    for (int i = 0; i < 8; i += 2) {
      a[i] = _mm256_unpacklo_ps(v[i], v[i + 1]);
      a[i + 1] = _mm256_unpackhi_ps(v[i], v[i + 1]);
    }
    // b[4g + m], 128-bit lane L: column 4L + m of rows 4g .. 4g + 3.
    for (int g = 0; g < 2; ++g) {
      const __m256d p0 = _mm256_castps_pd(a[4 * g]), p1 = _mm256_castps_pd(a[4 * g + 1]);
      const __m256d q0 = _mm256_castps_pd(a[4 * g + 2]), q1 = _mm256_castps_pd(a[4 * g + 3]);
      b[4 * g] = _mm256_castpd_ps(_mm256_unpacklo_pd(p0, q0));
      b[4 * g + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(p0, q0));
      b[4 * g + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(p1, q1));
      b[4 * g + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(p1, q1));
    }
    for (int m = 0; m < 4; ++m) {
      v[m] = _mm256_permute2f128_ps(b[m], b[4 + m], 0x20);
      v[4 + m] = _mm256_permute2f128_ps(b[m], b[4 + m], 0x31);
    }
  }

  // 8 rows (channels) x 8 columns -> 8 positions of 8 lanes. The loads put row i in the low
  // and row i + 4 in the high 128-bit lane (columns 4g .. 4g + 3 in register 4g + i), so a
  // 4x4 transpose inside each lane leaves whole output rows: no cross-lane shuffle.
  static void tileToBlocked(const float* src, int64_t row, float* dst) {
    T v[8];
    for (int g = 0; g < 2; ++g)
      for (int i = 0; i < 4; ++i) {
        const float* p = src + i * row + 4 * g;
        v[4 * g + i] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(p)), _mm_loadu_ps(p + 4 * row), 1);
      }
    for (int g = 0; g < 2; ++g) {
      const T* w = v + 4 * g;
      const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(w[0], w[1]));
      const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(w[0], w[1]));
      const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(w[2], w[3]));
      const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(w[2], w[3]));
      float* d = dst + 4 * g * 8;
      _mm256_storeu_ps(d, _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)));
      _mm256_storeu_ps(d + 8, _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)));
      _mm256_storeu_ps(d + 16, _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)));
      _mm256_storeu_ps(d + 24, _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3)));
    }
  }

  // 8 positions of 8 lanes -> 8 rows (channels) of 8 positions: a 4x4 transpose inside each
  // 128-bit lane of four positions leaves channel m (low lane) and 4 + m (high lane) at those
  // positions; each half is stored on its own, so no cross-lane shuffle.
  static void tileToPlain(const float* src, float* dst, int64_t row) {
    for (int g = 0; g < 2; ++g) {
      const float* s = src + 4 * g * 8;
      const T w0 = load(s), w1 = load(s + 8), w2 = load(s + 16), w3 = load(s + 24);
      const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(w0, w1));
      const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(w0, w1));
      const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(w2, w3));
      const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(w2, w3));
      const T r[4] = {_mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2)), _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2)),
                      _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3)), _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3))};
      for (int m = 0; m < 4; ++m) {
        _mm_storeu_ps(dst + m * row + 4 * g, _mm256_castps256_ps128(r[m]));
        _mm_storeu_ps(dst + (4 + m) * row + 4 * g, _mm256_extractf128_ps(r[m], 1));
      }
    }
  }

  // Per-lane mean over hw positions: four double chains of four lanes, two positions a step.
  static T meanF64(const float* v, int64_t hw) {
    __m256d s0 = _mm256_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 2 <= hw; i += 2) {
      s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(v + i * 8)));
      s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm_loadu_ps(v + i * 8 + 4)));
      s2 = _mm256_add_pd(s2, _mm256_cvtps_pd(_mm_loadu_ps(v + i * 8 + 8)));
      s3 = _mm256_add_pd(s3, _mm256_cvtps_pd(_mm_loadu_ps(v + i * 8 + 12)));
    }
    if (i < hw) {
      s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm_loadu_ps(v + i * 8)));
      s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm_loadu_ps(v + i * 8 + 4)));
    }
    const __m256d n = _mm256_set1_pd(double(hw));
    const __m128 lo = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_add_pd(s0, s2), n));
    const __m128 hi = _mm256_cvtpd_ps(_mm256_div_pd(_mm256_add_pd(s1, s3), n));
    return _mm256_insertf128_ps(_mm256_castps128_ps256(lo), hi, 1);
  }

  // The same in four f32 chains.
  static T meanF32(const float* v, int64_t hw) {
    T s0 = zero(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 4 <= hw; i += 4) {
      s0 = add(s0, load(v + i * 8));
      s1 = add(s1, load(v + i * 8 + 8));
      s2 = add(s2, load(v + i * 8 + 16));
      s3 = add(s3, load(v + i * 8 + 24));
    }
    for (; i < hw; ++i) s0 = add(s0, load(v + i * 8));
    return div(add(add(s0, s1), add(s2, s3)), set1(float(hw)));
  }
};

constexpr int B = V::B;

#include "cpu/tactics/native_nchwc_ops_body.inc"

}  // namespace
}  // namespace nchwc_avx2

#pragma GCC pop_options

// ---- AVX-512, b = 16 -------------------------------------------------------------------------

#pragma GCC push_options
#pragma GCC target("avx512f")

namespace nchwc_avx512 {
namespace {
namespace nchwc = cpu::nchwc;
namespace nops = runtime::nops;

struct V {
  using T = __m512;
  static constexpr int B = 16;
  static T load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, T v) { _mm512_storeu_ps(p, v); }
  static __mmask16 lanes(int n) { return __mmask16((1u << n) - 1); }
  static T loadN(const float* p, int n) { return _mm512_maskz_loadu_ps(lanes(n), p); }
  static void storeN(float* p, T v, int n) { _mm512_mask_storeu_ps(p, lanes(n), v); }
  static T zero() { return _mm512_setzero_ps(); }
  static T set1(float f) { return _mm512_set1_ps(f); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static T sub(T a, T b) { return _mm512_sub_ps(a, b); }
  static T mul(T a, T b) { return _mm512_mul_ps(a, b); }
  static T div(T a, T b) { return _mm512_div_ps(a, b); }
  static T min(T a, T b) { return _mm512_min_ps(a, b); }
  static T max(T a, T b) { return _mm512_max_ps(a, b); }
  static T andv(T a, T b) { return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(a), _mm512_castps_si512(b))); }
  static T orv(T a, T b) { return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(a), _mm512_castps_si512(b))); }
  static T keep(int n) { return _mm512_castsi512_ps(_mm512_maskz_set1_epi32(lanes(n), -1)); }
  static T nanMask(T v) { return _mm512_castsi512_ps(_mm512_maskz_set1_epi32(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), -1)); }
  static T blendNaN(T v, T nan) {
    const __mmask16 m = _mm512_test_epi32_mask(_mm512_castps_si512(nan), _mm512_castps_si512(nan));
    return _mm512_mask_mov_ps(v, m, _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()));
  }
  static T sigmoid(T v) { return cpu::vmath::keepNaN16(cpu::vmath::sigmoid16(v), v); }
  static T tanh(T v) { return cpu::vmath::keepNaN16(cpu::vmath::tanh16(v), v); }

  static void transpose(T (&v)[16]) {
    T a[16], b[16];
    for (int i = 0; i < 16; i += 2) {
      a[i] = _mm512_unpacklo_ps(v[i], v[i + 1]);
      a[i + 1] = _mm512_unpackhi_ps(v[i], v[i + 1]);
    }
    // b[4g + m], 128-bit lane L: column 4L + m of rows 4g .. 4g + 3.
    for (int g = 0; g < 4; ++g) {
      const __m512d p0 = _mm512_castps_pd(a[4 * g]), p1 = _mm512_castps_pd(a[4 * g + 1]);
      const __m512d q0 = _mm512_castps_pd(a[4 * g + 2]), q1 = _mm512_castps_pd(a[4 * g + 3]);
      b[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(p0, q0));
      b[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(p0, q0));
      b[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(p1, q1));
      b[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(p1, q1));
    }
    // Output row 4L + m is lane L of b[m], b[4 + m], b[8 + m], b[12 + m]: a 4x4 transpose
    // of 128-bit lanes, in two rounds of shuffles.
    for (int m = 0; m < 4; ++m) {
      const T c0 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0x44);
      const T c1 = _mm512_shuffle_f32x4(b[m], b[4 + m], 0xEE);
      const T c2 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0x44);
      const T c3 = _mm512_shuffle_f32x4(b[8 + m], b[12 + m], 0xEE);
      v[m] = _mm512_shuffle_f32x4(c0, c2, 0x88);
      v[4 + m] = _mm512_shuffle_f32x4(c0, c2, 0xDD);
      v[8 + m] = _mm512_shuffle_f32x4(c1, c3, 0x88);
      v[12 + m] = _mm512_shuffle_f32x4(c1, c3, 0xDD);
    }
  }

  // 16 channels x 16 positions -> 16 positions of 16 lanes. Register 4 cb + r holds, in
  // 128-bit lane L, row r + 4L at columns 4cb .. 4cb + 3 (the lane exchange done by the
  // inserting loads, which do not compete with the shuffles' port), so a 4x4 transpose in
  // each lane leaves whole output rows.
  static void tileToBlocked(const float* src, int64_t row, float* dst) {
    T z[16];
    for (int cb = 0; cb < 4; ++cb)
      for (int r = 0; r < 4; ++r) {
        const float* p = src + r * row + 4 * cb;
        T v = _mm512_castps128_ps512(_mm_loadu_ps(p));
        v = _mm512_insertf32x4(v, _mm_loadu_ps(p + 4 * row), 1);
        v = _mm512_insertf32x4(v, _mm_loadu_ps(p + 8 * row), 2);
        v = _mm512_insertf32x4(v, _mm_loadu_ps(p + 12 * row), 3);
        z[4 * cb + r] = v;
      }
    for (int cb = 0; cb < 4; ++cb) {
      const T* w = z + 4 * cb;
      const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(w[0], w[1]));
      const __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(w[0], w[1]));
      const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(w[2], w[3]));
      const __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(w[2], w[3]));
      float* d = dst + 4 * cb * 16;
      _mm512_storeu_ps(d, _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)));
      _mm512_storeu_ps(d + 16, _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)));
      _mm512_storeu_ps(d + 32, _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)));
      _mm512_storeu_ps(d + 48, _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3)));
    }
  }

  // 16 positions of 16 lanes -> 16 rows of 16 positions: 4x4 transposes inside each 128-bit
  // lane of four positions leave channel 4L + m in lane L of result m; lanes are stored one
  // by one (no cross-lane shuffle).
  static void tileToPlain(const float* src, float* dst, int64_t row) {
    for (int g = 0; g < 4; ++g) {
      const float* s = src + 4 * g * 16;
      const T w0 = load(s), w1 = load(s + 16), w2 = load(s + 32), w3 = load(s + 48);
      const __m512d t0 = _mm512_castps_pd(_mm512_unpacklo_ps(w0, w1));
      const __m512d t1 = _mm512_castps_pd(_mm512_unpackhi_ps(w0, w1));
      const __m512d t2 = _mm512_castps_pd(_mm512_unpacklo_ps(w2, w3));
      const __m512d t3 = _mm512_castps_pd(_mm512_unpackhi_ps(w2, w3));
      const T r[4] = {_mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2)), _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2)),
                      _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3)), _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3))};
      for (int m = 0; m < 4; ++m) {
        _mm_storeu_ps(dst + m * row + 4 * g, _mm512_castps512_ps128(r[m]));
        _mm_storeu_ps(dst + (4 + m) * row + 4 * g, _mm512_extractf32x4_ps(r[m], 1));
        _mm_storeu_ps(dst + (8 + m) * row + 4 * g, _mm512_extractf32x4_ps(r[m], 2));
        _mm_storeu_ps(dst + (12 + m) * row + 4 * g, _mm512_extractf32x4_ps(r[m], 3));
      }
    }
  }

  static __m512d widen(const float* p) { return _mm512_cvtps_pd(_mm256_loadu_ps(p)); }

  // Per-lane mean over hw positions: four double chains of eight lanes, two positions a step.
  static T meanF64(const float* v, int64_t hw) {
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 2 <= hw; i += 2) {
      s0 = _mm512_add_pd(s0, widen(v + i * 16));
      s1 = _mm512_add_pd(s1, widen(v + i * 16 + 8));
      s2 = _mm512_add_pd(s2, widen(v + i * 16 + 16));
      s3 = _mm512_add_pd(s3, widen(v + i * 16 + 24));
    }
    if (i < hw) {
      s0 = _mm512_add_pd(s0, widen(v + i * 16));
      s1 = _mm512_add_pd(s1, widen(v + i * 16 + 8));
    }
    const __m512d n = _mm512_set1_pd(double(hw));
    const __m256 lo = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_add_pd(s0, s2), n));
    const __m256 hi = _mm512_cvtpd_ps(_mm512_div_pd(_mm512_add_pd(s1, s3), n));
    return _mm512_castpd_ps(
        _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(lo)), _mm256_castps_pd(hi), 1));
  }

  static T meanF32(const float* v, int64_t hw) {
    T s0 = zero(), s1 = s0, s2 = s0, s3 = s0;
    int64_t i = 0;
    for (; i + 4 <= hw; i += 4) {
      s0 = add(s0, load(v + i * 16));
      s1 = add(s1, load(v + i * 16 + 16));
      s2 = add(s2, load(v + i * 16 + 32));
      s3 = add(s3, load(v + i * 16 + 48));
    }
    for (; i < hw; ++i) s0 = add(s0, load(v + i * 16));
    return div(add(add(s0, s1), add(s2, s3)), set1(float(hw)));
  }
};

constexpr int B = V::B;

#include "cpu/tactics/native_nchwc_ops_body.inc"

}  // namespace
}  // namespace nchwc_avx512

#pragma GCC pop_options

// ---- supports, prepare, registration ----------------------------------------------------------

namespace {

using nops::rankOf;

// A static rank-4 f32 type.
bool static4(const std::vector<ir::TensorType>& t, size_t i) {
  return i < t.size() && t[i].dtype == DataType::kF32 && rankOf(t, i) == 4 && t[i].shape.isStatic();
}

bool isConst(const ir::Node& n, size_t i) { return i < n.numInputs() && n.input(i) && n.input(i)->isInitializer(); }

// The node's output is blocked with this block, f32 of rank 4. Its extents come from the
// input types supports() is given (the profile's min, opt or max), not from the graph,
// where they may be symbolic.
bool outBlocked(const ir::Node& n, int block) {
  return n.numOutputs() >= 1 && n.output(0) && nchwc::blockOf(n.output(0)) == block &&
         n.output(0)->type().dtype == DataType::kF32 && n.output(0)->type().shape.rankKnown() &&
         n.output(0)->type().shape.rank() == 4;
}

// Extents right-aligned to rank 4 (false above rank 4 or when not static).
bool dims4(const std::vector<ir::TensorType>& t, size_t i, std::vector<int64_t>* d) {
  if (i >= t.size() || !t[i].shape.isStatic() || t[i].shape.rank() > 4) return false;
  const std::vector<int64_t> e = t[i].shape.extents();
  d->assign(4 - e.size(), 1);
  d->insert(d->end(), e.begin(), e.end());
  return true;
}

// A binary node's output extents: the numpy broadcast of its operands'.
bool binaryOut(const std::vector<ir::TensorType>& t, std::vector<int64_t>* out) {
  std::vector<int64_t> a, b;
  if (t.size() != 2 || !dims4(t, 0, &a) || !dims4(t, 1, &b)) return false;
  out->resize(4);
  for (int d = 0; d < 4; ++d) {
    if (a[d] != b[d] && a[d] != 1 && b[d] != 1) return false;
    (*out)[d] = a[d] == 1 ? b[d] : a[d];
  }
  return true;
}

bool reorderSupports(int block, const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (n.numInputs() != 1 || !static4(t, 0) || !n.output(0)) return false;
  const std::string to = n.attrs().getString("to", "");
  const std::string blocked = "NCHW" + std::to_string(block) + "c";
  const int in = nchwc::blockOf(n.input(0)), out = nchwc::blockOf(n.output(0));
  if (to == blocked) return n.input(0)->layout().isPlain() && out == block;
  if (to == "plain") return in == block && n.output(0)->layout().isPlain();
  return false;
}

// The form of operand i of a blocked elementwise node with output extents `out`, or -1.
int formOf(int block, const ir::Node& n, const std::vector<ir::TensorType>& t, size_t i,
           const std::vector<int64_t>& out) {
  if (i >= t.size() || t[i].dtype != DataType::kF32 || !t[i].shape.isStatic()) return -1;
  const std::vector<int64_t> d = t[i].shape.extents();
  if (isConst(n, i)) {
    // Row-major; one element, or [C, 1, 1] / [1, C, 1, 1] (right-aligned to rank 4). A
    // rank-1 [C] would broadcast along W, not C: refused.
    if (n.input(i)->layout().isPlain() == false || d.size() > 4) return -1;
    int64_t numel = 1;
    for (int64_t e : d) numel *= e;
    if (numel == 1) return kConst;
    std::vector<int64_t> r(4 - d.size(), 1);
    r.insert(r.end(), d.begin(), d.end());
    return r[0] == 1 && r[1] == out[1] && r[2] == 1 && r[3] == 1 ? kConst : -1;
  }
  if (nchwc::blockOf(n.input(i)) != block || d.size() != 4) return -1;
  if (d == out) return kFull;
  if ((d[0] == out[0] || d[0] == 1) && d[1] == out[1] && d[2] == 1 && d[3] == 1) return kChannel;
  return -1;
}

const std::pair<const char*, EltOp> kBinaryOps[] = {{"Add", kAdd}, {"Sub", kSub}, {"Mul", kMul}, {"Div", kDiv}};
const std::pair<const char*, EltOp> kUnaryOps[] = {{"Relu", kRelu},
                                                   {"Sigmoid", kSigmoid},
                                                   {"Tanh", kTanh},
                                                   {"HardSigmoid", kHardSigmoid},
                                                   {"HardSwish", kHardSwish},
                                                   {"Clip", kClip}};

bool eltSupports(int block, EltOp op, const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (!outBlocked(n, block)) return false;
  std::vector<int64_t> out;
  if (op <= kDiv) {
    if (!binaryOut(t, &out)) return false;
    const int f0 = formOf(block, n, t, 0, out), f1 = formOf(block, n, t, 1, out);
    return f0 >= 0 && f1 >= 0 && (f0 == kFull || f1 == kFull);
  }
  if (!static4(t, 0) || isConst(n, 0) || nchwc::blockOf(n.input(0)) != block) return false;
  if (op == kClip) {
    // The importer turns opset-6 attributes into inputs; bounds are one f32 element each.
    if (n.attrs().has("min") || n.attrs().has("max") || t.size() > 3) return false;
    for (size_t i = 1; i < t.size(); ++i)
      if (nops::hasType(t, i) && (t[i].dtype != DataType::kF32 || t[i].shape.numel() != 1)) return false;
    return true;
  }
  return t.size() == 1;
}

void eltPrepare(int block, EltOp op, const PrepareInfo& info, Prepared* out) {
  const ir::Node& n = *info.node;
  EltParams p;
  p.op = op;
  if (op == kHardSigmoid) {
    p.alpha = n.attrs().getFloat("alpha", 0.2f);
    p.beta = n.attrs().getFloat("beta", 0.5f);
  }
  std::vector<int64_t> o = info.maxTypes.at(0).shape.extents();
  if (op <= kDiv) ANVIL_CHECK(binaryOut(info.maxTypes, &o), ErrorCode::kInvalidModel, n.label(), ": operands do not broadcast");
  const int64_t c = o[1], cb = nchwc::channelBlocks(c, block);
  for (size_t i = 0; i < (op <= kDiv ? 2u : 1u); ++i) {
    const int f = formOf(block, n, info.maxTypes, i, o);
    ANVIL_CHECK(f >= 0, ErrorCode::kInvalidModel, n.label(), ": operand ", i,
                " is neither blocked of the output's extents, blocked [N, C, 1, 1] nor a constant scalar or"
                " per-channel [1, C, 1, 1]");
    p.form[i] = f;
    if (f != kConst) continue;
    // The constant padded to whole blocks: a scalar in every channel's lane, zeros in the
    // padding lanes (the output's are zeroed after the op anyway).
    const ir::Tensor* k = info.constants.at(i);
    ANVIL_CHECK(k != nullptr, ErrorCode::kInternal, n.label(), ": constant operand ", i, " without data");
    std::vector<float> padded(size_t(cb * block), 0.f);
    for (int64_t ch = 0; ch < c; ++ch) padded[size_t(ch)] = k->data<float>()[k->numel() == 1 ? 0 : ch];
    p.blob[i] = int32_t(out->blobs.size());
    out->blobs.emplace_back(reinterpret_cast<const char*>(padded.data()), padded.size() * sizeof(float));
  }
  out->setParams(p);
}

bool poolSupports(int block, const ir::Node& n, const std::vector<ir::TensorType>& t) {
  return t.size() == 1 && static4(t, 0) && nchwc::blockOf(n.input(0)) == block && outBlocked(n, block);
}

bool concatSupports(int block, const ir::Node& n, const std::vector<ir::TensorType>& t) {
  const int64_t axis = n.attrs().getInt("axis", 0);
  if ((axis != 1 && axis != -3) || t.empty() || !outBlocked(n, block)) return false;
  if (!static4(t, 0)) return false;
  const std::vector<int64_t> o = t[0].shape.extents();
  for (size_t i = 0; i < t.size(); ++i) {
    if (!static4(t, i) || isConst(n, i) || nchwc::blockOf(n.input(i)) != block) return false;
    const std::vector<int64_t> d = t[i].shape.extents();
    if (d[0] != o[0] || d[2] != o[2] || d[3] != o[3]) return false;
    if (i + 1 < t.size() && d[1] % block != 0) return false;
  }
  return true;
}

Kernel base(int block, const std::string& family, const std::string& op) {
  Kernel k;
  k.name = family + "_nchw" + std::to_string(block) + "c__" + (block == 16 ? "avx512" : "avx2");
  k.version = 1;
  k.op = op;
  k.precision = DataType::kF32;
  k.requirements = block == 16 ? std::vector<std::string>{"avx512f"} : std::vector<std::string>{"avx2", "fma"};
  k.nchwcBlock = block;
  return k;
}

}  // namespace

void registerNativeNchwcOpKernels(Kernels& k) {
  for (int block : {8, 16}) {
    const bool w = block == 16;
    Kernel r = base(block, "x32_reorder", "Reorder");
    r.domain = "anvil";
    r.supports = [block](const ir::Node& n, const std::vector<ir::TensorType>& t) { return reorderSupports(block, n, t); };
    r.prepare = [](const PrepareInfo& info, Prepared* p) {
      p->setParams(ReorderParams{info.node->attrs().getString("to", "") != "plain" ? 1 : 0});
    };
    r.run = w ? nchwc_avx512::reorderKernel : nchwc_avx2::reorderKernel;
    k.add(std::move(r));

    for (const auto& [name, op] : kBinaryOps) {
      Kernel e = base(block, "f32_binary", name);
      const EltOp which = op;
      e.supports = [block, which](const ir::Node& n, const std::vector<ir::TensorType>& t) {
        return eltSupports(block, which, n, t);
      };
      e.prepare = [block, which](const PrepareInfo& info, Prepared* p) { eltPrepare(block, which, info, p); };
      e.run = w ? nchwc_avx512::eltwiseKernel : nchwc_avx2::eltwiseKernel;
      k.add(std::move(e));
    }
    for (const auto& [name, op] : kUnaryOps) {
      Kernel e = base(block, "f32_unary", name);
      e.version = 2;  // 2: Sigmoid and Tanh with vmath.h's new e^-x
      const EltOp which = op;
      e.supports = [block, which](const ir::Node& n, const std::vector<ir::TensorType>& t) {
        return eltSupports(block, which, n, t);
      };
      e.prepare = [block, which](const PrepareInfo& info, Prepared* p) { eltPrepare(block, which, info, p); };
      e.run = w ? nchwc_avx512::eltwiseKernel : nchwc_avx2::eltwiseKernel;
      k.add(std::move(e));
    }

    for (bool isMax : {false, true}) {
      Kernel g = base(block, isMax ? "f32_global_maxpool" : "f32_global_avgpool",
                      isMax ? "GlobalMaxPool" : "GlobalAveragePool");
      g.supports = [block](const ir::Node& n, const std::vector<ir::TensorType>& t) { return poolSupports(block, n, t); };
      g.prepare = [isMax](const PrepareInfo&, Prepared* p) { p->setParams(PoolParams{isMax ? 1 : 0}); };
      g.run = w ? nchwc_avx512::globalPoolKernel : nchwc_avx2::globalPoolKernel;
      k.add(std::move(g));
    }

    Kernel c = base(block, "x32_concat", "Concat");
    c.supports = [block](const ir::Node& n, const std::vector<ir::TensorType>& t) { return concatSupports(block, n, t); };
    c.run = w ? nchwc_avx512::concatKernel : nchwc_avx2::concatKernel;
    k.add(std::move(c));
  }
}

}  // namespace anvil::runtime
