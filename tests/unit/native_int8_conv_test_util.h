// Shared by the INT8 Conv kernel tests that check a family bit for bit against the
// i8_conv2d_u8s8 kernels (native_int8_pixels_test.cpp, native_int8_amx_test.cpp): the case
// description, building a one-node INT8 graph (optionally with input 0, Z and output 0
// lowered to u8), running a kernel on 1 and 2 threads through the contract, the quantization
// error bound of native_int8_test, and the per-case expectations.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "cpu/tactics/int8_gemm.h"
#include "ir/ops/anvil_linear.h"
#include "native_kernel_test_util.h"
#include "runtime/kernel.h"

namespace anvil::testing::i8conv {

using namespace anvil::testing::nk;
using anvil::ir::DataType;
using anvil::ir::Tensor;
using anvil::cpu::tactics::quantizeU8One;

struct PCase {
  std::string name;
  Dims x, w;
  bool bias = true;
  Dims strides, dilations, pads;
  const char* act = nullptr;  // FusedConv with this activation ("" none)
  bool residual = false;
  bool specials = false;  // input 0 holds NaN, +-inf, +-1e30 and exact half steps of the scale
};

// ---------------------------------------------------------------------------------------
// Building: the node, its data, the INT8 setup; optionally input 0, Z and output 0 lowered

struct Lowered {
  bool in = false, z = false, out = false;
};
struct QuantU8 {
  float scale;
  int32_t zp;
};
// x drawn from [-1, 1] and calibrated on it; Z and the output on their own grids.
constexpr QuantU8 kQx{2.0f / 255.0f, 128}, kQz{0.011f, 97}, kQy{0.02f, 31};

inline ir::Quantization quantOf(QuantU8 q) {
  return ir::Quantization{Tensor::scalar<float>(DataType::kF32, q.scale),
                          Tensor::scalar<uint8_t>(DataType::kU8, uint8_t(q.zp)), std::nullopt};
}

inline bool fusedCase(const PCase& pc) { return pc.act != nullptr; }

// The graph with f32 data (seeded) or, for the lowered inputs, u8 data (xq / zq) and their
// f32 twins float(q - zp) * scale in the tensors of the f32 build.
inline Built buildCase(const PCase& pc, uint32_t seed, Lowered low = {}) {
  Built b;
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  auto g = std::make_unique<ir::Graph>();
  const bool fused = fusedCase(pc);
  ir::Attributes at;
  at.set("kernel_shape", Dims{pc.w[2], pc.w[3]});
  if (!pc.strides.empty()) at.set("strides", pc.strides);
  if (!pc.dilations.empty()) at.set("dilations", pc.dilations);
  if (!pc.pads.empty()) at.set("pads", pc.pads);
  if (fused) {
    if (*pc.act) at.set("activation", std::string(pc.act));
  }
  // Each tensor from its own stream, so a lowered build and its f32 twin share the weights.
  auto u8Tensor = [&](const Dims& d, uint32_t stream) {
    std::mt19937 r(seed * 31u + stream);
    Tensor t(DataType::kU8, d);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<uint8_t>()[i] = uint8_t(byte(r));
    return t;
  };
  auto f32Tensor = [&](const Dims& d, uint32_t stream) {
    std::mt19937 r(seed * 31u + stream);
    Tensor t(DataType::kF32, d);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(r);
    return t;
  };
  std::vector<ir::Value*> vs;
  // X (the graph is typed in f32 for shape inference; lowered values are retyped after it)
  b.tensors.push_back(low.in ? u8Tensor(pc.x, 0) : f32Tensor(pc.x, 0));
  vs.push_back(g->addValue("x", ir::TensorType{DataType::kF32, ir::Shape::fromExtents(pc.x)}));
  g->addInput(vs.back());
  // W, B
  b.tensors.push_back(f32Tensor(pc.w, 1));
  vs.push_back(g->addInitializer("w", b.tensors[1].clone()));
  if (pc.bias) {
    b.tensors.push_back(f32Tensor({pc.w[0]}, 2));
    vs.push_back(g->addInitializer("b", b.tensors[2].clone()));
  } else if (fused && pc.residual) {
    b.tensors.emplace_back();
    vs.push_back(nullptr);
  }
  ir::Node* n = g->addNode(fused ? "FusedConv" : "Conv", fused ? "anvil" : "", "n0", vs, {"y"});
  n->attrs() = at;
  g->addOutput(n->output(0));
  ir::inferShapes(*g);
  if (fused && pc.residual) {  // Z with the output's extents, then has_residual
    const Dims yd = n->output(0)->shape().extents();
    b.tensors.push_back(low.z ? u8Tensor(yd, 3) : f32Tensor(yd, 3));
    ir::Value* zv = g->addValue("z", ir::TensorType{DataType::kF32, ir::Shape::fromExtents(yd)});
    g->addInput(zv);
    n->setInput(3, zv);
    n->attrs().set("has_residual", int64_t(1));
    ir::inferShapes(*g);
    if (low.z) {
      zv->type().dtype = DataType::kU8;
      zv->setQuantization(quantOf(kQz));
    }
  }
  if (low.in) n->input(0)->type().dtype = DataType::kU8;
  if (pc.specials && !low.in) {  // NaN, infinities, huge values, exact half steps
    float* x = b.tensors[0].data<float>();
    const float sp[] = {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                        -std::numeric_limits<float>::infinity(), 1e30f, -1e30f};
    for (int64_t i = 0; i < b.tensors[0].numel(); i += 3)
      x[i] = (i / 3) % 2 ? sp[(i / 6) % 5] : kQx.scale * (float((i / 6) % 41) - 20.5f);
  }
  n->setPrecision(DataType::kI8);
  n->input(0)->setQuantization(quantOf(kQx));
  if (low.out) {
    n->output(0)->type().dtype = DataType::kU8;
    n->output(0)->setQuantization(quantOf(kQy));
  }
  b.graph = std::move(g);
  b.node = n;
  return b;
}

// ---------------------------------------------------------------------------------------
// Running through the contract with any element types

struct Out {
  std::vector<uint8_t> bytes;  // the output's bytes
  bool guards = true, workspace = true;
};

inline Out runStep(const runtime::Kernel& k, const PreparedKernel& pk, const Built& b, const Dims& yd, DataType yt,
            int threads) {
  std::vector<Tensor> poisoned(b.tensors.size());
  std::vector<runtime::TensorView> in;
  for (size_t i = 0; i < b.tensors.size(); ++i) {
    const auto& packed = pk.prepared.packedInputs;
    if (std::find(packed.begin(), packed.end(), int(i)) != packed.end()) {
      poisoned[i] = Tensor(DataType::kF32, b.tensors[i].dims());
      std::fill(poisoned[i].data<float>(), poisoned[i].data<float>() + poisoned[i].numel(),
                std::numeric_limits<float>::quiet_NaN());
      in.push_back(viewOf(poisoned[i]));
    } else {
      in.push_back(viewOf(b.tensors[i]));
    }
  }
  const size_t esize = yt == DataType::kU8 ? 1 : 4, n = size_t(ir::numelOf(yd)) * esize, guard = 131;
  std::vector<uint8_t> buf(n + 2 * guard, 0xa5);
  runtime::TensorView y;
  y.data = buf.data() + guard;
  y.dtype = yt;
  y.setExtents(yd);
  Aligned ws(size_t(pk.prepared.workspaceBytes));
  runtime::StepArgs a;
  a.node = b.node;
  a.inputs = in.data();
  a.numInputs = int(in.size());
  a.outputs = &y;
  a.numOutputs = 1;
  a.params = {pk.params->p, pk.prepared.params.size()};
  a.blobs = pk.views.data();
  a.numBlobs = int(pk.views.size());
  a.workspace = ws.p;
  a.workspaceBytes = pk.prepared.workspaceBytes;
  auto ex = runtime::makeCpuExecutor(threads);
  a.executor = ex.get();
  k.run(a);
  Out o;
  o.bytes.assign(buf.begin() + long(guard), buf.begin() + long(guard + n));
  for (size_t i = 0; i < buf.size(); ++i)
    if ((i < guard || i >= guard + n) && buf[i] != 0xa5) o.guards = false;
  o.workspace = ws.tailIntact();
  return o;
}

inline std::vector<float> asFloats(const std::vector<uint8_t>& bytes) {
  std::vector<float> f(bytes.size() / 4);
  std::memcpy(f.data(), bytes.data(), f.size() * 4);
  return f;
}

// Runs a kernel at 1 and 2 threads, checks guards, workspace and equal bits; the output bytes.
inline std::vector<uint8_t> runBoth(const runtime::Kernel& k, const Built& b) {
  const Dims yd = b.node->output(0)->shape().extents();
  const DataType yt = b.node->output(0)->dtype();
  EXPECT_TRUE(k.supports(*b.node, b.types())) << k.name << " declined";
  const PreparedKernel pk = prepare(k, b, 2);
  EXPECT_EQ(pk.prepared.packedInputs, std::vector<int>{1}) << k.name;
  std::vector<std::vector<uint8_t>> outs;
  for (int threads : {1, 2}) {
    const Out o = runStep(k, pk, b, yd, yt, threads);
    EXPECT_TRUE(o.guards) << k.name << " wrote outside the output (threads=" << threads << ")";
    EXPECT_TRUE(o.workspace) << k.name << " wrote past the workspace (threads=" << threads << ")";
    outs.push_back(o.bytes);
  }
  EXPECT_TRUE(outs[0] == outs[1]) << k.name << ": 1 and 2 threads differ bitwise";
  return outs[0];
}

// The quantization error bound per element (native_int8_test's): sum over k of s_x |w| +
// s_w / 2 |x^| (x^ the dequantized input), times 1.2 for a smooth activation.
inline std::vector<double> errorBound(const Built& b, const PCase& pc) {
  const Tensor& X = b.tensors[0];
  const Tensor& W = b.tensors[1];
  const Dims yd = b.node->output(0)->shape().extents();
  const int64_t N = pc.x[0], C = pc.x[1], H = pc.x[2], Wd = pc.x[3], M = pc.w[0], kH = pc.w[2], kW = pc.w[3];
  const int64_t OH = yd[2], OW = yd[3], K = C * kH * kW;
  const Dims s = pc.strides.empty() ? Dims{1, 1} : pc.strides, d = pc.dilations.empty() ? Dims{1, 1} : pc.dilations;
  const Dims pads = pc.pads.empty() ? Dims{0, 0, 0, 0} : pc.pads;
  const double sx = kQx.scale;
  std::vector<double> sw(static_cast<size_t>(M));
  for (int64_t m = 0; m < M; ++m) {
    float mx = 0.0f;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, std::fabs(W.data<float>()[m * K + k]));
    sw[size_t(m)] = mx > 0.0f ? mx / 127.0f : 1.0f;
  }
  // |x^| per input element: the dequantized value of its quantization.
  std::vector<double> xh(size_t(X.numel()));
  for (int64_t i = 0; i < X.numel(); ++i) {
    const uint8_t q = quantizeU8One(X.data<float>()[i], 1.0f / kQx.scale, kQx.zp);
    xh[size_t(i)] = std::fabs(sx * (int32_t(q) - kQx.zp));
  }
  const double lip = fusedCase(pc) && *pc.act && std::string(pc.act) != "Relu" ? 1.2 : 1.0;
  std::vector<double> bound(size_t(N * M * OH * OW));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          double e = 0;
          for (int64_t ci = 0; ci < C; ++ci)
            for (int64_t kh = 0; kh < kH; ++kh)
              for (int64_t kw = 0; kw < kW; ++kw) {
                const int64_t ih = oh * s[0] - pads[0] + kh * d[0], iw = ow * s[1] - pads[1] + kw * d[1];
                const double w = std::fabs(W.data<float>()[((m * C + ci) * kH + kh) * kW + kw]);
                e += sx * w;
                if (ih >= 0 && ih < H && iw >= 0 && iw < Wd)
                  e += 0.5 * sw[size_t(m)] * xh[size_t(((n * C + ci) * H + ih) * Wd + iw)];
              }
          bound[size_t(((n * M + m) * OH + oh) * OW + ow)] = lip * e;
        }
  return bound;
}

// Per case (shared by the families): the reference output, the bound, the existing kernel's bits.
struct Expected {
  Tensor ref;
  std::vector<double> bound;
  std::vector<uint8_t> existing;
  std::string existingName;
};


// The expectations of case pc (index: its seed): the reference output, the bound, and the
// bits of `existing` (the i8_conv2d_u8s8 kernel this host runs; none: not compared).
inline Expected computeExpected(const PCase& pc, size_t index, const runtime::Kernel* existing) {
  const Built b = buildCase(pc, uint32_t(index) * 7919u + 3);
  Expected e;
  e.ref = reference(b);
  e.bound = errorBound(b, pc);
  if (existing) {
    e.existingName = existing->name;
    e.existing = runBoth(*existing, b);
  }
  return e;
}

}  // namespace anvil::testing::i8conv
