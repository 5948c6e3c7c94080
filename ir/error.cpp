// Names of error codes, as printed by tools.
#include "anvil/error.h"

namespace anvil {

const char* errorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kOk: return "ok";
    case ErrorCode::kInvalidArgument: return "invalid argument";
    case ErrorCode::kInvalidModel: return "invalid model";
    case ErrorCode::kUnsupported: return "unsupported";
    case ErrorCode::kShapeMismatch: return "shape mismatch";
    case ErrorCode::kIoError: return "I/O error";
    case ErrorCode::kInvalidEngine: return "invalid engine";
    case ErrorCode::kRuntimeError: return "runtime error";
    case ErrorCode::kInternal: return "internal error";
  }
  return "unknown";
}

}  // namespace anvil
