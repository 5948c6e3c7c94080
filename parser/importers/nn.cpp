// Importers of the nn op family. Most forms map 1:1 (later opsets only added attributes
// with defaults that keep the older meaning); the few that changed are upgraded here.
#include "parser/importer.h"

namespace anvil::parser::importers {

namespace {

// LpPool/GlobalLpPool opset 1 had a float `p`; opset 2 made it an int.
void importFloatP(ImportContext& ctx) {
  if (const ir::Attribute* p = ctx.attrs().find("p"); p && p->kind() == ir::Attribute::Kind::kFloat) {
    const float v = std::get<float>(p->value);
    if (v != float(int64_t(v))) ctx.fail("p = " + std::to_string(v) + " is not an integer");
    ctx.attrs().set("p", int64_t(v));
  }
  ctx.emitAsIs();
}

}  // namespace

void registerNnImporters(ImporterRegistry& r) {
  r.generic("Conv", 1);
  r.generic("ConvTranspose", 1);
  r.generic("ConvInteger", 10);
  r.generic("QLinearConv", 10);
  r.generic("DeformConv", 19);
  r.generic("Col2Im", 18);
  r.generic("MatMul", 1);
  r.generic("MatMulInteger", 10);
  r.generic("QLinearMatMul", 10);
  // Gemm before opset 7 had a `broadcast` flag; C always broadcasts unidirectionally now.
  r.add({"Gemm", "", 1, 6, [](ImportContext& ctx) {
           ctx.attrs().erase("broadcast");
           ctx.emitAsIs();
         }});
  r.generic("Gemm", 7);
  r.generic("AveragePool", 1);
  r.generic("MaxPool", 1);
  r.add({"LpPool", "", 1, 1, importFloatP});
  r.generic("LpPool", 2);
  r.generic("GlobalAveragePool", 1);
  r.generic("GlobalMaxPool", 1);
  r.add({"GlobalLpPool", "", 1, 1, importFloatP});
  r.generic("GlobalLpPool", 2);
  r.generic("MaxUnpool", 9);
  r.generic("MaxRoiPool", 1);
  // RoiAlign-10 sampled without the half-pixel shift that became the default in opset 16.
  r.add({"RoiAlign", "", 10, 15, [](ImportContext& ctx) {
           if (!ctx.attrs().has("coordinate_transformation_mode"))
             ctx.attrs().set("coordinate_transformation_mode", std::string("output_half_pixel"));
           ctx.emitAsIs();
         }});
  r.generic("RoiAlign", 16);
  r.generic("QuantizeLinear", 10);
  r.generic("DequantizeLinear", 10);
  r.generic("DynamicQuantizeLinear", 11);
}

}  // namespace anvil::parser::importers
