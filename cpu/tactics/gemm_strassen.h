// One level of Strassen's algorithm over the f32 GEMM engine (gemm_kernels.h), for products
// with a constant B (MatMul / Gemm weights): C = A B as 7 half-size products instead of 8,
// each run by gemmPackedB on B operands packed once at build time.
//
// With A, B and C split into 2 x 2 quadrants (rows and columns halved, rounded up: an odd
// extent gives the second half one fewer, padded with zeros inside the operands):
//   P1 = (A11 + A22)(B11 + B22)   -> C11 +, C22 +
//   P2 = (A21 + A22) B11          -> C21 +, C22 -
//   P3 = A11 (B12 - B22)          -> C12 +, C22 +
//   P4 = A22 (B21 - B11)          -> C11 +, C21 +
//   P5 = (A11 + A12) B22          -> C11 -, C12 +
//   P6 = (A21 - A11)(B11 + B12)   -> C22 +
//   P7 = (A12 - A22)(B21 + B22)   -> C11 +
// The B sums are packed at build time (7 half-size operands: 7/4 of the plain packed
// weight); the A sums are formed per product into the workspace; each product's finished
// blocks are added into (or, first, copied to) the C quadrants they feed while they are in
// cache, and the caller's epilogue runs on a quadrant's block after its last contribution.
// Products run one after the other, each split over the executor as gemmPackedB splits it:
// every element of C gets its contributions in the same order whatever the task count, so
// the result is bitwise the same for any number of threads.
//
// Numerics: 7/8 of the multiply-adds, and a normwise rather than componentwise error
// bound: an element's rounding error scales with the magnitudes of the rows and columns
// the sums mix (row i with row i + M/2, column j with column j + N/2), a few times the
// plain product's on typical data (tests/unit/gemm_strassen_test.cpp measures it against
// a double-precision product). Like Winograd convolution, a fast algorithm the builder
// times as one more candidate; BuilderConfig::strassen (CLI --noStrassen) leaves it out.
#pragma once

#include <cstdint>

#include "cpu/tactics/gemm_kernels.h"

namespace anvil::cpu::tactics {

struct StrassenDims {
  int64_t M = 0, K = 0, N = 0;
  int64_t Mh = 0, Kh = 0, Nh = 0;  // the first halves (rounded up)
  int64_t Mb = 0, Kb = 0, Nb = 0;  // the second halves (Mh or Mh - 1, ...)
  static StrassenDims of(int64_t M, int64_t K, int64_t N);
};

// Floats of the 7 packed B operands (each packedBFloats(Kh, Nh), rounded up to 16).
int64_t strassenPackedBFloats(const GemmConfig& c, int64_t K, int64_t N);
// The 7 B operands of B [K x N], packed for the family (serial; build time).
void strassenPackB(const GemmConfig& c, int64_t K, int64_t N, StridedMatrix B, float* dst);

// Shared workspace floats for M rows (the product buffer and the A operand), and the
// per-task slot floats (gemmPackedB's A block for the half depth).
int64_t strassenSharedFloats(int64_t M, int64_t K, int64_t N);
int64_t strassenSlotFloats(const GemmConfig& c, int64_t K);

// C[M, N] (row stride ldc) = alpha * A * B with B as strassenPackB packed it; A row-major
// (A.cs == 1). `shared` holds strassenSharedFloats(M, K, N) floats, slots gemmPackedB's
// task slots (strassenSlotFloats each). `finish` (may be null) runs on every block of C
// once all of its contributions are in, with C's coordinates, like gemmPackedB's epilogue.
// The family must be an AVX2 or AVX-512 one (the adds are vector loops of that ISA).
void gemmStrassen(const GemmConfig& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                  const float* Bp, float* C, int64_t ldc, float* shared, runtime::Executor* ex,
                  const TaskSlots& slots, const BlockEpilogue* finish);

}  // namespace anvil::cpu::tactics
