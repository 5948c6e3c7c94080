// Offline material of the mpc mode on disk: the dealer (`anvil mpc-dealer`) writes one
// file per run and party; the server and the client each claim the next unused run of
// their directory, and a claimed run is never handed out again (a reused table or mask
// would leak the input or the weights). The content (the Beaver triples, masks and
// shifted table shares) is the protocol's (runtime/mpc/dealer.*): here it is bytes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace anvil::mpc {

struct MaterialHeader {
  std::string programId;    // Program::programId of the engines it was made for
  std::string setId;        // 16 random bytes per dealer invocation (both parties' files share it)
  int32_t party = 0;        // 0 client, 1 server
  int64_t runIndex = 0;     // 0 .. runs-1 within the set
  int64_t runs = 0;         // how many runs the set holds
};

// Writes DIR/run-<index>.bin (header + payload, with a checksum) atomically (temp file
// and rename). DIR is created when missing.
void writeMaterial(const std::string& dir, const MaterialHeader& header, const std::vector<uint8_t>& payload);

struct ClaimedMaterial {
  MaterialHeader header;
  std::vector<uint8_t> payload;
};

// Claims the lowest-numbered unused run in DIR for `programId` and `party`: records it as
// used (DIR/consumed.log, append + fsync, under an exclusive lock so two processes never
// claim the same run) and deletes its file before returning the content. Throws
// anvil::Error with a clear message when DIR holds no unused run, when a file is
// truncated or corrupt (checksum), made for another program or party, or when the run is
// already in the consumed log (a file copied back is refused).
ClaimedMaterial claimMaterial(const std::string& dir, const std::string& programId, int32_t party);

// How many unused runs DIR holds for programId and party (the server serves that many).
int64_t countMaterial(const std::string& dir, const std::string& programId, int32_t party);

}  // namespace anvil::mpc
