// The builder's blocked-layout regions (codegen/layout_selection.h): which nodes group,
// where the Reorders go, and that undoing a region gives the graph back exactly.
#include <gtest/gtest.h>

#include <set>

#include "codegen/layout_selection.h"
#include "ir/layout.h"
#include "ir/op_schema.h"
#include "ir/printer.h"

namespace {

using anvil::ir::DataType;
using anvil::ir::Graph;
using anvil::ir::Node;
using anvil::ir::Shape;
using anvil::ir::Value;

// x -> Relu r1 -> Sigmoid r2 -> Flatten f (output y); r1 -> Relu r3 (graph output z).
// A second input w -> Tanh t (a region of its own) -> Flatten (output u).
struct Net {
  Graph g;
  Node *r1, *r2, *r3, *flat, *t;
  Net() {
    Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({1, 13, 5, 5})});
    Value* w = g.addValue("w", {DataType::kF32, Shape::fromExtents({1, 8, 3, 3})});
    g.addInput(x);
    g.addInput(w);
    r1 = g.addNode("Relu", "", "r1", {x}, {"a"});
    r2 = g.addNode("Sigmoid", "", "r2", {r1->output(0)}, {"b"});
    flat = g.addNode("Flatten", "", "flat", {r2->output(0)}, {"y"});
    r3 = g.addNode("Relu", "", "r3", {r1->output(0)}, {"z"});
    t = g.addNode("Tanh", "", "t", {w}, {"c"});
    Node* f2 = g.addNode("Flatten", "", "flat2", {t->output(0)}, {"u"});
    g.addOutput(flat->output(0));
    g.addOutput(r3->output(0));
    g.addOutput(f2->output(0));
    anvil::ir::inferShapes(g);
  }
};

bool unaryServable(const Node& n) {
  // Asked with the layouts set: the node's activations must be blocked when it is asked.
  EXPECT_EQ(n.input(0)->layout().family(), "NCHWc") << n.label();
  return n.op() == "Relu" || n.op() == "Sigmoid" || n.op() == "Tanh";
}

TEST(LayoutSelection, RegionsReordersAndRevert) {
  Net net;
  Graph& g = net.g;
  const std::string before = anvil::ir::printGraph(g);
  auto regions = anvil::codegen::findBlockedRegions(g, 8, unaryServable);
  // {r1, r2, r3} (r3 writes a graph output: it joins, reordered back) and {t}.
  ASSERT_EQ(regions.size(), 2u);
  EXPECT_EQ(std::set<Node*>(regions[0].begin(), regions[0].end()), (std::set<Node*>{net.r1, net.r2, net.r3}));
  EXPECT_EQ(regions[1], std::vector<Node*>{net.t});
  // Nothing changed while asking.
  EXPECT_EQ(anvil::ir::printGraph(g), before);

  std::map<const Value*, anvil::ir::TensorType> declared;
  anvil::codegen::AppliedRegion a = anvil::codegen::applyBlockedRegion(g, regions[0], 8, &declared);
  g.topoSort();
  anvil::ir::inferShapes(g);
  // x enters through one Reorder; b leaves to the Flatten and z to the caller through one each.
  ASSERT_EQ(a.reorders.size(), 3u);
  EXPECT_EQ(net.r1->input(0)->producer()->op(), "Reorder");
  EXPECT_EQ(net.r1->input(0)->layout(), anvil::ir::Layout::nchwc(8));
  EXPECT_EQ(net.r1->output(0)->layout(), anvil::ir::Layout::nchwc(8));
  EXPECT_EQ(net.r2->input(0), net.r1->output(0));  // inside the region: no Reorder
  EXPECT_EQ(net.r3->input(0), net.r1->output(0));
  EXPECT_EQ(net.flat->input(0)->producer()->op(), "Reorder");
  EXPECT_TRUE(net.flat->input(0)->layout().isPlain());
  for (const Node* r : a.reorders) EXPECT_EQ(r->output(0)->type(), r->input(0)->type()) << r->label();
  // Graph outputs keep their names; z is now the row-major Reorder of r3's blocked output.
  EXPECT_EQ(g.outputs()[0]->name(), "y");
  EXPECT_EQ(g.outputs()[1]->name(), "z");
  EXPECT_EQ(g.outputs()[1]->producer()->op(), "Reorder");
  EXPECT_EQ(g.outputs()[1]->producer()->attrs().getString("to", ""), "plain");
  EXPECT_EQ(g.outputs()[1]->producer()->input(0), net.r3->output(0));
  EXPECT_NE(net.r3->output(0)->name(), "z");
  EXPECT_EQ(g.findValue("z"), g.outputs()[1]);

  anvil::codegen::revertBlockedRegion(g, a);
  g.removeUnusedValues();
  g.topoSort();
  anvil::ir::inferShapes(g);
  EXPECT_EQ(anvil::ir::printGraph(g), before);
  EXPECT_EQ(g.findValue("z"), net.r3->output(0));
}

TEST(LayoutSelection, KeptPlainEntryHasNoReorder) {
  Net net;
  Graph& g = net.g;
  auto regions = anvil::codegen::findBlockedRegions(g, 16, unaryServable);
  ASSERT_EQ(regions.size(), 2u);
  std::map<const Value*, anvil::ir::TensorType> declared;
  // r1 reads the graph input as it is (a stem kernel with Kernel::nchwcPlainInput).
  auto keep = [&](const Node& n, size_t i) { return &n == net.r1 && i == 0; };
  anvil::codegen::AppliedRegion a = anvil::codegen::applyBlockedRegion(g, regions[0], 16, &declared, keep);
  EXPECT_EQ(a.reorders.size(), 2u);  // the two exits only (b to the Flatten, z to the caller)
  EXPECT_EQ(net.r1->input(0)->name(), "x");
  EXPECT_TRUE(net.r1->input(0)->layout().isPlain());
  EXPECT_EQ(net.r1->output(0)->layout(), anvil::ir::Layout::nchwc(16));
}

TEST(LayoutSelection, NothingServableNoRegions) {
  Net net;
  EXPECT_TRUE(anvil::codegen::findBlockedRegions(net.g, 16, [](const Node&) { return false; }).empty());
}

}  // namespace
