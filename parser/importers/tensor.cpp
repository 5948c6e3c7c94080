// Importers of the tensor op family. Older opsets are upgraded to the newest form:
// attributes that became inputs (Reshape shape, Squeeze/Unsqueeze axes, Split split,
// Slice starts/ends/axes, Pad pads/value, Dropout ratio, Upsample scales) move into
// initializers; Scatter becomes ScatterElements; Upsample and Resize-10 become Resize
// with asymmetric coordinates.
#include <cctype>

#include "ir/op_schema.h"
#include "parser/importer.h"

namespace anvil::parser::importers {

namespace {

using ir::DataType;
using ir::Tensor;

ir::Value* floatScalar(ImportContext& ctx, const std::string& suffix, float v) {
  return ctx.addConstant(suffix, Tensor::scalar<float>(DataType::kF32, v));
}

// A fresh value name derived from `base` that no value in scope has yet.
std::string freshName(ImportContext& ctx, const std::string& base) {
  std::string name = base;
  for (int i = 1; ctx.graph().lookup(name); ++i) name = base + "_" + std::to_string(i);
  return name;
}

void importDropoutOld(ImportContext& ctx) {
  ir::Attributes& a = ctx.attrs();
  const float ratio = a.getFloat("ratio", 0.5f);
  a.erase("ratio");
  a.erase("is_test");
  a.erase("consumed_inputs");
  std::vector<ir::Value*> ins = {ctx.input(0), floatScalar(ctx, "ratio", ratio)};
  std::vector<std::string> outs = ctx.outputs();
  const bool maskWanted = outs.size() > 1 && !outs[1].empty();
  if (!maskWanted || ctx.opset() >= 10) {
    ctx.emit("Dropout", ins, a, outs);
    return;
  }
  // Before opset 10 the mask had the data's type; ours is bool, so cast it back.
  if (!ir::OpRegistry::instance().find("CastLike"))
    ctx.fail("the mask output of Dropout before opset 10 needs CastLike, which is not available");
  const std::string boolMask = freshName(ctx, outs[1] + "__bool");
  ir::Node* n = ctx.emit("Dropout", ins, a, {outs[0], boolMask});
  ctx.emit("CastLike", {n->output(1), ctx.input(0)}, {}, {outs[1]});
}

void importMoveInts(ImportContext& ctx, const std::vector<std::pair<std::string, size_t>>& moves) {
  ctx.attrs().erase("consumed_inputs");
  for (const auto& [attr, index] : moves) ctx.moveIntsAttrToInput(attr, index);
  ctx.emitAsIs();
}

void importConcatOld(ImportContext& ctx) {
  if (!ctx.attrs().has("axis")) ctx.attrs().set("axis", int64_t(1));  // opset 1-3 default
  ctx.emitAsIs();
}

// Tile-1: Tile(input, tiles, axis) repeats along one axis; needs constant tiles/axis and a
// known input rank.
void importTileOld(ImportContext& ctx) {
  ir::Value* x = ctx.input(0);
  ir::Value* tiles = ctx.input(1);
  ir::Value* axis = ctx.input(2);
  if (!x || !tiles || !axis || !tiles->initializer() || !axis->initializer())
    ctx.fail("Tile-1 needs constant tiles and axis inputs");
  if (!x->shape().rankKnown()) ctx.fail("Tile-1 needs an input of known rank");
  const int64_t r = int64_t(x->shape().rank());
  int64_t ax = axis->initializer()->getInt(0);
  if (ax < 0) ax += r;
  if (ax < 0 || ax >= r) ctx.fail("axis is out of range", false);
  std::vector<int64_t> rep(size_t(r), 1);
  rep[size_t(ax)] = tiles->initializer()->getInt(0);
  ir::Value* repeats = ctx.addConstant("repeats", Tensor::fromVector<int64_t>(DataType::kI64, {r}, rep));
  ctx.emit("Tile", {x, repeats}, {}, ctx.outputs());
}

void importPadOld(ImportContext& ctx) {
  ir::Attributes a = ctx.attrs();
  const std::string padsName = ctx.opset() < 2 ? "paddings" : "pads";
  if (!a.has(padsName)) ctx.fail("attribute " + padsName + " is required", false);
  std::vector<int64_t> pads = a.getInts(padsName);
  const float value = a.getFloat("value", 0.0f);
  ir::Attributes out;
  out.set("mode", a.getString("mode", "constant"));
  ir::Value* x = ctx.input(0);
  ir::Value* padsV = ctx.addConstant("pads", Tensor::fromVector<int64_t>(DataType::kI64, {int64_t(pads.size())}, pads));
  // The fill value in the data's type where it is known (the kernel converts otherwise).
  Tensor v(x && x->dtype() != DataType::kUndefined && x->dtype() != DataType::kString ? x->dtype() : DataType::kF32, {});
  v.setDouble(0, value);
  ctx.emit("Pad", {x, padsV, ctx.addConstant("constant_value", v)}, out, ctx.outputs());
}

void importScatter(ImportContext& ctx) {
  ctx.emit("ScatterElements", ctx.inputs(), ctx.attrs(), ctx.outputs());
}

// Resize-10 and Upsample: asymmetric coordinates, nearest rounds down.
void emitOldResize(ImportContext& ctx, ir::Value* scales, std::string mode) {
  for (auto& c : mode) c = char(std::tolower(c));
  if (mode == "bilinear") mode = "linear";
  if (mode != "nearest" && mode != "linear") ctx.fail("mode must be nearest or linear, got '" + mode + "'", false);
  ir::Attributes a;
  a.set("mode", mode);
  a.set("coordinate_transformation_mode", std::string("asymmetric"));
  a.set("nearest_mode", std::string("floor"));
  ctx.emit("Resize", {ctx.input(0), nullptr, scales}, a, ctx.outputs());
}

void importResize10(ImportContext& ctx) {
  emitOldResize(ctx, ctx.input(1), ctx.attrs().getString("mode", "nearest"));
}

void importUpsample(ImportContext& ctx) {
  const std::string mode = ctx.attrs().getString("mode", "nearest");
  ir::Value* scales = nullptr;
  if (ctx.opset() >= 9) {
    scales = ctx.input(1);
    if (!scales) ctx.fail("input scales is required", false);
  } else if (ctx.opset() >= 7) {
    std::vector<float> s = ctx.attrs().getFloats("scales");
    if (s.empty()) ctx.fail("attribute scales is required", false);
    scales = ctx.addConstant("scales", Tensor::fromVector<float>(DataType::kF32, {int64_t(s.size())}, s));
  } else {  // Upsample-1: 4-D NCHW with height_scale / width_scale
    const float h = ctx.attrs().getFloat("height_scale", 0), w = ctx.attrs().getFloat("width_scale", 0);
    if (h <= 0 || w <= 0) ctx.fail("height_scale and width_scale are required", false);
    scales = ctx.addConstant("scales", Tensor::fromVector<float>(DataType::kF32, {4}, {1.0f, 1.0f, h, w}));
  }
  emitOldResize(ctx, scales, mode);
}

}  // namespace

void registerTensorImporters(ImporterRegistry& r) {
  r.generic("Constant", 1);
  r.generic("ConstantOfShape", 9);
  r.generic("Identity", 1);
  r.add({"Dropout", "", 1, 11, importDropoutOld});
  r.generic("Dropout", 12);
  r.add({"Reshape", "", 1, 4, [](ImportContext& c) { importMoveInts(c, {{"shape", 1}}); }});
  r.generic("Reshape", 5);
  r.generic("Flatten", 1);
  r.add({"Squeeze", "", 1, 12, [](ImportContext& c) { importMoveInts(c, {{"axes", 1}}); }});
  r.generic("Squeeze", 13);
  r.add({"Unsqueeze", "", 1, 12, [](ImportContext& c) { importMoveInts(c, {{"axes", 1}}); }});
  r.generic("Unsqueeze", 13);
  r.generic("Transpose", 1);
  r.add({"Concat", "", 1, 3, importConcatOld});
  r.generic("Concat", 4);
  r.add({"Split", "", 1, 12, [](ImportContext& c) { importMoveInts(c, {{"split", 1}}); }});
  r.generic("Split", 13);
  r.add({"Slice", "", 1, 9, [](ImportContext& c) { importMoveInts(c, {{"starts", 1}, {"ends", 2}, {"axes", 3}}); }});
  r.generic("Slice", 10);
  r.generic("Gather", 1);
  r.generic("GatherElements", 11);
  r.generic("GatherND", 11);
  r.add({"Scatter", "", 9, 10, importScatter});
  r.generic("ScatterElements", 11);
  r.generic("ScatterND", 11);
  r.generic("Expand", 8);
  r.add({"Tile", "", 1, 5, importTileOld});
  r.generic("Tile", 6);
  r.add({"Pad", "", 1, 10, importPadOld});
  r.generic("Pad", 11);
  r.generic("Shape", 1);
  r.generic("Size", 1);
  r.generic("Range", 11);
  r.generic("OneHot", 9);
  r.generic("NonZero", 9);
  r.add({"Resize", "", 10, 10, importResize10});
  r.generic("Resize", 11);
  r.add({"Upsample", "", 1, 9, importUpsample});
  r.generic("DepthToSpace", 1);
  r.generic("SpaceToDepth", 1);
  r.generic("Trilu", 14);
  r.generic("ReverseSequence", 10);
  r.generic("Compress", 9);
  r.generic("Unique", 11);
  r.generic("EyeLike", 9);
  r.generic("CenterCropPad", 18);
}

}  // namespace anvil::parser::importers
