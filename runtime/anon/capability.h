// Capabilities of the anonymous mode (docs/anon.md), BACAP-style and libsodium only: one
// fresh root secret per request derives (crypto_kdf) an Ed25519 identity scalar, a blinding
// factor per box, the boxes' AEAD keys and the request id. A box ID is the identity's public
// key blinded by the box's factor, so two boxes of one client are unlinkable without the
// factors; writes are signed with the blinded scalar (standard Ed25519 signatures, checked
// with crypto_sign_ed25519_verify_detached) and payloads sealed with XChaCha20-Poly1305
// under the box ID as associated data. Jobs travel to the worker sealed to its X25519 key.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace anvil::anon {

using Bytes = std::vector<uint8_t>;
using BoxId = std::array<uint8_t, 32>;      // a blinded Ed25519 public key
using Key = std::array<uint8_t, 32>;        // an XChaCha20-Poly1305 key
using Scalar = std::array<uint8_t, 32>;     // an Ed25519 scalar, reduced mod L
using Signature = std::array<uint8_t, 64>;  // R || S, an Ed25519 signature
using RequestId = std::array<uint8_t, 16>;
using Root = std::array<uint8_t, 32>;       // crypto_kdf master key

// Reading a box: where it is and the key of its payload.
struct ReadCap {
  BoxId box{};
  Key key{};
};
// Writing a box: where, the payload key, the blinded secret scalar that signs the write
// and a key for deterministic signing nonces.
struct WriteCap {
  BoxId box{};
  Key key{};
  Scalar scalar{};
  Key nonceKey{};
  ReadCap read() const { return {box, key}; }
};

// What one request derives from its root: the request box (the client writes, the worker
// reads) and the result box (the worker writes, the client reads).
struct RequestKeys {
  RequestId requestId{};
  WriteCap request, result;
};

void initSodium();  // sodium_init once; throws if libsodium cannot start
Root freshRoot();   // randombytes_buf
RequestKeys deriveRequestKeys(const Root& root);

// AEAD: nonce (24 random bytes) || ciphertext, associated data = the box ID. open() throws
// kInvalidArgument naming the box when the payload fails authentication.
Bytes sealPayload(const ReadCap& cap, const Bytes& plaintext);
Bytes openPayload(const ReadCap& cap, const Bytes& content);

// Ed25519 signature of `content` under the blinded key (the box ID), made from the blinded
// scalar with libsodium's scalar and point operations; verifyWrite is libsodium's own
// Ed25519 verifier.
Signature signWrite(const WriteCap& cap, const Bytes& content);
bool verifyWrite(const BoxId& box, const Bytes& content, const Signature& sig);

// The worker's X25519 key pair (crypto_box); jobs are crypto_box_seal'ed to its public key.
struct WorkerKey {
  std::array<uint8_t, 32> publicKey{}, secretKey{};
};
WorkerKey workerKeyFromSeed(const std::array<uint8_t, 32>& seed);
// Reads the 32-byte seed (hex) from `path`, or creates it (mode 0600) when absent.
WorkerKey loadOrCreateWorkerKey(const std::string& path);
Bytes sealToWorker(const std::array<uint8_t, 32>& workerPublicKey, const Bytes& message);
Bytes openAsWorker(const WorkerKey& key, const Bytes& sealed);  // throws when not for this key

std::string toHex(const uint8_t* data, size_t n);
template <size_t N>
std::string toHex(const std::array<uint8_t, N>& a) {
  return toHex(a.data(), N);
}
Bytes fromHex(const std::string& hex, const char* what);
[[noreturn]] void throwBadLength(const char* what, size_t expected, size_t got);
template <size_t N>
std::array<uint8_t, N> fromHexFixed(const std::string& hex, const char* what) {
  Bytes b = fromHex(hex, what);
  if (b.size() != N) throwBadLength(what, N, b.size());
  std::array<uint8_t, N> a{};
  for (size_t i = 0; i < N; ++i) a[i] = b[i];
  return a;
}

}  // namespace anvil::anon
