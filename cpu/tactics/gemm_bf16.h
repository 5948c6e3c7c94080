// The BF16 GEMM engine behind the bf16_* kernels (cpu/tactics/native_half.cpp): operands
// rounded to bfloat16 (weights once at prepare, activations as their panels are packed),
// products of bf16 pairs accumulated in f32 by vdpbf16ps (AVX-512 BF16, 14x32 tiles) or by
// an emulation that does the same two roundings per pair in the same order: vdpbf16ps adds
// the odd element's exact product, then the even one's (the instruction's definition; this
// CPU agreed bitwise on 3.2M random pairs), which is what an FMA chain does over the pair's
// k swapped. So the emulation is the f32 micro-kernels (gemm_kernels.h, AVX2 6x16 and
// AVX-512 14x32) on bf16-rounded operands laid out with each pair's k swapped, and every
// family gives the same bits for the same K blocks, denormals aside (vdpbf16ps treats them
// as zero). On the dev box (a Xeon whose vdpbf16ps retires about 1.2G instructions/s against
// 4.6-5.0G for vfmadd231ps, one thread) the emulation is the faster of the two.
#pragma once

#include <cstdint>
#include <cstring>

#include "cpu/tactics/gemm_kernels.h"

namespace anvil::cpu::tactics {

// f32 -> bf16 bits, round to nearest even; NaN stays a (quiet) NaN, overflow goes to inf.
inline uint16_t bf16Bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u | 0x00400000u) >> 16);
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}
inline float bf16ToFloat(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float bf16Round(float x) { return bf16ToFloat(bf16Bits(x)); }
// A K pair as vdpbf16ps reads it: the even k in the low half.
inline uint32_t bf16Pair(float even, float odd) { return uint32_t(bf16Bits(even)) | (uint32_t(bf16Bits(odd)) << 16); }

// The two families; stored in prepared params: never renumber.
enum class Bf16Isa : int32_t {
  kAvx512Bf16_14x32 = 0,  // needs avx512f + avx512bf16: A and B both as K pairs (dwords)
  kAvx2Emu_6x16 = 1,      // needs avx2 + fma: the emulation, B prepared as K pairs
  kAvx512Emu_14x32 = 2,   // needs avx512f: the emulation with the AVX-512 f32 kernels
};

// C[R x ncols] (+)= A panel (first R rows) * B panel over kp K pairs (vdpbf16ps): per pair
// MR dwords of A, NR of B. The emulation's A panels hold per pair 2 x MR floats, the odd
// k's row values then the even k's; its B panels are widened the same way per block.
using Bf16Kernel = void (*)(int64_t kp, const void* a, const uint32_t* b, float* c, int64_t ldc, int ncols, bool acc);

inline constexpr int kBf16FewRows = 4;

struct Bf16Config {
  int mr, nr;
  int64_t mc, nc;
  int aUnits;     // 4-byte units of the A panel per row and K pair: 1 (pairs) or 2 (floats)
  GemmIsa packer;  // the f32 family whose A packer (tile height mr) moves the 4-byte units
  const Bf16Kernel* kernels;  // kernels[R-1] computes R rows; null: the emulation (packer's f32 kernels)
  // The emulation's kernels for R <= kBf16FewRows rows straight from B's pairs (A in the
  // emulation's layout, tile height mr).
  const Bf16Kernel* few = nullptr;
};
const Bf16Config& bf16Config(Bf16Isa isa);

// The K blocks of every bf16 product: at most 256 k, even, splitting K evenly; the same
// for both families (they fix the order of the sums, so the bits).
inline int64_t bf16KBlock(int64_t K) { return roundUp(K <= 256 ? K : ceilDiv(K, ceilDiv(K, 256)), 2); }

// Packed layouts, in 4-byte units. B [K x N]: the K block at k0 starts at (k0 / 2) * Npad
// (Npad = N rounded up to nr), panel q of it at + q * kp * nr (kp = the block's pairs),
// per pair nr dwords (zeros past K and N). A [M x K]: the block at k0 starts at
// (k0 / 2) * Mpad * aUnits, panel i at + i * mr * kp * aUnits (zeros past K and M).
inline int64_t bf16PackedBUnits(const Bf16Config& c, int64_t K, int64_t N) { return ceilDiv(K, 2) * roundUp(N, c.nr); }
inline int64_t bf16PackedAUnits(const Bf16Config& c, int64_t M, int64_t K) {
  return ceilDiv(K, 2) * roundUp(M, c.mr) * c.aUnits;
}
// At prepare: B (weights) as pairs; A (a Conv filter) as pairs in the family's pair layout
// (mr dwords per pair), which for the emulation expandBf16APairs turns into its floats.
void packBf16B(const Bf16Config& c, int64_t K, int64_t N, StridedMatrix B, uint32_t* dst);
void packBf16APairs(const Bf16Config& c, int64_t M, int64_t K, StridedMatrix A, uint32_t* dst);
// The emulation's A panels from packBf16APairs(c, ...) output of `units` dwords (each pair
// of mr dwords becomes the mr odd floats, then the mr even ones).
void expandBf16APairs(const Bf16Config& c, const uint32_t* src, int64_t units, float* dst);

// Floats one task of gemmBf16PackedB needs.
int64_t gemmBf16PackedBSlotFloats(const Bf16Config& c, int64_t K);
// C[M, N] = round(alpha * A) * B with B from packBf16B, then the epilogue per finished block;
// up to slots.tasks tasks on ex, every element computed by one task in a fixed order.
void gemmBf16PackedB(const Bf16Config& c, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                     const uint32_t* Bp, float* C, int64_t ldc, runtime::Executor* ex, const TaskSlots& slots,
                     const BlockEpilogue* ep);

// The emulation's Conv input: the inner packer's f32 block (the real k of [k0, k0 + kc), K
// real k in all) rounded to bf16 with each K pair swapped and a zero for a padded odd k,
// for gemmPackedA / gemmPackedAFused (gemm_kernels.h) over the padded K (kc even) with the
// K blocks of bf16KBlock and the filter from expandBf16APairs: the f32 kernels, and their
// register-tile epilogues, in the vdpbf16ps order.
class Bf16SwappedPacker final : public BPacker {
 public:
  Bf16SwappedPacker(const BPacker& inner, int64_t K) : inner_(inner), K_(K) {}
  void pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst, float* scratch) const override;
  // Scratch for blocks up to kc x nc (nc a multiple of nr), given the inner packer's.
  static int64_t scratchFloats(int64_t kc, int64_t nc, int64_t innerScratch) {
    return roundUp(kc * nc, 16) + roundUp(innerScratch, 16);
  }

 private:
  const BPacker& inner_;
  int64_t K_;
};

// Floats one task of gemmBf16PackedA needs (plus the packer's scratch).
int64_t gemmBf16PackedASlotFloats(const Bf16Config& c, int64_t scratchFloats);
// One A-stationary product, serial: C[M, N] = Ap * round(B), Ap in the family's A layout,
// B's f32 panels from the packer for columns [j0, j1), rounded to pairs per block.
void gemmBf16PackedA(const Bf16Config& c, int64_t M, int64_t K, const void* Ap, const BPacker& B, int64_t j0,
                     int64_t j1, float* C, int64_t ldc, float* slot, const BlockEpilogue* ep);

}  // namespace anvil::cpu::tactics
