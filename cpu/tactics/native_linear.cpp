// Native CPU kernels (runtime/kernel.h) of the linear family: MatMul, Gemm, Conv (2-D) and
// the fused anvil.FusedMatMul / FusedGemm / FusedConv, one kernel per micro-kernel family
// (portable 4x8, AVX2 6x16, AVX-512 14x32 and 8x32) plus the AVX2 direct depthwise Conv.
//  - prepare(): constant weights are packed once into the micro-kernel's panel layout
//    (gemm_kernels.h): B of MatMul/Gemm, the Conv filter as A panels per group; attributes
//    and the epilogue are decoded into LinearParams; the workspace holds the per-task
//    panels of the activation side (and the per-run packing of non-constant weights).
//  - run(): views, params, blobs and workspace only; threads from the step's executor with
//    a work split that never changes an element's arithmetic (bitwise equal for any thread
//    count); no allocation.
#include <algorithm>
#include <cstring>
#include <string>

#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/gemm_strassen.h"
#include "cpu/tactics/native_linear_conv.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/task_split.h"
#include "ir/ops/anvil_linear.h"
#include "runtime/kernel.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;
using runtime::Kernel;
using runtime::Kernels;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;
using runtime::TensorView;

enum class LinOp : int32_t { kMatMul, kGemm, kConv, kDepthwise };

// Everything run() needs besides the views; trivially copyable (the params blob) and
// without padding, so that the engine's bytes are the same for the same build.
struct LinearParams {
  LinOp op = LinOp::kMatMul;
  GemmIsa isa = GemmIsa::kPortable4x8;
  int32_t tasks = 1;   // workspace slots: the most tasks a run may use
  int32_t packed = 0;  // 1: blobs[0] holds the prepared weight (input 1)
  int32_t fused = 0;   // 1: an anvil.Fused* op (epilogue below, FusedMatMul bias = input 2)
  int32_t transA = 0, transB = 0;
  float alpha = 1.0f, beta = 1.0f;
  int32_t fixedTasks = 0;  // > 0: every run splits into this many tasks (the builder timed it)
  int64_t wK = 0, wN = 0, wM = 0;  // extents of the prepared weight: B [wK x wN]; Conv filter wM x wK per group
  ConvAttrs conv;
  EpilogueParams epi;
  int32_t strassen = 0;  // 1: blobs[0] holds the 7 Strassen operands of B (gemm_strassen.h)
};
static_assert(sizeof(EpilogueParams) == 20 && sizeof(ConvAttrs) == 96 &&
                  sizeof(LinearParams) == 10 * 4 + 3 * 8 + sizeof(ConvAttrs) + sizeof(EpilogueParams) + 4,
              "LinearParams must have no padding bytes");

// A kernel's workspace: one shared region (a weight packed per run), then the task slots.
struct Layout {
  int64_t shared = 0, slot = 0;  // floats, multiples of 16
  int64_t total(int64_t tasks) const { return shared + tasks * slot; }
};

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}
bool rankIs(const ir::TensorType& t, size_t lo, size_t hi) {
  return t.shape.rankKnown() && t.shape.rank() >= lo && t.shape.rank() <= hi;
}

int64_t product(const int64_t* d, int n) {
  int64_t p = 1;
  for (int i = 0; i < n; ++i) p *= d[i];
  return p;
}

std::vector<int64_t> staticExtents(const PrepareInfo& info, size_t i, const char* what) {
  ANVIL_CHECK(i < info.maxTypes.size() && info.maxTypes[i].shape.isStatic(), ErrorCode::kInternal,
              info.node->label(), ": ", what, " has no static extents at the profile's max shapes");
  return info.maxTypes[i].shape.extents();
}

int tasksOf(const StepArgs& a, const LinearParams& p, double flops) {
  return stepTasks(p.tasks, p.fixedTasks, a.executor, flops);
}

float* workspace(const StepArgs& a, const Layout& l, int tasks) {
  if (uint64_t(l.total(tasks)) * sizeof(float) > a.workspaceBytes)
    a.fail("the shapes need a larger workspace than prepared (outside the profile?)");
  return static_cast<float*>(a.workspace);
}

void readFused(const PrepareInfo& info, LinearParams* p) {
  p->fused = 1;
  p->epi = EpilogueParams::of(readFusedEpilogue(*info.node));
}

// The residual Z of a fused op, or null.
const float* residualOf(const StepArgs& a, const LinearParams& p) {
  if (!p.fused || !p.epi.residual) return nullptr;
  if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
  const TensorView& z = a.in(int(ir::linear::kResidualInput));
  if (z.numel() != a.out(0).numel()) a.fail("Z must have the output's shape");
  return z.as<float>();
}

// ---------------------------------------------------------------------------------------
// MatMul / FusedMatMul

struct MatMulDims {
  int64_t M, K, N;
  int64_t batchA[runtime::kMaxRank], batchB[runtime::kMaxRank], batch[runtime::kMaxRank];
  int rank;  // batch rank (broadcast)
  int64_t nbA, nbB, nb;
};

// numpy matmul: 1-D operands are promoted (the added dim dropped), batch dims broadcast.
bool matmulDims(const int64_t* ad, int ar, const int64_t* bd, int br, MatMulDims* d) {
  if (ar < 1 || br < 1) return false;
  d->M = ar == 1 ? 1 : ad[ar - 2];
  d->K = ad[ar - 1];
  d->N = br == 1 ? 1 : bd[br - 1];
  const int64_t kb = br == 1 ? bd[0] : bd[br - 2];
  if (kb != d->K) return false;
  const int ra = std::max(0, ar - 2), rb = std::max(0, br - 2);
  d->rank = std::max(ra, rb);
  if (d->rank > runtime::kMaxRank) return false;
  for (int i = 0; i < d->rank; ++i) {
    const int ia = i - (d->rank - ra), ib = i - (d->rank - rb);
    d->batchA[i] = ia >= 0 ? ad[ia] : 1;
    d->batchB[i] = ib >= 0 ? bd[ib] : 1;
    if (d->batchA[i] != d->batchB[i] && d->batchA[i] != 1 && d->batchB[i] != 1) return false;
    d->batch[i] = std::max(d->batchA[i], d->batchB[i]);
    if (d->batchA[i] == 0 || d->batchB[i] == 0) d->batch[i] = 0;
  }
  d->nbA = product(d->batchA, d->rank);
  d->nbB = product(d->batchB, d->rank);
  d->nb = product(d->batch, d->rank);
  return true;
}

StridedMatrix matrixB(const float* b, const MatMulDims& d) { return {b, d.N, 1}; }

Layout matmulLayout(const GemmConfig& c, const MatMulDims& d, bool packed, bool strassen = false) {
  Layout l;
  if (strassen) {
    l.shared = roundUp(strassenSharedFloats(d.nbA * d.M, d.K, d.N), 16);
    l.slot = roundUp(strassenSlotFloats(c, d.K), 16);
    return l;
  }
  l.slot = gemmPackedBSlotFloats(c, d.K);
  if (!packed) {
    const int64_t bFloats = roundUp(packedBFloats(c, d.K, d.N), 16);
    l.shared = bFloats;
    if (d.nbB > 1) l.slot += bFloats;  // batches in parallel each pack their own B
  }
  return l;
}

bool supportsMatMul(const ir::Node&, const std::vector<ir::TensorType>& in) {
  return in.size() >= 2 && isF32(in[0]) && isF32(in[1]) && rankIs(in[0], 1, runtime::kMaxRank) &&
         rankIs(in[1], 1, runtime::kMaxRank);
}

bool supportsFusedMatMul(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsMatMul(n, in) || !fusedEpilogueSupported(n, in)) return false;
  return absent(in, 2) || (isF32(in[2]) && rankIs(in[2], 1, 1));
}

// The Strassen kernels (gemm_strassen.h) serve products with a constant weight of depth and
// width where one level pays and enough rows at the opt shapes for the halves to fill
// register tiles (GemmStrassenBench, one thread, AVX-512 14x32, M x N x K: 128 x 3072 x 768
// 0.88x the plain kernel, 128 x 768 x 256 0.95x, 49 x 3072 x 768 0.91x; no gain at K = 192
// (197 x 768 x 192 0.99x) nor at N = 192 (784 x 192 x 768 1.00x), a loss at K or N = 96).
constexpr int64_t kStrassenMinK = 256, kStrassenMinN = 256, kStrassenMinRows = 32;

bool strassenShapes(int64_t rows, int64_t K, int64_t N) {
  return rows >= kStrassenMinRows && K >= kStrassenMinK && N >= kStrassenMinN;
}

void prepareMatMul(GemmIsa isa, bool fused, const PrepareInfo& info, Prepared* out, bool strassen = false) {
  LinearParams p;
  p.op = LinOp::kMatMul;
  p.isa = isa;
  p.tasks = preparedSlots(info);
  p.fixedTasks = info.tasks;
  if (fused) readFused(info, &p);
  const GemmConfig& c = gemmConfig(isa);
  const std::vector<int64_t> ad = staticExtents(info, 0, "A"), bd = staticExtents(info, 1, "B");
  MatMulDims d;
  ANVIL_CHECK(matmulDims(ad.data(), int(ad.size()), bd.data(), int(bd.size()), &d), ErrorCode::kInvalidModel,
              info.node->label(), ": MatMul operands do not match");
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  if (strassen) {
    MatMulDims o;
    const std::vector<int64_t> oa = info.optTypes[0].shape.isStatic() ? info.optTypes[0].shape.extents() : ad;
    ANVIL_CHECK(w && d.nbB == 1 && matmulDims(oa.data(), int(oa.size()), bd.data(), int(bd.size()), &o) &&
                    strassenShapes(o.nbA * o.M, d.K, d.N),
                ErrorCode::kUnsupported, info.node->label(),
                ": Strassen needs one constant B, K >= ", kStrassenMinK, ", N >= ", kStrassenMinN, " and ",
                kStrassenMinRows, " rows");
    p.strassen = 1;
  }
  if (w && d.nbB == 1) {  // one constant B for every batch: pack it once (Strassen: its 7 operands)
    p.packed = 1;
    p.wK = d.K;
    p.wN = d.N;
    const StridedMatrix B = matrixB(w->data<float>(), d);
    std::string blob(size_t(p.strassen ? strassenPackedBFloats(c, d.K, d.N) : packedBFloats(c, d.K, d.N)) * sizeof(float),
                     '\0');
    if (p.strassen)
      strassenPackB(c, d.K, d.N, B, reinterpret_cast<float*>(blob.data()));
    else
      packBPanels(c, d.K, d.N, B, 0, ceilDiv(d.N, c.nr), reinterpret_cast<float*>(blob.data()));
    out->blobs.push_back(std::move(blob));
    out->packedInputs.push_back(1);
  }
  out->workspaceBytes = uint64_t(matmulLayout(c, d, p.packed, p.strassen).total(p.tasks)) * sizeof(float);
  out->setParams(p);
}

// Packs all of B's panels into dst, split over the executor.
void packBParallel(const GemmConfig& c, int64_t K, int64_t N, StridedMatrix B, float* dst, runtime::Executor* ex,
                   int tasks) {
  const int64_t panels = ceilDiv(N, c.nr), n = std::min<int64_t>(tasks, panels);
  auto pack = [&](int64_t t) { packBPanels(c, K, N, B, rangeBegin(panels, t, n), rangeBegin(panels, t + 1, n), dst); };
  if (ex && n > 1)
    ex->parallelFor(n, pack);
  else
    for (int64_t t = 0; t < n; ++t) pack(t);
}

void runMatMul(const StepArgs& a) {
  const LinearParams& p = a.paramsAs<LinearParams>();
  const GemmConfig& c = gemmConfig(p.isa);
  const TensorView &A = a.in(0), &B = a.in(1);
  TensorView& Y = a.out(0);
  MatMulDims d;
  if (!matmulDims(A.dims, A.rank, B.dims, B.rank, &d)) a.fail("MatMul operands do not match");
  if (p.packed && (d.K != p.wK || d.N != p.wN || d.nbB != 1)) a.fail("B differs from the prepared weight");
  if (Y.numel() == 0) return;
  const int T = tasksOf(a, p, 2.0 * double(Y.numel()) * double(d.K));
  const Layout l = matmulLayout(c, d, p.packed, p.strassen);
  float* ws = workspace(a, l, T);
  const TaskSlots slots{ws + l.shared, l.slot, T};
  const float* ap = A.as<float>();
  float* yp = Y.as<float>();
  // FusedMatMul: bias [N] (or one value) per column, then the epilogue.
  const float* bias = nullptr;
  float rowBias = 0.0f;
  if (p.fused && a.hasInput(2)) {
    const TensorView& bv = a.in(2);
    if (bv.numel() == d.N) bias = bv.as<float>();
    else if (bv.numel() == 1) rowBias = bv.as<float>()[0];
    else a.fail("bias must have N values or one");
  }
  const float* zp = residualOf(a, p);
  const Epilogue epi = p.epi.get();
  const EpilogueRow row = epilogueRow(epi);
  const bool hasEpilogue = p.fused && (bias || rowBias != 0.0f || zp || epi.act != Activation::kNone);
  const int64_t N = d.N, M = d.M, K = d.K;
  // The epilogue in the register tiles of the last K block (gemmPackedBFused) rather than a
  // second pass over each finished block; the pass remains for the small-M kernels and the
  // portable family. The same bits either way.
  const bool tiled = hasEpilogue && K > 0 && gemmPackedAFusedSupports(c);
  TileEpilogue tile;
  if (tiled) {
    tile.act = int32_t(epi.act);
    tile.p0 = epi.p0;
    tile.p1 = epi.p1;
    tile.addFirst = epi.addFirst;
    tile.rowBias = rowBias;
    tile.colBias = bias;
  }
  auto product = [&](int64_t m, const float* a0, const float* b0, float* y0, const float* z0, runtime::Executor* ex,
                     const TaskSlots& s, const BlockEpilogue* ep) {
    if (!tiled) return gemmPackedB(c, m, N, K, 1.0f, {a0, K, 1}, b0, y0, N, ex, s, ep);
    TileEpilogue te = tile;
    te.z = z0;
    gemmPackedBFused(c, m, N, K, 1.0f, {a0, K, 1}, b0, y0, N, ex, s, ep, te);
  };
  // The epilogue of a product whose Z (same layout as its C) starts at zBase.
  auto epilogueFor = [&](const float* zBase) {
    return [&epi, row, zBase, bias, rowBias, N](int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* cp,
                                                int64_t ldc) {
      for (int64_t r = 0; r < rows; ++r)
        row(epi, cp + r * ldc, zBase ? zBase + (i0 + r) * N + j0 : nullptr, bias ? bias + j0 : nullptr, rowBias, cols);
    };
  };
  if (p.strassen) {  // every batch of A folded into the rows, the epilogue after the last contribution
    auto ep = epilogueFor(zp);
    const BlockEpilogue epRef(ep);
    gemmStrassen(c, d.nbA * M, N, K, 1.0f, {ap, K, 1}, a.blobs[0].as<float>(), yp, N, ws, a.executor, slots,
                 hasEpilogue ? &epRef : nullptr);
    return;
  }
  if (d.nbB == 1) {  // one B: fold every batch of A into the rows
    const float* bp;
    if (p.packed) {
      bp = a.blobs[0].as<float>();
    } else {
      packBParallel(c, K, N, matrixB(B.as<float>(), d), ws, a.executor, T);
      bp = ws;
    }
    auto ep = epilogueFor(zp);
    const BlockEpilogue epRef(ep);
    product(d.nbA * M, ap, bp, yp, zp, a.executor, slots, hasEpilogue ? &epRef : nullptr);
    return;
  }
  // Broadcast strides (in matrices) of A's and B's batch dims against the output batch.
  int64_t sa[runtime::kMaxRank], sb[runtime::kMaxRank];
  int64_t pa = 1, pb = 1;
  for (int i = d.rank - 1; i >= 0; --i) {
    sa[i] = d.batchA[i] == 1 ? 0 : pa;
    sb[i] = d.batchB[i] == 1 ? 0 : pb;
    pa *= d.batchA[i];
    pb *= d.batchB[i];
  }
  auto offsets = [&](int64_t bi, int64_t* oa, int64_t* ob) {
    *oa = *ob = 0;
    for (int i = d.rank - 1; i >= 0; --i) {
      const int64_t idx = bi % d.batch[i];
      bi /= d.batch[i];
      *oa += idx * sa[i];
      *ob += idx * sb[i];
    }
  };
  const int64_t bFloats = roundUp(packedBFloats(c, K, N), 16);
  auto one = [&](int64_t bi, float* bBuf, runtime::Executor* ex, const TaskSlots& s) {
    int64_t oa, ob;
    offsets(bi, &oa, &ob);
    packBParallel(c, K, N, matrixB(B.as<float>() + ob * K * N, d), bBuf, ex, s.tasks);
    float* yb = yp + bi * M * N;
    auto ep = epilogueFor(zp ? zp + bi * M * N : nullptr);
    const BlockEpilogue epRef(ep);
    product(M, ap + oa * M * K, bBuf, yb, zp ? zp + bi * M * N : nullptr, ex, s, hasEpilogue ? &epRef : nullptr);
  };
  if (d.nb >= 2 * T) {  // many small products: a range of batches per task, each serial
    const int64_t n = std::min<int64_t>(T, d.nb);
    a.executor->parallelFor(n, [&](int64_t t) {
      float* slot = slots.slot(t);
      const TaskSlots own{slot, l.slot, 1};
      for (int64_t bi = rangeBegin(d.nb, t, n); bi < rangeBegin(d.nb, t + 1, n); ++bi)
        one(bi, slot + (l.slot - bFloats), nullptr, own);
    });
  } else {
    for (int64_t bi = 0; bi < d.nb; ++bi) one(bi, ws, a.executor, slots);
  }
}

// ---------------------------------------------------------------------------------------
// Gemm / FusedGemm: Y = alpha * op(A) op(B) + beta * C, then the epilogue.

bool supportsGemm(const ir::Node&, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !rankIs(in[0], 2, 2) || !rankIs(in[1], 2, 2)) return false;
  return absent(in, 2) || (isF32(in[2]) && rankIs(in[2], 0, 2));
}

bool supportsFusedGemm(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsGemm(n, in) && fusedEpilogueSupported(n, in);
}

Layout gemmLayout(const GemmConfig& c, int64_t K, int64_t N, bool packed, bool strassen = false, int64_t M = 0) {
  Layout l;
  if (strassen) {
    l.shared = roundUp(strassenSharedFloats(M, K, N), 16);
    l.slot = roundUp(strassenSlotFloats(c, K), 16);
    return l;
  }
  l.slot = gemmPackedBSlotFloats(c, K);
  if (!packed) l.shared = roundUp(packedBFloats(c, K, N), 16);
  return l;
}

void prepareGemm(GemmIsa isa, bool fused, const PrepareInfo& info, Prepared* out, bool strassen = false) {
  LinearParams p;
  p.op = LinOp::kGemm;
  p.isa = isa;
  p.tasks = preparedSlots(info);
  p.fixedTasks = info.tasks;
  if (fused) readFused(info, &p);
  const ir::Attributes& at = info.node->attrs();
  p.transA = at.getInt("transA", 0) != 0;
  p.transB = at.getInt("transB", 0) != 0;
  p.alpha = at.getFloat("alpha", 1.0f);
  p.beta = at.getFloat("beta", 1.0f);
  const GemmConfig& c = gemmConfig(isa);
  const std::vector<int64_t> bd = staticExtents(info, 1, "B");
  const int64_t K = p.transB ? bd[1] : bd[0], N = p.transB ? bd[0] : bd[1];
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  int64_t maxM = 0;
  if (strassen) {
    const std::vector<int64_t> ad = staticExtents(info, 0, "A");
    const bool optKnown = info.optTypes[0].shape.isStatic();
    const int64_t optM = optKnown ? info.optTypes[0].shape.extents()[p.transA ? 1 : 0] : 0;
    maxM = ad[p.transA ? 1 : 0];
    ANVIL_CHECK(w && !p.transA && strassenShapes(optM, K, N), ErrorCode::kUnsupported, info.node->label(),
                ": Strassen needs a constant B, transA = 0, K >= ", kStrassenMinK, ", N >= ", kStrassenMinN, " and ",
                kStrassenMinRows, " rows");
    p.strassen = 1;
  }
  if (w) {
    p.packed = 1;
    p.wK = K;
    p.wN = N;
    const StridedMatrix B = p.transB ? StridedMatrix{w->data<float>(), 1, K} : StridedMatrix{w->data<float>(), N, 1};
    std::string blob(size_t(p.strassen ? strassenPackedBFloats(c, K, N) : packedBFloats(c, K, N)) * sizeof(float), '\0');
    if (p.strassen)
      strassenPackB(c, K, N, B, reinterpret_cast<float*>(blob.data()));
    else
      packBPanels(c, K, N, B, 0, ceilDiv(N, c.nr), reinterpret_cast<float*>(blob.data()));
    out->blobs.push_back(std::move(blob));
    out->packedInputs.push_back(1);
  }
  out->workspaceBytes = uint64_t(gemmLayout(c, K, N, p.packed, p.strassen, maxM).total(p.tasks)) * sizeof(float);
  out->setParams(p);
}

void runGemm(const StepArgs& a) {
  const LinearParams& p = a.paramsAs<LinearParams>();
  const GemmConfig& c = gemmConfig(p.isa);
  const TensorView &A = a.in(0), &B = a.in(1);
  if (A.rank != 2 || B.rank != 2) a.fail("Gemm operands must be 2-D");
  const int64_t M = p.transA ? A.dims[1] : A.dims[0], K = p.transA ? A.dims[0] : A.dims[1];
  const int64_t N = p.transB ? B.dims[0] : B.dims[1], Kb = p.transB ? B.dims[1] : B.dims[0];
  if (K != Kb) a.fail("Gemm inner dimensions differ");
  if (p.packed && (K != p.wK || N != p.wN)) a.fail("B differs from the prepared weight");
  float* yp = a.out(0).as<float>();
  if (M == 0 || N == 0) return;
  const int T = tasksOf(a, p, 2.0 * double(M) * double(N) * double(K));
  const Layout l = gemmLayout(c, K, N, p.packed, p.strassen, M);
  float* ws = workspace(a, l, T);
  const TaskSlots slots{ws + l.shared, l.slot, T};
  const float* bp;
  if (p.packed) {
    bp = a.blobs[0].as<float>();
  } else {
    const StridedMatrix Bm = p.transB ? StridedMatrix{B.as<float>(), 1, K} : StridedMatrix{B.as<float>(), N, 1};
    packBParallel(c, K, N, Bm, ws, a.executor, T);
    bp = ws;
  }
  const GemmC gc = gemmCOf(a, M, N);
  const float* cp = gc.data;
  const int64_t rsC = gc.rowStride, csC = gc.colStride;
  const float* zp = residualOf(a, p);
  const Epilogue epi = p.epi.get();
  const EpilogueRow row = epilogueRow(epi);
  const bool act = p.fused && (zp || epi.act != Activation::kNone);
  const float beta = p.beta;
  auto ep = [&](int64_t i0, int64_t rows, int64_t j0, int64_t cols, float* y, int64_t ldc) {
    for (int64_t r = 0; r < rows; ++r) {
      float* yr = y + r * ldc;
      if (cp) {
        const float* cr = cp + (i0 + r) * rsC + j0 * csC;
        for (int64_t j = 0; j < cols; ++j) yr[j] += beta * cr[j * csC];
      }
      if (act) row(epi, yr, zp ? zp + (i0 + r) * N + j0 : nullptr, nullptr, 0.0f, cols);
    }
  };
  const BlockEpilogue epRef(ep);
  const StridedMatrix Am = p.transA ? StridedMatrix{A.as<float>(), 1, M} : StridedMatrix{A.as<float>(), K, 1};
  if (p.strassen) {  // beta * C and the epilogue after each block's last contribution
    gemmStrassen(c, M, N, K, p.alpha, Am, bp, yp, N, ws, a.executor, slots, cp || act ? &epRef : nullptr);
    return;
  }
  // In the register tiles (as runMatMul) when C is absent or one row added as it is (beta 1:
  // y + 1 * c is y + c, and (y + c) + 0 is (y + 0) + c, the tile's order, for every y and c);
  // other Cs keep the pass, which adds beta * C first.
  if ((cp || act) && K > 0 && gemmPackedAFusedSupports(c) && (!cp || gemmCIsColumnBias(gc, beta))) {
    TileEpilogue te;
    te.act = act ? int32_t(epi.act) : TileEpilogue::kNone;
    te.p0 = epi.p0;
    te.p1 = epi.p1;
    te.addFirst = epi.addFirst;
    te.colBias = cp;
    te.z = act ? zp : nullptr;
    // The pass adds 0 (epilogueRow's row bias) only with an activation; -0 adds nothing, so
    // that -0 + -0 stays -0 as in y + c.
    te.rowBias = act ? 0.0f : -0.0f;
    gemmPackedBFused(c, M, N, K, p.alpha, Am, bp, yp, N, a.executor, slots, &epRef, te);
    return;
  }
  gemmPackedB(c, M, N, K, p.alpha, Am, bp, yp, N, a.executor, slots, cp || act ? &epRef : nullptr);
}

// ---------------------------------------------------------------------------------------
// The splits the builder times (task_split.h), from the profile's opt shapes

bool optStatic(const PrepareInfo& info) {
  return info.optTypes.size() >= 2 && info.optTypes[0].shape.isStatic() && info.optTypes[1].shape.isStatic();
}

std::vector<int> matmulTaskSplits(const PrepareInfo& info) {
  if (!optStatic(info)) return {};
  const std::vector<int64_t> ad = info.optTypes[0].shape.extents(), bd = info.optTypes[1].shape.extents();
  MatMulDims d;
  if (!matmulDims(ad.data(), int(ad.size()), bd.data(), int(bd.size()), &d)) return {};
  return splitsToTime(2.0 * double(d.nb) * double(d.M) * double(d.N) * double(d.K), info.threads);
}

std::vector<int> gemmTaskSplits(const PrepareInfo& info) {
  if (!optStatic(info)) return {};
  const std::vector<int64_t> ad = info.optTypes[0].shape.extents(), bd = info.optTypes[1].shape.extents();
  if (ad.size() != 2 || bd.size() != 2) return {};
  const bool transA = info.node->attrs().getInt("transA", 0) != 0, transB = info.node->attrs().getInt("transB", 0) != 0;
  const double M = double(transA ? ad[1] : ad[0]), K = double(transA ? ad[0] : ad[1]), N = double(transB ? bd[0] : bd[1]);
  return splitsToTime(2.0 * M * N * K, info.threads);
}

// ---------------------------------------------------------------------------------------
// Conv / FusedConv (2-D)

// Decodes the Conv attributes against the filter extents w; false when not a valid 2-D Conv.
bool convAttrs(const ir::Node& n, const ir::Shape& w, ConvAttrs* a) {
  if (!w.rankKnown() || w.rank() != 4 || !w[2].isStatic() || !w[3].isStatic()) return false;
  const ir::Attributes& at = n.attrs();
  a->group = at.getInt("group", 1);
  a->kH = w[2].value();
  a->kW = w[3].value();
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {a->kH, a->kW});
  if (ks.size() != 2 || ks[0] != a->kH || ks[1] != a->kW) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || d.size() != 2 || s[0] <= 0 || s[1] <= 0 || d[0] <= 0 || d[1] <= 0) return false;
  a->sH = s[0], a->sW = s[1], a->dH = d[0], a->dW = d[1];
  if (!decodeConvPads(at, a)) return false;
  return a->group >= 1;
}

bool supportsConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1]) || !rankIs(in[0], 4, 4) || !rankIs(in[1], 4, 4)) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !rankIs(in[2], 1, 1))) return false;
  ConvAttrs a;
  return convAttrs(n, in[1].shape, &a);
}

// Items as runConv spreads them: (image, group, column panel of pixels).
std::vector<int> convTaskSplits(GemmIsa isa, const PrepareInfo& info) {
  ConvAttrs a;
  if (info.maxTypes.size() < 2 || !convAttrs(*info.node, info.maxTypes[1].shape, &a)) return {};
  const int64_t nr = gemmConfig(isa).nr;
  return convSplitsToTime(a, info, [nr](const Conv2dGeom& g) { return g.N * g.G * ceilDiv(g.OH * g.OW, nr); });
}

// One input channel per group (W[:,1] == 1) and group == C (a static channel count).
bool supportsDepthwise(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsConv(n, in)) return false;
  const ir::Shape& x = in[0].shape;
  const ir::Shape& w = in[1].shape;
  const int64_t group = n.attrs().getInt("group", 1);
  return w[1].isStatic() && w[1].value() == 1 && x[1].isStatic() && x[1].value() == group;
}

bool supportsFusedConv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsConv(n, in) && fusedEpilogueSupported(n, in);
}
bool supportsFusedDepthwise(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  return supportsDepthwise(n, in) && fusedEpilogueSupported(n, in);
}

bool pointwise(const Conv2dGeom& g) {
  return g.kH == 1 && g.kW == 1 && g.sH == 1 && g.sW == 1 && g.pt == 0 && g.pl == 0 && g.pb == 0 && g.pr == 0;
}

Layout convLayout(const GemmConfig& c, const Conv2dGeom& g, bool depthwise, bool packed) {
  Layout l;
  if (depthwise) {
    l.slot = roundUp(depthwisePaddedFloats(g), 16);
    return l;
  }
  const int64_t K = g.Cg * g.kH * g.kW;
  l.slot = roundUp(gemmPackedASlotFloats(c, Im2colPacker::scratchFloats(c.kc, c.nc, c.nr)), 16);
  if (!packed) l.shared = roundUp(g.G * packedAFloats(c, g.Mg, K), 16);
  return l;
}

void prepareConv(GemmIsa isa, bool depthwise, bool fused, const PrepareInfo& info, Prepared* out) {
  LinearParams p;
  p.op = depthwise ? LinOp::kDepthwise : LinOp::kConv;
  p.isa = isa;
  p.tasks = preparedSlots(info);
  p.fixedTasks = info.tasks;
  if (fused) readFused(info, &p);
  ANVIL_CHECK(convAttrs(*info.node, info.maxTypes[1].shape, &p.conv), ErrorCode::kInvalidModel, info.node->label(),
              ": not a 2-D Conv this kernel handles");
  const GemmConfig& c = gemmConfig(isa);
  const std::vector<int64_t> xd = staticExtents(info, 0, "X"), wd = staticExtents(info, 1, "W");
  Conv2dGeom g;
  ANVIL_CHECK(conv2dGeometry(p.conv, xd.data(), wd[0], &g) && wd[1] == g.Cg, ErrorCode::kInvalidModel,
              info.node->label(), ": X ", info.maxTypes[0].str(), " and W ", info.maxTypes[1].str(),
              " do not fit the Conv attributes");
  const int64_t K = g.Cg * g.kH * g.kW;
  p.wM = g.Mg;
  p.wK = K;
  if (const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr) {
    p.packed = 1;
    std::string blob;
    if (depthwise) {  // the direct kernel reads the filter as it is
      blob.assign(static_cast<const char*>(w->raw()), size_t(w->numel()) * sizeof(float));
    } else {  // per group: the filter as A panels [Mg x K]
      const int64_t per = packedAFloats(c, g.Mg, K);
      blob.assign(size_t(g.G * per) * sizeof(float), '\0');
      auto* dst = reinterpret_cast<float*>(blob.data());
      for (int64_t grp = 0; grp < g.G; ++grp)
        packAPanels(c, g.Mg, K, {w->data<float>() + grp * g.Mg * K, K, 1}, 1.0f, 0, ceilDiv(g.Mg, c.mr),
                    dst + grp * per);
    }
    out->blobs.push_back(std::move(blob));
    out->packedInputs.push_back(1);
  }
  out->workspaceBytes = uint64_t(convLayout(c, g, depthwise, p.packed).total(p.tasks)) * sizeof(float);
  out->setParams(p);
}

void runConv(const StepArgs& a) {
  const LinearParams& p = a.paramsAs<LinearParams>();
  const GemmConfig& c = gemmConfig(p.isa);
  const TensorView &X = a.in(0), &W = a.in(1);
  TensorView& Y = a.out(0);
  if (X.rank != 4) a.fail("this kernel handles 2-D Conv (rank-4 X) only");
  const int64_t M = p.packed ? p.wM * p.conv.group : W.dims[0];
  Conv2dGeom g;
  if (!conv2dGeometry(p.conv, X.dims, M, &g)) a.fail("X does not fit the Conv attributes");
  const int64_t K = g.Cg * g.kH * g.kW, P = g.OH * g.OW;
  if (p.packed ? (g.Mg != p.wM || K != p.wK) : (W.rank != 4 || W.dims[1] != g.Cg))
    a.fail("W does not fit X and the Conv attributes");
  if (Y.rank != 4 || Y.dims[0] != g.N || Y.dims[1] != g.M || Y.dims[2] != g.OH || Y.dims[3] != g.OW)
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  const bool depthwise = p.op == LinOp::kDepthwise;
  const int T = tasksOf(a, p, 2.0 * double(Y.numel()) * double(K));
  const Layout l = convLayout(c, g, depthwise, p.packed);
  float* ws = workspace(a, l, T);
  const TaskSlots slots{ws + l.shared, l.slot, T};
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != g.M) a.fail("B must have one value per output channel");
    bias = a.in(2).as<float>();
  }
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const float* zp = residualOf(a, p);
  const Epilogue epi = p.epi.get();
  const EpilogueRow row = epilogueRow(epi);
  static constexpr Epilogue kNoEpilogue{};
  const EpilogueRow biasRow = epilogueRow(kNoEpilogue);
  const bool act = p.fused && (zp || epi.act != Activation::kNone);

  if (depthwise) {
    const float* wp = p.packed ? a.blobs[0].as<float>() : W.as<float>();
    const int64_t planes = g.N * g.M, n = std::min<int64_t>(T, planes);
    a.executor->parallelFor(n, [&](int64_t t) {
      float* padded = slots.slot(t);
      for (int64_t pl = rangeBegin(planes, t, n); pl < rangeBegin(planes, t + 1, n); ++pl) {
        const int64_t img = pl / g.M, m = pl % g.M, ch = m / g.Mg;
        float* ym = yp + pl * P;
        depthwisePlaneAvx2(xp + (img * g.C + ch) * g.H * g.W, wp + m * g.kH * g.kW, bias ? bias[m] : 0.0f, ym, g,
                           padded);
        if (act) row(epi, ym, zp ? zp + pl * P : nullptr, nullptr, 0.0f, P);
      }
    });
    return;
  }

  const int64_t perGroup = packedAFloats(c, g.Mg, K);
  const float* ap;
  if (p.packed) {
    ap = a.blobs[0].as<float>();
  } else {  // a filter computed at run time: pack it into the shared region
    const float* wp = W.as<float>();
    const int64_t panels = ceilDiv(g.Mg, c.mr);
    a.executor->parallelFor(g.G, [&](int64_t grp) {
      packAPanels(c, g.Mg, K, {wp + grp * g.Mg * K, K, 1}, 1.0f, 0, panels, ws + grp * perGroup);
    });
    ap = ws;
  }
  // Work items: (image, group, range of column panels), panels spread evenly over the
  // ranges; at least two items per task where the shape allows, and while items are few a
  // multiple of the task count, so that every task gets the same work.
  const int64_t units = g.N * g.G, colPanels = ceilDiv(P, c.nr);
  int64_t chunks = std::min(colPanels, std::max(ceilDiv(P, c.nc), ceilDiv(2 * T, units)));
  if (units * chunks < 8 * T)
    for (int64_t more = chunks; more <= std::min(colPanels, chunks + T); ++more)
      if ((units * more) % T == 0) {
        chunks = more;
        break;
      }
  const int64_t items = units * chunks, n = std::min<int64_t>(T, items);
  const bool pw = pointwise(g);
  const bool hasEpilogue = bias || act;
  // An activation the tile kernels apply in registers: the epilogue runs on each register
  // tile of the last K block before its store (gemmPackedAFused) instead of in a second pass
  // over the finished M x nc block. On the dev box, one thread, one layer alone (median ms,
  // before -> after): ResNet-50 layer1 conv3 (64 -> 256 @56x56, bias + residual + ReLU)
  // 0.97-1.03 -> 0.80-0.82, layer2 conv3 (128 -> 512 @28x28) 0.81-0.87 -> 0.72-0.73,
  // MobileNetV2 expand 16 -> 96 @112x112 (bias) 0.51 -> 0.36-0.37.
  // Only for images of 256 pixels and more: below, on 14x14 and 7x7 maps, the builder (hot
  // caches) timed this path ahead of f32_conv2d_rows, which is the faster one in the model
  // (ResNet-50 layer3 conv3, 256 -> 1024 @14x14: 0.83-0.88 ms rows, 0.93-0.96 this path;
  // MobileNetV2 features.18, 320 -> 1280 @7x7: 0.37 vs 0.52).
  TileEpilogue tile;
  bool tiled = hasEpilogue && K > 0 && P >= 256 && gemmPackedAFusedSupports(c);
  if (tiled) {
    tile.act = act ? int32_t(epi.act) : TileEpilogue::kNone;  // every activation (GELU, Tanh, ... too)
    tile.p0 = epi.p0;
    tile.p1 = epi.p1;
    tile.addFirst = epi.addFirst;
  }
  a.executor->parallelFor(n, [&](int64_t t) {
    float* slot = slots.slot(t);
    for (int64_t it = rangeBegin(items, t, n); it < rangeBegin(items, t + 1, n); ++it) {
      const int64_t u = it / chunks, img = u / g.G, grp = u % g.G, ch = it % chunks;
      const int64_t j0 = rangeBegin(colPanels, ch, chunks) * c.nr;
      const int64_t j1 = std::min(P, rangeBegin(colPanels, ch + 1, chunks) * c.nr);
      if (j0 >= j1) continue;
      const int64_t m0 = grp * g.Mg;
      float* yg = yp + (img * g.M + m0) * P;
      const float* xg = xp + (img * g.C + grp * g.Cg) * g.H * g.W;
      auto ep = [&](int64_t i0, int64_t rows, int64_t jb, int64_t cols, float* y, int64_t ldy) {
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t m = m0 + i0 + r;
          const float* z = zp ? zp + (img * g.M + m) * P + jb : nullptr;
          if (act) {
            row(epi, y + r * ldy, z, nullptr, bias ? bias[m] : 0.0f, cols);
          } else {
            // The vector row without activation: the same single add per element as a
            // scalar loop (which -O2 leaves unvectorized: a bias-only 1x1 Conv with 16
            // input channels spent as long adding the bias as in the GEMM).
            biasRow(kNoEpilogue, y + r * ldy, nullptr, nullptr, bias[m], cols);
          }
        }
      };
      const BlockEpilogue epRef(ep);
      const float* apg = ap + grp * perGroup;
      if (tiled) {
        TileEpilogue te = tile;
        te.bias = bias ? bias + m0 : nullptr;
        te.z = zp && act ? zp + (img * g.M + m0) * P : nullptr;
        if (pw) {
          const StridedBPacker packer({xg, P, 1});
          gemmPackedAFused(c, g.Mg, K, apg, packer, j0, j1, yg, P, slot, te);
        } else {
          const Im2colPacker packer(xg, g, xp, xp + X.numel());
          gemmPackedAFused(c, g.Mg, K, apg, packer, j0, j1, yg, P, slot, te);
        }
      } else if (pw) {
        const StridedBPacker packer({xg, P, 1});
        gemmPackedA(c, g.Mg, K, apg, packer, j0, j1, yg, P, slot, hasEpilogue ? &epRef : nullptr);
      } else {
        const Im2colPacker packer(xg, g, xp, xp + X.numel());
        gemmPackedA(c, g.Mg, K, apg, packer, j0, j1, yg, P, slot, hasEpilogue ? &epRef : nullptr);
      }
    }
  });
}

// ---------------------------------------------------------------------------------------
// Registration

struct Variant {
  GemmIsa isa;
  const char* tile;  // "4x8"
  const char* suffix;  // "" or "__avx2"
  std::vector<std::string> requirements;
  int version;
};

std::string kernelName(const char* base, const Variant& v, bool fused) {
  return std::string(base) + "_" + v.tile + (fused ? "_epilogue" : "") + v.suffix;
}

Kernel makeKernel(std::string name, const char* op, const char* domain, std::vector<std::string> req,
                  runtime::SupportsFn supports, runtime::PrepareFn prepare, runtime::RunFn run, int version = 2,
                  runtime::TaskSplitsFn splits = nullptr) {
  Kernel k;
  k.name = std::move(name);
  k.version = version;
  k.op = op;
  k.domain = domain;
  k.precision = DataType::kF32;
  k.requirements = std::move(req);
  k.supports = std::move(supports);
  k.prepare = std::move(prepare);
  k.run = std::move(run);
  k.taskSplits = std::move(splits);
  return k;
}

}  // namespace

}  // namespace anvil::cpu::tactics

namespace anvil::runtime {

void registerNativeLinearKernels(Kernels& k) {
  using namespace anvil::cpu::tactics;
  // Versions: 2 for the first three (K blocks split K evenly, AVX-512 ones up to 256:
  // packed layouts, numerics); the 8x32 family, for few rows (1x1 Conv with 16..32 output
  // channels), is timed against 14x32 by the builder and starts at 1. The fused
  // (_epilogue) kernels are one higher: their Tanh/GELU moved from libm to the vector
  // polynomials of cpu/tactics/vmath.h, and Sigmoid/Silu to that file's exp. The Conv
  // kernels add one more: from 256 pixels they apply the epilogue in the register tiles
  // (same bits, much faster on large images), so timings cached for the old ones are stale.
  // The fused ones one more again: GELU as 2^-polynomial (cpu/tactics/vmath.h) and every
  // activation in the register tiles, MatMul/Gemm included.
  // And one more: Sigmoid/Silu/Tanh through expNarrow's degree-5 polynomial (vmath.h).
  const Variant variants[] = {{GemmIsa::kPortable4x8, "4x8", "", {}, 2},
                              {GemmIsa::kAvx2_6x16, "6x16", "__avx2", {"avx2", "fma"}, 2},
                              {GemmIsa::kAvx512_14x32, "14x32", "__avx512", {"avx512f"}, 2},
                              {GemmIsa::kAvx512_8x32, "8x32", "__avx512", {"avx512f"}, 1}};
  for (const Variant& v : variants) {
    const GemmIsa isa = v.isa;
    for (bool fused : {false, true}) {
      k.add(makeKernel(kernelName("f32_gemm_prepacked", v, fused), fused ? "FusedMatMul" : "MatMul",
                       fused ? "anvil" : "", v.requirements, fused ? supportsFusedMatMul : supportsMatMul,
                       [isa, fused](const PrepareInfo& i, Prepared* o) { prepareMatMul(isa, fused, i, o); }, runMatMul,
                       v.version + (fused ? 3 : 0), matmulTaskSplits));
      k.add(makeKernel(kernelName("f32_gemm_prepacked", v, fused), fused ? "FusedGemm" : "Gemm", fused ? "anvil" : "",
                       v.requirements, fused ? supportsFusedGemm : supportsGemm,
                       [isa, fused](const PrepareInfo& i, Prepared* o) { prepareGemm(isa, fused, i, o); }, runGemm,
                       v.version + (fused ? 3 : 0), gemmTaskSplits));
      k.add(makeKernel(kernelName("f32_conv2d_prepacked", v, fused), fused ? "FusedConv" : "Conv", fused ? "anvil" : "",
                       v.requirements, fused ? supportsFusedConv : supportsConv,
                       [isa, fused](const PrepareInfo& i, Prepared* o) { prepareConv(isa, false, fused, i, o); },
                       runConv, v.version + (fused ? 3 : 0) + 1,
                       [isa](const PrepareInfo& i) { return convTaskSplits(isa, i); }));
    }
  }
  // One level of Strassen (gemm_strassen.h) for MatMul / Gemm with a constant weight, on the
  // vector families: 7/8 of the multiply-adds, a normwise error bound; Kernel::strassen
  // lets BuilderConfig::strassen (--noStrassen) leave them out.
  for (const Variant& v : variants) {
    if (v.isa == GemmIsa::kPortable4x8) continue;
    const GemmIsa isa = v.isa;
    for (bool fused : {false, true}) {
      const std::string name = kernelName("f32_gemm_strassen", v, fused);
      auto mm = [](bool f) {
        return [f](const ir::Node& n, const std::vector<ir::TensorType>& in) {
          if (!(f ? supportsFusedMatMul(n, in) : supportsMatMul(n, in)) || !in[1].shape.isStatic()) return false;
          const std::vector<int64_t> b = in[1].shape.extents();
          return b.size() >= 2 && b[b.size() - 2] >= kStrassenMinK && b.back() >= kStrassenMinN;
        };
      };
      auto gm = [](bool f) {
        return [f](const ir::Node& n, const std::vector<ir::TensorType>& in) {
          if (!(f ? supportsFusedGemm(n, in) : supportsGemm(n, in)) || !in[1].shape.isStatic()) return false;
          if (n.attrs().getInt("transA", 0) != 0) return false;
          const std::vector<int64_t> b = in[1].shape.extents();
          const bool tb = n.attrs().getInt("transB", 0) != 0;
          return (tb ? b[1] : b[0]) >= kStrassenMinK && (tb ? b[0] : b[1]) >= kStrassenMinN;
        };
      };
      Kernel km = makeKernel(name, fused ? "FusedMatMul" : "MatMul", fused ? "anvil" : "", v.requirements, mm(fused),
                             [isa, fused](const PrepareInfo& i, Prepared* o) { prepareMatMul(isa, fused, i, o, true); },
                             runMatMul, 1, matmulTaskSplits);
      km.strassen = true;
      k.add(std::move(km));
      Kernel kg = makeKernel(name, fused ? "FusedGemm" : "Gemm", fused ? "anvil" : "", v.requirements, gm(fused),
                             [isa, fused](const PrepareInfo& i, Prepared* o) { prepareGemm(isa, fused, i, o, true); },
                             runGemm, 1, gemmTaskSplits);
      kg.strassen = true;
      k.add(std::move(kg));
    }
  }
  for (bool fused : {false, true})
    k.add(makeKernel(fused ? "f32_dwconv2d_direct_8w_epilogue__avx2" : "f32_dwconv2d_direct_8w__avx2",
                     fused ? "FusedConv" : "Conv", fused ? "anvil" : "", {"avx2", "fma"},
                     fused ? supportsFusedDepthwise : supportsDepthwise,
                     [fused](const PrepareInfo& i, Prepared* o) {
                       prepareConv(GemmIsa::kAvx2_6x16, true, fused, i, o);
                     },
                     runConv, fused ? 3 : 2));
}

}  // namespace anvil::runtime
