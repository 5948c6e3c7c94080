// The builder's blocked-layout regions (codegen/layout_selection.h): which nodes group,
// where the Reorders go, and that undoing a region gives the graph back exactly; and which
// blocked 1x1 + depthwise pairs become one anvil.FusedConvDw node.
#include <gtest/gtest.h>

#include <functional>
#include <set>
#include <string>
#include <utility>
#include <vector>

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

// ---------------------------------------------------------------------------------------
// 1x1 + depthwise pairs as anvil.FusedConvDw (codegen::fuseBlockedConvDw): what is fused and
// what is left apart.

// x [1, 16, 112, 112] -> 1x1 16->c1 (FusedConv Clip) -> depthwise 3x3 stride s (FusedConv
// Relu) -> y, every activation in NCHW8c; `edit` changes the pair before the call.
struct Pair {
  Graph g;
  Node *pw, *dw;
  explicit Pair(int64_t side = 112, int64_t e = 96) {
    using anvil::ir::Tensor;
    Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({1, 16, side, side})});
    g.addInput(x);
    auto init = [&](const std::string& n, std::vector<int64_t> d) {
      return g.addInitializer(n, Tensor(DataType::kF32, std::move(d)));
    };
    pw = g.addNode("FusedConv", "anvil", "pw", {x, init("w", {e, 16, 1, 1}), init("b", {e})}, {"mid"});
    pw->attrs().set("activation", std::string("Clip"));
    pw->attrs().set("activation_params", std::vector<float>{0.0f, 6.0f});
    dw = g.addNode("FusedConv", "anvil", "dw", {pw->output(0), init("wd", {e, 1, 3, 3}), init("bd", {e})}, {"y"});
    dw->attrs().set("group", e);
    dw->attrs().set("kernel_shape", std::vector<int64_t>{3, 3});
    dw->attrs().set("strides", std::vector<int64_t>{2, 2});
    dw->attrs().set("pads", std::vector<int64_t>{0, 0, 1, 1});
    dw->attrs().set("activation", std::string("Relu"));
    g.addOutput(dw->output(0));
    anvil::ir::inferShapes(g);
    for (Value* v : {x, pw->output(0), dw->output(0)}) v->setLayout(anvil::ir::Layout::nchwc(8));
  }
  // The fused nodes at `threads`, every FusedConvDw servable.
  std::vector<Node*> fuse(int threads = 1) {
    return anvil::codegen::fuseBlockedConvDw(g, 8, threads, [](const Node& n) {
      EXPECT_EQ(n.op(), "FusedConvDw");
      return true;
    });
  }
};

TEST(ConvDwFusion, FusesThePairWithBothEpilogues) {
  Pair p;
  const std::vector<Node*> fused = p.fuse();
  ASSERT_EQ(fused.size(), 1u);
  const Node& n = *fused[0];
  EXPECT_EQ(n.op(), "FusedConvDw");
  EXPECT_EQ(n.name(), "pw+dw");
  EXPECT_EQ(n.output(0)->name(), "y");
  EXPECT_EQ(n.output(0)->layout(), anvil::ir::Layout::nchwc(8));
  EXPECT_EQ(p.g.outputs()[0], n.output(0));
  EXPECT_EQ(n.numInputs(), 5u);
  EXPECT_EQ(n.input(3)->name(), "wd");
  EXPECT_EQ(n.attrs().getString("activation", ""), "Clip");
  EXPECT_EQ(n.attrs().getString("dw_activation", ""), "Relu");
  EXPECT_EQ(n.attrs().getInts("dw_strides"), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(n.attrs().getInts("dw_pads"), (std::vector<int64_t>{0, 0, 1, 1}));
  EXPECT_EQ(n.attrs().getInts("dw_kernel_shape"), (std::vector<int64_t>{3, 3}));
  EXPECT_EQ(p.g.nodes().size(), 1u);
  anvil::ir::inferShapes(p.g);
  EXPECT_EQ(n.output(0)->shape().extents(), (std::vector<int64_t>{1, 96, 56, 56}));
}

TEST(ConvDwFusion, LeavesApartWhatItCannotFuse) {
  // Each case changes one thing of the pair; none may fuse.
  std::vector<std::pair<std::string, std::function<void(Pair&)>>> cases = {
      {"intermediate read twice", [](Pair& p) { p.g.addOutput(p.pw->output(0)); }},
      {"1x1 stride 2", [](Pair& p) { p.pw->attrs().set("strides", std::vector<int64_t>{2, 2}); }},
      {"1x1 padded", [](Pair& p) { p.pw->attrs().set("pads", std::vector<int64_t>{1, 1, 1, 1}); }},
      {"not depthwise", [](Pair& p) { p.dw->attrs().set("group", int64_t(48)); }},
      {"dilated", [](Pair& p) { p.dw->attrs().set("dilations", std::vector<int64_t>{2, 2}); }},
      {"row-major intermediate", [](Pair& p) { p.pw->output(0)->setLayout(anvil::ir::Layout::plain()); }},
      {"a reduced precision", [](Pair& p) { p.dw->setPrecision(DataType::kF16); }},
      {"auto_pad", [](Pair& p) { p.dw->attrs().set("auto_pad", std::string("SAME_UPPER")); }},
      {"a residual", [](Pair& p) { p.pw->attrs().set("has_residual", int64_t(1)); }},
  };
  for (auto& [name, edit] : cases) {
    Pair p;
    edit(p);
    EXPECT_TRUE(p.fuse().empty()) << name;
    EXPECT_EQ(p.g.nodes().size(), 2u) << name;
  }
  // Under 768 KiB per thread: 96 x 56 x 56 floats (1.15 MiB) at one thread, not at two.
  Pair small(56);
  EXPECT_TRUE(small.fuse(2).empty());
  EXPECT_EQ(small.fuse(1).size(), 1u);
  // Not servable: left as it was.
  Pair refused;
  EXPECT_TRUE(anvil::codegen::fuseBlockedConvDw(refused.g, 8, 1, [](const Node&) { return false; }).empty());
  EXPECT_EQ(refused.g.nodes().size(), 2u);
  EXPECT_EQ(refused.g.outputs()[0], refused.dw->output(0));
}

}  // namespace
