// The CPU description the timing cache keys on (cpu/tactics.h).
#include "cpu/tactics.h"

#include <unistd.h>

#include <fstream>
#include <cstdlib>
#include <thread>

#include "runtime/kernel.h"

namespace anvil::cpu {

std::string cpuSignature() {
  std::string model = "unknown-cpu";
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  return model + "|" + runtime::hostCpuIsa() + "|" + std::to_string(std::thread::hardware_concurrency()) + "cores";
}

int64_t l2CacheBytes() {
  for (int i = 0; i < 8; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::ifstream level(dir + "level"), size(dir + "size");
    int lv = 0;
    std::string sz;
    if (!(level >> lv) || !(size >> sz) || lv != 2 || sz.empty()) continue;
    int64_t n = std::atoll(sz.c_str());
    if (sz.back() == 'K') n <<= 10;
    if (sz.back() == 'M') n <<= 20;
    if (n > 0) return n;
  }
#ifdef _SC_LEVEL2_CACHE_SIZE
  if (const long n = sysconf(_SC_LEVEL2_CACHE_SIZE); n > 0) return n;
#endif
  return int64_t(1) << 20;
}

}  // namespace anvil::cpu
