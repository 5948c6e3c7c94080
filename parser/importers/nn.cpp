// Importers of the nn op family.
#include "parser/importer.h"

namespace anvil::parser::importers {

void registerNnImporters(ImporterRegistry& r) {
  (void)r;
}

}  // namespace anvil::parser::importers
