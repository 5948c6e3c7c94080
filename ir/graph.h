// The IR: values, nodes with attributes, graphs (with initializers and subgraphs) and
// the model around them. Nodes carry ONNX semantics of the newest opset anvil knows
// (importers upgrade older forms) or anvil's own ops in the "anvil" domain.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "ir/layout.h"
#include "ir/shape.h"
#include "ir/tensor.h"

namespace anvil::ir {

class Graph;
class Node;
struct OpSchema;

struct Attribute {
  enum class Kind { kInt, kFloat, kString, kInts, kFloats, kStrings, kTensor, kGraph, kGraphs };
  using Storage = std::variant<int64_t, float, std::string, std::vector<int64_t>, std::vector<float>,
                               std::vector<std::string>, Tensor, std::shared_ptr<Graph>,
                               std::vector<std::shared_ptr<Graph>>>;
  Storage value;

  Kind kind() const { return Kind(value.index()); }
  static const char* kindName(Kind k);
};

class Attributes {
 public:
  bool has(const std::string& name) const { return map_.count(name) != 0; }
  const Attribute* find(const std::string& name) const;
  void set(const std::string& name, Attribute::Storage v) { map_[name] = Attribute{std::move(v)}; }
  void erase(const std::string& name) { map_.erase(name); }
  const std::map<std::string, Attribute>& all() const { return map_; }
  bool empty() const { return map_.empty(); }

  // Typed getters: the value if present (throwing on a wrong kind), else the default.
  int64_t getInt(const std::string& name, int64_t def) const;
  float getFloat(const std::string& name, float def) const;
  std::string getString(const std::string& name, const std::string& def) const;
  std::vector<int64_t> getInts(const std::string& name, std::vector<int64_t> def = {}) const;
  std::vector<float> getFloats(const std::string& name, std::vector<float> def = {}) const;
  std::vector<std::string> getStrings(const std::string& name, std::vector<std::string> def = {}) const;
  const Tensor* getTensor(const std::string& name) const;
  const Graph* getGraph(const std::string& name) const;
  // Required variants throw kInvalidModel naming the attribute when it is missing.
  int64_t requireInt(const std::string& name) const;
  const Graph& requireGraph(const std::string& name) const;

 private:
  std::map<std::string, Attribute> map_;
};

// Affine quantization of a value: real = scale * (q - zeroPoint). Per tensor when `axis`
// is unset (scale a scalar), per axis when set (scale 1-D, one entry per index of that
// axis of the value). The value's dtype is the quantized type (i8, u8, ...) once a
// precision pass lowered it; before that it may be a float value annotated with the
// parameters calibration chose for it.
struct Quantization {
  Tensor scale;                 // f32, f16 or bf16; rank 0 (per tensor) or 1 (per axis)
  Tensor zeroPoint;             // an integer type, scale's shape; undefined: all zero
  std::optional<int64_t> axis;  // the value's axis the scales run along (>= 0)

  bool perTensor() const { return !axis.has_value(); }
  // Bitwise on the tensors (Tensor::sameAs), exact on the axis.
  bool operator==(const Quantization& o) const;
  bool operator!=(const Quantization& o) const { return !(*this == o); }
};

class Value {
 public:
  const std::string& name() const { return name_; }
  void setName(std::string n) { name_ = std::move(n); }
  const TensorType& type() const { return type_; }
  TensorType& type() { return type_; }
  void setType(TensorType t) { type_ = std::move(t); }
  DataType dtype() const { return type_.dtype; }
  const Shape& shape() const { return type_.shape; }

  Node* producer() const { return producer_; }
  // Initializer data, if this value is a graph initializer.
  const Tensor* initializer() const { return initializer_ ? &*initializer_ : nullptr; }
  bool isInitializer() const { return initializer_.has_value(); }
  void setInitializer(Tensor t) { initializer_ = std::move(t); }
  Graph* owner() const { return owner_; }

  // Storage metadata beside the logical type (see ir/layout.h); the defaults (plain, no
  // quantization, CPU) are what every value has before layout/precision/placement passes.
  const Layout& layout() const { return layout_; }
  void setLayout(Layout l) { layout_ = std::move(l); }
  const std::optional<Quantization>& quantization() const { return quant_; }
  void setQuantization(std::optional<Quantization> q) { quant_ = std::move(q); }
  Device device() const { return device_; }
  void setDevice(Device d) { device_ = d; }
  bool hasDefaultMeta() const { return layout_.isPlain() && !quant_ && device_ == Device::kCPU; }
  // Copies layout, quantization and device (not name, type or data): for a pass that
  // re-creates a value standing for the same data.
  void copyMetaFrom(const Value& o) {
    layout_ = o.layout_;
    quant_ = o.quant_;
    device_ = o.device_;
  }
  bool sameMeta(const Value& o) const { return layout_ == o.layout_ && quant_ == o.quant_ && device_ == o.device_; }
  // A lowered value: a precision pass stored it quantized (an integer dtype, not a
  // constant, with its quantization: real = scale * (q - zeroPoint)). Ops and shape
  // inference see its expressed type (the scale's float type, the same shape); kernels see
  // the storage type and read the parameters.
  bool isLowered() const;
  TensorType expressedType() const;

 private:
  friend class Graph;
  friend class Node;
  std::string name_;
  TensorType type_;
  Node* producer_ = nullptr;
  std::optional<Tensor> initializer_;
  Graph* owner_ = nullptr;
  Layout layout_;
  std::optional<Quantization> quant_;
  Device device_ = Device::kCPU;
};

class Node {
 public:
  const std::string& op() const { return op_; }
  const std::string& domain() const { return domain_; }
  const std::string& name() const { return name_; }
  void setName(std::string n) { name_ = std::move(n); }
  // "Conv 'conv1'" — how errors name a node.
  std::string label() const;

  size_t numInputs() const { return inputs_.size(); }
  size_t numOutputs() const { return outputs_.size(); }
  Value* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }  // null: omitted
  Value* output(size_t i) const { return outputs_[i]; }
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  void setInput(size_t i, Value* v);
  void addInput(Value* v) { inputs_.push_back(v); }

  Attributes& attrs() { return attrs_; }
  const Attributes& attrs() const { return attrs_; }
  const OpSchema* schema() const { return schema_; }  // null for ops unknown to the table
  Graph* owner() const { return owner_; }

  // Execution metadata, decided by passes and read by codegen.
  // The precision the node computes in; kUndefined: as its input and output types say.
  DataType precision() const { return precision_; }
  void setPrecision(DataType t) { precision_ = t; }
  Device device() const { return device_; }
  void setDevice(Device d) { device_ = d; }
  // Free-form parameters a pass leaves for codegen (a preferred tile, a packing, ...):
  // named like attributes, never read by inference or the reference kernels.
  Attributes& tacticParams() { return tacticParams_; }
  const Attributes& tacticParams() const { return tacticParams_; }
  bool hasDefaultMeta() const {
    return precision_ == DataType::kUndefined && device_ == Device::kCPU && tacticParams_.empty();
  }
  // Copies precision, device and tactic parameters: for a pass that re-creates a node
  // doing the same computation (not for a fusion, whose tactic parameters no longer fit).
  void copyMetaFrom(const Node& o) {
    precision_ = o.precision_;
    device_ = o.device_;
    tacticParams_ = o.tacticParams_;
  }

 private:
  friend class Graph;
  std::string op_, domain_, name_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  Attributes attrs_;
  const OpSchema* schema_ = nullptr;
  Graph* owner_ = nullptr;
  DataType precision_ = DataType::kUndefined;
  Device device_ = Device::kCPU;
  Attributes tacticParams_;
};

class Graph {
 public:
  explicit Graph(std::string name = "main", Graph* parent = nullptr)
      : name_(std::move(name)), parent_(parent) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  const std::string& name() const { return name_; }
  void setName(std::string n) { name_ = std::move(n); }
  Graph* parent() const { return parent_; }
  void setParent(Graph* p) { parent_ = p; }
  std::string docString;

  // Values. Names are unique within a graph (not enforced across subgraphs).
  Value* addValue(const std::string& name, TensorType type = {});
  Value* addInitializer(const std::string& name, Tensor data);
  Value* findValue(const std::string& name) const;  // this graph only
  // Gives a value of this graph a new name (unique in the graph, not empty).
  void renameValue(Value* v, const std::string& name);
  // Looks up a name here and then in enclosing graphs (ONNX outer-scope rule).
  Value* lookup(const std::string& name) const;

  // Graph inputs (initializers may also be inputs, for ONNX models with defaults).
  const std::vector<Value*>& inputs() const { return inputs_; }
  const std::vector<Value*>& outputs() const { return outputs_; }
  void addInput(Value* v) { inputs_.push_back(v); }
  void addOutput(Value* v) { outputs_.push_back(v); }
  void setOutput(size_t i, Value* v) { outputs_[i] = v; }
  std::vector<Value*> initializers() const;

  // Nodes in topological order; outputs are created with the node.
  Node* addNode(const std::string& op, const std::string& domain, const std::string& name,
                const std::vector<Value*>& inputs, const std::vector<std::string>& outputNames);
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }
  // Removes a node; its outputs stay (now without a producer) until removeUnusedValues().
  void removeNode(Node* n);
  // Replaces every use of `from` (node inputs and graph outputs, here and in subgraphs).
  void replaceAllUses(Value* from, Value* to);
  std::vector<Node*> users(const Value* v) const;  // nodes of this graph and its subgraphs
  void removeUnusedValues();
  // Sorts nodes topologically (stable); throws kInvalidModel on a cycle.
  void topoSort();
  // Nested graphs of every node, depth first.
  std::vector<const Graph*> subgraphs() const;

 private:
  std::string name_;
  Graph* parent_;
  std::vector<std::unique_ptr<Value>> values_;
  std::map<std::string, Value*> byName_;
  std::vector<Value*> inputs_, outputs_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

struct Model {
  std::unique_ptr<Graph> graph = std::make_unique<Graph>();
  int64_t irVersion = 0;
  std::map<std::string, int64_t> opsets;  // domain ("" = ai.onnx) -> version
  std::string producerName, producerVersion, domain, docString;
  int64_t modelVersion = 0;
  std::map<std::string, std::string> metadata;  // metadata_props
};

}  // namespace anvil::ir
