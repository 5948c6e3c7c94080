// Fast CPU tactics for Conv (filled by the fast-kernels work).
#include "cpu/tactics.h"

namespace anvil::cpu::tactics {

void registerConvTactics(TacticRegistry& r) { (void)r; }

}  // namespace anvil::cpu::tactics
