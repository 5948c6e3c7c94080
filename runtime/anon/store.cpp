// openStore: the --store=sqlite:PATH | redis://HOST:PORT spec.
#include "runtime/anon/store.h"

#include <chrono>

#include "anvil/error.h"

namespace anvil::anon {

double wallSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::unique_ptr<Store> openStore(const std::string& spec) {
  if (spec.rfind("sqlite:", 0) == 0 && spec.size() > 7) return openSqliteStore(spec.substr(7));
  if (spec.rfind("redis://", 0) == 0) {
    const std::string rest = spec.substr(8);
    const size_t colon = rest.rfind(':');
    ANVIL_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < rest.size(), ErrorCode::kInvalidArgument,
                "--store=", spec, ": expected redis://HOST:PORT");
    int port = 0;
    try {
      size_t used = 0;
      port = std::stoi(rest.substr(colon + 1), &used);
      ANVIL_CHECK(used == rest.size() - colon - 1, ErrorCode::kInvalidArgument, "");
    } catch (...) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, "--store=", spec, ": the port is not a number");
    }
    ANVIL_CHECK(port > 0 && port < 65536, ErrorCode::kInvalidArgument, "--store=", spec, ": port out of range");
    return openRedisStore(rest.substr(0, colon), port);
  }
  ANVIL_THROW(ErrorCode::kInvalidArgument, "--store=", spec, ": expected sqlite:PATH or redis://HOST:PORT");
}

}  // namespace anvil::anon
