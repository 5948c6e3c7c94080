// The C API over Engine/ExecutionContext; no exception crosses it. C callbacks reach the
// runtime as OutputAllocator objects owned by the anvil_context.
#include "anvil/anvil.h"

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "anvil/anvil.hpp"

struct anvil_engine {
  std::shared_ptr<anvil::Engine> engine;
};
namespace {
// An OutputAllocator that forwards to the caller's C callbacks.
class CallbackAllocator : public anvil::OutputAllocator {
 public:
  CallbackAllocator(anvil_realloc_fn realloc, anvil_notify_shape_fn notify, void* user)
      : realloc_(realloc), notify_(notify), user_(user) {}
  void* reallocateOutput(const char* name, void* current, uint64_t bytes, uint64_t alignment) override {
    return realloc_(user_, name, current, bytes, alignment);
  }
  void notifyShape(const char* name, const std::vector<int64_t>& dims) override {
    if (notify_) notify_(user_, name, dims.data(), int(dims.size()));
  }

 private:
  anvil_realloc_fn realloc_;
  anvil_notify_shape_fn notify_;
  void* user_;
};
}  // namespace

struct anvil_context {
  std::unique_ptr<anvil::ExecutionContext> context;
  std::map<std::string, std::unique_ptr<CallbackAllocator>> allocators;  // outlive the context's use
};

namespace {
thread_local std::string lastError;

int fail(const anvil::Status& s) {
  lastError = std::string(anvil::errorCodeName(s.code())) + ": " + s.message();
  return int(s.code());
}
int failArg(const char* msg) {
  lastError = msg;
  return int(anvil::ErrorCode::kInvalidArgument);
}
int ok() {
  lastError.clear();
  return 0;
}
}  // namespace

extern "C" {

int anvil_engine_load(const char* path, anvil_engine** engine) {
  if (!path || !engine) return failArg("anvil_engine_load: null argument");
  std::shared_ptr<anvil::Engine> e;
  anvil::Status s = anvil::Engine::load(path, &e);
  if (!s) return fail(s);
  *engine = new anvil_engine{std::move(e)};
  return ok();
}

void anvil_engine_destroy(anvil_engine* engine) { delete engine; }

int anvil_engine_num_io(const anvil_engine* engine) { return engine ? int(engine->engine->io().size()) : 0; }

const char* anvil_engine_io_name(const anvil_engine* engine, int index) {
  if (!engine || index < 0 || index >= int(engine->engine->io().size())) return nullptr;
  return engine->engine->io()[size_t(index)].name.c_str();
}

int anvil_engine_io_is_input(const anvil_engine* engine, int index) {
  if (!engine || index < 0 || index >= int(engine->engine->io().size())) return 0;
  return engine->engine->io()[size_t(index)].isInput ? 1 : 0;
}

int anvil_engine_io_dtype(const anvil_engine* engine, int index) {
  if (!engine || index < 0 || index >= int(engine->engine->io().size())) return 0;
  return int(engine->engine->io()[size_t(index)].dtype);
}

size_t anvil_dtype_size(int dtype) { return dtype > 0 ? anvil::dataTypeSize(anvil::DataType(dtype)) : 0; }

int anvil_context_create(const anvil_engine* engine, anvil_context** context) {
  if (!engine || !context) return failArg("anvil_context_create: null argument");
  std::unique_ptr<anvil::ExecutionContext> c;
  anvil::Status s = engine->engine->createContext(&c);
  if (!s) return fail(s);
  *context = new anvil_context{std::move(c), {}};
  return ok();
}

int anvil_context_create_with_threads(const anvil_engine* engine, int threads, anvil_context** context) {
  if (!engine || !context) return failArg("anvil_context_create_with_threads: null argument");
  if (threads < 0) return failArg("anvil_context_create_with_threads: threads must be >= 0 (0: the default)");
  anvil::ContextOptions options;
  options.threads = threads;
  std::unique_ptr<anvil::ExecutionContext> c;
  anvil::Status s = engine->engine->createContext(&c, options);
  if (!s) return fail(s);
  *context = new anvil_context{std::move(c), {}};
  return ok();
}

void anvil_context_destroy(anvil_context* context) { delete context; }

int anvil_engine_io_profile(const anvil_engine* engine, int index, int which, int64_t* dims, int max_rank,
                            int* rank) {
  if (!engine || !rank || (max_rank > 0 && !dims)) return failArg("anvil_engine_io_profile: null argument");
  const auto& io = engine->engine->io();
  if (index < 0 || index >= int(io.size())) return failArg("anvil_engine_io_profile: index out of range");
  if (!io[size_t(index)].isInput) return failArg("anvil_engine_io_profile: only inputs have profiles");
  if (which < 0 || which > 2) return failArg("anvil_engine_io_profile: which is 0 (min), 1 (opt) or 2 (max)");
  try {
    anvil::InputProfile p = engine->engine->profile(io[size_t(index)].name);
    const std::vector<int64_t>& d = which == 0 ? p.min : which == 1 ? p.opt : p.max;
    *rank = int(d.size());
    for (int i = 0; i < max_rank && i < int(d.size()); ++i) dims[i] = d[size_t(i)];
  } catch (const std::exception& e) {
    lastError = std::string("anvil_engine_io_profile: ") + e.what();
    return int(anvil::ErrorCode::kInternal);
  }
  return ok();
}

int anvil_context_set_input_shape(anvil_context* context, const char* name, const int64_t* dims, int rank) {
  if (!context || !name || (rank > 0 && !dims) || rank < 0) return failArg("anvil_context_set_input_shape: bad argument");
  anvil::Status s = context->context->setInputShape(name, std::vector<int64_t>(dims, dims + rank));
  return s ? ok() : fail(s);
}

int anvil_context_set_tensor(anvil_context* context, const char* name, void* data) {
  if (!context || !name) return failArg("anvil_context_set_tensor: null argument");
  anvil::Status s = context->context->setTensorAddress(name, data);
  return s ? ok() : fail(s);
}

int anvil_context_get_shape(anvil_context* context, const char* name, int64_t* dims, int max_rank, int* rank) {
  if (!context || !name || !rank) return failArg("anvil_context_get_shape: null argument");
  std::vector<int64_t> d;
  anvil::Status s = context->context->getTensorShape(name, &d);
  if (!s) return fail(s);
  *rank = int(d.size());
  for (int i = 0; i < max_rank && i < int(d.size()); ++i) dims[i] = d[size_t(i)];
  return ok();
}

int anvil_context_run(anvil_context* context) {
  if (!context) return failArg("anvil_context_run: null context");
  anvil::Status s = context->context->run();
  return s ? ok() : fail(s);
}

int anvil_context_set_output_allocator(anvil_context* context, const char* name, anvil_realloc_fn realloc_fn,
                                       anvil_notify_shape_fn notify_fn, void* user_data) {
  if (!context || !name) return failArg("anvil_context_set_output_allocator: null argument");
  std::unique_ptr<CallbackAllocator> a;
  if (realloc_fn) a = std::make_unique<CallbackAllocator>(realloc_fn, notify_fn, user_data);
  anvil::Status s = context->context->setOutputAllocator(name, a.get());
  if (!s) return fail(s);
  // The previous allocator (if any) is released only after the context stopped using it.
  context->allocators[name] = std::move(a);
  return ok();
}

const char* anvil_last_error(void) { return lastError.c_str(); }

}  // extern "C"
