// NVRTC through dlopen (nvrtc.h): the entry points are looked up once, the first time a
// compilation is asked for; nvrtc.h supplies only the types, nothing links libnvrtc.
#include "cuda/jit/nvrtc.h"

#include <dlfcn.h>
#include <nvrtc.h>

#include <mutex>
#include <vector>

#include "anvil/error.h"

namespace anvil::cuda::jit {

namespace {

// The entry points we use, or none (with why) where the library does not load.
struct Nvrtc {
  void* handle = nullptr;
  std::string missing;  // why it is unusable; "" when loaded
  const char* (*getErrorString)(nvrtcResult) = nullptr;
  nvrtcResult (*version)(int*, int*) = nullptr;
  nvrtcResult (*createProgram)(nvrtcProgram*, const char*, const char*, int, const char* const*,
                               const char* const*) = nullptr;
  nvrtcResult (*destroyProgram)(nvrtcProgram*) = nullptr;
  nvrtcResult (*compileProgram)(nvrtcProgram, int, const char* const*) = nullptr;
  nvrtcResult (*getProgramLogSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*getProgramLog)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*getCUBINSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*getCUBIN)(nvrtcProgram, char*) = nullptr;
  nvrtcResult (*getPTXSize)(nvrtcProgram, size_t*) = nullptr;
  nvrtcResult (*getPTX)(nvrtcProgram, char*) = nullptr;
};

template <typename F>
bool bind(Nvrtc& n, F*& fn, const char* symbol) {
  fn = reinterpret_cast<F*>(dlsym(n.handle, symbol));
  if (!fn && n.missing.empty()) n.missing = std::string("libnvrtc lacks ") + symbol;
  return fn != nullptr;
}

const Nvrtc& nvrtc() {
  static const Nvrtc lib = [] {
    Nvrtc n;
    for (const char* so : {"libnvrtc.so.13", "libnvrtc.so"}) {
      n.handle = dlopen(so, RTLD_NOW | RTLD_LOCAL);
      if (n.handle) break;
    }
    if (!n.handle) {
      const char* why = dlerror();
      n.missing = std::string("libnvrtc.so.13 / libnvrtc.so not found (") + (why ? why : "dlopen failed") + ")";
      return n;
    }
    bind(n, n.getErrorString, "nvrtcGetErrorString");
    bind(n, n.version, "nvrtcVersion");
    bind(n, n.createProgram, "nvrtcCreateProgram");
    bind(n, n.destroyProgram, "nvrtcDestroyProgram");
    bind(n, n.compileProgram, "nvrtcCompileProgram");
    bind(n, n.getProgramLogSize, "nvrtcGetProgramLogSize");
    bind(n, n.getProgramLog, "nvrtcGetProgramLog");
    bind(n, n.getCUBINSize, "nvrtcGetCUBINSize");
    bind(n, n.getCUBIN, "nvrtcGetCUBIN");
    bind(n, n.getPTXSize, "nvrtcGetPTXSize");
    bind(n, n.getPTX, "nvrtcGetPTX");
    return n;
  }();
  return lib;
}

const Nvrtc& loaded() {
  const Nvrtc& n = nvrtc();
  if (!n.missing.empty())
    ANVIL_THROW(ErrorCode::kUnsupported, "nvrtc: ", n.missing,
                "; building CUDA engines with build-time compiled kernels needs the CUDA toolkit's NVRTC");
  return n;
}

// A program destroyed on every path.
struct Program {
  const Nvrtc& n;
  nvrtcProgram p = nullptr;
  ~Program() {
    if (p) n.destroyProgram(&p);
  }
};

void check(const Nvrtc& n, nvrtcResult r, const char* call, const std::string& name) {
  if (r != NVRTC_SUCCESS)
    ANVIL_THROW(ErrorCode::kRuntimeError, "nvrtc: ", call, " for ", name, ": ", n.getErrorString(r));
}

// One compilation of `source` for `arch` ("sm_90" or "compute_90"); the CUBIN or the PTX.
std::string compileOnce(const Nvrtc& n, const std::string& source, const std::string& name, const std::string& arch,
                        bool cubin, std::string* warnings) {
  Program prog{n};
  check(n, n.createProgram(&prog.p, source.c_str(), name.c_str(), 0, nullptr, nullptr), "nvrtcCreateProgram", name);
  const std::string archOpt = "--gpu-architecture=" + arch;
  const char* opts[] = {archOpt.c_str(), "-default-device", "--std=c++17"};
  const nvrtcResult compiled = n.compileProgram(prog.p, int(sizeof opts / sizeof opts[0]), opts);
  size_t logBytes = 0;
  std::string log;
  if (n.getProgramLogSize(prog.p, &logBytes) == NVRTC_SUCCESS && logBytes > 1) {
    log.resize(logBytes);
    if (n.getProgramLog(prog.p, log.data()) != NVRTC_SUCCESS) log.clear();
    while (!log.empty() && (log.back() == '\0' || log.back() == '\n')) log.pop_back();
  }
  if (compiled != NVRTC_SUCCESS) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "nvrtc: ", name, " does not compile for ", arch, " (",
                n.getErrorString(compiled), "):\n", log.empty() ? std::string("(no log)") : log);
  }
  if (!log.empty()) *warnings += arch + ": " + log + "\n";
  size_t bytes = 0;
  std::string out;
  if (cubin) {
    check(n, n.getCUBINSize(prog.p, &bytes), "nvrtcGetCUBINSize", name);
    out.resize(bytes);
    if (bytes) check(n, n.getCUBIN(prog.p, out.data()), "nvrtcGetCUBIN", name);
  } else {
    check(n, n.getPTXSize(prog.p, &bytes), "nvrtcGetPTXSize", name);  // counts the NUL
    out.resize(bytes);
    if (bytes) check(n, n.getPTX(prog.p, out.data()), "nvrtcGetPTX", name);
  }
  if (out.empty()) ANVIL_THROW(ErrorCode::kRuntimeError, "nvrtc: ", name, " compiled for ", arch, " to nothing");
  return out;
}

}  // namespace

bool nvrtcAvailable() { return nvrtc().missing.empty(); }

std::string nvrtcVersion() {
  const Nvrtc& n = nvrtc();
  int major = 0, minor = 0;
  if (!n.missing.empty() || n.version(&major, &minor) != NVRTC_SUCCESS) return "";
  return std::to_string(major) + "." + std::to_string(minor);
}

NvrtcOutput compileCuda(const std::string& source, const std::string& name, int cc) {
  if (cc < 10) ANVIL_THROW(ErrorCode::kInvalidArgument, "nvrtc: compute capability ", cc, " (want major * 10 + minor)");
  const Nvrtc& n = loaded();
  const std::string v = std::to_string(cc);
  NvrtcOutput out;
  out.cubin = compileOnce(n, source, name, "sm_" + v, true, &out.log);
  out.ptx = compileOnce(n, source, name, "compute_" + v, false, &out.log);
  return out;
}

}  // namespace anvil::cuda::jit
