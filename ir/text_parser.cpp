// The IR text parser: a lexer into tokens with positions, then recursive descent that
// builds the graph as it reads, so a use can only see what is already defined.
#include "ir/text_parser.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <set>
#include <unordered_map>

#include "ir/printer.h"
#include "ir/verifier.h"

namespace anvil::ir {

namespace {

struct Token {
  enum Kind { kEof, kIdent, kValue, kAt, kInt, kFloat, kString, kPunct } kind = kEof;
  std::string text;  // identifier, name (without sigil), number, unescaped string, punctuation
  int line = 0, col = 0;
};

std::string posText(int line, int col) { return std::to_string(line) + ":" + std::to_string(col); }

[[noreturn]] void failAt(int line, int col, const std::string& msg) {
  ANVIL_THROW(ErrorCode::kInvalidModel, "ir text ", posText(line, col), ": ", msg);
}

std::string describe(const Token& t) {
  switch (t.kind) {
    case Token::kEof: return "end of input";
    case Token::kValue: return "'%" + t.text + "'";
    case Token::kAt: return "'@" + t.text + "'";
    case Token::kString: return "string " + quoteString(t.text);
    default: return "'" + t.text + "'";
  }
}

bool isNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}
bool isDigit(char c) { return c >= '0' && c <= '9'; }
bool isIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }

class Lexer {
 public:
  explicit Lexer(const std::string& s) : s_(s) {}

  std::vector<Token> run() {
    std::vector<Token> out;
    for (;;) {
      skipSpace();
      Token t;
      t.line = line_;
      t.col = col_;
      if (i_ >= s_.size()) {
        out.push_back(t);
        return out;
      }
      char c = s_[i_];
      if (c == '%' || c == '@') {
        advance();
        t.kind = c == '%' ? Token::kValue : Token::kAt;
        if (i_ < s_.size() && s_[i_] == '"') {
          t.text = readString();
        } else {
          while (i_ < s_.size() && isNameChar(s_[i_])) t.text += advance();
          if (t.text.empty())
            failAt(t.line, t.col, std::string("expected a name after '") + c + "'");
        }
      } else if (c == '"') {
        t.kind = Token::kString;
        t.text = readString();
      } else if (c == '-' && peekChar(1) == '>') {
        t.kind = Token::kPunct;
        t.text = "->";
        advance();
        advance();
      } else if (isDigit(c) || ((c == '-' || c == '+' || c == '.') && startsNumber())) {
        readNumber(t);
      } else if (isIdentStart(c)) {
        t.kind = Token::kIdent;
        while (i_ < s_.size() && isNameChar(s_[i_])) t.text += advance();
        if (t.text == "inf" || t.text == "nan") t.kind = Token::kFloat;
      } else if (std::string("(){}[],=:*?").find(c) != std::string::npos) {
        t.kind = Token::kPunct;
        t.text = std::string(1, advance());
      } else {
        failAt(t.line, t.col, "unexpected character " + quoteString(std::string(1, c)));
      }
      out.push_back(std::move(t));
    }
  }

 private:
  char peekChar(size_t k) const { return i_ + k < s_.size() ? s_[i_ + k] : '\0'; }
  char advance() {
    char c = s_[i_++];
    if (c == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    return c;
  }

  void skipSpace() {
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        advance();
      } else if (c == '/' && peekChar(1) == '/') {
        while (i_ < s_.size() && s_[i_] != '\n') advance();
      } else {
        return;
      }
    }
  }

  bool startsNumber() const {
    size_t k = 0;
    if (s_[i_] == '-' || s_[i_] == '+') ++k;
    if (isDigit(peekChar(k))) return true;
    if (peekChar(k) == '.' && isDigit(peekChar(k + 1))) return true;
    return s_.compare(i_ + k, 3, "inf") == 0 || s_.compare(i_ + k, 3, "nan") == 0;
  }

  void readNumber(Token& t) {
    t.kind = Token::kInt;
    if (s_[i_] == '-' || s_[i_] == '+') t.text += advance();
    if (s_.compare(i_, 3, "inf") == 0 || s_.compare(i_, 3, "nan") == 0) {
      for (int k = 0; k < 3; ++k) t.text += advance();
      t.kind = Token::kFloat;
    } else {
      while (isDigit(peekChar(0))) t.text += advance();
      if (peekChar(0) == '.') {
        t.kind = Token::kFloat;
        t.text += advance();
        while (isDigit(peekChar(0))) t.text += advance();
      }
      if (peekChar(0) == 'e' || peekChar(0) == 'E') {
        t.kind = Token::kFloat;
        t.text += advance();
        if (peekChar(0) == '-' || peekChar(0) == '+') t.text += advance();
        if (!isDigit(peekChar(0))) failAt(line_, col_, "expected digits in the exponent of " + t.text);
        while (isDigit(peekChar(0))) t.text += advance();
      }
    }
    if (isNameChar(peekChar(0)))
      failAt(t.line, t.col, "malformed number '" + t.text + peekChar(0) + "...'");
  }

  int hexDigit(char c) const {
    if (isDigit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  }

  std::string readString() {
    const int line = line_, col = col_;
    advance();  // opening quote
    std::string out;
    for (;;) {
      if (i_ >= s_.size() || s_[i_] == '\n') failAt(line, col, "unterminated string");
      char c = advance();
      if (c == '"') return out;
      if (c != '\\') {
        out += c;
        continue;
      }
      const int eline = line_, ecol = col_ - 1;
      if (i_ >= s_.size()) failAt(line, col, "unterminated string");
      char e = advance();
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'x': {
          int hi = hexDigit(peekChar(0)), lo = hexDigit(peekChar(1));
          if (hi < 0 || lo < 0) failAt(eline, ecol, "expected two hex digits after \\x");
          advance();
          advance();
          out += char(hi * 16 + lo);
          break;
        }
        default: failAt(eline, ecol, std::string("unknown escape \\") + e);
      }
    }
  }

  const std::string& s_;
  size_t i_ = 0;
  int line_ = 1, col_ = 1;
};

bool typeKnown(const TensorType& t) { return t.dtype != DataType::kUndefined || t.shape.rankKnown(); }

// A value's metadata as read from `{...}` after its type; `where` is the '{' (for errors).
struct ValueMeta {
  Layout layout;
  std::optional<Quantization> quant;
  Device device = Device::kCPU;
  bool given = false;
  int line = 0, col = 0;

  void applyTo(Value& v) const {
    v.setLayout(layout);
    v.setQuantization(quant);
    v.setDevice(device);
  }
  bool sameAs(const Value& v) const { return layout == v.layout() && quant == v.quantization() && device == v.device(); }
};

std::string metaText(const ValueMeta& m) {
  std::string s;
  if (!m.layout.isPlain()) s += layoutName(m.layout);
  if (m.device != Device::kCPU) s += std::string(s.empty() ? "" : ", ") + "device=" + deviceName(m.device);
  if (m.quant) s += std::string(s.empty() ? "" : ", ") + (m.quant->axis ? "per-axis" : "per-tensor") + " quantization";
  return s.empty() ? "no metadata" : "{" + s + "}";
}

std::string metaText(const Value& v) {
  ValueMeta m;
  m.layout = v.layout();
  m.quant = v.quantization();
  m.device = v.device();
  return metaText(m);
}

constexpr int kMaxDepth = 200;

class Parser {
 public:
  Parser(const std::string& text, const WeightResolver* weights)
      : toks_(Lexer(text).run()), weights_(weights) {}

  Model model() {
    Model m;
    if (isIdent("model")) {
      next();
      modelHeader(m);
    }
    expectIdent("graph", "a graph ('graph @name(...) -> (...) {')");
    graph(*m.graph, 0);
    if (peek().kind != Token::kEof) fail(peek(), "expected end of input after the graph, got " + describe(peek()));
    return m;
  }

 private:
  // ---- token helpers -----------------------------------------------------------------
  const Token& peek(size_t k = 0) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  Token next() {
    Token t = peek();
    if (pos_ < toks_.size() - 1) ++pos_;
    return t;
  }
  bool isPunct(const char* p, size_t k = 0) const {
    return peek(k).kind == Token::kPunct && peek(k).text == p;
  }
  bool isIdent(const char* w, size_t k = 0) const {
    return peek(k).kind == Token::kIdent && peek(k).text == w;
  }
  [[noreturn]] void fail(const Token& t, const std::string& msg) const { failAt(t.line, t.col, msg); }
  [[noreturn]] void expected(const std::string& what) const {
    fail(peek(), "expected " + what + ", got " + describe(peek()));
  }
  Token expectPunct(const char* p, const std::string& context) {
    if (!isPunct(p)) expected(std::string("'") + p + "' " + context);
    return next();
  }
  Token expectIdent(const char* w, const std::string& what) {
    if (!isIdent(w)) expected(what);
    return next();
  }
  Token expectKind(Token::Kind k, const std::string& what) {
    if (peek().kind != k) expected(what);
    return next();
  }
  // Comma-separated items up to `close`; `item` reads one.
  template <typename F>
  void list(const char* close, const std::string& context, F item) {
    if (isPunct(close)) {
      next();
      return;
    }
    for (;;) {
      item();
      if (isPunct(close)) {
        next();
        return;
      }
      expectPunct(",", "or '" + std::string(close) + "' " + context);
    }
  }

  int64_t toInt(const Token& t) const {
    if (t.kind != Token::kInt) fail(t, "expected an integer, got " + describe(t));
    errno = 0;
    char* end = nullptr;
    long long v = std::strtoll(t.text.c_str(), &end, 10);
    if (errno == ERANGE || *end) fail(t, "integer " + t.text + " is out of range");
    return v;
  }
  double toDouble(const Token& t) const {
    if (t.kind != Token::kInt && t.kind != Token::kFloat) fail(t, "expected a number, got " + describe(t));
    return std::strtod(t.text.c_str(), nullptr);  // ERANGE: inf or a denormal, both fine
  }
  float toFloat(const Token& t) const {
    if (t.kind != Token::kInt && t.kind != Token::kFloat) fail(t, "expected a number, got " + describe(t));
    return std::strtof(t.text.c_str(), nullptr);
  }

  // ---- model and graph ---------------------------------------------------------------
  void modelHeader(Model& m) {
    expectPunct("{", "after 'model'");
    list("}", "in the model header", [&] {
      Token key = expectKind(Token::kIdent, "a model field (doc, domain, ir_version, metadata, "
                                            "model_version, opsets, producer_name, producer_version)");
      expectPunct("=", "after '" + key.text + "'");
      auto str = [&] { return expectKind(Token::kString, "a string").text; };
      if (key.text == "doc") m.docString = str();
      else if (key.text == "domain") m.domain = str();
      else if (key.text == "producer_name") m.producerName = str();
      else if (key.text == "producer_version") m.producerVersion = str();
      else if (key.text == "ir_version") m.irVersion = toInt(next());
      else if (key.text == "model_version") m.modelVersion = toInt(next());
      else if (key.text == "opsets" || key.text == "metadata") {
        expectPunct("{", "to open " + key.text);
        list("}", "in " + key.text, [&] {
          std::string k = expectKind(Token::kString, "a quoted key").text;
          expectPunct("=", "after the key");
          if (key.text == "opsets") m.opsets[k] = toInt(next());
          else m.metadata[k] = str();
        });
      } else {
        fail(key, "unknown model field '" + key.text + "'");
      }
    });
  }

  // A new name in `g`: not defined here yet and not visible from an enclosing graph.
  void checkNewName(const Graph& g, const Token& t) {
    if (t.text.empty()) fail(t, "a value name must not be empty");
    if (Value* v = g.findValue(t.text)) {
      auto it = defs_.find(v);
      fail(t, "value " + describe(t) + " is defined twice" +
                  (it == defs_.end() ? "" : " (first at " + it->second + ")"));
    }
    if (g.parent() && g.parent()->lookup(t.text))
      fail(t, "value " + describe(t) + " shadows a value of an enclosing graph");
  }

  void graph(Graph& g, int depth) {
    if (depth > kMaxDepth) fail(peek(), "graphs nested too deeply");
    Token name = expectKind(Token::kAt, "a graph name ('@main')");
    g.setName(name.text);
    expectPunct("(", "to open the inputs of graph @" + name.text);
    list(")", "after a graph input", [&] {
      Token t = expectKind(Token::kValue, "a graph input ('%x: f32[N,3]')");
      TensorType type;
      ValueMeta meta;
      if (isPunct(":")) {
        next();
        type = parseType();
        meta = valueMeta(type);
      }
      checkNewName(g, t);
      Value* v = g.addValue(t.text, type);
      meta.applyTo(*v);
      defs_[v] = posText(t.line, t.col);
      g.addInput(v);
    });
    expectPunct("->", "between the inputs and outputs of graph @" + name.text);
    expectPunct("(", "to open the outputs of graph @" + name.text);
    struct Output {
      Token name;
      std::optional<TensorType> type;
      ValueMeta meta;
    };
    std::vector<Output> outputs;
    list(")", "after a graph output", [&] {
      Output o{expectKind(Token::kValue, "a graph output ('%y: f32[N]')"), std::nullopt, {}};
      if (isPunct(":")) {
        next();
        o.type = parseType();
        o.meta = valueMeta(*o.type);
      }
      outputs.push_back(std::move(o));
    });
    if (isIdent("doc")) {
      next();
      expectPunct("=", "after 'doc'");
      g.docString = expectKind(Token::kString, "the doc string").text;
    }
    Token open = expectPunct("{", "to open the body of graph @" + name.text);
    while (!isPunct("}")) {
      if (peek().kind == Token::kEof)
        fail(peek(), "expected '}' to close graph @" + name.text + " opened at " + posText(open.line, open.col));
      statement(g, depth);
    }
    next();
    for (const auto& [t, type, meta] : outputs) {
      Value* v = g.lookup(t.text);
      if (!v) fail(t, "graph output " + describe(t) + " is not defined in graph @" + name.text);
      if (type && typeKnown(*type)) {
        if (!typeKnown(v->type()) && v->owner() == &g) {
          v->setType(*type);
        } else if (v->type() != *type) {
          fail(t, "graph output " + describe(t) + " is declared " + typeText(*type) + " but defined as " +
                      typeText(v->type()));
        }
      }
      // The header repeats the definition's metadata (or gives it where the definition has
      // none); with a type given, it must agree.
      if (type) {
        if (v->hasDefaultMeta() && v->owner() == &g) {
          meta.applyTo(*v);
        } else if (!meta.sameAs(*v)) {
          fail(t, "graph output " + describe(t) + " is declared with " + metaText(meta) + " but defined with " +
                      metaText(*v));
        }
      }
      g.addOutput(v);
    }
  }

  TensorType parseType() {
    TensorType t;
    const Token start = peek();
    if (isPunct("?")) {
      next();
      if (!isPunct("[")) return t;  // unknown type and rank
    } else if (peek().kind == Token::kIdent) {
      t.dtype = dtypeFromName(peek().text);
      if (t.dtype == DataType::kUndefined) fail(peek(), "unknown element type '" + peek().text + "'");
      next();
      if (!isPunct("[")) expected("'[' after the element type '" + start.text + "'");
    } else {
      expected("a type ('f32[N,3]', 'i64[]', '?')");
    }
    next();  // '['
    if (isPunct("*")) {
      next();
      expectPunct("]", "after '*' (unknown rank)");
      return t;
    }
    std::vector<Dim> dims;
    list("]", "in a shape", [&] {
      const Token& d = peek();
      if (d.kind == Token::kInt) {
        int64_t v = toInt(d);
        if (v < 0) fail(d, "a dim is an extent >= 0, a name or '?', got " + d.text);
        dims.emplace_back(v);
      } else if (d.kind == Token::kIdent || (d.kind == Token::kString && !d.text.empty())) {
        dims.push_back(Dim::symbol(d.text));
      } else if (isPunct("?")) {
        dims.emplace_back();
      } else {
        expected("a dim (an extent, a name or '?')");
      }
      next();
    });
    t.shape = Shape(dims);
    return t;
  }

  void statement(Graph& g, int depth) {
    std::vector<Token> results;
    if (peek().kind == Token::kValue) {
      list("=", "after a result", [&] { results.push_back(expectKind(Token::kValue, "a result name ('%0')")); });
      if (isIdent("const")) {
        if (results.size() != 1) fail(results[1], "a 'const' defines exactly one value");
        next();
        constant(g, results[0]);
        return;
      }
    } else if (peek().kind != Token::kIdent && peek().kind != Token::kString) {
      expected("a statement ('%0 = Op(...)', '%w = const ...') or '}'");
    }
    const Token opTok = peek();
    if (opTok.kind != Token::kIdent && opTok.kind != Token::kString) expected("an op name or 'const'");
    next();
    std::string op = opTok.text, domain;
    if (size_t dot = op.rfind('.'); dot != std::string::npos) {
      domain = op.substr(0, dot);
      op = op.substr(dot + 1);
    }
    if (op.empty()) fail(opTok, "empty op name in " + describe(opTok));
    expectPunct("(", "after the op name " + describe(opTok));
    std::vector<Value*> inputs;
    list(")", "after an input", [&] {
      if (isIdent("none")) {
        next();
        inputs.push_back(nullptr);
        return;
      }
      Token t = expectKind(Token::kValue, "an input ('%x' or 'none')");
      Value* v = g.lookup(t.text);
      if (!v) fail(t, "use of undefined value " + describe(t));
      inputs.push_back(v);
    });
    std::vector<std::pair<std::string, Attribute::Storage>> attrs;
    if (isPunct("{")) attrs = attributes(g, depth);
    NodeMeta nodeMeta = nodeMetadata(g, depth);
    std::vector<TensorType> types;
    std::vector<ValueMeta> metas;
    if (isPunct(":")) {
      Token colon = next();
      for (;;) {
        types.push_back(parseType());
        metas.push_back(valueMeta(types.back()));
        if (!isPunct(",")) break;
        next();
      }
      if (types.size() != results.size())
        fail(colon, "expected " + std::to_string(results.size()) + " result type(s), one per result, got " +
                        std::to_string(types.size()));
    }
    std::string nodeName;
    if (isIdent("loc")) {
      next();
      expectPunct("(", "after 'loc'");
      nodeName = expectKind(Token::kString, "the node name as a string").text;
      expectPunct(")", "after the node name");
    }
    std::vector<std::string> names;
    std::set<std::string> seen;
    for (const Token& r : results) {
      checkNewName(g, r);
      if (!seen.insert(r.text).second) fail(r, "value " + describe(r) + " is defined twice");
      names.push_back(r.text);
    }
    Node* n = g.addNode(op, domain, nodeName, inputs, names);
    for (size_t i = 0; i < results.size(); ++i) {
      defs_[n->output(i)] = posText(results[i].line, results[i].col);
      if (i < types.size()) n->output(i)->setType(types[i]);
      if (i < metas.size()) metas[i].applyTo(*n->output(i));
    }
    for (auto& [name, value] : attrs) n->attrs().set(name, std::move(value));
    n->setPrecision(nodeMeta.precision);
    n->setDevice(nodeMeta.device);
    for (auto& [name, value] : nodeMeta.tactic) n->tacticParams().set(name, std::move(value));
  }

  // ---- metadata ----------------------------------------------------------------------
  struct NodeMeta {
    DataType precision = DataType::kUndefined;
    Device device = Device::kCPU;
    std::vector<std::pair<std::string, Attribute::Storage>> tactic;
  };

  // ` @precision=f16 @device=cuda @tactic={...}`, each at most once, in any order.
  NodeMeta nodeMetadata(Graph& g, int depth) {
    NodeMeta m;
    std::set<std::string> seen;
    while (peek().kind == Token::kAt) {
      const Token key = next();
      if (key.text != "precision" && key.text != "device" && key.text != "tactic")
        fail(key, "unknown node field " + describe(key) + ", expected @precision, @device or @tactic");
      if (!seen.insert(key.text).second) fail(key, "node field " + describe(key) + " is given twice");
      expectPunct("=", "after " + describe(key));
      if (key.text == "tactic") {
        if (!isPunct("{")) expected("'{' to open the tactic parameters");
        m.tactic = attributes(g, depth);
        for (const auto& [name, value] : m.tactic)
          if (std::holds_alternative<std::shared_ptr<Graph>>(value) ||
              std::holds_alternative<std::vector<std::shared_ptr<Graph>>>(value))
            fail(key, "tactic parameter '" + name + "' holds a graph");
        continue;
      }
      const Token v = expectKind(Token::kIdent, key.text == "device" ? "a device (cpu, cuda)" : "an element type (f32, f16, ...)");
      if (key.text == "device") {
        std::optional<Device> d = parseDevice(v.text);
        if (!d) fail(v, "unknown device '" + v.text + "', expected cpu or cuda");
        m.device = *d;
      } else {
        m.precision = dtypeFromName(v.text);
        if (m.precision == DataType::kUndefined) fail(v, "unknown precision '" + v.text + "'");
        if (!isFloat(m.precision) && !isInteger(m.precision))
          fail(v, "precision '" + v.text + "' is not a numeric type");
      }
    }
    return m;
  }

  // `{NCHW8c, device=cuda, scale=f32[] [0.5], zp=i8[] [3], axis=1}` after a value's type:
  // a layout name and key=value fields, each at most once, in any order.
  ValueMeta valueMeta(const TensorType& type) {
    ValueMeta m;
    if (!isPunct("{")) return m;
    const Token open = next();
    m.given = true;
    m.line = open.line;
    m.col = open.col;
    std::set<std::string> seen;
    std::optional<Token> scaleTok, zpTok, axisTok;
    Tensor scale, zp;
    std::optional<int64_t> axis;
    list("}", "in value metadata", [&] {
      const Token key = peek();
      if (key.kind != Token::kIdent) expected("a layout name or a field (device=, scale=, zp=, axis=) in value metadata");
      next();
      if (!isPunct("=")) {  // a layout name
        if (!seen.insert("layout").second) fail(key, "value metadata gives two layouts");
        std::optional<Layout> l = parseLayout(key.text);
        if (!l) fail(key, "malformed layout name '" + key.text + "'");
        if (std::string d = layoutDefect(*l, type); !d.empty()) fail(key, d);
        m.layout = *l;
        return;
      }
      next();  // '='
      if (!seen.insert(key.text).second) fail(key, "value field '" + key.text + "' is given twice");
      if (key.text == "device") {
        const Token v = expectKind(Token::kIdent, "a device (cpu, cuda)");
        std::optional<Device> d = parseDevice(v.text);
        if (!d) fail(v, "unknown device '" + v.text + "', expected cpu or cuda");
        m.device = *d;
      } else if (key.text == "scale" || key.text == "zp") {
        const Token typeTok = peek();
        TensorType tt = parseType();
        if (tt.dtype == DataType::kUndefined || !tt.shape.isStatic())
          fail(typeTok, "a quantization " + key.text + " needs a known element type and static shape, got " +
                            typeText(tt));
        (key.text == "scale" ? scale : zp) = tensorData(tt);
        (key.text == "scale" ? scaleTok : zpTok) = key;
      } else if (key.text == "axis") {
        axisTok = key;
        axis = toInt(next());
      } else {
        fail(key, "unknown value field '" + key.text + "', expected device, scale, zp or axis");
      }
    });
    if (!scaleTok && (zpTok || axisTok)) fail(zpTok ? *zpTok : *axisTok, "quantization needs a scale");
    if (scaleTok) {
      Quantization q{std::move(scale), std::move(zp), axis};
      if (std::string d = quantizationDefect(q, type); !d.empty()) fail(*scaleTok, d);
      m.quant = std::move(q);
    }
    return m;
  }

  void constant(Graph& g, const Token& result) {
    const Token typeTok = peek();
    TensorType type = parseType();
    if (type.dtype == DataType::kUndefined || !type.shape.isStatic())
      fail(typeTok, "an initializer needs a known element type and static shape, got " + typeText(type));
    const ValueMeta meta = valueMeta(type);
    Tensor t = tensorData(type);
    Value* existing = g.findValue(result.text);
    bool isInput = false;
    for (Value* in : g.inputs()) isInput |= in == existing;
    if (existing && isInput && !existing->isInitializer()) {  // a graph input with a default
      if (meta.given)
        failAt(meta.line, meta.col, "the metadata of graph input " + describe(result) +
                                        " belongs in the graph header, not on its default");
      // The input keeps its declared type (it may be looser than the default's, f32[?]).
      if (existing->dtype() != DataType::kUndefined && existing->dtype() != t.dtype())
        fail(typeTok, "initializer " + describe(result) + " is " + typeText(t.type()) +
                          " but the graph input is " + typeText(existing->type()));
      if (!typeKnown(existing->type())) existing->setType(t.type());
      existing->setInitializer(std::move(t));
      return;
    }
    checkNewName(g, result);
    Value* v = g.addInitializer(result.text, std::move(t));
    meta.applyTo(*v);
    defs_[v] = posText(result.line, result.col);
  }

  // Inline values `[...]` or a reference `@name`, for a known static type.
  Tensor tensorData(const TensorType& type) {
    const std::vector<int64_t> dims = type.shape.extents();
    if (peek().kind == Token::kAt) {
      Token r = next();
      if (!weights_) fail(r, "weight " + describe(r) + " is given by reference but no weight resolver was passed");
      std::optional<Tensor> t = (*weights_)(r.text);
      if (!t) fail(r, "unknown weight " + describe(r));
      if (t->dtype() != type.dtype || t->dims() != dims)
        fail(r, "weight " + describe(r) + " is " + t->summary() + ", expected " + typeText(type));
      return *t;
    }
    if (!isPunct("[")) expected("inline values '[...]' or a weight reference '@name'");
    Token open = next();
    std::vector<Token> elems;
    list("]", "between values", [&] { elems.push_back(next()); });
    // Count before allocating, so a huge declared shape is an error and not an allocation.
    const bool complex = type.dtype == DataType::kC64 || type.dtype == DataType::kC128;
    uint64_t want = complex ? 2 : 1;
    for (int64_t d : dims) want = d == 0 ? 0 : (want > (uint64_t(1) << 40) / uint64_t(d) ? (uint64_t(1) << 40) : want * uint64_t(d));
    if (want >= (uint64_t(1) << 40)) fail(open, typeText(type) + " is too large to give inline");
    if (elems.size() != want)
      fail(open, "expected " + std::to_string(want) + " values for " + typeText(type) + ", got " +
                     std::to_string(elems.size()));
    Tensor t(type.dtype, dims);
    for (size_t i = 0; i < elems.size(); ++i) setElement(t, int64_t(i), elems[i]);
    return t;
  }

  void setElement(Tensor& t, int64_t i, const Token& e) {
    auto intIn = [&](int64_t lo, int64_t hi) {
      int64_t v = toInt(e);
      if (v < lo || v > hi)
        fail(e, "value " + e.text + " is out of range for " + std::string(dtypeName(t.dtype())));
      return v;
    };
    auto nibble = [&](uint8_t code) {
      uint8_t* p = static_cast<uint8_t*>(t.mutableRaw()) + i / 2;
      *p = uint8_t(*p | ((code & 0xF) << ((i & 1) * 4)));
    };
    switch (t.dtype()) {
      case DataType::kF32: case DataType::kC64: t.data<float>()[i] = toFloat(e); break;
      case DataType::kF64: case DataType::kC128: t.data<double>()[i] = toDouble(e); break;
      case DataType::kF16: case DataType::kBF16: case DataType::kF8E4M3FN: case DataType::kF8E4M3FNUZ:
      case DataType::kF8E5M2: case DataType::kF8E5M2FNUZ:
        t.setDouble(i, toDouble(e));
        break;
      case DataType::kF4E2M1: nibble(floatToF4E2M1(toFloat(e))); break;
      case DataType::kU4: nibble(uint8_t(intIn(0, 15))); break;
      case DataType::kI4: nibble(uint8_t(intIn(-8, 7))); break;
      case DataType::kBool:
        if (e.kind == Token::kIdent && (e.text == "true" || e.text == "false")) t.data<uint8_t>()[i] = e.text == "true";
        else t.data<uint8_t>()[i] = uint8_t(intIn(0, 1));
        break;
      case DataType::kI8: t.data<int8_t>()[i] = int8_t(intIn(-128, 127)); break;
      case DataType::kU8: t.data<uint8_t>()[i] = uint8_t(intIn(0, 255)); break;
      case DataType::kI16: t.data<int16_t>()[i] = int16_t(intIn(-32768, 32767)); break;
      case DataType::kU16: t.data<uint16_t>()[i] = uint16_t(intIn(0, 65535)); break;
      case DataType::kI32:
        t.data<int32_t>()[i] = int32_t(intIn(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max()));
        break;
      case DataType::kU32: t.data<uint32_t>()[i] = uint32_t(intIn(0, std::numeric_limits<uint32_t>::max())); break;
      case DataType::kI64: t.data<int64_t>()[i] = toInt(e); break;
      case DataType::kU64: {
        if (e.kind != Token::kInt || e.text[0] == '-') fail(e, "expected an unsigned integer, got " + describe(e));
        errno = 0;
        char* end = nullptr;
        unsigned long long v = std::strtoull(e.text.c_str(), &end, 10);
        if (errno == ERANGE || *end) fail(e, "integer " + e.text + " is out of range for u64");
        t.data<uint64_t>()[i] = v;
        break;
      }
      case DataType::kString:
        if (e.kind != Token::kString) fail(e, "expected a string, got " + describe(e));
        t.data<std::string>()[i] = e.text;
        break;
      default: fail(e, std::string("inline values of ") + dtypeName(t.dtype()) + " are not supported");
    }
  }

  // ---- attributes --------------------------------------------------------------------
  std::vector<std::pair<std::string, Attribute::Storage>> attributes(Graph& g, int depth) {
    std::vector<std::pair<std::string, Attribute::Storage>> out;
    std::set<std::string> seen;
    next();  // '{'
    list("}", "after an attribute", [&] {
      const Token key = peek();
      if (key.kind != Token::kIdent && key.kind != Token::kString) expected("an attribute name");
      next();
      if (!seen.insert(key.text).second) fail(key, "attribute '" + key.text + "' is given twice");
      expectPunct("=", "after the attribute name '" + key.text + "'");
      out.emplace_back(key.text, attrValue(g, depth));
    });
    return out;
  }

  std::shared_ptr<Graph> subgraph(Graph& g, int depth) {
    next();  // 'graph'
    auto sub = std::make_shared<Graph>("", &g);
    graph(*sub, depth + 1);
    return sub;
  }

  Attribute::Storage attrValue(Graph& g, int depth) {
    const Token t = peek();
    switch (t.kind) {
      case Token::kInt: next(); return toInt(t);
      case Token::kFloat: next(); return toFloat(t);
      case Token::kString: next(); return t.text;
      default: break;
    }
    if (isPunct("[")) return attrList(g, depth, "");
    if (t.kind == Token::kIdent) {
      if ((t.text == "ints" || t.text == "floats" || t.text == "strings" || t.text == "graphs") && isPunct("[", 1)) {
        next();
        return attrList(g, depth, t.text);
      }
      if (t.text == "graph") return subgraph(g, depth);
      if (t.text == "tensor") {
        next();
        const Token typeTok = peek();
        TensorType type = parseType();
        if (!typeKnown(type)) return Tensor();
        if (type.dtype == DataType::kUndefined || !type.shape.isStatic())
          fail(typeTok, "a tensor attribute needs a known element type and static shape, got " + typeText(type));
        return tensorData(type);
      }
    }
    expected("an attribute value (1, 1.0, \"s\", [...], ints[], tensor f32[2] [...], graph @g(...) ...)");
  }

  Attribute::Storage attrList(Graph& g, int depth, const std::string& kind) {
    const Token open = next();  // '['
    std::vector<Token> scalars;
    std::vector<std::shared_ptr<Graph>> graphs;
    list("]", "in a list", [&] {
      if (isIdent("graph")) {
        graphs.push_back(subgraph(g, depth));
        return;
      }
      const Token& e = peek();
      if (e.kind != Token::kInt && e.kind != Token::kFloat && e.kind != Token::kString)
        expected("a list element (a number, a string or a graph)");
      scalars.push_back(next());
    });
    if (!graphs.empty() && !scalars.empty()) fail(open, "a list mixes graphs and other values");
    std::string k = kind;
    if (k.empty()) {
      if (!graphs.empty()) {
        k = "graphs";
      } else if (scalars.empty()) {
        fail(open, "an empty list needs its kind: ints[], floats[], strings[] or graphs[]");
      } else {
        k = scalars[0].kind == Token::kString ? "strings" : "ints";
        for (const Token& s : scalars)
          if (s.kind == Token::kFloat && k == "ints") k = "floats";
      }
    }
    if (k == "graphs") {
      if (!scalars.empty()) fail(scalars[0], "expected a graph in a graphs list, got " + describe(scalars[0]));
      return graphs;
    }
    if (!graphs.empty()) fail(open, "graphs in a list of " + k);
    if (k == "strings") {
      std::vector<std::string> v;
      for (const Token& s : scalars) {
        if (s.kind != Token::kString) fail(s, "expected a string in a list of strings, got " + describe(s));
        v.push_back(s.text);
      }
      return v;
    }
    if (k == "floats") {
      std::vector<float> v;
      for (const Token& s : scalars) v.push_back(toFloat(s));
      return v;
    }
    std::vector<int64_t> v;
    for (const Token& s : scalars) v.push_back(toInt(s));
    return v;
  }

  std::vector<Token> toks_;
  size_t pos_ = 0;
  const WeightResolver* weights_;
  std::unordered_map<const Value*, std::string> defs_;  // where each value was defined
};

}  // namespace

Model parseIrText(const std::string& text, const WeightResolver* weights) {
  return Parser(text, weights).model();
}

Model parseIrText(const std::string& text, const std::map<std::string, Tensor>& weights) {
  WeightResolver resolve = [&weights](const std::string& name) -> std::optional<Tensor> {
    auto it = weights.find(name);
    if (it == weights.end()) return std::nullopt;
    return it->second;
  };
  return Parser(text, &resolve).model();
}

}  // namespace anvil::ir
