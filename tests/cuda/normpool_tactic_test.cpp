// The CUDA tactics of cuda/tactics/normpool.cpp against the reference interpreter on the sim
// runtime: LayerNormalization, Softmax, LogSoftmax, ReduceSum/Mean/Max/Min, MaxPool,
// AveragePool and the global pools on odd shapes, every attribute form they claim, negative
// axes, empty tensors, and what supports() refuses.
#include <cstring>
#include <limits>

#include "anvil/error.h"
#include "cuda/kernels/norm.cuh"
#include "cuda/kernels/pool.cuh"
#include "cuda/normpool.h"
#include "normmove_test_util.h"

namespace anvil::cuda::testing {
namespace {

using Dims = std::vector<int64_t>;
ir::Tensor f32(const Dims& d, uint32_t seed, double lo = -2, double hi = 2) {
  return randomTensor(DataType::kF32, d, seed, lo, hi);
}

// ---- LayerNormalization (a warp per row up to 1024 columns, a block per row beyond) ----

TEST(CudaNormPoolTactic, LayerNormRowsOddShapesBiasAndAxes) {
  struct C {
    Dims x;
    int64_t axis;
    Dims scale;
    bool bias;
  };
  const C cases[] = {
      {{1, 1}, -1, {1}, true},      {{7, 17}, -1, {17}, true},          {{3, 5, 63}, -1, {63}, false},
      {{2, 300}, 1, {300}, true},   {{3, 5, 7}, 1, {5, 7}, true},       {{3, 5, 7}, -2, {1, 5, 7}, false},
      {{4, 1}, 0, {4, 1}, true},    {{2, 3, 600}, 2, {600}, true},      {{3, 1100}, -1, {1100}, true},
      {{20, 128}, -1, {128}, true}, {{2, 2, 1025}, 1, {2, 1025}, false}};
  uint32_t seed = 1;
  for (const C& c : cases) {
    ir::Attributes at;
    at.set("axis", c.axis);
    at.set("epsilon", 1e-3f);
    std::vector<Arg> args = {input("x", f32(c.x, seed++, 1, 5)), constant("scale", f32(c.scale, seed++))};
    if (c.bias) args.push_back(constant("bias", f32(c.scale, seed++)));
    const OneNode o = oneNode("LayerNormalization", args, at);
    expectMatches(o, "f32_layernorm_rows", 2e-5, 2e-5, "LayerNorm " + ir::Shape::fromExtents(c.x).str());
  }
}

TEST(CudaNormPoolTactic, LayerNormScaleAsRuntimeInputAndEmptyRows) {
  const OneNode o = oneNode("LayerNormalization", {input("x", f32({0, 17}, 3)), input("s", f32({17}, 4))});
  expectMatches(o, "f32_layernorm_rows", 1e-5, 1e-5, "LayerNorm [0,17]");
  const OneNode p = oneNode("LayerNormalization", {input("x", f32({5, 17}, 3)), input("s", f32({17}, 4))});
  expectMatches(p, "f32_layernorm_rows", 2e-5, 2e-5, "LayerNorm runtime scale");
}

TEST(CudaNormPoolTactic, LayerNormRefusals) {
  ir::Attributes at;
  at.set("axis", int64_t(1));
  // Scale broadcast over part of the normalized dims.
  EXPECT_FALSE(
      supportedBy(oneNode("LayerNormalization", {input("x", f32({3, 5, 7}, 1)), constant("s", f32({7}, 2))}, at).node(),
                  "f32_layernorm_rows"));
  // f16 input.
  EXPECT_FALSE(supportedBy(oneNode("LayerNormalization", {input("x", randomTensor(DataType::kF16, {3, 7}, 1)),
                                                          constant("s", randomTensor(DataType::kF16, {7}, 2))})
                               .node(),
                           "f32_layernorm_rows"));
  // Mean and InvStdDev outputs.
  EXPECT_FALSE(
      supportedBy(oneNode("LayerNormalization", {input("x", f32({3, 7}, 1)), constant("s", f32({7}, 2))}, {}, 3).node(),
                  "f32_layernorm_rows"));
}

TEST(CudaNormPoolTactic, LpNormBothPsEveryAxisAndZeroVectors) {
  uint32_t seed = 30;
  for (int64_t p : {1, 2})
    for (const Dims& d : {Dims{7, 17}, Dims{3, 300}, Dims{2, 3, 5}, Dims{1}, Dims{0, 4}})
      for (int64_t axis = -int64_t(d.size()); axis < int64_t(d.size()); ++axis) {
        ir::Tensor x = f32(d, seed++);
        if (d == Dims{7, 17})
          for (int64_t i = 0; i < 17; ++i) x.setDouble(i, 0);  // row 0 all zero
        ir::Attributes at;
        at.set("p", p);
        at.set("axis", axis);
        expectMatches(
            oneNode("LpNormalization", {input("x", x)}, at), "f32_lpnorm_any_axis", 1e-6, 1e-5,
            "LpNorm p" + std::to_string(p) + " " + ir::Shape::fromExtents(d).str() + " axis " + std::to_string(axis));
      }
}

TEST(CudaNormPoolTactic, BatchNormInferenceFolded) {
  uint32_t seed = 40;
  for (const Dims& d : {Dims{2, 3, 7, 17}, Dims{1, 17, 1, 1}, Dims{5, 7}, Dims{1, 2, 63}, Dims{0, 3, 2, 2}}) {
    const int64_t c = d[1];
    ir::Attributes at;
    at.set("epsilon", 1e-3f);
    const OneNode o =
        oneNode("BatchNormalization",
                {input("x", f32(d, seed++, -3, 3)), constant("s", f32({c}, seed++)), constant("b", f32({c}, seed++)),
                 constant("m", f32({c}, seed++)), constant("v", f32({c}, seed++, 0.1, 2))},
                at);
    expectMatches(o, "f32_batchnorm_folded", 1e-5, 1e-5, "BatchNorm " + ir::Shape::fromExtents(d).str());
  }
  // Statistics that arrive at run time, and training mode, stay on the CPU.
  EXPECT_FALSE(supportedBy(oneNode("BatchNormalization", {input("x", f32({1, 2, 3}, 1)), constant("s", f32({2}, 2)),
                                                          constant("b", f32({2}, 3)), input("m", f32({2}, 4)),
                                                          constant("v", f32({2}, 5, 0.1, 1))})
                               .node(),
                           "f32_batchnorm_folded"));
}

TEST(CudaNormPoolTactic, InstanceAndGroupNorm) {
  const Dims shapes[] = {{1, 1, 1}, {2, 6, 7, 17}, {1, 4, 63}, {3, 6}, {1, 2, 40, 40}, {0, 6, 5}};
  uint32_t seed = 50;
  for (const Dims& d : shapes) {
    const int64_t c = d[1];
    ir::Attributes eps;
    eps.set("epsilon", 1e-4f);
    expectMatches(
        oneNode("InstanceNormalization",
                {input("x", f32(d, seed++, -1, 3)), constant("s", f32({c}, seed++)), constant("b", f32({c}, seed++))},
                eps),
        "f32_instancenorm_rows", 3e-5, 3e-5, "InstanceNorm " + ir::Shape::fromExtents(d).str());
    for (int64_t g : {int64_t(1), int64_t(2), c}) {
      if (c % g) continue;
      ir::Attributes at = eps;
      at.set("num_groups", g);
      expectMatches(
          oneNode("GroupNormalization",
                  {input("x", f32(d, seed++, -1, 3)), input("s", f32({c}, seed++)), input("b", f32({c}, seed++))}, at),
          "f32_groupnorm_rows", 3e-5, 3e-5,
          "GroupNorm " + ir::Shape::fromExtents(d).str() + " groups " + std::to_string(g));
    }
  }
  // f16 stays on the CPU.
  ir::Attributes two;
  two.set("num_groups", int64_t(2));
  const auto h = [](const Dims& d, uint32_t seed) { return randomTensor(DataType::kF16, d, seed); };
  EXPECT_FALSE(
      supportedBy(oneNode("GroupNormalization",
                          {input("x", h({1, 6, 5}, 1)), constant("s", h({6}, 2)), constant("b", h({6}, 3))}, two)
                      .node(),
                  "f32_groupnorm_rows"));
}

// ---- Softmax, LogSoftmax ----

TEST(CudaNormPoolTactic, SoftmaxAndLogSoftmaxEveryAxis) {
  struct C {
    Dims x;
    int64_t axis;
  };
  const C cases[] = {{{7, 17}, -1},  {{3, 300}, 1},   {{1, 1}, 0}, {{5, 7}, 0},
                     {{2, 3, 4}, 1}, {{2, 3, 4}, -3}, {{0, 5}, 1}};
  uint32_t seed = 10;
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    const std::string kernel = std::string(op) == "Softmax" ? "f32_softmax_any_axis" : "f32_log_softmax_any_axis";
    for (const C& c : cases) {
      ir::Attributes at;
      at.set("axis", c.axis);
      const OneNode o = oneNode(op, {input("x", f32(c.x, seed++, -5, 5))}, at);
      expectMatches(o, kernel, 1e-5, 1e-5,
                    std::string(op) + " " + ir::Shape::fromExtents(c.x).str() + " axis " + std::to_string(c.axis));
    }
  }
  EXPECT_FALSE(supportedBy(oneNode("Softmax", {input("x", randomTensor(DataType::kF16, {3, 7}, 1))}).node(),
                           "f32_softmax_any_axis"));
}

// ---- Reductions ----

TEST(CudaNormPoolTactic, ReductionsAxesKeepdimsAndNoop) {
  struct C {
    Dims x;
    std::optional<Dims> axes;
    int64_t keep;
  };
  const std::vector<C> cases = {{{3, 7, 17}, Dims{-1}, 1},
                                {{3, 7, 17}, Dims{0}, 0},
                                {{3, 7, 17}, Dims{1}, 1},
                                {{3, 7, 17}, Dims{0, 2}, 0},
                                {{3, 7, 17}, std::nullopt, 1},
                                {{3, 7, 17}, Dims{}, 0},
                                {{2, 300}, Dims{1}, 0},
                                {{300, 2}, Dims{0}, 1},
                                {{1, 63}, Dims{-1, 0}, 1},
                                {{2, 3, 4, 5, 6}, Dims{1, 3}, 1},
                                {{7}, Dims{0}, 0},
                                {{40, 50}, Dims{1}, 1},
                                {{0, 5}, Dims{1}, 1},
                                {{4, 0}, Dims{1}, 0}};
  const std::pair<const char*, const char*> ops[] = {
      {"ReduceSum", "f32_reduce_sum"},        {"ReduceMean", "f32_reduce_mean"},
      {"ReduceMax", "f32_reduce_max"},        {"ReduceMin", "f32_reduce_min"},
      {"ReduceProd", "f32_reduce_prod"},      {"ReduceL1", "f32_reduce_l1"},
      {"ReduceL2", "f32_reduce_l2"},          {"ReduceSumSquare", "f32_reduce_sum_square"},
      {"ReduceLogSum", "f32_reduce_log_sum"}, {"ReduceLogSumExp", "f32_reduce_log_sum_exp"}};
  uint32_t seed = 100;
  for (const auto& [op, kernel] : ops) {
    for (const C& c : cases) {
      ir::Attributes at;
      at.set("keepdims", c.keep);
      // Positive inputs near 1 keep products and logs of sums finite and well conditioned.
      const bool positive = std::string(op) == "ReduceProd" || std::string(op) == "ReduceLogSum";
      std::vector<Arg> args = {input("x", positive ? f32(c.x, seed++, 0.9, 1.1) : f32(c.x, seed++))};
      if (c.axes) args.push_back(constant("axes", ints(*c.axes)));
      const OneNode o = oneNode(op, args, at);
      std::string axes = "none";
      if (c.axes) axes = ir::Shape::fromExtents(*c.axes).str();
      expectMatches(o, kernel, 1e-4, 1e-4, std::string(op) + " " + ir::Shape::fromExtents(c.x).str() + " axes " + axes);
    }
    // noop_with_empty_axes: the input unchanged.
    ir::Attributes at;
    at.set("noop_with_empty_axes", int64_t(1));
    expectMatches(oneNode(op, {input("x", f32({3, 7}, seed++))}, at), kernel, 0, 0, std::string(op) + " noop");
    // Axes known only at run time go to the CPU.
    EXPECT_FALSE(supportedBy(oneNode(op, {input("x", f32({3, 7}, 1)), input("axes", ints({1}))}).node(), kernel));
  }
}

TEST(CudaNormPoolTactic, ReduceLogSumExpInfinitiesAndNaN) {
  for (const Dims& d : {Dims{3, 300}, Dims{3, 5}}) {
    ir::Tensor x = f32(d, 8);
    for (int64_t i = 0; i < d[1]; ++i) x.setDouble(i, -std::numeric_limits<double>::infinity());  // row 0: all -inf
    x.setDouble(d[1] + 2, std::numeric_limits<double>::quiet_NaN());                              // row 1: a NaN
    expectMatches(oneNode("ReduceLogSumExp", {input("x", x), constant("axes", ints({1}))}), "f32_reduce_log_sum_exp",
                  1e-5, 1e-5, "ReduceLogSumExp " + ir::Shape::fromExtents(d).str());
  }
}

TEST(CudaNormPoolTactic, ReduceMaxMinPropagateNaN) {
  ir::Tensor x = f32({3, 300}, 7);
  x.setDouble(5, std::numeric_limits<double>::quiet_NaN());
  x.setDouble(310, std::numeric_limits<double>::quiet_NaN());
  for (const char* op : {"ReduceMax", "ReduceMin"}) {
    const std::string kernel = std::string(op) == "ReduceMax" ? "f32_reduce_max" : "f32_reduce_min";
    expectMatches(oneNode(op, {input("x", x), constant("axes", ints({1}))}), kernel, 0, 0, std::string(op) + " NaN");
    expectMatches(oneNode(op, {input("x", x), constant("axes", ints({0}))}), kernel, 0, 0,
                  std::string(op) + " NaN cols");
  }
}

TEST(CudaNormPoolTactic, ArgMaxArgMinAxesTiesAndNaN) {
  uint32_t seed = 250;
  for (const char* op : {"ArgMax", "ArgMin"}) {
    const std::string kernel = std::string(op) == "ArgMax" ? "f32_argmax_gridstride" : "f32_argmin_gridstride";
    for (const Dims& d : {Dims{7, 17}, Dims{3, 5, 63}, Dims{1}, Dims{0, 4}})
      for (int64_t axis = -int64_t(d.size()); axis < int64_t(d.size()); ++axis)
        for (int64_t keep : {0, 1})
          for (int64_t last : {0, 1}) {
            if (d[size_t(axis < 0 ? axis + int64_t(d.size()) : axis)] == 0) continue;
            // Few distinct values: ties on purpose; and a NaN.
            ir::Tensor x = randomTensor(DataType::kF32, d, seed++, 0, 4);
            if (x.numel() > 5) x.setDouble(5, std::numeric_limits<double>::quiet_NaN());
            ir::Attributes at;
            at.set("axis", axis);
            at.set("keepdims", keep);
            at.set("select_last_index", last);
            expectMatches(oneNode(op, {input("x", x)}, at), kernel, 0, 0,
                          std::string(op) + " " + ir::Shape::fromExtents(d).str() + " axis " + std::to_string(axis) +
                              " keepdims " + std::to_string(keep) + " last " + std::to_string(last));
          }
  }
}

TEST(CudaNormPoolTactic, CumSumAxesModesAndTypes) {
  uint32_t seed = 270;
  for (DataType t : {DataType::kF32, DataType::kI32, DataType::kI64})
    for (const Dims& d : {Dims{7, 17}, Dims{2, 3, 63}, Dims{1}, Dims{0, 3}})
      for (int64_t axis = -int64_t(d.size()); axis < int64_t(d.size()); ++axis)
        for (int64_t mode = 0; mode < 4; ++mode) {
          ir::Attributes at;
          at.set("exclusive", mode & 1);
          at.set("reverse", mode >> 1);
          const ir::Tensor x = randomTensor(t, d, seed++, -50, 50);
          const ir::Tensor ax = ir::Tensor::fromVector<int64_t>(DataType::kI64, {}, {axis});
          expectMatches(oneNode("CumSum", {input("x", x), constant("axis", ax)}, at), "cumsum_column_scan", 1e-4, 1e-5,
                        std::string("CumSum ") + ir::dtypeName(t) + " " + ir::Shape::fromExtents(d).str() + " axis " +
                            std::to_string(axis) + " mode " + std::to_string(mode));
        }
  // An axis known only at run time stays on the CPU.
  EXPECT_FALSE(supportedBy(oneNode("CumSum", {input("x", f32({3, 4}, 1)), input("axis", ints({1}))}).node(),
                           "cumsum_column_scan"));
}

// ---- Pools ----

TEST(CudaNormPoolTactic, MaxAndAveragePoolAttributeForms) {
  struct C {
    Dims x;
    Dims kernel, strides, pads, dilations;
    int64_t ceil;
    std::string autoPad;
  };
  const std::vector<C> cases = {{{1, 3, 7, 17}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 0, "NOTSET"},
                                {{2, 2, 7, 17}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {1, 1}, 1, "NOTSET"},
                                {{1, 1, 17, 63}, {2, 3}, {1, 2}, {0, 1, 1, 0}, {2, 1}, 0, "NOTSET"},
                                {{1, 2, 7, 7}, {3, 3}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 0, "SAME_UPPER"},
                                {{1, 2, 8, 9}, {2, 4}, {3, 2}, {0, 0, 0, 0}, {1, 1}, 0, "SAME_LOWER"},
                                {{1, 1, 7, 17}, {7, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 0, "VALID"},
                                {{1, 1, 5, 5}, {2, 2}, {2, 2}, {0, 0, 0, 0}, {1, 1}, 1, "NOTSET"},
                                {{1, 1, 1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 0, "NOTSET"},
                                {{0, 3, 7, 7}, {3, 3}, {1, 1}, {0, 0, 0, 0}, {1, 1}, 0, "NOTSET"}};
  uint32_t seed = 300;
  for (const C& c : cases) {
    for (int include = 0; include < 2; ++include) {
      ir::Attributes at;
      at.set("kernel_shape", c.kernel);
      at.set("strides", c.strides);
      if (c.autoPad == "NOTSET") at.set("pads", c.pads);
      at.set("dilations", c.dilations);
      at.set("ceil_mode", c.ceil);
      at.set("auto_pad", c.autoPad);
      const std::string what = ir::Shape::fromExtents(c.x).str() + " k" + ir::Shape::fromExtents(c.kernel).str() + " " +
                               c.autoPad + " ceil " + std::to_string(c.ceil);
      if (include == 0)
        expectMatches(oneNode("MaxPool", {input("x", f32(c.x, seed++))}, at), "f32_maxpool2d_gridstride256", 0, 0,
                      "MaxPool " + what);
      at.set("count_include_pad", int64_t(include));
      expectMatches(oneNode("AveragePool", {input("x", f32(c.x, seed++))}, at), "f32_avgpool2d_gridstride256", 1e-6,
                    1e-6, "AveragePool include_pad " + std::to_string(include) + " " + what);
    }
  }
}

TEST(CudaNormPoolTactic, Pool1d) {
  struct C {
    Dims x, kernel, strides, pads, dilations;
    int64_t ceil;
    std::string autoPad;
  };
  const std::vector<C> cases = {{{2, 3, 17}, {3}, {2}, {1, 1}, {1}, 0, "NOTSET"},
                                {{1, 2, 63}, {4}, {3}, {2, 0}, {2}, 1, "NOTSET"},
                                {{1, 1, 7}, {2}, {2}, {0, 0}, {1}, 0, "SAME_UPPER"},
                                {{1, 1, 7}, {1}, {1}, {0, 0}, {1}, 0, "VALID"}};
  uint32_t seed = 350;
  for (const C& c : cases)
    for (int include = 0; include < 2; ++include) {
      ir::Attributes at;
      at.set("kernel_shape", c.kernel);
      at.set("strides", c.strides);
      if (c.autoPad == "NOTSET") at.set("pads", c.pads);
      at.set("dilations", c.dilations);
      at.set("ceil_mode", c.ceil);
      at.set("auto_pad", c.autoPad);
      const std::string what = ir::Shape::fromExtents(c.x).str() + " " + c.autoPad;
      if (include == 0)
        expectMatches(oneNode("MaxPool", {input("x", f32(c.x, seed++))}, at), "f32_maxpool2d_gridstride256", 0, 0,
                      "MaxPool 1-D " + what);
      at.set("count_include_pad", int64_t(include));
      expectMatches(oneNode("AveragePool", {input("x", f32(c.x, seed++))}, at), "f32_avgpool2d_gridstride256", 1e-6,
                    1e-6, "AveragePool 1-D " + what);
    }
}

TEST(CudaNormPoolTactic, PoolRefusals) {
  ir::Attributes at;
  at.set("kernel_shape", Dims{2, 2});
  // Indices output, 3-D windows, storage_order.
  EXPECT_FALSE(
      supportedBy(oneNode("MaxPool", {input("x", f32({1, 1, 4, 4}, 1))}, at, 2).node(), "f32_maxpool2d_gridstride256"));
  ir::Attributes a3;
  a3.set("kernel_shape", Dims{2, 2, 2});
  EXPECT_FALSE(supportedBy(oneNode("AveragePool", {input("x", f32({1, 1, 4, 4, 4}, 1))}, a3).node(),
                           "f32_avgpool2d_gridstride256"));
  ir::Attributes so = at;
  so.set("storage_order", int64_t(1));
  EXPECT_FALSE(
      supportedBy(oneNode("MaxPool", {input("x", f32({1, 1, 4, 4}, 1))}, so).node(), "f32_maxpool2d_gridstride256"));
  // u8 MaxPool (the reference serves it) stays on the CPU.
  EXPECT_FALSE(
      supportedBy(oneNode("MaxPool", {input("x", randomTensor(DataType::kU8, {1, 1, 4, 4}, 1, 0, 9))}, at).node(),
                  "f32_maxpool2d_gridstride256"));
}

TEST(CudaNormPoolTactic, GlobalPools) {
  const Dims shapes[] = {{2, 3, 7, 17}, {1, 1, 17, 63}, {1, 5, 1, 1}, {2, 3, 7}, {1, 2, 3, 4, 5}, {0, 3, 4, 4}};
  uint32_t seed = 500;
  for (const Dims& d : shapes) {
    expectMatches(oneNode("GlobalAveragePool", {input("x", f32(d, seed++))}), "f32_global_average_pool", 1e-5, 1e-5,
                  "GlobalAveragePool " + ir::Shape::fromExtents(d).str());
    expectMatches(oneNode("GlobalMaxPool", {input("x", f32(d, seed++))}), "f32_global_max_pool", 0, 0,
                  "GlobalMaxPool " + ir::Shape::fromExtents(d).str());
  }
  EXPECT_FALSE(
      supportedBy(oneNode("GlobalAveragePool", {input("x", f32({1, 3, 0, 4}, 1))}).node(), "f32_global_average_pool"));
}

TEST(CudaNormPoolTactic, LaunchersCheckArguments) {
  auto rt = simRuntime();
  float* buf = static_cast<float*>(rt->allocate(64 * sizeof(float)));
  EXPECT_THROW(launchLayerNorm(*rt, Stream{}, buf, nullptr, nullptr, buf, 2, 8, 1e-5f), Error);  // no scale
  EXPECT_THROW(launchLayerNorm(*rt, Stream{}, buf, buf, nullptr, buf, -1, 8, 1e-5f), Error);
  EXPECT_THROW(launchSoftmaxAxis(*rt, Stream{}, true, nullptr, buf, 2, 3, 4), Error);
  const int64_t dims[13] = {2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2};
  EXPECT_THROW(launchReduce(*rt, Stream{}, ReduceKind::kSum, buf, buf, 13, dims, 1), Error);  // rank 13
  Pool2dDesc p;
  p.x = buf;
  p.y = buf;
  p.n = p.c = 1;
  p.h = p.w = p.oh = p.ow = 2;
  p.sh = 0;
  EXPECT_THROW(launchPool2d(*rt, Stream{}, p), Error);
  rt->synchronizeDevice();
  rt->free(buf);
}

// The kernels' row and grid-stride loops: a grid far smaller than the work (each block, warp or
// thread takes several turns) writes the same bits as one block or thread per item.
TEST(CudaNormPoolTactic, GridStrideLoopsCoverTheWork) {
  using namespace kernels;
  const ir::Tensor xt = f32({40, 1100}, 77);
  const float* x = static_cast<const float*>(xt.raw());
  const ir::Tensor st = f32({1100}, 78);
  const float* scale = static_cast<const float*>(st.raw());
  auto same = [](const std::vector<float>& a, const std::vector<float>& b, const char* what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    EXPECT_EQ(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)), 0) << what;
  };
  {  // LayerNorm, a warp per row: 40 rows of 100 in 1 block (8 warps) against 5.
    std::vector<float> small(4000), big(4000);
    const LayerNormArgs a{x, scale, scale, small.data(), 40, 100, 1, 100, 1, 1e-5f};
    LayerNormArgs b = a;
    b.y = big.data();
    sim::launch(dim3(1), dim3(256), 0, &f32_layernorm_row_warp<256>, a);
    sim::launch(dim3(5), dim3(256), 0, &f32_layernorm_row_warp<256>, b);
    same(small, big, "layernorm warp");
  }
  {  // LayerNorm, a block per row: 7 rows of 1100 in 2 blocks against 7.
    std::vector<float> small(7700), big(7700);
    const LayerNormArgs a{x, scale, nullptr, small.data(), 7, 1100, 1, 1100, 1, 1e-5f};
    LayerNormArgs b = a;
    b.y = big.data();
    sim::launch(dim3(2), dim3(256), 0, &f32_layernorm_row_block<256>, a);
    sim::launch(dim3(7), dim3(256), 0, &f32_layernorm_row_block<256>, b);
    same(small, big, "layernorm block");
  }
  {  // Reductions: 9 sums of 1100 by block (2 blocks against 9); 1000 maxima of 44 by thread.
    ReduceArgs r{};
    r.x = x;
    r.outputs = 9, r.count = 1100, r.keptRank = 1, r.redRank = 1;
    r.keptDims[0] = 9, r.keptStrides[0] = 1100, r.redDims[0] = 1100, r.redStrides[0] = 1;
    std::vector<float> small(9), big(9);
    r.y = small.data();
    sim::launch(dim3(2), dim3(256), 0, &f32_reduce_block<256, kReduceSum>, r);
    r.y = big.data();
    sim::launch(dim3(9), dim3(256), 0, &f32_reduce_block<256, kReduceSum>, r);
    same(small, big, "reduce block");
    ReduceArgs t{};
    t.x = x;
    t.outputs = 1000, t.count = 44, t.keptRank = 1, t.redRank = 1;
    t.keptDims[0] = 1000, t.keptStrides[0] = 44, t.redDims[0] = 44, t.redStrides[0] = 1;
    std::vector<float> tsmall(1000), tbig(1000);
    t.y = tsmall.data();
    sim::launch(dim3(1), dim3(256), 0, &f32_reduce_thread<kReduceMax>, t);
    t.y = tbig.data();
    sim::launch(dim3(4), dim3(256), 0, &f32_reduce_thread<kReduceMax>, t);
    same(tsmall, tbig, "reduce thread");
  }
  {  // Pool: 1600 outputs (2 x 2 max over [4, 40, 40]) through one block.
    std::vector<float> small(4 * 20 * 20), big(small.size());
    Pool2dArgs p{x, small.data(), 4, 40, 40, 20, 20, 2, 2, 2, 2, 1, 1, 0, 0, 0};
    sim::launch(dim3(1), dim3(256), 0, &f32_pool2d_gridstride<true>, p);
    p.y = big.data();
    sim::launch(dim3(7), dim3(256), 0, &f32_pool2d_gridstride<true>, p);
    same(small, big, "maxpool");
  }
}

}  // namespace
}  // namespace anvil::cuda::testing
