// anvil.ConvNhwc, the channels-last depthwise convolution transpose-cancellation makes of
// Transpose -> depthwise Conv -> Transpose (cpu/tactics/native_nchwc_spatial.cpp: the
// portable kernel and the AVX2 / AVX-512 rows of the blocked depthwise kernel, read through
// the row ring and stored C floats apart), against the reference kernel (the Conv reference
// on X read as NCHW), through the kernel contract: constant filter and bias packed by
// prepare(), the output between sentinel guards, a guarded workspace, 1, 2 and 3 threads,
// which must agree bitwise. Cases: 3x3 / 5x5 / 7x7 at strides 1 and 2, asymmetric pads, no
// pad, images narrower than the filter, batches, several bands of rows, channel counts of
// one and of many blocks (and, for the portable kernel, channels no block divides).
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <vector>

#include "native_kernel_test_util.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeNchwcSpatialKernels(Kernels& k);  // cpu/tactics/native_nchwc_spatial.cpp
}  // namespace anvil::runtime

using namespace anvil;
using namespace anvil::testing::nk;

namespace {

runtime::Kernels& registry() { return registryOf<&runtime::registerNativeNchwcSpatialKernels>(); }

const char* const kKernels[] = {"f32_dwconv2d_nhwc", "f32_dwconv2d_nhwc8__avx2", "f32_dwconv2d_nhwc16__avx512"};

struct NhwcSpec {
  std::string name;
  Dims x;  // [N, H, W, C]
  int64_t k, s;
  Dims pads;
  bool bias = true;
};

Case caseOf(const NhwcSpec& s) {
  Case c;
  c.name = s.name;
  c.op = "ConvNhwc";
  c.domain = "anvil";
  const int64_t C = s.x[3];
  c.inputs = {s.x, Dims{C, 1, s.k, s.k}};
  c.constant = {false, true, true};
  if (s.bias) c.inputs.push_back(Dims{C});
  c.attrs.set("kernel_shape", Dims{s.k, s.k});
  c.attrs.set("strides", Dims{s.s, s.s});
  c.attrs.set("pads", s.pads);
  c.attrs.set("group", C);
  return c;
}

std::vector<NhwcSpec> specs() {
  std::vector<NhwcSpec> v;
  v.push_back({"k7s1p3_c96", {1, 17, 13, 96}, 7, 1, {3, 3, 3, 3}});
  v.push_back({"k7s1p3_c48_batch2", {2, 9, 11, 48}, 7, 1, {3, 3, 3, 3}});
  v.push_back({"k3s1p1_c32", {1, 15, 21, 32}, 3, 1, {1, 1, 1, 1}});
  v.push_back({"k3s2p1_c16_nobias", {1, 14, 9, 16}, 3, 2, {1, 1, 1, 1}, false});
  v.push_back({"k5s1p2_c64", {1, 7, 7, 64}, 5, 1, {2, 2, 2, 2}});
  v.push_back({"k5s2_asymmetric_c24", {1, 12, 10, 24}, 5, 2, {1, 2, 2, 1}});
  v.push_back({"k7s2p3_c16", {1, 13, 17, 16}, 7, 2, {3, 3, 3, 3}});
  v.push_back({"k3s1_nopad_c8", {1, 5, 6, 8}, 3, 1, {0, 0, 0, 0}});
  v.push_back({"k7s1p3_narrow_c32", {1, 3, 2, 32}, 7, 1, {3, 3, 3, 3}});
  v.push_back({"k7s1p3_one_pixel_c16", {1, 1, 1, 16}, 7, 1, {3, 3, 3, 3}});
  // 60 rows of 40 pixels x 128 channels (20 KiB a row): several bands of rows.
  v.push_back({"k7s1p3_bands_c128", {1, 60, 40, 128}, 7, 1, {3, 3, 3, 3}});
  v.push_back({"k3s1p1_c7_portable", {2, 6, 5, 7}, 3, 1, {1, 1, 1, 1}});
  v.push_back({"k3s1p1_c12_portable", {1, 8, 8, 12}, 3, 1, {1, 1, 1, 1}});
  return v;
}

class NativeConvNhwc : public ::testing::TestWithParam<size_t> {};

TEST_P(NativeConvNhwc, MatchesTheReferenceAtEveryThreadCount) {
  const Case c = caseOf(specs()[GetParam()]);
  const Built b = build(c, 211u + uint32_t(GetParam()));
  const Tensor want = reference(b);
  const int64_t C = specs()[GetParam()].x[3];
  int ran = 0;
  for (const char* name : kKernels) {
    const runtime::Kernel* k = registry().find(Device::kCPU, "ConvNhwc", "anvil", name);
    ASSERT_NE(k, nullptr) << name;
    if (!skipReason(*k).empty()) continue;
    const int block = std::string(name).find("nhwc16") != std::string::npos ? 16
                      : std::string(name).find("nhwc8") != std::string::npos ? 8
                                                                              : 1;
    // The blocked kernels take C a multiple of their block; the portable one any C.
    ASSERT_EQ(k->supports(*b.node, b.types()), C % block == 0) << name << " on " << c.name;
    if (C % block != 0) continue;
    expectEveryThreadCount(*k, b, want, name);
    ++ran;
  }
  EXPECT_GE(ran, 1);
}

INSTANTIATE_TEST_SUITE_P(Native, NativeConvNhwc, ::testing::Range<size_t>(0, specs().size()),
                         [](const ::testing::TestParamInfo<size_t>& p) { return specs()[p.param].name; });

// What stays with the reference kernel: a grouped (not depthwise) ConvNhwc, a computed
// filter, dilation; and the blocked families' filters without unrolled rows (4x4).
TEST(NativeConvNhwcDecline, GroupsComputedFiltersDilationAndOtherWindows) {
  auto supported = [&](const char* name, Case c) {
    const runtime::Kernel* k = registry().find(Device::kCPU, "ConvNhwc", "anvil", name);
    EXPECT_NE(k, nullptr) << name;
    const Built b = build(c, 7u);
    return k && k->supports(*b.node, b.types());
  };
  const Case base = caseOf(specs()[2]);
  EXPECT_TRUE(supported("f32_dwconv2d_nhwc", base));
  Case grouped = base;
  grouped.inputs[1] = Dims{32, 2, 3, 3};
  grouped.attrs.set("group", int64_t(16));
  EXPECT_FALSE(supported("f32_dwconv2d_nhwc", grouped));
  Case computed = base;
  computed.constant = {false, false, true};
  EXPECT_FALSE(supported("f32_dwconv2d_nhwc", computed));
  Case dilated = base;
  dilated.attrs.set("dilations", Dims{2, 2});
  EXPECT_FALSE(supported("f32_dwconv2d_nhwc", dilated));
  Case k4 = base;
  k4.inputs[1] = Dims{32, 1, 4, 4};
  k4.attrs.set("kernel_shape", Dims{4, 4});
  EXPECT_TRUE(supported("f32_dwconv2d_nhwc", k4));
  EXPECT_FALSE(supported("f32_dwconv2d_nhwc8__avx2", k4));
}

}  // namespace
