// The IR text printer: a deterministic text form of a Graph or Model that the parser in
// ir/text_parser.h reads back, so pass tests are text in, text out.
//
//   model {ir_version=8, opsets={""=17}}
//   graph @main(%x: f32[N,3], %c: bool[]) -> (%y: f32[N,3]) {
//     %w = const f32[3] [0.5, 1, -2]
//     %big = const f32[64,3] @big
//     %0 = Add(%x, %w) : f32[N,3]
//     %1, %2 = anvil.TestSplit(%0) {axis=1} : f32[N,1], f32[N,2]
//     %y = If(%c) {
//       else_branch=graph @else() -> (%3: f32[N,3]) {
//         %3 = Relu(%0) : f32[N,3]
//       },
//       then_branch=graph @then() -> (%0: f32[N,3]) {
//       }
//     } : f32[N,3]
//   }
//
// Naming rule: graph inputs, graph outputs and initializers keep their own names; every
// other value is numbered %0, %1, ... in order of definition, with one counter for the
// whole printout (so a subgraph's temporaries never collide with its enclosing graph's).
// A name is kept only if it is non-empty, not all digits, and not already kept in an
// enclosing graph (no shadowing); otherwise the value is numbered too. Names outside
// [A-Za-z0-9_.] are quoted: %"onnx::Conv_0".
//
// Layout: an optional `model {field=value, ...}` line (fields sorted, defaults left out),
// then `graph @name(inputs) -> (outputs) [doc="..."] {`, the initializers (`%w = const
// <type> <data>`; a graph input with a default is declared in the header and given its
// `const` line in the body), the nodes in order (`results = [domain.]Op(inputs) {attrs}
// : types [loc("node name")]`), and `}`. Attributes holding graphs put one attribute per
// line, the nested graph indented two more spaces.
//
// Metadata (ir/layout.h; each part printed only when it differs from its default):
//   - a value's, in braces right after its type wherever the type is printed (graph
//     header, node results, `const` lines; a graph input's only in the header): its
//     layout name, `device=`, and the quantization fields `scale=`, `zp=` (tensors, inline
//     or by reference `@<value>.scale` / `@<value>.zp` like any tensor) and `axis=` (per
//     axis only), in that order:
//       %w = const i8[8,4]{packed_gemm_b_16, scale=f32[] [0.05], zp=i8[] [0]} @w
//       %3 = Conv(%x, %w) : f32[1,8,4,4]{NCHW8c, device=cuda}
//     An unknown type with metadata prints as `?{NCHW8c}`.
//   - a node's, after its attributes and before `:`, as `@precision=<dtype>`,
//     `@device=<cpu|cuda>` and `@tactic={name=value, ...}` (attribute syntax, no graphs):
//       %3 = Conv(%x, %w) {pads=[1, 1, 1, 1]} @precision=f16 @device=cuda @tactic={tile=8} : f16[1,8,4,4]
//
// Everything else is canonical too: attributes sorted by name; floats printed with
// round-trip precision (%.9g, %.17g for f64) and always with a '.', 'e', inf or nan so
// they read back as floats; strings quoted with C escapes; empty lists tagged with their
// kind (ints[], floats[], strings[], graphs[]); omitted optional inputs as `none`;
// unknown dims `?`, unknown rank `[*]`, unknown element type `?`; a node's output types
// are left out when none is known. Initializers and tensor attributes with at most
// `inlineLimit` elements are printed inline (flat, row-major); larger ones by reference
// `@name` (initializers: their own name; tensor attributes: "<first output>.<attr>"), and
// the referenced tensors can be collected for the parser's weight resolver.
#pragma once

#include <map>
#include <string>

#include "ir/graph.h"

namespace anvil::ir {

struct PrintOptions {
  int64_t inlineLimit = 16;  // tensors with at most this many elements are printed inline
  bool inlineAll = false;    // print every tensor inline, whatever its size
  bool nodeNames = false;    // print node names as a trailing loc("name")
  bool keepAllNames = false; // keep every value's own name where legal (debugging), not just
                             // inputs, outputs and initializers
};

// Tensors printed by reference (@name), by that name.
using WeightMap = std::map<std::string, Tensor>;

std::string printGraph(const Graph& graph, const PrintOptions& options = {});
// As above; also fills `referenced` with every tensor the text names by reference.
std::string printGraph(const Graph& graph, const PrintOptions& options, WeightMap* referenced);
// The model header line and its main graph.
std::string printModel(const Model& model, const PrintOptions& options = {});
std::string printModel(const Model& model, const PrintOptions& options, WeightMap* referenced);

// Helpers shared with the parser and error messages: the quoted form of a string
// ("a\"b\n") and the text of a type (f32[N,3], ?[*]).
std::string quoteString(const std::string& s);
std::string typeText(const TensorType& t);

}  // namespace anvil::ir
