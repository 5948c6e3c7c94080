// Tactic registry, the implicit "ref" tactic of every op, and CPU feature detection.
#include "cpu/tactics.h"
#include "runtime/kernel.h"

#include <fstream>
#include <thread>

namespace anvil::cpu {

TacticRegistry& TacticRegistry::instance() {
  static TacticRegistry* registry = [] {
    auto* r = new TacticRegistry();
    // Every fast implementation is a native kernel now (cpu/tactics/native*.cpp, registered
    // in runtime::Kernels); this registry stays for KernelContext tactics still to come.
    return r;
  }();
  return *registry;
}

void TacticRegistry::add(Tactic t) {
  ANVIL_CHECK(t.name != "ref", ErrorCode::kInternal, "tactic name 'ref' is reserved");
  for (const auto& o : tactics_)
    ANVIL_CHECK(!(o->name == t.name && o->op == t.op && o->domain == t.domain), ErrorCode::kInternal, "tactic ",
                t.name, " registered twice for ", t.op);
  tactics_.push_back(std::make_unique<Tactic>(std::move(t)));
}

const Tactic* TacticRegistry::find(const std::string& op, const std::string& domain, const std::string& name) const {
  if (name == "ref") {
    const RefKernel* k = KernelRegistry::instance().find(op, domain);
    if (!k) return nullptr;
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = refs_[{op, domain}];
    if (!slot) {
      slot = std::make_unique<Tactic>();
      slot->name = "ref";
      slot->op = op;
      slot->domain = domain;
      slot->supports = [](const ir::Node&, const std::vector<ir::TensorType>&) { return true; };
      slot->run = *k;
    }
    return slot.get();
  }
  for (const auto& t : tactics_)
    if (t->name == name && t->op == op && t->domain == domain) return t.get();
  return nullptr;
}

std::vector<const Tactic*> TacticRegistry::candidates(const ir::Node& node,
                                                      const std::vector<ir::TensorType>& inputs) const {
  std::vector<const Tactic*> out;
  if (const Tactic* ref = find(node.op(), node.domain(), "ref")) out.push_back(ref);
  for (const auto& t : tactics_)
    if (t->op == node.op() && t->domain == node.domain() && cpuHas(t->isa) && t->supports(node, inputs))
      out.push_back(t.get());
  return out;
}

std::vector<const Tactic*> TacticRegistry::all() const {
  std::vector<const Tactic*> out;
  for (const auto& t : tactics_) out.push_back(t.get());
  return out;
}

bool cpuHas(const std::string& isa) { return runtime::hostHas(isa); }  // ANVIL_MAX_ISA applies

std::string cpuIsaLevel() {
  std::string s = "x86-64";
  for (const char* f : {"avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vnni"})
    if (cpuHas(f)) s += std::string("+") + f;
  return s;
}

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
  return model + "|" + cpuIsaLevel() + "|" + std::to_string(std::thread::hardware_concurrency()) + "cores";
}

}  // namespace anvil::cpu
