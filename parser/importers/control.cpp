// Importers of the control op family. Older opsets are upgraded to the newest form:
// Scan-8 (batch axis, sequence_lens) becomes a Loop over the batch around a Scan-9+;
// RNN/LSTM/GRU before opset 7 drop output_sequence; DFT before opset 20 moves axis into
// an input; GridSample before opset 20 renames bilinear/bicubic to linear/cubic.
#include <limits>

#include "ir/op_schema.h"
#include "parser/importer.h"

namespace anvil::parser::importers {

namespace {

using ir::DataType;
using ir::Tensor;

Tensor i64s(const std::vector<int64_t>& v) { return Tensor::fromVector<int64_t>(DataType::kI64, {int64_t(v.size())}, v); }

// Builds nodes inside a subgraph that the importer creates (Scan-8's Loop body).
class BodyBuilder {
 public:
  BodyBuilder(ir::Graph& g, std::string prefix) : g_(g), prefix_(std::move(prefix)) {}

  std::string fresh(const std::string& base) {
    std::string name = prefix_ + base;
    for (int i = 1; g_.lookup(name); ++i) name = prefix_ + base + "_" + std::to_string(i);
    return name;
  }
  ir::Value* constant(const std::string& base, Tensor t) { return g_.addInitializer(fresh(base), std::move(t)); }
  ir::Node* node(const std::string& op, const std::vector<ir::Value*>& ins, size_t nout, const std::string& base,
                 ir::Attributes attrs = {}) {
    std::vector<std::string> outs;
    for (size_t i = 0; i < nout; ++i) outs.push_back(fresh(base + (nout > 1 ? "_" + std::to_string(i) : "")));
    ir::Node* n = g_.addNode(op, "", nodeName_, ins, outs);
    ANVIL_CHECK(n->schema() != nullptr, ErrorCode::kUnsupported, n->label(), ": op ", op,
                " is needed to import Scan-8 but is not available");
    n->attrs() = std::move(attrs);
    return n;
  }
  ir::Value* one(const std::string& op, const std::vector<ir::Value*>& ins, const std::string& base,
                 ir::Attributes attrs = {}) {
    return node(op, ins, 1, base, std::move(attrs))->output(0);
  }
  void setNodeName(std::string n) { nodeName_ = std::move(n); }

 private:
  ir::Graph& g_;
  std::string prefix_;
  std::string nodeName_;
};

ir::Attributes axisAttr(int64_t axis) {
  ir::Attributes a;
  a.set("axis", axis);
  return a;
}

// Scan-8: inputs (sequence_lens?, states..., scan inputs...), each with a leading batch
// axis; scan inputs are [batch, seq, ...]. Becomes
//   Loop(M = batch) { per batch row b: Gather row b of every input, (Slice the scan inputs
//   to sequence_lens[b]), Scan-9 over them, (pad scan outputs back to the full length
//   with zeros) } whose stacked scan outputs are exactly Scan-8's outputs.
void importScan8(ImportContext& ctx) {
  ir::Attributes& a = ctx.attrs();
  const ir::Attribute* ba = a.find("body");
  if (!ba || ba->kind() != ir::Attribute::Kind::kGraph) ctx.fail("attribute 'body' (a graph) is required", false);
  std::shared_ptr<ir::Graph> scanBody = std::get<std::shared_ptr<ir::Graph>>(ba->value);
  const int64_t m = a.requireInt("num_scan_inputs");
  const std::vector<ir::Value*> ins = ctx.inputs();
  if (ins.empty()) ctx.fail("needs at least one scan input", false);
  const int64_t total = int64_t(ins.size()) - 1;
  if (m < 1 || m > total) ctx.fail("num_scan_inputs " + std::to_string(m) + " does not fit the inputs", false);
  const size_t n = size_t(total - m);
  for (size_t i = 1; i < ins.size(); ++i)
    if (!ins[i]) ctx.fail("state and scan inputs must not be omitted", false);
  ir::Value* seqLens = ins[0];
  const std::vector<int64_t> dirs = a.getInts("directions", std::vector<int64_t>(size_t(m), 0));
  if (int64_t(dirs.size()) != m) ctx.fail("directions needs num_scan_inputs entries", false);
  const std::string prefix = (ctx.name().empty() ? std::string("Scan") : ctx.name()) + "__";

  // Outer graph: the batch size and an always-true condition.
  ir::Value* firstScan = ins[1 + n];
  BodyBuilder outer(ctx.graph(), prefix);
  outer.setNodeName(ctx.name());
  ir::Value* zero = outer.constant("zero", Tensor::scalar<int64_t>(DataType::kI64, 0));
  ir::Value* shape = outer.one("Shape", {firstScan}, "shape");
  ir::Value* batch = outer.one("Gather", {shape, zero}, "batch", axisAttr(0));
  ir::Value* condTrue = outer.constant("true", Tensor::scalar<bool>(DataType::kBool, true));

  // Loop body: (b, cond) -> (cond, final states of row b..., scan outputs of row b...).
  auto lb = std::make_shared<ir::Graph>(prefix + "batch_loop", &ctx.graph());
  ir::Value* iter = lb->addValue(prefix + "b", {DataType::kI64, ir::Shape()});
  ir::Value* cond = lb->addValue(prefix + "cond", {DataType::kBool, ir::Shape()});
  lb->addInput(iter);
  lb->addInput(cond);
  BodyBuilder in(*lb, prefix);
  in.setNodeName(ctx.name());
  ir::Value* condOut = in.one("Identity", {cond}, "cond_out");
  std::vector<ir::Value*> scanIns;
  for (size_t i = 0; i < n; ++i) scanIns.push_back(in.one("Gather", {ins[1 + i], iter}, "state_row", axisAttr(0)));
  ir::Value* len = nullptr;
  ir::Value* zero1 = nullptr;
  if (seqLens) {
    ir::Value* l = in.one("Gather", {seqLens, iter}, "len_raw", axisAttr(0));
    ir::Attributes to;
    to.set("to", int64_t(DataType::kI64));
    len = in.one("Cast", {l}, "len", to);
    zero1 = in.constant("zero1", i64s({0}));
  }
  for (size_t j = 0; j < size_t(m); ++j) {
    ir::Value* row = in.one("Gather", {ins[1 + n + j], iter}, "scan_row", axisAttr(0));
    if (seqLens) {
      ir::Value* end = in.one("Unsqueeze", {len, zero1}, "len1");
      row = in.one("Slice", {row, zero1, end, zero1}, "scan_row_cut");
    }
    scanIns.push_back(row);
  }
  const size_t nOut = scanBody->outputs().size();
  if (nOut < n) ctx.fail("body makes fewer outputs than there are states", false);
  scanBody->setParent(lb.get());
  ir::Attributes sa;
  sa.set("body", scanBody);
  sa.set("num_scan_inputs", m);
  sa.set("scan_input_directions", dirs);
  ir::Node* scan = in.node("Scan", scanIns, nOut, "scan", std::move(sa));
  lb->addOutput(condOut);
  for (size_t i = 0; i < nOut; ++i) {
    ir::Value* o = scan->output(i);
    if (seqLens && i >= n) {
      // Zeros after sequence_lens[b] steps, up to the full sequence length.
      DataType dt = scanBody->outputs()[i]->dtype();
      if (dt == DataType::kUndefined) ctx.fail("with sequence_lens, the body's scan outputs need declared types");
      ir::Value* one1 = in.constant("one1", i64s({1}));
      ir::Value* big = in.constant("big", i64s({std::numeric_limits<int64_t>::max()}));
      ir::Value* fullShape = in.one("Shape", {firstScan}, "full_shape");
      ir::Value* full = in.one("Slice", {fullShape, one1, in.constant("two1", i64s({2})), zero1}, "full_len");
      ir::Value* padLen = in.one("Sub", {full, in.one("Unsqueeze", {len, zero1}, "len1")}, "pad_len");
      ir::Value* rest = in.one("Slice", {in.one("Shape", {o}, "out_shape"), one1, big, zero1}, "out_rest");
      ir::Value* padShape = in.one("Concat", {padLen, rest}, "pad_shape", axisAttr(0));
      ir::Attributes va;
      va.set("value", Tensor(dt, {1}));
      ir::Value* zeros = in.one("ConstantOfShape", {padShape}, "pad", va);
      o = in.one("Concat", {o, zeros}, "scan_out_padded", axisAttr(0));
    }
    lb->addOutput(o);
  }
  ir::Attributes la;
  la.set("body", lb);
  ctx.emit("Loop", {batch, condTrue}, std::move(la), ctx.outputs());
}

// RNN/LSTM/GRU before opset 7 had output_sequence (whether Y is produced): outputs that
// are not consumed are skipped anyway.
void importRnnOld(ImportContext& ctx) {
  ctx.attrs().erase("output_sequence");
  ctx.emitAsIs();
}

// DFT-17: axis is an attribute (default 1); DFT-20 takes it as input 2.
void importDft17(ImportContext& ctx) {
  const int64_t axis = ctx.attrs().getInt("axis", 1);
  ctx.attrs().erase("axis");
  std::vector<ir::Value*> ins = ctx.inputs();
  ins.resize(3, nullptr);
  ins[2] = ctx.addConstant("axis", Tensor::scalar<int64_t>(DataType::kI64, axis));
  ctx.emit("DFT", ins, ctx.attrs(), ctx.outputs());
}

// GridSample-16: modes are named bilinear/bicubic (default bilinear).
void importGridSample16(ImportContext& ctx) {
  std::string mode = ctx.attrs().getString("mode", "bilinear");
  if (mode == "bilinear") mode = "linear";
  else if (mode == "bicubic") mode = "cubic";
  else if (mode != "nearest") ctx.fail("mode '" + mode + "' is not one of bilinear, nearest, bicubic", false);
  ctx.attrs().set("mode", mode);
  ctx.emitAsIs();
}

}  // namespace

void registerControlImporters(ImporterRegistry& r) {
  r.generic("If", 1);
  r.generic("Loop", 1);
  r.add({"Scan", "", 8, 8, importScan8});
  r.generic("Scan", 9);

  for (const char* op : {"RNN", "LSTM", "GRU"}) {
    r.add({op, "", 1, 6, importRnnOld});
    r.generic(op, 7);
  }

  r.add({"DFT", "", 17, 19, importDft17});
  r.generic("DFT", 20);
  r.generic("STFT", 17);
  r.generic("HannWindow", 17);
  r.generic("HammingWindow", 17);
  r.generic("BlackmanWindow", 17);
  r.generic("MelWeightMatrix", 17);

  r.generic("AffineGrid", 20);
  r.add({"GridSample", "", 16, 19, importGridSample16});
  r.generic("GridSample", 20);
  r.generic("NonMaxSuppression", 10);

  r.generic("RandomNormal", 1);
  r.generic("RandomUniform", 1);
  r.generic("RandomNormalLike", 1);
  r.generic("RandomUniformLike", 1);
  r.generic("Multinomial", 7);
  r.generic("Bernoulli", 15);

  r.generic("TfIdfVectorizer", 9);
  r.generic("StringNormalizer", 10);
  r.generic("StringConcat", 20);
  r.generic("StringSplit", 20);
  r.generic("RegexFullMatch", 20);
}

}  // namespace anvil::parser::importers
