// The f32 GEMM engine behind the MatMul, Gemm and Conv tactics (cpu/tactics/gemm.cpp):
// BLIS-style loops (N blocks, K blocks, M blocks) over packed panels feeding
// register-blocked FMA micro-kernels, a portable unpacked 4x4 blocked GEMM, and the small
// thread pool they share. B is produced by a packer so that Conv can pack straight from
// its input (implicit im2col) instead of materialising the column matrix.
#pragma once

#include <cstdint>
#include <functional>

namespace anvil::cpu {
class KernelContext;
}

namespace anvil::cpu::tactics {

// A strided matrix view: element (r, c) is p[r * rs + c * cs]. Transposes are strides.
struct StridedMatrix {
  const float* p = nullptr;
  int64_t rs = 0, cs = 0;
  float at(int64_t r, int64_t c) const { return p[r * rs + c * cs]; }
};

// Writes the [kc x nc] block of B at (k0, j0) as panels of nr columns: panel q holds, for
// each of the kc rows, nr floats (columns j0 + q*nr ...), zero past nc. Panel q starts at
// dst + q * kc * nr. Must be safe to call concurrently for disjoint column ranges.
class BPacker {
 public:
  virtual ~BPacker() = default;
  virtual void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) const = 0;
};

class StridedBPacker final : public BPacker {
 public:
  explicit StridedBPacker(StridedMatrix b) : b_(b) {}
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) const override;

 private:
  StridedMatrix b_;
};

// Micro-kernel families of the packed engine; MR x NR is the register tile.
enum class PackedKernel {
  kAvx2_6x16,     // needs avx2 + fma
  kAvx512_14x32,  // needs avx512f
};

// Runs on each finished block of C (every K block accumulated) while it is still in
// cache: rows [i0, i0 + rows) and columns [j0, j0 + cols), c = &C(i0, j0), row stride
// ldc. Blocks are disjoint and several threads may run it at once. The fused-epilogue
// tactics (cpu/tactics/fused_linear.cpp) apply bias, residual and activation here.
using GemmEpilogue = std::function<void(int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* c, int64_t ldc)>;

// C[M,N] (row stride ldc) = alpha * A[M,K] * B[K,N] + (accumulate ? C : 0), then the
// epilogue (if any) on each finished block.
// Every element of C is computed by one task in a fixed order, so results are bitwise
// identical for every thread count.
void packedGemm(PackedKernel kernel, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                const BPacker& B, float* C, int64_t ldc, bool accumulate, const GemmEpilogue* epilogue = nullptr);

// Portable 4x4 register-blocked GEMM straight on strided operands (no packing); same
// contract as packedGemm.
void blockedGemm4x4(int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A, StridedMatrix B, float* C,
                    int64_t ldc, bool accumulate);

// The 2-D f32 Conv tactics of cpu/tactics/conv.cpp with an epilogue instead of the bias
// prefill: when it runs, Y holds the convolution WITHOUT its bias. epilogue(n, m0, rows,
// p0, cols, y, ldy) covers output channels [m0, m0 + rows) and flat pixels [p0, p0 + cols)
// of image n, y = &Y[n, m0, p0] with row stride ldy; blocks are disjoint, possibly
// concurrent.
using ConvEpilogue =
    std::function<void(int64_t n, int64_t m0, int64_t rows, int64_t p0, int64_t cols, float* y, int64_t ldy)>;
void runConv2dIm2colEpilogue(KernelContext& ctx, PackedKernel kernel, const ConvEpilogue& epilogue);
void runDepthwiseEpilogue(KernelContext& ctx, const ConvEpilogue& epilogue);

// Threads used by the tactics: ANVIL_NUM_THREADS, else the hardware's count. A parallel
// region entered from inside another (or while another thread holds the pool) runs serially.
int numThreads();
void setNumThreads(int n);  // n <= 0 restores the default
// Runs fn(0..n-1) on up to numThreads() threads; tasks must write disjoint memory.
void parallelFor(int64_t n, const std::function<void(int64_t)>& fn);

}  // namespace anvil::cpu::tactics
