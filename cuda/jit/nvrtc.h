// Build-time compilation of CUDA C with NVRTC: a CUBIN for the target GPU and PTX for the
// GPUs after it (the driver compiles PTX on load). NVRTC needs no GPU. libnvrtc is opened with
// dlopen on first use, so nothing that links anvil (engine loading, running) depends on it;
// only building engines with NVRTC-compiled kernels does.
#pragma once

#include <string>

namespace anvil::cuda::jit {

struct NvrtcOutput {
  std::string cubin;  // ELF for sm_<cc>
  std::string ptx;    // for compute_<cc>, with its terminating NUL (as module loaders take it)
  std::string log;    // NVRTC's warnings, if any (empty for a clean compile)
};

// Whether libnvrtc loads here, and its version ("13.0"; "" where it does not load).
bool nvrtcAvailable();
std::string nvrtcVersion();

// Compiles the translation unit `source` (named `name` in messages and NVRTC's log) for
// compute capability `cc` (major * 10 + minor, 90 for 9.0): CUBIN via --gpu-architecture=
// sm_<cc>, PTX via compute_<cc>; -default-device, IEEE math (no --use_fast_math, as the
// interpreting kernels and the reference). kUnsupported when libnvrtc does not load;
// kInvalidArgument with NVRTC's log when the source does not compile.
NvrtcOutput compileCuda(const std::string& source, const std::string& name, int cc);

}  // namespace anvil::cuda::jit
