/* anvil's C API: load an engine, create a context, run on float (or any) buffers, read
 * errors as strings. Enough to embed anvil in a C or Fortran program. Every function
 * returns 0 on success or an error code; anvil_last_error() describes the last failure
 * on the calling thread. */
#ifndef ANVIL_ANVIL_H
#define ANVIL_ANVIL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct anvil_engine anvil_engine;
typedef struct anvil_context anvil_context;

/* Loads (memory-maps) an engine file. */
int anvil_engine_load(const char* path, anvil_engine** engine);
void anvil_engine_destroy(anvil_engine* engine);
/* Number of inputs and outputs; their names (valid while the engine lives). */
int anvil_engine_num_io(const anvil_engine* engine);
const char* anvil_engine_io_name(const anvil_engine* engine, int index);
int anvil_engine_io_is_input(const anvil_engine* engine, int index);
/* Element type of input/output `index` as an ONNX TensorProto data type (1 = float,
 * 7 = int64, ...), and its size in bytes; 0 for a bad index. */
int anvil_engine_io_dtype(const anvil_engine* engine, int index);
size_t anvil_dtype_size(int dtype);

int anvil_context_create(const anvil_engine* engine, anvil_context** context);
void anvil_context_destroy(anvil_context* context);
/* Sets an input's shape (defaults to the shape the engine was tuned for). */
int anvil_context_set_input_shape(anvil_context* context, const char* name, const int64_t* dims, int rank);
/* Binds caller-owned memory to an input or output (outputs are written by run). */
int anvil_context_set_tensor(anvil_context* context, const char* name, void* data);
/* Shape of an input or output for the current input shapes; *rank gets the rank, dims
 * up to max_rank entries. */
int anvil_context_get_shape(anvil_context* context, const char* name, int64_t* dims, int max_rank, int* rank);
int anvil_context_run(anvil_context* context);

/* The last error on this thread ("" if none). */
const char* anvil_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ANVIL_ANVIL_H */
