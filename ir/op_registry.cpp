// The op table and the graph-wide shape/type inference driver.
#include <algorithm>
#include <unordered_map>

#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace anvil::ir {

OpRegistry& OpRegistry::instance() {
  static OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    for (auto fn : ops::kFamilies) fn(*r);
    return r;
  }();
  return *registry;
}

void OpRegistry::add(OpSchema schema) {
  auto key = std::make_pair(schema.name, schema.domain);
  ANVIL_CHECK(ops_.count(key) == 0, ErrorCode::kInternal, "op ", schema.name, " registered twice");
  ops_.emplace(key, std::move(schema));
}

const OpSchema* OpRegistry::find(const std::string& name, const std::string& domain) const {
  auto it = ops_.find({name, domain == "ai.onnx" ? "" : domain});
  return it == ops_.end() ? nullptr : &it->second;
}

std::vector<const OpSchema*> OpRegistry::all() const {
  std::vector<const OpSchema*> out;
  for (const auto& [key, s] : ops_) out.push_back(&s);
  std::sort(out.begin(), out.end(), [](const OpSchema* a, const OpSchema* b) {
    return std::tie(a->domain, a->name) < std::tie(b->domain, b->name);
  });
  return out;
}

const TensorType& InferContext::inputType(size_t i) const {
  if (!hasInput(i)) fail("input " + std::to_string(i) + " is required but absent");
  return *inTypes_[i];
}

void InferContext::fail(const std::string& message) const {
  ANVIL_THROW(ErrorCode::kShapeMismatch, node_.label(), ": ", message);
}

int64_t normalizeAxis(int64_t axis, int64_t rank, const InferContext& ctx) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    ctx.fail("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

void inferBroadcast(InferContext& ctx, DataType outType) {
  Shape s;
  bool first = true;
  for (size_t i = 0; i < ctx.numInputs(); ++i) {
    if (!ctx.hasInput(i)) continue;
    try {
      s = first ? ctx.inputShape(i) : broadcastShapes(s, ctx.inputShape(i));
    } catch (const Error& e) {
      ctx.fail(e.what());
    }
    first = false;
  }
  ctx.setOutput(0, outType, s);
}

void inferSameAsInput(InferContext& ctx) { ctx.setOutput(0, ctx.inputType(0)); }

namespace {

struct InferState {
  std::unordered_map<const Value*, Tensor> values;
  std::unordered_map<const Value*, std::vector<Dim>> shapeValues;
};

void inferGraph(Graph& graph, InferState& st) {
  for (Value* v : graph.initializers()) st.values[v] = *v->initializer();
  for (const auto& nodePtr : graph.nodes()) {
    Node& node = *nodePtr;
    const OpSchema* schema = node.schema();
    ANVIL_CHECK(schema != nullptr, ErrorCode::kUnsupported, node.label(), ": op is not supported");
    const int nin = int(node.numInputs()), nout = int(node.numOutputs());
    if (nin < schema->minInputs || (schema->maxInputs >= 0 && nin > schema->maxInputs))
      ANVIL_THROW(ErrorCode::kInvalidModel, node.label(), ": has ", nin, " inputs, expected ",
                  schema->minInputs, "..", schema->maxInputs);
    if (nout < schema->minOutputs || (schema->maxOutputs >= 0 && nout > schema->maxOutputs))
      ANVIL_THROW(ErrorCode::kInvalidModel, node.label(), ": has ", nout, " outputs, expected ",
                  schema->minOutputs, "..", schema->maxOutputs);
    std::vector<const TensorType*> types;
    std::vector<TensorType> expressed(node.inputs().size());  // lowered inputs: as floats
    std::vector<const Tensor*> values;
    std::vector<const std::vector<Dim>*> shapeValues;
    for (Value* in : node.inputs()) {
      if (!in) {
        types.push_back(nullptr);
        values.push_back(nullptr);
        shapeValues.push_back(nullptr);
        continue;
      }
      ANVIL_CHECK(in->dtype() != DataType::kUndefined, ErrorCode::kInvalidModel, node.label(),
                  ": input '", in->name(), "' has no known type (is it produced anywhere?)");
      if (in->isLowered()) {
        expressed[types.size()] = in->expressedType();
        types.push_back(&expressed[types.size()]);
      } else {
        types.push_back(&in->type());
      }
      auto vit = st.values.find(in);
      values.push_back(vit == st.values.end() ? nullptr : &vit->second);
      auto sit = st.shapeValues.find(in);
      shapeValues.push_back(sit == st.shapeValues.end() ? nullptr : &sit->second);
    }
    InferContext ctx(node, types, values, shapeValues);
    if (!schema->infer)
      ANVIL_THROW(ErrorCode::kInternal, node.label(), ": op has no shape inference");
    try {
      schema->infer(ctx);
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.find(node.label()) == std::string::npos) msg = node.label() + ": " + msg;
      throw Error(e.code(), msg);
    }
    for (size_t i = 0; i < node.numOutputs(); ++i) {
      Value* out = node.output(i);
      const TensorType& t = ctx.outputs()[i];
      // Keep a declared type (ONNX value_info) where inference learned less.
      bool keep = (t.dtype == DataType::kUndefined && out->dtype() != DataType::kUndefined) ||
                  (!t.shape.rankKnown() && out->shape().rankKnown() && t.dtype == out->dtype());
      // A lowered output keeps its storage type where the op infers the expressed one.
      if (out->isLowered() && isFloat(t.dtype)) keep = true, out->setType({out->dtype(), t.shape});
      if (!keep) out->setType(t);
      if (ctx.outputValues()[i]) st.values[out] = *ctx.outputValues()[i];
      if (ctx.outputShapeValues()[i]) st.shapeValues[out] = *ctx.outputShapeValues()[i];
    }
  }
}

}  // namespace

void inferShapes(Graph& graph) {
  InferState st;
  inferGraph(graph, st);
}

}  // namespace anvil::ir
