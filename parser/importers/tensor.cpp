// Importers of the tensor op family.
#include "parser/importer.h"

namespace anvil::parser::importers {

void registerTensorImporters(ImporterRegistry& r) {
  (void)r;
}

}  // namespace anvil::parser::importers
