// The IR text printer. Printing runs in two walks over the same order: the first names
// every value and every tensor printed by reference, the second writes the text, so a
// graph header can name outputs defined further down.
#include "ir/printer.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace anvil::ir {

namespace {

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

// Value and graph names after % and @: [A-Za-z0-9_.]+, else quoted.
bool isBareName(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!isNameChar(c)) return false;
  return true;
}

// Identifiers (attribute names, dim symbols, ops): [A-Za-z_][A-Za-z0-9_.]*, and not a word
// the lexer reads as a number.
bool isIdent(const std::string& s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9') || s[0] == '.') return false;
  if (s == "inf" || s == "nan") return false;
  return isBareName(s);
}

bool allDigits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return true;
}

std::string sigil(char prefix, const std::string& name) {
  return prefix + (isBareName(name) ? name : quoteString(name));
}

std::string identText(const std::string& s) { return isIdent(s) ? s : quoteString(s); }

std::string fmtReal(double v, int precision) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", precision, v);
  return buf;
}

// A float attribute always reads back as a float: 1 prints as 1.0.
std::string fmtFloatAttr(float f) {
  std::string s = fmtReal(f, 9);
  if (s.find_first_of(".ein") == std::string::npos) s += ".0";
  return s;
}

std::string fmtElement(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DataType::kF32: return fmtReal(t.data<float>()[i], 9);
    case DataType::kF64: return fmtReal(t.data<double>()[i], 17);
    case DataType::kF16: case DataType::kBF16: case DataType::kF8E4M3FN: case DataType::kF8E4M3FNUZ:
    case DataType::kF8E5M2: case DataType::kF8E5M2FNUZ: case DataType::kF4E2M1:
      return fmtReal(t.getDouble(i), 9);
    case DataType::kBool: return t.data<uint8_t>()[i] ? "true" : "false";
    case DataType::kI64: return std::to_string(t.data<int64_t>()[i]);
    case DataType::kU64: return std::to_string(t.data<uint64_t>()[i]);
    case DataType::kString: return quoteString(t.str(i));
    case DataType::kC64:
      return fmtReal(t.data<float>()[2 * i], 9) + ", " + fmtReal(t.data<float>()[2 * i + 1], 9);
    case DataType::kC128:
      return fmtReal(t.data<double>()[2 * i], 17) + ", " + fmtReal(t.data<double>()[2 * i + 1], 17);
    default: return std::to_string(t.getInt(i));
  }
}

std::string inlineData(const Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (i) s += ", ";
    s += fmtElement(t, i);
  }
  return s + "]";
}

bool typeKnown(const TensorType& t) { return t.dtype != DataType::kUndefined || t.shape.rankKnown(); }

std::string spaces(int n) { return std::string(size_t(n), ' '); }

// Initializers that are also graph inputs first (in input order), then the rest in
// definition order: the order the parser recreates them in.
std::vector<const Value*> orderedInitializers(const Graph& g) {
  std::vector<const Value*> out;
  std::unordered_set<const Value*> seen;
  for (const Value* v : g.inputs())
    if (v && v->isInitializer() && v->owner() == &g && seen.insert(v).second) out.push_back(v);
  for (const Value* v : g.initializers())
    if (seen.insert(v).second) out.push_back(v);
  return out;
}

std::vector<const Graph*> graphsOf(const Attribute& a) {
  std::vector<const Graph*> out;
  if (auto* g = std::get_if<std::shared_ptr<Graph>>(&a.value)) out.push_back(g->get());
  if (auto* gs = std::get_if<std::vector<std::shared_ptr<Graph>>>(&a.value))
    for (const auto& g : *gs) out.push_back(g.get());
  return out;
}

class Printer {
 public:
  Printer(const PrintOptions& options, WeightMap* referenced) : opt_(options), weights_(referenced) {}

  std::string graph(const Graph& g) {
    nameGraph(g);
    std::string out;
    printGraph(g, 0, out);
    return out + "\n";
  }

 private:
  // ---- naming walk -------------------------------------------------------------------
  bool shadowed(const std::string& name) const {
    for (const auto& scope : scopes_)
      if (scope.count(name)) return true;
    return false;
  }

  void tryKeep(const Value* v) {
    if (!v || names_.count(v)) return;
    const std::string& n = v->name();
    if (n.empty() || allDigits(n) || shadowed(n)) return;
    names_[v] = n;
    scopes_.back().insert(n);
  }

  void number(const Value* v) {
    if (v && !names_.count(v)) names_[v] = std::to_string(nextTemp_++);
  }

  std::string uniqueRef(std::string base) {
    if (base.empty()) base = "weight";
    std::string ref = base;
    for (int k = 1; refs_.count(ref); ++k) ref = base + "." + std::to_string(k);
    refs_.insert(ref);
    return ref;
  }

  bool byReference(const Tensor& t) const {
    return !opt_.inlineAll && t.defined() && t.numel() > opt_.inlineLimit;
  }

  // Quantization scales and zero points printed by reference: "<value>.scale", "<value>.zp".
  void nameMetaTensors(const Value* v) {
    if (!v || !v->quantization()) return;
    const Quantization& q = *v->quantization();
    if (byReference(q.scale)) tensorRefs_[&q.scale] = uniqueRef(names_[v] + ".scale");
    if (byReference(q.zeroPoint)) tensorRefs_[&q.zeroPoint] = uniqueRef(names_[v] + ".zp");
  }

  void nameGraph(const Graph& g) {
    scopes_.emplace_back();
    for (const Value* v : g.inputs()) tryKeep(v);
    for (const Value* v : orderedInitializers(g)) tryKeep(v);
    for (const Value* v : g.outputs())
      if (v && v->owner() == &g) tryKeep(v);
    for (const Value* v : g.inputs()) {
      number(v);
      nameMetaTensors(v);
    }
    for (const Value* v : orderedInitializers(g)) {
      number(v);
      if (byReference(*v->initializer())) tensorRefs_[v->initializer()] = uniqueRef(v->name());
      if (!std::count(g.inputs().begin(), g.inputs().end(), v)) nameMetaTensors(v);
    }
    for (const auto& n : g.nodes()) {
      if (opt_.keepAllNames)
        for (const Value* o : n->outputs()) tryKeep(o);
      for (const Value* o : n->outputs()) {
        number(o);
        nameMetaTensors(o);
      }
      const std::string base = n->numOutputs() ? names_[n->output(0)]
                               : !n->name().empty() ? n->name() : "node" + std::to_string(nodeCount_);
      for (const auto& [attrName, attr] : n->attrs().all()) {
        if (auto* t = std::get_if<Tensor>(&attr.value); t && byReference(*t))
          tensorRefs_[t] = uniqueRef(base + "." + attrName);
        for (const Graph* sub : graphsOf(attr))
          if (sub) nameGraph(*sub);
      }
      for (const auto& [paramName, param] : n->tacticParams().all())
        if (auto* t = std::get_if<Tensor>(&param.value); t && byReference(*t))
          tensorRefs_[t] = uniqueRef(base + ".tactic." + paramName);
      ++nodeCount_;
    }
    scopes_.pop_back();
  }

  // ---- text walk ---------------------------------------------------------------------
  std::string ref(const Value* v) {
    if (!v) return "none";
    auto it = names_.find(v);
    if (it == names_.end()) it = names_.emplace(v, std::to_string(nextTemp_++)).first;  // stray use
    return sigil('%', it->second);
  }

  std::string typedRef(const Value* v) {
    std::string s = ref(v);
    if (v && (typeKnown(v->type()) || !v->hasDefaultMeta())) s += ": " + typeText(v->type()) + metaText(*v);
    return s;
  }

  // `{NCHW8c, device=cuda, scale=f32[] [0.5], zp=i8[] [3], axis=1}` after a value's type;
  // nothing when every field has its default.
  std::string metaText(const Value& v) {
    if (v.hasDefaultMeta()) return "";
    std::vector<std::string> items;
    if (!v.layout().isPlain()) items.push_back(layoutName(v.layout()));
    if (v.device() != Device::kCPU) items.push_back(std::string("device=") + deviceName(v.device()));
    if (const auto& q = v.quantization()) {
      items.push_back("scale=" + tensorText(q->scale));
      if (q->zeroPoint.defined()) items.push_back("zp=" + tensorText(q->zeroPoint));
      if (q->axis) items.push_back("axis=" + std::to_string(*q->axis));
    }
    std::string s = "{";
    for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + items[i];
    return s + "}";
  }

  // ` @precision=f16 @device=cuda @tactic={tile=8}` after a node's attributes; nothing
  // for the defaults.
  std::string nodeMetaText(const Node& n, int indent) {
    std::string s;
    if (n.precision() != DataType::kUndefined) s += std::string(" @precision=") + dtypeName(n.precision());
    if (n.device() != Device::kCPU) s += std::string(" @device=") + deviceName(n.device());
    if (!n.tacticParams().empty()) {
      s += " @tactic={";
      size_t k = 0;
      for (const auto& [name, a] : n.tacticParams().all())
        s += (k++ ? ", " : "") + identText(name) + "=" + attrText(a, indent + 2);
      s += "}";
    }
    return s;
  }

  std::string tensorText(const Tensor& t) {
    if (!t.defined()) return "?";
    std::string s = typeText(t.type()) + " ";
    auto it = tensorRefs_.find(&t);
    if (it == tensorRefs_.end()) return s + inlineData(t);
    if (weights_) weights_->emplace(it->second, t);
    return s + sigil('@', it->second);
  }

  void printGraph(const Graph& g, int indent, std::string& out) {
    out += "graph " + sigil('@', g.name()) + "(";
    for (size_t i = 0; i < g.inputs().size(); ++i) out += (i ? ", " : "") + typedRef(g.inputs()[i]);
    out += ") -> (";
    for (size_t i = 0; i < g.outputs().size(); ++i) out += (i ? ", " : "") + typedRef(g.outputs()[i]);
    out += ")";
    if (!g.docString.empty()) out += " doc=" + quoteString(g.docString);
    out += " {\n";
    for (const Value* v : orderedInitializers(g)) {
      const Tensor& t = *v->initializer();
      std::string text = tensorText(t);
      // The metadata goes right after the type; a graph input's is in the graph header.
      const bool isInput = std::count(g.inputs().begin(), g.inputs().end(), v) != 0;
      if (t.defined() && !v->hasDefaultMeta() && !isInput) {
        const size_t typeEnd = typeText(t.type()).size();
        text = text.substr(0, typeEnd) + metaText(*v) + text.substr(typeEnd);
      }
      out += spaces(indent + 2) + ref(v) + " = const " + text + "\n";
    }
    for (const auto& n : g.nodes()) printNode(*n, indent + 2, out);
    out += spaces(indent) + "}";
  }

  void printNode(const Node& n, int indent, std::string& out) {
    out += spaces(indent);
    for (size_t i = 0; i < n.numOutputs(); ++i) out += (i ? ", " : "") + ref(n.output(i));
    if (n.numOutputs()) out += " = ";
    std::string op = n.domain().empty() ? n.op() : n.domain() + "." + n.op();
    out += (op == "const" ? quoteString(op) : identText(op)) + "(";
    for (size_t i = 0; i < n.numInputs(); ++i) out += (i ? ", " : "") + ref(n.input(i));
    out += ")";
    const auto& attrs = n.attrs().all();
    if (!attrs.empty()) {
      bool multiline = false;
      for (const auto& [name, a] : attrs)
        multiline |= a.kind() == Attribute::Kind::kGraph || a.kind() == Attribute::Kind::kGraphs;
      out += multiline ? " {\n" : " {";
      size_t k = 0;
      for (const auto& [name, a] : attrs) {
        if (multiline) out += spaces(indent + 2);
        out += identText(name) + "=" + attrText(a, indent + 2);
        if (++k < attrs.size()) out += multiline ? "," : ", ";
        if (multiline) out += "\n";
      }
      out += multiline ? spaces(indent) + "}" : "}";
    }
    out += nodeMetaText(n, indent);
    bool anyType = false;
    for (const Value* o : n.outputs()) anyType |= typeKnown(o->type()) || !o->hasDefaultMeta();
    if (anyType) {
      out += " : ";
      for (size_t i = 0; i < n.numOutputs(); ++i)
        out += (i ? ", " : "") + typeText(n.output(i)->type()) + metaText(*n.output(i));
    }
    if (opt_.nodeNames && !n.name().empty()) out += " loc(" + quoteString(n.name()) + ")";
    out += "\n";
  }

  std::string attrText(const Attribute& a, int indent) {
    switch (a.kind()) {
      case Attribute::Kind::kInt: return std::to_string(std::get<int64_t>(a.value));
      case Attribute::Kind::kFloat: return fmtFloatAttr(std::get<float>(a.value));
      case Attribute::Kind::kString: return quoteString(std::get<std::string>(a.value));
      case Attribute::Kind::kInts: {
        const auto& v = std::get<std::vector<int64_t>>(a.value);
        if (v.empty()) return "ints[]";
        std::string s = "[";
        for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
        return s + "]";
      }
      case Attribute::Kind::kFloats: {
        const auto& v = std::get<std::vector<float>>(a.value);
        if (v.empty()) return "floats[]";
        std::string s = "[";
        for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + fmtFloatAttr(v[i]);
        return s + "]";
      }
      case Attribute::Kind::kStrings: {
        const auto& v = std::get<std::vector<std::string>>(a.value);
        if (v.empty()) return "strings[]";
        std::string s = "[";
        for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + quoteString(v[i]);
        return s + "]";
      }
      case Attribute::Kind::kTensor: return "tensor " + tensorText(std::get<Tensor>(a.value));
      case Attribute::Kind::kGraph: {
        std::string s;
        const auto& g = std::get<std::shared_ptr<Graph>>(a.value);
        if (!g) return "graph ?";
        printGraph(*g, indent, s);
        return s;
      }
      case Attribute::Kind::kGraphs: {
        const auto& gs = std::get<std::vector<std::shared_ptr<Graph>>>(a.value);
        if (gs.empty()) return "graphs[]";
        std::string s = "[\n";
        for (size_t i = 0; i < gs.size(); ++i) {
          s += spaces(indent + 2);
          if (gs[i]) printGraph(*gs[i], indent + 2, s);
          else s += "graph ?";
          s += i + 1 < gs.size() ? ",\n" : "\n";
        }
        return s + spaces(indent) + "]";
      }
    }
    return "?";
  }

  const PrintOptions& opt_;
  WeightMap* weights_;
  std::unordered_map<const Value*, std::string> names_;
  std::unordered_map<const Tensor*, std::string> tensorRefs_;
  std::vector<std::set<std::string>> scopes_;
  std::set<std::string> refs_;
  int64_t nextTemp_ = 0;
  int64_t nodeCount_ = 0;
};

std::string modelHeader(const Model& m) {
  std::vector<std::string> fields;
  if (!m.docString.empty()) fields.push_back("doc=" + quoteString(m.docString));
  if (!m.domain.empty()) fields.push_back("domain=" + quoteString(m.domain));
  if (m.irVersion) fields.push_back("ir_version=" + std::to_string(m.irVersion));
  if (!m.metadata.empty()) {
    std::string s = "metadata={";
    size_t k = 0;
    for (const auto& [key, value] : m.metadata)
      s += (k++ ? ", " : "") + quoteString(key) + "=" + quoteString(value);
    fields.push_back(s + "}");
  }
  if (m.modelVersion) fields.push_back("model_version=" + std::to_string(m.modelVersion));
  if (!m.opsets.empty()) {
    std::string s = "opsets={";
    size_t k = 0;
    for (const auto& [domain, version] : m.opsets)
      s += (k++ ? ", " : "") + quoteString(domain) + "=" + std::to_string(version);
    fields.push_back(s + "}");
  }
  if (!m.producerName.empty()) fields.push_back("producer_name=" + quoteString(m.producerName));
  if (!m.producerVersion.empty())
    fields.push_back("producer_version=" + quoteString(m.producerVersion));
  std::string s = "model {";
  for (size_t i = 0; i < fields.size(); ++i) s += (i ? ", " : "") + fields[i];
  return s + "}\n";
}

}  // namespace

std::string quoteString(const std::string& s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\x%02x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  return out + "\"";
}

std::string typeText(const TensorType& t) {
  std::string s = t.dtype == DataType::kUndefined ? "?" : dtypeName(t.dtype);
  if (!t.shape.rankKnown()) return t.dtype == DataType::kUndefined ? s : s + "[*]";
  s += "[";
  for (size_t i = 0; i < t.shape.rank(); ++i) {
    if (i) s += ",";
    const Dim& d = t.shape[i];
    s += d.isStatic() ? std::to_string(d.value()) : d.isSymbolic() ? identText(d.symbolName()) : "?";
  }
  return s + "]";
}

std::string printGraph(const Graph& graph, const PrintOptions& options) {
  return printGraph(graph, options, nullptr);
}

std::string printGraph(const Graph& graph, const PrintOptions& options, WeightMap* referenced) {
  return Printer(options, referenced).graph(graph);
}

std::string printModel(const Model& model, const PrintOptions& options) {
  return printModel(model, options, nullptr);
}

std::string printModel(const Model& model, const PrintOptions& options, WeightMap* referenced) {
  return modelHeader(model) + printGraph(*model.graph, options, referenced);
}

}  // namespace anvil::ir
