// CUDA C source for one anvil.FusedElementwise program (cuda/tactics/fused_program.h), to be
// compiled at build time with NVRTC (cuda/jit/nvrtc.h): one extern "C" __global__ kernel whose
// ops are inlined as straight-line f32 code with the formulas of the interpreting kernel
// (cuda/kernels/elementwise.cuh), in the same order, so that both give the same results.
// Broadcasting is the interpreter's: a contiguous path (each input full or one element) and a
// strided path (merged rank <= kEwMaxRank, per-input steps), chosen by the arguments, so one
// compiled kernel serves every shape of a profile. f32 storage only.
#pragma once

#include <string>

#include "cuda/kernels/elementwise_args.h"
#include "cuda/tactics/fused_program.h"

namespace anvil::cuda::jit {

inline constexpr int kJitEwBlock = 256;  // threads per block the kernels are bounded for

// The one by-value argument of every generated kernel; the generated source declares the
// same struct (the host and device layouts of these types agree).
struct JitEwArgs {
  float* out;
  const float* in[kernels::kEwMaxInputs];
  long long n;  // output elements
  long long dims[kernels::kEwMaxRank];
  long long strides[kernels::kEwMaxInputs][kernels::kEwMaxRank];
  long long contigStep[kernels::kEwMaxInputs];  // contiguous path: input k's element i * step
  int rank;     // strided path: merged output rank
  int strided;  // 0: the contiguous path
};

struct GeneratedKernel {
  std::string entry;   // the extern "C" name: anvil_fused_ew_<hash of the program>
  std::string source;  // one self-contained translation unit (no #include)
};

// Whether every op of `p` has a generated form (the same set the interpreter serves).
bool canGenerate(const tactics::FusedProgram& p);

// The kernel for `p`; kUnsupported for an op without a generated form.
GeneratedKernel generateElementwiseKernel(const tactics::FusedProgram& p);

}  // namespace anvil::cuda::jit
