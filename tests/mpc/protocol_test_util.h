// Helpers of the protocol tests: hand-built programs, both parties on two threads over
// makeLocalPair, and a plain reference evaluation of a program on the ring.
#pragma once

#include <gtest/gtest.h>

#include <exception>
#include <functional>
#include <random>
#include <thread>

#include "runtime/mpc/dealer.h"
#include "runtime/mpc/fixed.h"
#include "runtime/mpc/protocol.h"

namespace anvil::mpc::testing {

inline int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

// floor(v / 2^d) mod 256: the lower of the two indices the secure truncation may give
inline uint8_t floorIndex(Ring v, int d) { return uint8_t(uint64_t(int64_t(v) >> d)); }

// fixed-mode truncation of a LUT input: floor((v + 2^(d-1)) / 2^d) mod 256
inline uint8_t plainIndex(Ring v, int d) {
  if (d == 0) return uint8_t(v);
  return uint8_t(uint64_t((int64_t(v) >> d) + ((int64_t(v) >> (d - 1)) & 1)));
}

// The fixed executor's evaluation of a (server) program: every tensor's ring values.
inline std::vector<std::vector<Ring>> plainRun(const Program& p, const std::vector<ir::Tensor>& inputs) {
  std::vector<RingVec> v(p.tensors.size());
  for (size_t i = 0; i < p.inputs.size(); ++i)
    v[size_t(p.inputs[i])] = quantizeInput(inputs.at(i), p.tensors[size_t(p.inputs[i])]);
  for (const Step& s : p.steps) executeStep(p, s, v);
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

// ---- uniformity of transcripts ---------------------------------------------------------

// Chi-square statistic of byte counts against the uniform distribution (255 dof).
inline double chiSquareUniform(const std::vector<uint8_t>& bytes) {
  std::vector<double> count(256, 0);
  for (uint8_t v : bytes) ++count[v];
  const double e = double(bytes.size()) / 256;
  double x = 0;
  for (double c : count) x += (c - e) * (c - e) / e;
  return x;
}
// Two-sample (homogeneity) chi-square of two byte samples (255 dof).
inline double chiSquareTwoSample(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b) {
  std::vector<double> ca(256, 0), cb(256, 0);
  for (uint8_t v : a) ++ca[v];
  for (uint8_t v : b) ++cb[v];
  const double na = double(a.size()), nb = double(b.size());
  double x = 0;
  for (int j = 0; j < 256; ++j) {
    const double tot = ca[size_t(j)] + cb[size_t(j)];
    if (tot == 0) continue;
    const double ea = tot * na / (na + nb), eb = tot * nb / (na + nb);
    x += (ca[size_t(j)] - ea) * (ca[size_t(j)] - ea) / ea + (cb[size_t(j)] - eb) * (cb[size_t(j)] - eb) / eb;
  }
  return x;
}
constexpr double kChi255 = 363.0;  // the 1 - 1e-5 quantile of chi-square with 255 dof

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
  TwoPartyRun r;
  Program pub = publicCopy(server);
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

// Rows [first, first + batch) of a stacked .npy (f32, samples on axis 0) as one batch.
inline ir::Tensor rows(const ir::Tensor& all, int64_t first, int64_t batch) {
  std::vector<int64_t> dims = all.dims();
  const int64_t per = all.numel() / dims[0];
  dims[0] = batch;
  ir::Tensor t(DataType::kF32, dims);
  for (int64_t i = 0; i < batch * per; ++i) t.data<float>()[i] = all.data<float>()[first * per + i];
  return t;
}

}  // namespace anvil::mpc::testing
