// The native op kernels (cpu/tactics/native_ops_*.cpp) against the reference kernels:
// every case builds a one-node graph, runs the reference (cpu::Interpreter::runNode), then
// every non-reference kernel that supports the node: prepared once, run on views whose
// outputs sit between guard bytes, with 1, 2 and 3 executor threads. Outputs must equal
// the reference's (bit for bit, except where a case or kernel names its tolerance and why),
// guards must be intact and the thread counts must agree bit for bit. Cases use odd
// extents (1, 7, 17, 63, tails), broadcasting of every kind, pads, strides, dilations and
// ceil_mode. NativeOpsZoo runs every step of the exported models the same way.
// NativeOpsTiming.DISABLED_Speed prints native vs reference times for a few zoo shapes.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <sys/stat.h>

#include "cpu/reference.h"
#include "ir/graph.h"
#include "parser/onnx_parser.h"
#include "passes/pipeline.h"
#include "native_kernel_test_util.h"
#include "op_test_util.h"
#include "cpu/tactics/native_ops_util.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

using namespace anvil;

namespace anvil::runtime {
void registerNativeOpKernels(Kernels& k);  // cpu/tactics/native_ops.cpp
}
using anvil::ir::DataType;
using anvil::ir::Tensor;
using anvil::testing::In;
using anvil::testing::oneNode;

namespace {

using Dims = std::vector<int64_t>;

// One input: its type and, for index/shape inputs, constant values (an initializer).
struct InSpec {
  DataType dtype = DataType::kUndefined;  // kUndefined: omitted
  Dims dims;
  std::optional<std::vector<double>> values;  // set: an initializer with these values
};

struct Case {
  std::string name;
  std::string op;
  std::vector<InSpec> inputs;
  std::function<void(ir::Attributes&)> attrs = [](ir::Attributes&) {};
  // 0: bitwise equal to the reference. Otherwise the max abs error allowed, relative to
  // the largest |reference output| (at least 1).
  double tol = 0;
  int nout = 1;
  std::string expectKernel;  // a native kernel that must support the case
};

// gtest prints a parameter by its name rather than its bytes.
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

InSpec f32(Dims d) { return {DataType::kF32, std::move(d), std::nullopt}; }
InSpec i64(Dims d) { return {DataType::kI64, std::move(d), std::nullopt}; }
InSpec i32(Dims d) { return {DataType::kI32, std::move(d), std::nullopt}; }
InSpec b8(Dims d) { return {DataType::kBool, std::move(d), std::nullopt}; }
InSpec constI64(std::vector<double> v) { return {DataType::kI64, {int64_t(v.size())}, std::move(v)}; }
InSpec constI32(std::vector<double> v) { return {DataType::kI32, {int64_t(v.size())}, std::move(v)}; }
InSpec constScalar(DataType t, double v) { return {t, {}, std::vector<double>{v}}; }
InSpec constF32(std::vector<double> v) { return {DataType::kF32, {int64_t(v.size())}, std::move(v)}; }
InSpec omitted() { return {}; }

std::vector<Case> cases() {
  std::vector<Case> c;
  auto add = [&](Case k) { c.push_back(std::move(k)); };
  const std::string bin = "x_binary_broadcast";

  // ---- binary: every broadcast pattern, f32 and integers ----
  add({"Add_same", "Add", {f32({7, 17}), f32({7, 17})}, {}, 0, 1, bin});
  add({"Add_rowbcast", "Add", {f32({2, 3, 1, 5}), f32({3, 7, 1})}, {}, 0, 1, bin});
  add({"Add_scalar_left", "Add", {f32({}), f32({63})}, {}, 0, 1, bin});
  add({"Add_pos_embed", "Add", {f32({3, 16, 64}), f32({1, 16, 64})}, {}, 0, 1, bin});
  add({"Add_big_parallel", "Add", {f32({300, 257}), f32({257})}, {}, 0, 1, bin});
  add({"Add_one", "Add", {f32({1}), f32({1})}, {}, 0, 1, bin});
  add({"Add_empty", "Add", {f32({0, 5}), f32({5})}, {}, 0, 1, bin});
  add({"Mul_se_gate", "Mul", {f32({2, 5, 1, 1}), f32({2, 5, 7, 9})}, {}, 0, 1, bin});
  add({"Mul_se_big", "Mul", {f32({1, 96, 1, 1}), f32({1, 96, 33, 17})}, {}, 0, 1, bin});
  add({"Mul_outer", "Mul", {f32({7, 1}), f32({1, 13})}, {}, 0, 1, bin});
  add({"Sub_col", "Sub", {f32({1}), f32({17, 3})}, {}, 0, 1, bin});
  add({"Div_row", "Div", {f32({7, 13}), f32({13})}, {}, 0, 1, bin});
  add({"Div_i64", "Div", {i64({5, 7}), i64({7})}, {}, 0, 1, bin});
  add({"Add_i64", "Add", {i64({5, 4}), i64({4})}, {}, 0, 1, bin});
  add({"Sub_i64_scalar", "Sub", {i64({9}), constScalar(DataType::kI64, 3)}, {}, 0, 1, bin});
  add({"Mul_i32", "Mul", {i32({3, 1, 5}), i32({4, 1})}, {}, 0, 1, bin});
  add({"Pow_square", "Pow", {f32({7, 17}), constScalar(DataType::kF32, 2)}, {}, 0, 1, bin});
  add({"Pow_general", "Pow", {f32({17}), f32({17})}, {}, 0, 1, bin});
  add({"Equal_i64_mask", "Equal", {i64({3, 16}), constScalar(DataType::kI64, 0)}, {}, 0, 1, bin});
  add({"Equal_f32", "Equal", {f32({7, 5}), f32({5})}, {}, 0, 1, bin});
  add({"Equal_bool", "Equal", {b8({7, 5}), b8({7, 1})}, {}, 0, 1, bin});
  add({"Greater_f32", "Greater", {f32({7, 5}), f32({1, 5})}, {}, 0, 1, bin});
  add({"Less_i64", "Less", {i64({4, 3}), i64({3})}, {}, 0, 1, bin});
  add({"GreaterOrEqual_i32", "GreaterOrEqual", {i32({17}), i32({1})}, {}, 0, 1, bin});
  add({"LessOrEqual_f32", "LessOrEqual", {f32({3, 7}), f32({3, 1})}, {}, 0, 1, bin});
  add({"And_bcast", "And", {b8({2, 1, 7}), b8({3, 1})}, {}, 0, 1, bin});
  add({"Or_same", "Or", {b8({17}), b8({17})}, {}, 0, 1, bin});
  add({"Xor_scalar", "Xor", {b8({}), b8({9})}, {}, 0, 1, bin});

  // ---- Where ----
  add({"Where_mask", "Where", {b8({4, 1, 16}), f32({}), f32({4, 1, 16})}, {}, 0, 1, "x_where_broadcast"});
  add({"Where_3way", "Where", {b8({3, 1, 7}), f32({1, 5, 1}), f32({7})}, {}, 0, 1, "x_where_broadcast"});
  add({"Where_i64", "Where", {b8({17}), i64({17}), i64({1})}, {}, 0, 1, "x_where_broadcast"});
  add({"Where_bool", "Where", {b8({5, 3}), b8({3}), b8({5, 1})}, {}, 0, 1, "x_where_broadcast"});

  // ---- unary f32 ----
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs", "Reciprocal",
                         "HardSwish", "HardSigmoid", "LeakyRelu", "Gelu", "Softplus", "Floor", "Ceil"})
    add({std::string(op) + "_7x17", op, {f32({7, 17})}, {}, 0, 1, "f32_unary"});
  add({"Relu_big_parallel", "Relu", {f32({63, 1031})}, {}, 0, 1, "f32_unary"});
  add({"Sigmoid_big_parallel", "Sigmoid", {f32({2, 17, 1031})}, {}, 0, 1, "f32_unary"});
  add({"Relu_scalar", "Relu", {f32({})}, {}, 0, 1, "f32_unary"});
  add({"HardSigmoid_attrs", "HardSigmoid", {f32({63})}, [](ir::Attributes& a) {
         a.set("alpha", 0.3f);
         a.set("beta", 0.4f);
       }, 0, 1, "f32_unary"});
  add({"LeakyRelu_alpha", "LeakyRelu", {f32({63})}, [](ir::Attributes& a) { a.set("alpha", 0.25f); }, 0, 1,
       "f32_unary"});
  add({"Gelu_tanh", "Gelu", {f32({5, 13})}, [](ir::Attributes& a) { a.set("approximate", std::string("tanh")); }, 0,
       1, "f32_unary"});
  add({"Clip_relu6", "Clip", {f32({7, 17}), constScalar(DataType::kF32, 0), constScalar(DataType::kF32, 6)}, {}, 0, 1,
       "f32_unary"});
  add({"Clip_max_only", "Clip", {f32({63}), omitted(), constScalar(DataType::kF32, 0.5)}, {}, 0, 1, "f32_unary"});
  add({"Clip_min_only", "Clip", {f32({63}), constScalar(DataType::kF32, -0.5)}, {}, 0, 1, "f32_unary"});
  add({"Clip_none", "Clip", {f32({17})}, {}, 0, 1, "f32_unary"});
  add({"Clip_runtime_bounds", "Clip", {f32({17}), f32({}), f32({})}, {}, 0, 1, "f32_unary"});
  add({"Not", "Not", {b8({7, 9})}, {}, 0, 1, "b8_not"});

  // ---- Cast ----
  auto cast = [&](std::string name, InSpec in, DataType to) {
    add({"Cast_" + name, "Cast", {std::move(in)}, [to](ir::Attributes& a) { a.set("to", int64_t(to)); }, 0, 1,
         "x_cast"});
  };
  cast("f32_i64", f32({7, 17}), DataType::kI64);
  cast("i64_f32", i64({63}), DataType::kF32);
  cast("bool_f32", b8({17}), DataType::kF32);
  cast("f32_bool", f32({17}), DataType::kBool);
  cast("i64_i32", i64({17}), DataType::kI32);
  cast("i32_i64", i32({17}), DataType::kI64);
  cast("f32_f64", f32({9}), DataType::kF64);
  cast("f32_u8", f32({9}), DataType::kU8);
  cast("i64_bool", i64({9}), DataType::kBool);
  cast("same_f32", f32({9}), DataType::kF32);

  // ---- pooling ----
  auto pool = [&](std::string name, std::string op, Dims x, Dims k, Dims s, Dims pads, Dims dil, int ceil,
                  int includePad = 0, std::string autoPad = "") {
    add({op + "_" + name, op, {f32(x)}, [=](ir::Attributes& a) {
           a.set("kernel_shape", k);
           if (!s.empty()) a.set("strides", s);
           if (!pads.empty()) a.set("pads", pads);
           if (!dil.empty()) a.set("dilations", dil);
           if (ceil) a.set("ceil_mode", int64_t(1));
           if (includePad) a.set("count_include_pad", int64_t(1));
           if (!autoPad.empty()) a.set("auto_pad", autoPad);
         }, 0, 1, op == "MaxPool" ? "f32_maxpool2d_nchw" : "f32_avgpool2d_nchw"});
  };
  for (std::string op : {"MaxPool", "AveragePool"}) {
    pool("3x3s2p1", op, {1, 3, 17, 17}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, 0);
    pool("resnet_stem", op, {2, 8, 28, 28}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, 0);
    pool("2x2s2_ceil", op, {1, 2, 7, 7}, {2, 2}, {2, 2}, {}, {}, 1);
    pool("3x3s2_ceil_pad", op, {1, 2, 8, 9}, {3, 3}, {2, 2}, {1, 0, 1, 1}, {}, 1);
    pool("dilated", op, {1, 3, 13, 11}, {3, 2}, {1, 2}, {2, 1, 2, 1}, {2, 3}, 0);
    pool("asym_pads", op, {2, 3, 7, 5}, {3, 3}, {1, 1}, {0, 2, 1, 0}, {}, 0);
    pool("same_upper", op, {1, 2, 7, 8}, {3, 3}, {2, 2}, {}, {}, 0, 0, "SAME_UPPER");
    pool("same_lower", op, {1, 2, 7, 8}, {2, 3}, {2, 2}, {}, {}, 0, 0, "SAME_LOWER");
    pool("valid", op, {1, 2, 9, 9}, {3, 3}, {2, 2}, {}, {}, 0, 0, "VALID");
    pool("1x1", op, {1, 7, 5, 3}, {1, 1}, {}, {}, {}, 0);
    pool("big_window", op, {1, 1, 4, 4}, {4, 4}, {}, {2, 2, 2, 2}, {}, 0);
  }
  pool("include_pad", "AveragePool", {1, 3, 17, 17}, {3, 3}, {2, 2}, {1, 1, 1, 1}, {}, 0, 1);
  pool("include_pad_ceil", "AveragePool", {1, 2, 8, 9}, {3, 3}, {2, 2}, {1, 0, 1, 1}, {}, 1, 1);
  // Global average: the native kernel sums in double, the reference left to right in
  // float, whose error bound is n * 2^-24 of the magnitude (n the plane size); the cases
  // allow that bound relative to the output range (3e-6 covers n <= 49, 1e-5 n = 169).
  add({"GlobalAveragePool_13x13", "GlobalAveragePool", {f32({2, 7, 13, 13})}, {}, 1.1e-5, 1, "f32_global_avgpool"});
  add({"GlobalAveragePool_1x1", "GlobalAveragePool", {f32({1, 3, 1, 1})}, {}, 0, 1, "f32_global_avgpool"});
  add({"GlobalAveragePool_rank3", "GlobalAveragePool", {f32({1, 5, 7})}, {}, 3e-6, 1, "f32_global_avgpool"});
  add({"GlobalAveragePool_many_planes", "GlobalAveragePool", {f32({2, 63, 7, 7})}, {}, 3e-6, 1, "f32_global_avgpool"});
  add({"GlobalMaxPool_13x13", "GlobalMaxPool", {f32({2, 7, 13, 13})}, {}, 0, 1, "f32_global_maxpool"});

  // ---- Softmax, LayerNormalization ----
  auto axis = [](int64_t v) { return [v](ir::Attributes& a) { a.set("axis", v); }; };
  add({"Softmax_last", "Softmax", {f32({7, 17})}, {}, 0, 1, "f32_softmax_rows"});
  add({"Softmax_mid", "Softmax", {f32({3, 5, 7})}, axis(1), 0, 1, "f32_softmax_rows"});
  add({"Softmax_first", "Softmax", {f32({63})}, axis(0), 0, 1, "f32_softmax_rows"});
  add({"Softmax_one", "Softmax", {f32({4, 1})}, {}, 0, 1, "f32_softmax_rows"});
  add({"Softmax_rows_parallel", "Softmax", {f32({300, 10})}, {}, 0, 1, "f32_softmax_rows"});
  add({"LogSoftmax_last", "LogSoftmax", {f32({7, 17})}, {}, 0, 1, "f32_logsoftmax_rows"});
  const std::string ln = "f32_layernorm_rows";
  add({"LayerNorm_last", "LayerNormalization", {f32({7, 17}), f32({17}), f32({17})}, {}, 0, 1, ln});
  add({"LayerNorm_bert", "LayerNormalization", {f32({3, 16, 64}), f32({64}), f32({64})},
       [](ir::Attributes& a) { a.set("epsilon", 1e-5f); }, 0, 1, ln});
  add({"LayerNorm_axis1", "LayerNormalization", {f32({2, 3, 5}), f32({3, 5}), f32({1, 3, 5})}, axis(1), 0, 1,
       ln});
  add({"LayerNorm_nobias", "LayerNormalization", {f32({5, 9}), f32({1, 9})}, {}, 0, 1, ln});
  add({"LayerNorm_rows_parallel", "LayerNormalization", {f32({300, 63}), f32({63}), f32({63})}, {}, 0, 1, ln});
  add({"LayerNorm_wide", "LayerNormalization", {f32({3, 4099}), f32({4099}), f32({4099})}, {}, 0, 1, ln});
  add({"LayerNorm_one_col", "LayerNormalization", {f32({5, 1}), f32({1}), f32({1})}, {}, 0, 1, ln});

  const std::string bn = "f32_batchnorm_inference";
  auto bnIns = [](Dims x) {
    const int64_t c = x[1];
    return std::vector<InSpec>{f32(x), f32({c}), f32({c}), f32({c}), {DataType::kF32, {c}, std::vector<double>(size_t(c), 0.7)}};
  };
  add({"BatchNorm_nchw", "BatchNormalization", bnIns({2, 7, 5, 3}), {}, 0, 1, bn});
  add({"BatchNorm_nc", "BatchNormalization", bnIns({17, 63}), [](ir::Attributes& a) { a.set("epsilon", 1e-3f); }, 0, 1, bn});
  add({"BatchNorm_big", "BatchNormalization", bnIns({1, 64, 56, 56}), {}, 0, 1, bn});
  auto keep = [](int64_t k) { return [k](ir::Attributes& a) { a.set("keepdims", k); }; };
  add({"ReduceMean_last", "ReduceMean", {f32({7, 17}), constI64({-1})}, {}, 0, 1, "f32_reduce_mean"});
  add({"ReduceMean_hw", "ReduceMean", {f32({2, 3, 7, 5}), constI64({2, 3})}, keep(0), 0, 1, "f32_reduce_mean"});
  add({"ReduceMean_mid", "ReduceMean", {f32({3, 5, 7}), constI64({1})}, {}, 0, 1, "f32_reduce_mean"});
  add({"ReduceMean_outer_inner", "ReduceMean", {f32({3, 5, 7, 2}), constI64({0, 2})}, keep(0), 0, 1,
       "f32_reduce_mean"});
  add({"ReduceMean_all", "ReduceMean", {f32({7, 9})}, {}, 0, 1, "f32_reduce_mean"});
  add({"ReduceMean_many_rows", "ReduceMean", {f32({600, 63}), constI64({1})}, {}, 0, 1, "f32_reduce_mean"});
  add({"ReduceSum_mid", "ReduceSum", {f32({3, 5, 7}), constI64({-2})}, keep(0), 0, 1, "f32_reduce_sum"});
  add({"ReduceSum_noop", "ReduceSum", {f32({3, 5}), {DataType::kI64, {0}, std::vector<double>{}}},
       [](ir::Attributes& a) { a.set("noop_with_empty_axes", int64_t(1)); }, 0, 1, "f32_reduce_sum"});
  // The other reductions, each the reference's double sums (bitwise).
  add({"ReduceMax_channels", "ReduceMax", {f32({2, 5, 7, 3}), constI64({1})}, {}, 0, 1, "f32_reduce_max"});
  add({"ReduceMax_all_nokeep", "ReduceMax", {f32({7, 9})}, keep(0), 0, 1, "f32_reduce_max"});
  add({"ReduceMin_hw", "ReduceMin", {f32({2, 3, 7, 5}), constI64({2, 3})}, {}, 0, 1, "f32_reduce_min"});
  add({"ReduceProd_last", "ReduceProd", {f32({5, 6}), constI64({-1})}, {}, 0, 1, "f32_reduce_prod"});
  add({"ReduceL1_mid", "ReduceL1", {f32({3, 5, 7}), constI64({1})}, {}, 0, 1, "f32_reduce_l1"});
  add({"ReduceL2_outer_inner", "ReduceL2", {f32({3, 5, 7, 2}), constI64({0, 2})}, keep(0), 0, 1, "f32_reduce_l2"});
  add({"ReduceLogSum_last", "ReduceLogSum", {f32({4, 17}), constI64({1})}, {}, 0, 1, "f32_reduce_logsum"});
  add({"ReduceLogSumExp_rows", "ReduceLogSumExp", {f32({600, 63}), constI64({1})}, {}, 0, 1,
       "f32_reduce_logsumexp"});
  add({"ReduceSumSquare_all", "ReduceSumSquare", {f32({7, 9, 3})}, {}, 0, 1, "f32_reduce_sumsquare"});
  // Reduced axes in one run with kept axes after it: the rows path (chunks of 1024).
  add({"ReduceMin_channels_rows", "ReduceMin", {f32({1, 8, 40, 41}), constI64({1})}, {}, 0, 1, "f32_reduce_min"});
  add({"ReduceLogSumExp_channels", "ReduceLogSumExp", {f32({2, 6, 5, 4}), constI64({1})}, {}, 0, 1,
       "f32_reduce_logsumexp"});
  add({"ReduceProd_mid_rows", "ReduceProd", {f32({3, 4, 9}), constI64({1})}, {}, 0, 1, "f32_reduce_prod"});
  add({"ReduceSumSquare_lead", "ReduceSumSquare", {f32({4, 3, 5}), constI64({0})}, {}, 0, 1, "f32_reduce_sumsquare"});
  add({"ReduceLogSum_two_axes_rows", "ReduceLogSum", {f32({2, 3, 5, 7}), constI64({1, 2})}, {}, 0, 1,
       "f32_reduce_logsum"});
  add({"ReduceMax_noop", "ReduceMax", {f32({3, 5}), {DataType::kI64, {0}, std::vector<double>{}}},
      [](ir::Attributes& a) { a.set("noop_with_empty_axes", int64_t(1)); }, 0, 1, "f32_reduce_max"});

  // ---- movement ----
  auto perm = [](Dims p) { return [p](ir::Attributes& a) { a.set("perm", p); }; };
  add({"Transpose_bert", "Transpose", {f32({16, 3, 64})}, perm({1, 0, 2}), 0, 1, "x_transpose_strided"});
  add({"Transpose_nhwc", "Transpose", {f32({2, 3, 5, 7})}, perm({0, 2, 3, 1}), 0, 1, "x_transpose_strided"});
  add({"Transpose_default", "Transpose", {f32({3, 5, 7})}, {}, 0, 1, "x_transpose_strided"});
  add({"Transpose_i64", "Transpose", {i64({7, 17})}, perm({1, 0}), 0, 1, "x_transpose_strided"});
  add({"Transpose_bool", "Transpose", {b8({3, 1, 5})}, perm({2, 1, 0}), 0, 1, "x_transpose_strided"});
  add({"Transpose_big", "Transpose", {f32({63, 1031})}, perm({1, 0}), 0, 1, "x_transpose_strided"});
  add({"Transpose_rank1", "Transpose", {f32({17})}, {}, 0, 1, "x_transpose_strided"});
  const std::string sl = "x_slice_strided";
  add({"Slice_qkv", "Slice", {f32({16, 3, 192}), constI64({64}), constI64({128}), constI64({-1})}, {}, 0, 1, sl});
  add({"Slice_2d", "Slice", {f32({7, 17}), constI64({1, 3}), constI64({6, 100})}, {}, 0, 1, sl});
  add({"Slice_negative", "Slice", {f32({7, 17}), constI64({-2, -1}), constI64({-100, 2}), constI64({0, 1}),
                                   constI64({-1, -3})}, {}, 0, 1, sl});
  add({"Slice_steps", "Slice", {f32({2, 9, 8}), constI64({0, 1}), constI64({9, 8}), constI64({1, 2}),
                                constI64({2, 3})}, {}, 0, 1, sl});
  add({"Slice_i32_indices", "Slice", {i64({13}), constI32({2}), constI32({11}), constI32({0}), constI32({4})}, {}, 0,
       1, sl});
  add({"Slice_empty", "Slice", {f32({5, 4}), constI64({3}), constI64({2})}, {}, 0, 1, sl});
  add({"Slice_lstm", "Slice", {f32({2, 3, 32}), constI64({1}), constI64({2}), constI64({0})}, {}, 0, 1, sl});
  const std::string ex = "x_expand_strided";
  add({"Expand_col", "Expand", {f32({3, 1}), constI64({2, 3, 7})}, {}, 0, 1, ex});
  add({"Expand_mask", "Expand", {b8({3, 1, 1, 16}), constI64({3, 4, 1, 16})}, {}, 0, 1, ex});
  add({"Expand_smaller_shape", "Expand", {i64({2, 1, 5}), constI64({3, 1})}, {}, 0, 1, ex});
  add({"Expand_scalar", "Expand", {f32({}), constI64({7, 17})}, {}, 0, 1, ex});
  const std::string cc = "x_concat_rows";
  add({"Concat_axis0", "Concat", {f32({2, 5}), f32({1, 5}), f32({4, 5})}, axis(0), 0, 1, cc});
  add({"Concat_axis1_empty", "Concat", {f32({3, 2, 7}), f32({3, 0, 7}), f32({3, 5, 7})}, axis(1), 0, 1, cc});
  add({"Concat_last", "Concat", {f32({7, 3}), f32({7, 1})}, axis(-1), 0, 1, cc});
  add({"Concat_i64_shape", "Concat", {i64({1}), i64({1}), i64({1})}, axis(0), 0, 1, cc});
  add({"Concat_big", "Concat", {f32({600, 40}), f32({600, 63})}, axis(1), 0, 1, cc});
  add({"Split_given", "Split", {f32({3, 7, 5}), constI64({2, 5})}, axis(1), 0, 2, "x_split_rows"});
  add({"Split_equal", "Split", {f32({9, 4})}, axis(0), 0, 3, "x_split_rows"});
  add({"Split_uneven", "Split", {f32({5, 8})}, axis(-1), 0, 3, "x_split_rows"});
  const std::string ga = "x_gather_rows";
  add({"Gather_embedding", "Gather", {f32({50, 16}), i64({2, 7})}, {}, 0, 1, ga});
  add({"Gather_axis1_scalar", "Gather", {f32({3, 16, 64}), constScalar(DataType::kI64, 0)}, axis(1), 0, 1, ga});
  add({"Gather_negative", "Gather", {f32({7, 5}), constI64({-1, 0, -7, 3})}, {}, 0, 1, ga});
  add({"Gather_i32", "Gather", {i64({9, 3}), i32({4})}, axis(0), 0, 1, ga});
  add({"Gather_shape_dim", "Gather", {i64({3}), constScalar(DataType::kI64, 1)}, axis(0), 0, 1, ga});
  add({"Gather_last_axis", "Gather", {f32({3, 5, 7}), constI64({6, 0, 2})}, axis(-1), 0, 1, ga});
  add({"Shape_all", "Shape", {f32({2, 3, 5})}, {}, 0, 1, "i64_shape"});
  add({"Shape_range", "Shape", {f32({2, 3, 5, 7})}, [](ir::Attributes& a) {
         a.set("start", int64_t(1));
         a.set("end", int64_t(-1));
       }, 0, 1, "i64_shape"});
  add({"ConstantOfShape_f32", "ConstantOfShape", {constI64({2, 3, 7})}, [](ir::Attributes& a) {
         a.set("value", Tensor::fromVector<float>(DataType::kF32, {1}, {1.5f}));
       }, 0, 1, "x_constant_of_shape_fill"});
  add({"ConstantOfShape_i64", "ConstantOfShape", {constI64({5})}, [](ir::Attributes& a) {
         a.set("value", Tensor::fromVector<int64_t>(DataType::kI64, {1}, {7}));
       }, 0, 1, "x_constant_of_shape_fill"});
  add({"ConstantOfShape_default", "ConstantOfShape", {constI64({3, 4})}, {}, 0, 1, "x_constant_of_shape_fill"});
  add({"Constant_tensor", "Constant", {}, [](ir::Attributes& a) {
         a.set("value", Tensor::fromVector<float>(DataType::kF32, {3, 2}, {1, 2, 3, 4, 5, 6}));
       }, 0, 1, "x_constant_copy"});
  add({"Constant_ints", "Constant", {}, [](ir::Attributes& a) { a.set("value_ints", Dims{4, -1, 9}); }, 0, 1,
       "x_constant_copy"});
  add({"Constant_float", "Constant", {}, [](ir::Attributes& a) { a.set("value_float", 2.5f); }, 0, 1,
       "x_constant_copy"});

  // ---- Resize over the last two axes: nearest bitwise, linear within 1e-6 (f32 sums
  // against the reference's doubles) ----
  auto resize = [](std::string mode, std::string ctm, std::string nearest = "round_prefer_floor", int64_t exclude = 0,
                   std::string policy = "", Dims axes = {}) {
    return [=](ir::Attributes& a) {
      a.set("mode", mode);
      a.set("coordinate_transformation_mode", ctm);
      a.set("nearest_mode", nearest);
      if (exclude) a.set("exclude_outside", exclude);
      if (!policy.empty()) a.set("keep_aspect_ratio_policy", policy);
      if (!axes.empty()) a.set("axes", axes);
    };
  };
  const std::string rz = "f32_resize_2d";
  add({"Resize_nearest_x2_asymmetric_floor", "Resize", {f32({1, 3, 7, 5}), omitted(), constF32({1, 1, 2, 2})},
       resize("nearest", "asymmetric", "floor"), 0, 1, rz});
  add({"Resize_nearest_up_down_half_pixel", "Resize", {f32({2, 3, 9, 10}), omitted(), constF32({1, 1, 1.5, 0.6})},
       resize("nearest", "half_pixel"), 0, 1, rz});
  add({"Resize_nearest_sizes_align_corners_ceil", "Resize",
       {f32({1, 2, 5, 7}), omitted(), omitted(), constI64({1, 2, 13, 4})},
       resize("nearest", "align_corners", "round_prefer_ceil"), 0, 1, rz});
  add({"Resize_nearest_tf_half_pixel_ceil", "Resize", {f32({1, 1, 6, 7}), omitted(), constF32({1, 1, 2.5, 1.3})},
       resize("nearest", "tf_half_pixel_for_nn", "ceil"), 0, 1, rz});
  add({"Resize_nearest_big_threads", "Resize", {f32({1, 32, 40, 40}), omitted(), constF32({1, 1, 2, 2})},
       resize("nearest", "asymmetric", "floor"), 0, 1, rz});
  add({"Resize_linear_pytorch_half_pixel_x2", "Resize", {f32({1, 4, 7, 9}), omitted(), constF32({1, 1, 2, 2})},
       resize("linear", "pytorch_half_pixel"), 1e-6, 1, rz});
  add({"Resize_linear_align_corners_sizes", "Resize",
       {f32({1, 3, 5, 6}), omitted(), omitted(), constI64({1, 3, 17, 63})}, resize("linear", "align_corners"), 1e-6,
       1, rz});
  add({"Resize_linear_asymmetric_down", "Resize", {f32({2, 2, 16, 17}), omitted(), constF32({1, 1, 0.5, 0.7})},
       resize("linear", "asymmetric"), 1e-6, 1, rz});
  add({"Resize_linear_exclude_outside", "Resize", {f32({1, 2, 7, 5}), omitted(), constF32({1, 1, 1.7, 2.3})},
       resize("linear", "half_pixel", "round_prefer_floor", 1), 1e-6, 1, rz});
  add({"Resize_linear_axes_not_larger", "Resize", {f32({1, 2, 6, 8}), omitted(), omitted(), constI64({13, 11})},
       resize("linear", "half_pixel", "round_prefer_floor", 0, "not_larger", {2, 3}), 1e-6, 1, rz});
  add({"Resize_linear_rank3_symmetric", "Resize", {f32({5, 7, 9}), omitted(), constF32({1, 2, 3})},
       resize("linear", "half_pixel_symmetric"), 1e-6, 1, rz});
  add({"Resize_linear_rank2", "Resize", {f32({7, 9}), omitted(), constF32({3, 0.5})}, resize("linear", "half_pixel"),
       1e-6, 1, rz});
  add({"Resize_linear_big_threads", "Resize", {f32({1, 16, 33, 47}), omitted(), constF32({1, 1, 2, 2})},
       resize("linear", "half_pixel"), 1e-6, 1, rz});
  add({"Resize_linear_to_one", "Resize", {f32({1, 2, 5, 6}), omitted(), omitted(), constI64({1, 2, 1, 1})},
       resize("linear", "align_corners"), 1e-6, 1, rz});

  // ---- InstanceNormalization / GroupNormalization: bitwise (the reference's double sums) ----
  add({"InstanceNorm_nchw", "InstanceNormalization", {f32({2, 3, 7, 5}), f32({3}), f32({3})}, {}, 0, 1,
       "f32_instancenorm_planes"});
  add({"InstanceNorm_1d_eps", "InstanceNormalization", {f32({1, 17, 63}), f32({17}), f32({17})},
       [](ir::Attributes& a) { a.set("epsilon", 1e-3f); }, 0, 1, "f32_instancenorm_planes"});
  add({"InstanceNorm_big", "InstanceNormalization", {f32({1, 64, 40, 41}), f32({64}), f32({64})}, {}, 0, 1,
       "f32_instancenorm_planes"});
  add({"GroupNorm_g4", "GroupNormalization", {f32({2, 8, 5, 3}), f32({8}), f32({8})},
       [](ir::Attributes& a) { a.set("num_groups", int64_t(4)); }, 0, 1, "f32_groupnorm_planes"});
  add({"GroupNorm_g1_rank2", "GroupNormalization", {f32({3, 12}), f32({12}), f32({12})},
       [](ir::Attributes& a) { a.set("num_groups", int64_t(1)); }, 0, 1, "f32_groupnorm_planes"});
  add({"GroupNorm_big", "GroupNormalization", {f32({1, 64, 24, 24}), f32({64}), f32({64})},
       [](ir::Attributes& a) {
         a.set("num_groups", int64_t(32));
         a.set("epsilon", 1e-6f);
       }, 0, 1, "f32_groupnorm_planes"});

  // ---- ArgMax / ArgMin, TopK, CumSum: exact ----
  auto axisAttr = [](int64_t ax, std::string flag = "", int64_t v = 0) {
    return [=](ir::Attributes& a) {
      a.set("axis", ax);
      if (!flag.empty()) a.set(flag, v);
    };
  };
  add({"ArgMax_classes", "ArgMax", {f32({4, 1000})}, axisAttr(1), 0, 1, "x_argmax_rows"});
  add({"ArgMax_channels_nokeep", "ArgMax", {f32({2, 21, 7, 9})}, axisAttr(1, "keepdims", 0), 0, 1, "x_argmax_rows"});
  add({"ArgMax_ties_last", "ArgMax", {i64({5, 7})}, axisAttr(0, "select_last_index", 1), 0, 1, "x_argmax_rows"});
  add({"ArgMin_axis0", "ArgMin", {f32({17, 3})}, axisAttr(0), 0, 1, "x_argmin_rows"});
  add({"ArgMax_f32_last_lanes", "ArgMax", {f32({3, 10, 19})}, axisAttr(1, "select_last_index", 1), 0, 1,
       "x_argmax_rows"});
  add({"ArgMin_f32_lanes", "ArgMin", {f32({2, 9, 4100})}, axisAttr(1), 0, 1, "x_argmin_rows"});
  add({"ArgMin_i32_ties", "ArgMin", {i32({3, 11})}, axisAttr(-1), 0, 1, "x_argmin_rows"});
  add({"TopK_last", "TopK", {f32({3, 17}), constI64({5})}, {}, 0, 2, "x_topk_partial_sort"});
  add({"TopK_smallest_axis0", "TopK", {f32({9, 4}), constI64({3})}, [](ir::Attributes& a) {
         a.set("axis", int64_t(0));
         a.set("largest", int64_t(0));
       }, 0, 2, "x_topk_partial_sort"});
  add({"TopK_i64_ties", "TopK", {i64({4, 13}), constI64({13})}, {}, 0, 2, "x_topk_partial_sort"});
  add({"TopK_mid_k0", "TopK", {f32({2, 6, 3}), constI64({0})}, axisAttr(1), 0, 2, "x_topk_partial_sort"});
  add({"CumSum_rows", "CumSum", {f32({5, 17}), constScalar(DataType::kI64, 1)}, {}, 0, 1, "x_cumsum_rows"});
  add({"CumSum_reverse_exclusive", "CumSum", {f32({7, 3, 4}), constI32({0})}, [](ir::Attributes& a) {
         a.set("reverse", int64_t(1));
         a.set("exclusive", int64_t(1));
       }, 0, 1, "x_cumsum_rows"});
  add({"CumSum_i64_mask", "CumSum", {i64({2, 63}), constScalar(DataType::kI64, -1)}, {}, 0, 1, "x_cumsum_rows"});

  // ---- rearranging: bitwise ----
  auto block = [](int64_t b, std::string mode = "") {
    return [=](ir::Attributes& a) {
      a.set("blocksize", b);
      if (!mode.empty()) a.set("mode", mode);
    };
  };
  add({"DepthToSpace_DCR", "DepthToSpace", {f32({2, 12, 3, 5})}, block(2), 0, 1, "x_depth_to_space_strided"});
  add({"DepthToSpace_CRD", "DepthToSpace", {f32({1, 18, 4, 3})}, block(3, "CRD"), 0, 1, "x_depth_to_space_strided"});
  add({"DepthToSpace_i64", "DepthToSpace", {i64({1, 8, 2, 2})}, block(2), 0, 1, "x_depth_to_space_strided"});
  add({"SpaceToDepth_b2", "SpaceToDepth", {f32({2, 3, 6, 10})}, block(2), 0, 1, "x_space_to_depth_strided"});
  add({"SpaceToDepth_b3", "SpaceToDepth", {b8({1, 2, 9, 3})}, block(3), 0, 1, "x_space_to_depth_strided"});
  add({"Tile_2d", "Tile", {f32({3, 5}), constI64({2, 3})}, {}, 0, 1, "x_tile_strided"});
  add({"Tile_4d_ones", "Tile", {i64({2, 1, 3, 1}), constI64({1, 4, 1, 7})}, {}, 0, 1, "x_tile_strided"});
  add({"Tile_zero", "Tile", {f32({3, 2}), constI64({0, 2})}, {}, 0, 1, "x_tile_strided"});
  auto padMode = [](std::string m) { return [=](ir::Attributes& a) { a.set("mode", m); }; };
  const std::string pd = "x_pad_rows";
  add({"Pad_constant_value", "Pad", {f32({2, 3, 5}), constI64({0, 1, 2, 1, 0, 3}), constScalar(DataType::kF32, 1.5)},
       padMode("constant"), 0, 1, pd});
  add({"Pad_constant_default", "Pad", {f32({7, 17}), constI64({1, 2, 3, 4})}, {}, 0, 1, pd});
  add({"Pad_reflect_nchw", "Pad", {f32({1, 2, 5, 6}), constI64({0, 0, 2, 3, 0, 0, 4, 1})}, padMode("reflect"), 0, 1,
       pd});
  add({"Pad_reflect_periods", "Pad", {f32({3, 3}), constI64({0, 7, 0, 9})}, padMode("reflect"), 0, 1, pd});
  add({"Pad_edge", "Pad", {f32({2, 4, 3}), constI64({1, 2, 0, 2, 1, 5})}, padMode("edge"), 0, 1, pd});
  add({"Pad_wrap", "Pad", {f32({3, 4}), constI64({2, 5, 4, 6})}, padMode("wrap"), 0, 1, pd});
  add({"Pad_negative_crop", "Pad", {f32({5, 9}), constI64({-1, 2, -2, -3})}, {}, 0, 1, pd});
  add({"Pad_axes", "Pad", {f32({2, 3, 4}), constI64({1, 2, 0, 3}), omitted(), constI64({-1, 0})}, padMode("edge"), 0,
       1, pd});
  add({"Pad_i64_big", "Pad", {i64({64, 300}), constI64({3, 0, 1, 7})}, {}, 0, 1, pd});
  add({"Pad_reflect_big", "Pad", {f32({1, 32, 57, 63}), constI64({0, 0, 3, 3, 0, 0, 3, 3})}, padMode("reflect"), 0, 1,
       pd});
  return c;
}

// ---- harness ---------------------------------------------------------------------------

// 64-byte aligned bytes (params, blobs and workspaces are aligned in the engine).
struct Aligned {
  explicit Aligned(size_t n) : size(n), p(static_cast<char*>(::operator new(std::max<size_t>(n, 64), std::align_val_t(64)))) {}
  ~Aligned() { ::operator delete(p, std::align_val_t(64)); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  size_t size;
  char* p;
};

Tensor randomTensor(const InSpec& s, std::mt19937& rng, const std::string& op) {
  Tensor t(s.dtype, s.dims);
  std::uniform_real_distribution<float> u(-3.f, 3.f);
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (s.values) {
      t.setDouble(i, (*s.values)[size_t(i)]);
      continue;
    }
    switch (s.dtype) {
      case DataType::kF32: {
        float v = u(rng);
        // Positive inputs where the op's domain needs them; some exact ties for max, Equal
        // and Cast; fractional values that Cast must truncate.
        if (op == "Sqrt" || op == "Log" || op == "Pow" || op == "ReduceLogSum") v = std::fabs(v) + 0.01f;
        if ((op == "MaxPool" || op == "Equal" || op == "GlobalMaxPool") && i % 5 == 0) v = 1.0f;
        // ArgMax / ArgMin: ties at the extreme and NaNs (above every number) in the rows the
        // vector path takes.
        if (op == "ArgMax" && i % 5 == 0) v = 3.5f;
        if (op == "ArgMin" && i % 5 == 0) v = -3.5f;
        if ((op == "ArgMax" || op == "ArgMin") && i % 37 == 3) v = std::numeric_limits<float>::quiet_NaN();
        // The activations' tails (saturation, exp near its overflow) as well as their middle.
        if ((op == "Exp" || op == "Sigmoid" || op == "Tanh" || op == "Erf" || op == "Gelu") && i % 7 == 3) v *= 25.f;
        t.data<float>()[i] = v;
        break;
      }
      case DataType::kI64:
        t.data<int64_t>()[i] = op == "Gather" ? int64_t(rng() % 7) - 3 : int64_t(rng() % 11) - 5;
        break;
      case DataType::kI32: t.data<int32_t>()[i] = op == "Gather" ? int32_t(rng() % 9) : int32_t(rng() % 11) - 5; break;
      case DataType::kBool: t.data<bool>()[i] = (rng() & 1) != 0; break;
      default: ADD_FAILURE() << "no generator for this dtype";
    }
  }
  // Division: integer zero and -1 divisors exercise the defined cases.
  if (op == "Div" && s.dtype == DataType::kI64 && t.numel() > 2) {
    t.data<int64_t>()[0] = 0;
    t.data<int64_t>()[1] = -1;
  }
  return t;
}

runtime::TensorView viewOf(const Tensor& t) {
  runtime::TensorView v;
  v.data = const_cast<void*>(t.raw());
  v.dtype = t.dtype();
  v.setExtents(t.dims());
  return v;
}

constexpr size_t kGuard = 64;
constexpr unsigned char kSentinel = 0xA5;

struct RunResult {
  std::vector<std::vector<unsigned char>> outputs;  // bytes of each output
  bool guardsIntact = true;
};

// Prepares and runs kernel `k` on `node` with `threads` executor threads; with `usPerRun`,
// runs it `reps` more times and reports the mean time of one run.
// The runtime's allocator for outputs with run-time extents, with guards like the others.
struct GuardedDynamicOutputs : runtime::DynamicOutputs {
  runtime::TensorView* outs = nullptr;
  std::vector<std::vector<unsigned char>> bufs;  // per output (moved vectors keep their data)
  void* allocate(int i, DataType dtype, const int64_t* dims, int rank) override {
    runtime::TensorView& v = outs[i];
    v.dtype = dtype;
    v.setExtents(std::vector<int64_t>(dims, dims + rank));
    bufs[size_t(i)].assign(v.bytes() + 2 * 64, 0xA5);
    v.data = bufs[size_t(i)].data() + 64;
    return v.data;
  }
};

RunResult runNative(const runtime::Kernel& k, const ir::Node& node, const std::vector<Tensor>& ins,
                    const std::vector<const Tensor*>& constants, const std::vector<Tensor>& refOut, int threads,
                    double* usPerRun = nullptr, int reps = 0, bool dynamicOutputs = false) {
  runtime::PrepareInfo info;
  info.node = &node;
  for (const Tensor& t : ins) {
    const ir::TensorType type = t.defined() ? t.type() : ir::TensorType{};
    info.minTypes.push_back(type);
    info.optTypes.push_back(type);
    info.maxTypes.push_back(type);
  }
  for (const Tensor& t : refOut) info.maxOutputTypes.push_back(t.defined() ? t.type() : ir::TensorType{});
  info.constants = constants;
  info.threads = threads;
  runtime::Prepared prep;
  if (k.prepare) k.prepare(info, &prep);

  Aligned params(prep.params.size());
  std::memcpy(params.p, prep.params.data(), prep.params.size());
  std::vector<std::unique_ptr<Aligned>> blobStore;
  std::vector<runtime::Blob> blobs;
  for (const std::string& b : prep.blobs) {
    blobStore.push_back(std::make_unique<Aligned>(b.size()));
    std::memcpy(blobStore.back()->p, b.data(), b.size());
    blobs.push_back({blobStore.back()->p, b.size()});
  }
  Aligned workspace(size_t(prep.workspaceBytes));

  std::vector<runtime::TensorView> inViews;
  for (const Tensor& t : ins) inViews.push_back(t.defined() ? viewOf(t) : runtime::TensorView{});
  std::vector<std::vector<unsigned char>> outBufs;
  std::vector<runtime::TensorView> outViews;
  for (const Tensor& t : refOut) {
    outBufs.emplace_back(t.nbytes() + 2 * kGuard, kSentinel);
    runtime::TensorView v;
    v.dtype = t.dtype();
    v.setExtents(t.dims());
    v.data = outBufs.back().data() + kGuard;
    outViews.push_back(v);
  }
  GuardedDynamicOutputs dyn;
  if (dynamicOutputs) {
    // Extents unknown to the plan: the kernel asks the allocator (rank -1 views).
    for (runtime::TensorView& v : outViews) {
      v.rank = -1;
      v.data = nullptr;
    }
    dyn.outs = outViews.data();
    dyn.bufs.resize(outViews.size());
  }
  auto exec = runtime::makeCpuExecutor(threads);
  runtime::StepArgs a;
  a.dynamic = dynamicOutputs ? &dyn : nullptr;
  a.node = &node;
  a.inputs = inViews.data();
  a.numInputs = int(inViews.size());
  a.outputs = outViews.data();
  a.numOutputs = int(outViews.size());
  a.params = {params.p, prep.params.size()};
  a.blobs = blobs.data();
  a.numBlobs = int(blobs.size());
  a.workspace = workspace.p;
  a.workspaceBytes = size_t(prep.workspaceBytes);
  a.executor = exec.get();
  k.run(a);
  if (usPerRun) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) k.run(a);
    *usPerRun = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
  }

  RunResult r;
  for (size_t o = 0; o < outBufs.size(); ++o) {
    const std::vector<unsigned char>& b = dynamicOutputs ? dyn.bufs[o] : outBufs[o];
    if (b.size() < 2 * kGuard) {
      r.guardsIntact = false;  // a dynamic output never allocated
      r.outputs.emplace_back();
      continue;
    }
    for (size_t i = 0; i < kGuard; ++i)
      if (b[i] != kSentinel || b[b.size() - 1 - i] != kSentinel) r.guardsIntact = false;
    r.outputs.emplace_back(b.begin() + kGuard, b.end() - kGuard);
  }
  return r;
}

// Max abs error of f32 outputs relative to max(1, max |ref|); NaN where both agree is 0.
double relError(const Tensor& ref, const std::vector<unsigned char>& got) {
  const float* r = ref.data<float>();
  const float* g = reinterpret_cast<const float*>(got.data());
  double range = 1, err = 0;
  for (int64_t i = 0; i < ref.numel(); ++i) range = std::max(range, double(std::fabs(r[i])));
  for (int64_t i = 0; i < ref.numel(); ++i) {
    if (std::isnan(r[i]) && std::isnan(g[i])) continue;
    err = std::max(err, std::isnan(g[i]) ? INFINITY : std::fabs(double(r[i]) - double(g[i])));
  }
  return err / range;
}

// This family's kernels alone, in a registry of the test's own (the engine's registry,
// runtime::Kernels::instance(), lives in the runtime library that unit_tests does not link).
runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeOpKernels>(); }

std::set<std::string> nativeNames() {
  return {"x_binary_broadcast", "x_where_broadcast", "f32_unary", "b8_not", "x_cast", "f32_maxpool2d_nchw",
          "f32_avgpool2d_nchw", "f32_global_avgpool", "f32_global_maxpool", "f32_softmax_rows",
          "f32_logsoftmax_rows", "f32_layernorm_rows", "f32_batchnorm_inference", "f32_reduce_mean", "f32_reduce_sum", "x_transpose_strided", "x_slice_strided", "x_expand_strided",
          "x_concat_rows", "x_split_rows", "x_gather_rows", "i64_shape", "x_constant_of_shape_fill",
          "x_constant_copy", "f32_unary_poly", "f32_unary_poly__avx2", "f32_layernorm_rows_f32acc",
          "f32_resize_2d", "f32_resize_2d__avx2", "x_depth_to_space_strided", "x_space_to_depth_strided",
          "x_tile_strided", "x_pad_rows", "f32_instancenorm_planes", "f32_groupnorm_planes",
          "f32_instancenorm_planes_dpart__avx2", "f32_groupnorm_planes_dpart__avx2", "f32_reduce_max",
          "f32_reduce_min", "f32_reduce_prod", "f32_reduce_l1", "f32_reduce_l2", "f32_reduce_logsum",
          "f32_reduce_logsumexp", "f32_reduce_sumsquare", "x_argmax_rows", "x_argmin_rows",
          "x_topk_partial_sort", "x_cumsum_rows"};
}

// The polynomial activations differ from libm by a few ulp (native_ops_approx.cpp states
// the bounds, all within 3e-7 of max(1, |y|)); they are held to 1e-6 of the output range.
// The float-accumulating LayerNorm: mean and variance in float with eight partial sums,
// against the reference's doubles: measured at most 1.8e-7 of the output range on these
// cases (rows up to 4099 wide); the bound leaves 10x.
// The instance / group norms with 8 double partial sums and the output as x f + c in float
// (two roundings of terms of the output's magnitude where the reference rounds once):
// held to 1e-6 of the output range.
double kernelTolerance(const std::string& kernel, double caseTol) {
  if (kernel == "f32_layernorm_rows_f32acc") return std::max(caseTol, 2e-6);
  if (kernel.find("_dpart") != std::string::npos) return std::max(caseTol, 1e-6);
  return kernel.rfind("f32_unary_poly", 0) == 0 ? std::max(caseTol, 1e-6) : caseTol;
}

class NativeOpsCase : public ::testing::TestWithParam<Case> {};

TEST_P(NativeOpsCase, MatchesReference) {
  const Case& c = GetParam();
  std::mt19937 rng(1234);
  std::vector<Tensor> ins;
  std::vector<In> decl;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const InSpec& s = c.inputs[i];
    if (s.dtype == DataType::kUndefined) {
      ins.emplace_back();
      decl.push_back({"", {}, std::nullopt});
      continue;
    }
    ins.push_back(randomTensor(s, rng, c.op));
    const std::string name = "x" + std::to_string(i);
    decl.push_back({name, ins.back().type(), s.values ? std::optional<Tensor>(ins.back()) : std::nullopt});
  }
  ir::Attributes attrs;
  if (c.attrs) c.attrs(attrs);
  auto g = oneNode(c.op, decl, attrs, c.nout);
  const ir::Node& node = *g->nodes().front();

  std::vector<const Tensor*> ptrs, constants;
  for (size_t i = 0; i < ins.size(); ++i) {
    ptrs.push_back(ins[i].defined() ? &ins[i] : nullptr);
    constants.push_back(c.inputs[i].values ? &ins[i] : nullptr);
  }
  const std::vector<Tensor> ref = cpu::Interpreter::runNode(node, ptrs);

  std::vector<ir::TensorType> types;
  for (const Tensor& t : ins) types.push_back(t.defined() ? t.type() : ir::TensorType{DataType::kUndefined, {}});

  const std::set<std::string> mine = nativeNames();
  int ran = 0;
  bool expectedFound = false;
  for (const runtime::Kernel* k : registry().forNode(Device::kCPU, node)) {
    if (k->name == "ref" || !mine.count(k->name)) continue;
    if (k->supports && !k->supports(node, types)) continue;
    expectedFound = expectedFound || k->name == c.expectKernel;
    SCOPED_TRACE(k->name);
    const RunResult one = runNative(*k, node, ins, constants, ref, 1);
    const RunResult two = runNative(*k, node, ins, constants, ref, 2);
    const RunResult three = runNative(*k, node, ins, constants, ref, 3);  // uneven splits
    EXPECT_TRUE(one.guardsIntact) << "wrote outside an output (1 thread)";
    EXPECT_TRUE(two.guardsIntact) << "wrote outside an output (2 threads)";
    EXPECT_TRUE(three.guardsIntact) << "wrote outside an output (3 threads)";
    ASSERT_EQ(one.outputs.size(), ref.size());
    for (size_t o = 0; o < ref.size(); ++o) {
      EXPECT_EQ(one.outputs[o], two.outputs[o]) << "output " << o << " differs between 1 and 2 threads";
      EXPECT_EQ(one.outputs[o], three.outputs[o]) << "output " << o << " differs between 1 and 3 threads";
      const std::vector<unsigned char>& got = one.outputs[o];
      ASSERT_EQ(got.size(), ref[o].nbytes());
      const double tol = kernelTolerance(k->name, c.tol);
      if (tol > 0) {
        EXPECT_LE(relError(ref[o], got), tol) << "output " << o;
      } else if (ref[o].dtype() == DataType::kF32) {
        // Bitwise, NaN payloads aside.
        EXPECT_EQ(relError(ref[o], got), 0.0) << "output " << o;
        const float* r = ref[o].data<float>();
        const float* gv = reinterpret_cast<const float*>(got.data());
        int64_t diff = 0;
        for (int64_t i = 0; i < ref[o].numel(); ++i)
          if (!(std::isnan(r[i]) && std::isnan(gv[i])) && std::memcmp(&r[i], &gv[i], 4) != 0) ++diff;
        EXPECT_EQ(diff, 0) << "elements not bitwise equal to the reference";
      } else {
        EXPECT_EQ(0, std::memcmp(got.data(), ref[o].raw(), got.size())) << "output " << o << " differs";
      }
    }
    ++ran;
  }
  EXPECT_TRUE(expectedFound) << c.expectKernel << " does not support this case";
  EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(NativeOps, NativeOpsCase, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// What the native kernels leave to the reference: supports() must say no.
TEST(NativeOpsDecline, UnsupportedForms) {
  auto supported = [](const std::string& op, const std::vector<In>& ins, const ir::Attributes& at, int nout,
                      const std::string& name) {
    auto g = oneNode(op, ins, at, nout);
    const ir::Node& n = *g->nodes().front();
    std::vector<ir::TensorType> types;
    for (const In& i : ins) types.push_back(i.type);
    const runtime::Kernel* k = registry().find(Device::kCPU, op, "", name);
    EXPECT_NE(k, nullptr) << name;
    return k && (!k->supports || k->supports(n, types));
  };
  const ir::TensorType x{DataType::kF32, ir::Shape{1, 2, 7, 7}};
  ir::Attributes pool;
  pool.set("kernel_shape", Dims{2, 2});
  EXPECT_TRUE(supported("MaxPool", {{"x", x, {}}}, pool, 1, "f32_maxpool2d_nchw"));
  // The Indices output is the reference's.
  EXPECT_FALSE(supported("MaxPool", {{"x", x, {}}}, pool, 2, "f32_maxpool2d_nchw"));
  // 3-d windows, and f64 inputs.
  ir::Attributes pool3;
  pool3.set("kernel_shape", Dims{2, 2, 2});
  EXPECT_FALSE(supported("MaxPool", {{"x", {DataType::kF32, ir::Shape{1, 2, 5, 5, 5}}, {}}}, pool3, 1,
                         "f32_maxpool2d_nchw"));
  EXPECT_FALSE(supported("AveragePool", {{"x", {DataType::kF64, ir::Shape{1, 2, 7, 7}}, {}}}, pool, 1,
                         "f32_avgpool2d_nchw"));
  // LayerNormalization with its Mean output.
  const ir::TensorType s{DataType::kF32, ir::Shape{7}};
  EXPECT_FALSE(supported("LayerNormalization", {{"x", {DataType::kF32, ir::Shape{3, 7}}, {}}, {"s", s, {}}}, {}, 2,
                         "f32_layernorm_rows"));
  // Scale that broadcasts along the normalized dims rather than covering them.
  EXPECT_FALSE(supported("LayerNormalization",
                         {{"x", {DataType::kF32, ir::Shape{3, 7}}, {}}, {"s", {DataType::kF32, ir::Shape{1}}, {}}}, {},
                         1, "f32_layernorm_rows"));
  // Cast to f16, strings in Equal, f16 unary.
  ir::Attributes toHalf;
  toHalf.set("to", int64_t(DataType::kF16));
  EXPECT_FALSE(supported("Cast", {{"x", {DataType::kF32, ir::Shape{3}}, {}}}, toHalf, 1, "x_cast"));
  EXPECT_FALSE(supported("Relu", {{"x", {DataType::kF16, ir::Shape{3}}, {}}}, {}, 1, "f32_unary"));
  EXPECT_FALSE(supported("Add", {{"a", {DataType::kF64, ir::Shape{3}}, {}}, {"b", {DataType::kF64, ir::Shape{3}}, {}}},
                         {}, 1, "x_binary_broadcast"));
}

// Resize forms the native kernels leave to the reference: cubic, antialias, cropping,
// computed scales, and a resized channel axis.
TEST(NativeOpsDecline, ResizeForms) {
  const ir::TensorType x{DataType::kF32, ir::Shape{1, 2, 5, 6}};
  const Tensor x2 = Tensor::fromVector<float>(DataType::kF32, {4}, {1, 1, 2, 2});
  const Tensor channels = Tensor::fromVector<float>(DataType::kF32, {4}, {1, 2, 2, 2});
  auto ok = [&](const std::string& mode, const std::string& ctm, int64_t antialias, const Tensor* scales) {
    ir::Attributes at;
    at.set("mode", mode);
    at.set("coordinate_transformation_mode", ctm);
    if (antialias) at.set("antialias", antialias);
    const ir::TensorType st{DataType::kF32, ir::Shape{4}};
    auto g = oneNode("Resize", {{"x", x, {}}, {"", {}, {}}, {"s", st, scales ? std::optional<Tensor>(*scales) : std::nullopt}},
                     at, 1);
    const ir::Node& n = *g->nodes().front();
    const runtime::Kernel* k = registry().find(Device::kCPU, "Resize", "", "f32_resize_2d");
    EXPECT_NE(k, nullptr);
    return k && k->supports(n, {x, ir::TensorType{DataType::kUndefined, {}}, st});
  };
  EXPECT_TRUE(ok("linear", "half_pixel", 0, &x2));
  EXPECT_TRUE(ok("nearest", "asymmetric", 1, &x2)) << "antialias means nothing to nearest";
  EXPECT_FALSE(ok("cubic", "half_pixel", 0, &x2));
  EXPECT_FALSE(ok("linear", "half_pixel", 1, &x2));
  EXPECT_FALSE(ok("linear", "tf_crop_and_resize", 0, &x2));
  EXPECT_FALSE(ok("linear", "half_pixel", 0, nullptr)) << "computed scales";
  EXPECT_FALSE(ok("nearest", "asymmetric", 0, &channels));
}

// The kernels must fail a step, not read out of bounds, on indices beyond the data.
TEST(NativeOpsBadInput, GatherIndexOutOfRange) {
  Tensor data(DataType::kF32, {5, 3});
  Tensor idx = Tensor::fromVector<int64_t>(DataType::kI64, {2}, {1, 5});
  auto g = oneNode("Gather", {{"d", data.type(), {}}, {"i", idx.type(), {}}});
  const ir::Node& n = *g->nodes().front();
  const runtime::Kernel* k = registry().find(Device::kCPU, "Gather", "", "x_gather_rows");
  ASSERT_NE(k, nullptr);
  Tensor out(DataType::kF32, {2, 3});
  EXPECT_THROW(runNative(*k, n, {data, idx}, {nullptr, nullptr}, {out}, 1), Error);
}

// ConstantOfShape, Expand and Slice steps whose shape-giving inputs are computed: the
// native kernels decline them while kServeComputedShapeInputs is off (native_ops_util.h).
bool isComputedShapeStep(const ir::Node& n) {
  auto computed = [&](size_t i) { return i < n.numInputs() && n.input(i) && !n.input(i)->isInitializer(); };
  if (n.op() == "ConstantOfShape") return computed(0);
  if (n.op() == "Expand") return computed(1);
  if (n.op() == "Slice") return computed(1) || computed(2) || computed(3) || computed(4);
  return false;
}

// Every step of the zoo models that is not linear, a sequence op or a view (other
// families, or aliased by the runtime) must have a native kernel here, at optimization
// levels 3 and 0, with the batch dim at 2: a model runs without allocating only when all
// its steps are native. The graph then runs on the reference kernels with random inputs
// (f32 in [-3, 3], integer inputs 0 or 1: valid token ids and masks), and every step
// runs natively on the values the reference computed: outputs must match (bitwise, or
// for GlobalAveragePool within the bound n * 2^-24 of the reference's float sum of a
// plane of n), guards intact.
// Models come from tests/models/export_models.py (ANVIL_MODELS_DIR, default build/models;
// skipped when absent) plus examples/models/tiny_cnn.onnx.
TEST(NativeOpsZoo, EveryStepHasANativeKernel) {
  const std::set<std::string> others = {
      "MatMul", "Gemm", "Conv", "FusedConv", "FusedGemm", "FusedMatMul", "Attention", "FusedElementwise", "LSTM",
      "LSTMStack", "GRU", "RNN", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout"};
  const char* env = std::getenv("ANVIL_MODELS_DIR");
  const std::string dir = env ? env : std::string(ANVIL_SOURCE_DIR) + "/build/models";
  std::vector<std::string> paths = {std::string(ANVIL_SOURCE_DIR) + "/examples/models/tiny_cnn.onnx"};
  for (const char* m : {"resnet18", "mobilenet_v2", "efficientnet_b0", "bert_tiny", "mlp", "lstm", "resnet50"}) {
    const std::string p = dir + "/" + m + ".onnx";
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) paths.push_back(p);
    else std::printf("[ note ] %s absent: not checked\n", p.c_str());
  }
  std::ostringstream missing, wrong;
  int checked = 0, compared = 0, deferred = 0;
  std::mt19937 rng(99);
  for (const std::string& path : paths)
    for (int level : {3, 0}) {
      const std::string where = path.substr(path.rfind('/') + 1) + " level " + std::to_string(level);
      ir::Model model = parser::parseOnnxFile(path);
      ir::Graph& g = *model.graph;
      passes::optimize(g, level);
      for (ir::Value* v : g.inputs())
        for (ir::Dim& d : v->type().shape.dims())
          if (!d.isStatic()) d = ir::Dim(2);
      ir::inferShapes(g);
      std::map<const ir::Value*, Tensor> values;
      for (ir::Value* v : g.inputs()) {
        if (v->isInitializer()) continue;
        Tensor t(v->dtype(), v->type().shape.extents());
        for (int64_t i = 0; i < t.numel(); ++i)
          t.setDouble(i, v->dtype() == DataType::kF32 ? std::uniform_real_distribution<double>(-3, 3)(rng)
                                                      : double(rng() & 1));
        values[v] = std::move(t);
      }
      for (const auto& n : g.nodes()) {
        std::vector<Tensor> ins;
        std::vector<const Tensor*> ptrs, constants;
        std::vector<ir::TensorType> types;
        for (size_t i = 0; i < n->numInputs(); ++i) {
          const ir::Value* v = n->input(i);
          const Tensor* t = !v ? nullptr : v->isInitializer() ? v->initializer() : &values.at(v);
          ins.push_back(t ? *t : Tensor());
          ptrs.push_back(t);
          constants.push_back(v && v->isInitializer() ? t : nullptr);
          types.push_back(t ? t->type() : ir::TensorType{DataType::kUndefined, {}});
        }
        std::vector<Tensor> ref = cpu::Interpreter::runNode(*n, ptrs);
        for (size_t o = 0; o < n->numOutputs() && o < ref.size(); ++o)
          if (n->output(o)) values[n->output(o)] = ref[o];
        if (others.count(n->op())) continue;
        ++checked;
        bool any = false;
        for (const runtime::Kernel* k : registry().forNode(Device::kCPU, *n)) {
          if (k->supports && !k->supports(*n, types)) continue;
          any = true;
          const RunResult got = runNative(*k, *n, ins, constants, ref, 2);
          bool same = got.guardsIntact && got.outputs.size() == ref.size();
          for (size_t o = 0; same && o < ref.size(); ++o) {
            if (!ref[o].defined()) continue;
            double tol = kernelTolerance(k->name, 0);
            if (k->name.rfind("f32_global_avgpool", 0) == 0)  // either sum order (8 or 32 partial sums)
              tol = double(ins[0].numel() / (ins[0].dim(0) * ins[0].dim(1))) * 0x1p-24;
            if (tol > 0)
              same = relError(ref[o], got.outputs[o]) <= tol;
            else
              same = got.outputs[o].size() == ref[o].nbytes() &&
                     std::memcmp(got.outputs[o].data(), ref[o].raw(), ref[o].nbytes()) == 0;
          }
          ++compared;
          if (!same) wrong << "  " << where << ": " << n->label() << " (" << k->name << ")\n";
        }
        if (!any && isComputedShapeStep(*n)) {
          ++deferred;
          continue;
        }
        if (!any) {
          missing << "  " << where << ": " << n->op() << "(";
          for (const ir::TensorType& t : types) missing << t.str() << " ";
          missing << ")\n";
        }
      }
    }
  std::printf("[ note ] %d steps of %zu models checked, %d native kernel runs compared, %d computed-shape steps "
              "left to the reference (kServeComputedShapeInputs)\n",
              checked, paths.size(), compared, deferred);
  EXPECT_GT(checked, 0);
  EXPECT_TRUE(missing.str().empty()) << "steps without a native kernel:\n" << missing.str();
  EXPECT_TRUE(wrong.str().empty()) << "steps whose native output differs from the reference:\n" << wrong.str();
}

// Special values through every activation kernel: NaN stays NaN, infinities and the
// saturated ends match the reference, finite results stay within each kernel's tolerance.
TEST(NativeOpsSpecialValues, Activations) {
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> v = {std::nanf(""), inf, -inf, 0.f, -0.f, 1e-30f, -1e-30f, 1e-4f, 88.f, 88.7f, 89.f,
                                -88.f, -100.f, -104.f, -200.f, 20.f, -20.f, 9.f, -9.f, 0.6249f, 0.6251f};
  const Tensor x = Tensor::fromVector<float>(DataType::kF32, {int64_t(v.size())}, v);
  for (const char* op : {"Exp", "Sigmoid", "Tanh", "Erf", "Gelu"}) {
    auto g = oneNode(op, {{"x", x.type(), {}}});
    const ir::Node& n = *g->nodes().front();
    const std::vector<Tensor> ref = cpu::Interpreter::runNode(n, {&x});
    for (const runtime::Kernel* k : registry().forNode(Device::kCPU, n)) {
      if (!nativeNames().count(k->name)) continue;
      SCOPED_TRACE(std::string(op) + " " + k->name);
      const RunResult got = runNative(*k, n, {x}, {nullptr}, ref, 1);
      const float* r = ref[0].data<float>();
      const float* y = reinterpret_cast<const float*>(got.outputs[0].data());
      for (size_t i = 0; i < v.size(); ++i) {
        if (std::isnan(r[i]) || std::isinf(r[i])) {
          EXPECT_TRUE(std::isnan(r[i]) ? std::isnan(y[i]) : y[i] == r[i]) << "x = " << v[i] << ": " << y[i] << " vs " << r[i];
          continue;
        }
        const double tol = kernelTolerance(k->name, 0) * std::max(1.0, double(std::fabs(r[i])));
        EXPECT_LE(std::fabs(double(y[i]) - double(r[i])), tol) << "x = " << v[i] << ": " << y[i] << " vs " << r[i];
      }
    }
  }
}

// A Split whose middle output is unused: the part still takes its place in the input.
TEST(NativeOpsSplit, UnusedMiddleOutput) {
  std::vector<float> v(2 * 9);
  for (size_t i = 0; i < v.size(); ++i) v[i] = float(i);
  const Tensor x = Tensor::fromVector<float>(DataType::kF32, {2, 9}, v);
  ir::Attributes at;
  at.set("axis", int64_t(1));
  auto g = oneNode("Split", {{"x", x.type(), {}}}, at, 3);
  const ir::Node& n = *g->nodes().front();
  const std::vector<Tensor> ref = cpu::Interpreter::runNode(n, {&x});
  const runtime::Kernel* k = registry().find(Device::kCPU, "Split", "", "x_split_rows");
  ASSERT_NE(k, nullptr);
  const RunResult got = runNative(*k, n, {x}, {nullptr}, {ref[0], Tensor(), ref[2]}, 1);
  EXPECT_TRUE(got.guardsIntact);
  EXPECT_EQ(0, std::memcmp(got.outputs[0].data(), ref[0].raw(), ref[0].nbytes()));
  EXPECT_EQ(0, std::memcmp(got.outputs[2].data(), ref[2].raw(), ref[2].nbytes()));
}

// While kServeComputedShapeInputs is off, supports() declines computed shape inputs; the
// kernels themselves read those values at run time and must match the reference on them,
// into planned outputs or into outputs they allocate (extents known only at run time).
TEST(NativeOpsComputedShapes, KernelsReadValuesAtRunTime) {
  struct C {
    const char* op;
    const char* kernel;
    std::vector<Tensor> ins;
  };
  const std::vector<C> cs = {
      {"Slice", "x_slice_strided",
       {Tensor::fromVector<float>(DataType::kF32, {3, 5}, std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}),
        Tensor::fromVector<int64_t>(DataType::kI64, {2}, {1, -1}), Tensor::fromVector<int64_t>(DataType::kI64, {2}, {3, 0}),
        Tensor::fromVector<int64_t>(DataType::kI64, {2}, {0, 1}), Tensor::fromVector<int64_t>(DataType::kI64, {2}, {1, -2})}},
      {"Expand", "x_expand_strided",
       {Tensor::fromVector<float>(DataType::kF32, {3, 1}, std::vector<float>{1, 2, 3}),
        Tensor::fromVector<int64_t>(DataType::kI64, {3}, {2, 3, 4})}},
      {"ConstantOfShape", "x_constant_of_shape_fill", {Tensor::fromVector<int64_t>(DataType::kI64, {2}, {3, 7})}},
  };
  for (const C& c : cs) {
    SCOPED_TRACE(c.op);
    std::vector<In> decl;
    for (size_t i = 0; i < c.ins.size(); ++i) decl.push_back({"x" + std::to_string(i), c.ins[i].type(), std::nullopt});
    auto g = oneNode(c.op, decl);
    const ir::Node& n = *g->nodes().front();
    std::vector<const Tensor*> ptrs;
    for (const Tensor& t : c.ins) ptrs.push_back(&t);
    const std::vector<Tensor> ref = cpu::Interpreter::runNode(n, ptrs);
    const runtime::Kernel* k = registry().find(Device::kCPU, c.op, "", c.kernel);
    ASSERT_NE(k, nullptr);
    std::vector<ir::TensorType> types;
    for (const Tensor& t : c.ins) types.push_back(t.type());
    EXPECT_EQ(k->supports(n, types), runtime::nops::kServeComputedShapeInputs);
    EXPECT_TRUE(k->dynamicShapes);
    for (bool dynamic : {false, true}) {
      SCOPED_TRACE(dynamic ? "extents from the allocator" : "planned extents");
      const RunResult got =
          runNative(*k, n, c.ins, std::vector<const Tensor*>(c.ins.size(), nullptr), ref, 2, nullptr, 0, dynamic);
      EXPECT_TRUE(got.guardsIntact);
      ASSERT_EQ(got.outputs[0].size(), ref[0].nbytes());
      EXPECT_EQ(0, std::memcmp(got.outputs[0].data(), ref[0].raw(), ref[0].nbytes()));
    }
  }
}

// Slice reads its starts and ends at run time: values that do not select the planned
// extents (the builder times kernels on random data) fail the step instead of reading
// outside the input.
TEST(NativeOpsBadInput, SliceValuesOtherThanPlanned) {
  Tensor data(DataType::kF32, {5, 3});
  Tensor starts = Tensor::fromVector<int64_t>(DataType::kI64, {1}, {4});
  Tensor ends = Tensor::fromVector<int64_t>(DataType::kI64, {1}, {100});
  auto g = oneNode("Slice", {{"d", data.type(), {}}, {"s", starts.type(), {}}, {"e", ends.type(), {}}});
  const ir::Node& n = *g->nodes().front();
  const runtime::Kernel* k = registry().find(Device::kCPU, "Slice", "", "x_slice_strided");
  ASSERT_NE(k, nullptr);
  Tensor planned(DataType::kF32, {3, 3});  // as if planned for starts = 2
  EXPECT_THROW(runNative(*k, n, {data, starts, ends}, {nullptr, nullptr, nullptr}, {planned}, 1), Error);
}

// Native vs reference time on zoo shapes (a printout, not an assertion):
//   unit_tests --gtest_filter='NativeOpsTiming*' --gtest_also_run_disabled_tests
TEST(NativeOpsTiming, DISABLED_Speed) {
  struct T {
    const char* what;
    Case c;
  };
  const std::vector<T> list = {
      {"MaxPool 3x3s2 [1,64,112,112]", {"", "MaxPool", {f32({1, 64, 112, 112})}, [](ir::Attributes& a) {
                                          a.set("kernel_shape", Dims{3, 3});
                                          a.set("strides", Dims{2, 2});
                                          a.set("pads", Dims{1, 1, 1, 1});
                                        }}},
      {"GlobalAveragePool [1,1152,7,7]", {"", "GlobalAveragePool", {f32({1, 1152, 7, 7})}}},
      {"Mul SE gate [1,144,56,56]", {"", "Mul", {f32({1, 144, 1, 1}), f32({1, 144, 56, 56})}}},
      {"Add [1,64,56,56]", {"", "Add", {f32({1, 64, 56, 56}), f32({1, 64, 56, 56})}}},
      {"LayerNorm [16,16,64]", {"", "LayerNormalization", {f32({16, 16, 64}), f32({64}), f32({64})}}},
      {"Transpose [16,16,64] 102", {"", "Transpose", {f32({16, 16, 64})}, [](ir::Attributes& a) {
                                      a.set("perm", Dims{1, 0, 2});
                                    }}},
      {"Sigmoid [1,96,112,112]", {"", "Sigmoid", {f32({1, 96, 112, 112})}}},
      {"Erf [16,16,256]", {"", "Erf", {f32({16, 16, 256})}}},
  };
  std::mt19937 rng(7);
  for (const T& t : list) {
    std::vector<Tensor> ins;
    std::vector<In> decl;
    for (size_t i = 0; i < t.c.inputs.size(); ++i) {
      ins.push_back(randomTensor(t.c.inputs[i], rng, t.c.op));
      decl.push_back({"x" + std::to_string(i), ins.back().type(), std::nullopt});
    }
    ir::Attributes attrs;
    if (t.c.attrs) t.c.attrs(attrs);
    auto g = oneNode(t.c.op, decl, attrs);
    const ir::Node& n = *g->nodes().front();
    std::vector<const Tensor*> ptrs;
    for (const Tensor& x : ins) ptrs.push_back(&x);
    auto time = [](auto f) {
      f();
      const auto t0 = std::chrono::steady_clock::now();
      const int reps = 20;
      for (int i = 0; i < reps; ++i) f();
      return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() / reps;
    };
    std::vector<Tensor> ref;
    const double tRef = time([&] { ref = cpu::Interpreter::runNode(n, ptrs); });
    std::vector<const runtime::Kernel*> ks;
    for (const runtime::Kernel* c : registry().forNode(Device::kCPU, n))
      if (nativeNames().count(c->name)) ks.push_back(c);
    ASSERT_FALSE(ks.empty()) << t.what;
    for (const runtime::Kernel* k : ks) {
      double tNat = 0;
      runNative(*k, n, ins, std::vector<const Tensor*>(ins.size(), nullptr), ref, 1, &tNat, 20);
      std::printf("%-34s ref %9.1f us  %-22s %9.1f us  (%.1fx)\n", t.what, tRef, k->name.c_str(), tNat, tRef / tNat);
    }
  }
}

}  // namespace
