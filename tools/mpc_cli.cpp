// `anvil --mode=mpc|fixed` and the mpc-dealer / mpc-server / mpc-client commands.
#include "anvil/error.h"
#include "tools/modes.h"

namespace anvil::tools {

int mpcMain(int, char**) { ANVIL_THROW(ErrorCode::kUnsupported, "the mpc mode is not built yet"); }

}  // namespace anvil::tools
