// Engine file writer and loader: FlatBuffers plan, aligned weights, checksum, and every
// check a corrupt, truncated, foreign or wrong-version file must fail.
#include "runtime/engine_format.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <unordered_map>

#include <set>

#include "engine_generated.h"
#include "ir/layout.h"
#include "ir/op_schema.h"

namespace anvil::runtime {

using ir::DataType;
using ir::Tensor;

const char* anvilVersionString() { return "0.1.0"; }


namespace {

// ---- writing ---------------------------------------------------------------------------

class Writer {
 public:
  explicit Writer(const Plan& plan) : plan_(plan) {}

  std::string run() {
    collectGraph(*plan_.graph);
    findElided();
    std::vector<flatbuffers::Offset<fb::ValueDef>> valueDefs;
    for (const ir::Value* v : values_) valueDefs.push_back(valueDef(*v));
    // Graphs are written in discovery order; graph 0 is main.
    std::vector<flatbuffers::Offset<fb::GraphDef>> graphDefs(graphs_.size());
    for (size_t gi = 0; gi < graphs_.size(); ++gi) graphDefs[gi] = graphDef(*graphs_[gi], gi == 0);
    std::vector<flatbuffers::Offset<fb::InputProfile>> profiles;
    for (const auto& [name, dims] : plan_.optShapes) {
      auto mn = plan_.minShapes.find(name), mx = plan_.maxShapes.find(name);
      profiles.push_back(fb::CreateInputProfile(fbb_, fbb_.CreateString(name), fbb_.CreateVector(dims),
                                                fbb_.CreateVector(mn == plan_.minShapes.end() ? dims : mn->second),
                                                fbb_.CreateVector(mx == plan_.maxShapes.end() ? dims : mx->second)));
    }
    std::vector<flatbuffers::Offset<fb::StepDef>> steps;
    for (const StepPlan& st : plan_.steps) steps.push_back(stepDef(st));
    std::vector<std::string> mk, mv;
    for (const auto& [k, v] : plan_.metadata) {
      mk.push_back(k);
      mv.push_back(v);
    }
    auto root = fb::CreatePlanDef(
        fbb_, fbb_.CreateString(plan_.anvilVersion.empty() ? anvilVersionString() : plan_.anvilVersion),
        fbb_.CreateString(plan_.device), fbb_.CreateString(plan_.isaRequired), fbb_.CreateString(plan_.buildIsa),
        fbb_.CreateVector(graphDefs), fbb_.CreateVector(valueDefs), fbb_.CreateVector(profiles),
        plan_.peakArenaBytes, plan_.optLevel, fbb_.CreateString(plan_.producer), fbb_.CreateVectorOfStrings(mk),
        fbb_.CreateVectorOfStrings(mv), fbb_.CreateVector(steps), fbb_.CreateVectorOfStrings(plan_.requirements),
        plan_.computeCapability, plan_.peakDeviceArenaBytes);
    fbb_.Finish(root, "ANVP");

    EngineHeader h{};
    std::memcpy(h.magic, kEngineMagic, 8);
    h.formatVersion = kEngineFormatVersion;
    h.headerBytes = sizeof(EngineHeader);
    h.planOffset = sizeof(EngineHeader);
    h.planBytes = fbb_.GetSize();
    h.weightsOffset = (h.planOffset + h.planBytes + kEngineAlignment - 1) / kEngineAlignment * kEngineAlignment;
    h.weightsBytes = weights_.size();
    std::string out(h.weightsOffset + h.weightsBytes, '\0');
    std::memcpy(out.data() + h.planOffset, fbb_.GetBufferPointer(), h.planBytes);
    if (!weights_.empty()) std::memcpy(out.data() + h.weightsOffset, weights_.data(), weights_.size());
    h.checksum = engineChecksum(reinterpret_cast<const uint8_t*>(out.data()) + sizeof(EngineHeader),
                         out.size() - sizeof(EngineHeader));
    std::memcpy(out.data(), &h, sizeof h);
    return out;
  }

 private:
  void collectGraph(const ir::Graph& g) {
    graphIndex_[&g] = int(graphs_.size());
    graphs_.push_back(&g);
    for (const auto& v : g.values()) {
      valueIndex_[v.get()] = int(values_.size());
      values_.push_back(v.get());
    }
    for (const auto& n : g.nodes())
      for (const auto& [name, a] : n->attrs().all()) {
        (void)name;
        if (auto* sg = std::get_if<std::shared_ptr<ir::Graph>>(&a.value)) collectGraph(**sg);
        if (auto* gs = std::get_if<std::vector<std::shared_ptr<ir::Graph>>>(&a.value))
          for (const auto& sg2 : *gs) collectGraph(*sg2);
      }
  }

  // Constants that only prepared steps read (their kernels packed them into blobs) are
  // not stored: the engine keeps the packed form only.
  void findElided() {
    std::map<const ir::Value*, int> uses, packed;
    const ir::Graph& g = *plan_.graph;
    for (const auto& n : g.nodes())
      for (const ir::Value* v : n->inputs())
        if (v) ++uses[v];
    for (const ir::Value* v : g.outputs()) uses[v] += 1000;
    for (const ir::Value* v : g.inputs()) uses[v] += 1000;
    for (const StepPlan& st : plan_.steps) {
      for (size_t k = 0; k < st.inputs.size(); ++k)
        if (k >= g.nodes()[size_t(st.node)]->numInputs() && st.inputs[k]) uses[st.inputs[k]] += 1000;  // outer scope
      for (int k : st.packedInputs)
        if (k >= 0 && size_t(k) < st.inputs.size() && st.inputs[size_t(k)]) ++packed[st.inputs[size_t(k)]];
    }
    for (const auto& [v, n] : packed)
      if (v->isInitializer() && uses[v] == n) elided_.insert(v);
  }


  fb::BlobRef blob(const std::string& bytes) {
    size_t offset = (weights_.size() + kEngineAlignment - 1) / kEngineAlignment * kEngineAlignment;
    weights_.resize(offset + bytes.size());
    if (!bytes.empty()) std::memcpy(weights_.data() + offset, bytes.data(), bytes.size());
    return fb::BlobRef(offset, bytes.size());
  }

  flatbuffers::Offset<fb::StepDef> stepDef(const StepPlan& st) {
    std::vector<int32_t> ins, outs;
    for (const ir::Value* v : st.inputs) ins.push_back(valueId(v));
    for (const ir::Value* v : st.outputs) outs.push_back(valueId(v));
    // A plan that was read from an engine carries views instead of owned bytes.
    auto bytesOf = [](const Blob& b) { return std::string(static_cast<const char*>(b.data), b.bytes); };
    const fb::BlobRef params = blob(st.params.empty() && st.paramsView.bytes ? bytesOf(st.paramsView) : st.params);
    std::vector<fb::BlobRef> blobs;
    if (st.blobs.empty())
      for (const Blob& b : st.blobViews) blobs.push_back(blob(bytesOf(b)));
    for (const std::string& b : st.blobs) blobs.push_back(blob(b));
    std::vector<uint64_t> blobBytes;
    for (const fb::BlobRef& b : blobs) blobBytes.push_back(b.bytes());
    const uint64_t seal = stepSeal(st.kernel, st.kernelVersion, weights_.data() + params.offset(), params.bytes(),
                                   blobBytes, st.workspaceBytes, st.packedInputs);
    return fb::CreateStepDef(fbb_, st.node, fbb_.CreateString(st.kernel), st.kernelVersion,
                             fbb_.CreateString(st.device == Device::kCUDA ? "cuda" : "cpu"), int32_t(st.precision),
                             fbb_.CreateVector(ins), fbb_.CreateVector(outs), &params,
                             fbb_.CreateVectorOfStructs(blobs), st.workspaceBytes,
                             fbb_.CreateVectorOfStrings(st.requirements), st.timed, st.candidates,
                             fbb_.CreateVector(st.packedInputs), seal, st.untimed, st.tasks);
  }

  int valueId(const ir::Value* v) const {
    if (!v) return -1;
    auto it = valueIndex_.find(v);
    ANVIL_CHECK(it != valueIndex_.end(), ErrorCode::kInternal, "engine writer: value '", v->name(),
                "' is not owned by any graph");
    return it->second;
  }

  flatbuffers::Offset<fb::TensorRef> tensorRef(const Tensor& t) {
    std::vector<int64_t> dims = t.dims();
    if (t.dtype() == DataType::kString) {
      std::vector<std::string> s;
      for (int64_t i = 0; i < t.numel(); ++i) s.push_back(t.str(i));
      return fb::CreateTensorRef(fbb_, int32_t(t.dtype()), fbb_.CreateVector(dims), 0, 0,
                                 fbb_.CreateVectorOfStrings(s));
    }
    size_t offset = (weights_.size() + kEngineAlignment - 1) / kEngineAlignment * kEngineAlignment;
    weights_.resize(offset + t.nbytes());
    if (t.nbytes()) std::memcpy(weights_.data() + offset, t.raw(), t.nbytes());
    return fb::CreateTensorRef(fbb_, int32_t(t.dtype()), fbb_.CreateVector(dims), offset, t.nbytes());
  }

  flatbuffers::Offset<fb::ValueDef> valueDef(const ir::Value& v) {
    std::vector<flatbuffers::Offset<fb::DimDef>> dims;
    for (const ir::Dim& d : v.shape().dims())
      dims.push_back(fb::CreateDimDef(fbb_, d.isStatic() ? d.value() : -1,
                                      d.isSymbolic() ? fbb_.CreateString(d.symbolName()) : 0));
    const bool elided = elided_.count(&v) != 0;
    flatbuffers::Offset<fb::TensorRef> init = v.isInitializer() && !elided ? tensorRef(*v.initializer()) : 0;
    ArenaSlot slot;
    if (auto it = plan_.arena.find(&v); it != plan_.arena.end()) slot = it->second;
    flatbuffers::Offset<fb::QuantDef> quant = 0;
    if (const auto& q = v.quantization())
      quant = fb::CreateQuantDef(fbb_, tensorRef(q->scale), q->zeroPoint.defined() ? tensorRef(q->zeroPoint) : 0,
                                 q->axis ? int32_t(*q->axis) : -1);
    auto layout = v.layout().isPlain() ? 0 : fbb_.CreateString(ir::layoutName(v.layout()));
    auto device = v.device() == ir::Device::kCPU ? 0 : fbb_.CreateString(ir::deviceName(v.device()));
    return fb::CreateValueDef(fbb_, fbb_.CreateString(v.name()), int32_t(v.dtype()), v.shape().rankKnown(),
                              fbb_.CreateVector(dims), init, v.producer() != nullptr, slot.offset, slot.bytes, layout,
                              device, quant, elided);
  }

  flatbuffers::Offset<fb::AttrDef> attrDef(const std::string& name, const ir::Attribute& a) {
    using K = ir::Attribute::Kind;
    auto n = fbb_.CreateString(name);
    fb::AttrDefBuilder* unused = nullptr;
    (void)unused;
    int64_t i = 0;
    float f = 0;
    flatbuffers::Offset<flatbuffers::String> s = 0;
    flatbuffers::Offset<flatbuffers::Vector<int64_t>> ints = 0;
    flatbuffers::Offset<flatbuffers::Vector<float>> floats = 0;
    flatbuffers::Offset<flatbuffers::Vector<flatbuffers::Offset<flatbuffers::String>>> strings = 0;
    flatbuffers::Offset<fb::TensorRef> tensor = 0;
    flatbuffers::Offset<flatbuffers::Vector<int32_t>> graphs = 0;
    switch (a.kind()) {
      case K::kInt: i = std::get<int64_t>(a.value); break;
      case K::kFloat: f = std::get<float>(a.value); break;
      case K::kString: s = fbb_.CreateString(std::get<std::string>(a.value)); break;
      case K::kInts: ints = fbb_.CreateVector(std::get<std::vector<int64_t>>(a.value)); break;
      case K::kFloats: floats = fbb_.CreateVector(std::get<std::vector<float>>(a.value)); break;
      case K::kStrings: strings = fbb_.CreateVectorOfStrings(std::get<std::vector<std::string>>(a.value)); break;
      case K::kTensor: tensor = tensorRef(std::get<Tensor>(a.value)); break;
      case K::kGraph: graphs = fbb_.CreateVector(std::vector<int32_t>{graphIndex_.at(std::get<std::shared_ptr<ir::Graph>>(a.value).get())}); break;
      case K::kGraphs: {
        std::vector<int32_t> ids;
        for (const auto& g : std::get<std::vector<std::shared_ptr<ir::Graph>>>(a.value)) ids.push_back(graphIndex_.at(g.get()));
        graphs = fbb_.CreateVector(ids);
        break;
      }
    }
    return fb::CreateAttrDef(fbb_, n, int32_t(a.kind()), i, f, s, ints, floats, strings, tensor, graphs);
  }

  flatbuffers::Offset<fb::GraphDef> graphDef(const ir::Graph& g, bool isMain) {
    std::vector<int32_t> own, ins, outs;
    for (const auto& v : g.values())
      if (!v->producer()) own.push_back(valueId(v.get()));
    for (const ir::Value* v : g.inputs()) ins.push_back(valueId(v));
    for (const ir::Value* v : g.outputs()) outs.push_back(valueId(v));
    std::vector<flatbuffers::Offset<fb::NodeDef>> nodes;
    for (size_t k = 0; k < g.nodes().size(); ++k) {
      const ir::Node& n = *g.nodes()[k];
      std::vector<int32_t> ni, no;
      for (const ir::Value* v : n.inputs()) ni.push_back(valueId(v));
      for (const ir::Value* v : n.outputs()) no.push_back(valueId(v));
      std::vector<flatbuffers::Offset<fb::AttrDef>> attrs;
      for (const auto& [name, a] : n.attrs().all()) attrs.push_back(attrDef(name, a));
      std::string tactic = isMain && k < plan_.tactics.size() ? plan_.tactics[k] : "ref";
      std::vector<flatbuffers::Offset<fb::AttrDef>> tparams;
      for (const auto& [name, a] : n.tacticParams().all()) tparams.push_back(attrDef(name, a));
      nodes.push_back(fb::CreateNodeDef(fbb_, fbb_.CreateString(n.op()), fbb_.CreateString(n.domain()),
                                        fbb_.CreateString(n.name()), fbb_.CreateVector(ni), fbb_.CreateVector(no),
                                        fbb_.CreateVector(attrs), fbb_.CreateString(tactic), int32_t(n.precision()),
                                        n.device() == ir::Device::kCPU ? 0 : fbb_.CreateString(ir::deviceName(n.device())),
                                        fbb_.CreateVector(tparams)));
    }
    return fb::CreateGraphDef(fbb_, fbb_.CreateString(g.name()), fbb_.CreateVector(own), fbb_.CreateVector(ins),
                              fbb_.CreateVector(outs), fbb_.CreateVector(nodes));
  }

  const Plan& plan_;
  flatbuffers::FlatBufferBuilder fbb_{1 << 16};
  std::vector<uint8_t> weights_;
  std::vector<const ir::Graph*> graphs_;
  std::unordered_map<const ir::Graph*, int> graphIndex_;
  std::vector<const ir::Value*> values_;
  std::unordered_map<const ir::Value*, int> valueIndex_;
  std::set<const ir::Value*> elided_;
};

// ---- reading ---------------------------------------------------------------------------

[[noreturn]] void bad(const std::string& msg) { ANVIL_THROW(ErrorCode::kInvalidEngine, "invalid engine: ", msg); }

const EngineHeader& checkHeader(const EngineBytes& b) {
  if (b.size < sizeof(EngineHeader)) bad("file is " + std::to_string(b.size) + " bytes, shorter than the header");
  const auto& h = *reinterpret_cast<const EngineHeader*>(b.data);
  if (std::memcmp(h.magic, kEngineMagic, 8) != 0) bad("not an anvil engine (bad magic)");
  if (h.formatVersion != kEngineFormatVersion)
    bad("format version " + std::to_string(h.formatVersion) + ", this runtime reads version " +
        std::to_string(kEngineFormatVersion) + " (rebuild the engine)");
  if (h.headerBytes != sizeof(EngineHeader)) bad("unexpected header size");
  if (h.planOffset != sizeof(EngineHeader) || h.planBytes == 0 || h.planBytes > b.size ||
      h.planOffset + h.planBytes > b.size)
    bad("plan section is outside the file (truncated?)");
  if (h.weightsOffset % kEngineAlignment != 0 || h.weightsOffset < h.planOffset + h.planBytes ||
      h.weightsBytes > b.size || h.weightsOffset > b.size - h.weightsBytes)
    bad("weights section is outside the file (truncated?)");
  if (h.weightsOffset + h.weightsBytes != b.size) bad("file size does not match its sections (truncated or padded)");
  if (engineChecksum(b.data + sizeof(EngineHeader), b.size - sizeof(EngineHeader)) != h.checksum)
    bad("checksum mismatch (the file is corrupted)");
  return h;
}

const fb::PlanDef& checkPlan(const EngineBytes& b, const EngineHeader& h) {
  const uint8_t* p = b.data + h.planOffset;
  if (!flatbuffers::BufferHasIdentifier(p, "ANVP")) bad("plan section has the wrong identifier");
  flatbuffers::Verifier verifier(p, h.planBytes, 128, 1u << 26);
  if (!fb::VerifyPlanDefBuffer(verifier)) bad("plan section fails structural verification");
  const fb::PlanDef* plan = fb::GetPlanDef(p);
  if (!plan->graphs() || plan->graphs()->size() == 0 || !plan->values()) bad("plan has no graph");
  const std::string device = plan->device() ? plan->device()->str() : "";
#ifdef ANVIL_HAVE_CUDA_BACKEND
  if (device != "cpu" && device != "cuda")
    bad("the engine targets device '" + device + "'; this runtime runs 'cpu' and 'cuda' engines");
  if (device == "cuda" && (plan->compute_capability() < 10 || plan->compute_capability() > 999))
    bad("a CUDA engine without a valid compute capability");
#else
  if (device != "cpu")
    bad("the engine targets device '" + device + "'; this runtime was built without the CUDA backend and runs 'cpu' engines");
#endif
  if (plan->requirements())
    for (const auto* r : *plan->requirements())
      if (!hostHas(r->str()))
        bad("the engine needs host feature '" + r->str() + "' (built on " +
            (plan->build_isa() ? plan->build_isa()->str() : "?") + "), this host is " + hostCpuIsa());
  return *plan;
}

class Reader {
 public:
  Reader(const EngineBytes& b, const EngineHeader& h, const fb::PlanDef& p) : bytes_(b), header_(h), plan_(p) {}

  Plan run() {
    Plan out;
    out.anvilVersion = str(plan_.anvil_version());
    out.device = str(plan_.device());
    out.isaRequired = str(plan_.isa_required());
    out.buildIsa = str(plan_.build_isa());
    out.peakArenaBytes = plan_.peak_arena_bytes();
    if (out.peakArenaBytes > (uint64_t(1) << 40)) bad("absurd activation arena size");
    out.computeCapability = plan_.compute_capability();
    out.peakDeviceArenaBytes = plan_.peak_device_arena_bytes();
    if (out.peakDeviceArenaBytes > (uint64_t(1) << 40)) bad("absurd device arena size");
    if (out.device == "cpu" && out.peakDeviceArenaBytes) bad("a CPU engine with a device arena");
    out.optLevel = plan_.opt_level();
    out.producer = str(plan_.producer());
    if (plan_.metadata_keys() && plan_.metadata_values()) {
      if (plan_.metadata_keys()->size() != plan_.metadata_values()->size()) bad("metadata keys and values differ");
      for (unsigned i = 0; i < plan_.metadata_keys()->size(); ++i)
        out.metadata[plan_.metadata_keys()->Get(i)->str()] = plan_.metadata_values()->Get(i)->str();
    }
    if (plan_.profiles())
      for (const auto* prof : *plan_.profiles()) {
        auto vec = [](const flatbuffers::Vector<int64_t>* v) {
          return v ? std::vector<int64_t>(v->begin(), v->end()) : std::vector<int64_t>{};
        };
        const std::string name = str(prof->name());
        out.optShapes[name] = vec(prof->opt());
        out.minShapes[name] = prof->min() ? vec(prof->min()) : out.optShapes[name];
        out.maxShapes[name] = prof->max() ? vec(prof->max()) : out.optShapes[name];
        const auto& mn = out.minShapes[name], &op = out.optShapes[name], &mx = out.maxShapes[name];
        if (mn.size() != op.size() || mx.size() != op.size()) bad("profile of '" + name + "' has mismatched ranks");
        for (size_t i = 0; i < op.size(); ++i)
          if (mn[i] < 0 || mn[i] > op[i] || op[i] > mx[i]) bad("profile of '" + name + "' is not min <= opt <= max");
      }
    if (plan_.requirements())
      for (const auto* r : *plan_.requirements()) out.requirements.push_back(r->str());
    for (const auto& r : out.requirements) out.isaRequired += (out.isaRequired.empty() ? "" : ",") + r;
    values_.assign(plan_.values()->size(), nullptr);
    building_.assign(plan_.graphs()->size(), false);
    out.graph = std::make_shared<ir::Graph>();
    buildGraph(0, *out.graph, &out.tactics);
    for (size_t id = 0; id < values_.size(); ++id) {
      const fb::ValueDef& vd = *plan_.values()->Get(unsigned(id));
      if (vd.arena_offset() >= 0 && values_[id]) {
        const uint64_t peak = values_[id]->device() == ir::Device::kCUDA ? out.peakDeviceArenaBytes : out.peakArenaBytes;
        if (uint64_t(vd.arena_offset()) > peak || vd.arena_bytes() > peak - uint64_t(vd.arena_offset()))
          bad("value '" + str(vd.name()) + "' has an arena slot outside the arena");
        out.arena[values_[id]] = {vd.arena_offset(), vd.arena_bytes()};
      }
    }
    if (plan_.steps())
      for (const fb::StepDef* sd : *plan_.steps()) out.steps.push_back(step(*sd, *out.graph));
    return out;
  }

 private:
  static std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

  Blob blobView(const fb::BlobRef* r) const {
    if (!r) return {};
    if (r->offset() % kEngineAlignment != 0 || r->offset() > header_.weightsBytes ||
        r->bytes() > header_.weightsBytes - r->offset())
      bad("a step's prepared data lies outside the weights section");
    return {bytes_.data + header_.weightsOffset + r->offset(), size_t(r->bytes())};
  }

  StepPlan step(const fb::StepDef& sd, const ir::Graph& g) const {
    StepPlan st;
    if (sd.node() < 0 || size_t(sd.node()) >= g.nodes().size()) bad("step names node " + std::to_string(sd.node()) + ", out of range");
    st.node = sd.node();
    const ir::Node& n = *g.nodes()[size_t(st.node)];
    st.kernel = str(sd.kernel());
    st.kernelVersion = sd.kernel_version();
    const std::string dev = str(sd.device());
    if (dev != "cpu" && dev != "cuda") bad(n.label() + ": step device '" + dev + "' is unknown");
    st.device = dev == "cuda" ? Device::kCUDA : Device::kCPU;
    if (sd.precision() < 0 || sd.precision() > ir::kMaxDataType) bad(n.label() + ": step precision is invalid");
    st.precision = DataType(sd.precision());
    if (sd.inputs())
      for (int id : *sd.inputs()) st.inputs.push_back(id < 0 ? nullptr : mainValue(id, n));
    if (sd.outputs())
      for (int id : *sd.outputs()) st.outputs.push_back(id < 0 ? nullptr : mainValue(id, n));
    if (st.inputs.size() < n.numInputs() || st.outputs.size() != n.numOutputs())
      bad(n.label() + ": step bindings do not match the node");
    for (size_t k = 0; k < n.numInputs(); ++k)
      if (st.inputs[k] != n.input(k)) bad(n.label() + ": step input " + std::to_string(k) + " is not the node's");
    for (size_t k = 0; k < n.numOutputs(); ++k)
      if (st.outputs[k] ? st.outputs[k] != n.output(k) : !n.output(k)->name().empty())  // null: an unnamed output only
        bad(n.label() + ": step output " + std::to_string(k) + " is not the node's");
    st.paramsView = blobView(sd.params());
    if (sd.blobs())
      for (const fb::BlobRef* b : *sd.blobs()) st.blobViews.push_back(blobView(b));
    st.workspaceBytes = sd.workspace();
    if (st.workspaceBytes > (uint64_t(1) << 40)) bad(n.label() + ": absurd workspace size");
    if (sd.requirements())
      for (const auto* r : *sd.requirements()) st.requirements.push_back(r->str());
    st.timed = sd.timed();
    st.untimed = sd.untimed();
    st.candidates = sd.candidates();
    st.tasks = sd.tasks();
    if (sd.packed_inputs())
      for (int k : *sd.packed_inputs()) {
        if (k < 0 || size_t(k) >= st.inputs.size()) bad(n.label() + ": packed input index out of range");
        st.packedInputs.push_back(k);
      }
    std::vector<uint64_t> blobBytes;
    for (const Blob& b : st.blobViews) blobBytes.push_back(b.bytes);
    if (sd.seal() != stepSeal(st.kernel, st.kernelVersion, st.paramsView.data, st.paramsView.bytes, blobBytes,
                              st.workspaceBytes, st.packedInputs))
      bad(n.label() + ": the step's prepared data does not match its seal");
    return st;
  }

  static ir::Device device(const flatbuffers::String* s, const std::string& what) {
    if (!s) return ir::Device::kCPU;
    auto d = ir::parseDevice(s->str());
    if (!d) bad(what + ": unknown device '" + s->str() + "'");
    return *d;
  }

  void valueMeta(const fb::ValueDef& vd, ir::Value& v) const {
    if (vd.layout()) {
      auto l = ir::parseLayout(vd.layout()->str());
      if (!l) bad("value '" + v.name() + "' has a malformed layout '" + vd.layout()->str() + "'");
      v.setLayout(*l);
    }
    v.setDevice(device(vd.device(), "value '" + v.name() + "'"));
    if (const fb::QuantDef* q = vd.quant()) {
      ir::Quantization quant;
      quant.scale = tensor(q->scale());
      if (q->zero_point()) quant.zeroPoint = tensor(q->zero_point());
      if (q->axis() >= 0) quant.axis = q->axis();
      v.setQuantization(std::move(quant));
    }
  }

  const ir::Value* mainValue(int id, const ir::Node& n) const {
    const ir::Value* v = value(id);
    if (!v) bad(n.label() + ": step binds an absent value");
    return v;
  }

  const fb::ValueDef& valueDef(int id) const {
    if (id < 0 || id >= int(plan_.values()->size())) bad("value id " + std::to_string(id) + " is out of range");
    return *plan_.values()->Get(unsigned(id));
  }

  Tensor tensor(const fb::TensorRef* r) const {
    if (!r) bad("missing tensor reference");
    int32_t dt = r->dtype();
    if (!ir::isValidOnnxType(dt)) bad("tensor has invalid data type " + std::to_string(dt));
    std::vector<int64_t> dims;
    if (r->dims()) dims.assign(r->dims()->begin(), r->dims()->end());
    int64_t n = 1;
    for (int64_t d : dims) {
      if (d < 0 || (d > 0 && n > (int64_t(1) << 40) / d)) bad("tensor has an invalid shape");
      n *= d;
    }
    if (DataType(dt) == DataType::kString) {
      Tensor t(DataType::kString, dims);
      if (!r->strings() || int64_t(r->strings()->size()) != n) bad("string tensor has the wrong element count");
      for (int64_t i = 0; i < n; ++i) t.data<std::string>()[i] = r->strings()->Get(unsigned(i))->str();
      return t;
    }
    const uint64_t need = ir::storageBytes(DataType(dt), n);
    if (r->bytes() != need) bad("tensor byte size does not match its shape");
    if (r->offset() % kEngineAlignment != 0 || r->offset() > header_.weightsBytes ||
        need > header_.weightsBytes - r->offset())
      bad("tensor data lies outside the weights section");
    return Tensor::view(DataType(dt), dims, bytes_.holder, bytes_.data + header_.weightsOffset + r->offset());
  }

  ir::TensorType type(const fb::ValueDef& v) const {
    ir::TensorType t;
    if (v.dtype() < 0 || v.dtype() > ir::kMaxDataType) bad("value has invalid data type");
    t.dtype = DataType(v.dtype());
    if (!v.rank_known()) {
      t.shape = ir::Shape::unknownRank();
      return t;
    }
    std::vector<ir::Dim> dims;
    if (v.dims())
      for (const auto* d : *v.dims()) {
        if (d->value() >= 0) dims.emplace_back(d->value());
        else if (d->symbol()) dims.push_back(ir::Dim::symbol(d->symbol()->str()));
        else dims.emplace_back();
      }
    t.shape = ir::Shape(dims);
    return t;
  }

  ir::Value* value(int id) const {
    if (id < 0) return nullptr;
    valueDef(id);
    if (!values_[size_t(id)]) bad("value " + std::to_string(id) + " is used before it is defined");
    return values_[size_t(id)];
  }

  void buildGraph(int gi, ir::Graph& g, std::vector<std::string>* tactics) {
    if (gi < 0 || gi >= int(plan_.graphs()->size())) bad("graph index out of range");
    if (building_[size_t(gi)]) bad("graph " + std::to_string(gi) + " is nested in itself");
    building_[size_t(gi)] = true;
    const fb::GraphDef& gd = *plan_.graphs()->Get(unsigned(gi));
    g.setName(str(gd.name()));
    if (gd.values())
      for (int id : *gd.values()) {
        const fb::ValueDef& vd = valueDef(id);
        if (vd.produced()) bad("graph-owned value is marked as a node output");
        if (values_[size_t(id)]) bad("value " + std::to_string(id) + " is defined twice");
        if (vd.elided() && !vd.initializer()) elidedIds_.push_back(id);
        ir::Value* v = vd.initializer() ? g.addInitializer(str(vd.name()), tensor(vd.initializer()))
                                        : g.addValue(str(vd.name()));
        v->setType(type(vd));
        valueMeta(vd, *v);
        values_[size_t(id)] = v;
      }
    if (gd.inputs())
      for (int id : *gd.inputs()) {
        ir::Value* v = value(id);
        if (!v) bad("graph input is absent");
        g.addInput(v);
      }
    if (gd.nodes())
      for (const fb::NodeDef* nd : *gd.nodes()) {
        std::vector<ir::Value*> ins;
        if (nd->inputs())
          for (int id : *nd->inputs()) ins.push_back(value(id));
        std::vector<std::string> outNames;
        std::vector<int> outIds;
        if (nd->outputs())
          for (int id : *nd->outputs()) {
            const fb::ValueDef& vd = valueDef(id);
            if (values_[size_t(id)]) bad("value " + std::to_string(id) + " is defined twice");
            outNames.push_back(str(vd.name()));
            outIds.push_back(id);
          }
        const std::string op = str(nd->op()), domain = str(nd->domain());
        if (!ir::OpRegistry::instance().find(op, domain)) bad("unknown op '" + op + "' (engine from a newer anvil?)");
        ir::Node* n = g.addNode(op, domain, str(nd->name()), ins, outNames);
        for (size_t k = 0; k < outIds.size(); ++k) {
          n->output(k)->setType(type(valueDef(outIds[k])));
          valueMeta(valueDef(outIds[k]), *n->output(k));
          values_[size_t(outIds[k])] = n->output(k);
        }
        if (nd->attrs())
          for (const fb::AttrDef* ad : *nd->attrs()) n->attrs().set(str(ad->name()), attr(*ad, g));
        if (nd->tactic_params())
          for (const fb::AttrDef* ad : *nd->tactic_params()) n->tacticParams().set(str(ad->name()), attr(*ad, g));
        if (nd->precision() < 0 || nd->precision() > ir::kMaxDataType) bad(n->label() + ": invalid precision");
        n->setPrecision(DataType(nd->precision()));
        n->setDevice(device(nd->device(), n->label()));
        const std::string tactic = nd->tactic() ? nd->tactic()->str() : "ref";
        if (tactics) tactics->push_back(tactic);
      }
    if (gd.outputs())
      for (int id : *gd.outputs()) {
        ir::Value* v = value(id);
        if (!v) bad("graph output is absent");
        g.addOutput(v);
      }
    building_[size_t(gi)] = false;
  }

  ir::Attribute::Storage attr(const fb::AttrDef& a, ir::Graph& owner) {
    using K = ir::Attribute::Kind;
    switch (K(a.kind())) {
      case K::kInt: return int64_t(a.i());
      case K::kFloat: return a.f();
      case K::kString: return str(a.s());
      case K::kInts: return a.ints() ? std::vector<int64_t>(a.ints()->begin(), a.ints()->end()) : std::vector<int64_t>{};
      case K::kFloats: return a.floats() ? std::vector<float>(a.floats()->begin(), a.floats()->end()) : std::vector<float>{};
      case K::kStrings: {
        std::vector<std::string> v;
        if (a.strings())
          for (const auto* s : *a.strings()) v.push_back(s->str());
        return v;
      }
      case K::kTensor: return tensor(a.tensor());
      case K::kGraph:
      case K::kGraphs: {
        std::vector<std::shared_ptr<ir::Graph>> gs;
        if (!a.graphs()) bad("graph attribute without graphs");
        for (int gi : *a.graphs()) {
          auto sub = std::make_shared<ir::Graph>("", &owner);
          buildGraph(gi, *sub, nullptr);
          gs.push_back(sub);
        }
        if (K(a.kind()) == K::kGraph) {
          if (gs.size() != 1) bad("graph attribute must hold one graph");
          return gs[0];
        }
        return gs;
      }
    }
    bad("attribute '" + str(a.name()) + "' has unknown kind " + std::to_string(a.kind()));
  }

  const EngineBytes& bytes_;
  const EngineHeader& header_;
  const fb::PlanDef& plan_;
  std::vector<ir::Value*> values_;
  std::vector<bool> building_;
  std::vector<int> elidedIds_;
};

}  // namespace

std::string serializeEngine(const Plan& plan) {
  ANVIL_CHECK(plan.graph != nullptr, ErrorCode::kInternal, "serializeEngine: plan without graph");
  return Writer(plan).run();
}

EngineBytes mapEngineFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  ANVIL_CHECK(fd >= 0, ErrorCode::kIoError, "cannot open engine '", path, "'");
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    ANVIL_THROW(ErrorCode::kIoError, "'", path, "' is not a regular file");
  }
  EngineBytes b;
  b.size = size_t(st.st_size);
  if (b.size == 0) {
    ::close(fd);
    ANVIL_THROW(ErrorCode::kInvalidEngine, "invalid engine: '", path, "' is empty");
  }
  void* p = ::mmap(nullptr, b.size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  ANVIL_CHECK(p != MAP_FAILED, ErrorCode::kIoError, "cannot map engine '", path, "'");
  const size_t size = b.size;
  b.holder = std::shared_ptr<const void>(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
  b.data = static_cast<const uint8_t*>(p);
  return b;
}

EngineBytes engineBytesFromString(std::string bytes) {
  // Copy into 64-byte-aligned storage so weight views are aligned as in a mapping.
  EngineBytes b;
  b.size = bytes.size();
  size_t cap = (bytes.size() + 63) / 64 * 64 + 64;
  void* p = std::aligned_alloc(64, cap);
  ANVIL_CHECK(p != nullptr, ErrorCode::kRuntimeError, "out of memory");
  std::memcpy(p, bytes.data(), bytes.size());
  b.holder = std::shared_ptr<const void>(p, [](const void* q) { std::free(const_cast<void*>(q)); });
  b.data = static_cast<const uint8_t*>(p);
  return b;
}

void validateEngine(const EngineBytes& bytes) { checkPlan(bytes, checkHeader(bytes)); }

Plan deserializeEngine(const EngineBytes& bytes) {
  const EngineHeader& h = checkHeader(bytes);
  const fb::PlanDef& p = checkPlan(bytes, h);
  try {
    return Reader(bytes, h, p).run();
  } catch (const Error& e) {
    if (e.code() == ErrorCode::kInvalidEngine) throw;
    ANVIL_THROW(ErrorCode::kInvalidEngine, "invalid engine: ", e.what());
  }
}

}  // namespace anvil::runtime
