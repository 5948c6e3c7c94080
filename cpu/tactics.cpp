// The CPU description the timing cache keys on (cpu/tactics.h).
#include "cpu/tactics.h"

#include <fstream>
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

}  // namespace anvil::cpu
