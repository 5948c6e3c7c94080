// The blocked one-pixel forms of the 1x1 GEMV convolution
// (cpu/tactics/native_conv_small.cpp: f32_conv1x1_gemv_nchw{8,16}c__avx2 and
// their _epilogue forms): a 1x1 image's NCHW<b>c storage is [N][padded
// channels], so the kernel reads X and Z and writes Y at the padded pitch and
// zeroes the output's padding lanes. Against the reference kernel through the
// contract (tests/unit/nchwc_test_util.h: X and Z handed over blocked, the
// packed filter as NaNs, the output between guards, its padding lanes checked),
// 1 and 2 executor threads and a timed split of 2 tasks bitwise equal; channel
// counts around the blocks and the 16-output panels, batches 1 and 3,
// activations and both residual orders. supports() takes only blocked one-pixel
// nodes.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "ir/ops/anvil_linear.h"
#include "nchwc_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp (registers the GEMV)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& registry() { return anvil::testing::nk::registryOf<&runtime::registerNativeWinogradKernels>(); }

struct BlockedCase {
  Case c;
  int block = 8;
  bool residual = false;
};

Case gemvCase(int64_t N, int64_t K, int64_t M, bool bias, const char* act, int residualOrder) {
  Case c;
  const bool fused = act != nullptr || residualOrder != 0;
  c.name = "N" + std::to_string(N) + "_K" + std::to_string(K) + "_M" + std::to_string(M) + (bias ? "" : "_nobias") +
           (act ? std::string("_") + act : "") +
           (residualOrder == 1   ? "_add_act"
            : residualOrder == 2 ? "_act_add"
                                 : "");
  c.op = fused ? "FusedConv" : "Conv";
  c.domain = fused ? "anvil" : "";
  c.inputs = {Dims{N, K, 1, 1}, Dims{M, K, 1, 1}};
  c.inputs.push_back(bias ? std::optional<Dims>(Dims{M}) : std::nullopt);
  c.constant = {false, true, true, false};
  c.attrs.set("kernel_shape", Dims{1, 1});
  if (act) c.attrs.set("activation", std::string(act));
  if (residualOrder) {
    c.attrs.set("has_residual", int64_t(1));
    c.attrs.set("residual_order", std::string(residualOrder == 1 ? "add_then_activate" : "activate_then_add"));
    c.inputs.push_back(Dims{N, M, 1, 1});
  }
  return c;
}

const std::vector<BlockedCase>& blockedCases() {
  static const std::vector<BlockedCase> cases = [] {
    std::vector<BlockedCase> out;
    int i = 0;
    for (int block : {8, 16})
      for (int64_t K : {1, 7, 17, 63, 96})
        for (int64_t M : {1, 7, 16, 17, 40, 63}) {
          const int64_t N = (i % 3 == 0) ? 3 : 1;
          const char* acts[] = {nullptr, "Relu", "Silu", nullptr, "Relu"};
          const int residual = (i % 5 == 3) ? 1 : (i % 5 == 4) ? 2 : 0;
          BlockedCase bc{gemvCase(N, K, M, i % 4 != 1, acts[i % 5], residual), block, residual != 0};
          bc.c.name = "b" + std::to_string(block) + "_" + bc.c.name;
          out.push_back(bc);
          ++i;
        }
    // Big enough that the kernel's own rule splits (1M multiply-adds per task).
    out.push_back({gemvCase(2, 1031, 1047, true, "Relu", 0), 16, false});
    out.back().c.name = "b16_" + out.back().c.name;
    return out;
  }();
  return cases;
}

std::string kernelFor(const BlockedCase& bc) {
  const bool fused = bc.c.op == "FusedConv";
  return "f32_conv1x1_gemv_nchw" + std::to_string(bc.block) + "c" + (fused ? "_epilogue__avx2" : "__avx2");
}

class NativeConvSmallBlocked : public ::testing::TestWithParam<size_t> {};

TEST_P(NativeConvSmallBlocked, MatchesReferenceWithBlockedStorage) {
  const BlockedCase& bc = blockedCases()[GetParam()];
  const runtime::Kernel* k = registry().find(Device::kCPU, bc.c.op, bc.c.domain, kernelFor(bc));
  ASSERT_NE(k, nullptr) << kernelFor(bc);
  EXPECT_EQ(k->nchwcBlock, bc.block);
  if (const std::string why = skipReason(*k); !why.empty()) GTEST_SKIP() << why;
  const Built b = build(bc.c, 31u + uint32_t(GetParam()));
  EXPECT_FALSE(k->supports(*b.node, b.types())) << "row-major values: not this kernel's";
  b.node->input(0)->setLayout(ir::Layout::nchwc(bc.block));
  b.node->output(0)->setLayout(ir::Layout::nchwc(bc.block));
  if (bc.residual) b.node->input(ir::linear::kResidualInput)->setLayout(ir::Layout::nchwc(bc.block));
  ASSERT_TRUE(k->supports(*b.node, b.types()));
  const Tensor want = reference(b);
  auto pool = runtime::makeCpuExecutor(2);
  std::vector<std::vector<float>> storages;
  for (int tasks : {0, 2})
    for (int threads : {1, 2}) {
      const PreparedKernel pk = prepare(*k, b, 2, {}, tasks);
      EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1});
      std::vector<Handover> how = {Handover::kBlocked, packedOr(pk, 1, Handover::kRowMajor), Handover::kRowMajor,
                                   Handover::kBlocked};
      BlockedStep step(*k, pk, b, how, want.dims(), bc.block);
      auto ex = runtime::makeCpuExecutor(threads);
      step.run(*ex);
      const BlockedResult r = step.result();
      EXPECT_TRUE(r.guardsIntact) << "wrote outside the output (tasks " << tasks << ", " << threads << " threads)";
      EXPECT_TRUE(r.paddingZero) << "padding lanes not zero";
      EXPECT_TRUE(r.workspaceIntact);
      EXPECT_EQ(compare(r.out, want), "") << "tasks " << tasks << ", " << threads << " threads";
      storages.push_back(r.storage);
    }
  for (size_t i = 1; i < storages.size(); ++i)
    EXPECT_EQ(std::memcmp(storages[0].data(), storages[i].data(), storages[0].size() * sizeof(float)), 0)
        << "thread counts or splits differ bitwise";
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvSmallBlocked, ::testing::Range<size_t>(0, blockedCases().size()),
                         [](const ::testing::TestParamInfo<size_t>& p) { return blockedCases()[p.param].c.name; });

// Only one pixel: a blocked 2x2 image interleaves its pixels within each
// channel block.
TEST(NativeConvSmallBlocked, DeclinesMorePixels) {
  Case c = gemvCase(1, 16, 16, true, nullptr, 0);
  c.inputs[0] = Dims{1, 16, 2, 2};
  const Built b = build(c, 3);
  b.node->input(0)->setLayout(ir::Layout::nchwc(16));
  b.node->output(0)->setLayout(ir::Layout::nchwc(16));
  const runtime::Kernel* k = registry().find(Device::kCPU, "Conv", "", "f32_conv1x1_gemv_nchw16c__avx2");
  ASSERT_NE(k, nullptr);
  EXPECT_FALSE(k->supports(*b.node, b.types()));
}

}  // namespace
