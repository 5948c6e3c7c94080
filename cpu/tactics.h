// CPU tactics: every implementation of an op is a tactic with a name that says what it is
// (type, op, blocking, ISA), a supports() predicate on the concrete node and input types,
// and a run function with the reference-kernel signature. The reference kernel of every
// op is the tactic "ref". The builder times the supported candidates and keeps the
// fastest; the engine stores the chosen name.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "ir/shape.h"

namespace anvil::cpu {

struct Tactic {
  std::string name;    // e.g. "f32_gemm_blocked_8x8__avx2"
  std::string op;      // op type it implements
  std::string domain;  // "" = ai.onnx
  std::string isa;     // CPU feature it needs: "", "avx2", "avx512f" (checked at build and load)
  // Whether this tactic handles the node with these input types (static shapes).
  std::function<bool(const ir::Node&, const std::vector<ir::TensorType>&)> supports;
  RefKernel run;
};

class TacticRegistry {
 public:
  static TacticRegistry& instance();  // filled on first use (cpu/tactics/*.cpp)
  void add(Tactic t);
  // "ref" first, then every registered tactic that supports the node on this CPU.
  std::vector<const Tactic*> candidates(const ir::Node& node, const std::vector<ir::TensorType>& inputs) const;
  // By name; "ref" is the reference kernel. Null if unknown.
  const Tactic* find(const std::string& op, const std::string& domain, const std::string& name) const;
  std::vector<const Tactic*> all() const;

 private:
  std::vector<std::unique_ptr<Tactic>> tactics_;
  mutable std::map<std::pair<std::string, std::string>, std::unique_ptr<Tactic>> refs_;
  mutable std::mutex mu_;
};

// Whether the running CPU has a feature ("avx2", "fma", "avx512f", ...); "" is always true.
bool cpuHas(const std::string& isa);
// The running CPU's ISA level as stored in engines: "x86-64" plus features, e.g.
// "x86-64+avx2+fma+avx512f".
std::string cpuIsaLevel();
// A stable description of this CPU for timing-cache keys (model name, features, cores).
std::string cpuSignature();

namespace tactics {
}  // namespace tactics

}  // namespace anvil::cpu
