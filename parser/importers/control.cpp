// Importers of the control op family.
#include "parser/importer.h"

namespace anvil::parser::importers {

void registerControlImporters(ImporterRegistry& r) {
  (void)r;
}

}  // namespace anvil::parser::importers
