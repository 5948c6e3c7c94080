// A vendor library the CUDA tactics open with dlopen on first use (cuBLASLt, cuDNN), so that
// the runtime links none of them and starts where they are absent. Each symbol is looked up
// into a typed function pointer; the first failure is kept as the error to report.
#pragma once

#include <dlfcn.h>

#include <initializer_list>
#include <string>
#include <type_traits>

namespace anvil::cuda::tactics {

class DynamicLibrary {
 public:
  // Opens the first of `names` that loads ("libcudnn.so.9", then "libcudnn.so").
  explicit DynamicLibrary(std::initializer_list<const char*> names) {
    std::string tried;
    for (const char* n : names) {
      handle_ = dlopen(n, RTLD_NOW | RTLD_LOCAL);
      if (handle_) return;
      const char* why = dlerror();
      tried += std::string(tried.empty() ? "" : "; ") + n + ": " + (why ? why : "not found");
    }
    error_ = "cannot load " + tried;
  }
  DynamicLibrary(const DynamicLibrary&) = delete;
  DynamicLibrary& operator=(const DynamicLibrary&) = delete;

  // fn = the symbol `name` (null, and the error recorded, when the library or it is missing).
  template <typename Fn>
  void get(Fn& fn, const char* name) {
    static_assert(std::is_pointer_v<Fn>, "a function pointer");
    fn = handle_ ? reinterpret_cast<Fn>(dlsym(handle_, name)) : nullptr;
    if (!fn && error_.empty()) error_ = std::string("the library lacks ") + name;
  }

  // "" when the library and every symbol asked for were found.
  const std::string& error() const { return error_; }

 private:
  void* handle_ = nullptr;  // never closed: the functions are used until the process ends
  std::string error_;
};

}  // namespace anvil::cuda::tactics
