// The IR text parser: reads what ir/printer.h writes (see there for the form) back into a
// Model, so tests and tools can state graphs as text.
//
// Accepted beyond the printer's output: `// comments` to the end of a line; a missing
// `model {...}` header; types left out anywhere (unknown); `ints[..]`/`floats[..]` tags on
// non-empty lists; `true`/`false` for bool tensors. Values must be defined before they are
// used (graph inputs, initializers, earlier nodes, or enclosing graphs for subgraphs), and
// a name may not shadow one visible from an enclosing graph. Ops unknown to the op table
// are accepted (their nodes have no schema; the verifier reports them). Temporaries keep
// their printed number as their name ("%3" is the value named "3"). Metadata fields may
// come in any order (each once); a layout, quantization or precision that does not fit
// its value (ir/verifier.h's checks) is a parse error at the field.
//
// Every error is anvil::Error kInvalidModel with "line:column: expected ..., got ...".
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>

#include "ir/graph.h"

namespace anvil::ir {

// Maps a weight reference (`@name`) to its tensor; nullopt when the name is unknown.
using WeightResolver = std::function<std::optional<Tensor>(const std::string& name)>;

// Parses a model (an optional `model {...}` header and a graph). Weights printed by
// reference are resolved through `weights`; without one, any `@name` weight is an error.
Model parseIrText(const std::string& text, const WeightResolver* weights = nullptr);
// Same, resolving references from a map (what printGraph(..., &map) collected).
Model parseIrText(const std::string& text, const std::map<std::string, Tensor>& weights);

}  // namespace anvil::ir
