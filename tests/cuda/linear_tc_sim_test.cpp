// The tensor-core GEMM launcher (cuda/linear_tc.h) on the sim runtime's stream against the
// double loops of linear_test_common.h, on operands already rounded to the operand type (so
// the bound is f32 accumulation's): odd shapes in all four transpose forms, batches with
// padded rows, broadcast B and in-place Z, every activation with bias and Z, k = 0; padding
// columns and guards untouched; bad descriptors rejected before anything runs.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "cuda/linear_tc.h"
#include "tests/cuda/linear_test_common.h"
#include "tests/cuda/runtime_test_common.h"

namespace anvil::cuda {
namespace {

using namespace testing;

template <typename T>
void checkGemmTcOn(DeviceRuntime& rt, Stream stream, const GemmCase& g) {
  const DataType dtype = std::is_same_v<T, __half> ? DataType::kF16 : DataType::kBF16;
  SCOPED_TRACE(std::string(dtypeName(dtype)) + " tensor cores " + g.describe());
  GemmOperands ops(g, &roundThrough<T>);  // A, bias and Z stay f32 (rounded values are f32 too)
  Guarded<float> a = guardedCopy<float>(ops.a), bias = guardedCopy<float>(ops.bias),
                 z = guardedCopy<float>(ops.z);
  Guarded<T> b = guardedCopy<T>(ops.b);
  Guarded<float> c = g.zInPlace ? guardedCopy<float>(ops.z) : Guarded<float>(ops.want.value.size());
  const Guarded<float> pristine = c;
  GuardedDeviceCopy<float> da(rt, a), dbias(rt, bias), dz(rt, z), dc(rt, c);
  GuardedDeviceCopy<T> db(rt, b);

  GemmDesc d;
  d.dtype = dtype;
  d.batch = g.batch, d.m = g.m, d.n = g.n, d.k = g.k;
  d.transA = g.transA, d.transB = g.transB;
  d.a = da.data(), d.lda = ops.lda, d.strideA = ops.strideA;
  d.b = db.data(), d.ldb = ops.ldb, d.strideB = ops.strideB;
  d.c = dc.data(), d.ldc = ops.ldc, d.strideC = ops.strideC;
  d.bias = g.bias ? dbias.data() : nullptr;
  d.z = g.z ? (g.zInPlace ? dc.data() : dz.data()) : nullptr;
  d.ldz = ops.ldc, d.strideZ = ops.strideC;
  d.alpha = g.alpha, d.beta = g.beta;
  d.activation = g.act;
  launchGemmTensorCore(rt, stream, d);
  rt.synchronize(stream);
  dc.copyBack();

  Expected want = ops.want;
  std::vector<float> got(c.data(), c.data() + c.size());
  for (std::int64_t bt = 0; bt < g.batch; ++bt) {
    for (std::int64_t i = 0; i < g.m; ++i) {
      for (std::int64_t j = g.n; j < ops.ldc; ++j) {
        const std::int64_t at = bt * ops.strideC + i * ops.ldc + j;
        EXPECT_EQ(std::memcmp(&c.data()[at], &pristine.data()[at], sizeof(float)), 0)
            << "padding element " << at << " written";
        got[at] = 0.0f;
        want.value[at] = 0.0;
      }
    }
  }
  EXPECT_EQ(compareBounded(got.data(), want), "");
  EXPECT_EQ(c.guardDamage(), "");
  EXPECT_EQ(b.guardDamage(), "");
}

class CudaSimGemmTc : public ::testing::Test {
 protected:
  void SetUp() override {
    rt_ = simRuntime();
    stream_ = rt_->createStream();
  }
  void TearDown() override { rt_->destroyStream(stream_); }
  std::unique_ptr<DeviceRuntime> rt_;
  Stream stream_;
};

TEST_F(CudaSimGemmTc, ShapesAndTransposes) {
  const std::int64_t sizes[] = {1, 7, 17, 65, 130};
  int i = 0;
  for (int t = 0; t < 4; ++t)
    for (std::int64_t m : sizes)
      for (std::int64_t n : sizes)
        for (std::int64_t k : sizes) {
          ++i;
          GemmCase g;
          g.m = m, g.n = n, g.k = k, g.transA = t & 1, g.transB = t & 2;
          if (t == 0) checkGemmTcOn<__half>(*rt_, stream_, g);
          else if (t == 3) checkGemmTcOn<__nv_bfloat16>(*rt_, stream_, g);
          else (i % 2 ? checkGemmTcOn<__half> : checkGemmTcOn<__nv_bfloat16>)(*rt_, stream_, g);
        }
}

TEST_F(CudaSimGemmTc, EpiloguesBatchesAndStrides) {
  int i = 0;
  for (const GemmCase& g : gemmEpilogueCases()) {
    if (++i % 2) checkGemmTcOn<__half>(*rt_, stream_, g);
    else checkGemmTcOn<__nv_bfloat16>(*rt_, stream_, g);
  }
}

TEST_F(CudaSimGemmTc, BadDescriptorsAreRejected) {
  void* buf = rt_->allocate(4096);
  GemmDesc d = GemmDesc::packed(1, 4, 4, 4, false, false, buf, static_cast<char*>(buf) + 1024,
                                static_cast<char*>(buf) + 2048, DataType::kF16);
  EXPECT_NO_THROW(launchGemmTensorCore(*rt_, stream_, d));
  rt_->synchronize(stream_);
  auto expectBad = [&](GemmDesc bad, const char* what) {
    try {
      launchGemmTensorCore(*rt_, stream_, bad);
      ADD_FAILURE() << what << " accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("gemm_wmma"), std::string::npos) << e.what();
    }
  };
  GemmDesc f32 = d;
  f32.dtype = DataType::kF32;
  EXPECT_THROW(launchGemmTensorCore(*rt_, stream_, f32), Error);
  GemmDesc ldb = d;
  ldb.ldb = 3;
  expectBad(ldb, "ldb below n");
  GemmDesc overlap = d;
  overlap.c = static_cast<char*>(buf) + 1024 + 8;
  expectBad(overlap, "C over B");
  GemmDesc negative = d;
  negative.k = -1;
  expectBad(negative, "negative k");
  rt_->free(buf);
}

}  // namespace
}  // namespace anvil::cuda
