// Timing of the depthwise convolution kernels (cpu/tactics/native_dwconv.cpp) and the pooling
// kernels (cpu/tactics/native_ops_pool.cpp) on the zoo models' layer shapes, and the pooling
// kernels' fast paths against the reference kernel: odd shapes, strides, pads, ceil_mode,
// dilations, NaN, 1 and 2 threads bitwise equal, guarded outputs. The depthwise kernels'
// correctness cases are in native_winograd_test.cpp (they share its registry).
// Run the timings with --gtest_also_run_disabled_tests --gtest_filter='NativePoolDwBench.*'.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "native_kernel_test_util.h"
#include "op_test_util.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeWinogradKernels(Kernels& k);  // cpu/tactics/native_winograd.cpp (with the depthwise family)
void registerNativeLinearKernels(Kernels& k);    // cpu/tactics/native_linear.cpp (the direct depthwise kernel)
void registerNativeOpKernels(Kernels& k);        // cpu/tactics/native_ops.cpp (pooling)
}  // namespace anvil::runtime

using namespace anvil;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

using namespace anvil::testing::nk;

runtime::Kernels& registry() {
  static runtime::Kernels* k = [] {
    auto* r = new runtime::Kernels();
    runtime::registerNativeWinogradKernels(*r);
    runtime::registerNativeLinearKernels(*r);
    runtime::registerNativeOpKernels(*r);
    return r;
  }();
  return *k;
}

double medianMs(const std::function<void()>& f, int reps) {
  f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Times every kernel of `op` whose name contains `family` and that supports the case.
void timeCase(const Case& c, const std::string& label, const std::string& family, int threads = 1) {
  const Built b = build(c, 1);
  const Tensor want = reference(b);
  for (const runtime::Kernel* k : registry().all()) {
    if (k->op != c.op || k->domain != c.domain || k->name.find(family) == std::string::npos) continue;
    if (!runtime::hostHasAll(k->requirements) || !k->supports(*b.node, b.types())) continue;
    const PreparedKernel pk = prepare(*k, b, threads);
    auto ex = runtime::makeCpuExecutor(threads);
    Step step(*k, pk, b, want.dims(), true);
    const int reps = std::getenv("DW_REPS") ? std::atoi(std::getenv("DW_REPS")) : 30;
    const double ms = medianMs([&] { step.run(*ex); }, reps);
    std::printf("%-26s %-44s t=%d %9.4f ms  %s\n", label.c_str(), k->name.c_str(), threads, ms,
                compare(step.result().out, want).empty() ? "ok" : "MISMATCH");
  }
}

// ---------------------------------------------------------------------------------------
// Depthwise timing: channels, input side, stride, filter side, activation (as the fusion
// pass leaves them: FusedConv with the model's activation).

TEST(NativePoolDwBench, DISABLED_Depthwise) {
  struct L {
    const char* model;
    int64_t c, side, stride, k;
    const char* act;
  };
  const L layers[] = {
      {"mbv2", 32, 112, 1, 3, "Clip"},     {"mbv2", 96, 112, 2, 3, "Clip"},    {"mbv2", 144, 56, 1, 3, "Clip"},
      {"mbv2", 144, 56, 2, 3, "Clip"},     {"mbv2", 192, 28, 1, 3, "Clip"},    {"mbv2", 384, 14, 1, 3, "Clip"},
      {"mbv2", 960, 7, 1, 3, "Clip"},      {"effb0", 240, 28, 1, 5, "Sigmoid"}, {"effb0", 672, 14, 2, 5, "Sigmoid"},
      {"effb0", 1152, 7, 1, 5, "Sigmoid"}, {"convnext", 96, 56, 1, 7, ""},     {"convnext", 192, 28, 1, 7, ""},
      {"convnext", 384, 14, 1, 7, ""},     {"convnext", 768, 7, 1, 7, ""},
  };
  const char* only = std::getenv("DW_ONLY");  // a model name: time its layers only
  for (const L& l : layers) {
    if (only && std::string(only) != l.model) continue;
    const int64_t h = l.k / 2;
    const int64_t channels = std::getenv("DW_CHANNELS") ? std::atoll(std::getenv("DW_CHANNELS")) : l.c;  // e.g. 8: in cache
    ir::Attributes at;
    at.set("group", channels);
    at.set("kernel_shape", Dims{l.k, l.k});
    at.set("strides", Dims{l.stride, l.stride});
    at.set("pads", Dims{h, h, h, h});
    if (*l.act) at.set("activation", std::string(l.act));
    if (std::string(l.act) == "Clip") at.set("activation_params", std::vector<float>{0.0f, 6.0f});
    const Case c{"dw", "FusedConv", "anvil", {Dims{1, channels, l.side, l.side}, Dims{channels, 1, l.k, l.k}, Dims{channels}},
                 {false, true, true}, at};
    const std::string label = std::string(l.model) + " " + std::to_string(channels) + "x" + std::to_string(l.side) + " s" +
                              std::to_string(l.stride) + " k" + std::to_string(l.k);
    timeCase(c, label, "dwconv");
  }
}

}  // namespace
