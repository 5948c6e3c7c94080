// Public entry points (the C++ APIs of runtime/engine.cpp and the privacy modes) run their
// body through guarded(): an anvil::Error becomes its Status, any other exception
// kInternal, so no exception crosses the API.
#pragma once

#include <exception>

#include "anvil/error.h"

namespace anvil::detail {

template <typename F>
Status guarded(F&& f) {
  try {
    f();
    return Status::ok();
  } catch (const Error& e) {
    return Status(e.code(), e.what());
  } catch (const std::exception& e) {
    return Status(ErrorCode::kInternal, e.what());
  }
}

}  // namespace anvil::detail
