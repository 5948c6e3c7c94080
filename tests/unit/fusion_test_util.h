// Helpers of the fusion pass tests (passes_transformer_test.cpp, passes_elementwise_test.cpp):
// IR text in -> pass -> IR text out, and both graphs run on the reference interpreter with
// the same random inputs.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <random>
#include <string>

#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "ir/printer.h"
#include "ir/text_parser.h"
#include "ir/verifier.h"
#include "passes/passes.h"

namespace anvil::fusiontest {

using PassFn = std::function<passes::PassResult(ir::Graph&, const passes::PassContext&)>;

inline ir::Model parseTyped(const std::string& text) {
  ir::Model m = ir::parseIrText(text);
  ir::inferShapes(*m.graph);
  ir::verify(*m.graph);
  return m;
}

// Random data for every graph input that is not an initializer (static shapes): floats
// uniform in [-lo, lo], bools fair coins, integers 0.
inline std::map<std::string, ir::Tensor> randomInputs(const ir::Graph& g, unsigned seed, double range = 2.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(-range, range);
  std::map<std::string, ir::Tensor> in;
  for (const ir::Value* v : g.inputs()) {
    if (v->isInitializer()) continue;
    EXPECT_TRUE(v->shape().isStatic()) << v->name();
    ir::Tensor t(v->dtype(), v->shape().extents());
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (v->dtype() == ir::DataType::kBool) t.data<bool>()[i] = (rng() & 1) != 0;
      else if (ir::isFloat(v->dtype())) t.setDouble(i, u(rng));
    }
    in.emplace(v->name(), std::move(t));
  }
  return in;
}

// max|a-b| / max(range(b), 1e-12) over one output, with NaN/Inf required at the same places.
inline double relError(const ir::Tensor& a, const ir::Tensor& b) {
  EXPECT_EQ(a.dims(), b.dims());
  if (a.dims() != b.dims() || a.numel() == 0) return a.dims() == b.dims() ? 0 : INFINITY;
  double lo = INFINITY, hi = -INFINITY, err = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double y = b.getDouble(i);
    if (std::isfinite(y)) {
      lo = std::min(lo, y);
      hi = std::max(hi, y);
    }
  }
  const double scale = std::isfinite(hi - lo) ? std::max(hi - lo, 1e-12) : 1.0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    const double x = a.getDouble(i), y = b.getDouble(i);
    if (std::isnan(x) || std::isnan(y) || std::isinf(x) || std::isinf(y)) {
      if (!(std::isnan(x) && std::isnan(y)) && x != y) return INFINITY;
      continue;
    }
    err = std::max(err, std::fabs(x - y) / scale);
  }
  return err;
}

struct PassRun {
  std::string printed;  // the graph after the pass
  int changed = 0;
  double error = 0;     // worst relError over outputs and seeds, after vs before
};

// Parses `input`, runs `pass` on it (then inference and the verifier, as the pipeline
// does), prints the result, and compares outputs before/after on the reference
// interpreter for a few random inputs.
inline PassRun runPass(const std::string& input, const PassFn& pass, int seeds = 3, double range = 2.0) {
  PassRun r;
  ir::Model before = parseTyped(input);
  ir::Model after = parseTyped(input);
  r.changed = pass(*after.graph, {}).changed;
  ir::inferShapes(*after.graph);
  ir::verify(*after.graph);
  r.printed = ir::printGraph(*after.graph);
  for (int s = 0; s < seeds; ++s) {
    auto in = randomInputs(*before.graph, 1234u + unsigned(s), range);
    auto a = cpu::Interpreter::run(*after.graph, in);
    auto b = cpu::Interpreter::run(*before.graph, in);
    EXPECT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) r.error = std::max(r.error, relError(a[i], b[i]));
  }
  return r;
}

// The pass leaves the graph exactly as it was (and still computes the same).
inline void expectUnchanged(const std::string& input, const PassFn& pass) {
  ir::Model m = parseTyped(input);
  const std::string text = ir::printGraph(*m.graph);
  PassRun r = runPass(input, pass, 1);
  EXPECT_EQ(r.changed, 0);
  EXPECT_EQ(r.printed, text);
  EXPECT_EQ(r.error, 0.0);
}

}  // namespace anvil::fusiontest
