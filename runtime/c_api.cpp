// The C API over Engine/ExecutionContext; no exception crosses it.
#include "anvil/anvil.h"

#include <string>

#include "anvil/anvil.hpp"

struct anvil_engine {
  std::shared_ptr<anvil::Engine> engine;
};
struct anvil_context {
  std::unique_ptr<anvil::ExecutionContext> context;
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
  *context = new anvil_context{std::move(c)};
  return ok();
}

void anvil_context_destroy(anvil_context* context) { delete context; }

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

const char* anvil_last_error(void) { return lastError.c_str(); }

}  // extern "C"
