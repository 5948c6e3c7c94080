// Placeholder for the mpc parties (mpc-dealer / mpc-server / mpc-client): the protocol
// work replaces this file.
#include "anvil/error.h"
#include "tools/mpc_party.h"

namespace anvil::tools {

int mpcPartyMain(int, char** argv) {
  ANVIL_THROW(ErrorCode::kUnsupported, "anvil ", argv[1], ": the mpc parties are not built yet");
}

}  // namespace anvil::tools
