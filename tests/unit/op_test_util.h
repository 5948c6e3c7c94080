// Shared by the op-family tests: a graph of one node over declared inputs (runtime
// inputs, initializers, or omitted), after shape inference.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/op_schema.h"

namespace anvil::testing {

struct In {
  std::string name;            // "" = an omitted optional input
  ir::TensorType type;
  std::optional<ir::Tensor> init;  // an initializer (known at build time)
};

// Node "n0" of op `op` over `ins`, with outputs y0..y{nout-1} as graph outputs.
inline std::unique_ptr<ir::Graph> oneNode(const std::string& op, const std::vector<In>& ins,
                                          const ir::Attributes& attrs = {}, int nout = 1) {
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (const In& i : ins) {
    if (i.name.empty()) {
      vs.push_back(nullptr);
      continue;
    }
    ir::Value* v = i.init ? g->addInitializer(i.name, *i.init) : g->addValue(i.name, i.type);
    if (!i.init) g->addInput(v);
    vs.push_back(v);
  }
  std::vector<std::string> outs;
  for (int k = 0; k < nout; ++k) outs.push_back("y" + std::to_string(k));
  ir::Node* n = g->addNode(op, "", "n0", vs, outs);
  n->attrs() = attrs;
  for (ir::Value* o : n->outputs()) g->addOutput(o);
  ir::inferShapes(*g);
  return g;
}

}  // namespace anvil::testing
