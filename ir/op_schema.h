// The op table: every op anvil knows, once, with its arity, traits and shape/type
// inference. Passes ask traits, not names. Families register in ir/ops/*.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace anvil::ir {

enum OpTrait : uint32_t {
  kTraitNone = 0,
  kTraitElementwise = 1u << 0,   // output[i] depends only on input[i] (after broadcast)
  kTraitBroadcast = 1u << 1,     // numpy multidirectional broadcasting of inputs
  kTraitCommutative = 1u << 2,   // binary op with f(a,b) == f(b,a)
  kTraitReduction = 1u << 3,     // reduces over axes
  kTraitMovement = 1u << 4,      // moves or copies data without arithmetic
  kTraitShapeOnly = 1u << 5,     // output depends on input shapes only (Shape, Size)
  kTraitControlFlow = 1u << 6,   // has subgraphs (If, Loop, Scan)
  kTraitRandom = 1u << 7,        // nondeterministic: never constant-folded or CSE'd
  kTraitLinear = 1u << 8,        // Conv/Gemm/MatMul-like: weights times activations
  kTraitNormalization = 1u << 9, // BatchNorm, LayerNorm, ...
  kTraitQuantization = 1u << 10, // quantize/dequantize and integer linear ops
  kTraitFused = 1u << 11,        // anvil-domain op made by a fusion pass
  kTraitNoop = 1u << 12,         // Identity-like at inference (Identity, Dropout)
};

class InferContext;
using InferFn = std::function<void(InferContext&)>;

struct OpSchema {
  std::string name;
  std::string domain;  // "" = ai.onnx, "anvil" = ours
  int minInputs = 0, maxInputs = 0;    // maxInputs -1: variadic
  int minOutputs = 1, maxOutputs = 1;  // maxOutputs -1: variadic
  uint32_t traits = kTraitNone;
  InferFn infer;  // sets every output's type; may leave dims unknown
  std::string summary;

  bool has(OpTrait t) const { return (traits & t) != 0; }
};

class OpRegistry {
 public:
  static OpRegistry& instance();  // filled on first use by every family
  void add(OpSchema schema);
  const OpSchema* find(const std::string& name, const std::string& domain = "") const;
  std::vector<const OpSchema*> all() const;  // sorted by domain, then name

 private:
  std::map<std::pair<std::string, std::string>, OpSchema> ops_;
};

// What inference sees of one node: input types, input data where it is known at build
// time (initializers, constants, folded shape values), and symbolic shape values.
class InferContext {
 public:
  InferContext(const Node& node, std::vector<const TensorType*> inputTypes,
               std::vector<const Tensor*> inputValues,
               std::vector<const std::vector<Dim>*> inputShapeValues)
      : node_(node),
        inTypes_(std::move(inputTypes)),
        inValues_(std::move(inputValues)),
        inShapeValues_(std::move(inputShapeValues)),
        outTypes_(node.numOutputs()),
        outShapeValues_(node.numOutputs()),
        outValues_(node.numOutputs()) {}

  const Node& node() const { return node_; }
  const Attributes& attrs() const { return node_.attrs(); }
  size_t numInputs() const { return inTypes_.size(); }
  size_t numOutputs() const { return outTypes_.size(); }
  bool hasInput(size_t i) const { return i < inTypes_.size() && inTypes_[i] != nullptr; }
  // Type of input i; throws naming the node if the input is absent.
  const TensorType& inputType(size_t i) const;
  DataType inputDtype(size_t i) const { return inputType(i).dtype; }
  const Shape& inputShape(size_t i) const { return inputType(i).shape; }
  // Data of input i when known at build time, else null.
  const Tensor* inputValue(size_t i) const { return i < inValues_.size() ? inValues_[i] : nullptr; }
  // For a 0-D/1-D integer input computed from shapes (Shape -> Gather -> Concat ...), its
  // elements as dims (possibly symbolic), else null.
  const std::vector<Dim>* inputShapeValue(size_t i) const {
    return i < inShapeValues_.size() ? inShapeValues_[i] : nullptr;
  }

  void setOutput(size_t i, TensorType t) { outTypes_.at(i) = std::move(t); }
  void setOutput(size_t i, DataType dt, Shape s) { outTypes_.at(i) = TensorType{dt, std::move(s)}; }
  void setOutputShapeValue(size_t i, std::vector<Dim> v) { outShapeValues_.at(i) = std::move(v); }
  // Build-time data of output i (Constant, or a cheap fold of known inputs).
  void setOutputValue(size_t i, Tensor t) { outValues_.at(i) = std::move(t); }
  const std::vector<std::optional<Tensor>>& outputValues() const { return outValues_; }
  const std::vector<TensorType>& outputs() const { return outTypes_; }
  const std::vector<std::optional<std::vector<Dim>>>& outputShapeValues() const { return outShapeValues_; }

  // Throws kShapeMismatch with the node's label and the message.
  [[noreturn]] void fail(const std::string& message) const;
  // Throws kInvalidModel naming the node when `cond` is false.
  void check(bool cond, const std::string& message) const {
    if (!cond) fail(message);
  }

 private:
  const Node& node_;
  std::vector<const TensorType*> inTypes_;
  std::vector<const Tensor*> inValues_;
  std::vector<const std::vector<Dim>*> inShapeValues_;
  std::vector<TensorType> outTypes_;
  std::vector<std::optional<std::vector<Dim>>> outShapeValues_;
  std::vector<std::optional<Tensor>> outValues_;
};

// Runs inference over a graph (and its subgraphs) in node order, writing every value's
// type. Known data flows from initializers and Constant nodes; symbolic shape values
// flow through Shape/Gather/Slice/Concat/Unsqueeze/Squeeze/Cast. Throws naming the node.
void inferShapes(Graph& graph);

// Helpers shared by inference functions.
int64_t normalizeAxis(int64_t axis, int64_t rank, const InferContext& ctx);  // checks range
// Same dtype and broadcast shape of all inputs (skipping omitted ones).
void inferBroadcast(InferContext& ctx, DataType outType);
// Output 0 = input 0's type.
void inferSameAsInput(InferContext& ctx);

}  // namespace anvil::ir
