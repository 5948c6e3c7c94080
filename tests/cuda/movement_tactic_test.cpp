// The CUDA tactics of cuda/tactics/movement.cpp against the reference interpreter on the sim
// runtime: Transpose, Concat, Split, Slice, Gather and Pad over elements of 1, 2, 4 and 8
// bytes, odd shapes, negative axes and steps, empty tensors, and what supports() refuses.
#include <limits>

#include "anvil/error.h"
#include "cuda/kernels/movement.cuh"
#include "cuda/movement.h"
#include "normmove_test_util.h"

namespace anvil::cuda::testing {
namespace {

using Dims = std::vector<int64_t>;
const DataType kTypes[] = {DataType::kF32, DataType::kF16,  DataType::kI64,
                           DataType::kU8,  DataType::kBool, DataType::kI32};

ir::Tensor data(DataType t, const Dims& d, uint32_t seed) {
  return randomTensor(t, d, seed, 0, t == DataType::kBool ? 2 : 100);
}
std::string str(const Dims& d) { return ir::Shape::fromExtents(d).str(); }

TEST(CudaMovementTactic, TransposeEveryPermAndDtype) {
  struct C {
    Dims x;
    std::optional<Dims> perm;
  };
  const std::vector<C> cases = {{{7, 17}, Dims{1, 0}},
                                {{2, 3, 4, 5}, Dims{0, 2, 1, 3}},
                                {{2, 3, 4, 5}, Dims{3, 1, 0, 2}},
                                {{2, 3, 4}, std::nullopt},
                                {{1, 7, 1, 17}, Dims{2, 3, 0, 1}},
                                {{2, 1, 3, 2, 1, 3}, Dims{5, 4, 3, 2, 1, 0}},
                                {{0, 3}, Dims{1, 0}},
                                {{63}, Dims{0}},
                                {{4, 5}, Dims{-1, -2}}};
  // Copies that swap the innermost dim run as 32x32 shared-memory tiles: several tiles with
  // ragged edges, batches over the other dims.
  const std::vector<C> tiled = {
      {{2, 65, 70}, Dims{0, 2, 1}}, {{3, 33, 5, 40}, Dims{0, 3, 2, 1}}, {{40, 2, 33}, Dims{2, 1, 0}}};
  uint32_t seed = 1;
  for (DataType t : {DataType::kF32, DataType::kU8, DataType::kI64, DataType::kF16})
    for (const C& c : tiled) {
      ir::Attributes at;
      at.set("perm", *c.perm);
      expectMatches(oneNode("Transpose", {input("x", data(t, c.x, seed++))}, at), "transpose_strided_copy", 0, 0,
                    std::string("Transpose tiled ") + ir::dtypeName(t) + " " + str(c.x));
    }
  for (DataType t : kTypes)
    for (const C& c : cases) {
      ir::Attributes at;
      if (c.perm) at.set("perm", *c.perm);
      expectMatches(oneNode("Transpose", {input("x", data(t, c.x, seed++))}, at), "transpose_strided_copy", 0, 0,
                    std::string("Transpose ") + ir::dtypeName(t) + " " + str(c.x));
    }
  // Rank 7 and strings stay on the CPU.
  EXPECT_FALSE(supportedBy(oneNode("Transpose", {input("x", data(DataType::kF32, {1, 2, 1, 2, 1, 2, 1}, 1))}).node(),
                           "transpose_strided_copy"));
}

TEST(CudaMovementTactic, ConcatAxesAndDtypes) {
  uint32_t seed = 100;
  for (DataType t : kTypes) {
    const std::pair<int64_t, std::vector<Dims>> cases[] = {{0, {{1, 17}, {7, 17}, {3, 17}}},
                                                           {1, {{2, 3, 5}, {2, 1, 5}, {2, 0, 5}, {2, 7, 5}}},
                                                           {-1, {{3, 4, 1}, {3, 4, 63}}},
                                                           {-2, {{7, 2}}}};
    for (const auto& [axis, shapes] : cases) {
      ir::Attributes at;
      at.set("axis", axis);
      std::vector<Arg> args;
      for (size_t i = 0; i < shapes.size(); ++i)
        args.push_back(input("x" + std::to_string(i), data(t, shapes[i], seed++)));
      expectMatches(oneNode("Concat", args, at), "concat_strided_copy", 0, 0,
                    std::string("Concat ") + ir::dtypeName(t) + " axis " + std::to_string(axis));
    }
  }
  // A constant input is fine (it is uploaded like any other).
  ir::Attributes at;
  at.set("axis", int64_t(0));
  expectMatches(
      oneNode("Concat", {input("a", data(DataType::kI64, {2, 3}, 1)), constant("b", data(DataType::kI64, {1, 3}, 2))},
              at),
      "concat_strided_copy", 0, 0, "Concat with a constant");
}

TEST(CudaMovementTactic, SplitSizesEqualChunksAndAxes) {
  uint32_t seed = 200;
  for (DataType t : kTypes) {
    ir::Attributes a1;
    a1.set("axis", int64_t(1));
    expectMatches(oneNode("Split", {input("x", data(t, {3, 17, 2}, seed++)), constant("s", ints({5, 0, 12}))}, a1, 3),
                  "split_strided_copy", 0, 0, std::string("Split sizes ") + ir::dtypeName(t));
    ir::Attributes a2;
    a2.set("axis", int64_t(-1));
    expectMatches(oneNode("Split", {input("x", data(t, {2, 7}, seed++))}, a2, 3), "split_strided_copy", 0, 0,
                  std::string("Split equal chunks ") + ir::dtypeName(t));
    expectMatches(oneNode("Split", {input("x", data(t, {6, 5}, seed++))}, {}, 2), "split_strided_copy", 0, 0,
                  std::string("Split axis 0 ") + ir::dtypeName(t));
  }
  EXPECT_FALSE(supportedBy(
      oneNode("Split", {input("x", data(DataType::kF32, {4, 4}, 1)), input("s", ints({2, 2}))}, {}, 2).node(),
      "split_strided_copy"));
}

TEST(CudaMovementTactic, SliceStartsEndsAxesSteps) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max(), kMin = std::numeric_limits<int64_t>::min();
  struct C {
    Dims x, starts, ends;
    std::optional<Dims> axes, steps;
  };
  const std::vector<C> cases = {
      {{7, 17}, {1, 2}, {5, 15}, std::nullopt, std::nullopt},
      {{7, 17}, {-3}, {kMax}, Dims{1}, std::nullopt},
      {{7, 17}, {kMax, -1}, {kMin, 0}, Dims{0, -1}, Dims{-1, -3}},
      {{2, 3, 63}, {0, 60}, {2, 3}, Dims{0, 2}, Dims{1, -7}},
      {{2, 3, 63}, {1}, {kMax}, Dims{2}, Dims{5}},
      {{5, 6}, {3}, {1}, Dims{0}, std::nullopt},  // empty
      {{5, 6}, {-100}, {100}, Dims{1}, Dims{2}},
      {{1}, {0}, {1}, std::nullopt, std::nullopt},
      {{0, 4}, {0}, {2}, Dims{1}, std::nullopt},
      {{3, 4}, {1, 2}, {kMax, kMax}, std::nullopt, Dims{kMax, kMax - 1}},  // one element per axis
      {{3, 4}, {-1}, {kMin}, Dims{0}, Dims{kMin + 1}}};
  uint32_t seed = 300;
  for (DataType t : {DataType::kF32, DataType::kI64, DataType::kU8, DataType::kF16}) {
    for (const C& c : cases) {
      std::vector<Arg> args = {input("x", data(t, c.x, seed++)), constant("starts", ints(c.starts)),
                               constant("ends", ints(c.ends))};
      if (c.axes || c.steps) args.push_back(c.axes ? constant("axes", ints(*c.axes)) : omitted());
      if (c.steps) args.push_back(constant("steps", ints(*c.steps)));
      expectMatches(oneNode("Slice", args), "slice_strided_copy", 0, 0,
                    std::string("Slice ") + ir::dtypeName(t) + " " + str(c.x) + " starts " + str(c.starts));
    }
  }
  EXPECT_FALSE(supportedBy(
      oneNode("Slice", {input("x", data(DataType::kF32, {4, 4}, 1)), input("s", ints({1})), constant("e", ints({3}))})
          .node(),
      "slice_strided_copy"));
}

TEST(CudaMovementTactic, GatherAxesIndexTypesAndNegatives) {
  uint32_t seed = 400;
  for (DataType t : kTypes) {
    for (DataType it : {DataType::kI64, DataType::kI32}) {
      struct C {
        Dims x;
        int64_t axis;
        Dims idxDims;
        std::vector<int64_t> idx;
      };
      const C cases[] = {{{10, 8}, 0, {2, 3}, {0, 9, -1, -10, 3, 3}},
                         {{3, 7, 5}, 1, {4}, {6, -7, 2, 0}},
                         {{3, 7, 5}, -1, {}, {-2}},
                         {{17}, 0, {1, 1}, {16}},
                         {{4, 6}, 1, {0}, {}}};
      for (const C& c : cases) {
        ir::Tensor idx(it, c.idxDims);
        for (size_t i = 0; i < c.idx.size(); ++i) idx.setDouble(int64_t(i), double(c.idx[i]));
        ir::Attributes at;
        at.set("axis", c.axis);
        expectMatches(oneNode("Gather", {input("x", data(t, c.x, seed++)), input("i", idx)}, at), "gather_gridstride",
                      0, 0,
                      std::string("Gather ") + ir::dtypeName(t) + " by " + ir::dtypeName(it) + " " + str(c.x) +
                          " axis " + std::to_string(c.axis));
      }
    }
  }
  // BERT's embedding lookup: a constant table by runtime ids.
  expectMatches(
      oneNode("Gather",
              {constant("table", data(DataType::kF32, {30, 16}, 9)),
               input("ids", ir::Tensor::fromVector<int64_t>(DataType::kI64, {1, 7}, {1, 5, 29, 0, 3, 3, 7}))}),
      "gather_gridstride", 0, 0, "Gather embedding");
}

TEST(CudaMovementTactic, GatherElementsAxesIndexTypes) {
  uint32_t seed = 450;
  struct C {
    Dims x, idx;
    int64_t axis;
  };
  const C cases[] = {
      {{3, 5}, {4, 5}, 0}, {{3, 5}, {3, 2}, 1}, {{2, 7, 3}, {2, 9, 1}, -2}, {{17}, {5}, 0}, {{3, 4}, {0, 4}, 0}};
  for (DataType t : {DataType::kF32, DataType::kU8, DataType::kI64, DataType::kF16})
    for (DataType it : {DataType::kI64, DataType::kI32})
      for (const C& c : cases) {
        const int64_t r = int64_t(c.x.size());
        const int64_t len = c.x[size_t(c.axis < 0 ? c.axis + r : c.axis)];
        ir::Tensor idx(it, c.idx);
        std::mt19937 rng(seed);
        for (int64_t i = 0; i < idx.numel(); ++i) idx.setDouble(i, double(int64_t(rng() % uint32_t(2 * len)) - len));
        ir::Attributes at;
        at.set("axis", c.axis);
        expectMatches(oneNode("GatherElements", {input("x", data(t, c.x, seed++)), input("i", idx)}, at),
                      "gather_elements_gridstride", 0, 0,
                      std::string("GatherElements ") + ir::dtypeName(t) + " by " + ir::dtypeName(it) + " " + str(c.x) +
                          " axis " + std::to_string(c.axis));
      }
}

ir::Tensor indices(const Dims& dims, const std::vector<int64_t>& v) {
  return ir::Tensor::fromVector<int64_t>(DataType::kI64, dims, v);
}

TEST(CudaMovementTactic, GatherNDAndScatterND) {
  uint32_t seed = 470;
  for (DataType t : {DataType::kF32, DataType::kU8, DataType::kI64, DataType::kF16}) {
    // GatherND: full tuples, partial tuples (slices), negative indices, batch dims.
    struct G {
      Dims x, idxDims;
      std::vector<int64_t> idx;
      int64_t batch;
    };
    const G gathers[] = {{{3, 4}, {2, 2}, {0, 1, -1, 3}, 0},
                         {{3, 4, 5}, {2, 1}, {2, -3}, 0},
                         {{2, 3, 4}, {2, 2, 1}, {1, 2, 0, 1}, 1},
                         {{2, 3, 4}, {2, 2}, {1, 3, 2, 0}, 1},
                         {{5, 7}, {0, 1}, {}, 0}};
    for (const G& g : gathers) {
      ir::Attributes at;
      at.set("batch_dims", g.batch);
      expectMatches(oneNode("GatherND", {input("x", data(t, g.x, seed++)), input("i", indices(g.idxDims, g.idx))}, at),
                    "gather_nd_gridstride", 0, 0,
                    std::string("GatherND ") + ir::dtypeName(t) + " " + str(g.x) + " by " + str(g.idxDims));
    }
    // ScatterND: elements, rows, negative indices (distinct tuples).
    struct S {
      Dims x, idxDims;
      std::vector<int64_t> idx;
      Dims upd;
    };
    const S scatters[] = {{{4, 5}, {3, 2}, {0, 1, 3, -1, 2, 2}, {3}},
                          {{4, 5}, {2, 1}, {-1, 1}, {2, 5}},
                          {{2, 3, 4}, {2, 2}, {1, 2, 0, 0}, {2, 4}},
                          {{3}, {0, 1}, {}, {0}}};
    for (const S& c : scatters)
      expectMatches(oneNode("ScatterND", {input("x", data(t, c.x, seed++)), input("i", indices(c.idxDims, c.idx)),
                                          input("u", data(t, c.upd, seed++))}),
                    "scatter_nd_copy_scatter", 0, 0,
                    std::string("ScatterND ") + ir::dtypeName(t) + " " + str(c.x) + " by " + str(c.idxDims));
  }
  ir::Attributes add;
  add.set("reduction", std::string("add"));
  EXPECT_FALSE(supportedBy(oneNode("ScatterND",
                                   {input("x", data(DataType::kF32, {4}, 1)), input("i", indices({1, 1}, {2})),
                                    input("u", data(DataType::kF32, {1}, 2))},
                                   add)
                               .node(),
                           "scatter_nd_copy_scatter"));
}

TEST(CudaMovementTactic, PadConstantValuesAxesAndCrops) {
  struct C {
    Dims x, pads;
    std::optional<Dims> axes;
  };
  const std::vector<C> cases = {{{3, 5}, {1, 2, 0, 3}, std::nullopt}, {{2, 3, 7}, {0, 1, 2, 1, 0, 3}, std::nullopt},
                                {{2, 3, 7}, {2, -3}, Dims{-1}},       {{4, 6}, {-1, -2, -1, 1}, std::nullopt},
                                {{1}, {0, 0}, std::nullopt},          {{0, 3}, {1, 0, 1, 0}, std::nullopt}};
  uint32_t seed = 500;
  for (DataType t : {DataType::kF32, DataType::kI64, DataType::kU8, DataType::kF16}) {
    for (const C& c : cases) {
      ir::Tensor value(t, {});
      value.setDouble(0, 7);
      std::vector<Arg> args = {input("x", data(t, c.x, seed++)), constant("pads", ints(c.pads)), constant("v", value)};
      if (c.axes) args.push_back(constant("axes", ints(*c.axes)));
      expectMatches(oneNode("Pad", args), "pad_constant_fill_copy", 0, 0,
                    std::string("Pad ") + ir::dtypeName(t) + " " + str(c.x) + " pads " + str(c.pads));
    }
  }
  // Edge, wrap and reflect, pads past the extent (several periods) and crops.
  for (const char* mode : {"edge", "wrap", "reflect"})
    for (DataType t : {DataType::kF32, DataType::kU8, DataType::kI64})
      for (const C& c : std::vector<C>{{{3, 5}, {1, 2, 0, 3}, std::nullopt},
                                       {{2, 3, 4}, {0, 7, 2, 1, 0, 9}, std::nullopt},
                                       {{2, 3, 4}, {2, -1}, Dims{-1}},
                                       {{1, 2}, {3, 0, 2, 5}, std::nullopt},
                                       {{4}, {-1, 2}, std::nullopt}}) {
        ir::Attributes at;
        at.set("mode", std::string(mode));
        std::vector<Arg> args = {input("x", data(t, c.x, seed++)), constant("pads", ints(c.pads))};
        if (c.axes) args.push_back(omitted()), args.push_back(constant("axes", ints(*c.axes)));
        expectMatches(oneNode("Pad", args, at), "pad_edge_wrap_reflect_index", 0, 0,
                      std::string("Pad ") + mode + " " + ir::dtypeName(t) + " " + str(c.x) + " pads " + str(c.pads));
      }
  // No value: zeros.
  expectMatches(oneNode("Pad", {input("x", data(DataType::kF32, {3, 3}, 1)), constant("pads", ints({1, 1, 1, 1}))}),
                "pad_constant_fill_copy", 0, 0, "Pad zeros");
  ir::Attributes refl;
  refl.set("mode", std::string("reflect"));
  EXPECT_FALSE(supportedBy(
      oneNode("Pad", {input("x", data(DataType::kF32, {3, 3}, 1)), constant("pads", ints({1, 1, 1, 1}))}, refl).node(),
      "pad_constant_fill_copy"));
  // Pads known only at run time stay on the CPU.
  EXPECT_FALSE(supportedBy(
      oneNode("Pad", {input("x", data(DataType::kF32, {3, 3}, 1)), input("pads", ints({1, 1, 1, 1}))}, refl).node(),
      "pad_edge_wrap_reflect_index"));
}

TEST(CudaMovementTactic, ExpandBroadcastsEveryDtype) {
  struct C {
    Dims x, shape;
  };
  const C cases[] = {{{1, 17}, {7, 17}},     {{3, 1}, {2, 3, 63}}, {{1}, {1, 1, 5}}, {{2, 1, 4}, {2, 3, 1}},
                     {{7, 1, 1}, {7, 2, 3}}, {{1, 3}, {0, 3}},     {{2, 2}, {2, 2}}};
  uint32_t seed = 700;
  for (DataType t : kTypes)
    for (const C& c : cases)
      expectMatches(oneNode("Expand", {input("x", data(t, c.x, seed++)), constant("shape", ints(c.shape))}),
                    "expand_strided_copy", 0, 0,
                    std::string("Expand ") + ir::dtypeName(t) + " " + str(c.x) + " to " + str(c.shape));
}

TEST(CudaMovementTactic, TileRepeats) {
  struct C {
    Dims x, rep;
  };
  const C cases[] = {
      {{7, 17}, {2, 3}}, {{3}, {5}}, {{2, 1, 3}, {1, 4, 1}}, {{2, 3}, {0, 2}}, {{1, 2, 1, 2}, {2, 1, 3, 1}},
      {{5, 1}, {1, 1}}};
  uint32_t seed = 800;
  for (DataType t : kTypes)
    for (const C& c : cases)
      expectMatches(oneNode("Tile", {input("x", data(t, c.x, seed++)), constant("r", ints(c.rep))}),
                    "tile_strided_copy", 0, 0,
                    std::string("Tile ") + ir::dtypeName(t) + " " + str(c.x) + " by " + str(c.rep));
  EXPECT_FALSE(supportedBy(
      oneNode("Tile", {input("x", data(DataType::kF32, {2, 2, 2, 2}, 1)), constant("r", ints({2, 2, 2, 2}))}).node(),
      "tile_strided_copy"));  // eight copy dims
}

TEST(CudaMovementTactic, DepthToSpaceAndBack) {
  uint32_t seed = 900;
  for (DataType t : {DataType::kF32, DataType::kU8, DataType::kI64, DataType::kF16})
    for (int64_t b : {1, 2, 3}) {
      for (const char* mode : {"DCR", "CRD"}) {
        ir::Attributes at;
        at.set("blocksize", b);
        at.set("mode", std::string(mode));
        expectMatches(oneNode("DepthToSpace", {input("x", data(t, {2, 2 * b * b, 3, 5}, seed++))}, at),
                      "depth_to_space_strided_copy", 0, 0,
                      std::string("DepthToSpace ") + mode + " " + ir::dtypeName(t) + " block " + std::to_string(b));
      }
      ir::Attributes at;
      at.set("blocksize", b);
      expectMatches(oneNode("SpaceToDepth", {input("x", data(t, {2, 3, 2 * b, 5 * b}, seed++))}, at),
                    "space_to_depth_strided_copy", 0, 0,
                    std::string("SpaceToDepth ") + ir::dtypeName(t) + " block " + std::to_string(b));
    }
}

ir::Tensor floats(const std::vector<float>& v) {
  return ir::Tensor::fromVector<float>(DataType::kF32, {int64_t(v.size())}, v);
}

TEST(CudaMovementTactic, ResizeNearestModesAndLinear) {
  const char* coords[] = {"half_pixel",         "align_corners",        "asymmetric",
                          "pytorch_half_pixel", "half_pixel_symmetric", "tf_half_pixel_for_nn"};
  const char* nearests[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
  struct C {
    Dims x;
    std::optional<std::vector<float>> scales;
    std::optional<Dims> sizes;
  };
  const std::vector<C> cases = {{{1, 2, 7, 5}, std::vector<float>{1, 1, 2, 3}, std::nullopt},
                                {{1, 1, 17, 7}, std::vector<float>{1, 1, 0.5f, 1.7f}, std::nullopt},
                                {{2, 1, 5, 9}, std::nullopt, Dims{2, 1, 13, 4}},
                                {{1, 1, 1, 1}, std::nullopt, Dims{1, 1, 3, 2}}};
  uint32_t seed = 600;
  for (const C& c : cases)
    for (const char* coord : coords) {
      auto args = [&](DataType t) {
        std::vector<Arg> v = {input("x", data(t, c.x, seed++)), omitted()};
        if (c.scales)
          v.push_back(constant("scales", floats(*c.scales)));
        else
          v.push_back(omitted()), v.push_back(constant("sizes", ints(*c.sizes)));
        return v;
      };
      const std::string what = std::string(coord) + " " + str(c.x) + (c.scales ? " scales" : " sizes");
      for (const char* nearest : nearests) {
        ir::Attributes at;
        at.set("coordinate_transformation_mode", std::string(coord));
        at.set("nearest_mode", std::string(nearest));
        for (DataType t : {DataType::kF32, DataType::kU8, DataType::kI64, DataType::kF16})
          expectMatches(oneNode("Resize", args(t), at), "resize_nearest_linear_gridstride", 0, 0,
                        std::string("Resize nearest ") + nearest + " " + ir::dtypeName(t) + " " + what);
      }
      for (int exclude = 0; exclude < 2; ++exclude) {
        ir::Attributes at;
        at.set("mode", std::string("linear"));
        at.set("coordinate_transformation_mode", std::string(coord));
        at.set("exclude_outside", int64_t(exclude));
        expectMatches(oneNode("Resize", args(DataType::kF32), at), "resize_nearest_linear_gridstride", 1e-6, 1e-6,
                      "Resize linear exclude " + std::to_string(exclude) + " " + what);
      }
    }
  // The axes attribute: only H and W given.
  ir::Attributes at;
  at.set("axes", Dims{2, -1});
  at.set("mode", std::string("linear"));
  expectMatches(
      oneNode("Resize",
              {input("x", data(DataType::kF32, {1, 3, 4, 6}, 1)), omitted(), constant("scales", floats({2.5f, 0.5f}))},
              at),
      "resize_nearest_linear_gridstride", 1e-6, 1e-6, "Resize linear axes");
}

TEST(CudaMovementTactic, ResizeRefusals) {
  auto node = [](const ir::Attributes& at, bool constantScales = true, DataType t = DataType::kF32) {
    std::vector<Arg> v = {input("x", data(t, {1, 1, 4, 4}, 1)), omitted()};
    v.push_back(constantScales ? constant("scales", floats({1, 1, 2, 2})) : input("scales", floats({1, 1, 2, 2})));
    return oneNode("Resize", v, at);
  };
  const std::string k = "resize_nearest_linear_gridstride";
  ir::Attributes cubic;
  cubic.set("mode", std::string("cubic"));
  EXPECT_FALSE(supportedBy(node(cubic).node(), k));
  ir::Attributes crop;
  crop.set("coordinate_transformation_mode", std::string("tf_crop_and_resize"));
  EXPECT_FALSE(supportedBy(node(crop).node(), k));
  ir::Attributes linearU8;
  linearU8.set("mode", std::string("linear"));
  EXPECT_FALSE(supportedBy(node(linearU8, true, DataType::kU8).node(), k));
  ir::Attributes aa = linearU8;
  aa.set("antialias", int64_t(1));
  EXPECT_FALSE(supportedBy(node(aa).node(), k));
  EXPECT_FALSE(supportedBy(node({}, false).node(), k));  // scales computed at run time
  EXPECT_TRUE(supportedBy(node({}).node(), k));
}

TEST(CudaMovementTactic, LaunchersCheckArguments) {
  auto rt = simRuntime();
  void* buf = rt->allocate(64);
  StridedCopyDesc d;
  d.elementBytes = 3;
  d.src = buf;
  d.dst = buf;
  d.rank = 1;
  d.dims[0] = 4;
  d.srcStrides[0] = d.dstStrides[0] = 1;
  EXPECT_THROW(launchStridedCopy(*rt, Stream{}, d), Error);  // element size
  d.elementBytes = 4;
  d.dstStrides[0] = -1;
  EXPECT_THROW(launchStridedCopy(*rt, Stream{}, d), Error);  // negative destination stride
  d.dstStrides[0] = 1;
  d.dims[0] = 17;  // 68 bytes: past the 64-byte allocation, caught by the sim's range check
  EXPECT_THROW(launchStridedCopy(*rt, Stream{}, d), Error);
  d.rank = 7;  // seven dims of 2 that no merge can fold (strides jump)
  for (int i = 0; i < 7; ++i) d.dims[i] = 2, d.srcStrides[i] = d.dstStrides[i] = int64_t(1) << (2 * (6 - i));
  EXPECT_THROW(launchStridedCopy(*rt, Stream{}, d), Error);
  EXPECT_THROW(launchFill(*rt, Stream{}, 4, nullptr, 3, 0), Error);
  GatherDesc g;
  g.axisLen = -1;
  EXPECT_THROW(launchGather(*rt, Stream{}, g), Error);
  rt->synchronizeDevice();
  rt->free(buf);
}

// The kernels' grid-stride loops: a grid far smaller than the work (each block or thread
// takes several turns) writes the same bytes as the launchers' grids.
TEST(CudaMovementTactic, GridStrideLoopsCoverTheWork) {
  using namespace kernels;
  // Strided copy: a transpose of [37, 29] with one block of 256 threads against 5.
  {
    std::vector<uint32_t> x(37 * 29), small(x.size()), big(x.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = uint32_t(i * 2654435761u);
    StridedCopyArgs a{};
    a.count = 37 * 29;
    a.rank = 2;
    a.dims[0] = 29, a.dims[1] = 37;
    a.srcStrides[0] = 1, a.srcStrides[1] = 29;
    a.dstStrides[0] = 37, a.dstStrides[1] = 1;
    sim::launch(dim3(1), dim3(256), 0, &strided_copy_gridstride<uint32_t>, x.data(), small.data(), a);
    sim::launch(dim3(5), dim3(256), 0, &strided_copy_gridstride<uint32_t>, x.data(), big.data(), a);
    EXPECT_EQ(small, big);
    for (int64_t i = 0; i < 37; ++i)
      for (int64_t j = 0; j < 29; ++j) ASSERT_EQ(small[size_t(j * 37 + i)], x[size_t(i * 29 + j)]);
  }
  // Tiled transpose: 3 batches of 3 x 2 tiles through 2 blocks.
  {
    std::vector<uint16_t> x(3 * 70 * 45), small(x.size()), big(x.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = uint16_t(i * 40503u);
    TiledTransposeArgs t{};
    t.rank = 3, t.a = 2, t.b = 1;
    t.dims[0] = 3, t.dims[1] = 45, t.dims[2] = 70;  // y [3, 45, 70] from x [3, 70, 45]
    t.srcStrides[0] = 70 * 45, t.srcStrides[1] = 1, t.srcStrides[2] = 45;
    t.dstStrides[0] = 45 * 70, t.dstStrides[1] = 70, t.dstStrides[2] = 1;
    t.batches = 3, t.tilesA = 3, t.tilesB = 2;
    sim::launch(dim3(2), dim3(kTransposeTile, kTransposeRows), 0, &tiled_transpose<uint16_t>, x.data(), small.data(),
                t);
    sim::launch(dim3(18), dim3(kTransposeTile, kTransposeRows), 0, &tiled_transpose<uint16_t>, x.data(), big.data(), t);
    EXPECT_EQ(small, big);
    for (int64_t b = 0; b < 3; ++b)
      for (int64_t i = 0; i < 70; ++i)
        for (int64_t j = 0; j < 45; ++j)
          ASSERT_EQ(small[size_t((b * 45 + j) * 70 + i)], x[size_t((b * 70 + i) * 45 + j)]);
  }
  // Gather: 1000 outputs of [10, 4, 25] from [10, 10, 25] through one block.
  {
    std::vector<uint64_t> data(10 * 10 * 25), small(10 * 4 * 25), big(small.size());
    for (size_t i = 0; i < data.size(); ++i) data[i] = i * 0x9e3779b97f4a7c15ull;
    const std::vector<int32_t> idx = {3, -1, 0, 9};
    const GatherArgs g{10, 10, 4, 25};
    sim::launch(dim3(1), dim3(256), 0, &gather_gridstride<uint64_t, int32_t>, data.data(), idx.data(), small.data(), g);
    sim::launch(dim3(4), dim3(256), 0, &gather_gridstride<uint64_t, int32_t>, data.data(), idx.data(), big.data(), g);
    EXPECT_EQ(small, big);
    for (int64_t o = 0; o < 10; ++o)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t i = 0; i < 25; ++i) {
          const int64_t k = idx[size_t(j)] < 0 ? idx[size_t(j)] + 10 : idx[size_t(j)];
          ASSERT_EQ(small[size_t((o * 4 + j) * 25 + i)], data[size_t((o * 10 + k) * 25 + i)]);
        }
  }
}

}  // namespace
}  // namespace anvil::cuda::testing
