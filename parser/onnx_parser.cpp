// ONNX protobuf → IR: tensors (raw, typed fields, external data), value types, attributes,
// subgraphs, the importer dispatch by op and opset, and the support checker.
#include "parser/onnx_parser.h"

#include <google/protobuf/io/coded_stream.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "ir/op_schema.h"
#include "parser/importer.h"

namespace anvil::parser {

using ir::DataType;
using ir::Tensor;

namespace {

std::string readFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot open '", path, "'");
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Protobuf refuses messages over 64 MB by default; models with inline weights exceed it.
template <typename Msg>
bool parseProto(Msg& msg, const std::string& bytes) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), int(bytes.size()));
  in.SetTotalBytesLimit(INT32_MAX);
  return msg.ParseFromCodedStream(&in) && in.ConsumedEntireMessage();
}

struct Ctx {
  std::string baseDir;
  std::map<std::string, int64_t> opsets;
};

DataType dtypeOf(int32_t onnxType, const std::string& what) {
  ANVIL_CHECK(ir::isValidOnnxType(onnxType), ErrorCode::kInvalidModel, what, ": invalid data type ", onnxType);
  return DataType(onnxType);
}

// Copies typed protobuf fields into tensor storage element by element.
template <typename Field, typename Put>
void fillFrom(const Field& field, int64_t n, const std::string& what, Put put) {
  ANVIL_CHECK(int64_t(field.size()) == n, ErrorCode::kInvalidModel, what, ": has ", field.size(),
              " values, its shape needs ", n);
  for (int64_t i = 0; i < n; ++i) put(i, field[int(i)]);
}

Tensor tensorFromProto(const onnx::TensorProto& p, const Ctx& ctx) {
  const std::string what = "tensor '" + p.name() + "'";
  DataType dt = dtypeOf(p.data_type(), what);
  ANVIL_CHECK(dt != DataType::kC64 && dt != DataType::kC128, ErrorCode::kUnsupported, what,
              ": complex tensors are not supported");
  std::vector<int64_t> dims(p.dims().begin(), p.dims().end());
  int64_t n = 1;
  for (int64_t d : dims) {
    ANVIL_CHECK(d >= 0, ErrorCode::kInvalidModel, what, ": negative dim ", d);
    ANVIL_CHECK(d == 0 || n <= (int64_t(1) << 40) / d, ErrorCode::kInvalidModel, what, ": shape is too large");
    n *= d;
  }
  // Check the data source holds the bytes before allocating, so a corrupt shape cannot
  // make us allocate gigabytes.
  if (p.data_location() != onnx::TensorProto::EXTERNAL && p.has_raw_data())
    ANVIL_CHECK(p.raw_data().size() == ir::storageBytes(dt, n), ErrorCode::kInvalidModel, what, ": raw_data has ",
                p.raw_data().size(), " bytes, its shape and type need ", ir::storageBytes(dt, n));
  if (p.data_location() != onnx::TensorProto::EXTERNAL && !p.has_raw_data() && n > 0) {
    const int64_t have = std::max({int64_t(p.float_data_size()), int64_t(p.int32_data_size()),
                                   int64_t(p.int64_data_size()), int64_t(p.double_data_size()),
                                   int64_t(p.uint64_data_size()), int64_t(p.string_data_size())});
    const int64_t need = ir::bitWidth(dt) == 4 ? (n + 1) / 2 : n;
    ANVIL_CHECK(have == need, ErrorCode::kInvalidModel, what, ": has ", have, " values, its shape needs ", need);
  }
  Tensor t(dt, dims);
  if (p.data_location() == onnx::TensorProto::EXTERNAL) {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : p.external_data()) {
      if (kv.key() == "location") location = kv.value();
      else if (kv.key() == "offset") offset = std::stoll(kv.value());
      else if (kv.key() == "length") length = std::stoll(kv.value());
    }
    ANVIL_CHECK(!location.empty(), ErrorCode::kInvalidModel, what, ": external data without a location");
    ANVIL_CHECK(!ctx.baseDir.empty() || std::filesystem::path(location).is_absolute(), ErrorCode::kInvalidModel,
                what, ": external data '", location, "' but the model was not loaded from a file");
    std::filesystem::path file = std::filesystem::path(ctx.baseDir) / location;
    std::ifstream f(file, std::ios::binary);
    ANVIL_CHECK(f.good(), ErrorCode::kIoError, what, ": cannot open external data file '", file.string(), "'");
    const int64_t need = int64_t(t.nbytes());
    ANVIL_CHECK(length < 0 || length == need, ErrorCode::kInvalidModel, what, ": external data length ", length,
                " but the tensor needs ", need, " bytes");
    f.seekg(0, std::ios::end);
    const int64_t size = int64_t(f.tellg());
    ANVIL_CHECK(offset >= 0 && offset + need <= size, ErrorCode::kInvalidModel, what, ": external data [", offset,
                ", ", offset + need, ") is outside '", file.string(), "' (", size, " bytes)");
    f.seekg(offset);
    f.read(static_cast<char*>(t.mutableRaw()), need);
    return t;
  }
  if (p.has_raw_data()) {
    ANVIL_CHECK(dt != DataType::kString, ErrorCode::kInvalidModel, what, ": string tensor with raw_data");
    ANVIL_CHECK(p.raw_data().size() == t.nbytes(), ErrorCode::kInvalidModel, what, ": raw_data has ",
                p.raw_data().size(), " bytes, its shape and type need ", t.nbytes());
    if (n > 0) std::memcpy(t.mutableRaw(), p.raw_data().data(), t.nbytes());
    return t;
  }
  void* raw = t.mutableRaw();
  switch (dt) {
    case DataType::kF32:
      fillFrom(p.float_data(), n, what, [&](int64_t i, float v) { static_cast<float*>(raw)[i] = v; });
      break;
    case DataType::kF64:
      fillFrom(p.double_data(), n, what, [&](int64_t i, double v) { static_cast<double*>(raw)[i] = v; });
      break;
    case DataType::kI64:
      fillFrom(p.int64_data(), n, what, [&](int64_t i, int64_t v) { static_cast<int64_t*>(raw)[i] = v; });
      break;
    case DataType::kU32:
      fillFrom(p.uint64_data(), n, what, [&](int64_t i, uint64_t v) { static_cast<uint32_t*>(raw)[i] = uint32_t(v); });
      break;
    case DataType::kU64:
      fillFrom(p.uint64_data(), n, what, [&](int64_t i, uint64_t v) { static_cast<uint64_t*>(raw)[i] = v; });
      break;
    case DataType::kString:
      fillFrom(p.string_data(), n, what,
               [&](int64_t i, const std::string& v) { static_cast<std::string*>(raw)[i] = v; });
      break;
    case DataType::kI4: case DataType::kU4: case DataType::kF4E2M1: {
      // Packed two per int32_data entry (low nibble first).
      const int64_t packed = (n + 1) / 2;
      fillFrom(p.int32_data(), packed, what,
               [&](int64_t i, int32_t v) { static_cast<uint8_t*>(raw)[i] = uint8_t(v); });
      break;
    }
    default: {
      // int32_data carries every type of 16 bits or fewer (and i32) as widened integers.
      const int bits = ir::bitWidth(dt);
      fillFrom(p.int32_data(), n, what, [&](int64_t i, int32_t v) {
        if (bits == 8) static_cast<uint8_t*>(raw)[i] = uint8_t(v);
        else if (bits == 16) static_cast<uint16_t*>(raw)[i] = uint16_t(v);
        else static_cast<int32_t*>(raw)[i] = v;
      });
    }
  }
  return t;
}

ir::TensorType typeFromProto(const onnx::TypeProto& tp, const std::string& what) {
  if (tp.value_case() == onnx::TypeProto::VALUE_NOT_SET) return {};
  ANVIL_CHECK(tp.has_tensor_type(), ErrorCode::kUnsupported, what,
              ": only tensor types are supported (sequence, map, optional and sparse types are not)");
  const auto& tt = tp.tensor_type();
  ir::TensorType t;
  if (tt.elem_type() != 0) t.dtype = dtypeOf(tt.elem_type(), what);
  if (tt.has_shape()) {
    std::vector<ir::Dim> dims;
    for (const auto& d : tt.shape().dim()) {
      if (d.has_dim_value()) {
        ANVIL_CHECK(d.dim_value() >= 0, ErrorCode::kInvalidModel, what, ": negative dim ", d.dim_value());
        dims.emplace_back(d.dim_value());
      } else if (d.has_dim_param() && !d.dim_param().empty()) {
        dims.push_back(ir::Dim::symbol(d.dim_param()));
      } else {
        dims.emplace_back();
      }
    }
    t.shape = ir::Shape(dims);
  }
  return t;
}

void importGraph(const onnx::GraphProto& gp, ir::Graph& g, const Ctx& ctx);

ir::Attribute::Storage attrFromProto(const onnx::AttributeProto& a, ir::Graph& owner, const Ctx& ctx,
                                     const std::string& where) {
  using AP = onnx::AttributeProto;
  const std::string what = where + ": attribute '" + a.name() + "'";
  ANVIL_CHECK(a.ref_attr_name().empty(), ErrorCode::kUnsupported, what, ": attribute references are not supported");
  auto subgraph = [&](const onnx::GraphProto& gp) {
    auto sub = std::make_shared<ir::Graph>(gp.name().empty() ? a.name() : gp.name(), &owner);
    importGraph(gp, *sub, ctx);
    return sub;
  };
  switch (a.type()) {
    case AP::INT: return int64_t(a.i());
    case AP::FLOAT: return a.f();
    case AP::STRING: return a.s();
    case AP::INTS: return std::vector<int64_t>(a.ints().begin(), a.ints().end());
    case AP::FLOATS: return std::vector<float>(a.floats().begin(), a.floats().end());
    case AP::STRINGS: return std::vector<std::string>(a.strings().begin(), a.strings().end());
    case AP::TENSOR: return tensorFromProto(a.t(), ctx);
    case AP::GRAPH: return subgraph(a.g());
    case AP::GRAPHS: {
      std::vector<std::shared_ptr<ir::Graph>> gs;
      for (const auto& gp : a.graphs()) gs.push_back(subgraph(gp));
      return gs;
    }
    case AP::SPARSE_TENSOR: {
      // Densify: values at linear (1-D indices) or coordinate (2-D indices) positions.
      const auto& sp = a.sparse_tensor();
      Tensor values = tensorFromProto(sp.values(), ctx);
      Tensor indices = tensorFromProto(sp.indices(), ctx);
      std::vector<int64_t> dims(sp.dims().begin(), sp.dims().end());
      Tensor dense(values.dtype(), dims);
      const int64_t nnz = values.numel();
      const size_t esz = ir::storageBytes(values.dtype(), 1);
      for (int64_t k = 0; k < nnz; ++k) {
        int64_t lin = 0;
        if (indices.rank() == 1) {
          lin = indices.getInt(k);
        } else {
          for (size_t d = 0; d < dims.size(); ++d) lin = lin * dims[d] + indices.getInt(k * int64_t(dims.size()) + int64_t(d));
        }
        ANVIL_CHECK(lin >= 0 && lin < dense.numel(), ErrorCode::kInvalidModel, what, ": sparse index out of range");
        std::memcpy(static_cast<char*>(dense.mutableRaw()) + size_t(lin) * esz,
                    static_cast<const char*>(values.raw()) + size_t(k) * esz, esz);
      }
      return dense;
    }
    default:
      ANVIL_THROW(ErrorCode::kUnsupported, what, ": attribute type ", int(a.type()), " is not supported");
  }
}

int opsetFor(const Ctx& ctx, const std::string& domain) {
  auto it = ctx.opsets.find(domain == "ai.onnx" ? "" : domain);
  return it == ctx.opsets.end() ? 0 : int(it->second);
}

std::string nodeLabel(const onnx::NodeProto& n, int index) {
  std::string op = n.domain().empty() || n.domain() == "ai.onnx" ? n.op_type() : n.domain() + "." + n.op_type();
  return op + " '" + (n.name().empty() ? "#" + std::to_string(index) : n.name()) + "'";
}

void importGraph(const onnx::GraphProto& gp, ir::Graph& g, const Ctx& ctx) {
  g.docString = gp.doc_string();
  for (const auto& init : gp.initializer()) {
    ANVIL_CHECK(!init.name().empty(), ErrorCode::kInvalidModel, "graph '", g.name(), "': unnamed initializer");
    Tensor t = tensorFromProto(init, ctx);
    ANVIL_CHECK(!g.findValue(init.name()), ErrorCode::kInvalidModel, "graph '", g.name(), "': initializer '",
                init.name(), "' is defined twice");
    g.addInitializer(init.name(), std::move(t));
  }
  for (const auto& sp : gp.sparse_initializer()) {
    (void)sp;
    ANVIL_THROW(ErrorCode::kUnsupported, "graph '", g.name(), "': sparse initializers are not supported");
  }
  for (const auto& in : gp.input()) {
    ir::TensorType t = typeFromProto(in.type(), "graph input '" + in.name() + "'");
    if (ir::Value* init = g.findValue(in.name())) {  // an initializer that may be overridden
      g.addInput(init);
      continue;
    }
    ANVIL_CHECK(!in.name().empty(), ErrorCode::kInvalidModel, "graph '", g.name(), "': unnamed input");
    g.addInput(g.addValue(in.name(), t));
  }
  std::map<std::string, ir::TensorType> declared;  // value_info and outputs
  for (const auto& vi : gp.value_info()) {
    try {
      declared[vi.name()] = typeFromProto(vi.type(), "value '" + vi.name() + "'");
    } catch (const Error&) {
      // Non-tensor value_info is only a hint; the node that makes it will report the problem.
    }
  }
  for (int i = 0; i < gp.node_size(); ++i) {
    const onnx::NodeProto& np = gp.node(i);
    const std::string label = nodeLabel(np, i);
    const std::string domain = np.domain() == "ai.onnx" ? "" : np.domain();
    const int opset = opsetFor(ctx, domain);
    std::string why;
    const Importer* imp = ImporterRegistry::instance().find(np.op_type(), domain, opset, &why);
    ANVIL_CHECK(imp != nullptr, ErrorCode::kUnsupported, label, ": ", why);
    std::vector<ir::Value*> inputs;
    for (const std::string& name : np.input()) {
      if (name.empty()) {
        inputs.push_back(nullptr);
        continue;
      }
      ir::Value* v = g.lookup(name);
      ANVIL_CHECK(v != nullptr, ErrorCode::kInvalidModel, label, ": input '", name,
                  "' is not a graph input, an initializer or the output of an earlier node");
      inputs.push_back(v);
    }
    ir::Attributes attrs;
    for (const auto& a : np.attribute()) {
      ANVIL_CHECK(!attrs.has(a.name()), ErrorCode::kInvalidModel, label, ": attribute '", a.name(), "' appears twice");
      attrs.set(a.name(), attrFromProto(a, g, ctx, label));
    }
    std::vector<std::string> outs(np.output().begin(), np.output().end());
    for (const std::string& o : outs)
      ANVIL_CHECK(o.empty() || !g.findValue(o), ErrorCode::kInvalidModel, label, ": output '", o,
                  "' is already defined");
    ImportContext ic(g, np.op_type(), domain, np.name(), opset, inputs, std::move(attrs), outs);
    try {
      if (imp->fn) imp->fn(ic);
      else ic.emitAsIs();
    } catch (const Error& e) {
      std::string msg = e.what();
      if (msg.find(label) == std::string::npos) msg = label + ": " + msg;
      throw Error(e.code(), msg);
    }
  }
  for (const auto& out : gp.output()) {
    ir::Value* v = g.findValue(out.name());
    ANVIL_CHECK(v != nullptr, ErrorCode::kInvalidModel, "graph '", g.name(), "': output '", out.name(),
                "' is not produced by any node, input or initializer");
    ir::TensorType t = typeFromProto(out.type(), "graph output '" + out.name() + "'");
    if (v->dtype() == DataType::kUndefined) v->setType(t);
    declared[out.name()] = t;
    g.addOutput(v);
  }
  // Declared types seed inference where a node's inference is weaker (kept if it learns less).
  for (const auto& [name, t] : declared) {
    ir::Value* v = g.findValue(name);
    if (v && v->producer() && v->dtype() == DataType::kUndefined) v->setType(t);
  }
  g.topoSort();
}

Ctx makeCtx(const onnx::ModelProto& mp, const std::string& baseDir) {
  Ctx ctx;
  ctx.baseDir = baseDir;
  for (const auto& o : mp.opset_import()) {
    std::string d = o.domain() == "ai.onnx" ? "" : o.domain();
    ctx.opsets[d] = o.version();
  }
  if (mp.opset_import_size() == 0) ctx.opsets[""] = 1;  // IR version 2 models without opset_import
  return ctx;
}

void checkOpset(const Ctx& ctx) {
  auto it = ctx.opsets.find("");
  if (it == ctx.opsets.end()) return;
  ANVIL_CHECK(it->second >= kMinOpset && it->second <= kMaxOpset, ErrorCode::kUnsupported, "the model uses opset ",
              it->second, " of the default domain; anvil supports opsets ", kMinOpset, " to ", kMaxOpset);
}

ir::Model importModel(const onnx::ModelProto& mp, const std::string& baseDir, const ParseOptions& options) {
  ANVIL_CHECK(mp.has_graph(), ErrorCode::kInvalidModel, "the model has no graph");
  ANVIL_CHECK(mp.functions_size() == 0, ErrorCode::kUnsupported, "model-local functions are not supported (",
              mp.functions_size(), " defined, first '", mp.functions_size() ? mp.functions(0).name() : "", "')");
  Ctx ctx = makeCtx(mp, baseDir);
  checkOpset(ctx);
  ir::Model m;
  m.irVersion = mp.ir_version();
  m.opsets = ctx.opsets;
  m.producerName = mp.producer_name();
  m.producerVersion = mp.producer_version();
  m.domain = mp.domain();
  m.docString = mp.doc_string();
  m.modelVersion = mp.model_version();
  for (const auto& kv : mp.metadata_props()) m.metadata[kv.key()] = kv.value();
  m.graph->setName(mp.graph().name().empty() ? "main" : mp.graph().name());
  importGraph(mp.graph(), *m.graph, ctx);
  if (options.inferShapes) ir::inferShapes(*m.graph);
  return m;
}

void checkGraph(const onnx::GraphProto& gp, const Ctx& ctx, std::vector<SupportIssue>& out) {
  for (int i = 0; i < gp.node_size(); ++i) {
    const auto& np = gp.node(i);
    std::string domain = np.domain() == "ai.onnx" ? "" : np.domain();
    int opset = opsetFor(ctx, domain);
    std::string why;
    if (!ImporterRegistry::instance().find(np.op_type(), domain, opset, &why))
      out.push_back({np.name().empty() ? "#" + std::to_string(i) : np.name(), np.op_type(), domain, opset, why});
    for (const auto& a : np.attribute()) {
      if (a.has_g()) checkGraph(a.g(), ctx, out);
      for (const auto& g : a.graphs()) checkGraph(g, ctx, out);
    }
  }
}

onnx::ModelProto decodeModel(const std::string& bytes) {
  onnx::ModelProto mp;
  ANVIL_CHECK(!bytes.empty(), ErrorCode::kInvalidModel, "the model file is empty");
  ANVIL_CHECK(parseProto(mp, bytes), ErrorCode::kInvalidModel,
              "the model is not a valid ONNX protobuf (truncated or corrupted?)");
  return mp;
}

}  // namespace

std::string SupportIssue::str() const {
  std::string o = domain.empty() ? op : domain + "." + op;
  return o + " '" + node + "' (opset " + std::to_string(opset) + "): " + reason;
}

ir::Model parseOnnxBytes(const std::string& bytes, const std::string& baseDir, const ParseOptions& options) {
  onnx::ModelProto mp = decodeModel(bytes);
  return importModel(mp, baseDir, options);
}

ir::Model parseOnnxFile(const std::string& path, const ParseOptions& options) {
  std::string bytes = readFile(path);
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  try {
    return parseOnnxBytes(bytes, dir, options);
  } catch (const Error& e) {
    throw Error(e.code(), path + ": " + e.what());
  }
}

std::vector<SupportIssue> checkSupport(const std::string& path) {
  onnx::ModelProto mp = decodeModel(readFile(path));
  Ctx ctx = makeCtx(mp, "");
  std::vector<SupportIssue> out;
  auto it = ctx.opsets.find("");
  if (it != ctx.opsets.end() && (it->second < kMinOpset || it->second > kMaxOpset))
    out.push_back({"(model)", "", "", int(it->second), "opset " + std::to_string(it->second) +
                   " is outside the supported range " + std::to_string(kMinOpset) + ".." + std::to_string(kMaxOpset)});
  if (mp.functions_size() > 0)
    out.push_back({"(model)", "", "", 0, "model-local functions are not supported"});
  checkGraph(mp.graph(), ctx, out);
  return out;
}

Tensor loadTensorProto(const std::string& path) {
  onnx::TensorProto tp;
  ANVIL_CHECK(parseProto(tp, readFile(path)), ErrorCode::kInvalidModel, "'", path, "' is not a TensorProto");
  Ctx ctx;
  ctx.baseDir = std::filesystem::path(path).parent_path().string();
  return tensorFromProto(tp, ctx);
}

std::string serializeTensorProto(const Tensor& t, const std::string& name) {
  onnx::TensorProto tp;
  tp.set_name(name);
  tp.set_data_type(int32_t(t.dtype()));
  for (int64_t d : t.dims()) tp.add_dims(d);
  if (t.dtype() == DataType::kString) {
    for (int64_t i = 0; i < t.numel(); ++i) tp.add_string_data(t.str(i));
  } else {
    tp.set_raw_data(t.raw(), t.nbytes());
  }
  return tp.SerializeAsString();
}

std::vector<ImporterInfo> importerTable() {
  std::vector<ImporterInfo> out;
  for (const auto& imp : ImporterRegistry::instance().all())
    out.push_back({imp.op, imp.domain, imp.sinceVersion, imp.untilVersion});
  std::sort(out.begin(), out.end(), [](const ImporterInfo& a, const ImporterInfo& b) {
    return std::tie(a.domain, a.op, a.sinceVersion) < std::tie(b.domain, b.op, b.sinceVersion);
  });
  return out;
}

// ---- importer seam -------------------------------------------------------------------

ImporterRegistry& ImporterRegistry::instance() {
  static ImporterRegistry* registry = [] {
    auto* r = new ImporterRegistry();
    for (auto fn : importers::kFamilies) fn(*r);
    return r;
  }();
  return *registry;
}

void ImporterRegistry::add(Importer imp) {
  for (const auto& o : importers_)
    ANVIL_CHECK(!(o.op == imp.op && o.domain == imp.domain && o.sinceVersion <= imp.untilVersion &&
                  imp.sinceVersion <= o.untilVersion),
                ErrorCode::kInternal, "importers for ", imp.op, " overlap");
  importers_.push_back(std::move(imp));
}

const Importer* ImporterRegistry::find(const std::string& op, const std::string& domain, int opset,
                                       std::string* why) const {
  int lo = 1 << 30, hi = 0;
  bool any = false;
  for (const auto& imp : importers_) {
    if (imp.op != op || imp.domain != domain) continue;
    any = true;
    lo = std::min(lo, imp.sinceVersion);
    hi = std::max(hi, imp.untilVersion);
    if (opset >= imp.sinceVersion && opset <= imp.untilVersion) return &imp;
  }
  if (why) {
    if (!any && !domain.empty() && opset == 0)
      *why = "domain '" + domain + "' is not imported by the model's opset_import";
    else if (!any)
      *why = "op '" + (domain.empty() ? op : domain + "." + op) + "' is not supported";
    else
      *why = "op '" + op + "' is supported for opsets " + std::to_string(lo) + " to " + std::to_string(hi) +
             ", the model uses opset " + std::to_string(opset);
  }
  return nullptr;
}

ir::Node* ImportContext::emitAsIs() { return emit(op_, inputs_, attrs_, outputs_, domain_); }

ir::Node* ImportContext::emit(const std::string& op, const std::vector<ir::Value*>& inputs, ir::Attributes attrs,
                              const std::vector<std::string>& outputs, const std::string& domain) {
  std::vector<ir::Value*> ins = inputs;
  while (!ins.empty() && ins.back() == nullptr) ins.pop_back();  // trailing omitted inputs
  ir::Node* n = graph_.addNode(op, domain, name_, ins, outputs);
  ANVIL_CHECK(n->schema() != nullptr, ErrorCode::kInternal, n->label(), ": importer emitted an op with no schema");
  n->attrs() = std::move(attrs);
  return n;
}

ir::Value* ImportContext::addConstant(const std::string& suffix, Tensor t) {
  std::string base = (name_.empty() ? op_ : name_) + "__" + suffix;
  std::string name = base;
  for (int i = 1; graph_.lookup(name); ++i) name = base + "_" + std::to_string(i);
  return graph_.addInitializer(name, std::move(t));
}

void ImportContext::moveIntsAttrToInput(const std::string& attr, size_t index) {
  if (!attrs_.has(attr)) return;
  std::vector<int64_t> v = attrs_.getInts(attr);
  attrs_.erase(attr);
  if (inputs_.size() <= index) inputs_.resize(index + 1, nullptr);
  inputs_[index] = addConstant(attr, Tensor::fromVector<int64_t>(DataType::kI64, {int64_t(v.size())}, v));
}

void ImportContext::fail(const std::string& message, bool unsupported) const {
  ANVIL_THROW(unsupported ? ErrorCode::kUnsupported : ErrorCode::kInvalidModel, op_, " '", name_, "': ", message);
}

}  // namespace anvil::parser
