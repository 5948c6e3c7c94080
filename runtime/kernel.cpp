// The backend-neutral kernel registry and host-feature checks (runtime/kernel.h).
#include "runtime/kernel.h"

#include <algorithm>
#include <cstdlib>
#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <fstream>
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace anvil::runtime {

void TensorView::setExtents(const std::vector<int64_t>& e) {
  ANVIL_CHECK(e.size() <= size_t(kMaxRank), ErrorCode::kUnsupported, "tensors of rank ", e.size(),
              " exceed the runtime's limit of ", kMaxRank);
  rank = int32_t(e.size());
  std::copy(e.begin(), e.end(), dims);
}

void StepArgs::fail(const std::string& message) const {
  ANVIL_THROW(ErrorCode::kRuntimeError, node ? node->label() : std::string("step"), ": ", message);
}

void Kernels::add(Kernel k) {
  ANVIL_CHECK(k.run != nullptr, ErrorCode::kInternal, "kernel ", k.name, " for ", k.op, " has no run function");
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& o : kernels_)
    ANVIL_CHECK(!(o->device == k.device && o->name == k.name && o->op == k.op && o->domain == k.domain),
                ErrorCode::kInternal, "kernel ", k.name, " registered twice for ", k.op);
  kernels_.push_back(std::make_unique<Kernel>(std::move(k)));
}

std::vector<const Kernel*> Kernels::forNode(Device device, const ir::Node& node) const {
  std::vector<const Kernel*> out;
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& k : kernels_)
    if (k->device == device && k->op == node.op() && k->domain == node.domain() && k->name == "ref")
      out.push_back(k.get());
  for (const auto& k : kernels_)
    if (k->device == device && k->op == node.op() && k->domain == node.domain() && k->name != "ref" &&
        (device == Device::kCUDA || hostHasAll(k->requirements)))
      out.push_back(k.get());
  return out;
}

const Kernel* Kernels::find(Device device, const std::string& op, const std::string& domain,
                            const std::string& name) const {
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& k : kernels_)
    if (k->device == device && k->op == op && k->domain == domain && k->name == name) return k.get();
  return nullptr;
}

std::vector<const Kernel*> Kernels::all() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<const Kernel*> out;
  for (const auto& k : kernels_) out.push_back(k.get());
  return out;
}

namespace {

// ANVIL_MAX_ISA caps the CPU features the runtime admits to, the way oneDNN's
// ONEDNN_MAX_CPU_ISA does: "avx2" hides every AVX-512 feature (the kernels an AVX2-only
// machine would build and run, measurable on an AVX-512 one), "x86-64" hides AVX2 and FMA
// too, "avx512" hides AMX (the kernels of an AVX-512 VNNI machine without tiles). Unset or
// "native": everything the CPU has. Read once.
int maxIsaLevel() {
  static const int level = [] {
    const char* v = std::getenv("ANVIL_MAX_ISA");
    const std::string s = v ? v : "";
    if (s == "x86-64" || s == "sse" || s == "sse4.2" || s == "portable") return 0;
    if (s == "avx2") return 1;
    if (s == "avx512" || s == "avx512vnni") return 2;
    return 3;
  }();
  return level;
}

// AMX-INT8: CPUID.(EAX=7,ECX=0):EDX bits 24 (AMX-TILE) and 25 (AMX-INT8), and the kernel's
// leave to use the tile data state, asked once per process (Linux grants it to the whole
// process; without the request the first tile instruction faults).
bool amxInt8Usable() {
  static const bool ok = [] {
#if defined(__linux__) && defined(__x86_64__)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1u) || !((d >> 25) & 1u)) return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
#else
    return false;
#endif
  }();
  return ok;
}

}  // namespace

bool hostHas(const std::string& r) {
  if (r.empty()) return true;
#if defined(__x86_64__)
  __builtin_cpu_init();
  const int cap = maxIsaLevel();
  const bool avx512 = r.rfind("avx512", 0) == 0;
  if ((avx512 && cap < 2) || ((r == "avx2" || r == "fma" || r == "f16c" || r == "avxvnni") && cap < 1)) return false;
  if (r == "avx2") return __builtin_cpu_supports("avx2");
  if (r == "fma") return __builtin_cpu_supports("fma");
  if (r == "f16c") return __builtin_cpu_supports("f16c");
  if (r == "avxvnni") {  // CPUID.(EAX=7,ECX=1):EAX[4]; older compilers' cpu_supports lack it
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 4) & 1u);
  }
  if (r == "avx512f") return __builtin_cpu_supports("avx512f");
  if (r == "avx512bw") return __builtin_cpu_supports("avx512bw");
  if (r == "avx512vl") return __builtin_cpu_supports("avx512vl");
  if (r == "avx512vnni") return __builtin_cpu_supports("avx512vnni");
  if (r == "avx512bf16") return __builtin_cpu_supports("avx512bf16");
  if (r == "amxint8") return cap >= 3 && amxInt8Usable();
#endif
  // "sm_XY" (a CUDA compute capability) is met only where the CUDA backend is present and
  // finds such a device; the lean CPU runtime has none.
  return false;
}

bool hostHasAll(const std::vector<std::string>& rs) { return firstMissing(rs).empty(); }

bool cudaTargetMeets(const std::vector<std::string>& rs, int cc) {
  for (const std::string& r : rs) {
    if (r.size() < 4 || r.compare(0, 3, "sm_") != 0) return false;
    int need = 0;
    for (size_t i = 3; i < r.size(); ++i) {
      if (r[i] < '0' || r[i] > '9') return false;
      need = need * 10 + (r[i] - '0');
    }
    if (cc < need) return false;
  }
  return true;
}

std::string firstMissing(const std::vector<std::string>& rs) {
  for (const auto& r : rs)
    if (!hostHas(r)) return r;
  return "";
}

std::string hostCpuIsa() {
  std::string s = "x86-64";
  for (const char* f : {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vnni", "amxint8"})
    if (hostHas(f)) s += std::string("+") + f;
  return s;
}

}  // namespace anvil::runtime
