// The blocked-layout regions of a graph (NCHW<b>c, cpu/tactics/nchwc.h): which nodes can
// run with their activations blocked, how they group into regions, and the graph edits
// that make a region blocked (anvil.Reorder at its boundaries) and undo it. The builder
// times every region both ways and keeps the blocked form only where it is faster
// (codegen/builder.cpp).
#pragma once

#include <functional>
#include <map>
#include <vector>

#include "ir/graph.h"

namespace anvil::codegen {

// The block the host's blocked kernels use: 16 with AVX-512, 8 with AVX2 + FMA, 0 without
// (runtime::hostHas, so ANVIL_MAX_ISA lowers it).
int hostNchwcBlock();

// Whether a value is an activation a blocked region may hold: a named rank-4 float32 node
// output or graph input, not an initializer.
bool isBlockableActivation(const ir::Value* v);

// Connected groups of nodes that can all run blocked. `servable(node)` answers whether
// some blocked kernel serves the node once its activations are blocked; it is asked with
// those layouts set on the node's values (and they are reset afterwards). Nodes with
// subgraphs, nodes whose outputs a subgraph reads or returns, and nodes with a non-rank-4
// output stay out (a node writing a graph output may join: the output is then reordered
// back under its name). Nodes that share an activation (as producer and consumer, or as
// two consumers of one outside value) share a region.
std::vector<std::vector<ir::Node*>> findBlockedRegions(ir::Graph& g, int block,
                                                       const std::function<bool(const ir::Node&)>& servable);

// The edits that made one region blocked, so they can be undone.
struct AppliedRegion {
  std::vector<ir::Node*> nodes;       // the region's nodes
  std::vector<ir::Node*> reorders;    // inserted anvil.Reorder nodes (entries and exits)
  std::vector<ir::Value*> blocked;    // region outputs now stored blocked
  // Graph outputs written by the region: the blocked value was renamed and a Reorder's
  // output took its name and its place among the graph outputs.
  struct Renamed {
    ir::Value* blocked;
    ir::Value* plain;
    std::string name;
  };
  std::vector<Renamed> renamed;
  struct Rewire {
    ir::Node* node;
    size_t input;
    ir::Value* original;
  };
  std::vector<Rewire> rewired;
};

// Stores the region's activations blocked: a Reorder to NCHW<b>c in front of every value
// that enters it (one per value), a Reorder to plain behind every value that leaves it
// (one per value, shared by its outside users). New values get their declared type from
// `declared` (filled in for them). The caller re-sorts the graph.
// `keepPlain(node, input)`, when given, names entry edges that stay row-major: the node's
// kernel reads that input as it is (a stem reading the model's image, Kernel::nchwcPlainInput).
AppliedRegion applyBlockedRegion(ir::Graph& g, const std::vector<ir::Node*>& region, int block,
                                 std::map<const ir::Value*, ir::TensorType>* declared,
                                 const std::function<bool(const ir::Node&, size_t)>& keepPlain = nullptr);
// Undoes applyBlockedRegion (the Reorder nodes are removed; their values stay until
// Graph::removeUnusedValues).
void revertBlockedRegion(ir::Graph& g, const AppliedRegion& r);

// Each blocked 1x1 Conv (Conv or anvil.FusedConv: group 1, stride 1, no padding, no
// residual) whose output only a blocked depthwise Conv (group = channels, dilation 1, no
// residual) reads, in f32 on the CPU, with that output at least kConvDwFuseBytes (768 KiB) per thread
// of the build (each thread's share of it is what outgrows its core's L2), becomes one
// anvil.FusedConvDw node named "<1x1>+<depthwise>" (ir/ops/anvil_linear.h) writing the
// depthwise output, where `servable(fused)` says a blocked kernel serves it. Returns the
// fused nodes (their outputs are new values of the depthwise outputs' names and types); the
// caller re-infers the types.
inline constexpr int64_t kConvDwFuseBytes = int64_t(768) << 10;
std::vector<ir::Node*> fuseBlockedConvDw(ir::Graph& g, int block, int threads,
                                         const std::function<bool(const ir::Node&)>& servable);

}  // namespace anvil::codegen
