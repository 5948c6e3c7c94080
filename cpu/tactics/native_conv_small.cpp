// The 1x1 convolution over an image of at most 4 pixels (Conv / anvil.FusedConv, one group,
// stride 1, no padding, W an initializer [M, K, 1, 1]; f32 NCHW), AVX2+FMA: a GEMV per image
// (M outputs, K inputs, P = H*W <= 4 columns). These are the squeeze-and-excite convs on
// [N, C, 1, 1]: the GEMM kernels pay their packing and blocking for one column, this one
// streams the weights once.
//  - prepare(): W packed as panels of 16 output channels, [ceil(M/16)][K][16], zero-padded,
//    so the K loop reads 16 outputs' weights with two contiguous loads and broadcasts x.
//  - run(): (image, panel) jobs split over tasks in fixed ranges (a task per 1M multiply-adds,
//    or the split the builder timed fastest: task_split.h); each output is summed by one task
//    in k order (for one pixel, even and odd k in two partial sums added at the end: the FMA
//    latency chain is halved), so any thread count gives the same bits. The bias and the
//    epilogue (activation, residual) run on each finished panel. No allocation.
//  - blocked forms (f32_conv1x1_gemv_nchw{8,16}c*): one pixel, X, Y and Z in NCHW<b>c, whose
//    storage at 1x1 is [N][padded channels]: the same panels at the padded pitches, and the
//    output's padding lanes zeroed. They keep mobilenet_v2_s32's 1x1-image pointwise convs
//    (160 <-> 960 channels) inside the blocked region instead of the blocked pixels-as-rows
//    GEMM, which spends a 14-row tile on one pixel: the model 0.32-0.44 -> 0.30-0.33 ms at
//    1 thread (Zen 4, noisy host).
#include "cpu/tactics/native_conv_small.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "cpu/tactics/gemm_kernels.h"
#include "cpu/tactics/native_linear_epilogue.h"
#include "cpu/tactics/nchwc.h"
#include "cpu/tactics/task_split.h"
#include "ir/ops/anvil_linear.h"

namespace anvil::cpu::tactics {

namespace {

using ir::linear::Activation;
using ir::linear::Epilogue;
using runtime::Kernel;
using runtime::PrepareInfo;
using runtime::Prepared;
using runtime::StepArgs;
using runtime::TensorView;

constexpr int64_t kPanel = 16;   // output channels per packed panel
constexpr int64_t kMaxPixels = 4;
// Multiply-adds a task must have before a second thread is worth its wake-up (a few us):
// the squeeze-and-excite convs (<= 60k) stay on the calling thread.
constexpr int64_t kMinMacsPerTask = int64_t(1) << 20;

struct GemvParams {
  int64_t M = 0, K = 0;  // output and input channels
  int32_t tasks = 1, fused = 0, act = 0, residual = 0, addFirst = 1;
  int32_t fixedTasks = 0;  // > 0: every run splits into this many tasks (the builder timed it)
  int32_t block = 0;       // > 0: X, Y (and Z) in NCHW<block>c, one pixel
  int32_t pad = 0;
  float p0 = 0.0f, p1 = 0.0f;
  Epilogue epilogue() const {
    Epilogue e;
    e.act = Activation(act);
    e.p0 = p0;
    e.p1 = p1;
    e.residual = residual != 0;
    e.addFirst = addFirst != 0;
    return e;
  }
};
static_assert(sizeof(GemvParams) == 16 + 8 * 4 + 8, "GemvParams must have no padding bytes");

bool isF32(const ir::TensorType& t) { return t.dtype == DataType::kF32; }
bool absent(const std::vector<ir::TensorType>& in, size_t i) {
  return i >= in.size() || in[i].dtype == DataType::kUndefined;
}
bool allEqual(const std::vector<int64_t>& v, int64_t x) {
  for (int64_t e : v)
    if (e != x) return false;
  return true;
}

// One group, 1x1, stride 1, no padding (auto_pad SAME_* pads nothing at 1x1 stride 1).
bool attrsFit(const ir::Node& n) {
  const ir::Attributes& at = n.attrs();
  if (at.getInt("group", 1) != 1) return false;
  const std::vector<int64_t> ks = at.getInts("kernel_shape", {1, 1});
  if (ks.size() != 2 || !allEqual(ks, 1)) return false;
  const std::vector<int64_t> s = at.getInts("strides", {1, 1}), d = at.getInts("dilations", {1, 1});
  if (s.size() != 2 || !allEqual(s, 1) || d.size() != 2 || !allEqual(d, 1)) return false;
  const std::string ap = at.getString("auto_pad", "NOTSET");
  if (ap != "NOTSET" && !ap.empty() && ap != "VALID" && ap != "SAME_UPPER" && ap != "SAME_LOWER") return false;
  const std::vector<int64_t> p = at.getInts("pads", {0, 0, 0, 0});
  return p.size() == 4 && allEqual(p, 0);
}

bool supportsGemv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (in.size() < 2 || !isF32(in[0]) || !isF32(in[1])) return false;
  const ir::Shape& x = in[0].shape;
  const ir::Shape& w = in[1].shape;
  if (!x.rankKnown() || x.rank() != 4 || !w.rankKnown() || w.rank() != 4 || !w.isStatic()) return false;
  if (!x[1].isStatic() || !x[2].isStatic() || !x[3].isStatic()) return false;
  if (x[2].value() * x[3].value() > kMaxPixels || x[2].value() * x[3].value() < 1) return false;
  if (w[1].value() != x[1].value() || w[2].value() != 1 || w[3].value() != 1) return false;
  const ir::Value* wv = n.input(1);
  if (!wv || !wv->initializer()) return false;
  if (!attrsFit(n)) return false;
  if (!absent(in, 2) && (!isF32(in[2]) || !in[2].shape.rankKnown() || in[2].shape.rank() != 1)) return false;
  return true;
}

bool supportsFusedGemv(const ir::Node& n, const std::vector<ir::TensorType>& in) {
  if (!supportsGemv(n, in)) return false;
  return fusedEpilogueSupported(n, in);
}

// The blocked form: one pixel, so a blocked X [N][ceil(K/B)][1][1][B] is [N][Kpad] with zero
// padding lanes, and Y (and Z) [N][Mpad] likewise; X, Y and Z in NCHW<B>c, W and B plain.
bool blockedOnePixel(int B, const ir::Node& n, const std::vector<ir::TensorType>& in) {
  const ir::Shape& x = in[0].shape;
  return x[2].value() == 1 && x[3].value() == 1 && nchwc::convActivationsBlocked(B, n);
}

void prepareGemv(bool fused, int block, const PrepareInfo& info, Prepared* out) {
  GemvParams p;
  p.block = block;
  const ir::Node& n = *info.node;
  const ir::Tensor* w = info.constants.size() > 1 ? info.constants[1] : nullptr;
  ANVIL_CHECK(w && w->dtype() == DataType::kF32 && w->rank() == 4, ErrorCode::kInvalidModel, n.label(),
              ": the 1x1 GEMV kernel needs W as an f32 [M, K, 1, 1] initializer");
  p.M = w->dims()[0];
  p.K = w->dims()[1];
  p.tasks = preparedSlots(info);
  p.fixedTasks = info.tasks;
  if (fused) {
    const Epilogue e = readFusedEpilogue(n);
    p.fused = 1;
    p.act = int32_t(e.act);
    p.p0 = e.p0;
    p.p1 = e.p1;
    p.residual = e.residual;
    p.addFirst = e.addFirst;
  }
  const int64_t panels = ceilDiv(p.M, kPanel);
  std::string blob(size_t(panels * p.K * kPanel) * sizeof(float), '\0');
  float* dst = reinterpret_cast<float*>(blob.data());
  const float* src = w->data<float>();
  for (int64_t m = 0; m < p.M; ++m)
    for (int64_t k = 0; k < p.K; ++k) dst[(m / kPanel) * p.K * kPanel + k * kPanel + m % kPanel] = src[m * p.K + k];
  out->blobs.push_back(std::move(blob));
  out->packedInputs.push_back(1);
  out->setParams(p);
}

// One panel of 16 output channels for P pixels: acc[p] = sum_k w[k][0..15] * x[k][p].
// Writes the raw sums as out[p][16].
template <int P>
__attribute__((target("avx2,fma"))) void panelAvx2(const float* w, const float* x, int64_t K, float* out) {
  __m256 acc[P][2], odd[P][2];
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) acc[p][0] = acc[p][1] = odd[p][0] = odd[p][1] = _mm256_setzero_ps();
  int64_t k = 0;
  if (P == 1) {  // two partial sums: even and odd k
    for (; k + 2 <= K; k += 2) {
      const __m256 x0 = _mm256_broadcast_ss(x + k), x1 = _mm256_broadcast_ss(x + k + 1);
      acc[0][0] = _mm256_fmadd_ps(_mm256_load_ps(w + k * kPanel), x0, acc[0][0]);
      acc[0][1] = _mm256_fmadd_ps(_mm256_load_ps(w + k * kPanel + 8), x0, acc[0][1]);
      odd[0][0] = _mm256_fmadd_ps(_mm256_load_ps(w + (k + 1) * kPanel), x1, odd[0][0]);
      odd[0][1] = _mm256_fmadd_ps(_mm256_load_ps(w + (k + 1) * kPanel + 8), x1, odd[0][1]);
    }
  }
  for (; k < K; ++k) {
    const __m256 w0 = _mm256_load_ps(w + k * kPanel), w1 = _mm256_load_ps(w + k * kPanel + 8);
#pragma GCC unroll 4
    for (int p = 0; p < P; ++p) {
      const __m256 xb = _mm256_broadcast_ss(x + k * P + p);
      acc[p][0] = _mm256_fmadd_ps(w0, xb, acc[p][0]);
      acc[p][1] = _mm256_fmadd_ps(w1, xb, acc[p][1]);
    }
  }
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
    _mm256_storeu_ps(out + p * kPanel, _mm256_add_ps(acc[p][0], odd[p][0]));
    _mm256_storeu_ps(out + p * kPanel + 8, _mm256_add_ps(acc[p][1], odd[p][1]));
  }
}

using PanelFn = void (*)(const float*, const float*, int64_t, float*);

void runGemv(const StepArgs& a) {
  const GemvParams& p = a.paramsAs<GemvParams>();
  const TensorView& X = a.in(0);
  TensorView& Y = a.out(0);
  if (X.rank != 4 || X.dims[1] != p.K) a.fail("X must be [N, K, H, W] with the filter's K");
  const int64_t N = X.dims[0], P = X.dims[2] * X.dims[3], M = p.M, K = p.K;
  if (P < 1 || P > kMaxPixels) a.fail("X has more pixels than this kernel serves (outside the profile?)");
  if (p.block > 0 && P != 1) a.fail("the blocked form serves one pixel");
  // Row pitches of X and Y (and Z): the channels, or blocked the padded channels.
  const int64_t xPitch = p.block > 0 ? nchwc::channelBlocks(K, p.block) * p.block : K * P;
  const int64_t yPitch = p.block > 0 ? nchwc::channelBlocks(M, p.block) * p.block : M * P;
  if (Y.rank != 4 || Y.dims[0] != N || Y.dims[1] != M || Y.dims[2] != X.dims[2] || Y.dims[3] != X.dims[3])
    a.fail("the output extents differ from the Conv's");
  if (Y.numel() == 0) return;
  const float* bias = nullptr;
  if (a.hasInput(2)) {
    if (a.in(2).numel() != M) a.fail("B must have one value per output channel");
    bias = a.in(2).as<float>();
  }
  const float* zp = nullptr;
  if (p.fused && p.residual) {
    if (!a.hasInput(int(ir::linear::kResidualInput))) a.fail("has_residual is 1 but Z (input 3) is absent");
    const TensorView& z = a.in(int(ir::linear::kResidualInput));
    if (z.numel() != Y.numel()) a.fail("Z must have the output's shape");
    zp = z.as<float>();
  }
  const Epilogue epi = p.epilogue();
  const EpilogueRow row = epilogueRow(epi);
  const PanelFn panel = P == 1 ? panelAvx2<1> : P == 2 ? panelAvx2<2> : P == 3 ? panelAvx2<3> : panelAvx2<4>;
  const float* wp = a.blobs[0].as<float>();
  const float* xp = X.as<float>();
  float* yp = Y.as<float>();
  const int64_t panels = ceilDiv(M, kPanel), jobs = N * panels;
  const int T = stepTasks(p.tasks, p.fixedTasks, a.executor, 2.0 * double(N * M * K * P), 2.0 * double(kMinMacsPerTask));
  const int64_t n = std::min<int64_t>(T, jobs);
  a.executor->parallelFor(n, [&](int64_t t) {
    alignas(32) float sums[kMaxPixels * kPanel];
    for (int64_t j = rangeBegin(jobs, t, n); j < rangeBegin(jobs, t + 1, n); ++j) {
      const int64_t img = j / panels, m0 = (j % panels) * kPanel, mc = std::min(kPanel, M - m0);
      panel(wp + m0 * K, xp + img * xPitch, K, sums);
      float* y = yp + img * yPitch + m0 * P;  // [mc][P]
      const float* z = zp ? zp + img * yPitch + m0 * P : nullptr;
      for (int64_t m = 0; m < mc; ++m)
        for (int64_t q = 0; q < P; ++q) y[m * P + q] = sums[q * kPanel + m];
      if (P == 1) {
        row(epi, y, z, bias ? bias + m0 : nullptr, 0.0f, mc);
        // Blocked: the last block's padding lanes are zero (after the epilogue).
        if (m0 + mc == M)
          for (int64_t m = M; m < yPitch; ++m) yp[img * yPitch + m] = 0.0f;
      } else {
        for (int64_t m = 0; m < mc; ++m)
          row(epi, y + m * P, z ? z + m * P : nullptr, nullptr, bias ? bias[m0 + m] : 0.0f, P);
      }
    }
  });
}

Kernel makeKernel(bool fused, int block = 0) {
  Kernel k;
  const std::string layout = block ? "_nchw" + std::to_string(block) + "c" : "";
  k.name = std::string("f32_conv1x1_gemv") + layout + (fused ? "_epilogue__avx2" : "__avx2");
  k.nchwcBlock = block;
  // 2: the epilogue's Tanh/GELU/Sigmoid through cpu/tactics/vmath.h; 3: SiLU, Sigmoid and Tanh with its new e^-x
  k.version = fused ? 3 : 2;
  k.op = fused ? "FusedConv" : "Conv";
  k.domain = fused ? "anvil" : "";
  k.precision = DataType::kF32;
  k.requirements = {"avx2", "fma"};
  if (block)
    k.supports = [fused, block](const ir::Node& n, const std::vector<ir::TensorType>& in) {
      return (fused ? supportsFusedGemv(n, in) : supportsGemv(n, in)) && blockedOnePixel(block, n, in);
    };
  else
    k.supports = fused ? supportsFusedGemv : supportsGemv;
  k.prepare = [fused, block](const PrepareInfo& i, Prepared* o) { prepareGemv(fused, block, i, o); };
  k.run = runGemv;
  k.taskSplits = [](const PrepareInfo& info) {
    ConvAttrs a;  // 1x1, stride 1, no padding (supports() checked it): the defaults
    return convSplitsToTime(a, info, [](const Conv2dGeom& g) { return g.N * ceilDiv(g.M, kPanel); });
  };
  return k;
}

}  // namespace

void registerConvSmallKernels(runtime::Kernels& k) {
  for (int block : {0, 8, 16}) {
    k.add(makeKernel(false, block));
    k.add(makeKernel(true, block));
  }
}

}  // namespace anvil::cpu::tactics
