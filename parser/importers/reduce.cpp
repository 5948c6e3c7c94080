// Importers of the reduce op family.
#include "parser/importer.h"

namespace anvil::parser::importers {

void registerReduceImporters(ImporterRegistry& r) {
  (void)r;
}

}  // namespace anvil::parser::importers
