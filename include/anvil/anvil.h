/* anvil's C API: load an engine, read its inputs' profiles, create a context (with its
 * thread count), run on float (or any) buffers, receive outputs of data-dependent size
 * through callbacks, read errors as strings. Enough to embed anvil in a C or Fortran program. Every function
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

/* Optimization profile of input `index`: which = 0 min, 1 opt, 2 max. *rank gets the rank,
 * dims up to max_rank entries. Fails for an output or a bad index. */
int anvil_engine_io_profile(const anvil_engine* engine, int index, int which, int64_t* dims, int max_rank, int* rank);

int anvil_context_create(const anvil_engine* engine, anvil_context** context);
/* A context whose executor uses `threads` intra-op threads (0: the default, the machine's
 * physical cores or ANVIL_NUM_THREADS). */
int anvil_context_create_with_threads(const anvil_engine* engine, int threads, anvil_context** context);
void anvil_context_destroy(anvil_context* context);
/* Sets an input's shape (defaults to the shape the engine was tuned for). */
int anvil_context_set_input_shape(anvil_context* context, const char* name, const int64_t* dims, int rank);
/* Binds caller-owned memory to an input or output (outputs are written by run). */
int anvil_context_set_tensor(anvil_context* context, const char* name, void* data);
/* Shape of an input or output for the current input shapes; *rank gets the rank, dims
 * up to max_rank entries. */
int anvil_context_get_shape(anvil_context* context, const char* name, int64_t* dims, int max_rank, int* rank);
int anvil_context_run(anvil_context* context);

/* For outputs whose size is known only after the run (anvil_context_get_shape reports -1
 * dims): during anvil_context_run, `realloc_fn` is asked for memory of at least `bytes`
 * (it may return `current` when that is big enough; NULL fails the run) and `notify_fn`
 * receives the final extents. The memory stays the caller's; `user_data` is passed back.
 * A NULL realloc_fn removes the output's allocator. */
typedef void* (*anvil_realloc_fn)(void* user_data, const char* name, void* current, uint64_t bytes,
                                  uint64_t alignment);
typedef void (*anvil_notify_shape_fn)(void* user_data, const char* name, const int64_t* dims, int rank);
int anvil_context_set_output_allocator(anvil_context* context, const char* name, anvil_realloc_fn realloc_fn,
                                       anvil_notify_shape_fn notify_fn, void* user_data);

/* The last error on this thread ("" if none). */
const char* anvil_last_error(void);

#ifdef __cplusplus
}
#endif

#endif /* ANVIL_ANVIL_H */
