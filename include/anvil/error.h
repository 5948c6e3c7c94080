// The one error type of anvil: a code plus a message that names the node, the op and
// what was expected. Internals throw anvil::Error; API boundaries turn it into Status.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace anvil {

enum class ErrorCode {
  kOk = 0,
  kInvalidArgument,   // caller passed something malformed (flags, shapes, buffers)
  kInvalidModel,      // the .onnx file is malformed or inconsistent
  kUnsupported,       // a valid model uses something anvil does not implement
  kShapeMismatch,     // shapes or types disagree
  kIoError,           // a file could not be read or written
  kInvalidEngine,     // a corrupt, truncated or foreign engine file
  kRuntimeError,      // a kernel failed while running
  kInternal,          // a bug in anvil
};

const char* errorCodeName(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

// Status is what public functions return where exceptions must not cross.
class Status {
 public:
  Status() = default;
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status ok() { return {}; }
  bool isOk() const { return code_ == ErrorCode::kOk; }
  explicit operator bool() const { return isOk(); }
  ErrorCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  ErrorCode code_ = ErrorCode::kOk;
  std::string message_;
};

namespace detail {
template <typename... Args>
std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail

}  // namespace anvil

// Throw an anvil::Error with a message built from stream-able pieces.
#define ANVIL_THROW(code, ...) throw ::anvil::Error((code), ::anvil::detail::concat(__VA_ARGS__))
// Check a condition; on failure throw kInvalidModel-style errors with the given code.
#define ANVIL_CHECK(cond, code, ...)          \
  do {                                        \
    if (!(cond)) ANVIL_THROW(code, __VA_ARGS__); \
  } while (0)
