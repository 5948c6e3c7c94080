/* Runs an engine through the C API on raw input files and writes raw outputs, for the
 * model tests (tests/models/compare.py --runner):
 *   capi_run ENGINE OUTDIR name:AxBxC:file.bin [...]
 * Writes OUTDIR/<k>.bin and OUTDIR/<k>.shape ("AxB" and the dtype code) per output k. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anvil/anvil.h"

static int fail(const char* what) {
  fprintf(stderr, "capi_run: %s: %s\n", what, anvil_last_error());
  return 1;
}

int main(int argc, char** argv) {
  anvil_engine* engine = NULL;
  anvil_context* ctx = NULL;
  void* buffers[64];
  int nbuf = 0, i, k;
  if (argc < 3) {
    fprintf(stderr, "usage: capi_run ENGINE OUTDIR name:AxB:file ...\n");
    return 2;
  }
  if (anvil_engine_load(argv[1], &engine) != 0) return fail("load");
  if (anvil_context_create(engine, &ctx) != 0) return fail("context");
  for (i = 3; i < argc && nbuf < 32; ++i) {
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
    if (anvil_context_set_tensor(ctx, spec, buffers[nbuf++]) != 0) return fail("set_tensor");
  }
  for (k = 0; k < anvil_engine_num_io(engine); ++k) {
    int64_t dims[16];
    int rank = 0, d;
    size_t n;
    const char* name = anvil_engine_io_name(engine, k);
    if (anvil_engine_io_is_input(engine, k)) continue;
    if (anvil_context_get_shape(ctx, name, dims, 16, &rank) != 0) return fail("get_shape");
    n = anvil_dtype_size(anvil_engine_io_dtype(engine, k));
    for (d = 0; d < rank; ++d) n *= (size_t)dims[d];
    buffers[nbuf] = calloc(n ? n : 1, 1);
    if (anvil_context_set_tensor(ctx, name, buffers[nbuf++]) != 0) return fail("set_tensor");
  }
  if (anvil_context_run(ctx) != 0) return fail("run");
  /* Outputs in engine order, written as k.bin + k.shape. */
  for (k = 0, i = 0; k < anvil_engine_num_io(engine); ++k) {
    int64_t dims[16];
    int rank = 0, d, dtype;
    size_t n;
    char path[4096];
    FILE* f;
    if (anvil_engine_io_is_input(engine, k)) { ++i; continue; }
    anvil_context_get_shape(ctx, anvil_engine_io_name(engine, k), dims, 16, &rank);
    dtype = anvil_engine_io_dtype(engine, k);
    n = anvil_dtype_size(dtype);
    for (d = 0; d < rank; ++d) n *= (size_t)dims[d];
    snprintf(path, sizeof path, "%s/%d.bin", argv[2], k - i);
    f = fopen(path, "wb");
    if (!f) return 1;
    fwrite(buffers[nbuf - (anvil_engine_num_io(engine) - k)], 1, n, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%d.shape", argv[2], k - i);
    f = fopen(path, "w");
    for (d = 0; d < rank; ++d) fprintf(f, "%s%lld", d ? "x" : "", (long long)dims[d]);
    fprintf(f, " %d\n", dtype);
    fclose(f);
  }
  anvil_context_destroy(ctx);
  anvil_engine_destroy(engine);
  for (i = 0; i < nbuf; ++i) free(buffers[i]);
  return 0;
}
