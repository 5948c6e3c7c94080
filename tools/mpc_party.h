// The parties of the mpc mode: `anvil mpc-dealer | mpc-server | mpc-client` (docs/mpc.md),
// implemented in tools/mpc_party_cli.cpp. argv[1] is the command; returns the exit code,
// errors are thrown as anvil::Error.
#pragma once

namespace anvil::tools {

int mpcPartyMain(int argc, char** argv);

}  // namespace anvil::tools
