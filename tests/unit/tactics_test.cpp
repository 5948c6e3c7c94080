// The older tactics' thread pool (cpu/tactics/gemm_kernels.h: parallelFor), still used by
// the attention and fused-elementwise tactics. The MatMul, Gemm and Conv tactics that were
// tested here are native kernels now: tests/unit/native_linear_test.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "cpu/tactics/gemm_kernels.h"

using namespace anvil;

namespace {

TEST(TacticThreads, ParallelForRunsEveryTaskOnceAndNests) {
  cpu::tactics::setNumThreads(4);
  std::vector<int> hits(1000, 0);
  cpu::tactics::parallelFor(10, [&](int64_t i) {
    cpu::tactics::parallelFor(100, [&](int64_t j) { hits[size_t(i * 100 + j)]++; });  // nested: serial
  });
  cpu::tactics::setNumThreads(0);
  EXPECT_EQ(std::count(hits.begin(), hits.end(), 1), 1000);
}

}  // namespace
