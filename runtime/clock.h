// The calling thread's CPU time, for timings that must not count the time slices a shared
// machine gives to other work: the builder's one-thread candidate timing, --fma-peak and the
// kernels' DISABLED_ benches.
#pragma once

#include <ctime>

namespace anvil::runtime {

// Milliseconds of CPU time the calling thread has used (CLOCK_THREAD_CPUTIME_ID); only
// differences between two readings on the same thread mean anything.
inline double threadCpuMs() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return double(t.tv_sec) * 1e3 + double(t.tv_nsec) * 1e-6;
}

}  // namespace anvil::runtime
