// Calibration (see calibration.h): histograms and calibrators, the cache file, loading the
// samples, and the run that gathers ranges and condition estimates.
#include "codegen/calibration.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <sstream>

#include "anvil/anvil.hpp"
#include "cpu/reference.h"
#include "tools/npy.h"

namespace anvil::codegen {

using passes::ValueRange;

const char* calibratorName(Calibrator c) {
  switch (c) {
    case Calibrator::kMinMax: return "minmax";
    case Calibrator::kEntropy: return "entropy";
    case Calibrator::kPercentile: return "percentile";
  }
  return "";
}

bool parseCalibrator(const std::string& s, Calibrator* c) {
  for (Calibrator k : {Calibrator::kMinMax, Calibrator::kEntropy, Calibrator::kPercentile})
    if (s == calibratorName(k)) {
      *c = k;
      return true;
    }
  return false;
}

// ---------------------------------------------------------------------------------------
// Histogram and calibrators

void Histogram::add(const float* x, int64_t n) {
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  int64_t finite = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
    ++finite;
  }
  nonFinite_ += uint64_t(n - finite);
  if (!finite) return;
  min_ = count_ ? std::min(min_, lo) : lo;
  max_ = count_ ? std::max(max_, hi) : hi;
  count_ += uint64_t(finite);
  const double absMax = std::max(std::fabs(double(lo)), std::fabs(double(hi)));
  if (absMax > width_ * kBins) {
    // Grow the range (at least doubling, so that a slowly rising maximum re-bins rarely)
    // and move each old bin's count into the new bins it overlaps, in proportion.
    const double w = std::max(absMax / kBins, 2.0 * width_);
    if (width_ > 0) {
      std::vector<double> nb(kBins, 0.0);
      for (int b = 0; b < kBins; ++b) {
        if (bins_[b] == 0) continue;
        const double a0 = b * width_, a1 = (b + 1) * width_;
        int j = std::min(kBins - 1, int(a0 / w));
        const double edge = (j + 1) * w;
        if (a1 <= edge || j == kBins - 1) {
          nb[j] += bins_[b];
        } else {
          const double f = (edge - a0) / width_;
          nb[j] += bins_[b] * f;
          nb[j + 1] += bins_[b] * (1 - f);
        }
      }
      bins_.swap(nb);
    }
    width_ = w;
  }
  if (width_ == 0) {  // every element so far is zero
    bins_[0] += double(finite);
    return;
  }
  const double inv = 1.0 / width_;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    bins_[std::min<int64_t>(kBins - 1, int64_t(std::fabs(double(x[i])) * inv))] += 1.0;
  }
}

namespace {

ValueRange clipped(const Histogram& h, double t) {
  return {float(std::max(double(h.min()), -t)), float(std::min(double(h.max()), t))};
}

// KL(P || Q) of the reference distribution P = bins[0, i) (with the outliers folded into
// the last bin) and Q = the same bins quantized to `levels` levels and expanded back.
double klDivergence(const std::vector<double>& bins, int i, int levels, double outliers) {
  std::vector<double> p(bins.begin(), bins.begin() + i);
  p[i - 1] += outliers;
  std::vector<double> q(size_t(i), 0.0);
  for (int l = 0; l < levels; ++l) {
    const int b0 = int(int64_t(l) * i / levels), b1 = int(int64_t(l + 1) * i / levels);
    double sum = 0;
    int nonzero = 0;
    for (int b = b0; b < b1; ++b) {
      sum += bins[b];
      nonzero += bins[b] != 0;
    }
    if (nonzero)
      for (int b = b0; b < b1; ++b)
        if (bins[b] != 0) q[b] = sum / nonzero;
  }
  const double ps = std::accumulate(p.begin(), p.end(), 0.0), qs = std::accumulate(q.begin(), q.end(), 0.0);
  if (ps <= 0 || qs <= 0) return 0;
  double kl = 0;
  for (int b = 0; b < i; ++b) {
    if (p[b] <= 0) continue;
    const double pb = p[b] / ps, qb = std::max(q[b] / qs, 1e-12);  // a bin Q empties: a large, finite cost
    kl += pb * std::log(pb / qb);
  }
  return kl;
}

}  // namespace

ValueRange calibrate(const Histogram& h, Calibrator c, double percentile) {
  if (!h.count()) return {};
  const double absMax = std::max(std::fabs(double(h.min())), std::fabs(double(h.max())));
  if (c == Calibrator::kMinMax || h.binWidth() == 0) return clipped(h, absMax);
  const std::vector<double>& bins = h.bins();
  const int n = Histogram::kBins;
  if (c == Calibrator::kPercentile) {
    const double want = std::clamp(percentile, 0.0, 100.0) / 100.0 * double(h.count());
    double cum = 0;
    for (int b = 0; b < n; ++b) {
      cum += bins[b];
      if (cum >= want) return clipped(h, std::min(absMax, (b + 1) * h.binWidth()));
    }
    return clipped(h, absMax);
  }
  // Entropy: thresholds from `levels` bins up to all of them.
  const int levels = h.min() < 0 ? 128 : 256;
  int last = n;
  while (last > 1 && bins[last - 1] == 0) --last;  // the top bins beyond the data add nothing
  if (last <= levels) return clipped(h, absMax);
  std::vector<double> tail(size_t(n) + 1, 0.0);  // tail[i] = sum of bins[i..)
  for (int b = n - 1; b >= 0; --b) tail[b] = tail[b + 1] + bins[b];
  double best = std::numeric_limits<double>::infinity();
  int bestI = last;
  for (int i = levels; i <= last; ++i) {
    const double kl = klDivergence(bins, i, levels, tail[i]);
    if (kl < best) {
      best = kl;
      bestI = i;
    }
  }
  return clipped(h, std::min(absMax, bestI * h.binWidth()));
}

// ---------------------------------------------------------------------------------------
// Cache file

namespace {

std::string hexOf(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  char buf[16];
  std::snprintf(buf, sizeof(buf), "%08" PRIx32, u);
  return buf;
}

bool floatOfHex(const std::string& s, float* f) {
  if (s.empty() || s.size() > 8 || s.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) return false;
  const uint32_t u = uint32_t(std::stoul(s, nullptr, 16));
  std::memcpy(f, &u, 4);
  return std::isfinite(*f);
}

}  // namespace

std::string writeCalibrationCache(const passes::CalibrationData& d) {
  std::string out = "anvil-calibration-1 " + (d.method.empty() ? std::string("minmax") : d.method) + "\n";
  for (const auto& [name, r] : d.ranges) out += name + ": " + hexOf(r.lo) + " " + hexOf(r.hi) + "\n";
  return out;
}

passes::CalibrationData readCalibrationCache(const std::string& text) {
  std::istringstream in(text);
  std::string line;
  ANVIL_CHECK(bool(std::getline(in, line)), ErrorCode::kInvalidArgument, "calibration cache is empty");
  passes::CalibrationData d;
  bool trt = false;
  if (line.rfind("anvil-calibration-1", 0) == 0) {
    d.method = line.size() > 20 ? line.substr(20) : "cache";
  } else {
    ANVIL_CHECK(line.rfind("TRT-", 0) == 0, ErrorCode::kInvalidArgument,
                "calibration cache: the first line is neither 'anvil-calibration-1 <method>' nor a TensorRT header: '",
                line, "'");
    trt = true;
    d.method = "tensorrt-cache";
  }
  int lineNo = 1;
  while (std::getline(in, line)) {
    ++lineNo;
    if (line.empty()) continue;
    const size_t colon = line.rfind(": ");
    ANVIL_CHECK(colon != std::string::npos && colon > 0, ErrorCode::kInvalidArgument, "calibration cache line ",
                lineNo, " is not '<name>: <values>': '", line, "'");
    const std::string name = line.substr(0, colon), rest = line.substr(colon + 2);
    ValueRange r;
    if (trt) {
      float s = 0;
      ANVIL_CHECK(floatOfHex(rest, &s) && s >= 0, ErrorCode::kInvalidArgument, "calibration cache line ", lineNo,
                  ": '", rest, "' is not a scale in hex");
      r = {-127.0f * s, 127.0f * s};
    } else {
      const size_t sp = rest.find(' ');
      ANVIL_CHECK(sp != std::string::npos && floatOfHex(rest.substr(0, sp), &r.lo) &&
                      floatOfHex(rest.substr(sp + 1), &r.hi) && r.lo <= r.hi,
                  ErrorCode::kInvalidArgument, "calibration cache line ", lineNo, ": '", rest,
                  "' is not '<lo> <hi>' in hex with lo <= hi");
    }
    d.ranges[name] = r;
  }
  return d;
}

// ---------------------------------------------------------------------------------------
// Samples

std::vector<std::pair<std::string, ir::DataType>> graphInputs(const ir::Graph& g) {
  std::vector<std::pair<std::string, ir::DataType>> out;
  for (const ir::Value* in : g.inputs())
    if (!in->isInitializer()) out.emplace_back(in->name(), in->dtype());
  return out;
}

int heldOutBatches(int batches) { return batches >= 2 ? std::max(1, batches / 4) : 0; }

std::vector<std::map<std::string, ir::Tensor>> loadCalibrationBatches(
    const std::string& dir, const std::vector<std::pair<std::string, ir::DataType>>& inputs,
    const std::map<std::string, std::vector<int64_t>>& optShapes) {
  auto sanitize = [](std::string s) {
    for (char& c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
    return s;
  };
  std::vector<std::map<std::string, ir::Tensor>> batches;
  int64_t count = -1;
  std::map<std::string, std::pair<ir::Tensor, std::vector<int64_t>>> all;
  for (const auto& [inName, inType] : inputs) {
    const std::string file = (std::filesystem::path(dir) / (sanitize(inName) + ".npy")).string();
    ANVIL_CHECK(std::filesystem::exists(file), ErrorCode::kInvalidArgument, "--calibData: no file '", file,
                "' for input '", inName, "'");
    ir::Tensor t = tools::readNpy(file);
    auto it = optShapes.find(inName);
    ANVIL_CHECK(it != optShapes.end(), ErrorCode::kInternal, "no profile shape for input '", inName, "'");
    const std::vector<int64_t>& shape = it->second;
    ANVIL_CHECK(t.dtype() == inType, ErrorCode::kInvalidArgument, "--calibData: '", file, "' holds ",
                ir::dtypeName(t.dtype()), ", input '", inName, "' is ", ir::dtypeName(inType));
    const bool stacked = !shape.empty() && t.dims().size() == shape.size() &&
                         std::equal(shape.begin() + 1, shape.end(), t.dims().begin() + 1) && shape[0] > 0;
    std::string want;
    for (int64_t d : shape) want += (want.empty() ? "" : "x") + std::to_string(d);
    ANVIL_CHECK(stacked, ErrorCode::kInvalidArgument, "--calibData: '", file, "' is ", t.summary(),
                "; input '", inName, "' runs as ", want, ": samples must be stacked along axis 0");
    const int64_t n = t.dims()[0] / shape[0];
    count = count < 0 ? n : std::min(count, n);
    all[inName] = {std::move(t), shape};
  }
  ANVIL_CHECK(count > 0, ErrorCode::kInvalidArgument, "--calibData: '", dir,
              "' holds fewer samples than one batch of the profile's opt shape");
  for (int64_t b = 0; b < count; ++b) {
    std::map<std::string, ir::Tensor> batch;
    for (const auto& [name, ts] : all) {
      const ir::Tensor& t = ts.first;
      ir::Tensor part(t.dtype(), ts.second);
      const size_t bytes = part.nbytes();
      std::memcpy(part.mutableRaw(), static_cast<const char*>(t.raw()) + size_t(b) * bytes, bytes);
      batch.emplace(name, std::move(part));
    }
    batches.push_back(std::move(batch));
  }
  return batches;
}

// ---------------------------------------------------------------------------------------
// Condition estimates

namespace {

ir::Tensor absOf(const ir::Tensor& t) {
  ir::Tensor a(t.dtype(), t.dims());
  const float* s = t.data<float>();
  float* d = a.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) d[i] = std::fabs(s[i]);
  return a;
}

// A bounded systematic sample of one channel's kappa values: every stride-th value seen;
// when it holds 2 cap values every other one is dropped and the stride doubles, so its
// size stays within [cap, 2 cap) however many calibration samples run (all of them kept
// up to 2 cap: the precision models' layers; resnet50 at 500 images would otherwise hold
// its ~11M components x 500 as floats, 22 GB).
struct ChannelSample {
  std::vector<float> values;
  int64_t stride = 1, seen = 0;
  void add(float k, size_t cap) {
    if (seen++ % stride) return;
    values.push_back(k);
    if (values.size() < 2 * cap) return;
    for (size_t i = 0; 2 * i < values.size(); ++i) values[i] = values[2 * i];
    values.resize(values.size() / 2);
    stride *= 2;
  }
};

// The sample budget of one layer: ~1M values (4 MiB) over its channels, at least 256 each.
constexpr size_t kLayerSampleBudget = size_t(1) << 20, kMinChannelSample = 256;

// kappa_v * kappa_phi per output component, gathered per output channel over the batches
// (each channel's values sampled as above: its quantiles are those of the sample; every
// channel of a layer sees as many values, so they share strides and their union is a
// sample of the layer), and the exact maximum and count.
struct ConditionSamples {
  std::vector<ChannelSample> perChannel;
  size_t cap = 0;
  double max = 0;
  int64_t count = 0;
  double err2 = 0, out2 = 0;  // sums of (phi'(v) |W||x|+|b|)^2 and phi(v)^2
};

// The linear part of a candidate node alone (no activation, no residual): a one-node
// graph the reference kernels run for v = Wx + b and for |W||x| + |b|.
struct LinearOnly {
  ir::Graph graph;
  const ir::Node* node = nullptr;
  ir::linear::Epilogue epilogue;
  int inputs = 0;
};

std::unique_ptr<LinearOnly> linearOnly(const ir::Node& n) {
  auto l = std::make_unique<LinearOnly>();
  const bool fused = n.domain() == "anvil";
  if (fused) {
    const std::string bad = ir::linear::readEpilogue(n.attrs(), &l->epilogue);
    if (!bad.empty()) return nullptr;
  }
  l->inputs = int(std::min<size_t>(n.numInputs(), 3));
  std::vector<ir::Value*> ins;
  for (int i = 0; i < l->inputs; ++i)
    ins.push_back(n.input(i) ? l->graph.addValue("in" + std::to_string(i), n.input(i)->type()) : nullptr);
  ir::Node* m = l->graph.addNode(n.op(), n.domain(), n.name(), ins, {"v"});
  m->attrs() = n.attrs();
  if (fused) ir::linear::writeEpilogue(ir::linear::Epilogue{}, &m->attrs());
  l->node = m;
  return l;
}

}  // namespace

passes::CalibrationData runCalibration(const ir::Graph& g, const std::vector<std::map<std::string, ir::Tensor>>& batches,
                                       const CalibrationOptions& options) {
  passes::CalibrationData out;
  out.method = calibratorName(options.calibrator);
  out.batches = int(batches.size());
  std::map<const ir::Value*, Histogram> hist;
  std::map<const ir::Node*, ConditionSamples> cond;
  std::map<const ir::Node*, std::unique_ptr<LinearOnly>> linear;
  if (options.conditions)
    for (const auto& np : g.nodes())
      if (passes::isPrecisionCandidate(*np))
        if (auto l = linearOnly(*np)) linear[np.get()] = std::move(l);

  for (const auto& batch : batches) {
    std::map<const ir::Value*, ir::Tensor> env;
    auto valueOf = [&](const ir::Value* v) -> const ir::Tensor* {
      if (!v) return nullptr;
      if (v->isInitializer()) return v->initializer();
      auto it = env.find(v);
      if (it != env.end()) return &it->second;
      auto b = batch.find(v->name());
      ANVIL_CHECK(b != batch.end(), ErrorCode::kInvalidArgument, "calibration: no data for input '", v->name(), "'");
      return &env.emplace(v, b->second).first->second;
    };
    for (const ir::Value* in : g.inputs())
      if (!in->isInitializer()) hist[in].add(valueOf(in)->data<float>(), valueOf(in)->numel());
    for (const auto& np : g.nodes()) {
      const ir::Node& n = *np;
      std::vector<const ir::Tensor*> ins;
      for (const ir::Value* v : n.inputs()) ins.push_back(valueOf(v));
      auto lin = linear.find(&n);
      const LinearOnly* l = lin == linear.end() ? nullptr : lin->second.get();
      // A linear layer: v = Wx + b by the reference kernel of its linear part alone, and the
      // layer's output from v (its epilogue applied as the fused reference kernel applies
      // it: the same bits), instead of a second full pass.
      std::vector<ir::Tensor> res;
      ir::Tensor v;
      std::vector<const ir::Tensor*> li;  // the linear part's inputs
      if (l) {
        li.assign(ins.begin(), ins.begin() + l->inputs);
        v = cpu::Interpreter::runNode(*l->node, li)[0];
        const bool fused = n.domain() == "anvil";
        const size_t zi = ir::linear::kResidualInput;
        const ir::Tensor* z = fused && l->epilogue.residual && ins.size() > zi ? ins[zi] : nullptr;
        res.push_back(fused ? cpu::fusedLinearEpilogue(n, v, z) : v.clone());
      } else {
        std::vector<std::pair<const ir::Value*, ir::Tensor>> outer;
        for (const ir::Value* ov : cpu::outerScopeValues(n)) outer.emplace_back(ov, *valueOf(ov));
        res = cpu::Interpreter::runNodeScoped(n, ins, outer);
      }
      for (size_t i = 0; i < res.size() && i < n.numOutputs(); ++i) {
        const ir::Value* o = n.output(i);
        if (!o || o->name().empty() || !res[i].defined()) continue;
        if (res[i].dtype() == ir::DataType::kF32) hist[o].add(res[i].data<float>(), res[i].numel());
        env[o] = std::move(res[i]);
      }
      if (!l) continue;
      if (&batch == &batches.front() && n.numOutputs() && env.count(n.output(0))) {
        passes::LayerSample& smp = out.samples[n.name()];
        for (const ir::Tensor* t : ins) smp.inputs.push_back(t ? t->clone() : ir::Tensor());
        smp.output = env.at(n.output(0)).clone();
      }
      // |W||x| + |b| by the reference kernel of the linear part alone.
      std::vector<ir::Tensor> absIns;
      for (const ir::Tensor* t : li) absIns.push_back(t ? absOf(*t) : ir::Tensor());
      std::vector<const ir::Tensor*> ai;
      for (const ir::Tensor& t : absIns) ai.push_back(t.defined() ? &t : nullptr);
      const ir::Tensor num = cpu::Interpreter::runNode(*l->node, ai)[0];
      // Output channels: axis 1 of a Conv's NCHW output, the last axis of MatMul / Gemm.
      const bool conv = n.op() == "Conv" || n.op() == "FusedConv";
      const auto& d = v.dims();
      if (d.empty()) continue;
      const int64_t channels = conv ? (d.size() > 1 ? d[1] : 1) : d.back();
      const int64_t inner = conv ? std::max<int64_t>(1, v.numel() / std::max<int64_t>(1, d[0] * channels)) : 1;
      ConditionSamples& cs = cond[&n];
      cs.perChannel.resize(size_t(channels));
      cs.cap = std::max(kMinChannelSample, kLayerSampleBudget / size_t(std::max<int64_t>(1, channels)));
      const float* pv = v.data<float>();
      const float* pn = num.data<float>();
      for (int64_t i = 0; i < v.numel(); ++i) {
        const int64_t c = conv ? (i / inner) % channels : i % channels;
        const double av = std::fabs(double(pv[i]));
        const double kv = av > 0 ? double(pn[i]) / av : (pn[i] > 0 ? passes::kConditionCap : 0.0);
        const double k = std::min(passes::kConditionCap, kv * ir::linear::activationCondition(l->epilogue, pv[i]));
        cs.perChannel[size_t(c)].add(float(k), cs.cap);
        cs.max = std::max(cs.max, double(float(k)));
        ++cs.count;
        const double err = ir::linear::activationSlope(l->epilogue, pv[i]) * double(pn[i]), y = ir::linear::activationValue(l->epilogue, pv[i]);
        cs.err2 += err * err;
        cs.out2 += y * y;
      }
    }
  }

  const Calibrator calibrator = options.calibrator;
  for (const auto& [v, h] : hist) {
    if (v->name().empty()) continue;
    out.ranges[v->name()] = calibrate(h, calibrator, options.percentile);
  }
  auto quantile = [](std::vector<float>& xs, double q) {
    if (xs.empty()) return 0.0;
    const size_t k = std::min(xs.size() - 1, size_t(q * double(xs.size() - 1) + 0.5));
    std::nth_element(xs.begin(), xs.begin() + ptrdiff_t(k), xs.end());
    return double(xs[k]);
  };
  for (auto& [n, cs] : cond) {
    passes::ConditionStats st;
    std::vector<float> all;
    for (auto& ch : cs.perChannel) {
      st.channelP99.push_back(float(quantile(ch.values, 0.99)));
      all.insert(all.end(), ch.values.begin(), ch.values.end());
    }
    st.components = cs.count;
    st.sampled = int64_t(all.size());
    if (all.empty()) continue;
    st.max = cs.max;
    st.p99 = quantile(all, 0.99);
    st.median = quantile(all, 0.5);
    st.normwise = cs.out2 > 0 ? std::min(passes::kConditionCap, std::sqrt(cs.err2 / cs.out2))
                              : (cs.err2 > 0 ? passes::kConditionCap : 0.0);
    out.condition[n->name()] = std::move(st);
  }
  return out;
}

}  // namespace anvil::codegen
