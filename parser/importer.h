// The importer seam: one importer per ONNX op and opset range turns a NodeProto (already
// decoded into inputs and attributes) into IR nodes. Most ops use the generic importer,
// which copies the node; older opsets are upgraded to the newest form here, so kernels
// and passes see one semantics per op.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace anvil::parser {

class ImportContext {
 public:
  ImportContext(ir::Graph& graph, std::string op, std::string domain, std::string name, int opset,
                std::vector<ir::Value*> inputs, ir::Attributes attrs, std::vector<std::string> outputs)
      : graph_(graph), op_(std::move(op)), domain_(std::move(domain)), name_(std::move(name)),
        opset_(opset), inputs_(std::move(inputs)), attrs_(std::move(attrs)), outputs_(std::move(outputs)) {}

  ir::Graph& graph() { return graph_; }
  const std::string& op() const { return op_; }
  const std::string& name() const { return name_; }
  int opset() const { return opset_; }
  std::vector<ir::Value*>& inputs() { return inputs_; }
  ir::Value* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  ir::Attributes& attrs() { return attrs_; }
  const std::vector<std::string>& outputs() const { return outputs_; }

  // Emits the node as decoded (op, inputs, attributes, outputs), or under another op name.
  ir::Node* emitAsIs();
  ir::Node* emit(const std::string& op, const std::vector<ir::Value*>& inputs, ir::Attributes attrs,
                 const std::vector<std::string>& outputs, const std::string& domain = "");
  // Adds an initializer named after the node, for attributes that became inputs.
  ir::Value* addConstant(const std::string& suffix, ir::Tensor t);
  // Moves an ints attribute into input `index` as an i64 tensor (e.g. Squeeze axes,
  // opset < 13); inputs in between are padded with "absent". No-op if the attr is absent.
  void moveIntsAttrToInput(const std::string& attr, size_t index);
  // Throws kUnsupported / kInvalidModel naming the node.
  [[noreturn]] void fail(const std::string& message, bool unsupported = true) const;

 private:
  ir::Graph& graph_;
  std::string op_, domain_, name_;
  int opset_;
  std::vector<ir::Value*> inputs_;
  ir::Attributes attrs_;
  std::vector<std::string> outputs_;
};

using ImportFn = std::function<void(ImportContext&)>;

struct Importer {
  std::string op;
  std::string domain;  // "" = ai.onnx
  int sinceVersion;    // first model opset this importer handles
  int untilVersion;    // last model opset (inclusive)
  ImportFn fn;         // null = generic (emitAsIs)
};

class ImporterRegistry {
 public:
  static ImporterRegistry& instance();
  void add(Importer imp);
  // Generic importer over [since, until].
  void generic(const std::string& op, int since, int until = 22) { add({op, "", since, until, nullptr}); }
  // The importer for op at a model opset, or null; `why` says what is wrong when null.
  const Importer* find(const std::string& op, const std::string& domain, int opset, std::string* why) const;
  const std::vector<Importer>& all() const { return importers_; }

 private:
  std::vector<Importer> importers_;
};

namespace importers {
void registerElementwiseImporters(ImporterRegistry& r);
void registerReduceImporters(ImporterRegistry& r);
void registerNnImporters(ImporterRegistry& r);
void registerTensorImporters(ImporterRegistry& r);
void registerControlImporters(ImporterRegistry& r);

inline constexpr void (*kFamilies[])(ImporterRegistry&) = {
    registerElementwiseImporters, registerReduceImporters, registerNnImporters,
    registerTensorImporters,      registerControlImporters,
};
}  // namespace importers

}  // namespace anvil::parser
