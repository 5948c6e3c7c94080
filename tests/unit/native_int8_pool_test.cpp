// The u8 MaxPool of lowered INT8 chains (cpu/tactics/native_int8_pool.cpp) through the
// kernel contract: on every window kind, its bytes against the f32 reference MaxPool of the
// dequantized input quantized on the same grid (bit for bit), at 1 and 2 threads with the
// output between sentinel guards; supports() refusals; a timing against the f32 kernels.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>

#include "cpu/tactics/int8_gemm.h"
#include "native_kernel_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeInt8PoolKernels(Kernels& k);  // cpu/tactics/native_int8_pool.cpp
void registerNativeOpKernels(Kernels& k);        // cpu/tactics/native_ops.cpp
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

const runtime::Kernel& u8Pool() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeInt8PoolKernels(*r);
    return r;
  }();
  return *k->all().front();
}

ir::Quantization grid(float s, int32_t zp) {
  return ir::Quantization{Tensor::scalar<float>(DataType::kF32, s), Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(zp)),
                          std::nullopt};
}

ir::Attributes window(Dims k, Dims s, Dims d, Dims pads, bool ceil = false, const std::string& autoPad = "") {
  ir::Attributes a;
  a.set("kernel_shape", k);
  if (!s.empty()) a.set("strides", s);
  if (!d.empty()) a.set("dilations", d);
  if (!pads.empty()) a.set("pads", pads);
  if (ceil) a.set("ceil_mode", int64_t(1));
  if (!autoPad.empty()) a.set("auto_pad", autoPad);
  return a;
}

std::vector<Case> poolCases() {
  return {
      {"k3_s2_p1", "MaxPool", "", {Dims{1, 3, 13, 11}}, {false}, window({3, 3}, {2, 2}, {}, {1, 1, 1, 1})},
      {"k2_s2_b2", "MaxPool", "", {Dims{2, 5, 9, 8}}, {false}, window({2, 2}, {2, 2}, {}, {})},
      {"k3_s1_p1", "MaxPool", "", {Dims{1, 4, 7, 7}}, {false}, window({3, 3}, {}, {}, {1, 1, 1, 1})},
      {"k3_d2_p2", "MaxPool", "", {Dims{1, 3, 12, 13}}, {false}, window({3, 3}, {}, {2, 2}, {2, 2, 2, 2})},
      {"k3_s2_ceil", "MaxPool", "", {Dims{1, 2, 10, 9}}, {false}, window({3, 3}, {2, 2}, {}, {}, true)},
      {"k3_s2_same_upper", "MaxPool", "", {Dims{1, 2, 11, 10}}, {false}, window({3, 3}, {2, 2}, {}, {}, false, "SAME_UPPER")},
      {"k3_pads2_asym", "MaxPool", "", {Dims{1, 2, 5, 6}}, {false}, window({3, 3}, {}, {}, {2, 0, 1, 2})},
      {"k1x5_s1x3", "MaxPool", "", {Dims{1, 3, 6, 20}}, {false}, window({1, 5}, {1, 3}, {}, {0, 1, 0, 1})},
      {"resnet_stem_pool", "MaxPool", "", {Dims{1, 64, 112, 112}}, {false}, window({3, 3}, {2, 2}, {}, {1, 1, 1, 1})},
  };
}

// The case with input 0 quantized on (s, zp): the f32 graph holds its dequantized values,
// the lowered one its bytes, both value and output with that grid.
struct Pair {
  Built f32, low;
  Dims out;
};
Pair pairOf(const Case& c, float s, int32_t zp) {
  Pair p{build(c, 3), build(c, 3), {}};
  Tensor& x = p.f32.tensors[0];
  Tensor q(DataType::kU8, x.dims());
  for (int64_t i = 0; i < x.numel(); ++i) {
    const uint8_t v = cpu::tactics::quantizeU8One(x.data<float>()[i], 1.0f / s, zp);
    q.data<uint8_t>()[i] = v;
    x.data<float>()[i] = float(int32_t(v) - zp) * s;
  }
  p.low.tensors[0] = std::move(q);
  ir::Node* n = const_cast<ir::Node*>(p.low.node);
  n->input(0)->setType(ir::TensorType{DataType::kU8, n->input(0)->shape()});
  n->input(0)->setQuantization(grid(s, zp));
  n->output(0)->setType(ir::TensorType{DataType::kU8, n->output(0)->shape()});
  n->output(0)->setQuantization(grid(s, zp));
  p.out = n->output(0)->shape().extents();
  return p;
}

TEST(NativeInt8Pool, MaxOfBytesIsTheQuantizedF32MaxPool) {
  const runtime::Kernel& k = u8Pool();
  EXPECT_EQ(k.name, "i8_maxpool2d_u8_nchw");
  for (const Case& c : poolCases())
    for (int32_t zp : {0, 128, 255}) {
      const Pair p = pairOf(c, 1.5f / 255.0f, zp);  // a narrow grid: the ends saturate
      ASSERT_TRUE(k.supports(*p.low.node, p.low.types())) << c.name;
      const Tensor ref = reference(p.f32);
      const PreparedKernel pk = prepare(k, p.low, 2);
      std::vector<std::vector<uint8_t>> outs;
      for (int threads : {1, 2}) {
        auto ex = runtime::makeCpuExecutor(threads);
        Step step(k, pk, p.low, p.out, false, DataType::kU8);
        step.run(*ex);
        const RunResult r = step.result();
        EXPECT_TRUE(r.guardsIntact) << c.name << " wrote outside the output";
        EXPECT_TRUE(r.workspaceIntact) << c.name;
        outs.push_back(r.bytes);
      }
      EXPECT_TRUE(outs[0] == outs[1]) << c.name << ": 1 and 2 threads differ";
      ASSERT_EQ(outs[0].size(), size_t(ref.numel())) << c.name;
      int64_t bad = 0;
      for (int64_t i = 0; i < ref.numel(); ++i)
        bad += outs[0][size_t(i)] != cpu::tactics::quantizeU8One(ref.data<float>()[i], 255.0f / 1.5f, zp);
      EXPECT_EQ(bad, 0) << c.name << " zp " << zp;
    }
}

TEST(NativeInt8Pool, DeclinesWhatItCannotHonour) {
  const runtime::Kernel& k = u8Pool();
  const Case c = poolCases().front();
  {
    const Built b = build(c, 1);  // f32
    EXPECT_FALSE(k.supports(*b.node, b.types()));
  }
  {
    Pair p = pairOf(c, 0.01f, 3);
    const_cast<ir::Node*>(p.low.node)->output(0)->setQuantization(grid(0.02f, 3));
    EXPECT_FALSE(k.supports(*p.low.node, p.low.types())) << "another output grid";
  }
  {
    Pair p = pairOf(c, 0.01f, 3);
    const_cast<ir::Node*>(p.low.node)->input(0)->setQuantization(std::nullopt);
    EXPECT_FALSE(k.supports(*p.low.node, p.low.types())) << "u8 without quantization";
  }
  {
    Pair p = pairOf(c, 0.01f, 3);
    ir::Node* n = const_cast<ir::Node*>(p.low.node);
    n->output(0)->setType(ir::TensorType{DataType::kF32, n->output(0)->shape()});
    EXPECT_FALSE(k.supports(*p.low.node, p.low.types())) << "f32 output";
  }
  {
    Pair p = pairOf(c, 0.01f, 3);
    const ir::Quantization axis{Tensor::fromVector<float>(DataType::kF32, {3}, std::vector<float>(3, 0.01f)), Tensor(), 1};
    const_cast<ir::Node*>(p.low.node)->input(0)->setQuantization(axis);
    const_cast<ir::Node*>(p.low.node)->output(0)->setQuantization(axis);
    EXPECT_FALSE(k.supports(*p.low.node, p.low.types())) << "per-axis";
  }
}

// resnet50's stem pool (64 x 112 x 112 -> 56 x 56, 3x3 stride 2 pad 1), one thread: the
// u8 kernel against each f32 MaxPool kernel the CPU has.
TEST(NativeInt8Pool, DISABLED_VsF32) {
  runtime::Kernels f32;
  runtime::registerNativeOpKernels(f32);
  const Case c = poolCases().back();
  const Pair p = pairOf(c, 0.01f, 3);
  auto time = [&](const runtime::Kernel& k, const Built& b, DataType t) {
    const PreparedKernel pk = prepare(k, b, 1);
    Step step(k, pk, b, p.out, true, t);
    auto ex = runtime::makeCpuExecutor(1);
    for (int i = 0; i < 3; ++i) step.run(*ex);
    double best = 1e30;
    for (int r = 0; r < 9; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      for (int i = 0; i < 20; ++i) step.run(*ex);
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 20);
    }
    return best;
  };
  for (const runtime::Kernel* k : f32.all())
    if (k->op == "MaxPool" && runtime::hostHasAll(k->requirements) && k->supports(*p.f32.node, p.f32.types()))
      std::printf("  %-36s %8.3f ms\n", k->name.c_str(), time(*k, p.f32, DataType::kF32) * 1e3);
  std::printf("  %-36s %8.3f ms\n", u8Pool().name.c_str(), time(u8Pool(), p.low, DataType::kU8) * 1e3);
}

}  // namespace
