// Fast CPU tactics for MatMul and Gemm, and the f32 GEMM engine they share with Conv
// (cpu/tactics/gemm_kernels.h): packed-panel engine with AVX2 6x16 and AVX-512 14x32
// micro-kernels, a portable 4x4 blocked GEMM, and the tactics' thread pool.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <utility>

#include "cpu/tactics.h"
#include "cpu/tactics/gemm_kernels.h"
#include "runtime/executor.h"

namespace anvil::cpu::tactics {

// ---------------------------------------------------------------------------------------
// Thread pool

namespace {

thread_local bool tInParallel = false;

// One parallel region at a time; workers are created lazily and live for the process.
class Pool {
 public:
  void run(int64_t n, int threads, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> callLock(callMu_, std::defer_lock);
    if (threads <= 1 || n <= 1 || tInParallel || !callLock.try_lock()) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    const int helpers = int(std::min<int64_t>(threads, n)) - 1;
    {
      std::lock_guard<std::mutex> lk(mu_);
      while (int(workers_.size()) < helpers) {
        const int index = int(workers_.size());
        workers_.emplace_back([this, index] { workerLoop(index); });
        workers_.back().detach();
      }
      fn_ = &fn;
      count_ = n;
      next_.store(0);
      active_ = helpers;
      pending_ = helpers;
      error_ = nullptr;
      ++gen_;
    }
    wake_.notify_all();
    work();
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [this] { return pending_ == 0; });
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  void work() {
    const bool saved = tInParallel;
    tInParallel = true;
    for (int64_t i; (i = next_.fetch_add(1)) < count_;) {
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu_);
        if (!error_) error_ = std::current_exception();
      }
    }
    tInParallel = saved;
  }

  void workerLoop(int index) {
    uint64_t seen = 0;
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      wake_.wait(lk, [&] { return gen_ != seen; });
      seen = gen_;
      if (index >= active_) continue;
      lk.unlock();
      work();
      lk.lock();
      if (--pending_ == 0) done_.notify_all();
    }
  }

  std::mutex callMu_, mu_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int64_t)>* fn_ = nullptr;
  std::atomic<int64_t> next_{0};
  int64_t count_ = 0;
  int active_ = 0, pending_ = 0;
  uint64_t gen_ = 0;
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: detached workers may outlive statics
  return *p;
}

std::atomic<int> gThreads{0};

int defaultThreads() {
  if (const char* e = std::getenv("ANVIL_NUM_THREADS")) {
    const int n = std::atoi(e);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

}  // namespace

int numThreads() {
  if (runtime::Executor* e = runtime::currentExecutor()) return e->threads();
  const int n = gThreads.load();
  if (n > 0) return n;
  static const int def = defaultThreads();
  return def;
}

void setNumThreads(int n) { gThreads.store(std::max(0, n)); }

void parallelFor(int64_t n, const std::function<void(int64_t)>& fn) {
  // Inside an engine step (or a builder timing run) the context's executor runs the region.
  if (runtime::Executor* e = runtime::currentExecutor()) return e->parallelFor(n, fn);
  pool().run(n, numThreads(), fn);
}

// ---------------------------------------------------------------------------------------
// Packing

namespace {

int64_t ceilDiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t roundUp(int64_t a, int64_t b) { return ceilDiv(a, b) * b; }

// Per-thread, 64-byte aligned scratch that only grows.
class Scratch {
 public:
  ~Scratch() { std::free(p_); }
  float* get(int64_t n) {
    if (n > n_) {
      std::free(p_);
      p_ = static_cast<float*>(std::aligned_alloc(64, size_t(roundUp(n * 4, 64))));
      n_ = n;
    }
    return p_;
  }

 private:
  float* p_ = nullptr;
  int64_t n_ = 0;
};

thread_local Scratch tPackA, tPackB;

// A[i0:i0+mc, k0:k0+kc] * alpha as panels of mr rows: panel p holds mr floats per k.
void packA(StridedMatrix A, int64_t i0, int64_t mc, int64_t k0, int64_t kc, int mr, float alpha, float* dst) {
  for (int64_t ip = 0; ip < mc; ip += mr) {
    const int rows = int(std::min<int64_t>(mr, mc - ip));
    float* d = dst + ip * kc;
    for (int r = 0; r < rows; ++r) {
      const float* src = A.p + (i0 + ip + r) * A.rs + k0 * A.cs;
      const int64_t cs = A.cs;
      if (alpha == 1.0f)
        for (int64_t k = 0; k < kc; ++k) d[k * mr + r] = src[k * cs];
      else
        for (int64_t k = 0; k < kc; ++k) d[k * mr + r] = alpha * src[k * cs];
    }
    for (int r = rows; r < mr; ++r)
      for (int64_t k = 0; k < kc; ++k) d[k * mr + r] = 0.0f;
  }
}

}  // namespace

void StridedBPacker::pack(int64_t k0, int64_t kc, int64_t j0, int64_t nc, int nr, float* dst) const {
  for (int64_t q = 0; q * nr < nc; ++q) {
    const int64_t jq = j0 + q * nr;
    const int cols = int(std::min<int64_t>(nr, nc - q * nr));
    float* d = dst + q * kc * nr;
    if (b_.cs == 1) {
      for (int64_t k = 0; k < kc; ++k) {
        std::memcpy(d + k * nr, b_.p + (k0 + k) * b_.rs + jq, size_t(cols) * 4);
        for (int c = cols; c < nr; ++c) d[k * nr + c] = 0.0f;
      }
    } else {
      for (int c = 0; c < cols; ++c) {
        const float* src = b_.p + k0 * b_.rs + (jq + c) * b_.cs;
        for (int64_t k = 0; k < kc; ++k) d[k * nr + c] = src[k * b_.rs];
      }
      for (int64_t k = 0; k < kc; ++k)
        for (int c = cols; c < nr; ++c) d[k * nr + c] = 0.0f;
    }
  }
}

// ---------------------------------------------------------------------------------------
// Micro-kernels: C[R x ncols] (+)= Apanel[kc x MR] (first R rows) * Bpanel[kc x NR].
// R is a template parameter so row edges cost nothing; column edges go through masks or
// a tile on the stack.

namespace {

using MicroKernel = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, int ncols, bool acc);

template <int MR, int R>
__attribute__((target("avx2,fma"))) void ukAvx2_x16(int64_t kc, const float* __restrict a, const float* __restrict b,
                                                    float* c, int64_t ldc, int ncols, bool acc) {
  __m256 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm256_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m256 av = _mm256_broadcast_ss(a + r);
      c0[r] = _mm256_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm256_fmadd_ps(av, b1, c1[r]);
    }
    a += MR;
    b += 16;
  }
  if (ncols == 16) {
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      float* cr = c + r * ldc;
      if (acc) {
        c0[r] = _mm256_add_ps(_mm256_loadu_ps(cr), c0[r]);
        c1[r] = _mm256_add_ps(_mm256_loadu_ps(cr + 8), c1[r]);
      }
      _mm256_storeu_ps(cr, c0[r]);
      _mm256_storeu_ps(cr + 8, c1[r]);
    }
    return;
  }
  alignas(32) float tile[R][16];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    _mm256_store_ps(tile[r], c0[r]);
    _mm256_store_ps(tile[r] + 8, c1[r]);
  }
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    for (int j = 0; j < ncols; ++j) cr[j] = acc ? cr[j] + tile[r][j] : tile[r][j];
  }
}

template <int MR, int R>
__attribute__((target("avx512f"))) void ukAvx512_x32(int64_t kc, const float* __restrict a,
                                                     const float* __restrict b, float* c, int64_t ldc, int ncols,
                                                     bool acc) {
  __m512 c0[R], c1[R];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) c0[r] = c1[r] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 av = _mm512_set1_ps(a[r]);
      c0[r] = _mm512_fmadd_ps(av, b0, c0[r]);
      c1[r] = _mm512_fmadd_ps(av, b1, c1[r]);
    }
    a += MR;
    b += 32;
  }
  const __mmask16 m0 = ncols >= 16 ? __mmask16(0xffff) : __mmask16((1u << ncols) - 1);
  const __mmask16 m1 = ncols >= 32 ? __mmask16(0xffff) : ncols <= 16 ? __mmask16(0) : __mmask16((1u << (ncols - 16)) - 1);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    float* cr = c + r * ldc;
    if (acc) {
      c0[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m0, cr), c0[r]);
      c1[r] = _mm512_add_ps(_mm512_maskz_loadu_ps(m1, cr + 16), c1[r]);
    }
    _mm512_mask_storeu_ps(cr, m0, c0[r]);
    _mm512_mask_storeu_ps(cr + 16, m1, c1[r]);
  }
}

template <int MR, int... Rs>
constexpr std::array<MicroKernel, MR> avx2Table(std::integer_sequence<int, Rs...>) {
  return {&ukAvx2_x16<MR, Rs + 1>...};
}
template <int MR, int... Rs>
constexpr std::array<MicroKernel, MR> avx512Table(std::integer_sequence<int, Rs...>) {
  return {&ukAvx512_x32<MR, Rs + 1>...};
}

// Cache blocking (floats): the B block kc x nc stays in L2, one B micro-panel (kc x nr) in
// L1 while the A block (mc x kc) streams from L2. On the dev box (Zen 5 class EPYC, 48 KiB
// L1d, 1 MiB L2) MatMul 256x512x512 moved by under 5% over kc 128..384, nc 512/1024 and
// mc 4..24 panels; nc 512 was 5-10% better than 1024 for the ResNet 3x3 Conv.
struct EngineConfig {
  int mr, nr;
  int64_t mc, kc, nc;
  const MicroKernel* kernels;  // kernels[R-1] computes R rows
};

const EngineConfig& engineConfig(PackedKernel k) {
  static const auto kAvx2 = avx2Table<6>(std::make_integer_sequence<int, 6>{});
  static const auto kAvx512 = avx512Table<14>(std::make_integer_sequence<int, 14>{});
  static const EngineConfig kCfgAvx2{6, 16, 72, 256, 512, kAvx2.data()};
  static const EngineConfig kCfgAvx512{14, 32, 84, 192, 512, kAvx512.data()};
  return k == PackedKernel::kAvx512_14x32 ? kCfgAvx512 : kCfgAvx2;
}

void zeroRows(int64_t M, int64_t N, float* C, int64_t ldc) {
  for (int64_t i = 0; i < M; ++i) std::fill(C + i * ldc, C + i * ldc + N, 0.0f);
}

}  // namespace

void packedGemm(PackedKernel kernel, int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A,
                const BPacker& B, float* C, int64_t ldc, bool accumulate, const GemmEpilogue* epilogue) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) zeroRows(M, N, C, ldc);
    if (epilogue) (*epilogue)(0, M, 0, N, C, ldc);
    return;
  }
  const EngineConfig& cfg = engineConfig(kernel);
  const int mr = cfg.mr, nr = cfg.nr;
  const int threads = numThreads();
  const int64_t ncMax = std::min(cfg.nc, roundUp(N, nr)), kcMax = std::min(cfg.kc, K);
  float* bp = tPackB.get(kcMax * roundUp(ncMax, nr));
  const int64_t mBlocks = ceilDiv(M, cfg.mc);
  for (int64_t jc = 0; jc < N; jc += cfg.nc) {
    const int64_t nc = std::min(cfg.nc, N - jc);
    const int64_t panels = ceilDiv(nc, nr);
    // Split the N panels too when there are fewer M blocks than threads.
    int64_t nSplit = 1;
    if (threads > 1 && mBlocks < 2 * threads) nSplit = std::min(panels, ceilDiv(2 * threads, mBlocks));
    for (int64_t pc = 0; pc < K; pc += cfg.kc) {
      const int64_t kc = std::min(cfg.kc, K - pc);
      const int64_t packTasks = std::min<int64_t>(panels, threads);
      parallelFor(packTasks, [&](int64_t t) {
        const int64_t q0 = panels * t / packTasks, q1 = panels * (t + 1) / packTasks;
        if (q0 < q1) B.pack(pc, kc, jc + q0 * nr, std::min(nc, q1 * nr) - q0 * nr, nr, bp + q0 * kc * nr);
      });
      const bool acc = accumulate || pc > 0;
      parallelFor(mBlocks * nSplit, [&](int64_t task) {
        const int64_t ic = (task / nSplit) * cfg.mc, mc = std::min(cfg.mc, M - ic);
        const int64_t js = task % nSplit;
        const int64_t q0 = panels * js / nSplit, q1 = panels * (js + 1) / nSplit;
        if (q0 >= q1) return;
        float* ap = tPackA.get(roundUp(mc, mr) * kc);
        packA(A, ic, mc, pc, kc, mr, alpha, ap);
        for (int64_t q = q0; q < q1; ++q) {
          const int ncols = int(std::min<int64_t>(nr, nc - q * nr));
          const float* bq = bp + q * kc * nr;
          float* cq = C + ic * ldc + jc + q * nr;
          for (int64_t ip = 0; ip < mc; ip += mr) {
            const int rows = int(std::min<int64_t>(mr, mc - ip));
            cfg.kernels[rows - 1](kc, ap + ip * kc, bq, cq + ip * ldc, ldc, ncols, acc);
          }
        }
        if (epilogue && pc + kc == K) {  // this task's mc x (panels q0..q1) block, still in L2
          const int64_t j0 = jc + q0 * nr;
          (*epilogue)(ic, mc, j0, std::min(nc, q1 * nr) - q0 * nr, C + ic * ldc + j0, ldc);
        }
      });
    }
  }
}

// ---------------------------------------------------------------------------------------
// Portable blocked GEMM: B copied into 4-column panels, a 4x4 tile held in four 4-float
// vectors (GCC vector extensions: SSE on x86, NEON on Arm, scalar code elsewhere).

namespace {
typedef float V4 __attribute__((vector_size(16)));
}  // namespace

void blockedGemm4x4(int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A, StridedMatrix B, float* C,
                    int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    if (!accumulate) zeroRows(M, N, C, ldc);
    return;
  }
  constexpr int64_t kRowsPerTask = 64, kKBlock = 256, kNBlock = 256;
  const StridedBPacker packer(B);
  parallelFor(ceilDiv(M, kRowsPerTask), [&](int64_t task) {
    const int64_t i0 = task * kRowsPerTask, i1 = std::min(M, i0 + kRowsPerTask);
    float* bp = tPackB.get(kKBlock * kNBlock);
    for (int64_t jb = 0; jb < N; jb += kNBlock) {
      const int64_t nb = std::min(kNBlock, N - jb);
      for (int64_t kb = 0; kb < K; kb += kKBlock) {
        const int64_t kc = std::min(kKBlock, K - kb);
        const bool acc = accumulate || kb > 0;
        packer.pack(kb, kc, jb, nb, 4, bp);
        for (int64_t i = i0; i < i1; i += 4) {
          const int rows = int(std::min<int64_t>(4, i1 - i));
          const float* ar[4];
          for (int r = 0; r < 4; ++r) ar[r] = A.p + (i + std::min(r, rows - 1)) * A.rs + kb * A.cs;  // edge: repeat a row
          for (int64_t q = 0; q * 4 < nb; ++q) {
            const float* bq = bp + q * kc * 4;
            V4 s0 = {}, s1 = {}, s2 = {}, s3 = {};
            for (int64_t k = 0; k < kc; ++k) {
              V4 b;
              std::memcpy(&b, bq + k * 4, sizeof b);
              const int64_t o = k * A.cs;
              s0 += ar[0][o] * b;
              s1 += ar[1][o] * b;
              s2 += ar[2][o] * b;
              s3 += ar[3][o] * b;
            }
            const V4 s[4] = {s0, s1, s2, s3};
            const int cols = int(std::min<int64_t>(4, nb - q * 4));
            for (int r = 0; r < rows; ++r) {
              float* cr = C + (i + r) * ldc + jb + q * 4;
              for (int c = 0; c < cols; ++c) cr[c] = acc ? cr[c] + alpha * s[r][c] : alpha * s[r][c];
            }
          }
        }
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// MatMul and Gemm tactics

namespace {

using GemmFn = std::function<void(int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A, StridedMatrix B,
                                  float* C, int64_t ldc, bool accumulate)>;

int64_t product(const std::vector<int64_t>& d, size_t from = 0, size_t to = SIZE_MAX) {
  int64_t p = 1;
  for (size_t i = from; i < std::min(to, d.size()); ++i) p *= d[i];
  return p;
}

std::string dimsStr(const std::vector<int64_t>& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "," : "") + std::to_string(d[i]);
  return s + "]";
}

// numpy matmul: 1-D operands are promoted (and the added dim dropped), batch dims broadcast.
void runMatMul(KernelContext& ctx, const GemmFn& gemm) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  ctx.check(a.dtype() == DataType::kF32 && b.dtype() == DataType::kF32, "this tactic takes f32 inputs");
  ctx.check(a.rank() >= 1 && b.rank() >= 1, "MatMul operands must have rank >= 1, got " + dimsStr(a.dims()) +
                                                " and " + dimsStr(b.dims()));
  std::vector<int64_t> ad = a.dims(), bd = b.dims();
  const bool aVec = ad.size() == 1, bVec = bd.size() == 1;
  if (aVec) ad.insert(ad.begin(), 1);
  if (bVec) bd.push_back(1);
  const int64_t M = ad[ad.size() - 2], K = ad.back(), N = bd.back();
  ctx.check(bd[bd.size() - 2] == K, "inner dimensions differ: A is " + dimsStr(a.dims()) + ", B is " +
                                        dimsStr(b.dims()));
  const std::vector<int64_t> batchA(ad.begin(), ad.end() - 2), batchB(bd.begin(), bd.end() - 2);
  const std::vector<int64_t> batch = ir::broadcastExtents(batchA, batchB);
  std::vector<int64_t> outDims = batch;
  if (!aVec) outDims.push_back(M);
  if (!bVec) outDims.push_back(N);
  Tensor& y = ctx.allocOutput(0, DataType::kF32, outDims);
  float* yp = y.data<float>();
  const float* ap = a.data<float>();
  const float* bp = b.data<float>();
  const int64_t nb = product(batch);
  if (product(batchB) == 1) {  // one B for every batch: fold the batch into M
    gemm(nb * M, N, K, 1.0f, {ap, K, 1}, {bp, N, 1}, yp, N, false);
    return;
  }
  // Broadcast strides (in matrices) of A's and B's batch dims against the output batch.
  const size_t rank = batch.size();
  std::vector<int64_t> sa(rank, 0), sb(rank, 0);
  for (int64_t i = int64_t(rank) - 1, pa = 1, pb = 1; i >= 0; --i) {
    const int64_t ia = i - int64_t(rank - batchA.size()), ib = i - int64_t(rank - batchB.size());
    if (ia >= 0) {
      sa[i] = batchA[ia] == 1 ? 0 : pa;
      pa *= batchA[ia];
    }
    if (ib >= 0) {
      sb[i] = batchB[ib] == 1 ? 0 : pb;
      pb *= batchB[ib];
    }
  }
  auto one = [&](int64_t bi) {
    int64_t oa = 0, ob = 0;
    for (int64_t i = int64_t(rank) - 1, r = bi; i >= 0; --i) {
      const int64_t idx = r % batch[i];
      r /= batch[i];
      oa += idx * sa[i];
      ob += idx * sb[i];
    }
    gemm(M, N, K, 1.0f, {ap + oa * M * K, K, 1}, {bp + ob * K * N, N, 1}, yp + bi * M * N, N, false);
  };
  // Many small products: one per task (each runs single-threaded); few large: in turn.
  if (nb >= 2 * numThreads())
    parallelFor(nb, one);
  else
    for (int64_t bi = 0; bi < nb; ++bi) one(bi);
}

void runGemm(KernelContext& ctx, const GemmFn& gemm) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  ctx.check(a.dtype() == DataType::kF32 && b.dtype() == DataType::kF32, "this tactic takes f32 inputs");
  ctx.check(a.rank() == 2 && b.rank() == 2,
            "Gemm operands must be 2-D, got " + dimsStr(a.dims()) + " and " + dimsStr(b.dims()));
  const bool transA = ctx.attrs().getInt("transA", 0) != 0, transB = ctx.attrs().getInt("transB", 0) != 0;
  const float alpha = ctx.attrs().getFloat("alpha", 1.0f), beta = ctx.attrs().getFloat("beta", 1.0f);
  const int64_t M = transA ? a.dim(1) : a.dim(0), K = transA ? a.dim(0) : a.dim(1);
  const int64_t N = transB ? b.dim(0) : b.dim(1), Kb = transB ? b.dim(1) : b.dim(0);
  ctx.check(K == Kb, "inner dimensions differ: op(A) is [" + std::to_string(M) + "," + std::to_string(K) +
                         "], op(B) is [" + std::to_string(Kb) + "," + std::to_string(N) + "]");
  Tensor& y = ctx.allocOutput(0, DataType::kF32, {M, N});
  float* yp = y.data<float>();
  bool acc = false;
  if (ctx.hasInput(2)) {
    const Tensor& c = ctx.input(2);
    ctx.check(c.dtype() == DataType::kF32, "C must be f32 like A and B");
    ctx.check(c.rank() <= 2, "C must have rank <= 2, got " + dimsStr(c.dims()));
    const int64_t cM = c.rank() == 2 ? c.dim(0) : 1, cN = c.rank() >= 1 ? c.dim(c.rank() - 1) : 1;
    ctx.check((cM == 1 || cM == M) && (cN == 1 || cN == N),
              "C " + dimsStr(c.dims()) + " does not broadcast to [" + std::to_string(M) + "," + std::to_string(N) + "]");
    const int64_t rsC = cM == 1 ? 0 : cN, csC = cN == 1 ? 0 : 1;
    const float* cp = c.data<float>();
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) yp[i * N + j] = beta * cp[i * rsC + j * csC];
    acc = true;
  }
  const StridedMatrix A = transA ? StridedMatrix{a.data<float>(), 1, M} : StridedMatrix{a.data<float>(), K, 1};
  const StridedMatrix B = transB ? StridedMatrix{b.data<float>(), 1, K} : StridedMatrix{b.data<float>(), N, 1};
  gemm(M, N, K, alpha, A, B, yp, N, acc);
}

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool rankIn(const ir::TensorType& t, size_t lo, size_t hi) {
  return !t.shape.rankKnown() || (t.shape.rank() >= lo && t.shape.rank() <= hi);
}
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}

bool supportsMatMul(const ir::Node&, const std::vector<ir::TensorType>& in) {
  return in.size() == 2 && isF32(in[0]) && isF32(in[1]) && rankIn(in[0], 1, 64) && rankIn(in[1], 1, 64);
}

bool supportsGemm(const ir::Node&, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !rankIn(in[0], 2, 2) || !rankIn(in[1], 2, 2)) return false;
  return absent(in, 2) || (isF32(in[2]) && rankIn(in[2], 0, 2));
}

void addBoth(TacticRegistry& r, const std::string& name, const std::string& isa, bool needsFma, GemmFn gemm) {
  auto withIsa = [needsFma](auto pred) {
    return [needsFma, pred](const ir::Node& n, const std::vector<ir::TensorType>& in) {
      return (!needsFma || cpuHas("fma")) && pred(n, in);
    };
  };
  r.add({name, "MatMul", "", isa, withIsa(supportsMatMul), [gemm](KernelContext& ctx) { runMatMul(ctx, gemm); }});
  r.add({name, "Gemm", "", isa, withIsa(supportsGemm), [gemm](KernelContext& ctx) { runGemm(ctx, gemm); }});
}

GemmFn packed(PackedKernel k) {
  return [k](int64_t M, int64_t N, int64_t K, float alpha, StridedMatrix A, StridedMatrix B, float* C, int64_t ldc,
             bool acc) { packedGemm(k, M, N, K, alpha, A, StridedBPacker(B), C, ldc, acc); };
}

}  // namespace

void registerGemmTactics(TacticRegistry& r) {
  addBoth(r, "f32_gemm_blocked_4x4", "", false, blockedGemm4x4);
  addBoth(r, "f32_gemm_packed_6x16__avx2", "avx2", true, packed(PackedKernel::kAvx2_6x16));
  addBoth(r, "f32_gemm_packed_14x32__avx512", "avx512f", false, packed(PackedKernel::kAvx512_14x32));
}

}  // namespace anvil::cpu::tactics
