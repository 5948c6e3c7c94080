// XXH3-64 compiled for AVX2 (see checksum.cpp); only called where the CPU has AVX2.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstddef>
#include <cstdint>

namespace anvil::runtime {

uint64_t engineChecksumAvx2(const uint8_t* data, size_t n) { return XXH3_64bits(data, n); }

}  // namespace anvil::runtime
