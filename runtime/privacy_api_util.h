// What the privacy modes' public API (include/anvil/privacy.hpp; runtime/mpc/api.cpp,
// runtime/anon/api.cpp) shares: turning exceptions into a Status at the boundary and
// copying HostTensor to and from the IR's tensors.
#pragma once

#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "anvil/privacy.hpp"
#include "ir/tensor.h"
#include "runtime/status_guard.h"

namespace anvil::privacy_detail {

using ::anvil::detail::guarded;

inline ir::Tensor toIr(const HostTensor& h) {
  ANVIL_CHECK(h.dtype != DataType::kString, ErrorCode::kInvalidArgument, "input '", h.name,
              "': string tensors are not supported here");
  for (int64_t d : h.dims)
    ANVIL_CHECK(d >= 0, ErrorCode::kInvalidArgument, "input '", h.name, "' has a negative extent");
  ir::Tensor t(h.dtype, h.dims);
  ANVIL_CHECK(h.data.size() == t.nbytes(), ErrorCode::kInvalidArgument, "input '", h.name, "' holds ", h.data.size(),
              " bytes; its dtype ", dataTypeName(h.dtype), " and dims ", t.type().shape.str(), " need ", t.nbytes());
  if (t.nbytes()) std::memcpy(t.mutableRaw(), h.data.data(), t.nbytes());
  return t;
}

inline HostTensor fromIr(const std::string& name, const ir::Tensor& t) {
  ANVIL_CHECK(t.dtype() != DataType::kString, ErrorCode::kUnsupported, "output '", name,
              "' is a string tensor (not supported here)");
  HostTensor h{name, t.dtype(), t.dims(), {}};
  h.data.resize(t.nbytes());
  if (t.nbytes()) std::memcpy(h.data.data(), t.raw(), t.nbytes());
  return h;
}

}  // namespace anvil::privacy_detail
