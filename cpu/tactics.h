// What the builder's timing cache keys on besides the graph: a stable description of this
// CPU (model name, the features kernels may use, cores). Every CPU implementation of an op
// is a runtime::Kernel (runtime/kernel.h; registered from cpu/backend.cpp).
#pragma once

#include <cstdint>
#include <string>

namespace anvil::cpu {

// "model name|x86-64+avx2+...|Ncores"; the features as runtime::hostCpuIsa reports them
// (ANVIL_MAX_ISA applies, so a capped build never reuses an uncapped build's timings).
std::string cpuSignature();

// One core's L2 in bytes (sysfs, else sysconf, else 1 MiB): the builder times a step's
// weights out of cache when the model's weights do not fit in it.
int64_t l2CacheBytes();

}  // namespace anvil::cpu
