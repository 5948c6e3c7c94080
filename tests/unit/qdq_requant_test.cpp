// A Q/DQ import's arithmetic as onnxruntime's optimized session computes it. The
// requantization in every INT8 kernel family (int8_support.h,
// int8ModelRequant): a Conv / MatMul / Gemm with tactic params qdq_bias and qdq_out_scale
// outputs float(acc + bias[f]) * ((s_x * s_w[f]) / s_y), onnxruntime's QLinearConv /
// QLinearMatMul / QGemm value before its round half to even, bit for bit. The cases are
// chosen (searched here, from fixed candidates) so that the spec's float path -- the f32
// bias added to the dequantized sum, then a division by s_y -- rounds a step away for some
// values: a kernel keeping that path fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/reference.h"
#include "native_kernel_test_util.h"
#include "runtime/executor.h"
#include "runtime/kernel.h"

namespace anvil::runtime {
void registerNativeInt8Kernels(Kernels& k);
void registerNativeInt8PixelsKernels(Kernels& k);
void registerNativeInt8AmxKernels(Kernels& k);
}  // namespace anvil::runtime

namespace anvil {
namespace {

using ir::DataType;
using ir::Tensor;
using testing::nk::Built;
using testing::nk::Dims;

runtime::Kernels& registry() {
  return anvil::testing::nk::registryOf<&runtime::registerNativeInt8Kernels, &runtime::registerNativeInt8PixelsKernels,
                                        &runtime::registerNativeInt8AmxKernels>();
}

constexpr float kSx = 0.0123f, kSy = 0.0457f;
constexpr int kZx = 131, kZy = 128;  // u8 zero points (an s8 grid's z + 128)
constexpr int kPixels = 256;       // input q = 0 .. 255: every value of the grid

// onnxruntime's requantized value (MlasRequantizeOutput: int32 acc + bias, to f32, times the
// output scale X_scale * W_scale / Y_scale computed left to right in f32).
float ortValue(int32_t acc, int32_t bias, float sw) { return float(acc + bias) * ((kSx * sw) / kSy); }
// The spec's float path as the kernels computed it before: the dequantized sum, plus the
// f32 bias (DequantizeLinear of the int32 bias with scale s_x * s_w), divided by s_y.
float specValue(int32_t acc, int32_t bias, float sw) {
  const float s = kSx * sw;
  return (float(acc) * s + float(bias) * s) / kSy;
}
int32_t roundSat(float v, int zp) { return std::min(255, std::max(0, int32_t(std::nearbyint(v)) + zp)); }

// One output feature: its weight (K = 1), scale and int32 bias.
struct Feature {
  int8_t q;
  float sw;
  int32_t bias;
};

// Features for which, over the input grid, the two paths round some value to different
// integers (at least `want` of them), from a fixed sequence of candidates.
std::vector<Feature> decidingFeatures(int want, int* decidingValues) {
  std::vector<Feature> out;
  *decidingValues = 0;
  for (int c = 0; c < 200000 && int(out.size()) < want; ++c) {
    // Scales that put float(acc + bias) * m across the whole output grid (ulps of ~1e-5).
    const Feature f{int8_t(c % 2 ? 127 : -113), 0.02f + 1.3e-7f * float(c), (c * 7919) % 4001 - 2000};
    int deciding = 0;
    for (int q = 0; q < kPixels; ++q) {
      const int32_t acc = (q - kZx) * f.q;
      deciding += roundSat(ortValue(acc, f.bias, f.sw), kZy) != roundSat(specValue(acc, f.bias, f.sw), kZy);
    }
    if (deciding) {
      out.push_back(f);
      *decidingValues += deciding;
    }
  }
  return out;
}

// The node: op on x (every grid value, on the grid: s_x * (q - z_x)) with K = 1 and the
// features' weights s_w * q, each carrying its quantization, set to INT8 with the params.
// chain: a Q/DQ chain link (passes/qdq_fusion.cpp step 5): input 0 is u8 on the grid of
// the steps (scale 1, the bytes q), s_x comes as qdq_x_scale, and the output is u8 on the
// steps grid (1, z_y): round(value) + z_y, what onnxruntime stores.
Built makeNode(const std::string& op, const std::vector<Feature>& fs, bool chain = false) {
  const int64_t N = int64_t(fs.size());
  Built b;
  auto g = std::make_unique<ir::Graph>();
  Dims xd = op == "Conv" ? Dims{1, 1, 16, 16} : Dims{kPixels, 1};
  Dims wd = op == "Conv" ? Dims{N, 1, 1, 1} : op == "Gemm" ? Dims{N, 1} : Dims{1, N};
  Tensor x(DataType::kF32, xd), w(DataType::kF32, wd);
  for (int q = 0; q < kPixels; ++q) x.data<float>()[q] = kSx * float(q - kZx);
  std::vector<float> scales;
  for (int64_t f = 0; f < N; ++f) {
    w.data<float>()[f] = fs[size_t(f)].sw * float(fs[size_t(f)].q);
    scales.push_back(fs[size_t(f)].sw);
  }
  if (chain) {
    Tensor xq(DataType::kU8, xd);
    for (int q = 0; q < kPixels; ++q) xq.data<uint8_t>()[q] = uint8_t(q);
    x = std::move(xq);
  }
  ir::Value* xv = g->addValue("x", x.type());
  g->addInput(xv);
  xv->setQuantization(ir::Quantization{Tensor::scalar<float>(DataType::kF32, chain ? 1.0f : kSx),
                                       Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(kZx)), std::nullopt});
  ir::Value* wv = g->addInitializer("w", w.clone());
  wv->setQuantization(ir::Quantization{Tensor::fromVector<float>(DataType::kF32, {N}, scales),
                                       Tensor(DataType::kI8, {N}), op == "MatMul" ? 1 : 0});
  ir::Node* n = g->addNode(op, "", "n0", {xv, wv}, {"y"});
  if (op == "Gemm") n->attrs().set("transB", int64_t(1));
  if (op == "Conv") n->attrs().set("kernel_shape", std::vector<int64_t>{1, 1});
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  n->setPrecision(DataType::kI8);
  std::vector<int64_t> bias;
  for (const Feature& f : fs) bias.push_back(f.bias);
  n->tacticParams().set("qdq_bias", bias);
  n->tacticParams().set("qdq_out_scale", kSy);
  if (chain) {
    n->tacticParams().set("qdq_x_scale", kSx);
    n->output(0)->type().dtype = DataType::kU8;
    n->output(0)->setQuantization(ir::Quantization{Tensor::scalar<float>(DataType::kF32, 1.0f),
                                                   Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(kZy)), std::nullopt});
  }
  b.graph = std::move(g);
  b.node = n;
  b.tensors = {std::move(x), std::move(w)};
  return b;
}

TEST(QdqRequant, EveryFamilyComputesOnnxruntimesValue) {
  int deciding = 0;
  const std::vector<Feature> fs = decidingFeatures(17, &deciding);  // 17: a partial vector of features
  ASSERT_EQ(fs.size(), 17u);
  ASSERT_GT(deciding, 0);
  for (const std::string op : {"Conv", "MatMul", "Gemm"}) {
    const Built b = makeNode(op, fs);
    const int64_t N = int64_t(fs.size());
    const Dims outDims = op == "Conv" ? Dims{1, N, 16, 16} : Dims{kPixels, N};
    int ran = 0;
    std::string names;
    for (const runtime::Kernel* k : registry().all()) {
      if (k->op != op || !k->domain.empty() || !k->supports(*b.node, b.types())) continue;
      if (!runtime::hostHasAll(k->requirements)) continue;
      ++ran;
      names += " " + k->name;
      const testing::nk::PreparedKernel pk = testing::nk::prepare(*k, b, 2);
      auto ex = runtime::makeCpuExecutor(2);
      const testing::nk::RunResult r = testing::nk::runKernel(*k, pk, b, outDims, *ex);
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << k->name;
      int mismatches = 0, specAgrees = 0;
      for (int q = 0; q < kPixels; ++q)
        for (int64_t f = 0; f < N; ++f) {
          const Feature& ft = fs[size_t(f)];
          const int32_t acc = (q - kZx) * ft.q;
          const float want = ortValue(acc, ft.bias, ft.sw);
          const float got = op == "Conv" ? r.out[size_t(f * kPixels + q)] : r.out[size_t(q * N + f)];
          uint32_t a, c;
          std::memcpy(&a, &got, 4);
          std::memcpy(&c, &want, 4);
          mismatches += a != c;
          specAgrees += roundSat(got, kZy) == roundSat(specValue(acc, ft.bias, ft.sw), kZy);
        }
      EXPECT_EQ(mismatches, 0) << k->name;
      EXPECT_EQ(specAgrees, kPixels * N - deciding) << k->name << ": the spec's path would round these alike";
    }
    EXPECT_GT(ran, 0) << op;
    std::printf("%s: %d deciding values, checked on%s\n", op.c_str(), deciding, names.c_str());
  }
}

TEST(QdqRequant, ChainLinksReadAndWriteOnnxruntimesIntegers) {
  int deciding = 0;
  const std::vector<Feature> fs = decidingFeatures(17, &deciding);
  ASSERT_EQ(fs.size(), 17u);
  for (const std::string op : {"Conv", "MatMul", "Gemm"}) {
    const Built b = makeNode(op, fs, true);
    const int64_t N = int64_t(fs.size());
    const Dims outDims = op == "Conv" ? Dims{1, N, 16, 16} : Dims{kPixels, N};
    int ran = 0;
    for (const runtime::Kernel* k : registry().all()) {
      if (k->op != op || !k->domain.empty() || !runtime::hostHasAll(k->requirements)) continue;
      ASSERT_TRUE(k->supports(*b.node, b.types())) << k->name << " declined a chain link";
      ++ran;
      const testing::nk::PreparedKernel pk = testing::nk::prepare(*k, b, 2);
      auto ex = runtime::makeCpuExecutor(2);
      testing::nk::Step step(*k, pk, b, outDims, false, DataType::kU8);
      step.run(*ex);
      const testing::nk::RunResult r = step.result();
      EXPECT_TRUE(r.guardsIntact && r.workspaceIntact) << k->name;
      int mismatches = 0;
      for (int q = 0; q < kPixels; ++q)
        for (int64_t f = 0; f < N; ++f) {
          const Feature& ft = fs[size_t(f)];
          const int32_t want = roundSat(ortValue((q - kZx) * ft.q, ft.bias, ft.sw), kZy);
          const uint8_t got = op == "Conv" ? r.bytes[size_t(f * kPixels + q)] : r.bytes[size_t(q * N + f)];
          mismatches += int32_t(got) != want;
        }
      EXPECT_EQ(mismatches, 0) << k->name;
    }
    EXPECT_GT(ran, 0) << op;
  }
  // An output lowered on another grid than the steps' is declined (it would round twice).
  Built b = makeNode("Conv", fs, true);
  const_cast<ir::Node*>(b.node)->output(0)->setQuantization(ir::Quantization{
      Tensor::scalar<float>(DataType::kF32, kSy), Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(kZy)), std::nullopt});
  for (const runtime::Kernel* k : registry().all())
    if (k->op == "Conv" && k->domain.empty()) {
      EXPECT_FALSE(k->supports(*b.node, b.types())) << k->name;
    }
}

TEST(QdqRequant, DeclinesWhatItCannotRequantize) {
  int deciding = 0;
  const std::vector<Feature> fs = decidingFeatures(3, &deciding);
  for (const std::string op : {"Conv", "MatMul", "Gemm"}) {
    for (int variant = 0; variant < 3; ++variant) {
      Built b = makeNode(op, fs);
      ir::Node* n = const_cast<ir::Node*>(b.node);
      if (variant == 0) n->tacticParams().set("qdq_bias", std::vector<int64_t>{1, 2});  // not one per feature
      if (variant == 1) n->tacticParams().set("qdq_out_scale", 0.0f);
      if (variant == 2) n->tacticParams().set("fp32_channels", std::vector<int64_t>{0});  // f32 components
      for (const runtime::Kernel* k : registry().all()) {
        if (k->op == op && k->domain.empty()) {
          EXPECT_FALSE(k->supports(*n, b.types())) << k->name << " " << variant;
        }
      }
    }
    // Well formed: the families take it.
    const Built ok = makeNode(op, fs);
    int took = 0;
    for (const runtime::Kernel* k : registry().all())
      took += k->op == op && k->domain.empty() && k->supports(*ok.node, ok.types());
    EXPECT_GT(took, 0) << op;
  }
}


// ---------------------------------------------------------------------------------------
// anvil.QLinearAdd (cpu/kernels/anvil_quant.cpp): onnxruntime's QLinearAdd on its AVX2 /
// AVX-512 hosts, y = round_half_even(fma(q_a, r_a, fma(q_b, r_b, k))), saturated.

namespace qadd {

struct Grids {
  float sa, sb, sy;
  int za, zb, zy;
};

// The fma by its definition: the exact q * r + c, rounded once to f32. q * r needs at most
// 8 + 24 bits and c's bits lie within 2^-40 .. 2^17 for these grids, so the double sum is
// exact and the cast rounds once.
float fmaExact(int q, float r, float c) { return float(double(q) * double(r) + double(c)); }

int32_t onnxruntime(const Grids& g, int qa, int qb, bool u8) {
  const float ra = g.sa / g.sy, rb = g.sb / g.sy;
  const float pa = ra * float(g.za), pb = rb * float(g.zb);
  const float k = float(g.zy) - (pa + pb);
  const float t = fmaExact(qa, ra, fmaExact(qb, rb, k));
  return std::clamp(int32_t(std::nearbyint(t)), u8 ? 0 : -128, u8 ? 255 : 127);
}

// The spec's path: dequantize both, add in f32, QuantizeLinear (divide by s_y).
int32_t spec(const Grids& g, int qa, int qb, bool u8) {
  const float a = g.sa * float(qa - g.za), b = g.sb * float(qb - g.zb);
  const float v = (a + b) / g.sy;
  return std::clamp(int32_t(std::nearbyint(v)) + g.zy, u8 ? 0 : -128, u8 ? 255 : 127);
}

// One node over every (q_a, q_b) pair of the type.
std::vector<int32_t> runKernel(const Grids& g, bool u8) {
  const DataType t = u8 ? DataType::kU8 : DataType::kI8;
  Tensor a(t, {256, 256}), b(t, {256, 256});
  for (int i = 0; i < 65536; ++i) {
    const int qa = (u8 ? 0 : -128) + i / 256, qb = (u8 ? 0 : -128) + i % 256;
    if (u8) {
      a.data<uint8_t>()[i] = uint8_t(qa);
      b.data<uint8_t>()[i] = uint8_t(qb);
    } else {
      a.data<int8_t>()[i] = int8_t(qa);
      b.data<int8_t>()[i] = int8_t(qb);
    }
  }
  ir::Graph graph;
  ir::Value* av = graph.addValue("a", a.type());
  ir::Value* bv = graph.addValue("b", b.type());
  graph.addInput(av);
  graph.addInput(bv);
  ir::Node* n = graph.addNode("QLinearAdd", "anvil", "add", {av, bv}, {"y"});
  n->attrs().set("a_scale", g.sa);
  n->attrs().set("b_scale", g.sb);
  n->attrs().set("y_scale", g.sy);
  n->attrs().set("a_zero_point", int64_t(g.za));
  n->attrs().set("b_zero_point", int64_t(g.zb));
  n->attrs().set("y_zero_point", int64_t(g.zy));
  graph.addOutput(n->output(0));
  ir::inferShapes(graph);
  EXPECT_EQ(n->output(0)->dtype(), t);
  const Tensor y = cpu::Interpreter::runNode(*n, {&a, &b})[0];
  std::vector<int32_t> out(65536);
  for (int i = 0; i < 65536; ++i) out[size_t(i)] = int32_t(y.getInt(i));
  return out;
}

}  // namespace qadd

TEST(QdqQLinearAdd, OnnxruntimesFormulaOnEveryPair) {
  for (bool u8 : {true, false}) {
    // Grids from a fixed sequence until the two paths round some pair apart.
    int tried = 0, deciding = 0;
    qadd::Grids g{};
    for (; tried < 2000 && deciding == 0; ++tried) {
      g = {0.031f + 1.7e-6f * float(tried), 0.027f - 1.1e-6f * float(tried), 0.043f + 0.9e-6f * float(tried),
           u8 ? 120 + tried % 9 : -5 + tried % 7, u8 ? 131 - tried % 5 : 3 - tried % 4, u8 ? 128 : 0};
      for (int qa = u8 ? 0 : -128; qa < (u8 ? 256 : 128); ++qa)
        for (int qb = u8 ? 0 : -128; qb < (u8 ? 256 : 128); ++qb)
          deciding += qadd::onnxruntime(g, qa, qb, u8) != qadd::spec(g, qa, qb, u8);
    }
    ASSERT_GT(deciding, 0) << "no grid of the sequence decides a step";
    const std::vector<int32_t> got = qadd::runKernel(g, u8);
    int mismatches = 0, specDiffers = 0;
    for (int i = 0; i < 65536; ++i) {
      const int qa = (u8 ? 0 : -128) + i / 256, qb = (u8 ? 0 : -128) + i % 256;
      mismatches += got[size_t(i)] != qadd::onnxruntime(g, qa, qb, u8);
      specDiffers += got[size_t(i)] != qadd::spec(g, qa, qb, u8);
    }
    EXPECT_EQ(mismatches, 0) << (u8 ? "u8" : "s8");
    EXPECT_EQ(specDiffers, deciding) << (u8 ? "u8" : "s8");
    std::printf("QLinearAdd %s: %d of 65536 pairs round apart on the spec's path (grid %d)\n", u8 ? "u8" : "s8",
                deciding, tried - 1);
    // Saturation: both ends of the range are reached.
    EXPECT_EQ(*std::min_element(got.begin(), got.end()), u8 ? 0 : -128);
    EXPECT_EQ(*std::max_element(got.begin(), got.end()), u8 ? 255 : 127);
  }
}

// ---------------------------------------------------------------------------------------
// anvil.QLinearGlobalAveragePool: onnxruntime's integer form, acc = sum(q) - z_x * HW,
// y = round_half_even(float(acc) * (s_x / (s_y * HW))) + z_y, saturated.

TEST(QdqQLinearGlobalAveragePool, OnnxruntimesFormula) {
  for (bool u8 : {true, false}) {
    const DataType t = u8 ? DataType::kU8 : DataType::kI8;
    const int64_t C = 97, H = 7, W = 9, HW = H * W;  // odd planes
    const int lo = u8 ? 0 : -128, hi = u8 ? 255 : 127;
    // Data: plane c holds values whose sum walks through many residues (a deciding plane is
    // likely among 97); grids from a fixed sequence until the spec's path rounds some plane apart.
    Tensor x(t, {1, C, H, W});
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < HW; ++i) {
        const int v = lo + int((c * 131 + i * i * 7 + i * c) % 256);
        if (u8)
          x.data<uint8_t>()[c * HW + i] = uint8_t(v);
        else
          x.data<int8_t>()[c * HW + i] = int8_t(v);
      }
    float sx = 0, sy = 0;
    int zx = 0, zy = 0, deciding = 0, tried = 0;
    std::vector<int32_t> want(static_cast<size_t>(C)), specWant(static_cast<size_t>(C));
    for (; tried < 5000 && deciding == 0; ++tried) {
      sx = 0.0213f + 3.1e-7f * float(tried);
      sy = 0.0117f + 1.7e-7f * float(tried);
      zx = u8 ? 100 + tried % 13 : -20 + tried % 11;
      zy = u8 ? 7 : -90;
      deciding = 0;
      for (int64_t c = 0; c < C; ++c) {
        int64_t sum = 0;
        float specSum = 0.0f;
        for (int64_t i = 0; i < HW; ++i) {
          const int q = u8 ? int(x.data<uint8_t>()[c * HW + i]) : int(x.data<int8_t>()[c * HW + i]);
          sum += q;
          specSum += sx * float(q - zx);  // the spec: dequantize, average in f32, quantize
        }
        const float t1 = float(int32_t(sum - int64_t(zx) * HW)) * (sx / (sy * float(HW)));
        want[size_t(c)] = std::clamp(int32_t(std::nearbyint(t1)) + zy, lo, hi);
        specWant[size_t(c)] = std::clamp(int32_t(std::nearbyint((specSum / float(HW)) / sy)) + zy, lo, hi);
        deciding += want[size_t(c)] != specWant[size_t(c)];
      }
    }
    ASSERT_GT(deciding, 0);
    ir::Graph g;
    ir::Value* xv = g.addValue("x", x.type());
    g.addInput(xv);
    ir::Node* n = g.addNode("QLinearGlobalAveragePool", "anvil", "gap", {xv}, {"y"});
    n->attrs().set("x_scale", sx);
    n->attrs().set("y_scale", sy);
    n->attrs().set("x_zero_point", int64_t(zx));
    n->attrs().set("y_zero_point", int64_t(zy));
    g.addOutput(n->output(0));
    ir::inferShapes(g);
    EXPECT_EQ(n->output(0)->shape(), ir::Shape::fromExtents({1, C, 1, 1}));
    const Tensor y = cpu::Interpreter::runNode(*n, {&x})[0];
    ASSERT_EQ(y.dims(), (std::vector<int64_t>{1, C, 1, 1}));
    int mismatches = 0;
    for (int64_t c = 0; c < C; ++c) mismatches += int32_t(y.getInt(c)) != want[size_t(c)];
    EXPECT_EQ(mismatches, 0) << (u8 ? "u8" : "s8");
    std::printf("QLinearGlobalAveragePool %s: %d of %lld planes round apart on the spec's path\n", u8 ? "u8" : "s8",
                deciding, static_cast<long long>(C));
  }
}

}  // namespace
}  // namespace anvil
