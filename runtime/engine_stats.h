// Counters of the engine runtime that tests read (declared apart from the public API).
#pragma once

#include <cstdint>

namespace anvil::detail {

// Bytes of constants and prepared blobs that contexts of CUDA engines uploaded to a device
// since the process started: one upload per engine and device runtime, whatever the
// number of contexts sharing it.
uint64_t deviceWeightBytesUploaded();

}  // namespace anvil::detail
