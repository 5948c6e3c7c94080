// Fast CPU tactics for MatMul and Gemm (filled by the fast-kernels work).
#include "cpu/tactics.h"

namespace anvil::cpu::tactics {

void registerGemmTactics(TacticRegistry& r) { (void)r; }

}  // namespace anvil::cpu::tactics
