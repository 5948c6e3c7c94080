// The engine checksum (XXH3-64 from Debian's libxxhash-dev, used header-only). XXH3's
// vector paths are chosen at compile time, so the AVX2 build lives in checksum_avx2.cpp
// (compiled with -mavx2) and is picked at run time: 4 GB/s with SSE2, about 16 with AVX2.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/kernel.h"

namespace anvil::runtime {

uint64_t engineChecksumAvx2(const uint8_t* data, size_t n);  // checksum_avx2.cpp

uint64_t engineChecksum(const uint8_t* data, size_t n) {
  static const bool avx2 = hostHas("avx2");
  return avx2 ? engineChecksumAvx2(data, n) : XXH3_64bits(data, n);
}

uint64_t stepSeal(const std::string& kernel, int version, const void* params, size_t paramsBytes,
                  const std::vector<uint64_t>& blobBytes, uint64_t workspaceBytes, const std::vector<int>& packedInputs) {
  XXH3_state_t st;
  XXH3_64bits_reset(&st);
  const uint64_t head[4] = {uint64_t(kernel.size()), uint64_t(int64_t(version)), uint64_t(paramsBytes), workspaceBytes};
  XXH3_64bits_update(&st, head, sizeof head);
  XXH3_64bits_update(&st, kernel.data(), kernel.size());
  if (paramsBytes) XXH3_64bits_update(&st, params, paramsBytes);
  const uint64_t nb = blobBytes.size(), np = packedInputs.size();
  XXH3_64bits_update(&st, &nb, sizeof nb);
  if (nb) XXH3_64bits_update(&st, blobBytes.data(), nb * sizeof(uint64_t));
  XXH3_64bits_update(&st, &np, sizeof np);
  if (np) XXH3_64bits_update(&st, packedInputs.data(), np * sizeof(int));
  return XXH3_64bits_digest(&st);
}

}  // namespace anvil::runtime
