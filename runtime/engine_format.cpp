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

#include "cpu/tactics.h"
#include "engine_generated.h"
#include "ir/op_schema.h"

namespace anvil::runtime {

using ir::DataType;
using ir::Tensor;

const char* anvilVersionString() { return "0.1.0"; }

uint64_t fnv1a64(const uint8_t* data, size_t n) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < n; ++i) {
    h ^= data[i];
    h *= 1099511628211ull;
  }
  return h;
}

namespace {

// ---- writing ---------------------------------------------------------------------------

class Writer {
 public:
  explicit Writer(const Plan& plan) : plan_(plan) {}

  std::string run() {
    collectGraph(*plan_.graph);
    std::vector<flatbuffers::Offset<fb::ValueDef>> valueDefs;
    for (const ir::Value* v : values_) valueDefs.push_back(valueDef(*v));
    // Graphs are written in discovery order; graph 0 is main.
    std::vector<flatbuffers::Offset<fb::GraphDef>> graphDefs(graphs_.size());
    for (size_t gi = 0; gi < graphs_.size(); ++gi) graphDefs[gi] = graphDef(*graphs_[gi], gi == 0);
    std::vector<flatbuffers::Offset<fb::InputProfile>> profiles;
    for (const auto& [name, dims] : plan_.optShapes)
      profiles.push_back(fb::CreateInputProfile(fbb_, fbb_.CreateString(name), fbb_.CreateVector(dims)));
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
        fbb_.CreateVectorOfStrings(mv));
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
    h.checksum = fnv1a64(reinterpret_cast<const uint8_t*>(out.data()) + sizeof(EngineHeader),
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
    flatbuffers::Offset<fb::TensorRef> init = v.isInitializer() ? tensorRef(*v.initializer()) : 0;
    return fb::CreateValueDef(fbb_, fbb_.CreateString(v.name()), int32_t(v.dtype()), v.shape().rankKnown(),
                              fbb_.CreateVector(dims), init, v.producer() != nullptr);
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
      nodes.push_back(fb::CreateNodeDef(fbb_, fbb_.CreateString(n.op()), fbb_.CreateString(n.domain()),
                                        fbb_.CreateString(n.name()), fbb_.CreateVector(ni), fbb_.CreateVector(no),
                                        fbb_.CreateVector(attrs), fbb_.CreateString(tactic)));
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
  if (fnv1a64(b.data + sizeof(EngineHeader), b.size - sizeof(EngineHeader)) != h.checksum)
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
  if (device != "cpu")
    bad("the engine targets device '" + device + "'; this runtime runs 'cpu' engines");
  if (plan->isa_required()) {
    std::stringstream ss(plan->isa_required()->str());
    std::string feature;
    while (std::getline(ss, feature, ','))
      if (!feature.empty() && !cpu::cpuHas(feature))
        bad("the engine needs CPU feature '" + feature + "' (built on " +
            (plan->build_isa() ? plan->build_isa()->str() : "?") + "), this CPU is " + cpu::cpuIsaLevel());
  }
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
    out.optLevel = plan_.opt_level();
    out.producer = str(plan_.producer());
    if (plan_.metadata_keys() && plan_.metadata_values()) {
      if (plan_.metadata_keys()->size() != plan_.metadata_values()->size()) bad("metadata keys and values differ");
      for (unsigned i = 0; i < plan_.metadata_keys()->size(); ++i)
        out.metadata[plan_.metadata_keys()->Get(i)->str()] = plan_.metadata_values()->Get(i)->str();
    }
    if (plan_.profiles())
      for (const auto* prof : *plan_.profiles()) {
        std::vector<int64_t> dims;
        if (prof->opt()) dims.assign(prof->opt()->begin(), prof->opt()->end());
        out.optShapes[str(prof->name())] = dims;
      }
    values_.assign(plan_.values()->size(), nullptr);
    building_.assign(plan_.graphs()->size(), false);
    out.graph = std::make_shared<ir::Graph>();
    buildGraph(0, *out.graph, &out.tactics);
    return out;
  }

 private:
  static std::string str(const flatbuffers::String* s) { return s ? s->str() : std::string(); }

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
        ir::Value* v = vd.initializer() ? g.addInitializer(str(vd.name()), tensor(vd.initializer()))
                                        : g.addValue(str(vd.name()));
        v->setType(type(vd));
        values_[size_t(id)] = v;
      }
    if (gd.inputs())
      for (int id : *gd.inputs()) g.addInput(value(id));
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
          values_[size_t(outIds[k])] = n->output(k);
        }
        if (nd->attrs())
          for (const fb::AttrDef* ad : *nd->attrs()) n->attrs().set(str(ad->name()), attr(*ad, g));
        const std::string tactic = nd->tactic() ? nd->tactic()->str() : "ref";
        if (!cpu::TacticRegistry::instance().find(op, domain, tactic))
          bad(n->label() + " uses tactic '" + tactic + "', which this runtime does not have");
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
