// Concat inputs planned inside the Concat's output (runtime/memory_planner.cpp): which
// inputs the planner puts in place and where, that no two live buffers overlap, and
// engines with fire-module Concats (squeezenet's) in the plain and the blocked layouts
// matching the reference interpreter, in place or not (odd channels, tails, batch 2,
// a dynamic profile, a Concat that is the graph output).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <unordered_set>

#include "anvil/anvil.hpp"
#include "cpu/reference.h"
#include "ir/layout.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"
#include "runtime/kernel.h"
#include "runtime/memory_planner.h"
#include "tests/onnx_writer.h"

namespace fs = std::filesystem;

namespace {

using anvil::ir::DataType;
using anvil::ir::Graph;
using anvil::ir::Node;
using anvil::ir::Shape;
using anvil::ir::Value;
using anvil::runtime::GraphMemory;

// ---- the planner on IR graphs --------------------------------------------------------

// x -> Relu a [n, ca, h, w], x2 -> Sigmoid b [n, cb, h, w], Concat(a, b) c -> Tanh t (output).
struct CatNet {
  Graph g;
  Node *a, *b, *cat, *t;
  CatNet(int64_t n, int64_t ca, int64_t cb, int64_t h, int64_t w) {
    Value* x = g.addValue("x", {DataType::kF32, Shape::fromExtents({n, ca, h, w})});
    Value* x2 = g.addValue("x2", {DataType::kF32, Shape::fromExtents({n, cb, h, w})});
    g.addInput(x);
    g.addInput(x2);
    a = g.addNode("Relu", "", "a", {x}, {"av"});
    b = g.addNode("Sigmoid", "", "b", {x2}, {"bv"});
    cat = g.addNode("Concat", "", "cat", {a->output(0), b->output(0)}, {"cv"});
    cat->attrs().set("axis", int64_t(1));
    t = g.addNode("Tanh", "", "t", {cat->output(0)}, {"tv"});
    g.addOutput(t->output(0));
    anvil::ir::inferShapes(g);
  }
  void block(int b) {
    for (Value* v : {a->output(0), this->b->output(0), cat->output(0)}) v->setLayout(anvil::ir::Layout::nchwc(b));
  }
  GraphMemory plan(bool inPlace = true) {
    std::unordered_set<const Node*> s;
    if (inPlace) s.insert(cat);
    return anvil::runtime::planGraphMemory(g, &s);
  }
};

size_t indexOf(const Graph& g, const Node* n) {
  for (size_t i = 0; i < g.nodes().size(); ++i)
    if (g.nodes()[i].get() == n) return i;
  ADD_FAILURE() << "node not in the graph";
  return 0;
}
const GraphMemory::Slot& slotOf(const Graph& g, const GraphMemory& m, const Node* n) {
  return m.nodeOutputs[indexOf(g, n)][0];
}

// No two values alive at the same step share bytes, except a Concat input lying inside
// its Concat's output (the one relation the planner creates on purpose).
void expectNoOverlap(const Graph& g, const GraphMemory& m) {
  struct Live {
    const Value* v;
    int64_t off, end;
    int first, last;
  };
  std::vector<Live> live;
  const auto& nodes = g.nodes();
  for (size_t i = 0; i < nodes.size(); ++i)
    for (size_t k = 0; k < nodes[i]->numOutputs(); ++k) {
      const auto& s = m.nodeOutputs[i][k];
      if (s.offset < 0 || s.alias) continue;
      int last = int(i);
      for (size_t j = i + 1; j < nodes.size(); ++j)
        for (const Value* in : nodes[j]->inputs())
          if (in == nodes[i]->output(k)) last = int(j);
      for (const Value* o : g.outputs())
        if (o == nodes[i]->output(k)) last = int(nodes.size());
      live.push_back({nodes[i]->output(k), s.offset, s.offset + int64_t(s.bytes), int(i), last});
    }
  auto inside = [&](const Value* part, const Value* whole) {
    const Node* c = whole->producer();
    if (!c || c->op() != "Concat") return false;
    for (const Value* in : c->inputs())
      if (in == part) return true;
    return false;
  };
  for (size_t i = 0; i < live.size(); ++i)
    for (size_t j = i + 1; j < live.size(); ++j) {
      const Live &p = live[i], &q = live[j];
      const bool timeOverlap = !(p.last < q.first || q.last < p.first);
      const bool memOverlap = p.off < q.end && q.off < p.end;
      if (timeOverlap && memOverlap) {
        EXPECT_TRUE(inside(p.v, q.v) || inside(q.v, p.v))
            << p.v->name() << " [" << p.off << ", " << p.end << ") and " << q.v->name() << " [" << q.off << ", " << q.end
            << ") are alive together and overlap";
      }
    }
}

TEST(ConcatInPlace, PlainInputsLieInsideTheOutput) {
  // a: 16 x 2 x 2 floats = 256 bytes, a whole number of 64-byte lines: b starts aligned.
  CatNet net(1, 16, 7, 2, 2);
  const GraphMemory m = net.plan();
  EXPECT_EQ(m.concatInputsInPlace, 2);
  const auto& c = slotOf(net.g, m, net.cat);
  EXPECT_EQ(slotOf(net.g, m, net.a).offset, c.offset);
  EXPECT_EQ(slotOf(net.g, m, net.b).offset, c.offset + 16 * 4 * 4);
  EXPECT_EQ(slotOf(net.g, m, net.b).bytes, size_t(7 * 4 * 4));
  EXPECT_TRUE(slotOf(net.g, m, net.a).inConcat);
  EXPECT_FALSE(c.inConcat);
  expectNoOverlap(net.g, m);
  // Without the caller's word, nothing moves.
  const GraphMemory off = net.plan(false);
  EXPECT_EQ(off.concatInputsInPlace, 0);
  EXPECT_NE(slotOf(net.g, off, net.a).offset, slotOf(net.g, off, net.cat).offset);
  expectNoOverlap(net.g, off);
}

TEST(ConcatInPlace, MisalignedInputStaysOut) {
  // a: 7 x 3 x 3 floats = 252 bytes: b would start off the 64-byte grid, so it is copied.
  CatNet net(1, 7, 17, 3, 3);
  const GraphMemory m = net.plan();
  EXPECT_EQ(m.concatInputsInPlace, 1);
  EXPECT_EQ(slotOf(net.g, m, net.a).offset, slotOf(net.g, m, net.cat).offset);
  EXPECT_FALSE(slotOf(net.g, m, net.b).inConcat);
  expectNoOverlap(net.g, m);
}

TEST(ConcatInPlace, LeadingExtentAboveOneStaysOut) {
  CatNet net(2, 16, 16, 2, 2);  // per image, the inputs interleave in the output
  const GraphMemory m = net.plan();
  EXPECT_EQ(m.concatInputsInPlace, 0);
  expectNoOverlap(net.g, m);
}

TEST(ConcatInPlace, BlockedWholeBlocksButTheLast) {
  for (int b : {8, 16}) {
    CatNet net(1, b, 5, 4, 4);  // a whole block, then a tail of 5 lanes
    net.block(b);
    const GraphMemory m = net.plan();
    EXPECT_EQ(m.concatInputsInPlace, 2) << "block " << b;
    EXPECT_EQ(slotOf(net.g, m, net.b).offset, slotOf(net.g, m, net.cat).offset + b * 16 * 4) << "block " << b;
    expectNoOverlap(net.g, m);
    CatNet odd(1, 5, b, 3, 3);  // the first input ends inside a block: the lanes must move
    odd.block(b);
    EXPECT_EQ(odd.plan().concatInputsInPlace, 0) << "block " << b;
  }
}

TEST(ConcatInPlace, SharedGraphOutputAndViewInputsStayOut) {
  {
    CatNet net(1, 16, 16, 2, 2);
    net.g.addOutput(net.a->output(0));  // the caller may bind its own buffer for av
    const GraphMemory m = net.plan();
    EXPECT_EQ(m.concatInputsInPlace, 1);
    EXPECT_FALSE(slotOf(net.g, m, net.a).inConcat);
    expectNoOverlap(net.g, m);
  }
  {
    CatNet net(1, 16, 16, 2, 2);
    net.cat->setInput(1, net.a->output(0));  // Concat(a, a): one buffer cannot be in two places
    anvil::ir::inferShapes(net.g);
    EXPECT_EQ(net.plan().concatInputsInPlace, 0);
  }
  {
    CatNet net(1, 16, 16, 2, 2);
    Node* f = net.g.addNode("Flatten", "", "f", {net.a->output(0)}, {"fv"});
    net.g.addOutput(f->output(0));
    anvil::ir::inferShapes(net.g);
    const GraphMemory m = net.plan();
    EXPECT_EQ(m.concatInputsInPlace, 1);  // av has a view reader: only bv moves
    EXPECT_FALSE(slotOf(net.g, m, net.a).inConcat);
    expectNoOverlap(net.g, m);
  }
  {
    CatNet net(1, 16, 16, 2, 2);
    // bv reaches the Concat through an Identity: a view, whose value lies in bv's buffer.
    Node* id = net.g.addNode("Identity", "", "id", {net.b->output(0)}, {"iv"});
    net.cat->setInput(1, id->output(0));
    net.g.topoSort();
    anvil::ir::inferShapes(net.g);
    const GraphMemory m = net.plan();
    EXPECT_EQ(m.concatInputsInPlace, 1);
    EXPECT_FALSE(slotOf(net.g, m, id).inConcat);
    EXPECT_FALSE(slotOf(net.g, m, net.b).inConcat);
    expectNoOverlap(net.g, m);
  }
}

// ---- engines -------------------------------------------------------------------------

// A fire module: x [n, cin, h, w] -> squeeze 1x1 (Relu) s -> expand 1x1 (e1 channels,
// Relu) and expand 3x3 pad 1 (e3 channels, Relu) -> Concat -> (unless catOut) 1x1 to 5
// channels -> y. catOut: the Concat is the graph output y.
std::string writeFire(const std::string& name, int64_t cin, int64_t e1, int64_t e3, int64_t h, int64_t w,
                      bool catOut) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("fire");
  *g->add_input() = anvil::test::valueInfo("x", {-1, cin, h, w});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-0.5f, 0.5f);
  auto weight = [&](const std::string& nm, std::vector<int64_t> dims) {
    auto* t = g->add_initializer();
    t->set_name(nm);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (int64_t x : dims) t->add_dims(x), n *= x;
    for (int64_t i = 0; i < n; ++i) t->add_float_data(d(rng));
  };
  auto conv = [&](const std::string& nm, const std::string& in, int64_t ci, int64_t co, int64_t k, bool relu,
                  const std::string& out) {
    weight(nm + ".w", {co, ci, k, k});
    weight(nm + ".b", {co});
    auto* n = g->add_node();
    n->set_op_type("Conv");
    n->set_name(nm);
    n->add_input(in);
    n->add_input(nm + ".w");
    n->add_input(nm + ".b");
    n->add_output(relu ? nm + ".c" : out);
    auto* ks = n->add_attribute();
    ks->set_name("kernel_shape");
    ks->set_type(onnx::AttributeProto::INTS);
    ks->add_ints(k), ks->add_ints(k);
    if (k == 3) {
      auto* p = n->add_attribute();
      p->set_name("pads");
      p->set_type(onnx::AttributeProto::INTS);
      for (int i = 0; i < 4; ++i) p->add_ints(1);
    }
    if (relu) {
      auto* r = g->add_node();
      r->set_op_type("Relu");
      r->set_name(nm + ".relu");
      r->add_input(nm + ".c");
      r->add_output(out);
    }
  };
  conv("squeeze", "x", cin, 8, 1, true, "s");
  conv("expand1x1", "s", 8, e1, 1, true, "e1");
  conv("expand3x3", "s", 8, e3, 3, true, "e3");
  auto* c = g->add_node();
  c->set_op_type("Concat");
  c->set_name("concat");
  c->add_input("e1");
  c->add_input("e3");
  c->add_output(catOut ? "y" : "cat");
  auto* ax = c->add_attribute();
  ax->set_name("axis");
  ax->set_type(onnx::AttributeProto::INT);
  ax->set_i(1);
  if (!catOut) conv("head", "cat", e1 + e3, 5, 1, false, "y");
  *g->add_output() = anvil::test::valueInfo("y", {-1, catOut ? e1 + e3 : 5, h, w});
  const fs::path p = fs::temp_directory_path() / ("anvil_concat_inplace_" + name + ".onnx");
  std::ofstream f(p, std::ios::binary);
  m.SerializeToOstream(&f);
  return p.string();
}

struct Case {
  std::string name;
  int64_t cin, e1, e3, h, w;
  bool catOut;
  anvil::BuilderConfig::BlockedLayouts layouts;
  int64_t n;           // the batch run
  int64_t maxN;        // the profile's largest batch (n: a one-point profile)
  int inPlace;         // Concat inputs written in place
};

// The blocked layout's lanes on this machine (what the builder picks under ANVIL_MAX_ISA).
int blockHere() { return anvil::runtime::hostCpuIsa().find("avx512f") != std::string::npos ? 16 : 8; }

void runCase(const Case& c) {
  SCOPED_TRACE(c.name);
  const std::string model = writeFire(c.name, c.cin, c.e1, c.e3, c.h, c.w, c.catOut);
  anvil::BuilderConfig cfg;
  cfg.blockedLayouts = c.layouts;
  cfg.profiles["x"] = {{1, c.cin, c.h, c.w}, {c.n, c.cin, c.h, c.w}, {c.maxN, c.cin, c.h, c.w}};
  if (c.maxN == c.n) cfg.profiles["x"].min = {c.n, c.cin, c.h, c.w};
  anvil::BuildReport report;
  std::string bytes;
  anvil::Status s = anvil::Builder::buildFromOnnx(model, cfg, &bytes, &report);
  ASSERT_TRUE(s.isOk()) << s.message();
  EXPECT_EQ(report.concatInputsInPlace, c.inPlace);
  std::shared_ptr<anvil::Engine> e;
  ASSERT_TRUE(anvil::Engine::fromBytes(std::move(bytes), &e).isOk());
  for (const auto& l : e->layers())
    if (l.type == "Concat") std::printf("[ %s ] Concat tactic %s\n", c.name.c_str(), l.tactic.c_str());

  std::vector<float> x(size_t(c.n * c.cin * c.h * c.w));
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  for (float& v : x) v = d(rng);
  const int64_t yc = c.catOut ? c.e1 + c.e3 : 5;
  // Guards: the engine's output buffer sits between sentinels it must not touch.
  const size_t ny = size_t(c.n * yc * c.h * c.w), guard = 64;
  std::vector<float> yb(ny + 2 * guard, 12345.f);
  std::unique_ptr<anvil::ExecutionContext> ctx;
  ASSERT_TRUE(e->createContext(&ctx).isOk());
  ASSERT_TRUE(ctx->setInputShape("x", {c.n, c.cin, c.h, c.w}).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("x", x.data()).isOk());
  ASSERT_TRUE(ctx->setTensorAddress("y", yb.data() + guard).isOk());
  for (int rep = 0; rep < 2; ++rep) {  // twice: nothing may depend on the arena's old contents
    anvil::Status r = ctx->run();
    ASSERT_TRUE(r.isOk()) << r.message();
  }
  for (size_t i = 0; i < guard; ++i) {
    ASSERT_EQ(yb[i], 12345.f) << "wrote before the output";
    ASSERT_EQ(yb[guard + ny + i], 12345.f) << "wrote past the output";
  }

  auto parsed = anvil::parser::parseOnnxFile(model);
  anvil::ir::Tensor t(DataType::kF32, {c.n, c.cin, c.h, c.w});
  std::memcpy(t.mutableRaw(), x.data(), x.size() * 4);
  auto ref = anvil::cpu::Interpreter::run(*parsed.graph, {{"x", t}});
  ASSERT_EQ(size_t(ref[0].numel()), ny);
  const float* r = ref[0].data<float>();
  for (size_t i = 0; i < ny; ++i) ASSERT_NEAR(yb[guard + i], r[i], 1e-4f * (1.f + std::fabs(r[i]))) << "at " << i;
  fs::remove(model);
}

using BL = anvil::BuilderConfig::BlockedLayouts;

TEST(ConcatInPlace, BlockedFireModulesMatchTheReference) {
  const int b = blockHere();
  std::printf("blocked layout NCHW%dc%s\n", b, b == 16 ? "" : " (AVX-512 cases: skipped: no AVX-512)");
  // e1 whole blocks, e3 odd (a tail): both in place; odd extents, e1's bytes a whole
  // number of 64-byte lines (blocks x pixels even for NCHW8c).
  runCase({"blk_tail", 3, b, 7, 7, 6, false, BL::kAlways, 1, 1, 2});
  runCase({"blk_two_blocks_17", 17, 2 * b, 17, 1, 7, false, BL::kAlways, 1, 1, 2});
  runCase({"blk_1x1_image", 1, 2 * b, 63, 1, 1, false, BL::kAlways, 1, 1, 2});
  // NCHW8c with one block of 5 x 3 pixels: e3 would start off the 64-byte grid.
  runCase({"blk_odd_pixels", 3, b, 7, 5, 3, false, BL::kAlways, 1, 1, b == 16 ? 2 : 1});
  // e1 not a whole block: no blocked Concat serves it, so it stays plain (x_concat_rows),
  // where e1's 7 x 5 x 3 floats put e3 off the 64-byte grid: only e1 is in place.
  runCase({"blk_unaligned", 5, 7, b, 5, 3, false, BL::kAlways, 1, 1, 1});
  // The Concat is the graph output: the caller's buffer.
  runCase({"blk_graph_output", 3, 2 * b, 9, 3, 3, true, BL::kAlways, 1, 1, 2});
  // Two images (each input's blocks interleave), and a dynamic profile (offsets at max).
  runCase({"blk_batch2", 3, b, 7, 3, 5, false, BL::kAlways, 2, 2, 0});
  runCase({"blk_dynamic", 3, b, 7, 3, 5, false, BL::kAlways, 1, 4, 0});
}

TEST(ConcatInPlace, PlainFireModulesMatchTheReference) {
  // 16 channels of any image are whole 64-byte lines: the second input starts aligned.
  runCase({"plain_16_7", 3, 16, 7, 7, 9, false, BL::kNever, 1, 1, 2});
  runCase({"plain_graph_output", 1, 16, 63, 1, 1, true, BL::kNever, 1, 1, 2});
  // 7 channels x 3 x 3 = 252 bytes: the second input would be misaligned (copied).
  runCase({"plain_misaligned", 3, 7, 17, 3, 3, false, BL::kNever, 1, 1, 1});
  runCase({"plain_batch2", 3, 16, 7, 3, 3, false, BL::kNever, 2, 2, 0});
}

}  // namespace
