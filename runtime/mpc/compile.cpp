// The mpc compiler (compile.h): lowers the prepared IR node by node into program steps,
// quantizing constants as it goes and running each new step on the calibration batches so
// the next lookup table is chosen on the values the fixed executor really produces.
#include "runtime/mpc/compile.h"

#include <sodium.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <set>

#include "anvil/error.h"
#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"
#include "passes/passes.h"
#include "runtime/mpc/fixed.h"
#include "tools/npy.h"

namespace anvil::mpc {

namespace {

using ir::Node;
using ir::Tensor;
using ir::Value;

double pow2Ceil(double x) { return x > 0 ? std::exp2(std::ceil(std::log2(x))) : 1.0; }

Ring toRing(double v, const std::string& what) {
  double r = std::round(v);
  ANVIL_CHECK(std::isfinite(r) && std::fabs(r) < 4.0e18, ErrorCode::kUnsupported, what, " value ", v,
              " does not fit the ring");
  return Ring(int64_t(r));
}

std::vector<double> toDoubles(const Tensor& t) {
  std::vector<double> v(t.numel());
  for (int64_t i = 0; i < t.numel(); ++i) v[i] = t.getDouble(i);
  return v;
}

std::string kindName(StepKind k) { return stepKindName(k); }

// Whether a ratio of two scales is a whole number (scales are powers of two over counts).
bool integerRatio(double coarse, double fine, int64_t* factor) {
  double r = coarse / fine;
  int64_t f = int64_t(std::llround(r));
  *factor = f;
  return f >= 1 && std::fabs(double(f) - r) <= 1e-9 * r;
}

class Compiler {
 public:
  Compiler(const ir::Graph& g, const CompileOptions& o, CompileReport& r, std::vector<std::vector<Tensor>> calib)
      : g_(g), o_(o), r_(r), calibInputs_(std::move(calib)) {
    cal_.resize(calibInputs_.size());
  }

  Program run() {
    for (size_t i = 0; i < g_.inputs().size(); ++i) lowerInput(g_.inputs()[i], i);
    // Readers not yet lowered per value: calibration values nobody will read are dropped
    // as the lowering goes, so memory follows the live activations, not the whole model.
    for (const auto& n : g_.nodes())
      for (const Value* v : uniqueInputs(*n)) ++pending_[v];
    for (const auto& n : g_.nodes()) {
      if (!absorbed_.count(n.get())) lowerNode(*n);
      for (const Value* v : uniqueInputs(*n)) --pending_[v];
      releaseDeadValues();
    }
    for (const Value* out : g_.outputs()) {
      auto it = ids_.find(out);
      ANVIL_CHECK(it != ids_.end(), ErrorCode::kUnsupported, "graph output '", out->name(),
                  "' is not computed from the inputs");
      int32_t id = it->second;
      if (p_.tensors[id].name != out->name()) id = reshape(out->name() + "_out", id, p_.tensors[id].shape, out->name());
      Step s;
      s.kind = StepKind::kOutput;
      s.name = out->name();
      s.inputs = {id};
      emit(std::move(s), 0);
      p_.outputs.push_back(id);
    }
    double worst = 0;
    for (double b : bound_) worst = std::max(worst, b);
    r_.worstCaseBoundLog2 = std::log2(std::max(worst, 1.0));
    r_.maxAbsSeenLog2 = std::log2(std::max(maxSeen_, 1.0));
    return std::move(p_);
  }

 private:
  const ir::Graph& g_;
  const CompileOptions& o_;
  CompileReport& r_;
  std::vector<std::vector<Tensor>> calibInputs_;  // [batch][graph input]
  Program p_;
  std::vector<std::vector<RingVec>> cal_;  // [batch][tensor id]
  std::vector<double> bound_;              // static bound on |int64| per tensor
  std::map<const Value*, int32_t> ids_;
  std::set<const Node*> absorbed_;
  double maxSeen_ = 0;

  std::map<const Value*, int> pending_;

  // Per-channel index scaling (lowerLinear): a tensor whose channel c holds g_c times the
  // value its scale says (int64 * scale = g_c * real), along `axis`; only on the path from
  // a linear layer through its ReLU (and MaxPool / Flatten) to the next linear layer, which
  // divides its weights for that input channel by g_c.
  struct ChannelFactors {
    int64_t axis = 1;
    std::vector<double> g;
    // A channel merged into another (scaleChannels): alias[c] >= 0 is the channel k whose
    // ReLU output this one's equals times ratio[c]; it is computed as 0 instead.
    std::vector<int64_t> alias;
    std::vector<double> ratio;
  };
  std::map<int32_t, ChannelFactors> channelFactors_;
  // The ReLU a per-channel scaled linear output goes to: its shift and table range.
  struct ReluPlan {
    int32_t shift = 0;
    int low = -128;
  };
  std::map<int32_t, ReluPlan> reluPlans_;
  std::vector<bool> nonneg_;  // per tensor: never negative (a ReLU's index-valued output)

  static std::set<const Value*> uniqueInputs(const Node& n) {
    std::set<const Value*> s;
    for (const Value* v : n.inputs())
      if (v) s.insert(v);
    return s;
  }

  void releaseDeadValues() {
    std::vector<bool> live(p_.tensors.size(), false);
    for (const auto& [v, id] : ids_)
      if (pending_[v] > 0 || isGraphOutput(v)) live[id] = true;
    for (size_t t = 0; t < live.size(); ++t)
      if (!live[t])
        for (auto& values : cal_) RingVec().swap(values[t]);
  }

  // ---- program building

  int32_t addTensor(const std::string& name, Dims shape, double scale) {
    p_.tensors.push_back({name, std::move(shape), scale});
    for (auto& b : cal_) b.emplace_back();
    bound_.push_back(0);
    nonneg_.push_back(false);
    return int32_t(p_.tensors.size() - 1);
  }

  // Appends a step and runs it on every calibration batch; `bound` is the static bound of
  // its output, checked against the ring.
  void emit(Step s, double bound) {
    const std::string name = s.name;
    const int32_t out = s.output;
    ++r_.stepsByKind[kindName(s.kind)];
    p_.steps.push_back(std::move(s));
    if (out < 0) return;
    bound_[out] = bound;
    ANVIL_CHECK(bound < 9.2e18, ErrorCode::kUnsupported, "mpc step '", name, "' may overflow the ring: its worst case |",
                bound, "| exceeds 2^63 (", std::log2(bound), " bits)");
    for (auto& values : cal_) {
      executeStep(p_, p_.steps.back(), values);
      for (Ring v : values[out]) maxSeen_ = std::max(maxSeen_, std::fabs(double(int64_t(v))));
    }
  }

  int64_t calibrationMaxAbs(int32_t id) const {
    int64_t m = 0;
    for (const auto& values : cal_)
      for (Ring v : values[id]) {
        int64_t x = int64_t(v);
        m = std::max(m, x < 0 ? (x == INT64_MIN ? INT64_MAX : -x) : x);
      }
    return m;
  }

  const Dims& shapeOf(int32_t id) const { return p_.tensors[id].shape; }
  double scaleOf(int32_t id) const { return p_.tensors[id].scale; }

  static Dims staticShape(const Value* v, const Node& n) {
    ANVIL_CHECK(v->shape().isStatic(), ErrorCode::kUnsupported, n.label(), ": value '", v->name(), "' has shape ",
                v->shape().str(), "; the mpc mode needs static shapes (--shapes)");
    return v->shape().extents();
  }

  int32_t act(const Value* v, const Node& n) const {
    auto it = ids_.find(v);
    ANVIL_CHECK(it != ids_.end(), ErrorCode::kUnsupported, n.label(), ": input '", v ? v->name() : "",
                "' is not an activation the mpc mode computes (a constant in this position is not supported)");
    return it->second;
  }

  static const Tensor* constOf(const Value* v) {
    if (!v) return nullptr;
    if (v->initializer()) return v->initializer();
    if (v->producer() && v->producer()->op() == "Constant") return v->producer()->attrs().getTensor("value");
    return nullptr;
  }

  bool isGraphOutput(const Value* v) const {
    return std::find(g_.outputs().begin(), g_.outputs().end(), v) != g_.outputs().end();
  }

  int32_t reshape(const std::string& name, int32_t in, Dims shape, const std::string& tensorName) {
    int32_t out = addTensor(tensorName, shape, scaleOf(in));
    Step s;
    s.kind = StepKind::kReshape;
    s.name = name;
    s.inputs = {in};
    s.output = out;
    emit(std::move(s), bound_[in]);
    return out;
  }

  // Brings `in` to the finer `scale` (an integer multiple of it) with kMulConst.
  int32_t toScale(const Node& n, int32_t in, double scale) {
    if (scaleOf(in) == scale) return in;
    int64_t f;
    ANVIL_CHECK(integerRatio(scaleOf(in), scale, &f), ErrorCode::kUnsupported, n.label(), ": operand scales ",
                scaleOf(in), " and ", scale, " are not an integer ratio apart");
    int32_t out = addTensor("", shapeOf(in), scale);
    Step s;
    s.kind = StepKind::kMulConst;
    s.name = n.name() + "/align";
    s.inputs = {in};
    s.output = out;
    s.factor = f;
    emit(std::move(s), bound_[in] * double(f));
    return out;
  }

  // Makes the operands' scales integer multiples of the finest (what kMulConst aligns):
  // operands at a scale off the power-of-two grid (a scale change by a constant, below) go
  // through an identity table, whose output scale is a power of two.
  void commensurate(const Node& n, std::vector<int32_t*> ids) {
    auto ok = [&] {
      double fine = scaleOf(*ids[0]);
      for (int32_t* id : ids) fine = std::min(fine, scaleOf(*id));
      int64_t f;
      for (int32_t* id : ids)
        if (!integerRatio(scaleOf(*id), fine, &f)) return false;
      return true;
    };
    if (ok()) return;
    for (int32_t* id : ids) {
      int e;
      if (std::frexp(scaleOf(*id), &e) != 0.5) *id = requantize(n.name() + "/rescale", *id, "");
    }
    if (ok()) return;
    for (int32_t* id : ids) *id = requantize(n.name() + "/rescale", *id, "");
  }

  // ---- lowering

  void lowerInput(const Value* v, size_t index) {
    ANVIL_CHECK(v->shape().isStatic(), ErrorCode::kUnsupported, "graph input '", v->name(), "' has shape ",
                v->shape().str(), "; give its static shape with --shapes");
    double maxAbs = 0;
    for (const auto& batch : calibInputs_)
      for (int64_t i = 0; i < batch[index].numel(); ++i) maxAbs = std::max(maxAbs, std::fabs(batch[index].getDouble(i)));
    double scale = pow2Ceil(maxAbs / std::exp2(o_.inputBits));
    int32_t id = addTensor(v->name(), v->shape().extents(), scale);
    for (size_t b = 0; b < cal_.size(); ++b) {
      const Tensor& t = calibInputs_[b][index];
      RingVec& r = cal_[b][id];
      r.resize(t.numel());
      for (int64_t i = 0; i < t.numel(); ++i) r[i] = quantize(t.getDouble(i), scale);
    }
    Step s;
    s.kind = StepKind::kInput;
    s.name = v->name();
    s.output = id;
    p_.inputs.push_back(id);
    if (index == 0) r_.inputScale = scale;
    // The input's bound is its calibration maximum: inputs beyond it scale the bound.
    emit(std::move(s), maxAbs / scale);
    ids_[v] = id;
  }

  void lowerNode(const Node& n) {
    const std::string& op = n.op();
    ANVIL_CHECK(n.domain().empty() || n.domain() == "ai.onnx", ErrorCode::kUnsupported, n.label(),
                ": the mpc mode lowers ONNX ops only (domain '", n.domain(), "')");
    if (op == "Constant") return;
    if (op == "Conv") return lowerConv(n);
    if (op == "Gemm") return lowerGemm(n);
    if (op == "MatMul") return lowerMatMul(n);
    if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "LeakyRelu" || op == "Gelu" || op == "Exp")
      return lowerActivation(n);
    if (op == "MaxPool") return lowerMaxPool(n);
    if (op == "AveragePool" || op == "GlobalAveragePool") return lowerAveragePool(n);
    if (op == "Flatten" || op == "Reshape" || op == "Squeeze" || op == "Unsqueeze") {
      int32_t in = act(n.input(0), n);
      const Dims to = staticShape(n.output(0), n);
      auto cf = channelFactors_.find(in);
      const int32_t id = reshape(n.name(), in, to, cf == channelFactors_.end() ? n.output(0)->name() : "");
      ids_[n.output(0)] = id;
      if (cf != channelFactors_.end()) {  // [N, C, H, W] -> [N, C*H*W] (reluToLinear): factors per feature
        ChannelFactors f = cf->second;
        const Dims& from = shapeOf(in);
        if (to != from) {
          ANVIL_CHECK(f.axis == 1 && to.size() == 2 && from.size() >= 2, ErrorCode::kInternal, n.label(),
                      ": channel factors through this reshape");
          const int64_t inner = numelOf(from) / (from[0] * from[1]);
          ChannelFactors e;
          e.axis = 1;
          for (size_t c = 0; c < f.g.size(); ++c)
            for (int64_t i = 0; i < inner; ++i) {
              e.g.push_back(f.g[c]);
              e.alias.push_back(f.alias[c] < 0 ? -1 : f.alias[c] * inner + i);
              e.ratio.push_back(f.ratio[c]);
            }
          f = std::move(e);
        }
        channelFactors_[id] = std::move(f);
        nonneg_[id] = nonneg_[in];
      }
      return;
    }
    if (op == "Transpose") return lowerTranspose(n);
    if (op == "Concat") return lowerConcat(n);
    if (op == "Slice") return lowerSlice(n);
    if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") return lowerBinary(n);
    if (op == "ReduceMean" || op == "ReduceSum") return lowerReduce(n);
    if (op == "Softmax") return lowerSoftmax(n);
    if (op == "LayerNormalization") return lowerLayerNorm(n);
    ANVIL_THROW(ErrorCode::kUnsupported, n.label(), ": the mpc mode has no lowering for ", op);
  }

  // A linear layer's float weights in the step's layout and its per-output-channel bias.
  struct FloatLinear {
    LinearKind kind = LinearKind::kMatMul;
    Dims weightShape;
    std::vector<double> W, bias;  // bias: one per output channel
    ConvGeometry conv;
    int64_t outChannels() const { return kind == LinearKind::kMatMul ? weightShape[1] : weightShape[0]; }
  };

  // The constant `c` as one value per output channel of a linear output of `outShape`
  // (channel axis `caxis`), or false when it varies along another axis.
  static bool perChannel(const Tensor& c, const Dims& outShape, size_t caxis, std::vector<double>* pc) {
    const size_t r = outShape.size();
    if (c.rank() > r) return false;
    Dims cd(r - c.rank(), 1);
    cd.insert(cd.end(), c.dims().begin(), c.dims().end());
    for (size_t k = 0; k < r; ++k)
      if (cd[k] != 1 && (k != caxis || cd[k] != outShape[k])) return false;
    pc->assign(outShape[caxis], 0);
    for (int64_t i = 0; i < outShape[caxis]; ++i) (*pc)[i] = c.getDouble(c.numel() == 1 ? 0 : i);
    return true;
  }

  void lowerLinear(const Node& n, int32_t in, FloatLinear L) {
    // Absorb the chain of per-channel Add / Sub / Mul / Div by constants that follows
    // (biases a MatMul exporter splits off, scalings), in float, before quantizing.
    const Value* out = n.output(0);
    const Dims outShape0 = staticShape(out, n);
    const size_t caxis = L.kind == LinearKind::kMatMul ? outShape0.size() - 1 : 1;
    const int64_t nOut = L.outChannels();
    if (L.bias.empty()) L.bias.assign(nOut, 0.0);
    // An input whose channels carry factors g_c (per-channel index scaling upstream): the
    // weights reading channel c take 1/g_c, so the layer computes the model's function.
    // A merged input channel c (alias k): its weights move onto channel k's, times ratio.
    if (auto cf = channelFactors_.find(in); cf != channelFactors_.end()) {
      const ChannelFactors& f = cf->second;
      const std::vector<double>& g = f.g;
      const int64_t rank = int64_t(shapeOf(in).size());
      if (L.kind == LinearKind::kMatMul) {
        ANVIL_CHECK(f.axis == rank - 1 && int64_t(g.size()) == L.weightShape[0], ErrorCode::kInternal, n.label(),
                    ": channel factors off the contracted axis");
        for (int64_t k = 0; k < L.weightShape[0]; ++k)
          if (f.alias[k] >= 0)
            for (int64_t j = 0; j < nOut; ++j) {
              L.W[f.alias[k] * nOut + j] += f.ratio[k] * L.W[k * nOut + j];
              L.W[k * nOut + j] = 0;
            }
        for (int64_t k = 0; k < L.weightShape[0]; ++k)
          for (int64_t j = 0; j < nOut; ++j) L.W[k * nOut + j] /= g[k];
      } else {
        const int64_t ic = L.weightShape[1], kk = L.weightShape[2] * L.weightShape[3];
        ANVIL_CHECK(f.axis == 1 && L.conv.group == 1 && int64_t(g.size()) == ic, ErrorCode::kInternal, n.label(),
                    ": channel factors off the input channels");
        for (int64_t oc = 0; oc < nOut; ++oc)
          for (int64_t c = 0; c < ic; ++c) {
            for (int64_t k = 0; k < kk; ++k) {
              if (f.alias[c] >= 0) {
                L.W[(oc * ic + f.alias[c]) * kk + k] += f.ratio[c] * L.W[(oc * ic + c) * kk + k];
                L.W[(oc * ic + c) * kk + k] = 0;
              }
            }
          }
        for (int64_t oc = 0; oc < nOut; ++oc)
          for (int64_t c = 0; c < ic; ++c)
            for (int64_t k = 0; k < kk; ++k) L.W[(oc * ic + c) * kk + k] /= g[c];
      }
    }
    while (!isGraphOutput(out)) {
      std::vector<Node*> users = g_.users(out);
      if (users.size() != 1) break;
      const Node& u = *users[0];
      const std::string& op = u.op();
      if (!(op == "Add" || op == "Sub" || op == "Mul" || op == "Div") || u.numInputs() != 2) break;
      const bool first = u.input(0) == out;
      const Tensor* c = constOf(first ? u.input(1) : u.input(0));
      if (!c || (!first && (op == "Sub" || op == "Div"))) break;
      if (!u.output(0)->shape().isStatic() || u.output(0)->shape().extents() != outShape0) break;
      std::vector<double> pc;
      if (!perChannel(*c, outShape0, caxis, &pc)) break;
      for (int64_t ch = 0; ch < nOut; ++ch) {
        double f = pc[ch];
        if (op == "Add") L.bias[ch] += f;
        if (op == "Sub") L.bias[ch] -= f;
        if (op == "Mul" || op == "Div") {
          if (op == "Div") f = 1.0 / f;
          L.bias[ch] *= f;
          if (L.kind == LinearKind::kMatMul) {
            for (int64_t k = 0; k < L.weightShape[0]; ++k) L.W[k * nOut + ch] *= f;
          } else {
            const int64_t per = int64_t(L.W.size()) / nOut;
            for (int64_t k = 0; k < per; ++k) L.W[ch * per + k] *= f;
          }
        }
      }
      absorbed_.insert(&u);
      out = u.output(0);
    }
    double wMax = 0;
    for (double w : L.W) wMax = std::max(wMax, std::fabs(w));
    Step s;
    s.kind = StepKind::kLinear;
    s.name = n.name();
    s.inputs = {in};
    s.linear = L.kind;
    s.weightShape = L.weightShape;
    s.weightScale = pow2Ceil(wMax / std::exp2(o_.weightBits));
    s.conv = L.conv;
    s.weights.resize(L.W.size());
    for (size_t i = 0; i < L.W.size(); ++i) s.weights[i] = toRing(L.W[i] / s.weightScale, n.label() + " weight");
    // An input too wide for these weights (a product that could leave 2^60) goes through
    // an identity table first.
    double colSum = 0;
    for (int64_t ch = 0; ch < nOut; ++ch) {
      double sum = 0;
      const int64_t per = int64_t(L.W.size()) / nOut;
      for (int64_t k = 0; k < per; ++k)
        sum += std::fabs(double(int64_t(s.weights[L.kind == LinearKind::kMatMul ? k * nOut + ch : ch * per + k])));
      colSum = std::max(colSum, sum);
    }
    if (colSum * bound_[in] > std::exp2(60)) {
      in = narrow(n, in);
      s.inputs = {in};
    }
    // Biases and the static bound (per output channel, sum |Wq| * bound(in) + |bias|) for
    // a weight scale.
    auto quantize = [&](Step& st, double weightScale) {
      st.weightScale = weightScale;
      for (size_t i = 0; i < L.W.size(); ++i) st.weights[i] = toRing(L.W[i] / weightScale, n.label() + " weight");
      const double outScale = scaleOf(in) * weightScale;
      st.bias.clear();
      bool anyBias = false;
      for (double b : L.bias) anyBias |= b != 0;
      if (anyBias) {
        st.bias.resize(nOut);
        for (int64_t i = 0; i < nOut; ++i) st.bias[i] = toRing(L.bias[i] / outScale, n.label() + " bias");
      }
      double bound = 0;
      const int64_t per = int64_t(L.W.size()) / nOut;
      for (int64_t ch = 0; ch < nOut; ++ch) {
        double sum = 0;
        for (int64_t k = 0; k < per; ++k)
          sum += std::fabs(double(int64_t(st.weights[L.kind == LinearKind::kMatMul ? k * nOut + ch : ch * per + k])));
        double b = st.bias.empty() ? 0 : std::fabs(double(int64_t(st.bias[ch])));
        bound = std::max(bound, sum * bound_[in] + b);
      }
      return bound;
    };
    const double bound = quantize(s, s.weightScale);
    s.output = addTensor(out->name(), staticShape(out, n), scaleOf(in) * s.weightScale);
    const int32_t id = s.output;
    emit(s, bound);
    ids_[out] = id;
    // A layer whose only reader is a table: the power-of-two scales put its calibration
    // maximum anywhere in [64, 127] of the 8-bit index; a weight scale up to 2x finer
    // (this output's scale is read by the table alone) brings it near 125, up to one more
    // bit at the nonlinearity.
    std::vector<Node*> users = g_.users(out);
    static const std::set<std::string> kTables = {"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Gelu"};
    if (isGraphOutput(out) || users.size() != 1 || !kTables.count(users[0]->op())) return;
    bool pooled = false;
    if (o_.indexScaling != IndexScaling::kOff && reluToLinear(out, caxis, &pooled)) {
      scaleChannels(n, s, L, caxis, pooled, quantize);
      return;
    }
    const int64_t m = calibrationMaxAbs(id);
    if (m == 0) return;
    const double c = 110.0 * std::exp2(chooseShift(m)) / double(m);
    if (c < 1.05) return;
    const double refined = quantize(s, s.weightScale / c);
    p_.steps.back() = s;
    p_.tensors[id].scale = scaleOf(in) * s.weightScale;
    rerunLast(refined);
  }

  // Whether the linear output `v` (channels along `axis`) goes through one ReLU, then
  // MaxPool / Flatten steps, into a linear layer with constant weights, each the only
  // reader of the one before: a path whose steps commute with positive per-channel
  // factors, so its channels can be scaled apart (scaleChannels). `pooled`: a MaxPool is on it.
  bool reluToLinear(const Value* v, int64_t axis, bool* pooled) const {
    *pooled = false;
    for (bool first = true;; first = false) {
      if (isGraphOutput(v) || !v->shape().isStatic()) return false;
      std::vector<Node*> users = g_.users(v);
      if (users.size() != 1) return false;
      const Node& u = *users[0];
      if (u.numInputs() < 1 || u.input(0) != v) return false;
      for (size_t i = 1; i < u.numInputs(); ++i)
        if (u.input(i) == v) return false;
      const std::string& op = u.op();
      const int64_t rank = int64_t(v->shape().rank());
      if (first) {
        if (op != "Relu") return false;
      } else if (op == "MaxPool") {
        if (u.numOutputs() > 1 && u.output(1) && !u.output(1)->name().empty()) return false;
        *pooled = true;
      } else if (op == "Flatten" || op == "Reshape") {
        if (!u.output(0)->shape().isStatic()) return false;
        const Dims to = u.output(0)->shape().extents(), from = v->shape().extents();
        if (to != from) {
          if (axis != 1 || to.size() != 2 || to[0] != from[0]) return false;
          axis = 1;
        }
      } else if (op == "Conv") {
        return constOf(u.input(1)) && u.attrs().getInt("group", 1) == 1 && axis == 1 && rank == 4;
      } else if (op == "Gemm") {
        return constOf(u.input(1)) && u.attrs().getInt("transA", 0) == 0 && rank == 2 && axis == 1;
      } else if (op == "MatMul") {
        const Tensor* b = constOf(u.input(1));
        return b && b->rank() == 2 && axis == rank - 1;
      } else {
        return false;
      }
      v = u.output(0);
    }
  }

  // Per-channel index scaling of a linear layer read by a ReLU (reluToLinear): one shift
  // serves every channel, so with one weight scale a channel of small range reaches few of
  // the 8-bit index's levels. Each output channel c instead gets a factor g_c (its weight
  // row and bias times g_c, before quantization) that puts its calibration maximum at the
  // same index near the table's top, or its minimum near the bottom, whichever comes
  // first; the ReLU then outputs the index itself (exact, and 8-bit, so a MaxPool after it
  // compares with shift 0: no truncation), and the next linear layer takes 1/g_c on the
  // weights reading channel c. The table's range is one-sided where the channels are:
  // a ReLU's negative inputs need only stay inside it, so the split of the 256 indices
  // between negative and positive values follows the calibration ranges (a MaxPool after
  // the ReLU needs its outputs within 127: the differences it compares fit 8 bits).
  template <class Quantize>
  void scaleChannels(const Node& n, Step& s, FloatLinear& L, size_t caxis, bool pooled, Quantize& quantize) {
    const int32_t id = s.output;
    const Dims& shape = shapeOf(id);
    const int64_t C = shape[caxis];
    const int64_t per = int64_t(L.W.size()) / C;
    auto w = [&](int64_t c, int64_t k) -> double& {
      return L.W[L.kind == LinearKind::kMatMul ? k * C + c : c * per + k];
    };
    // Channels that are a positive multiple of an earlier one (weights and bias): the
    // ReLU of one is the other's times that ratio, so the next layer reads the earlier
    // one for both and this one is computed as 0. A model may rely on such copies
    // cancelling (large opposite weights downstream): exact in the fixed run, but the
    // secure run rounds each copy's index independently, and the difference is amplified.
    std::vector<int64_t> alias(C, -1);
    std::vector<double> ratio(C, 0), norm(C, 0);
    for (int64_t c = 0; c < C; ++c) {
      for (int64_t k = 0; k < per; ++k) norm[c] += w(c, k) * w(c, k);
      norm[c] = std::sqrt(norm[c] + L.bias[c] * L.bias[c]);
    }
    for (int64_t c = 1; c < C; ++c)
      for (int64_t k0 = 0; k0 < c && norm[c] > 0; ++k0) {
        if (alias[k0] >= 0 || norm[k0] == 0) continue;
        const double a = norm[c] / norm[k0];
        double diff = std::fabs(L.bias[c] - a * L.bias[k0]);
        for (int64_t k = 0; k < per && diff <= 1e-5 * norm[c]; ++k) diff = std::max(diff, std::fabs(w(c, k) - a * w(k0, k)));
        if (diff > 1e-5 * norm[c]) continue;
        alias[c] = k0;
        ratio[c] = a;
        for (int64_t k = 0; k < per; ++k) w(c, k) = 0;
        L.bias[c] = 0;
        break;
      }
    int64_t inner = 1;
    for (size_t k = caxis + 1; k < shape.size(); ++k) inner *= shape[k];
    // Calibration maximum and |minimum| per channel, in ring units at the current scale.
    std::vector<double> hi(C, 0), lo(C, 0);
    for (const auto& values : cal_)
      for (size_t i = 0; i < values[id].size(); ++i) {
        const int64_t c = int64_t(i / size_t(inner)) % C;
        const double v = double(int64_t(values[id][i]));
        hi[c] = std::max(hi[c], v);
        lo[c] = std::max(lo[c], -v);
      }
    for (int64_t c = 0; c < C; ++c)
      if (alias[c] >= 0) hi[c] = lo[c] = 0;  // computed as 0 from now on
    // A channel's range counts as at least a fraction of the widest channel's: a channel
    // calibration barely reaches (a dead or rare unit) is not blown up past what unseen
    // inputs may bring (they would wrap the index).
    {
      const double hMax = *std::max_element(hi.begin(), hi.end()), lMax = *std::max_element(lo.begin(), lo.end());
      for (int64_t c = 0; c < C; ++c) {
        hi[c] = std::max(hi[c], o_.channelFloor * hMax);
        lo[c] = std::max(lo[c], o_.channelFloor * lMax);
      }
    }
    // The split: N indices below zero, P = 255 - N above; N maximizes the levels the
    // channels reach on the positive side (a product over channels: log-sum).
    const double margin = o_.indexMargin;
    int bestN = 128;
    if (!pooled) {
      double best = -1e300;
      for (int N = 8; N <= 128; ++N) {
        const double P = 255 - N;
        double score = 0;
        for (int64_t c = 0; c < C; ++c)
          if (hi[c] > 0) score += std::log(lo[c] > 0 ? std::min(P, N * hi[c] / lo[c]) : P);
        if (score > best) best = score, bestN = N;
      }
    }
    const double N = bestN, P = bestN == 128 ? 127 : 255 - bestN;
    // r_c: the channel's extreme lands on index P or N (in ring units, shift 0).
    std::vector<double> r(C);
    double rMin = 1e300;
    for (int64_t c = 0; c < C; ++c) {
      const double e = std::max(hi[c] / P, lo[c] / N);
      r[c] = e > 0 ? 1.0 / e : 0;
      if (e > 0) rMin = std::min(rMin, r[c]);
    }
    if (rMin == 1e300) return;  // nothing reached: leave the layer as it is
    for (double& x : r)
      if (x == 0) x = rMin;
    // g_c = margin * r_c * 2^d at the same weight scale: d puts the largest scaled weight
    // in (2^14, 2^15] (the weight grid of every layer).
    double z = 0;
    for (int64_t c = 0; c < C; ++c)
      for (int64_t k = 0; k < per; ++k)
        z = std::max(z, std::fabs(L.W[L.kind == LinearKind::kMatMul ? k * C + c : c * per + k]) * r[c]);
    const int32_t d = int32_t(std::floor(std::log2(std::exp2(o_.weightBits) * s.weightScale / (margin * z))));
    ANVIL_CHECK(d >= 1 && d <= 56, ErrorCode::kInternal, n.label(), ": per-channel scaling found shift ", d);
    std::vector<double> g(C);
    for (int64_t c = 0; c < C; ++c) {
      g[c] = margin * r[c] * std::exp2(d);
      for (int64_t k = 0; k < per; ++k) L.W[L.kind == LinearKind::kMatMul ? k * C + c : c * per + k] *= g[c];
      L.bias[c] *= g[c];
    }
    const double bound = quantize(s, s.weightScale);
    p_.steps.back() = s;
    rerunLast(bound);
    channelFactors_[id] = {int64_t(caxis), g, alias, ratio};
    p_.tensors[id].name = "";  // per-channel factors: not the model's value (traceErrors skips it)
    reluPlans_[id] = {d, -int(N)};
  }

  // Runs the last step again on the calibration batches after its constants changed.
  void rerunLast(double bound) {
    const Step& s = p_.steps.back();
    bound_[s.output] = bound;
    ANVIL_CHECK(bound < 9.2e18, ErrorCode::kUnsupported, "mpc step '", s.name, "' may overflow the ring");
    for (auto& values : cal_) {
      executeStep(p_, s, values);
      for (Ring v : values[s.output]) maxSeen_ = std::max(maxSeen_, std::fabs(double(int64_t(v))));
    }
  }

  void lowerConv(const Node& n) {
    const Tensor* w = constOf(n.input(1));
    ANVIL_CHECK(w && w->rank() == 4, ErrorCode::kUnsupported, n.label(),
                ": the mpc mode lowers 2-D convolutions with constant weights");
    int32_t in = act(n.input(0), n);
    FloatLinear L;
    L.kind = LinearKind::kConv;
    L.weightShape = w->dims();
    L.W = toDoubles(*w);
    if (const Tensor* b = constOf(n.input(2))) L.bias = toDoubles(*b);
    else ANVIL_CHECK(!n.input(2), ErrorCode::kUnsupported, n.label(), ": a computed bias is not supported");
    const ir::Attributes& a = n.attrs();
    std::vector<int64_t> strides = a.getInts("strides", {1, 1}), dil = a.getInts("dilations", {1, 1});
    std::vector<int64_t> pads = a.getInts("pads", {0, 0, 0, 0});
    L.conv.group = a.getInt("group", 1);
    for (int k = 0; k < 2; ++k) {
      L.conv.kernel[k] = w->dim(2 + k);
      L.conv.stride[k] = strides.at(k);
      L.conv.dilation[k] = dil.at(k);
    }
    setPads(n, a, shapeOf(in), staticShape(n.output(0), n), &L.conv, pads);
    lowerLinear(n, in, std::move(L));
  }

  // Explicit pads, or SAME_* / VALID resolved against the inferred output shape.
  static void setPads(const Node& n, const ir::Attributes& a, const Dims& in, const Dims& out, ConvGeometry* g,
                      std::vector<int64_t> pads) {
    std::string autoPad = a.getString("auto_pad", "NOTSET");
    ANVIL_CHECK(in.size() == 4, ErrorCode::kUnsupported, n.label(), ": the mpc mode lowers 2-D (NCHW) windows only");
    if (autoPad == "NOTSET" || autoPad == "VALID") {
      if (autoPad == "VALID") pads = {0, 0, 0, 0};
      ANVIL_CHECK(pads.size() == 4, ErrorCode::kUnsupported, n.label(), ": pads for two spatial axes expected");
      for (int k = 0; k < 4; ++k) g->pads[k] = pads[k];
    } else {
      for (int k = 0; k < 2; ++k) {
        int64_t span = g->dilation[k] * (g->kernel[k] - 1) + 1;
        int64_t total = std::max<int64_t>((out[2 + k] - 1) * g->stride[k] + span - in[2 + k], 0);
        int64_t begin = autoPad == "SAME_UPPER" ? total / 2 : total - total / 2;
        g->pads[k] = begin;
        g->pads[k + 2] = total - begin;
      }
    }
  }

  void lowerGemm(const Node& n) {
    const ir::Attributes& a = n.attrs();
    const Tensor* B = constOf(n.input(1));
    ANVIL_CHECK(B && B->rank() == 2, ErrorCode::kUnsupported, n.label(),
                ": the mpc mode lowers Gemm with a constant B (the server's weights)");
    int32_t in = act(n.input(0), n);
    if (a.getInt("transA", 0) != 0) {  // a local transpose of the activation first
      Step t;
      t.kind = StepKind::kTranspose;
      t.name = n.name() + "/transA";
      t.inputs = {in};
      t.perm = {1, 0};
      t.output = addTensor("", {shapeOf(in)[1], shapeOf(in)[0]}, scaleOf(in));
      const int32_t id = t.output;
      emit(std::move(t), bound_[in]);
      in = id;
    }
    const bool transB = a.getInt("transB", 0) != 0;
    const double alpha = a.getFloat("alpha", 1.0f), beta = a.getFloat("beta", 1.0f);
    const int64_t K = transB ? B->dim(1) : B->dim(0), N = transB ? B->dim(0) : B->dim(1);
    FloatLinear L;
    L.weightShape = {K, N};
    L.W.resize(K * N);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < N; ++j) L.W[k * N + j] = alpha * B->getDouble(transB ? j * K + k : k * N + j);
    if (n.input(2)) {
      const Tensor* C = constOf(n.input(2));
      std::vector<double> pc;
      ANVIL_CHECK(C && perChannel(*C, staticShape(n.output(0), n), 1, &pc), ErrorCode::kUnsupported, n.label(),
                  ": the mpc mode lowers Gemm's C as a constant bias per output column");
      for (double& v : pc) v *= beta;
      L.bias = pc;
    }
    lowerLinear(n, in, std::move(L));
  }

  void lowerMatMul(const Node& n) {
    const Tensor* B = constOf(n.input(1));
    if (B) {
      ANVIL_CHECK(B->rank() == 2, ErrorCode::kUnsupported, n.label(), ": a constant MatMul operand of rank ",
                  B->rank(), " (2 expected)");
      FloatLinear L;
      L.weightShape = B->dims();
      L.W = toDoubles(*B);
      lowerLinear(n, act(n.input(0), n), std::move(L));
      return;
    }
    int32_t a = narrow(n, act(n.input(0), n)), b = narrow(n, act(n.input(1), n));
    const Dims out = staticShape(n.output(0), n);
    Step s;
    s.kind = StepKind::kMatMul;
    s.name = n.name();
    s.inputs = {a, b};
    s.output = addTensor(n.output(0)->name(), out, scaleOf(a) * scaleOf(b));
    const int32_t id = s.output;
    emit(std::move(s), bound_[a] * bound_[b] * double(shapeOf(a).back()));
    ids_[n.output(0)] = id;
  }

  // ---- lookup tables

  static int32_t chooseShift(int64_t maxAbs) {
    for (int32_t d = 0; d <= 56; ++d) {
      const uint64_t half = d ? uint64_t(1) << (d - 1) : 0;
      if (((uint64_t(maxAbs) + half) >> d) <= 127) return d;
    }
    ANVIL_THROW(ErrorCode::kInternal, "no shift brings ", maxAbs, " to 8 bits");
  }

  // A kLut step computing f on `in`, its shift and table from the calibration values.
  // `atLeast`: a magnitude (ring units) the index range must cover besides calibration's.
  // `low`: the least truncated value t the 256 entries stand for (entry idx is the t in
  // [low, low + 255] with t = idx mod 256): -128 for a signed input; -1 for an input that
  // is never negative (sums of exps, variances), so values up to 254 index right instead of
  // wrapping (and -1, what the secure run's truncation may make of a 0, stays -1); -239 for
  // exp after the maximum is subtracted (t <= ~16). The shift is chosen the same way, so a
  // one-sided table has twice the range before anything wraps.
  int32_t emitLut(const std::string& name, int32_t in, LutFunction fn, const std::function<double(double)>& f,
                  const std::string& outName, const Dims& outShape, int64_t atLeast = 0, int low = -128,
                  const ReluPlan* plan = nullptr) {
    if (plan) low = plan->low;
    auto valueOf = [low](uint8_t idx) { return int((int(idx) - low) & 255) + low; };
    const int64_t m = std::max(calibrationMaxAbs(in), atLeast);
    Step s;
    s.kind = StepKind::kLut;
    s.name = name;
    s.inputs = {in};
    s.function = fn;
    s.shift = plan ? plan->shift : chooseShift(m);
    s.tableLow = low;
    const double step = scaleOf(in) * std::exp2(s.shift);
    // The output scale gives ~2^tableBits steps over f's range on the indices calibration
    // reached; entries beyond them saturate at twice that (exp's far end would otherwise
    // swallow every value calibration sees).
    int lo = 1 << 20, hi = -(1 << 20);
    for (const auto& values : cal_)
      for (Ring v : values[in]) {
        int t = valueOf(lutIndex(v, s.shift));
        lo = std::min(lo, t);
        hi = std::max(hi, t);
      }
    if (lo > hi) lo = hi = 0;
    std::vector<double> y(256);
    double yMax = 0;
    for (int idx = 0; idx < 256; ++idx) {
      const int t = valueOf(uint8_t(idx));
      y[idx] = f(double(t) * step);
      ANVIL_CHECK(std::isfinite(y[idx]), ErrorCode::kInternal, name, ": table value is not finite");
      if (t >= lo && t <= hi) yMax = std::max(yMax, std::fabs(y[idx]));
    }
    // A planned ReLU (scaleChannels) outputs its index itself: exact, at the index's scale.
    const double outScale = plan ? step : pow2Ceil(yMax / std::exp2(o_.tableBits));
    const double limit = plan ? 255 : std::exp2(o_.tableBits + 1);
    s.table.resize(256);
    double bound = 0;
    for (int idx = 0; idx < 256; ++idx) {
      s.table[idx] = toRing(std::clamp(y[idx] / outScale, -limit, limit), name + " table");
      bound = std::max(bound, std::fabs(double(int64_t(s.table[idx]))));
    }
    s.output = addTensor(outName, outShape, outScale);
    if (plan) nonneg_[s.output] = true;
    const int32_t id = s.output;
    r_.luts.push_back({name, StepKind::kLut, fn, s.shift, scaleOf(in), outScale,
                       int64_t((uint64_t(m) + (s.shift ? uint64_t(1) << (s.shift - 1) : 0)) >> s.shift), low});
    emit(std::move(s), bound);
    return id;
  }

  void lowerActivation(const Node& n) {
    const std::string& op = n.op();
    int32_t in = act(n.input(0), n);
    const Value* out = n.output(0);
    LutFunction fn;
    std::function<double(double)> f;
    if (op == "Relu") {
      fn = LutFunction::kRelu;
      f = [](double x) { return x > 0 ? x : 0.0; };
    } else if (op == "LeakyRelu") {
      const double alpha = n.attrs().getFloat("alpha", 0.01f);
      fn = LutFunction::kLeakyRelu;
      f = [alpha](double x) { return x > 0 ? x : alpha * x; };
    } else if (op == "Sigmoid") {
      fn = LutFunction::kSigmoid;
      f = [](double x) { return 1.0 / (1.0 + std::exp(-x)); };
      // Silu: x * Sigmoid(x) is one table.
      std::vector<Node*> users = g_.users(out);
      if (users.size() == 1 && users[0]->op() == "Mul" && !isGraphOutput(out) &&
          ((users[0]->input(0) == n.input(0) && users[0]->input(1) == out) ||
           (users[0]->input(1) == n.input(0) && users[0]->input(0) == out))) {
        absorbed_.insert(users[0]);
        out = users[0]->output(0);
        fn = LutFunction::kSilu;
        f = [](double x) { return x / (1.0 + std::exp(-x)); };
      }
    } else if (op == "Tanh") {
      fn = LutFunction::kTanh;
      f = [](double x) { return std::tanh(x); };
    } else if (op == "Gelu") {
      fn = LutFunction::kGelu;
      if (n.attrs().getString("approximate", "none") == "tanh")
        f = [](double x) { return 0.5 * x * (1 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); };
      else
        f = [](double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); };
    } else if (op == "Exp") {
      fn = LutFunction::kExp;
      f = [](double x) { return std::exp(x); };
    } else {
      ANVIL_THROW(ErrorCode::kUnsupported, n.label(), ": ", op, " has no table in the mpc mode");
    }
    auto plan = reluPlans_.find(in);
    if (plan != reluPlans_.end() && fn == LutFunction::kRelu) {
      // Per-channel scaled (scaleChannels): the planned shift and range, index-valued output,
      // the channel factors carried on. The tensor's scale no longer reads as one real value
      // per element, so it keeps no model name (traceErrors compares named tensors).
      const int32_t id = emitLut(n.name(), in, fn, f, "", staticShape(out, n), 0, -128, &plan->second);
      channelFactors_[id] = channelFactors_.at(in);
      ids_[out] = id;
      return;
    }
    ids_[out] = emitLut(n.name(), in, fn, f, out->name(), staticShape(out, n));
  }

  void lowerMaxPool(const Node& n) {
    ANVIL_CHECK(n.numOutputs() == 1 || !n.output(1) || n.output(1)->name().empty(), ErrorCode::kUnsupported,
                n.label(), ": MaxPool's Indices output is not supported");
    int32_t in = act(n.input(0), n);
    const Dims out = staticShape(n.output(0), n);
    Step s;
    s.kind = StepKind::kMaxPool;
    s.name = n.name();
    s.inputs = {in};
    const std::vector<int64_t> k = readPoolWindow(n, shapeOf(in), out, &s.conv);
    ANVIL_CHECK(windowOutputShape(s.conv, shapeOf(in), shapeOf(in)[1]) == out, ErrorCode::kUnsupported, n.label(),
                ": ceil_mode output extents are not supported");
    ids_[n.output(0)] = emitMaxPool(std::move(s), in, out, n.output(0)->name(), k);
  }

  // A 2-D pooling node's window (kernel, strides, dilations, pads) into `g`; returns the kernel.
  std::vector<int64_t> readPoolWindow(const Node& n, const Dims& inShape, const Dims& out, ConvGeometry* g) {
    const ir::Attributes& a = n.attrs();
    std::vector<int64_t> k = a.getInts("kernel_shape"), st = a.getInts("strides", {1, 1}),
                         dil = a.getInts("dilations", {1, 1});
    ANVIL_CHECK(k.size() == 2 && st.size() == 2 && dil.size() == 2, ErrorCode::kUnsupported, n.label(),
                ": 2-D pooling only");
    for (int i = 0; i < 2; ++i) {
      g->kernel[i] = k[i];
      g->stride[i] = st[i];
      g->dilation[i] = dil[i];
    }
    setPads(n, a, inShape, out, g, a.getInts("pads", {0, 0, 0, 0}));
    return k;
  }

  // A kMaxPool step (geometry set) with its shift and ReLU table from the calibration values.
  int32_t emitMaxPool(Step s, int32_t in, const Dims& out, const std::string& outName, const std::vector<int64_t>& k) {
    // The compared differences a - b stay within the input's range plus the rounding each
    // level may add; the shift brings that to 8 bits.
    int64_t range = 0;
    for (const auto& values : cal_) {
      int64_t lo = INT64_MAX, hi = INT64_MIN;
      for (Ring v : values[in]) {
        lo = std::min(lo, int64_t(v));
        hi = std::max(hi, int64_t(v));
      }
      if (!values[in].empty()) range = std::max(range, hi - lo);
    }
    int32_t d = chooseShift(range);
    while (d < 56 && ((uint64_t(range) + (uint64_t(1) << d) + (uint64_t(1) << d >> 1)) >> d) > 127) ++d;
    // Inputs known to lie in [0, 127] (a ReLU's index-valued output): every difference
    // fits 8 bits as it is, so shift 0 compares exactly (no truncation, no rounding).
    if (nonneg_[in] && bound_[in] <= 127) d = 0;
    s.shift = d;
    s.function = LutFunction::kRelu;
    s.table.resize(256);
    for (int idx = 0; idx < 256; ++idx) {
      int64_t t = int8_t(uint8_t(idx));
      s.table[idx] = Ring(t > 0 ? t << d : 0);
    }
    s.output = addTensor(channelFactors_.count(in) ? "" : outName, out, scaleOf(in));
    const int32_t id = s.output;
    if (auto cf = channelFactors_.find(in); cf != channelFactors_.end()) channelFactors_[id] = cf->second;
    nonneg_[id] = nonneg_[in];
    r_.luts.push_back({s.name, StepKind::kMaxPool, LutFunction::kRelu, d, scaleOf(in), scaleOf(in),
                       int64_t((uint64_t(range) + (d ? uint64_t(1) << (d - 1) : 0)) >> d)});
    const double levels = std::ceil(std::log2(double(std::max<int64_t>(2, k[0] * k[1]))));
    emit(std::move(s), bound_[in] + levels * std::exp2(d));
    return id;
  }

  void lowerAveragePool(const Node& n) {
    int32_t in = act(n.input(0), n);
    const Dims inShape = shapeOf(in), out = staticShape(n.output(0), n);
    Step s;
    s.kind = StepKind::kSumPool;
    s.name = n.name();
    s.inputs = {in};
    ANVIL_CHECK(inShape.size() == 4, ErrorCode::kUnsupported, n.label(), ": 2-D pooling only");
    if (n.op() == "GlobalAveragePool") {
      s.conv.kernel[0] = inShape[2];
      s.conv.kernel[1] = inShape[3];
    } else {
      const ir::Attributes& a = n.attrs();
      readPoolWindow(n, inShape, out, &s.conv);
      bool padded = false;
      for (int64_t p : s.conv.pads) padded |= p != 0;
      // A window sum skips the padding; dividing by the full window is then exact only
      // when the padding counts (count_include_pad) or there is none.
      ANVIL_CHECK(!padded || a.getInt("count_include_pad", 0) != 0, ErrorCode::kUnsupported, n.label(),
                  ": padded AveragePool without count_include_pad has a varying divisor");
    }
    ANVIL_CHECK(windowOutputShape(s.conv, inShape, inShape[1]) == out, ErrorCode::kUnsupported, n.label(),
                ": ceil_mode output extents are not supported");
    const int64_t count = s.conv.kernel[0] * s.conv.kernel[1];
    s.output = addTensor(n.output(0)->name(), out, scaleOf(in) / double(count));
    const int32_t id = s.output;
    emit(std::move(s), bound_[in] * double(count));
    ids_[n.output(0)] = id;
  }

  void lowerTranspose(const Node& n) {
    int32_t in = act(n.input(0), n);
    const size_t r = shapeOf(in).size();
    std::vector<int64_t> perm = n.attrs().getInts("perm");
    if (perm.empty())
      for (size_t k = 0; k < r; ++k) perm.push_back(int64_t(r - 1 - k));
    Step s;
    s.kind = StepKind::kTranspose;
    s.name = n.name();
    s.inputs = {in};
    s.perm = perm;
    s.output = addTensor(n.output(0)->name(), staticShape(n.output(0), n), scaleOf(in));
    const int32_t id = s.output;
    emit(std::move(s), bound_[in]);
    ids_[n.output(0)] = id;
  }

  void lowerConcat(const Node& n) {
    std::vector<int32_t> ins;
    double fine = 0;
    for (const Value* v : n.inputs()) {
      ins.push_back(act(v, n));
      fine = fine == 0 ? scaleOf(ins.back()) : std::min(fine, scaleOf(ins.back()));
    }
    std::vector<int32_t*> refs;
    for (int32_t& id : ins) refs.push_back(&id);
    commensurate(n, refs);
    fine = scaleOf(ins[0]);
    for (int32_t id : ins) fine = std::min(fine, scaleOf(id));
    double bound = 0;
    for (int32_t& id : ins) {
      id = toScale(n, id, fine);
      bound = std::max(bound, bound_[id]);
    }
    const Dims out = staticShape(n.output(0), n);
    Step s;
    s.kind = StepKind::kConcat;
    s.name = n.name();
    s.inputs = ins;
    int64_t axis = n.attrs().getInt("axis", 0);
    s.axis = axis < 0 ? axis + int64_t(out.size()) : axis;
    s.output = addTensor(n.output(0)->name(), out, fine);
    const int32_t id = s.output;
    emit(std::move(s), bound);
    ids_[n.output(0)] = id;
  }

  void lowerSlice(const Node& n) {
    int32_t in = act(n.input(0), n);
    const Dims xs = shapeOf(in), out = staticShape(n.output(0), n);
    const size_t r = xs.size();
    const Tensor *st = constOf(n.input(1)), *en = constOf(n.input(2)), *ax = constOf(n.input(3)),
                 *sp = constOf(n.input(4));
    ANVIL_CHECK(st && en && (!n.input(3) || ax) && (!n.input(4) || sp), ErrorCode::kUnsupported, n.label(),
                ": Slice needs constant starts, ends, axes and steps");
    Step s;
    s.kind = StepKind::kSlice;
    s.name = n.name();
    s.inputs = {in};
    s.starts.assign(r, 0);
    s.steps.assign(r, 1);
    s.ends = xs;
    for (int64_t i = 0; i < st->numel(); ++i) {
      int64_t a = ax ? ax->getInt(i) : i;
      if (a < 0) a += int64_t(r);
      const int64_t dim = xs.at(a), step = sp ? sp->getInt(i) : 1;
      int64_t b = st->getInt(i), e = en->getInt(i);
      if (b < 0) b += dim;
      if (e < 0) e += dim;
      if (step > 0) {
        b = std::clamp<int64_t>(b, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
      } else {
        b = std::clamp<int64_t>(b, 0, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
      }
      s.starts[a] = b;
      s.ends[a] = e;
      s.steps[a] = step;
    }
    s.output = addTensor(n.output(0)->name(), out, scaleOf(in));
    const int32_t id = s.output;
    emit(std::move(s), bound_[in]);
    ids_[n.output(0)] = id;
  }

  // Add/Sub/Mul/Div: of two activations (kAdd/kSub after aligning scales, kMul), or of an
  // activation and a constant (kScale: the constant is the server's).
  void lowerBinary(const Node& n) {
    const std::string& op = n.op();
    const Tensor* c0 = constOf(n.input(0));
    const Tensor* c1 = constOf(n.input(1));
    const Dims out = staticShape(n.output(0), n);
    if (!c0 && !c1) {
      int32_t a = act(n.input(0), n), b = act(n.input(1), n);
      Step s;
      s.name = n.name();
      if (op == "Mul") {
        a = narrow(n, a);
        b = narrow(n, b);
        ids_[n.output(0)] = emitMul(n.name(), a, b, out, n.output(0)->name());
        return;
      }
      ANVIL_CHECK(op != "Div", ErrorCode::kUnsupported, n.label(), ": division of two activations is not supported");
      commensurate(n, {&a, &b});
      // Aligning scales multiplies the coarser operand; where that would leave less than
      // 2^14 of headroom, the wider operand goes through an identity table first.
      auto aligned = [&] {
        const double fine = std::min(scaleOf(a), scaleOf(b));
        return bound_[a] * scaleOf(a) / fine + bound_[b] * scaleOf(b) / fine;
      };
      if (aligned() > std::exp2(48)) {
        if (bound_[a] >= bound_[b]) a = narrow(n, a);
        else b = narrow(n, b);
      }
      if (aligned() > std::exp2(48)) {
        a = narrow(n, a);
        b = narrow(n, b);
      }
      const double fine = std::min(scaleOf(a), scaleOf(b));
      a = toScale(n, a, fine);
      b = toScale(n, b, fine);
      s.kind = op == "Add" ? StepKind::kAdd : StepKind::kSub;
      s.inputs = {a, b};
      s.output = addTensor(n.output(0)->name(), out, fine);
      const int32_t id = s.output;
      emit(std::move(s), bound_[a] + bound_[b]);
      ids_[n.output(0)] = id;
      return;
    }
    ANVIL_CHECK(!(c0 && c1), ErrorCode::kInternal, n.label(), ": constant operands left after constant folding");
    const bool actFirst = c1 != nullptr;
    const Tensor& c = actFirst ? *c1 : *c0;
    int32_t a = act(n.input(actFirst ? 0 : 1), n);
    ANVIL_CHECK(shapeOf(a) == out, ErrorCode::kUnsupported, n.label(),
                ": a constant operand that broadcasts the activation is not supported");
    ANVIL_CHECK(op != "Div" || actFirst, ErrorCode::kUnsupported, n.label(), ": constant / activation is not supported");
    // A product with one positive scalar changes only what the ring elements stand for: a
    // new scale on the same elements (a kReshape), exact and free (attention's 1/sqrt(d)).
    if ((op == "Mul" || op == "Div") && c.numel() == 1 && c.getDouble(0) > 0 && std::isfinite(c.getDouble(0))) {
      const double k = op == "Mul" ? c.getDouble(0) : 1.0 / c.getDouble(0);
      int32_t id = reshape(n.name(), a, out, n.output(0)->name());
      p_.tensors[id].scale = scaleOf(a) * k;
      ids_[n.output(0)] = id;
      return;
    }
    // A product with a (up to 2^15) constant: a wide operand goes through a table first.
    if ((op == "Mul" || op == "Div") && bound_[a] > std::exp2(62 - o_.weightBits - 8)) a = narrow(n, a);
    // The constant over the output's trailing axes (its leading axes broadcast).
    const size_t r = out.size();
    Dims cd(r - std::min(r, c.rank()), 1);
    ANVIL_CHECK(c.rank() <= r, ErrorCode::kUnsupported, n.label(), ": constant of higher rank than the activation");
    cd.insert(cd.end(), c.dims().begin(), c.dims().end());
    size_t j = 0;
    while (j < r && cd[j] == 1) ++j;
    if (j == r) j = r - 1;
    Dims ws(out.begin() + j, out.end());
    if (ws.empty()) ws = {1};
    std::vector<double> cv(numelOf(ws));
    {
      Dims cs(cd.begin() + j, cd.end());
      if (cs.empty()) cs = {1};
      RingVec idx(c.numel());
      for (int64_t i = 0; i < c.numel(); ++i) idx[i] = Ring(i);
      RingVec zero(numelOf(ws), 0);
      RingVec map = addBroadcast(idx, cs, zero, ws, ws);  // flat constant index per weight
      for (size_t i = 0; i < map.size(); ++i) cv[i] = c.getDouble(int64_t(map[i]));
    }
    Step s;
    s.kind = StepKind::kScale;
    s.name = n.name();
    s.inputs = {a};
    s.weightShape = ws;
    std::vector<double> w(cv.size(), 1.0), bias(cv.size(), 0.0);
    if (op == "Add") bias = cv;
    if (op == "Sub" && actFirst)
      for (size_t i = 0; i < cv.size(); ++i) bias[i] = -cv[i];
    if (op == "Sub" && !actFirst)
      for (size_t i = 0; i < cv.size(); ++i) w[i] = -1.0, bias[i] = cv[i];
    if (op == "Mul") w = cv;
    if (op == "Div")
      for (size_t i = 0; i < cv.size(); ++i) w[i] = 1.0 / cv[i];
    double wMax = 0;
    for (double x : w) wMax = std::max(wMax, std::fabs(x));
    s.weightScale = (op == "Add" || op == "Sub") ? 1.0 : pow2Ceil(wMax / std::exp2(o_.weightBits));
    const double outScale = scaleOf(a) * s.weightScale;
    s.weights.resize(w.size());
    double wq = 0, bq = 0;
    for (size_t i = 0; i < w.size(); ++i) {
      s.weights[i] = toRing(w[i] / s.weightScale, n.label() + " constant");
      wq = std::max(wq, std::fabs(double(int64_t(s.weights[i]))));
    }
    bool anyBias = false;
    for (double b : bias) anyBias |= b != 0;
    if (anyBias) {
      s.bias.resize(bias.size());
      for (size_t i = 0; i < bias.size(); ++i) {
        s.bias[i] = toRing(bias[i] / outScale, n.label() + " constant");
        bq = std::max(bq, std::fabs(double(int64_t(s.bias[i]))));
      }
    }
    s.output = addTensor(n.output(0)->name(), out, outScale);
    const int32_t id = s.output;
    emit(std::move(s), bound_[a] * wq + bq);
    ids_[n.output(0)] = id;
  }

  // Sum over axes (keepdims), then a reshape when keepdims=0; ReduceMean divides the scale.
  // A kMul (Beaver product of two activations) a * b with shape `out`; returns its tensor.
  int32_t emitMul(const std::string& name, int32_t a, int32_t b, const Dims& out, const std::string& outName = "") {
    Step s;
    s.kind = StepKind::kMul;
    s.name = name;
    s.inputs = {a, b};
    s.output = addTensor(outName, out, scaleOf(a) * scaleOf(b));
    const int32_t id = s.output;
    emit(std::move(s), bound_[a] * bound_[b]);
    return id;
  }

  int32_t reduceSum(const std::string& name, int32_t in, std::vector<int64_t> axes, bool mean) {
    const Dims xs = shapeOf(in);
    Dims kept = xs;
    int64_t count = 1;
    for (int64_t& a : axes) {
      if (a < 0) a += int64_t(xs.size());
      count *= xs.at(a);
      kept[a] = 1;
    }
    std::sort(axes.begin(), axes.end());
    Step s;
    s.kind = StepKind::kReduceSum;
    s.name = name;
    s.inputs = {in};
    s.axes = axes;
    s.output = addTensor("", kept, mean ? scaleOf(in) / double(count) : scaleOf(in));
    const int32_t id = s.output;
    emit(std::move(s), bound_[in] * double(count));
    return id;
  }

  void lowerReduce(const Node& n) {
    int32_t in = act(n.input(0), n);
    std::vector<int64_t> axes = n.attrs().getInts("axes");
    if (n.input(1)) {
      const Tensor* t = constOf(n.input(1));
      ANVIL_CHECK(t, ErrorCode::kUnsupported, n.label(), ": computed reduction axes are not supported");
      axes = t->toInt64Vector();
    }
    if (axes.empty())
      for (size_t k = 0; k < shapeOf(in).size(); ++k) axes.push_back(int64_t(k));
    int32_t id = reduceSum(n.name(), in, axes, n.op() == "ReduceMean");
    ids_[n.output(0)] = reshape(n.name() + "/shape", id, staticShape(n.output(0), n), n.output(0)->name());
  }

  // Softmax over the last axis: the row maximum (kMaxPool over the row) subtracted, an exp
  // table, a sum, a reciprocal table, a shared product and a requantizing table. The
  // maximum is needed even though the table's input is 8-bit bounded: trained attention
  // logits span ~20, and without it exp's range (e^20) leaves no table steps for the rows
  // whose maximum is small (measured: top-1 23% on digits_transformer without, see docs).
  void lowerSoftmax(const Node& n) {
    int32_t in = act(n.input(0), n);
    const Dims xs = shapeOf(in);
    int64_t axis = n.attrs().getInt("axis", -1);
    if (axis < 0) axis += int64_t(xs.size());
    ANVIL_CHECK(axis == int64_t(xs.size()) - 1, ErrorCode::kUnsupported, n.label(),
                ": Softmax over an axis other than the last");
    // Row maximum through kMaxPool over [rows, 1, 1, L], subtracted before the exp table.
    const int64_t L = xs.back(), rows = numelOf(xs) / L;
    int32_t flat = reshape(n.name() + "/rows", in, {rows, 1, 1, L}, "");
    Step mp;
    mp.kind = StepKind::kMaxPool;
    mp.name = n.name() + "/max";
    mp.inputs = {flat};
    mp.conv.kernel[1] = mp.conv.stride[1] = L;
    int32_t mx = emitMaxPool(mp, flat, {rows, 1, 1, 1}, "", {1, L});
    Dims keep = xs;
    keep.back() = 1;
    int32_t m = reshape(n.name() + "/max_shape", mx, keep, "");
    Step sub;
    sub.kind = StepKind::kSub;
    sub.name = n.name() + "/shift";
    sub.inputs = {in, m};
    sub.output = addTensor("", xs, scaleOf(in));
    const int32_t centered = sub.output;
    emit(std::move(sub), 2 * bound_[in] + std::exp2(p_.steps.back().shift + 4));
    int32_t e = emitLut(n.name() + "/exp", centered, LutFunction::kExp, [](double x) { return std::exp(x); }, "", xs,
                        0, -239);
    int32_t sum = reduceSum(n.name() + "/sum", e, {axis}, false);
    int32_t rec = emitLut(n.name() + "/reciprocal", sum, LutFunction::kReciprocal, reciprocalOf(sum), "",
                          shapeOf(sum), 0, -1);
    const int32_t id = emitMul(n.name() + "/normalize", e, rec, xs);
    int32_t q = emitLut(n.name() + "/requantize", id, LutFunction::kIdentity, [](double x) { return x; }, "", xs, 0, -1);
    p_.tensors[q].name = n.output(0)->name();
    ids_[n.output(0)] = q;
  }

  // 1/x for a positive input: table entries at or below zero take the first positive grid
  // point's value (the input is a sum of positive terms; only wrap could make it <= 0).
  std::function<double(double)> reciprocalOf(int32_t in) const {
    const double grid = scaleOf(in) * std::exp2(chooseShift(calibrationMaxAbs(in)));
    return [grid](double x) { return 1.0 / std::max(x, grid); };
  }

  // Operands of a shared product wider than a table output go through an identity table
  // first, so products of two of them stay far inside the ring.
  int32_t narrow(const Node& n, int32_t id) {
    if (bound_[id] <= std::exp2(o_.tableBits + 1)) return id;
    return requantize(n.name() + "/narrow", id, "");
  }

  // An identity table: brings a wide product back to ~2^15 steps (8-bit resolution).
  int32_t requantize(const std::string& name, int32_t in, const std::string& outName) {
    int32_t id = emitLut(name, in, LutFunction::kIdentity, [](double x) { return x; }, "", shapeOf(in));
    p_.tensors[id].name = outName;
    return id;
  }

  // LayerNormalization over the trailing axes: mean (kReduceSum at scale/count, brought to
  // the input's grid with kMulConst), centering, square (kMul), variance, rsqrt table,
  // product, and gamma/beta as a kScale.
  void lowerLayerNorm(const Node& n) {
    int32_t in = act(n.input(0), n);
    const Dims xs = shapeOf(in);
    int64_t axis = n.attrs().getInt("axis", -1);
    if (axis < 0) axis += int64_t(xs.size());
    const double eps = n.attrs().getFloat("epsilon", 1e-5f);
    std::vector<int64_t> axes;
    int64_t count = 1;
    for (int64_t k = axis; k < int64_t(xs.size()); ++k) axes.push_back(k), count *= xs[k];
    // mean at scale s/count; x brought to the same grid by multiplying with count.
    int32_t mean = reduceSum(n.name() + "/mean", in, axes, true);
    int32_t xc = toScale(n, in, scaleOf(mean));
    Step sub;
    sub.kind = StepKind::kSub;
    sub.name = n.name() + "/center";
    sub.inputs = {xc, mean};
    sub.output = addTensor("", xs, scaleOf(mean));
    const int32_t d = sub.output;
    emit(std::move(sub), bound_[xc] + bound_[mean]);
    // Centered values to 8 bits through an identity table keeps the square in range.
    int32_t dq = emitLut(n.name() + "/center_q", d, LutFunction::kIdentity, [](double x) { return x; }, "", xs);
    const int32_t d2 = emitMul(n.name() + "/square", dq, dq, xs);
    int32_t var = reduceSum(n.name() + "/variance", d2, axes, true);
    const double grid = scaleOf(var) * std::exp2(chooseShift(calibrationMaxAbs(var)));
    int32_t rs = emitLut(n.name() + "/rsqrt", var, LutFunction::kRsqrt,
                         [eps, grid](double v) { return 1.0 / std::sqrt(std::max(v, grid / 2) + eps); }, "", shapeOf(var),
                         0, -1);
    const int32_t y = emitMul(n.name() + "/normalize", dq, rs, xs);
    // Normalized values are bounded by sqrt(count) (|x - mean| / std), and by ~1.25 times
    // that with the 8-bit variance's rounding; rows of small variance reach that bound
    // where calibration's typical maximum is far below it, so the index covers the bound.
    const int64_t normBound = int64_t(std::ceil(1.25 * std::sqrt(double(count)) / scaleOf(y)));
    int32_t yq = emitLut(n.name() + "/normalize_q", y, LutFunction::kIdentity, [](double x) { return x; }, "", xs,
                         normBound);
    // gamma, beta: a kScale over the normalized axes.
    const Tensor* gamma = constOf(n.input(1));
    const Tensor* beta = constOf(n.input(2));
    ANVIL_CHECK(gamma && (!n.input(2) || beta), ErrorCode::kUnsupported, n.label(),
                ": LayerNormalization needs constant scale and bias");
    Step s;
    s.kind = StepKind::kScale;
    s.name = n.name();
    s.inputs = {yq};
    s.weightShape = Dims(xs.begin() + axis, xs.end());
    double gMax = 0;
    for (int64_t i = 0; i < gamma->numel(); ++i) gMax = std::max(gMax, std::fabs(gamma->getDouble(i)));
    s.weightScale = pow2Ceil(gMax / std::exp2(o_.weightBits));
    const double outScale = scaleOf(yq) * s.weightScale;
    s.weights.resize(count);
    double wq = 0, bq = 0;
    for (int64_t i = 0; i < count; ++i) {
      s.weights[i] = toRing(gamma->getDouble(gamma->numel() == 1 ? 0 : i) / s.weightScale, n.label() + " scale");
      wq = std::max(wq, std::fabs(double(int64_t(s.weights[i]))));
    }
    if (beta) {
      s.bias.resize(count);
      for (int64_t i = 0; i < count; ++i) {
        s.bias[i] = toRing(beta->getDouble(beta->numel() == 1 ? 0 : i) / outScale, n.label() + " bias");
        bq = std::max(bq, std::fabs(double(int64_t(s.bias[i]))));
      }
    }
    s.output = addTensor(n.output(0)->name(), xs, outScale);
    const int32_t id = s.output;
    emit(std::move(s), bound_[yq] * wq + bq);
    ids_[n.output(0)] = id;
  }
};

// Calibration samples of one input split into batches of the engine's batch size.
std::vector<Tensor> splitBatches(const Tensor& all, const Dims& shape, const std::string& name) {
  ANVIL_CHECK(!shape.empty() && all.rank() == shape.size(), ErrorCode::kInvalidArgument, "calibration data for '",
              name, "' has shape ", all.type().shape.str(), "; samples of ", ir::Shape::fromExtents(shape).str(),
              " stacked along axis 0 expected");
  for (size_t k = 1; k < shape.size(); ++k)
    ANVIL_CHECK(all.dim(k) == shape[k], ErrorCode::kInvalidArgument, "calibration data for '", name, "' has shape ",
                all.type().shape.str(), ", the engine input is ", ir::Shape::fromExtents(shape).str());
  const int64_t B = shape[0], per = numelOf(shape) / std::max<int64_t>(B, 1);
  ANVIL_CHECK(B > 0 && all.dim(0) >= B, ErrorCode::kInvalidArgument, "calibration data for '", name, "' has ",
              all.dim(0), " samples, fewer than one batch of ", B);
  std::vector<Tensor> out;
  for (int64_t b = 0; b + B <= all.dim(0); b += B) {
    Tensor t(ir::DataType::kFloat, shape);
    float* d = t.data<float>();
    for (int64_t i = 0; i < B * per; ++i) d[i] = float(all.getDouble(b * per + i));
    out.push_back(std::move(t));
  }
  return out;
}

// A model exported with a fixed batch may bake the batch into Reshape targets (attention's
// [seq, batch*heads, dim]). When --shapes changes the batch from `oldB` to `newB`, a
// constant target without -1 / 0 whose entries include exactly one multiple of oldB gets
// that entry scaled by newB / oldB (a new constant per Reshape). Anything else is left for
// shape inference, which names the Reshape if the target no longer fits.
void rebatchReshapes(ir::Graph& g, int64_t oldB, int64_t newB) {
  int serial = 0;
  for (const auto& n : g.nodes()) {
    if (n->op() != "Reshape" || n->numInputs() < 2) continue;
    const ir::Value* sv = n->input(1);
    const Tensor* t = sv->initializer();
    if (!t && sv->producer() && sv->producer()->op() == "Constant") t = sv->producer()->attrs().getTensor("value");
    if (!t || t->rank() != 1) continue;
    std::vector<int64_t> target = t->toInt64Vector();
    int which = -1, count = 0;
    for (size_t i = 0; i < target.size(); ++i) {
      if (target[i] <= 0) count = 99;  // -1 / 0 adapt by themselves
      else if (target[i] % oldB == 0) which = int(i), ++count;
    }
    if (count != 1 || (target[which] / oldB) * newB <= 0) continue;
    target[which] = target[which] / oldB * newB;
    ir::Value* nv = g.addInitializer(n->name() + "/mpc_batch_" + std::to_string(serial++),
                                     Tensor::fromVector<int64_t>(ir::DataType::kInt64, {int64_t(target.size())}, target));
    n->setInput(1, nv);
  }
}

// --verbose: the relative error of every named tensor against the float model's value of
// the same name on one batch (where a lowering loses precision).
void traceErrors(const std::string& onnxPath, const CompileOptions& options, const Program& p,
                 const std::vector<Tensor>& batch, CompileReport& report) {
  ir::Model m = prepareModel(onnxPath, options.shapes);
  ir::Graph& g = *m.graph;
  std::map<std::string, size_t> position;
  for (const auto& n : g.nodes())
    for (ir::Value* o : n->outputs())
      if (o && !o->name().empty() && std::find(g.outputs().begin(), g.outputs().end(), o) == g.outputs().end()) {
        position[o->name()] = g.outputs().size();
        g.addOutput(o);
      }
  for (size_t i = 0; i < g.outputs().size(); ++i) position[g.outputs()[i]->name()] = i;
  std::map<std::string, Tensor> feeds;
  for (size_t i = 0; i < g.inputs().size(); ++i) feeds[g.inputs()[i]->name()] = batch[i];
  std::vector<Tensor> ref = cpu::Interpreter::run(g, feeds);
  struct Collect : StepObserver {
    std::vector<RingVec> values;
    void onStep(const Program&, size_t, const std::vector<RingVec>& v) override { values = v; }
  } collect;
  runFixed(p, batch, &collect);
  for (size_t t = 0; t < p.tensors.size(); ++t) {
    auto it = position.find(p.tensors[t].name);
    if (it == position.end() || collect.values[t].empty()) continue;
    const Tensor& r = ref[it->second];
    if (r.numel() != int64_t(collect.values[t].size())) continue;
    double err = 0, norm = 0;
    for (int64_t i = 0; i < r.numel(); ++i) {
      double f = dequantize(collect.values[t][i], p.tensors[t].scale), x = r.getDouble(i);
      err += (f - x) * (f - x);
      norm += x * x;
    }
    report.log.push_back(p.tensors[t].name + ": relative error " + std::to_string(std::sqrt(err / std::max(norm, 1e-30))));
  }
}

}  // namespace

const char* stepKindName(StepKind k) {
  static const char* names[] = {"input", "linear", "scale", "lut", "maxpool", "add", "sub", "mulconst", "sumpool",
                                "reducesum", "reshape", "transpose", "concat", "slice", "mul", "matmul", "output"};
  int i = int(k);
  return i >= 0 && i <= int(StepKind::kOutput) ? names[i] : "?";
}

const char* lutFunctionName(LutFunction f) {
  static const char* names[] = {"identity", "relu", "gelu", "sigmoid", "tanh", "silu",
                                "exp", "reciprocal", "rsqrt", "square", "leakyrelu"};
  int i = int(f);
  return i >= 0 && i <= int(LutFunction::kLeakyRelu) ? names[i] : "?";
}

ir::Model prepareModel(const std::string& onnxPath, const std::map<std::string, std::vector<int64_t>>& shapes) {
  ir::Model m = parser::parseOnnxFile(onnxPath);
  ir::Graph& g = *m.graph;
  int64_t oldBatch = -1, newBatch = -1;
  for (const auto& [name, dims] : shapes) {
    ir::Value* v = g.findValue(name);
    ANVIL_CHECK(v && std::find(g.inputs().begin(), g.inputs().end(), v) != g.inputs().end(),
                ErrorCode::kInvalidArgument, "--shapes names '", name, "', which is not a graph input");
    ANVIL_CHECK(v->shape().rank() == dims.size() || !v->shape().rankKnown(), ErrorCode::kShapeMismatch, "--shapes gives '",
                name, "' rank ", dims.size(), ", the model's input has ", v->shape().str());
    if (!dims.empty() && v->shape().rank() == dims.size() && v->shape()[0].isStatic() &&
        v->shape()[0].value() != dims[0]) {
      oldBatch = v->shape()[0].value();
      newBatch = dims[0];
    }
    v->setType({v->dtype(), ir::Shape::fromExtents(dims)});
  }
  if (oldBatch > 0) rebatchReshapes(g, oldBatch, newBatch);
  // A model exported with a fixed batch: the new extents flow through inference again
  // (fails naming the node where the graph bakes the old batch in, e.g. a Reshape target).
  ir::inferShapes(g);
  passes::PassContext ctx;
  passes::foldConstants(g, ctx);
  passes::foldShapeChains(g, ctx);
  passes::foldConstants(g, ctx);
  passes::eliminateNoops(g, ctx);
  passes::foldBatchNorm(g, ctx);
  passes::fuseGelu(g, ctx);
  passes::fuseLayerNorm(g, ctx);
  passes::fuseSoftmax(g, ctx);
  passes::eliminateDeadCode(g, ctx);
  ir::inferShapes(g);
  return m;
}

Program compileProgram(const std::string& onnxPath, const CompileOptions& options, CompileReport* reportOut) {
  ANVIL_CHECK(sodium_init() >= 0, ErrorCode::kInternal, "libsodium failed to initialize");
  CompileReport local;
  CompileReport& report = reportOut ? *reportOut : local;
  ir::Model m = prepareModel(onnxPath, options.shapes);
  const ir::Graph& g = *m.graph;
  ANVIL_CHECK(!options.calibDir.empty(), ErrorCode::kInvalidArgument,
              "the mpc mode needs calibration data (--calibData=DIR with one .npy per input)");
  // Batches: [batch][input].
  std::vector<std::vector<Tensor>> batches;
  for (size_t i = 0; i < g.inputs().size(); ++i) {
    const Value* v = g.inputs()[i];
    ANVIL_CHECK(v->shape().isStatic(), ErrorCode::kInvalidArgument, "input '", v->name(), "' has shape ",
                v->shape().str(), "; give its static shape with --shapes");
    std::string path = (std::filesystem::path(options.calibDir) / tools::npyFileName(v->name())).string();
    ANVIL_CHECK(std::filesystem::exists(path), ErrorCode::kIoError, "calibration file ", path, " for input '",
                v->name(), "' does not exist");
    std::vector<Tensor> split = splitBatches(tools::readNpy(path), v->shape().extents(), v->name());
    if (batches.empty()) batches.resize(split.size());
    ANVIL_CHECK(split.size() == batches.size(), ErrorCode::kInvalidArgument,
                "calibration files hold different numbers of samples");
    for (size_t b = 0; b < split.size(); ++b) batches[b].push_back(std::move(split[b]));
  }
  const size_t total = batches.size();
  size_t nCal = std::max<size_t>(1, size_t(std::floor(double(total) * options.calibrationFraction)));
  if (nCal >= total) nCal = total;
  std::vector<std::vector<Tensor>> calib(batches.begin(), batches.begin() + nCal);
  std::vector<std::vector<Tensor>> eval(batches.begin() + nCal, batches.end());
  if (eval.empty()) eval = calib;  // a single batch: agreement on the calibration batch itself
  report.calibrationBatches = int(nCal);
  report.evaluationBatches = int(eval.size());

  Compiler c(g, options, report, std::move(calib));
  Program p = c.run();
  p.programId.resize(16);
  randombytes_buf(p.programId.data(), p.programId.size());
  p.serverPublicKey.resize(crypto_kx_PUBLICKEYBYTES);
  p.serverSecretKey.resize(crypto_kx_SECRETKEYBYTES);
  crypto_kx_keypair(p.serverPublicKey.data(), p.serverSecretKey.data());

  // Agreement with the float model on the held-out batches.
  double errSq = 0, refSq = 0;
  int64_t rows = 0, agree = 0;
  for (const auto& batch : eval) {
    std::vector<Tensor> fixed = runFixed(p, batch);
    std::map<std::string, Tensor> feeds;
    for (size_t i = 0; i < g.inputs().size(); ++i) feeds[g.inputs()[i]->name()] = batch[i];
    std::vector<Tensor> ref = cpu::Interpreter::run(g, feeds);
    for (size_t o = 0; o < fixed.size() && o < ref.size(); ++o) {
      for (int64_t i = 0; i < ref[o].numel(); ++i) {
        double r = ref[o].getDouble(i), f = fixed[o].getDouble(i);
        errSq += (r - f) * (r - f);
        refSq += r * r;
      }
      if (o == 0 && ref[o].rank() >= 2 && ref[o].dims().back() > 1) {
        const int64_t C = ref[o].dims().back(), R = ref[o].numel() / C;
        for (int64_t row = 0; row < R; ++row) {
          int64_t ar = 0, af = 0;
          for (int64_t k = 1; k < C; ++k) {
            if (ref[o].getDouble(row * C + k) > ref[o].getDouble(row * C + ar)) ar = k;
            if (fixed[o].getDouble(row * C + k) > fixed[o].getDouble(row * C + af)) af = k;
          }
          agree += ar == af;
          ++rows;
        }
      }
    }
  }
  if (options.verbose && !eval.empty()) traceErrors(onnxPath, options, p, eval[0], report);
  report.evaluatedRows = rows;
  report.top1Agreement = rows ? double(agree) / double(rows) : -1;
  report.relativeError = refSq > 0 ? std::sqrt(errSq / refSq) : std::sqrt(errSq);
  return p;
}

}  // namespace anvil::mpc
