// `anvil --mode=anon` and the anon-worker / anon-submit / anon-fetch commands.
#include "anvil/error.h"
#include "tools/modes.h"

namespace anvil::tools {

int anonMain(int, char**) { ANVIL_THROW(ErrorCode::kUnsupported, "the anon mode is not built yet"); }

}  // namespace anvil::tools
