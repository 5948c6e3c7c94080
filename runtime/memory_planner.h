// Activation memory planning: buffers with lifetimes [first, last] step get offsets in one
// arena so that buffers alive at the same time never overlap. Greedy by size (largest
// first, lowest fitting offset), which packs typical CNN/transformer graphs tightly.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_set>
#include <vector>

#include "ir/graph.h"

namespace anvil::runtime {

struct BufferRequest {
  size_t bytes = 0;
  int first = 0;  // step that writes it
  int last = 0;   // last step that reads it (inclusive)
};

struct MemoryPlan {
  std::vector<size_t> offsets;  // per request
  size_t peakBytes = 0;
};

MemoryPlan planMemory(const std::vector<BufferRequest>& requests, size_t alignment = 64);

// The arena layout of a graph's top-level node outputs for its current (static) types.
// View ops (Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout) share their input's
// buffer. Values without a static shape get no slot (kernels allocate them).
struct GraphMemory {
  struct Slot {
    int64_t offset = -1;  // -1: no slot
    size_t bytes = 0;
    bool alias = false;   // shares its input's buffer; the kernel must not write it
    bool inConcat = false;  // lies inside an in-place Concat's output (offset included)
  };
  std::vector<std::vector<Slot>> nodeOutputs;  // [node][output]
  size_t peakBytes = 0;
  int concatInputsInPlace = 0;  // Concat inputs planned inside their Concat's output
};
// `inPlaceConcats`: Concat nodes whose inputs may be planned inside their output (each
// input's producer writes its slice of the output directly, and the Concat kernel skips
// the copy where an input already lies at its place). The caller vouches for each one:
// shapes fixed over the profile and a kernel that skips such inputs; the planner checks
// the rest (axis, leading extents of 1, layouts, whole channel blocks, single producers).
GraphMemory planGraphMemory(const ir::Graph& graph, const std::unordered_set<const ir::Node*>* inPlaceConcats = nullptr);
// Whether Concat `n` at its current (static) types can hold its inputs in place: each
// input a contiguous byte range of the output. planGraphMemory checks it too.
bool concatInPlaceShape(const ir::Node& n);
// The same as planGraphMemory(graph) for only the values on only the values on `device` (Value::device()), aligned to `alignment`: the
// separate host and device arenas of a CUDA engine.
GraphMemory planGraphMemory(const ir::Graph& graph, ir::Device device, size_t alignment);

}  // namespace anvil::runtime
