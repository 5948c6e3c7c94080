// Helpers of the protocol tests: hand-built programs, both parties on two threads over
// makeLocalPair, and a plain reference evaluation of a program on the ring.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <random>
#include <thread>

#include "runtime/mpc/dealer.h"
#include "runtime/mpc/protocol.h"

namespace anvil::mpc::testing {

// ---- test-only plain ring kernels (replaced by runtime/mpc/ring_ops once merged) --------

inline int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// numpy broadcasting: the flat index into `in` of output element o.
inline int64_t broadcastIndex(int64_t o, const std::vector<int64_t>& outShape, const std::vector<int64_t>& inShape) {
  int64_t idx = 0, stride = 1;
  for (size_t k = 0; k < outShape.size(); ++k) {
    const size_t ok = outShape.size() - 1 - k;
    const int64_t coord = o % outShape[ok];
    o /= outShape[ok];
    if (k < inShape.size()) {
      const int64_t d = inShape[inShape.size() - 1 - k];
      if (d != 1) idx += coord * stride;
      stride *= d;
    }
  }
  return idx;
}

inline const std::vector<int64_t>& shapeOf(const Program& p, int32_t id) { return p.tensors.at(size_t(id)).shape; }

inline std::vector<Ring> testLinear(const Program& p, const Step& s, const std::vector<Ring>& w,
                                    const std::vector<Ring>& bias, const std::vector<Ring>& x) {
  const auto& xs = shapeOf(p, s.inputs[0]);
  const auto& os = shapeOf(p, s.output);
  std::vector<Ring> out(size_t(numel(os)), 0);
  if (s.kind == StepKind::kScale) {
    const size_t wn = w.size();
    for (size_t i = 0; i < out.size(); ++i) out[i] = x[i] * w[i % wn] + (bias.empty() ? 0 : bias[i % wn]);
  } else if (s.linear == LinearKind::kMatMul) {
    const int64_t K = s.weightShape[0], N = s.weightShape[1], rows = numel(xs) / K;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t n = 0; n < N; ++n) {
        Ring acc = bias.empty() ? 0 : bias[size_t(n)];
        for (int64_t k = 0; k < K; ++k) acc += x[size_t(r * K + k)] * w[size_t(k * N + n)];
        out[size_t(r * N + n)] = acc;
      }
  } else {
    const ConvGeometry& g = s.conv;
    const int64_t N = xs[0], C = xs[1], H = xs[2], W = xs[3], OC = os[1], OH = os[2], OW = os[3];
    const int64_t icg = C / g.group, ocg = OC / g.group, KH = g.kernel[0], KW = g.kernel[1];
    for (int64_t n = 0; n < N; ++n)
      for (int64_t oc = 0; oc < OC; ++oc)
        for (int64_t oh = 0; oh < OH; ++oh)
          for (int64_t ow = 0; ow < OW; ++ow) {
            Ring acc = bias.empty() ? 0 : bias[size_t(oc)];
            const int64_t grp = oc / ocg;
            for (int64_t ic = 0; ic < icg; ++ic)
              for (int64_t kh = 0; kh < KH; ++kh)
                for (int64_t kw = 0; kw < KW; ++kw) {
                  const int64_t ih = oh * g.stride[0] - g.pads[0] + kh * g.dilation[0];
                  const int64_t iw = ow * g.stride[1] - g.pads[1] + kw * g.dilation[1];
                  if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                  acc += x[size_t(((n * C + grp * icg + ic) * H + ih) * W + iw)] *
                         w[size_t(((oc * icg + ic) * KH + kh) * KW + kw)];
                }
            out[size_t(((n * OC + oc) * OH + oh) * OW + ow)] = acc;
          }
  }
  return out;
}

inline std::vector<Ring> testProduct(const Program& p, const Step& s, const std::vector<Ring>& x,
                                     const std::vector<Ring>& y) {
  const auto& xs = shapeOf(p, s.inputs[0]);
  const auto& ys = shapeOf(p, s.inputs[1]);
  const auto& os = shapeOf(p, s.output);
  std::vector<Ring> out(size_t(numel(os)), 0);
  if (s.kind == StepKind::kMul) {
    for (int64_t o = 0; o < int64_t(out.size()); ++o)
      out[size_t(o)] = x[size_t(broadcastIndex(o, os, xs))] * y[size_t(broadcastIndex(o, os, ys))];
  } else {  // equal batch axes
    const int64_t M = xs[xs.size() - 2], K = xs.back(), N = ys.back(), B = numel(os) / (M * N);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          Ring acc = 0;
          for (int64_t k = 0; k < K; ++k) acc += x[size_t((b * M + m) * K + k)] * y[size_t((b * K + k) * N + n)];
          out[size_t((b * M + m) * N + n)] = acc;
        }
  }
  return out;
}

inline std::vector<Ring> testLocal(const Program& p, const Step& s, const std::vector<const std::vector<Ring>*>& in) {
  const auto& os = shapeOf(p, s.output);
  std::vector<Ring> out(size_t(numel(os)), 0);
  switch (s.kind) {
    case StepKind::kAdd:
    case StepKind::kSub:
      for (int64_t o = 0; o < int64_t(out.size()); ++o) {
        Ring a = (*in[0])[size_t(broadcastIndex(o, os, shapeOf(p, s.inputs[0])))];
        Ring b = (*in[1])[size_t(broadcastIndex(o, os, shapeOf(p, s.inputs[1])))];
        out[size_t(o)] = s.kind == StepKind::kAdd ? a + b : a - b;
      }
      break;
    case StepKind::kMulConst:
      for (size_t o = 0; o < out.size(); ++o) out[o] = (*in[0])[o] * Ring(s.factor);
      break;
    case StepKind::kReshape:
      out = *in[0];
      break;
    case StepKind::kTranspose: {
      const auto& is = shapeOf(p, s.inputs[0]);
      std::vector<int64_t> istride(is.size(), 1);
      for (size_t k = is.size() - 1; k > 0; --k) istride[k - 1] = istride[k] * is[k];
      for (int64_t o = 0; o < int64_t(out.size()); ++o) {
        int64_t rem = o, src = 0;
        for (size_t k = os.size(); k-- > 0;) {
          src += (rem % os[k]) * istride[size_t(s.perm[k])];
          rem /= os[k];
        }
        out[size_t(o)] = (*in[0])[size_t(src)];
      }
      break;
    }
    default:
      ADD_FAILURE() << "test kernels: local step kind " << int(s.kind) << " not implemented";
  }
  return out;
}

inline const RingKernels& testKernels() {
  static const RingKernels k{testLinear, testProduct, testLocal};
  return k;
}

// floor(v / 2^d) mod 256: the lower of the two indices the secure truncation may give
inline uint8_t floorIndex(Ring v, int d) { return uint8_t(uint64_t(int64_t(v) >> d)); }

// fixed-mode truncation of a LUT input: floor((v + 2^(d-1)) / 2^d) mod 256
inline uint8_t plainIndex(Ring v, int d) {
  if (d == 0) return uint8_t(v);
  return uint8_t(uint64_t((int64_t(v) >> d) + ((int64_t(v) >> (d - 1)) & 1)));
}

// The plain evaluation of a (server) program on the ring: every tensor's values.
inline std::vector<std::vector<Ring>> plainRun(const Program& p, const std::vector<ir::Tensor>& inputs) {
  std::vector<std::vector<Ring>> v(p.tensors.size());
  size_t inputIndex = 0;
  const RingKernels& k = testKernels();
  for (const Step& s : p.steps) {
    switch (s.kind) {
      case StepKind::kInput:
        v[size_t(s.output)] = quantizeInput(inputs[inputIndex++], p.tensors[size_t(s.output)]);
        break;
      case StepKind::kLinear:
      case StepKind::kScale:
        v[size_t(s.output)] = k.linear(p, s, s.weights, s.bias, v[size_t(s.inputs[0])]);
        break;
      case StepKind::kLut: {
        auto& o = v[size_t(s.output)];
        for (Ring x : v[size_t(s.inputs[0])]) o.push_back(s.table[plainIndex(x, s.shift)]);
        break;
      }
      case StepKind::kMaxPool: {
        const MaxPoolPlan plan = maxPoolPlan(p, s);
        std::vector<Ring> work = v[size_t(s.inputs[0])];
        work.resize(size_t(plan.workingSize()));
        for (const auto& l : plan.levels)
          for (size_t j = 0; j < l.a.size(); ++j) {
            Ring a = work[size_t(l.a[j])], b = work[size_t(l.b[j])];
            work[size_t(l.first) + j] = b + s.table[plainIndex(a - b, s.shift)];
          }
        for (int64_t r : plan.result) v[size_t(s.output)].push_back(work[size_t(r)]);
        break;
      }
      case StepKind::kMul:
      case StepKind::kMatMul:
        v[size_t(s.output)] = k.product(p, s, v[size_t(s.inputs[0])], v[size_t(s.inputs[1])]);
        break;
      case StepKind::kOutput:
        break;
      default: {
        std::vector<const std::vector<Ring>*> ins;
        for (int32_t id : s.inputs) ins.push_back(&v[size_t(id)]);
        v[size_t(s.output)] = k.local(p, s, ins);
      }
    }
  }
  return v;
}

// ---- building programs ------------------------------------------------------------------

struct ProgramBuilder {
  Program p;
  std::mt19937_64 rng{12345};
  ProgramBuilder() { p.programId = "test-program-0001"; }

  int32_t tensor(std::vector<int64_t> shape, double scale = 1.0 / 16, std::string name = "") {
    p.tensors.push_back({std::move(name), std::move(shape), scale});
    return int32_t(p.tensors.size() - 1);
  }
  int32_t input(std::vector<int64_t> shape, double scale = 1.0 / 16) {
    int32_t t = tensor(std::move(shape), scale, "input" + std::to_string(p.inputs.size()));
    Step s;
    s.kind = StepKind::kInput;
    s.name = p.tensors[size_t(t)].name;
    s.output = t;
    p.steps.push_back(s);
    p.inputs.push_back(t);
    return t;
  }
  std::vector<Ring> randomRing(int64_t n, int64_t lo, int64_t hi) {
    std::uniform_int_distribution<int64_t> d(lo, hi);
    std::vector<Ring> v(static_cast<size_t>(n));
    for (auto& x : v) x = Ring(d(rng));
    return v;
  }
  int32_t step(Step s, std::vector<int32_t> inputs, std::vector<int64_t> outShape, double scale = 1.0 / 16) {
    s.inputs = std::move(inputs);
    s.output = tensor(std::move(outShape), scale, s.name);
    p.steps.push_back(std::move(s));
    return p.steps.back().output;
  }
  int32_t matmul(int32_t x, int64_t N, bool bias = true) {
    auto xs = p.tensors[size_t(x)].shape;
    Step s;
    s.kind = StepKind::kLinear;
    s.name = "fc" + std::to_string(p.steps.size());
    s.linear = LinearKind::kMatMul;
    s.weightShape = {xs.back(), N};
    s.weights = randomRing(xs.back() * N, -100, 100);
    if (bias) s.bias = randomRing(N, -1000, 1000);
    xs.back() = N;
    return step(std::move(s), {x}, xs);
  }
  int32_t conv(int32_t x, int64_t oc, ConvGeometry g) {
    const auto& xs = p.tensors[size_t(x)].shape;
    Step s;
    s.kind = StepKind::kLinear;
    s.name = "conv" + std::to_string(p.steps.size());
    s.linear = LinearKind::kConv;
    s.conv = g;
    s.weightShape = {oc, xs[1] / g.group, g.kernel[0], g.kernel[1]};
    s.weights = randomRing(numel(s.weightShape), -50, 50);
    s.bias = randomRing(oc, -1000, 1000);
    std::vector<int64_t> os = {xs[0], oc, 0, 0};
    for (int k = 0; k < 2; ++k)
      os[size_t(2 + k)] =
          (xs[size_t(2 + k)] + g.pads[k] + g.pads[k + 2] - (g.dilation[k] * (g.kernel[k] - 1) + 1)) / g.stride[k] + 1;
    return step(std::move(s), {x}, os);
  }
  int32_t scale(int32_t x, std::vector<int64_t> wshape) {
    Step s;
    s.kind = StepKind::kScale;
    s.name = "scale" + std::to_string(p.steps.size());
    s.weightShape = wshape;
    s.weights = randomRing(numel(wshape), -100, 100);
    s.bias = randomRing(numel(wshape), -1000, 1000);
    return step(std::move(s), {x}, p.tensors[size_t(x)].shape);
  }
  int32_t lut(int32_t x, int shift, std::vector<Ring> table) {
    Step s;
    s.kind = StepKind::kLut;
    s.name = "lut" + std::to_string(p.steps.size());
    s.shift = shift;
    s.table = std::move(table);
    return step(std::move(s), {x}, p.tensors[size_t(x)].shape);
  }
  int32_t maxPool(int32_t x, int shift, ConvGeometry g) {
    const auto& xs = p.tensors[size_t(x)].shape;
    Step s;
    s.kind = StepKind::kMaxPool;
    s.name = "pool" + std::to_string(p.steps.size());
    s.shift = shift;
    s.conv = g;
    for (int j = 0; j < 256; ++j) s.table.push_back(Ring(std::max<int64_t>(int8_t(j), 0) << shift));
    std::vector<int64_t> os = {xs[0], xs[1], 0, 0};
    for (int k = 0; k < 2; ++k)
      os[size_t(2 + k)] =
          (xs[size_t(2 + k)] + g.pads[k] + g.pads[k + 2] - (g.dilation[k] * (g.kernel[k] - 1) + 1)) / g.stride[k] + 1;
    return step(std::move(s), {x}, os);
  }
  int32_t binary(StepKind kind, int32_t a, int32_t b, std::vector<int64_t> outShape) {
    Step s;
    s.kind = kind;
    s.name = "op" + std::to_string(p.steps.size());
    return step(std::move(s), {a, b}, std::move(outShape));
  }
  int32_t unary(Step s, int32_t x, std::vector<int64_t> outShape, double scale = 1.0 / 16) {
    s.name = "op" + std::to_string(p.steps.size());
    return step(std::move(s), {x}, std::move(outShape), scale);
  }
  void output(int32_t x) {
    Step s;
    s.kind = StepKind::kOutput;
    s.name = "output" + std::to_string(p.outputs.size());
    s.inputs = {x};
    p.steps.push_back(s);
    p.outputs.push_back(x);
  }
};

// A table with values spread over the ring's small integers (any function of the index).
inline std::vector<Ring> randomTable(uint64_t seed) {
  std::mt19937_64 r(seed);
  std::vector<Ring> t(256);
  for (auto& v : t) v = Ring(int64_t(r() % 20001) - 10000);
  return t;
}
// table[j] = int8(j): the lookup returns its own (signed) input byte.
inline std::vector<Ring> identityTable() {
  std::vector<Ring> t(256);
  for (int j = 0; j < 256; ++j) t[size_t(j)] = Ring(int64_t(int8_t(uint8_t(j))));
  return t;
}

inline ir::Tensor randomInput(const std::vector<int64_t>& shape, uint64_t seed, float lo = -2, float hi = 2) {
  std::mt19937_64 r(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  ir::Tensor t(DataType::kF32, shape);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(r);
  return t;
}

// ---- running both parties -----------------------------------------------------------------

struct TwoPartyRun {
  ClientResult client;
  ServerResult server;
  std::exception_ptr clientError, serverError;
  std::vector<std::vector<Ring>> clientShares, serverShares;  // not used by all tests
};

inline std::string errorText(std::exception_ptr e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  }
  return "?";
}

// Runs the client on this thread and the server on another over makeLocalPair.
inline TwoPartyRun runBoth(const Program& server, const RunPayloads& m, const std::vector<ir::Tensor>& inputs,
                           ProtocolOptions clientOptions = {}, ProtocolOptions serverOptions = {},
                           int timeoutMs = 10000, const std::vector<uint8_t>* clientPayload = nullptr,
                           const std::vector<uint8_t>* serverPayload = nullptr) {
  auto [c, s] = makeLocalPair(timeoutMs);
  if (!clientOptions.kernels) clientOptions.kernels = &testKernels();
  if (!serverOptions.kernels) serverOptions.kernels = &testKernels();
  TwoPartyRun r;
  Program pub = server;
  pub.isPublic = true;
  for (Step& st : pub.steps) st.weights.clear(), st.bias.clear();
  std::thread t([&, sp = s.get()] {
    try {
      r.server = runServer(server, serverPayload ? *serverPayload : m.server, *sp, serverOptions);
    } catch (...) {
      r.serverError = std::current_exception();
    }
  });
  try {
    r.client = runClient(pub, clientPayload ? *clientPayload : m.client, *c, inputs, clientOptions);
  } catch (...) {
    r.clientError = std::current_exception();
  }
  t.join();
  return r;
}

}  // namespace anvil::mpc::testing
