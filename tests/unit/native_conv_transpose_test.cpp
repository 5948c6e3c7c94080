// The 2-D ConvTranspose kernels (cpu/tactics/native_conv_transpose.cpp: portable, AVX2 and
// AVX-512 GEMM families) against the reference kernel, through the kernel contract: the
// constant filter packed by prepare() (its raw input then handed over as NaNs), run() on
// an output between sentinel guards with a guarded workspace, prepared for and run with 1,
// 2 and 3 threads, which must agree bitwise. Cases: strides 1-3 (overlapping and disjoint
// windows), dilation, asymmetric and automatic pads, output_padding, output_shape, groups
// (depthwise among them), batches, no bias, three output channels, and shapes whose
// columns take several bands and several channel blocks.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "native_kernel_test_util.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeConvTransposeKernels(Kernels& k);  // cpu/tactics/native_conv_transpose.cpp
}  // namespace anvil::runtime

using namespace anvil;
using namespace anvil::testing::nk;

namespace {

runtime::Kernels& registry() { return registryOf<&runtime::registerNativeConvTransposeKernels>(); }

const char* const kKernels[] = {"f32_conv_transpose_gemm", "f32_conv_transpose_gemm__avx2",
                                "f32_conv_transpose_gemm__avx512"};

struct CtSpec {
  std::string name;
  Dims x;
  int64_t M, kH, kW;
  Dims strides = {1, 1}, pads = {0, 0, 0, 0}, dilations = {1, 1}, outputPadding = {0, 0}, outputShape = {};
  int64_t group = 1;
  bool bias = true;
  std::string autoPad = "";
};

Case caseOf(const CtSpec& s) {
  Case c;
  c.name = s.name;
  c.op = "ConvTranspose";
  c.inputs = {s.x, Dims{s.x[1], s.M / s.group, s.kH, s.kW}};
  c.constant = {false, true, true};
  if (s.bias) c.inputs.push_back(Dims{s.M});
  c.attrs.set("kernel_shape", Dims{s.kH, s.kW});
  c.attrs.set("strides", s.strides);
  c.attrs.set("dilations", s.dilations);
  c.attrs.set("group", s.group);
  if (s.autoPad.empty()) c.attrs.set("pads", s.pads);
  else c.attrs.set("auto_pad", s.autoPad);
  if (s.outputPadding != Dims{0, 0}) c.attrs.set("output_padding", s.outputPadding);
  if (!s.outputShape.empty()) c.attrs.set("output_shape", s.outputShape);
  return c;
}

std::vector<CtSpec> specs() {
  std::vector<CtSpec> v;
  v.push_back({"k4s2p1", {1, 16, 5, 7}, 8, 4, 4, {2, 2}, {1, 1, 1, 1}});
  v.push_back({"k2s2_batch2_nobias", {2, 8, 6, 5}, 12, 2, 2, {2, 2}, {0, 0, 0, 0}, {1, 1}, {0, 0}, {}, 1, false});
  v.push_back({"k3s1p1_overlap", {1, 7, 9, 4}, 17, 3, 3, {1, 1}, {1, 1, 1, 1}});
  v.push_back({"k3s2p1_outpad_group2", {1, 12, 7, 9}, 10, 3, 3, {2, 2}, {1, 1, 1, 1}, {1, 1}, {1, 1}, {}, 2});
  v.push_back({"k3_dilation2", {1, 8, 5, 6}, 6, 3, 3, {1, 1}, {2, 2, 2, 2}, {2, 2}});
  v.push_back({"k3x2_s2x3_asymmetric_pads", {1, 4, 6, 6}, 5, 3, 2, {2, 3}, {0, 1, 2, 0}});
  v.push_back({"output_shape_same_upper", {1, 6, 4, 5}, 4, 3, 3, {2, 2}, {}, {1, 1}, {0, 0}, {9, 11}, 1, true,
               "SAME_UPPER"});
  v.push_back({"auto_same_lower", {1, 6, 4, 5}, 4, 4, 4, {2, 2}, {}, {1, 1}, {0, 0}, {}, 1, true, "SAME_LOWER"});
  v.push_back({"output_shape_notset", {1, 3, 3, 3}, 2, 3, 3, {3, 2}, {0, 0, 0, 0}, {1, 1}, {0, 0}, {10, 8}});
  v.push_back({"depthwise_k4s2", {1, 8, 6, 6}, 8, 4, 4, {2, 2}, {1, 1, 1, 1}, {1, 1}, {0, 0}, {}, 8});
  v.push_back({"rgb_out_k4s2", {1, 24, 8, 8}, 3, 4, 4, {2, 2}, {1, 1, 1, 1}});
  v.push_back({"batch3_group3_k3s2", {3, 9, 4, 4}, 6, 3, 3, {2, 2}, {0, 0, 0, 0}, {1, 1}, {0, 0}, {}, 3});
  // Several channel blocks (128 rows: 8 channels of a 4x4 kernel) and bands (12 input
  // rows of 40 in 64K floats of cols).
  v.push_back({"bands_and_blocks_k4s2", {1, 32, 40, 40}, 20, 4, 4, {2, 2}, {1, 1, 1, 1}});
  v.push_back({"one_pixel_k4s1", {1, 64, 1, 1}, 33, 4, 4});
  return v;
}

class NativeConvTranspose : public ::testing::TestWithParam<size_t> {};

TEST_P(NativeConvTranspose, MatchesTheReferenceAtEveryThreadCount) {
  const Case c = caseOf(specs()[GetParam()]);
  const Built b = build(c, 101u + uint32_t(GetParam()));
  const Tensor want = reference(b);
  int ran = 0;
  for (const char* name : kKernels) {
    const runtime::Kernel* k = registry().find(Device::kCPU, "ConvTranspose", "", name);
    ASSERT_NE(k, nullptr) << name;
    if (!skipReason(*k).empty()) continue;
    ASSERT_TRUE(k->supports(*b.node, b.types())) << name << " on " << c.name;
    expectEveryThreadCount(*k, b, want, name);
    ++ran;
  }
  EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvTranspose, ::testing::Range<size_t>(0, specs().size()),
                         [](const ::testing::TestParamInfo<size_t>& p) { return specs()[p.param].name; });

// What stays with the reference kernel: 1-D and 3-D ConvTranspose, a filter computed at run
// time, f64.
TEST(NativeConvTransposeDecline, OtherRanksComputedFiltersAndTypes) {
  const runtime::Kernel* k = registry().find(Device::kCPU, "ConvTranspose", "", "f32_conv_transpose_gemm");
  ASSERT_NE(k, nullptr);
  auto supported = [&](Case c) {
    const Built b = build(c, 7u);
    return k->supports(*b.node, b.types());
  };
  Case oneD;
  oneD.name = "c1d";
  oneD.op = "ConvTranspose";
  oneD.inputs = {Dims{1, 4, 9}, Dims{4, 3, 3}};
  oneD.constant = {false, true};
  EXPECT_FALSE(supported(oneD));
  Case threeD = oneD;
  threeD.inputs = {Dims{1, 4, 3, 4, 5}, Dims{4, 3, 2, 2, 2}};
  EXPECT_FALSE(supported(threeD));
  Case computed = caseOf(specs()[0]);
  computed.constant = {false, false, true};
  EXPECT_FALSE(supported(computed));
  Case plain = caseOf(specs()[0]);
  EXPECT_TRUE(supported(plain));
}

}  // namespace
