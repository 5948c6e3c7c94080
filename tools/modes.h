// The CLI's privacy modes, apart from anvil_main.cpp: `--mode=mpc|fixed` and the
// mpc-dealer / mpc-server / mpc-client commands (mpc_cli.cpp), `--mode=anon` and the
// anon-worker / anon-submit / anon-fetch commands (anon_cli.cpp). Each parses its own
// flags from argv (argv[1] is the command for the commands) and returns the exit code;
// errors are thrown as anvil::Error (main prints them).
#pragma once

namespace anvil::tools {

int mpcMain(int argc, char** argv);   // --mode=mpc | --mode=fixed | mpc-*
int anonMain(int argc, char** argv);  // --mode=anon | anon-*

}  // namespace anvil::tools
