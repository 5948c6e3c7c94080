// Reference kernels of the recurrent layers RNN, LSTM and GRU: every direction, layout,
// activation list (with alpha/beta), clip, sequence_lens, initial states, peepholes,
// input_forget and linear_before_reset. One batch row at a time, in double precision,
// straight from the ONNX formulas; f16/bf16/f32/f64 tensors convert at the edges.
#include <algorithm>
#include <cctype>
#include <cmath>

#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

std::string lower(std::string s) {
  for (char& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

struct Activation {
  enum Kind { kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh, kHardSigmoid, kElu,
              kSoftsign, kSoftplus };
  Kind kind = kTanh;
  double alpha = 0, beta = 0;

  double operator()(double x) const {
    switch (kind) {
      case kRelu: return x > 0 ? x : 0;
      case kTanh: return std::tanh(x);
      case kSigmoid: return 1.0 / (1.0 + std::exp(-x));
      case kAffine: return alpha * x + beta;
      case kLeakyRelu: return x >= 0 ? x : alpha * x;
      case kThresholdedRelu: return x > alpha ? x : 0;
      case kScaledTanh: return alpha * std::tanh(beta * x);
      case kHardSigmoid: return std::max(0.0, std::min(1.0, alpha * x + beta));
      case kElu: return x >= 0 ? x : alpha * (std::exp(x) - 1);
      case kSoftsign: return x / (1 + std::fabs(x));
      case kSoftplus: return x > 30 ? x : std::log1p(std::exp(x));
    }
    return x;
  }
};

// The activation list of one layer: `perDir` functions per direction. alpha/beta values
// are consumed in order by the functions that take them (ONNX's rule); missing ones take
// the defaults of the matching ONNX operators.
std::vector<Activation> activations(const KernelContext& ctx, const std::vector<std::string>& defaults, int64_t dirs) {
  const ir::Attributes& a = ctx.attrs();
  std::vector<std::string> names = a.getStrings("activations", {});
  const size_t perDir = defaults.size();
  if (names.empty()) {
    for (int64_t d = 0; d < dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  } else if (names.size() == perDir && dirs == 2) {
    std::vector<std::string> twice = names;
    twice.insert(twice.end(), names.begin(), names.end());
    names = twice;
  }
  ctx.check(names.size() == perDir * size_t(dirs), "activations needs " + str(int64_t(perDir * size_t(dirs))) +
                                                       " functions (" + str(int64_t(perDir)) + " per direction), got " +
                                                       str(int64_t(names.size())));
  const std::vector<float> alphas = a.getFloats("activation_alpha", {});
  const std::vector<float> betas = a.getFloats("activation_beta", {});
  size_t ai = 0, bi = 0;
  std::vector<Activation> out;
  for (const std::string& raw : names) {
    const std::string n = lower(raw);
    Activation f;
    double defA = 0, defB = 0;
    bool useA = false, useB = false;
    if (n == "relu") f.kind = Activation::kRelu;
    else if (n == "tanh") f.kind = Activation::kTanh;
    else if (n == "sigmoid") f.kind = Activation::kSigmoid;
    else if (n == "affine") { f.kind = Activation::kAffine; useA = useB = true; defA = 1.0; }
    else if (n == "leakyrelu") { f.kind = Activation::kLeakyRelu; useA = true; defA = 0.01; }
    else if (n == "thresholdedrelu") { f.kind = Activation::kThresholdedRelu; useA = true; defA = 1.0; }
    else if (n == "scaledtanh") { f.kind = Activation::kScaledTanh; useA = useB = true; defA = defB = 1.0; }
    else if (n == "hardsigmoid") { f.kind = Activation::kHardSigmoid; useA = useB = true; defA = 0.2; defB = 0.5; }
    else if (n == "elu") { f.kind = Activation::kElu; useA = true; defA = 1.0; }
    else if (n == "softsign") f.kind = Activation::kSoftsign;
    else if (n == "softplus") f.kind = Activation::kSoftplus;
    else ctx.fail("unknown activation '" + raw + "'");
    f.alpha = useA ? (ai < alphas.size() ? double(alphas[ai++]) : defA) : 0;
    f.beta = useB ? (bi < betas.size() ? double(betas[bi++]) : defB) : 0;
    out.push_back(f);
  }
  return out;
}

std::vector<double> toDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[size_t(i)] = t.getDouble(i);
  return v;
}

enum class Cell { kRnn, kLstm, kGru };

void checkDims(const KernelContext& ctx, const Tensor& t, const std::vector<int64_t>& want, const char* what) {
  ctx.check(t.dims() == want, std::string(what) + " is " + t.summary() + ", expected " +
                                  ir::Shape::fromExtents(want).str());
}

void recurrent(KernelContext& ctx, Cell cell) {
  const ir::Attributes& a = ctx.attrs();
  const int64_t gates = cell == Cell::kRnn ? 1 : cell == Cell::kLstm ? 4 : 3;
  const std::string dir = a.getString("direction", "forward");
  ctx.check(dir == "forward" || dir == "reverse" || dir == "bidirectional", "bad direction '" + dir + "'");
  const int64_t D = dir == "bidirectional" ? 2 : 1;
  const int64_t layout = a.getInt("layout", 0);
  ctx.check(layout == 0 || layout == 1, "layout must be 0 or 1");
  const Tensor& X = ctx.input(0);
  const Tensor& W = ctx.input(1);
  const Tensor& R = ctx.input(2);
  ctx.check(X.rank() == 3, "X must have rank 3, got " + X.summary());
  const int64_t S = X.dim(layout == 0 ? 0 : 1), B = X.dim(layout == 0 ? 1 : 0), I = X.dim(2);
  ctx.check(R.rank() == 3, "R must have rank 3, got " + R.summary());
  const int64_t H = a.has("hidden_size") ? a.getInt("hidden_size", 0) : R.dim(2);
  ctx.check(H > 0, "hidden_size must be positive");
  const int64_t GH = gates * H;
  checkDims(ctx, W, {D, GH, I}, "W");
  checkDims(ctx, R, {D, GH, H}, "R");
  std::vector<double> w = toDoubles(W), r = toDoubles(R);
  std::vector<double> bias(static_cast<size_t>(D * 2 * GH), 0.0);
  if (ctx.hasInput(3)) {
    checkDims(ctx, ctx.input(3), {D, 2 * GH}, "B");
    bias = toDoubles(ctx.input(3));
  }
  std::vector<int64_t> lens(static_cast<size_t>(B), S);
  if (ctx.hasInput(4)) {
    const Tensor& sl = ctx.input(4);
    checkDims(ctx, sl, {B}, "sequence_lens");
    for (int64_t b = 0; b < B; ++b) {
      lens[size_t(b)] = sl.getInt(b);
      ctx.check(lens[size_t(b)] >= 0 && lens[size_t(b)] <= S,
                "sequence_lens[" + str(b) + "] = " + str(lens[size_t(b)]) + " is outside [0, " + str(S) + "]");
    }
  }
  const std::vector<int64_t> stateDims = layout == 0 ? std::vector<int64_t>{D, B, H} : std::vector<int64_t>{B, D, H};
  auto stateIdx = [&](int64_t d, int64_t b) { return layout == 0 ? (d * B + b) * H : (b * D + d) * H; };
  std::vector<double> h0(static_cast<size_t>(D * B * H), 0.0), c0(static_cast<size_t>(D * B * H), 0.0);
  if (ctx.hasInput(5)) {
    checkDims(ctx, ctx.input(5), stateDims, "initial_h");
    h0 = toDoubles(ctx.input(5));
  }
  std::vector<double> peep;
  bool inputForget = false;
  if (cell == Cell::kLstm) {
    if (ctx.hasInput(6)) {
      checkDims(ctx, ctx.input(6), stateDims, "initial_c");
      c0 = toDoubles(ctx.input(6));
    }
    if (ctx.hasInput(7)) {
      checkDims(ctx, ctx.input(7), {D, 3 * H}, "P");
      peep = toDoubles(ctx.input(7));
    }
    inputForget = a.getInt("input_forget", 0) != 0;
  }
  const bool linearBeforeReset = cell == Cell::kGru && a.getInt("linear_before_reset", 0) != 0;
  const bool useClip = a.has("clip");
  const double clip = a.getFloat("clip", 0.f);
  ctx.check(!useClip || clip >= 0, "clip must be >= 0");
  auto clipped = [&](double v) { return useClip ? std::max(-clip, std::min(clip, v)) : v; };
  static const std::vector<std::string> kRnnActs = {"Tanh"}, kLstmActs = {"Sigmoid", "Tanh", "Tanh"},
                                        kGruActs = {"Sigmoid", "Tanh"};
  const std::vector<std::string>& defActs = cell == Cell::kRnn ? kRnnActs : cell == Cell::kLstm ? kLstmActs : kGruActs;
  const std::vector<Activation> acts = activations(ctx, defActs, D);
  const size_t nf = defActs.size();

  const std::vector<double> x = toDoubles(X);
  auto xAt = [&](int64_t t, int64_t b) { return &x[size_t(layout == 0 ? (t * B + b) * I : (b * S + t) * I)]; };
  const DataType dt = X.dtype();
  const bool wantY = ctx.numOutputs() > 0 && ctx.outputWanted(0);
  const bool wantH = ctx.numOutputs() > 1 && ctx.outputWanted(1);
  const bool wantC = ctx.numOutputs() > 2 && ctx.outputWanted(2);
  Tensor* Y = wantY ? &ctx.allocOutput(0, dt, layout == 0 ? std::vector<int64_t>{S, D, B, H}
                                                            : std::vector<int64_t>{B, S, D, H})
                    : nullptr;
  Tensor* Yh = wantH ? &ctx.allocOutput(1, dt, stateDims) : nullptr;
  Tensor* Yc = wantC ? &ctx.allocOutput(2, dt, stateDims) : nullptr;
  auto yIdx = [&](int64_t t, int64_t d, int64_t b) {
    return layout == 0 ? ((t * D + d) * B + b) * H : ((b * S + t) * D + d) * H;
  };

  std::vector<double> pre(static_cast<size_t>(GH)), hNew(static_cast<size_t>(H)), cNew(static_cast<size_t>(H));
  for (int64_t d = 0; d < D; ++d) {
    const bool reverse = dir == "reverse" || (D == 2 && d == 1);
    const double* wd = &w[size_t(d * GH * I)];
    const double* rd = &r[size_t(d * GH * H)];
    const double* wb = &bias[size_t(d * 2 * GH)];
    const double* rb = wb + GH;
    const Activation* f = &acts[size_t(d) * nf];
    for (int64_t b = 0; b < B; ++b) {
      std::vector<double> h(h0.begin() + stateIdx(d, b), h0.begin() + stateIdx(d, b) + H);
      std::vector<double> c(c0.begin() + stateIdx(d, b), c0.begin() + stateIdx(d, b) + H);
      const int64_t L = lens[size_t(b)];
      for (int64_t s = 0; s < L; ++s) {
        const int64_t t = reverse ? L - 1 - s : s;
        const double* xt = xAt(t, b);
        // pre = W x + Wb (+ R h + Rb, except GRU's hidden gate which needs the reset gate).
        for (int64_t g = 0; g < GH; ++g) {
          double acc = wb[g];
          for (int64_t k = 0; k < I; ++k) acc += wd[g * I + k] * xt[k];
          const bool gruHidden = cell == Cell::kGru && g >= 2 * H;
          if (!gruHidden) {
            acc += rb[g];
            for (int64_t k = 0; k < H; ++k) acc += rd[g * H + k] * h[size_t(k)];
          }
          pre[size_t(g)] = acc;
        }
        if (cell == Cell::kRnn) {
          for (int64_t j = 0; j < H; ++j) hNew[size_t(j)] = f[0](clipped(pre[size_t(j)]));
        } else if (cell == Cell::kLstm) {
          // Gate order i, o, f, c; peepholes P = [Pi, Po, Pf].
          const double* pi = peep.empty() ? nullptr : &peep[size_t(d * 3 * H)];
          for (int64_t j = 0; j < H; ++j) {
            const size_t J = size_t(j);
            double iv = pre[J] + (pi ? pi[j] * c[J] : 0);
            iv = f[0](clipped(iv));
            double fv;
            if (inputForget) {
              fv = 1 - iv;
            } else {
              fv = pre[size_t(2 * H + j)] + (pi ? pi[2 * H + j] * c[J] : 0);
              fv = f[0](clipped(fv));
            }
            const double cand = f[1](clipped(pre[size_t(3 * H + j)]));
            cNew[J] = fv * c[J] + iv * cand;
            double ov = pre[size_t(H + j)] + (pi ? pi[H + j] * cNew[J] : 0);
            ov = f[0](clipped(ov));
            hNew[J] = ov * f[2](cNew[J]);
          }
          c = cNew;
        } else {
          // Gate order z, r, h.
          std::vector<double> z(static_cast<size_t>(H)), rg(static_cast<size_t>(H));
          for (int64_t j = 0; j < H; ++j) {
            z[size_t(j)] = f[0](clipped(pre[size_t(j)]));
            rg[size_t(j)] = f[0](clipped(pre[size_t(H + j)]));
          }
          const double* rh0 = rd + 2 * H * H;
          const double* rbh = rb + 2 * H;
          for (int64_t j = 0; j < H; ++j) {
            double acc = 0;
            if (linearBeforeReset) {
              for (int64_t k = 0; k < H; ++k) acc += rh0[j * H + k] * h[size_t(k)];
              acc = rg[size_t(j)] * (acc + rbh[j]);
            } else {
              for (int64_t k = 0; k < H; ++k) acc += rh0[j * H + k] * rg[size_t(k)] * h[size_t(k)];
              acc += rbh[j];
            }
            const double hh = f[1](clipped(pre[size_t(2 * H + j)] + acc));
            hNew[size_t(j)] = (1 - z[size_t(j)]) * hh + z[size_t(j)] * h[size_t(j)];
          }
        }
        h = hNew;
        if (Y)
          for (int64_t j = 0; j < H; ++j) Y->setDouble(yIdx(t, d, b) + j, h[size_t(j)]);
      }
      if (Yh)
        for (int64_t j = 0; j < H; ++j) Yh->setDouble(stateIdx(d, b) + j, h[size_t(j)]);
      if (Yc)
        for (int64_t j = 0; j < H; ++j) Yc->setDouble(stateIdx(d, b) + j, c[size_t(j)]);
    }
  }
}

}  // namespace

void registerControlRnnKernels(KernelRegistry& r) {
  r.add("RNN", [](KernelContext& c) { recurrent(c, Cell::kRnn); });
  r.add("LSTM", [](KernelContext& c) { recurrent(c, Cell::kLstm); });
  r.add("GRU", [](KernelContext& c) { recurrent(c, Cell::kGru); });
}

}  // namespace anvil::cpu::kernels
