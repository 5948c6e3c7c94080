// The mpc mode's party commands, apart from the build (`--mode=mpc|fixed`, mpc_cli.cpp):
//   anvil mpc-dealer --loadEngine=public.engine --runs=N --out=OFF
//   anvil mpc-server --loadEngine=server.engine --offline=OFF/server --listen=HOST:PORT
//   anvil mpc-client --loadEngine=public.engine --offline=OFF/client --connect=HOST:PORT
//                    --loadInputs=NAME:FILE.npy[,...] [--saveOutputs=DIR] [--exportStats=FILE.json]
// (docs/mpc.md). argv[1] is the command; returns the exit code, throws anvil::Error.
#pragma once

namespace anvil::tools {

int mpcPartyMain(int argc, char** argv);

}  // namespace anvil::tools
