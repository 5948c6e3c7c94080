// The sim's emulation of nvcuda::wmma (cuda/sim/wmma.h): one 16x16x16 multiply-accumulate per
// warp in every operand layout and with padded rows (ldm > 16), against a double reference on
// the same rounded operands, and s8 x s8 into s32 exactly against an integer reference (the
// range's ends included); and the GPU's rules it enforces (all 32 lanes, the same call,
// uniform and aligned pointers).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "cuda/kernels/compat.cuh"

namespace anvil::cuda {
namespace {

namespace wmma = nvcuda::wmma;

// D = A . B + C for one tile. A is stored row-major (A(i, k) at a[i * lda + k]) or col-major
// (a[k * lda + i]); B likewise with B(k, j); C and D row- or col-major with ldc.
template <typename T, typename LA, typename LB>
__global__ void mmaTile(const T* a, unsigned lda, const T* b, unsigned ldb, const float* c,
                        float* d, unsigned ldc, int colMajorC) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, T, LA> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, T, LB> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  const wmma::layout_t lc = colMajorC ? wmma::mem_col_major : wmma::mem_row_major;
  wmma::load_matrix_sync(fa, a, lda);
  wmma::load_matrix_sync(fb, b, ldb);
  if (c != nullptr) {
    wmma::load_matrix_sync(acc, c, ldc, lc);
  } else {
    wmma::fill_fragment(acc, 0.0f);
  }
  wmma::mma_sync(acc, fa, fb, acc);
  for (int e = 0; e < acc.num_elements; ++e) acc.x[e] *= 2.0f;  // a uniform per-element op
  wmma::store_matrix_sync(d, acc, ldc, lc);
}

// 32-byte aligned storage for the host-side tiles, as the GPU requires of fragment pointers.
template <typename T>
struct Aligned {
  explicit Aligned(std::size_t n) : v(n + 32 / sizeof(T)) {}
  T* data() {
    auto p = reinterpret_cast<std::uintptr_t>(v.data());
    return reinterpret_cast<T*>((p + 31) / 32 * 32);
  }
  std::vector<T> v;
};

template <typename T>
float toF(T x) {
  return kernels::toFloat(x);
}

template <typename T, typename LA, typename LB>
void checkTile(unsigned ld, bool withC, bool colMajorC) {
  constexpr bool kRowA = std::is_same_v<LA, wmma::row_major>;
  constexpr bool kRowB = std::is_same_v<LB, wmma::row_major>;
  SCOPED_TRACE(std::string(kRowA ? "A row" : "A col") + (kRowB ? " B row" : " B col") +
               " ld=" + std::to_string(ld) + (withC ? " +C" : "") + (colMajorC ? " C col" : ""));
  std::mt19937 rng(ld * 7 + (kRowA ? 1 : 0) + (kRowB ? 2 : 0));
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Aligned<T> a(16 * ld), b(16 * ld);
  Aligned<float> c(16 * ld), d(16 * ld);
  for (unsigned i = 0; i < 16 * ld; ++i) {
    a.data()[i] = kernels::fromFloat<T>(u(rng));
    b.data()[i] = kernels::fromFloat<T>(u(rng));
    c.data()[i] = u(rng);
    d.data()[i] = 12345.0f;  // the padding must stay
  }
  auto A = [&](int i, int k) { return toF(kRowA ? a.data()[i * ld + k] : a.data()[k * ld + i]); };
  auto B = [&](int k, int j) { return toF(kRowB ? b.data()[k * ld + j] : b.data()[j * ld + k]); };
  auto at = [&](int i, int j) { return colMajorC ? j * ld + i : i * ld + j; };
  sim::launch(dim3(1), dim3(32), 0, &mmaTile<T, LA, LB>, static_cast<const T*>(a.data()), ld,
              static_cast<const T*>(b.data()), ld,
              withC ? static_cast<const float*>(c.data()) : nullptr, d.data(), ld, colMajorC ? 1 : 0);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      double want = withC ? c.data()[at(i, j)] : 0.0;
      for (int k = 0; k < 16; ++k) want += double(A(i, k)) * double(B(k, j));
      want *= 2;
      // Exact products, 16 f32 additions.
      ASSERT_NEAR(d.data()[at(i, j)], want, 1e-5) << "(" << i << ", " << j << ")";
    }
  }
  for (unsigned i = 0; i < 16 * ld; ++i) {  // in either layout, the padding is i % ld >= 16
    if (i % ld >= 16) {
      ASSERT_EQ(d.data()[i], 12345.0f) << "padding element " << i << " written";
    }
  }
}

TEST(WmmaSim, MmaEveryLayoutF16) {
  for (unsigned ld : {16u, 24u, 40u}) {
    checkTile<__half, wmma::row_major, wmma::row_major>(ld, false, false);
    checkTile<__half, wmma::row_major, wmma::col_major>(ld, true, false);
    checkTile<__half, wmma::col_major, wmma::row_major>(ld, true, true);
    checkTile<__half, wmma::col_major, wmma::col_major>(ld, false, true);
  }
}

TEST(WmmaSim, MmaEveryLayoutBF16) {
  for (unsigned ld : {16u, 32u, 72u}) {
    checkTile<__nv_bfloat16, wmma::row_major, wmma::row_major>(ld, true, false);
    checkTile<__nv_bfloat16, wmma::row_major, wmma::col_major>(ld, false, true);
    checkTile<__nv_bfloat16, wmma::col_major, wmma::row_major>(ld, false, false);
    checkTile<__nv_bfloat16, wmma::col_major, wmma::col_major>(ld, true, true);
  }
}

// D = A . B + C in s8 x s8 -> s32, then + 1 per element (a uniform op on int fragments).
template <typename LA, typename LB>
__global__ void mmaTileI8(const signed char* a, const signed char* b, unsigned ld, const int* c, int* d,
                          unsigned ldc) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, LA> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, signed char, LB> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, int> acc;
  wmma::load_matrix_sync(fa, a, ld);
  wmma::load_matrix_sync(fb, b, ld);
  if (c != nullptr) {
    wmma::load_matrix_sync(acc, c, ldc, wmma::mem_row_major);
  } else {
    wmma::fill_fragment(acc, 0);
  }
  wmma::mma_sync(acc, fa, fb, acc);
  for (int e = 0; e < acc.num_elements; ++e) acc.x[e] += 1;
  wmma::store_matrix_sync(d, acc, ldc, wmma::mem_row_major);
}

// `fill`: 0 random s8, 1 every operand -128 (the largest product, 16384, 16 times), 2 A = 127
// and B = -128 (the most negative sums); C near the s32 ends so that only an exact sum lands.
template <typename LA, typename LB>
void checkTileI8(unsigned ld, int fill, bool withC) {
  constexpr bool kRowA = std::is_same_v<LA, wmma::row_major>;
  constexpr bool kRowB = std::is_same_v<LB, wmma::row_major>;
  SCOPED_TRACE(std::string(kRowA ? "A row" : "A col") + (kRowB ? " B row" : " B col") + " ld=" +
               std::to_string(ld) + " fill=" + std::to_string(fill) + (withC ? " +C" : ""));
  std::mt19937 rng(ld * 5 + fill);
  std::uniform_int_distribution<int> u(-128, 127);
  Aligned<signed char> a(16 * ld), b(16 * ld);
  Aligned<int> c(16 * 24), d(16 * 24);
  for (unsigned i = 0; i < 16 * ld; ++i) {
    a.data()[i] = static_cast<signed char>(fill == 0 ? u(rng) : fill == 1 ? -128 : 127);
    b.data()[i] = static_cast<signed char>(fill == 0 ? u(rng) : -128);
  }
  for (int i = 0; i < 16 * 24; ++i) {
    c.data()[i] = fill == 1 ? 0x7fffffff - 16 * 16384 - 1 - i : fill == 2 ? -0x7fffffff + 16 * 16256 + i : u(rng) * 1000;
    d.data()[i] = -7;
  }
  auto A = [&](int i, int k) { return std::int64_t{kRowA ? a.data()[i * ld + k] : a.data()[k * ld + i]}; };
  auto B = [&](int k, int j) { return std::int64_t{kRowB ? b.data()[k * ld + j] : b.data()[j * ld + k]}; };
  sim::launch(dim3(1), dim3(32), 0, &mmaTileI8<LA, LB>, static_cast<const signed char*>(a.data()),
              static_cast<const signed char*>(b.data()), ld, withC ? static_cast<const int*>(c.data()) : nullptr,
              d.data(), 24u);
  for (int i = 0; i < 16; ++i) {
    for (int j = 0; j < 16; ++j) {
      std::int64_t want = withC ? c.data()[i * 24 + j] : 0;
      for (int k = 0; k < 16; ++k) want += A(i, k) * B(k, j);
      ASSERT_EQ(d.data()[i * 24 + j], want + 1) << "(" << i << ", " << j << ")";
    }
    for (int j = 16; j < 24; ++j) ASSERT_EQ(d.data()[i * 24 + j], -7) << "padding (" << i << ", " << j << ") written";
  }
}

TEST(WmmaSim, MmaS8IntoS32IsExact) {
  for (unsigned ld : {16u, 32u, 48u}) {
    checkTileI8<wmma::row_major, wmma::col_major>(ld, 0, ld == 32);
    checkTileI8<wmma::row_major, wmma::row_major>(ld, 0, ld != 32);
    checkTileI8<wmma::col_major, wmma::col_major>(ld, 0, true);
    checkTileI8<wmma::col_major, wmma::row_major>(ld, 0, false);
  }
  for (int fill : {1, 2}) {
    checkTileI8<wmma::row_major, wmma::col_major>(16, fill, true);
    checkTileI8<wmma::row_major, wmma::col_major>(16, fill, false);
  }
}

// An s8 load with ldm 8 (8 bytes: WMMA wants a multiple of 16 bytes) is refused.
__global__ void loadI8WithLdm(const signed char* a, unsigned ldm) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, signed char, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a, ldm);
}

TEST(WmmaSim, S8LoadNeedsSixteenByteRows) {
  Aligned<signed char> a(16 * 32);
  EXPECT_NO_THROW(sim::launch(dim3(1), dim3(32), 0, &loadI8WithLdm, static_cast<const signed char*>(a.data()), 16u));
  EXPECT_THROW(sim::launch(dim3(1), dim3(32), 0, &loadI8WithLdm, static_cast<const signed char*>(a.data()), 8u),
               Error);
  EXPECT_THROW(sim::launch(dim3(1), dim3(32), 0, &loadI8WithLdm, static_cast<const signed char*>(a.data()) + 16, 16u),
               Error);  // 16 bytes in: not 256-bit aligned
}

// Lanes 0-15 load while 16-31 fill: a divergent warp collective.
__global__ void divergentLoad(const __half* a, float* out) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  if (threadIdx.x < 16) {
    wmma::load_matrix_sync(fa, a, 16);
  } else {
    wmma::fill_fragment(acc, 0.0f);
  }
  out[threadIdx.x] = 0.0f;
}

__global__ void perLanePointer(const __half* a) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a + 16 * (threadIdx.x % 2), 16);
}

__global__ void loadWithLdm(const __half* a, unsigned ldm) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::load_matrix_sync(fa, a, ldm);
}

// Fragments that differ between lanes (not a valid GPU kernel: the element-to-lane mapping
// is opaque there) still multiply correctly lane by lane: the sim's shared product is only
// reused for identical inputs.
__global__ void perLaneAccumulator(const __half* a, const __half* b, float* out) {
  wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> fa;
  wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> fb;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
  wmma::load_matrix_sync(fa, a, 16);
  wmma::load_matrix_sync(fb, b, 16);
  for (int e = 0; e < acc.num_elements; ++e) acc.x[e] = static_cast<float>(threadIdx.x % 3);
  wmma::mma_sync(acc, fa, fb, acc);
  out[threadIdx.x] = acc.x[0];
}

TEST(WmmaSim, LanesWithDifferentFragmentsEachGetTheirOwnProduct) {
  Aligned<__half> a(256), b(256);
  float dot = 0;
  for (int i = 0; i < 256; ++i) {
    a.data()[i] = __float2half(0.25f * float(i % 5));
    b.data()[i] = __float2half(0.5f * float(i % 3) - 0.5f);
  }
  for (int k = 0; k < 16; ++k) dot += __half2float(a.data()[k]) * __half2float(b.data()[k * 16]);
  float out[64];
  sim::launch(dim3(1), dim3(64), 0, &perLaneAccumulator, static_cast<const __half*>(a.data()),
              static_cast<const __half*>(b.data()), out);
  for (int t = 0; t < 64; ++t) EXPECT_EQ(out[t], float(t % 3) + dot) << "thread " << t;
}

TEST(WmmaSim, GpuRulesAreErrors) {
  Aligned<__half> a(16 * 64);
  for (auto& x : a.v) x = __float2half(1.0f);
  float out[64];
  const __half* p = a.data();
  EXPECT_THROW(sim::launch(dim3(1), dim3(32), 0, &divergentLoad, p, out), Error);
  EXPECT_THROW(sim::launch(dim3(1), dim3(16), 0, &loadWithLdm, p, 16u), Error);  // half a warp
  EXPECT_THROW(sim::launch(dim3(1), dim3(32), 0, &perLanePointer, p), Error);
  EXPECT_THROW(sim::launch(dim3(1), dim3(32), 0, &loadWithLdm, p + 1, 16u), Error);  // misaligned
  EXPECT_THROW(sim::launch(dim3(1), dim3(32), 0, &loadWithLdm, p, 20u), Error);  // 40-byte rows
  EXPECT_NO_THROW(sim::launch(dim3(1), dim3(64), 0, &loadWithLdm, p, 24u));
}

}  // namespace
}  // namespace anvil::cuda
