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

 private:
  friend class Graph;
  friend class Node;
  std::string name_;
  TensorType type_;
  Node* producer_ = nullptr;
  std::optional<Tensor> initializer_;
  Graph* owner_ = nullptr;
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

 private:
  friend class Graph;
  std::string op_, domain_, name_;
  std::vector<Value*> inputs_;
  std::vector<Value*> outputs_;
  Attributes attrs_;
  const OpSchema* schema_ = nullptr;
  Graph* owner_ = nullptr;
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
