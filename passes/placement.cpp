// Placement: puts every node and every value (inputs, initializers, results, in subgraphs
// too) on the PassContext's target device, and gives float compute nodes an explicit f32
// precision when the precision configuration allows nothing else. The pattern for the
// layout and precision passes to come: a decision recorded as IR metadata, read by codegen.
//
// A precision already set (by the user or an earlier pass) is kept, and so is a node with
// a per-layer override, which is the precision pass's to resolve. Data-movement, shape and
// control-flow nodes compute nothing and keep "as the types say" (kUndefined), as do nodes
// whose float values are not all f32 (an f16 or f64 model computes in its own types).
#include "ir/op_schema.h"
#include "passes/passes.h"

namespace anvil::passes {

namespace {

// Whether `n` does float arithmetic entirely in f32: it computes (not a movement, shape,
// no-op or control-flow op) and every float value it reads or writes is f32, at least one.
bool computesInF32(const ir::Node& n) {
  const ir::OpSchema* s = n.schema();
  if (!s || s->has(ir::kTraitMovement) || s->has(ir::kTraitShapeOnly) || s->has(ir::kTraitNoop) ||
      s->has(ir::kTraitControlFlow))
    return false;
  bool anyF32 = false;
  auto see = [&](const ir::Value* v) {
    if (!v || !ir::isFloat(v->dtype())) return true;
    anyF32 = true;
    return v->dtype() == ir::DataType::kF32;
  };
  for (const ir::Value* v : n.inputs())
    if (!see(v)) return false;
  for (const ir::Value* v : n.outputs())
    if (!see(v)) return false;
  return anyF32;
}

struct Counts {
  int nodesMoved = 0, valuesMoved = 0, precisions = 0;
};

void place(ir::Graph& g, const PassContext& ctx, bool defaultF32, Counts& c) {
  for (const auto& v : g.values()) {
    if (v->device() == ctx.device) continue;
    v->setDevice(ctx.device);
    ++c.valuesMoved;
  }
  for (const auto& np : g.nodes()) {
    ir::Node& n = *np;
    if (n.device() != ctx.device) {
      n.setDevice(ctx.device);
      ++c.nodesMoved;
    }
    if (defaultF32 && n.precision() == ir::DataType::kUndefined && !ctx.precision.overrides.count(n.name()) &&
        computesInF32(n)) {
      n.setPrecision(ir::DataType::kF32);
      ++c.precisions;
    }
    for (const auto& [name, a] : n.attrs().all()) {
      (void)name;
      if (auto* sub = std::get_if<std::shared_ptr<ir::Graph>>(&a.value); sub && *sub) place(**sub, ctx, defaultF32, c);
      if (auto* subs = std::get_if<std::vector<std::shared_ptr<ir::Graph>>>(&a.value))
        for (const auto& s : *subs)
          if (s) place(*s, ctx, defaultF32, c);
    }
  }
}

}  // namespace

PassResult placeAndDefaultPrecision(ir::Graph& g, const PassContext& ctx) {
  Counts c;
  place(g, ctx, ctx.precision.onlyF32(), c);
  PassResult r;
  r.changed = c.nodesMoved + c.precisions;
  r.stats = std::string("on ") + ir::deviceName(ctx.device) + ": " + std::to_string(c.nodesMoved) + " nodes and " +
            std::to_string(c.valuesMoved) + " values moved, " + std::to_string(c.precisions) + " nodes set to f32";
  return r;
}

}  // namespace anvil::passes
