// The native Q/DQ steps (cpu/tactics/native_qdq.cpp) against the reference kernels, byte
// for byte: per-tensor QuantizeLinear (f32 -> u8 / s8) and DequantizeLinear (u8 / s8 ->
// f32) and anvil.QLinearAdd, on odd lengths (vector tails), with halves, saturation, NaN and
// infinities in the data, the output between guards, on 1 and 3 threads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "native_kernel_test_util.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeQdqKernels(Kernels& k);
}  // namespace anvil::runtime

namespace anvil {
namespace {

using ir::DataType;
using ir::Tensor;
using testing::nk::Built;

runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeQdqKernels>(); }

const runtime::Kernel* kernel(const std::string& op) {
  for (const runtime::Kernel* k : registry().all())
    if (k->op == op) return k;
  return nullptr;
}

Tensor zeroPoint(DataType t, int z) {
  return t == DataType::kU8 ? Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(z))
                            : Tensor::scalar<int8_t>(DataType::kI8, int8_t(z));
}

// Values around the grid's halves and past both ends, plus NaN and infinities.
Tensor floats(int64_t n, float s, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> k(-300, 300);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Tensor x(DataType::kF32, {n});
  for (int64_t i = 0; i < n; ++i) {
    float v = (float(k(rng)) + (i % 3 == 0 ? 0.5f : u(rng))) * s;  // every third one on a half
    if (i % 23 == 5) v = std::numeric_limits<float>::quiet_NaN();
    if (i % 29 == 7) v = (i % 2 ? 1.0f : -1.0f) * std::numeric_limits<float>::infinity();
    x.data<float>()[i] = v;
  }
  return x;
}

Built node(const std::string& op, const std::string& domain, std::vector<Tensor> ins, const ir::Attributes& at,
           size_t nonConstant) {
  Built b;
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vs;
  for (size_t i = 0; i < ins.size(); ++i) {
    ir::Value* v = i < nonConstant ? g->addValue("in" + std::to_string(i), ins[i].type())
                                   : g->addInitializer("in" + std::to_string(i), ins[i].clone());
    if (i < nonConstant) g->addInput(v);
    vs.push_back(v);
  }
  ir::Node* n = g->addNode(op, domain, "n0", vs, {"y"});
  n->attrs() = at;
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  b.node = n;
  b.graph = std::move(g);
  b.tensors = std::move(ins);
  return b;
}

// The kernel's output bytes equal the reference's, on 1 and 3 threads, guards intact.
void expectReferenceBits(const runtime::Kernel& k, const Built& b, const std::string& what) {
  ASSERT_TRUE(k.supports(*b.node, b.types())) << what;
  const Tensor ref = testing::nk::reference(b);
  for (int threads : {1, 3}) {
    const testing::nk::PreparedKernel pk = testing::nk::prepare(k, b, threads);
    auto ex = runtime::makeCpuExecutor(threads);
    testing::nk::Step step(k, pk, b, ref.dims(), false, ref.dtype());
    step.run(*ex);
    const testing::nk::RunResult r = step.result();
    EXPECT_TRUE(r.guardsIntact) << what;
    ASSERT_EQ(r.bytes.size(), size_t(ref.nbytes())) << what;
    int64_t diff = 0;
    for (size_t i = 0; i < r.bytes.size(); ++i) diff += r.bytes[i] != static_cast<const uint8_t*>(ref.raw())[i];
    EXPECT_EQ(diff, 0) << what << " threads=" << threads;
  }
}

TEST(NativeQdq, QuantizeMatchesTheReference) {
  const runtime::Kernel* k = kernel("QuantizeLinear");
  ASSERT_NE(k, nullptr);
  for (DataType t : {DataType::kU8, DataType::kI8})
    for (int64_t n : {1, 7, 17, 63, 100003})
      for (float s : {0.0371f, 1.0f}) {
        const int z = t == DataType::kU8 ? 131 : -7;
        const Built b = node("QuantizeLinear", "",
                             {floats(n, s, uint32_t(n)), Tensor::scalar<float>(DataType::kF32, s), zeroPoint(t, z)}, {}, 1);
        expectReferenceBits(*k, b, std::string(ir::dtypeName(t)) + " n=" + std::to_string(n) + " s=" + std::to_string(s));
      }
}

TEST(NativeQdq, DequantizeMatchesTheReference) {
  const runtime::Kernel* k = kernel("DequantizeLinear");
  ASSERT_NE(k, nullptr);
  for (DataType t : {DataType::kU8, DataType::kI8})
    for (int64_t n : {1, 7, 17, 63, 70001}) {
      Tensor q(t, {n});
      for (int64_t i = 0; i < n; ++i) q.data<uint8_t>()[i] = uint8_t(i * 37 + 11);  // every byte value
      const Built b = node("DequantizeLinear", "",
                           {q, Tensor::scalar<float>(DataType::kF32, 0.0213f), zeroPoint(t, t == DataType::kU8 ? 3 : -100)},
                           {}, 1);
      expectReferenceBits(*k, b, std::string(ir::dtypeName(t)) + " n=" + std::to_string(n));
    }
}

TEST(NativeQdq, QLinearAddMatchesTheReference) {
  const runtime::Kernel* k = kernel("QLinearAdd");
  ASSERT_NE(k, nullptr);
  for (DataType t : {DataType::kU8, DataType::kI8})
    for (int64_t n : {1, 7, 17, 63, 65536 + 5}) {
      Tensor a(t, {n}), b(t, {n});
      for (int64_t i = 0; i < n; ++i) {
        a.data<uint8_t>()[i] = uint8_t(i);
        b.data<uint8_t>()[i] = uint8_t(i / 256 + 7 * i);
      }
      ir::Attributes at;
      at.set("a_scale", 0.031f);
      at.set("b_scale", 0.017f);
      at.set("y_scale", 0.029f);
      at.set("a_zero_point", int64_t(t == DataType::kU8 ? 120 : -3));
      at.set("b_zero_point", int64_t(t == DataType::kU8 ? 140 : 9));
      at.set("y_zero_point", int64_t(t == DataType::kU8 ? 100 : -20));
      const Built bt = node("QLinearAdd", "anvil", {a, b}, at, 2);
      expectReferenceBits(*k, bt, std::string(ir::dtypeName(t)) + " n=" + std::to_string(n));
    }
}

TEST(NativeQdq, DeclinesOtherForms) {
  const runtime::Kernel* q = kernel("QuantizeLinear");
  // Per axis: a scale per channel.
  const Built pa = node("QuantizeLinear", "",
                        {Tensor(DataType::kF32, {2, 3}), Tensor::fromVector<float>(DataType::kF32, {3}, {0.1f, 0.2f, 0.3f}),
                         Tensor::fromVector<uint8_t>(DataType::kU8, {3}, {0, 0, 0})},
                        {}, 1);
  EXPECT_FALSE(q->supports(*pa.node, pa.types()));
  // A scale computed at run time.
  const Built rt = node("QuantizeLinear", "", {Tensor(DataType::kF32, {4}), Tensor::scalar<float>(DataType::kF32, 0.1f)}, {}, 2);
  EXPECT_FALSE(q->supports(*rt.node, rt.types()));
  // Without saturation (float8 only) or to int32 (dequantize side).
  const runtime::Kernel* dq = kernel("DequantizeLinear");
  const Built i32 = node("DequantizeLinear", "",
                         {Tensor(DataType::kI32, {4}), Tensor::scalar<float>(DataType::kF32, 0.1f),
                          Tensor::scalar<int32_t>(DataType::kI32, 0)},
                         {}, 1);
  EXPECT_FALSE(dq->supports(*i32.node, i32.types()));
}

}  // namespace
}  // namespace anvil
