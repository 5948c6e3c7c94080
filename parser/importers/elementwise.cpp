// Importers of the elementwise family.
#include "parser/importer.h"

namespace anvil::parser::importers {

void registerElementwiseImporters(ImporterRegistry& r) {
  // Opset 7 introduced numpy broadcasting; older forms (axis/broadcast attrs) are not imported.
  r.generic("Add", 7);
  r.generic("Relu", 6);
}

}  // namespace anvil::parser::importers
