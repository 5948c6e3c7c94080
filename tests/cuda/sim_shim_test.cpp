// The host SIMT shim itself: indexing, barriers, shuffles and votes against the PTX
// definitions, atomics across parallel blocks, dynamic shared memory, and the errors it
// raises for kernels that would hang or be undefined on a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "cuda/kernels/compat.cuh"
#include "cuda/kernels/reduce.cuh"
#include "cuda/sim/sim.h"

namespace anvil::cuda {
namespace {

// Each thread writes its global linear id and coordinates.
__global__ void writeCoordinates(unsigned* out) {
  const unsigned tInBlock = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned id = block * blockDim.x * blockDim.y * blockDim.z + tInBlock;
  out[4 * id + 0] = id;
  out[4 * id + 1] = threadIdx.x + 100 * threadIdx.y + 10000 * threadIdx.z;
  out[4 * id + 2] = blockIdx.x + 100 * blockIdx.y + 10000 * blockIdx.z;
  out[4 * id + 3] += 1;
}

TEST(CudaSim, ThreeDimensionalIndexing) {
  const dim3 grid(3, 2, 2), block(5, 3, 2);
  const unsigned n = 12 * 30;
  std::vector<unsigned> out(4 * n, 0);
  sim::launch(grid, block, 0, &writeCoordinates, out.data());
  for (unsigned id = 0; id < n; ++id) {
    const unsigned b = id / 30, t = id % 30;
    ASSERT_EQ(out[4 * id], id);
    EXPECT_EQ(out[4 * id + 1], t % 5 + 100 * (t / 5 % 3) + 10000 * (t / 15));
    EXPECT_EQ(out[4 * id + 2], b % 3 + 100 * (b / 3 % 2) + 10000 * (b / 6));
    EXPECT_EQ(out[4 * id + 3], 1u) << "thread " << id << " ran more or less than once";
  }
  EXPECT_EQ(sim::lastLaunchStats().blocks, 12u);
  EXPECT_EQ(sim::lastLaunchStats().threads, n);
}

// Rotate values through shared memory; needs the barrier between write and read.
template <bool kBarrier>
__global__ void rotateThroughShared(int base, int* out) {
  __shared__ int s[128];
  s[threadIdx.x] = base + static_cast<int>(threadIdx.x);
  if (kBarrier) __syncthreads();
  out[threadIdx.x] = s[(threadIdx.x + 1) % blockDim.x];
}

TEST(CudaSim, SyncthreadsOrdersSharedMemory) {
  std::vector<int> out(128);
  for (int base : {100, 200}) {
    sim::launch(dim3(1), dim3(128), 0, &rotateThroughShared<true>, base, out.data());
    for (int t = 0; t < 128; ++t) ASSERT_EQ(out[t], base + (t + 1) % 128);
  }
}

TEST(CudaSim, MissingSyncthreadsShowsUp) {
  // Threads run one after another until they block, so thread 0 reads thread 1's slot
  // before thread 1 has written it: the stale value of the previous launch.
  std::vector<int> out(128);
  sim::launch(dim3(1), dim3(128), 0, &rotateThroughShared<false>, 100, out.data());
  sim::launch(dim3(1), dim3(128), 0, &rotateThroughShared<false>, 200, out.data());
  EXPECT_EQ(out[0], 101);
}

enum class Shfl { kIdx, kUp, kDown, kXor };

template <Shfl kOp>
__global__ void shuffleKernel(int arg, int width, int* out) {
  const int v = 1000 + static_cast<int>(threadIdx.x);
  int r = 0;
  switch (kOp) {
    case Shfl::kIdx:
      r = __shfl_sync(0xffffffffu, v, arg + static_cast<int>(threadIdx.x & 31) % 3, width);
      break;
    case Shfl::kUp:
      r = __shfl_up_sync(0xffffffffu, v, static_cast<unsigned>(arg), width);
      break;
    case Shfl::kDown:
      r = __shfl_down_sync(0xffffffffu, v, static_cast<unsigned>(arg), width);
      break;
    case Shfl::kXor:
      r = __shfl_xor_sync(0xffffffffu, v, arg, width);
      break;
  }
  out[threadIdx.x] = r;
}

// The source lane per the CUDA programming guide: lanes are grouped in segments of `width`;
// up/down/xor that leave the segment (xor: to a later one) return the lane's own value.
int expectedSource(Shfl op, int lane, int arg, int width) {
  const int base = lane / width * width;
  switch (op) {
    case Shfl::kIdx:
      return base + (arg + lane % 3) % width;
    case Shfl::kUp:
      return lane - arg >= base ? lane - arg : lane;
    case Shfl::kDown:
      return lane + arg < base + width ? lane + arg : lane;
    case Shfl::kXor:
      return (lane ^ arg) < base + width ? (lane ^ arg) : lane;
  }
  return -1;
}

template <Shfl kOp>
void checkShuffle(const char* name) {
  for (int width : {32, 16, 8, 4, 2, 1}) {
    for (int arg : {0, 1, 2, 3, 5, 8, 16, 31}) {
      std::vector<int> out(64, -1);  // two warps
      sim::launch(dim3(1), dim3(64), 0, &shuffleKernel<kOp>, arg, width, out.data());
      for (int t = 0; t < 64; ++t) {
        ASSERT_EQ(out[t], 1000 + 32 * (t / 32) + expectedSource(kOp, t % 32, arg, width))
            << name << " thread " << t << " arg " << arg << " width " << width;
      }
    }
  }
}

TEST(CudaSim, ShflIdx) { checkShuffle<Shfl::kIdx>("__shfl_sync"); }
TEST(CudaSim, ShflUp) { checkShuffle<Shfl::kUp>("__shfl_up_sync"); }
TEST(CudaSim, ShflDown) { checkShuffle<Shfl::kDown>("__shfl_down_sync"); }
TEST(CudaSim, ShflXor) { checkShuffle<Shfl::kXor>("__shfl_xor_sync"); }

__global__ void shuffleTypes(double* d, __half* h) {
  const double dv = __shfl_xor_sync(0xffffffffu, 0.5 + threadIdx.x, 1);
  const __half hv = __shfl_down_sync(0xffffffffu, __float2half_rn(float(threadIdx.x)), 1);
  d[threadIdx.x] = dv;
  h[threadIdx.x] = hv;
}

TEST(CudaSim, ShufflesMoveDoublesAndHalves) {
  std::vector<double> d(32);
  std::vector<__half> h(32);
  sim::launch(dim3(1), dim3(32), 0, &shuffleTypes, d.data(), h.data());
  for (int t = 0; t < 32; ++t) {
    EXPECT_EQ(d[t], 0.5 + (t ^ 1));
    EXPECT_EQ(__half2float(h[t]), float(t < 31 ? t + 1 : t));
  }
}

__global__ void votes(unsigned* out) {
  const int lane = threadIdx.x & 31;
  // Lanes 0..15 take part, a sub-warp mask.
  if (lane < 16) {
    out[threadIdx.x * 3 + 0] = __ballot_sync(0x0000ffffu, lane % 3 == 0);
    out[threadIdx.x * 3 + 1] = __any_sync(0x0000ffffu, lane == 7);
    out[threadIdx.x * 3 + 2] = __all_sync(0x0000ffffu, lane < 15);
  }
  __syncwarp();
}

TEST(CudaSim, BallotAnyAllWithSubWarpMask) {
  std::vector<unsigned> out(64 * 3, 7);
  sim::launch(dim3(1), dim3(64), 0, &votes, out.data());
  unsigned want = 0;
  for (int l = 0; l < 16; l += 3) want |= 1u << l;
  for (int t = 0; t < 64; ++t) {
    if (t % 32 < 16) {
      EXPECT_EQ(out[t * 3 + 0], want) << t;
      EXPECT_EQ(out[t * 3 + 1], 1u) << t;
      EXPECT_EQ(out[t * 3 + 2], 0u) << t;
    } else {
      EXPECT_EQ(out[t * 3], 7u) << t;
    }
  }
}

template <int kBlock>
__global__ void blockSum(const float* x, float* out) {
  __shared__ float scratch[kBlock / 32 + 1];
  const float s = kernels::blockAllReduce<kBlock>(x[blockIdx.x * kBlock + threadIdx.x], scratch,
                                                  kernels::SumOp{}, 0.0f);
  const float m = kernels::blockAllReduce<kBlock>(x[blockIdx.x * kBlock + threadIdx.x], scratch,
                                                  kernels::MaxOp{}, -INFINITY);
  out[2 * (blockIdx.x * kBlock + threadIdx.x)] = s;
  out[2 * (blockIdx.x * kBlock + threadIdx.x) + 1] = m;
}

template <int kBlock>
void checkBlockReduce() {
  const int blocks = 3;
  std::vector<float> x(blocks * kBlock), out(2 * blocks * kBlock);
  std::mt19937 rng(kBlock);
  // Small integers: every summation order gives the exact same float.
  for (float& v : x) v = static_cast<float>(static_cast<int>(rng() % 201) - 100);
  sim::launch(dim3(blocks), dim3(kBlock), 0, &blockSum<kBlock>, x.data(), out.data());
  for (int b = 0; b < blocks; ++b) {
    const float sum = std::accumulate(x.begin() + b * kBlock, x.begin() + (b + 1) * kBlock, 0.0f);
    const float max = *std::max_element(x.begin() + b * kBlock, x.begin() + (b + 1) * kBlock);
    for (int t = 0; t < kBlock; ++t) {
      ASSERT_EQ(out[2 * (b * kBlock + t)], sum) << "block " << b << " thread " << t;
      ASSERT_EQ(out[2 * (b * kBlock + t) + 1], max) << "block " << b << " thread " << t;
    }
  }
}

TEST(CudaSim, BlockAllReduce) {
  checkBlockReduce<32>();
  checkBlockReduce<64>();
  checkBlockReduce<256>();
  checkBlockReduce<1024>();
}

__global__ void countAtomically(int* counter, float* fsum, unsigned* maxId) {
  atomicAdd(counter, 1);
  atomicAdd(fsum, 2.0f);
  atomicMax(maxId, blockIdx.x * blockDim.x + threadIdx.x);
}

TEST(CudaSim, AtomicsAcrossParallelBlocks) {
  const sim::Options saved = sim::options();
  for (unsigned workers : {1u, 2u, 4u}) {
    sim::Options o = saved;
    o.workers = workers;
    sim::setOptions(o);
    int counter = 0;
    float fsum = 0;
    unsigned maxId = 0;
    sim::launch(dim3(50), dim3(64), 0, &countAtomically, &counter, &fsum, &maxId);
    EXPECT_EQ(counter, 50 * 64) << workers << " workers";
    EXPECT_EQ(fsum, 2.0f * 50 * 64) << workers << " workers";
    EXPECT_EQ(maxId, 50u * 64 - 1) << workers << " workers";
    EXPECT_EQ(sim::lastLaunchStats().blocks, 50u);
    EXPECT_EQ(sim::lastLaunchStats().threads, 50u * 64);
  }
  sim::setOptions(saved);
}

// Reverses each block's slice through dynamic shared memory; also reports what the memory
// held before the block wrote it.
__global__ void reverseDynamic(const float* x, float* y, unsigned* poisoned) {
  ANVIL_EXTERN_SHARED(float, smem);
  if (threadIdx.x == 0) {
    unsigned bits;
    std::memcpy(&bits, &smem[blockDim.x - 1], sizeof bits);
    poisoned[blockIdx.x] = bits;
  }
  __syncthreads();
  smem[threadIdx.x] = x[blockIdx.x * blockDim.x + threadIdx.x];
  __syncthreads();
  y[blockIdx.x * blockDim.x + threadIdx.x] = smem[blockDim.x - 1 - threadIdx.x];
}

TEST(CudaSim, DynamicSharedMemoryIsPoisonedPerBlock) {
  const unsigned blocks = 4, threads = 96;
  std::vector<float> x(blocks * threads), y(blocks * threads);
  std::iota(x.begin(), x.end(), 0.0f);
  std::vector<unsigned> poisoned(blocks);
  sim::launch(dim3(blocks), dim3(threads), threads * sizeof(float), &reverseDynamic, x.data(),
              y.data(), poisoned.data());
  for (unsigned b = 0; b < blocks; ++b) {
    EXPECT_EQ(poisoned[b], 0xffffffffu) << "block " << b;
    for (unsigned t = 0; t < threads; ++t) {
      ASSERT_EQ(y[b * threads + t], x[b * threads + threads - 1 - t]);
    }
  }
}

// ---- kernels a GPU would hang on or leave undefined: the sim reports them ----

std::string launchError(const std::function<void()>& launch) {
  try {
    launch();
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

__global__ void earlyReturnBeforeBarrier(int* out) {
  if (threadIdx.x == 3) return;
  __syncthreads();
  out[threadIdx.x] = 1;
}

TEST(CudaSimErrors, BarrierNotReachedByAllThreads) {
  std::vector<int> out(64);
  const std::string msg = launchError(
      [&] { sim::launch(dim3(2), dim3(64), 0, &earlyReturnBeforeBarrier, out.data()); });
  EXPECT_NE(msg.find("deadlock in block (0,0,0)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("63 threads wait at __syncthreads but 1 threads exited"), std::string::npos)
      << msg;
}

__global__ void shuffleSkippingLane(int* out) {
  if (threadIdx.x == 5) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}

TEST(CudaSimErrors, ShuffleWaitsForExitedLane) {
  std::vector<int> out(32);
  const std::string msg =
      launchError([&] { sim::launch(dim3(1), dim3(32), 0, &shuffleSkippingLane, out.data()); });
  EXPECT_NE(msg.find("warp 0: lanes 0xffffffdf wait in __shfl_xor_sync(mask 0xffffffff), lanes "
                     "0x00000020 exited"),
            std::string::npos)
      << msg;
}

__global__ void shuffleMaskWithoutSelf(int* out) {
  out[threadIdx.x] = __shfl_down_sync(0x2u, 1, 1);
}

TEST(CudaSimErrors, ShuffleMaskMustIncludeCaller) {
  std::vector<int> out(32);
  const std::string msg =
      launchError([&] { sim::launch(dim3(1), dim3(32), 0, &shuffleMaskWithoutSelf, out.data()); });
  EXPECT_NE(msg.find("thread (0,0,0) (warp 0 lane 0): __shfl_down_sync with mask 0x00000002, "
                     "which does not include the calling lane"),
            std::string::npos)
      << msg;
}

__global__ void shuffleReadsOutsideMask(int* out) {
  if (threadIdx.x < 8) out[threadIdx.x] = __shfl_xor_sync(0xffu, 1, 8);
}

TEST(CudaSimErrors, ShuffleReadingLaneOutsideMask) {
  std::vector<int> out(32);
  const std::string msg =
      launchError([&] { sim::launch(dim3(1), dim3(32), 0, &shuffleReadsOutsideMask, out.data()); });
  EXPECT_NE(msg.find("__shfl_xor_sync reads lane 8, which is not in mask 0x000000ff"),
            std::string::npos)
      << msg;
}

__global__ void shuffleOnPartialWarp(int* out) {
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1, 1);
}

TEST(CudaSimErrors, FullMaskOnPartialWarp) {
  std::vector<int> out(48);
  const std::string msg =
      launchError([&] { sim::launch(dim3(1), dim3(48), 0, &shuffleOnPartialWarp, out.data()); });
  EXPECT_NE(msg.find("names lanes 0xffff0000 that do not exist (the block has 48 threads)"),
            std::string::npos)
      << msg;
}

__global__ void divergentCollectives(int* out) {
  out[threadIdx.x] =
      threadIdx.x < 16 ? __shfl_xor_sync(0xffffffffu, 1, 1) : __shfl_down_sync(0xffffffffu, 1, 1);
}

TEST(CudaSimErrors, DivergentWarpCollectives) {
  std::vector<int> out(32);
  const std::string msg =
      launchError([&] { sim::launch(dim3(1), dim3(32), 0, &divergentCollectives, out.data()); });
  EXPECT_NE(msg.find("calls __shfl_down_sync(mask 0xffffffff, width 32) while lanes 0x0000ffff "
                     "of its warp wait in __shfl_xor_sync"),
            std::string::npos)
      << msg;
}

__global__ void throwsOnThread7(int*) {
  if (blockIdx.x == 1 && threadIdx.x == 7) throw std::out_of_range("index 99 of 10");
}

TEST(CudaSimErrors, ExceptionNamesBlockAndThread) {
  const std::string msg =
      launchError([&] { sim::launch(dim3(2), dim3(32), 0, &throwsOnThread7, nullptr); });
  EXPECT_NE(msg.find("block (1,0,0) thread (7,0,0) (warp 0 lane 7) threw: index 99 of 10"),
            std::string::npos)
      << msg;
}

__global__ void nothing() {}

TEST(CudaSimErrors, InvalidLaunchConfiguration) {
  EXPECT_NE(launchError([] {
              sim::launch(dim3(1), dim3(2048), 0, &nothing);
            }).find("block (2048,1,1) has 2048 threads"),
            std::string::npos);
  EXPECT_NE(launchError([] { sim::launch(dim3(0), dim3(32), 0, &nothing); }).find("grid (0,1,1)"),
            std::string::npos);
  EXPECT_NE(launchError([] {
              sim::launch(dim3(1), dim3(32, 1, 65), 0, &nothing);
            }).find("blockDim.z <= 64"),
            std::string::npos);
  EXPECT_NE(launchError([] {
              sim::launch(dim3(1), dim3(32), 1 << 20, &nothing);
            }).find("dynamic shared memory"),
            std::string::npos);
}

TEST(CudaSimErrors, LaunchWorksAfterAFailedOne) {
  std::vector<int> out(64);
  EXPECT_NE(launchError(
                [&] { sim::launch(dim3(2), dim3(64), 0, &earlyReturnBeforeBarrier, out.data()); }),
            "no error");
  std::vector<int> rotated(128);
  sim::launch(dim3(1), dim3(128), 0, &rotateThroughShared<true>, 5, rotated.data());
  for (int t = 0; t < 128; ++t) ASSERT_EQ(rotated[t], 5 + (t + 1) % 128);
}

TEST(CudaSimErrors, BadOptions) {
  sim::Options o;
  o.workers = 0;
  EXPECT_THROW(sim::setOptions(o), Error);
  o.workers = 1;
  o.stackBytes = 1024;
  EXPECT_THROW(sim::setOptions(o), Error);
}

}  // namespace
}  // namespace anvil::cuda
