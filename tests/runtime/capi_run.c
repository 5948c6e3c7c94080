/* Runs an engine through the C API on raw input files and writes raw outputs, for the
 * model tests (tests/models/compare.py --runner) and the C API test (tests/cli):
 *   capi_run [--threads=N] [--profiles] ENGINE OUTDIR name:AxBxC:file.bin [...]
 * Writes OUTDIR/<k>.bin and OUTDIR/<k>.shape ("AxB" and the dtype code) per output k.
 * Outputs whose size only the run decides come back through the output-allocator
 * callbacks. --profiles prints "profile NAME min AxB opt AxB max AxB" per input first;
 * --threads=N creates the context with N intra-op threads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anvil/anvil.h"

static int fail(const char* what) {
  fprintf(stderr, "capi_run: %s: %s\n", what, anvil_last_error());
  return 1;
}

/* One output of data-dependent size: the memory handed out and the shape reported. */
typedef struct {
  void* data;
  uint64_t capacity;
  int64_t dims[16];
  int rank;
  int notified;
} dyn_output;

static void* grow(void* user, const char* name, void* current, uint64_t bytes, uint64_t alignment) {
  dyn_output* o = (dyn_output*)user;
  (void)name;
  (void)alignment; /* malloc's alignment (16) is what the CPU kernels need */
  if (current && current == o->data && bytes <= o->capacity) return current;
  free(o->data);
  o->data = malloc(bytes ? (size_t)bytes : 1);
  o->capacity = o->data ? bytes : 0;
  return o->data;
}

static void shape(void* user, const char* name, const int64_t* dims, int rank) {
  dyn_output* o = (dyn_output*)user;
  int d;
  (void)name;
  o->rank = rank < 16 ? rank : 16;
  for (d = 0; d < o->rank; ++d) o->dims[d] = dims[d];
  o->notified = 1;
}

static void print_dims(const int64_t* dims, int rank) {
  int d;
  if (rank == 0) printf("scalar");
  for (d = 0; d < rank; ++d) printf("%s%lld", d ? "x" : "", (long long)dims[d]);
}

int main(int argc, char** argv) {
  anvil_engine* engine = NULL;
  anvil_context* ctx = NULL;
  void* buffers[64];
  dyn_output dyn[64];
  int dynamic[64];
  int nbuf = 0, i, k, threads = -1, profiles = 0, first = 1;
  memset(dyn, 0, sizeof dyn);
  while (first < argc && strncmp(argv[first], "--", 2) == 0) {
    if (strncmp(argv[first], "--threads=", 10) == 0) threads = atoi(argv[first] + 10);
    else if (strcmp(argv[first], "--profiles") == 0) profiles = 1;
    else {
      fprintf(stderr, "capi_run: unknown option %s\n", argv[first]);
      return 2;
    }
    ++first;
  }
  if (argc - first < 2) {
    fprintf(stderr, "usage: capi_run [--threads=N] [--profiles] ENGINE OUTDIR name:AxB:file ...\n");
    return 2;
  }
  if (anvil_engine_load(argv[first], &engine) != 0) return fail("load");
  if (profiles)
    for (k = 0; k < anvil_engine_num_io(engine); ++k) {
      int w;
      if (!anvil_engine_io_is_input(engine, k)) continue;
      printf("profile %s", anvil_engine_io_name(engine, k));
      for (w = 0; w < 3; ++w) {
        int64_t dims[16];
        int rank = 0;
        if (anvil_engine_io_profile(engine, k, w, dims, 16, &rank) != 0) return fail("io_profile");
        printf(w == 0 ? " min " : w == 1 ? " opt " : " max ");
        print_dims(dims, rank);
      }
      printf("\n");
    }
  if (threads >= 0 ? anvil_context_create_with_threads(engine, threads, &ctx) != 0
                   : anvil_context_create(engine, &ctx) != 0)
    return fail("context");
  for (i = first + 2; i < argc && nbuf < 32; ++i) {
    char* spec = argv[i];
    char* c1 = strchr(spec, ':');
    char* c2 = c1 ? strchr(c1 + 1, ':') : NULL;
    int64_t dims[16];
    int rank = 0, idx, dtype = 0;
    size_t n = 1;
    FILE* f;
    char* p;
    if (!c2) return 2;
    *c1 = 0;
    *c2 = 0;
    for (p = c1 + 1; *p && rank < 16;) {
      dims[rank] = strtoll(p, &p, 10);
      n *= (size_t)dims[rank++];
      if (*p == 'x') ++p;
    }
    for (idx = 0; idx < anvil_engine_num_io(engine); ++idx)
      if (strcmp(anvil_engine_io_name(engine, idx), spec) == 0) dtype = anvil_engine_io_dtype(engine, idx);
    if (!dtype) {
      fprintf(stderr, "capi_run: no input %s\n", spec);
      return 1;
    }
    n *= anvil_dtype_size(dtype);
    buffers[nbuf] = malloc(n ? n : 1);
    f = fopen(c2 + 1, "rb");
    if (!f || fread(buffers[nbuf], 1, n, f) != n) {
      fprintf(stderr, "capi_run: cannot read %zu bytes from %s\n", n, c2 + 1);
      return 1;
    }
    fclose(f);
    if (anvil_context_set_input_shape(ctx, spec, dims, rank) != 0) return fail("set_input_shape");
    /* A zero-element input has no data: bound to NULL. */
    if (anvil_context_set_tensor(ctx, spec, n ? buffers[nbuf] : NULL) != 0) return fail("set_tensor");
    ++nbuf;
  }
  for (k = 0; k < anvil_engine_num_io(engine) && k < 64; ++k) {
    int64_t dims[16];
    int rank = 0, d;
    size_t n;
    const char* name = anvil_engine_io_name(engine, k);
    dynamic[k] = 0;
    if (anvil_engine_io_is_input(engine, k)) continue;
    if (anvil_context_get_shape(ctx, name, dims, 16, &rank) != 0) return fail("get_shape");
    for (d = 0; d < rank; ++d) dynamic[k] |= dims[d] < 0;
    if (dynamic[k]) {
      if (anvil_context_set_output_allocator(ctx, name, grow, shape, &dyn[k]) != 0) return fail("set_output_allocator");
      continue;
    }
    n = anvil_dtype_size(anvil_engine_io_dtype(engine, k));
    for (d = 0; d < rank; ++d) n *= (size_t)dims[d];
    dyn[k].data = calloc(n ? n : 1, 1);
    if (anvil_context_set_tensor(ctx, name, dyn[k].data) != 0) return fail("set_tensor");
  }
  if (anvil_context_run(ctx) != 0) return fail("run");
  /* Outputs in engine order, written as k.bin + k.shape. */
  for (k = 0, i = 0; k < anvil_engine_num_io(engine) && k < 64; ++k) {
    int64_t dims[16];
    int rank = 0, d, dtype;
    size_t n;
    char path[4096];
    FILE* f;
    if (anvil_engine_io_is_input(engine, k)) { ++i; continue; }
    if (dynamic[k]) {
      if (!dyn[k].notified) {
        fprintf(stderr, "capi_run: output %s: the run never reported its shape\n", anvil_engine_io_name(engine, k));
        return 1;
      }
      rank = dyn[k].rank;
      memcpy(dims, dyn[k].dims, sizeof dims);
    } else {
      anvil_context_get_shape(ctx, anvil_engine_io_name(engine, k), dims, 16, &rank);
    }
    dtype = anvil_engine_io_dtype(engine, k);
    n = anvil_dtype_size(dtype);
    for (d = 0; d < rank; ++d) n *= (size_t)dims[d];
    snprintf(path, sizeof path, "%s/%d.bin", argv[first + 1], k - i);
    f = fopen(path, "wb");
    if (!f) return 1;
    if (n) fwrite(dyn[k].data, 1, n, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%d.shape", argv[first + 1], k - i);
    f = fopen(path, "w");
    for (d = 0; d < rank; ++d) fprintf(f, "%s%lld", d ? "x" : "", (long long)dims[d]);
    fprintf(f, " %d\n", dtype);
    fclose(f);
  }
  anvil_context_destroy(ctx);
  anvil_engine_destroy(engine);
  for (i = 0; i < nbuf; ++i) free(buffers[i]);
  for (k = 0; k < 64; ++k) free(dyn[k].data);
  return 0;
}
