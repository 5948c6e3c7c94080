// The offline phase of the mpc protocol: the dealer's correlated randomness per run (linear
// masks and their products, LUT shifts and shifted-table shares, Beaver triples), its
// payload format (the bytes runtime/mpc/material.* stores) and the expansion of each
// party's payload into what the online phase (runtime/mpc/protocol.*) reads.
//
// The dealer sees only the PUBLIC program (shapes, scales, tables; no weights). All of the
// client's randomness and the server's masks come from two 32-byte seeds (libsodium's
// ChaCha20 keyed by per-step subkeys); only the server's correction terms, which depend on
// both seeds, are written out: c1 = C - c0 per linear layer and Beaver triple, and the
// shifted-table share T1 = T - T0 per lookup. The client's file is then a seed, the server's
// holds the tables. A dealer-free offline phase (HE, as Delphi) would produce the same
// ServerMaterial / ClientMaterial with the same payload format.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/mpc/program.h"

namespace anvil::mpc {

// The plaintext ring kernels the protocol and the dealer run (on shares, masks and triples):
// the same functions the fixed executor runs, so secure and fixed agree bit for bit.
struct RingKernels {
  // W (*) x of a kLinear / kScale step, plus bias when bias is not empty.
  std::function<std::vector<Ring>(const Program&, const Step&, const std::vector<Ring>& w,
                                  const std::vector<Ring>& bias, const std::vector<Ring>& x)>
      linear;
  // x (*) y of a kMul (broadcast elementwise) / kMatMul (batched) step.
  std::function<std::vector<Ring>(const Program&, const Step&, const std::vector<Ring>& x, const std::vector<Ring>& y)>
      product;
  // A local step (kAdd .. kSlice): linear over the ring, so it runs on each share alone.
  std::function<std::vector<Ring>(const Program&, const Step&, const std::vector<const std::vector<Ring>*>& in)> local;
};

// The kernels of runtime/mpc/ring_ops (what the CLI uses).
const RingKernels& defaultKernels();

int64_t tensorNumel(const Program& p, int32_t tensorId);

// The comparison tree of a kMaxPool step, the same for the dealer and both parties: the
// working values are the input's elements (0 .. inputNumel-1) followed by each level's
// results in order; level L compares pairs (a[k], b[k]) into value next + k (m = b + relu(a - b)
// through the LUT); `result` is the value each output element ends with.
struct MaxPoolPlan {
  int64_t inputNumel = 0;
  struct Level {
    std::vector<int64_t> a, b;
    int64_t first = 0;  // the working index of this level's first result
  };
  std::vector<Level> levels;
  std::vector<int64_t> result;  // per output element
  int64_t comparisons() const;
  int64_t workingSize() const { return inputNumel + comparisons(); }
};
MaxPoolPlan maxPoolPlan(const Program& p, const Step& s);

// Whether step s truncates exactly in the secure run (Program::exactTruncation, a kLut or
// kMaxPool with shift > 0; shift 0 is exact either way and keeps the one-round lookup).
// Such a lookup of n values (d = shift, K = ceil(d / 8) digits): the dealer draws r (shared
// r0 + r1 from the two seeds); round 1 opens m = v + 2^(d-1) + r mod 2^(8 * openBytes)
// (openBytes = ceil((d + 8) / 8)); then (m - r) >> d = floor((v + 2^(d-1)) / 2^d), the fixed
// index, is bits d .. d+7 of m minus r_hi minus the borrow B = [(m mod 2^d) < (r mod 2^d)]
// (x_k, rho_k: byte k of m mod 2^d and of r mod 2^d). The parties learn B only masked,
// c = B xor beta (beta the dealer's coin), and read the additively shared 512-entry table
// F[c][j] = table[(j - r_hi - (c xor beta)) mod 256] at (c, bits d .. d+7 of m).
// The masked borrow, all tables XOR-shared (the client's share a keystream, the server's in
// its payload), one bit per lookup and round unless said:
//  - K <= 2, the chain: round k + 2 opens c_(k+1) = Q_k[x_k][c_k], Q_k[x][c] =
//    [x < rho_k + (c xor beta_k)] xor beta_(k+1) (beta_0 = 0, c_0 = 0): 1 + K rounds.
//  - K >= 3, the states: round 2 opens t_k = (s_k + mu_k) mod 4 for every digit at once
//    (2 bits each), s_k = 0, 1, 2 as x_k <, =, > rho_k and mu_k the dealer's; round 3 opens
//    c = C[t_0 .. t_(K-1)] from a 4^K-bit table of the borrow those states give: 3 rounds.
bool exactLookup(const Program& p, const Step& s);
inline int exactOpenBytes(int shift) { return (shift + 8 + 7) / 8; }
inline int exactDigits(int shift) { return (shift + 7) / 8; }
inline bool exactUsesStates(int shift) { return exactDigits(shift) >= 3; }
inline int exactRounds(int shift) { return 1 + (exactUsesStates(shift) ? 2 : exactDigits(shift)); }
// Bytes of one lookup's XOR-shared bit tables: 64 per digit (256 x 2 bits), plus C (4^K bits).
inline size_t exactBitTableBytes(int shift) {
  return size_t(exactDigits(shift)) * 64 + (exactUsesStates(shift) ? (size_t(1) << (2 * exactDigits(shift))) / 8 : 0);
}

// How many one-time lookups a kLut (one per element) or kMaxPool (one per comparison) step uses.
int64_t lookupCount(const Program& p, const Step& s);

// What both parties' payloads start with; the handshake compares it.
struct RunHeader {
  int32_t party = 0;  // 0 client, 1 server
  std::string programId, setId;
  int64_t runIndex = 0;
};

struct RunPayloads {
  std::vector<uint8_t> client, server;
};

// A fresh run's material for `program` (public or not: weights are not read). setId: the
// dealer invocation's 16 random bytes (both parties' files of one invocation share it).
RunPayloads generateRun(const Program& program, const std::string& setId, int64_t runIndex,
                        const RingKernels& kernels = defaultKernels());

std::string newSetId();  // 16 random bytes (randombytes_buf)

// The payload sizes of one run of `program` (both are fixed by the public program), so a
// party can report the offline bytes of both sides.
struct PayloadSizes {
  uint64_t client = 0, server = 0;
};
PayloadSizes payloadSizes(const Program& program, size_t setIdBytes = 16);

// Reads the header of a payload (either party); throws anvil::Error on a malformed one.
RunHeader readRunHeader(const std::vector<uint8_t>& payload);

using SubKey = std::array<uint8_t, 32>;

// Per step, what the client uses online. Per-step slots not used by a kind stay empty.
struct ClientStepMaterial {
  std::vector<Ring> a;        // kLinear/kScale: B (the input mask); kMul/kMatMul: the triple's a0
  std::vector<Ring> b;        // kMul/kMatMul: b0
  std::vector<Ring> c;        // kLinear/kScale: c0 (share of op(A, B)); kMul/kMatMul: c0
  std::vector<uint8_t> sigma; // kLut/kMaxPool: sigma0 per lookup
  SubKey tableKey{};          // kLut/kMaxPool: T0 is a keystream, read entry by entry (tableShare)
  // exactLookup steps (no sigma): r0 per lookup; the bit tables' shares per lookup
  // (exactBitTableBytes); F0[c][j] of lookup l is tableShare(tableKey, 2 * l + c, j).
  std::vector<Ring> r;
  std::vector<uint8_t> bits;
};
struct ClientMaterial {
  RunHeader header;
  std::vector<ClientStepMaterial> steps;
  // T0[lookup][index] of a kLut / kMaxPool step, computed from its key (one ChaCha20 block):
  // the client never holds the whole table share.
  static Ring tableShare(const SubKey& key, int64_t lookup, uint8_t index);
};

// Per step, what the server uses online. The table shares stay in the payload (not copied).
struct ServerStepMaterial {
  std::vector<Ring> a;         // kLinear/kScale: A (the weight mask); kMul/kMatMul: a1
  std::vector<Ring> b;         // kMul/kMatMul: b1
  std::vector<Ring> c;         // kLinear/kScale: c1 = op(A, B) - c0; kMul/kMatMul: c1
  std::vector<uint8_t> sigma;  // kLut/kMaxPool: sigma1 per lookup
  const uint8_t* tables = nullptr;  // kLut/kMaxPool: T1, lookups x 256 little-endian ring values
                                    // (exactLookup: F1, lookups x 2 x 256, tableShare(step, 2l + c, j))
  // exactLookup steps (no sigma): r1 per lookup; the bit tables' shares (exactBitTableBytes each).
  std::vector<Ring> r;
  const uint8_t* bits = nullptr;
};
struct ServerMaterial {
  RunHeader header;
  std::vector<ServerStepMaterial> steps;
  Ring tableShare(size_t step, int64_t lookup, uint8_t index) const;
};

// Expand a party's payload for `program` (checks the party, the program id and the size).
// The server material points into `payload`, which must outlive it.
ClientMaterial expandClientMaterial(const Program& program, const std::vector<uint8_t>& payload);
ServerMaterial expandServerMaterial(const Program& program, const std::vector<uint8_t>& payload);

}  // namespace anvil::mpc
