/* Loads an engine through the C API, runs one input of all 0.5 values and prints the
 * output vector's arg-max: how a C or Fortran solver embeds anvil.
 *   classify_c ENGINE */
#include <stdio.h>
#include <stdlib.h>

#include "anvil/anvil.h"

int main(int argc, char** argv) {
  anvil_engine* engine = NULL;
  anvil_context* ctx = NULL;
  int64_t in_dims[8], out_dims[8];
  int in_rank = 0, out_rank = 0, i;
  size_t n_in = 1, n_out = 1, best = 0;
  float *x, *y;
  const char *in_name, *out_name;
  if (argc != 2) {
    fprintf(stderr, "usage: classify_c ENGINE\n");
    return 2;
  }
  if (anvil_engine_load(argv[1], &engine) != 0 || anvil_context_create(engine, &ctx) != 0) {
    fprintf(stderr, "error: %s\n", anvil_last_error());
    return 1;
  }
  in_name = anvil_engine_io_name(engine, 0);
  out_name = anvil_engine_io_name(engine, anvil_engine_num_io(engine) - 1);
  if (!anvil_engine_io_is_input(engine, 0) || anvil_context_get_shape(ctx, in_name, in_dims, 8, &in_rank) != 0 ||
      anvil_context_get_shape(ctx, out_name, out_dims, 8, &out_rank) != 0) {
    fprintf(stderr, "error: %s\n", anvil_last_error());
    return 1;
  }
  for (i = 0; i < in_rank; ++i) n_in *= (size_t)in_dims[i];
  for (i = 0; i < out_rank; ++i) n_out *= (size_t)out_dims[i];
  x = malloc(n_in * sizeof(float));
  y = malloc(n_out * sizeof(float));
  for (i = 0; i < (int)n_in; ++i) x[i] = 0.5f;
  if (anvil_context_set_tensor(ctx, in_name, x) != 0 || anvil_context_set_tensor(ctx, out_name, y) != 0 ||
      anvil_context_run(ctx) != 0) {
    fprintf(stderr, "error: %s\n", anvil_last_error());
    return 1;
  }
  for (i = 1; i < (int)n_out; ++i)
    if (y[i] > y[best]) best = (size_t)i;
  printf("class %zu score %f\n", best, y[best]);
  /* A bad call reports an error string instead of crashing. */
  if (anvil_context_set_tensor(ctx, "no_such_tensor", x) == 0 || anvil_last_error()[0] == '\0') {
    fprintf(stderr, "error: bad tensor name was accepted\n");
    return 1;
  }
  free(x);
  free(y);
  anvil_context_destroy(ctx);
  anvil_engine_destroy(engine);
  return 0;
}
