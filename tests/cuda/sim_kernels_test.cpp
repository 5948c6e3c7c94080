// Our CUDA kernels, compiled by the host compiler against cuda/sim and run on the CPU,
// against the double-precision loops of cuda_test_util.h: odd sizes, several grid and block
// shapes, sentinel guards around every output.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "cuda/kernels/activation.cuh"
#include "cuda/kernels/softmax.cuh"
#include "cuda/sim/sim.h"
#include "tests/cuda/cuda_test_util.h"

namespace anvil::cuda {
namespace {

using namespace testing;
namespace k = kernels;

template <typename T>
void (*activationKernel(Activation a))(const T*, T*, std::int64_t) {
  switch (a) {
    case Activation::kRelu:
      return &k::activation_gridstride<T, Activation::kRelu>;
    case Activation::kSigmoid:
      return &k::activation_gridstride<T, Activation::kSigmoid>;
    case Activation::kTanh:
      return &k::activation_gridstride<T, Activation::kTanh>;
    case Activation::kGeluErf:
      return &k::activation_gridstride<T, Activation::kGeluErf>;
    case Activation::kSilu:
      return &k::activation_gridstride<T, Activation::kSilu>;
    default:  // the fused-epilogue-only activations have no standalone kernel
      break;
  }
  return nullptr;
}

void (*softmaxKernel(int block))(const float*, float*, std::int64_t, std::int64_t) {
  switch (block) {
    case 32:
      return &k::f32_softmax_row_block<32>;
    case 256:
      return &k::f32_softmax_row_block<256>;
    case 1024:
      return &k::f32_softmax_row_block<1024>;
  }
  return nullptr;
}

const std::int64_t kSizes[] = {1, 7, 33, 257, 1000, 4099};

template <typename T>
void checkActivation(Activation act, std::int64_t n, unsigned grid, unsigned block, bool inPlace) {
  SCOPED_TRACE(std::string(dtypeName(dtypeOf<T>())) + " " + activationName(act) +
               " n=" + std::to_string(n) + " grid=" + std::to_string(grid) +
               " block=" + std::to_string(block) + (inPlace ? " in place" : ""));
  const std::vector<T> x = makeInput<T>(n, 1234 + static_cast<std::uint32_t>(n));
  std::vector<double> want(n);
  for (std::int64_t i = 0; i < n; ++i) want[i] = referenceActivation(act, toF(x[i]));

  Guarded<T> in(x);
  Guarded<T> out(n);
  Guarded<T>& y = inPlace ? in : out;
  sim::launch(dim3(grid), dim3(block), 0, activationKernel<T>(act), in.data(), y.data(), n);
  EXPECT_EQ(compare(y.data(), want), "");
  EXPECT_EQ(in.guardDamage(), "");
  EXPECT_EQ(out.guardDamage(), "");
}

template <typename T>
void checkAllActivations() {
  for (Activation act : kAllActivations) {
    for (std::int64_t n : kSizes) {
      const unsigned covering = static_cast<unsigned>((n + 255) / 256);
      // One block striding over everything, a few, exactly covering, more than needed; odd
      // block sizes leave a partial warp.
      checkActivation<T>(act, n, 1, 256, false);
      checkActivation<T>(act, n, 3, 33, false);
      checkActivation<T>(act, n, covering, 256, false);
      checkActivation<T>(act, n, covering + 2, 96, false);
      checkActivation<T>(act, n, 2, 1, true);
    }
  }
}

TEST(CudaSimActivation, F32MatchesReference) { checkAllActivations<float>(); }
TEST(CudaSimActivation, F16MatchesReference) { checkAllActivations<__half>(); }

TEST(CudaSimActivation, ZeroElementsWritesNothing) {
  Guarded<float> x(0), y(0);
  sim::launch(dim3(1), dim3(64), 0, activationKernel<float>(Activation::kSilu), x.data(), y.data(),
              std::int64_t{0});
  EXPECT_EQ(y.guardDamage(), "");
}

TEST(CudaSimActivation, ReluAndSigmoidKeepNaN) {
  const std::vector<float> x = {NAN, -NAN, 1.0f};
  for (Activation act : {Activation::kRelu, Activation::kSigmoid, Activation::kSilu}) {
    std::vector<float> y(3);
    sim::launch(dim3(1), dim3(32), 0, activationKernel<float>(act), x.data(), y.data(),
                std::int64_t{3});
    EXPECT_TRUE(std::isnan(y[0])) << activationName(act);
    EXPECT_TRUE(std::isnan(y[1])) << activationName(act);
  }
}

void checkSoftmax(std::int64_t rows, std::int64_t cols, unsigned grid, int block, float shift,
                  bool inPlace) {
  SCOPED_TRACE("softmax rows=" + std::to_string(rows) + " cols=" + std::to_string(cols) +
               " grid=" + std::to_string(grid) + " block=" + std::to_string(block) +
               " shift=" + std::to_string(shift) + (inPlace ? " in place" : ""));
  std::vector<float> x = makeInput<float>(rows * cols, 99 + static_cast<std::uint32_t>(cols),
                                          -8.0f + shift, 8.0f + shift);
  const std::vector<double> want = referenceSoftmax(x, rows, cols);
  Guarded<float> in(x);
  Guarded<float> out(rows * cols);
  Guarded<float>& y = inPlace ? in : out;
  sim::launch(dim3(grid), dim3(block), 0, softmaxKernel(block), in.data(), y.data(), rows, cols);
  EXPECT_EQ(compare(y.data(), want), "");
  EXPECT_EQ(in.guardDamage(), "");
  EXPECT_EQ(out.guardDamage(), "");
}

TEST(CudaSimSoftmax, MatchesReferenceOnOddShapes) {
  for (std::int64_t cols : {1, 7, 33, 257, 1000}) {
    for (std::int64_t rows : {1, 3, 5}) {
      for (unsigned grid : {1u, 2u, static_cast<unsigned>(rows) + 2}) {
        checkSoftmax(rows, cols, grid, 256, 0.0f, false);
      }
    }
  }
}

TEST(CudaSimSoftmax, OtherBlockSizes) {
  // One warp (no shared-memory step) and the 1024-thread maximum (32 warps).
  for (int block : {32, 1024}) {
    for (std::int64_t cols : {1, 33, 1000, 4099}) checkSoftmax(3, cols, 2, block, 0.0f, false);
  }
}

TEST(CudaSimSoftmax, LargeOffsetsAreShiftedAway) {
  // Without the max subtraction exp(1000) overflows.
  checkSoftmax(4, 257, 3, 256, 1000.0f, false);
  checkSoftmax(2, 33, 1, 256, -1000.0f, false);
}

TEST(CudaSimSoftmax, InPlace) { checkSoftmax(5, 1000, 2, 256, 0.0f, true); }

TEST(CudaSimSoftmax, RowsSumToOne) {
  const std::int64_t rows = 7, cols = 1000;
  std::vector<float> x = makeInput<float>(rows * cols, 5), y(rows * cols);
  sim::launch(dim3(4), dim3(256), 0, softmaxKernel(256), x.data(), y.data(), rows, cols);
  for (std::int64_t r = 0; r < rows; ++r) {
    double s = 0;
    for (std::int64_t c = 0; c < cols; ++c) s += y[r * cols + c];
    EXPECT_NEAR(s, 1.0, 1e-5) << "row " << r;
  }
}

TEST(CudaSimSoftmax, NonFiniteRowsGiveNaN) {
  const std::vector<float> x = {-INFINITY, -INFINITY, -INFINITY, 1.0f, NAN, 2.0f, 0.0f, 1.0f, 2.0f};
  std::vector<float> y(9);
  sim::launch(dim3(3), dim3(32), 0, softmaxKernel(32), x.data(), y.data(), std::int64_t{3},
              std::int64_t{3});
  for (int i = 0; i < 6; ++i) EXPECT_TRUE(std::isnan(y[i])) << i;
  for (int i = 6; i < 9; ++i) EXPECT_FALSE(std::isnan(y[i])) << i;
}

TEST(CudaSimSoftmax, ParallelBlocksGiveTheSameBits) {
  const std::int64_t rows = 9, cols = 257;
  const std::vector<float> x = makeInput<float>(rows * cols, 77);
  std::vector<float> serial(rows * cols), parallel(rows * cols);
  sim::launch(dim3(rows), dim3(256), 0, softmaxKernel(256), x.data(), serial.data(), rows, cols);
  const sim::Options saved = sim::options();
  sim::Options two = saved;
  two.workers = 2;
  sim::setOptions(two);
  sim::launch(dim3(rows), dim3(256), 0, softmaxKernel(256), x.data(), parallel.data(), rows, cols);
  sim::setOptions(saved);
  EXPECT_EQ(serial, parallel);
}

}  // namespace
}  // namespace anvil::cuda
