// Key derivation, blinding, signing and sealing of the anonymous mode's capabilities
// (capability.h), every primitive from libsodium.
#include "runtime/anon/capability.h"

#include <sodium.h>
#include <sys/stat.h>

#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>

#include "anvil/error.h"

namespace anvil::anon {

namespace {

constexpr char kKdfContext[crypto_kdf_CONTEXTBYTES + 1] = "anvanon1";  // 8 bytes
// Subkey ids of crypto_kdf_derive_from_key: one per derived secret, never reused.
enum Subkey : uint64_t {
  kIdentity = 1,
  kRequestBlind = 2,
  kResultBlind = 3,
  kRequestAead = 4,
  kResultAead = 5,
  kRequestIdKey = 6,
  kRequestNonce = 7,
  kResultNonce = 8,
};

template <size_t N>
std::array<uint8_t, N> derive(const Root& root, uint64_t id) {
  static_assert(N >= crypto_kdf_BYTES_MIN && N <= crypto_kdf_BYTES_MAX);
  std::array<uint8_t, N> out{};
  ANVIL_CHECK(crypto_kdf_derive_from_key(out.data(), N, id, kKdfContext, root.data()) == 0, ErrorCode::kInternal,
              "crypto_kdf_derive_from_key failed");
  return out;
}

// A uniform nonzero scalar from 64 derived bytes (reduced mod L, as Ed25519 does).
Scalar deriveScalar(const Root& root, uint64_t id) {
  auto wide = derive<crypto_core_ed25519_NONREDUCEDSCALARBYTES>(root, id);
  Scalar s{};
  crypto_core_ed25519_scalar_reduce(s.data(), wide.data());
  sodium_memzero(wide.data(), wide.size());
  static const Scalar zero{};
  ANVIL_CHECK(sodium_memcmp(s.data(), zero.data(), s.size()) != 0, ErrorCode::kInternal,
              "derived a zero scalar (probability 2^-252)");
  return s;
}

WriteCap blindedBox(const Scalar& identity, const Scalar& blind, const Key& aead, const Key& nonceKey) {
  WriteCap cap;
  crypto_core_ed25519_scalar_mul(cap.scalar.data(), identity.data(), blind.data());
  ANVIL_CHECK(crypto_scalarmult_ed25519_base_noclamp(cap.box.data(), cap.scalar.data()) == 0, ErrorCode::kInternal,
              "blinded public key is the identity point");
  cap.key = aead;
  cap.nonceKey = nonceKey;
  return cap;
}

}  // namespace

void initSodium() {
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] { rc = sodium_init(); });
  ANVIL_CHECK(rc >= 0, ErrorCode::kInternal, "sodium_init failed");
}

Root freshRoot() {
  initSodium();
  Root r{};
  crypto_kdf_keygen(r.data());
  return r;
}

RequestKeys deriveRequestKeys(const Root& root) {
  initSodium();
  RequestKeys k;
  const Scalar identity = deriveScalar(root, kIdentity);
  k.request = blindedBox(identity, deriveScalar(root, kRequestBlind), derive<32>(root, kRequestAead),
                         derive<32>(root, kRequestNonce));
  k.result = blindedBox(identity, deriveScalar(root, kResultBlind), derive<32>(root, kResultAead),
                        derive<32>(root, kResultNonce));
  k.requestId = derive<16>(root, kRequestIdKey);
  return k;
}

Bytes sealPayload(const ReadCap& cap, const Bytes& plaintext) {
  initSodium();
  Bytes out(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + plaintext.size() + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  uint8_t* nonce = out.data();
  randombytes_buf(nonce, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
  unsigned long long clen = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(nonce + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen,
                                             plaintext.data(), plaintext.size(), cap.box.data(), cap.box.size(),
                                             nullptr, nonce, cap.key.data());
  out.resize(crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + clen);
  return out;
}

Bytes openPayload(const ReadCap& cap, const Bytes& content) {
  initSodium();
  constexpr size_t kN = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, kA = crypto_aead_xchacha20poly1305_ietf_ABYTES;
  ANVIL_CHECK(content.size() >= kN + kA, ErrorCode::kInvalidArgument, "box ", toHex(cap.box).substr(0, 16),
              "...: ", content.size(), " bytes is shorter than a sealed payload (", kN + kA, " bytes at least)");
  Bytes out(content.size() - kN - kA);
  unsigned long long mlen = 0;
  const int rc = crypto_aead_xchacha20poly1305_ietf_decrypt(out.data(), &mlen, nullptr, content.data() + kN,
                                                            content.size() - kN, cap.box.data(), cap.box.size(),
                                                            content.data(), cap.key.data());
  ANVIL_CHECK(rc == 0, ErrorCode::kInvalidArgument, "box ", toHex(cap.box).substr(0, 16),
              "...: the payload fails authentication (corrupted box, or a wrong key in the capability)");
  out.resize(mlen);
  return out;
}

Signature signWrite(const WriteCap& cap, const Bytes& content) {
  initSodium();
  // Deterministic nonce r = H_k(A || M) mod L, keyed by a secret only the writer holds (as
  // Ed25519 derives r from the secret key's hash): never reused across messages.
  uint8_t wide[64];
  crypto_generichash_state st;
  crypto_generichash_init(&st, cap.nonceKey.data(), cap.nonceKey.size(), sizeof wide);
  crypto_generichash_update(&st, cap.box.data(), cap.box.size());
  crypto_generichash_update(&st, content.data(), content.size());
  crypto_generichash_final(&st, wide, sizeof wide);
  Scalar r{};
  crypto_core_ed25519_scalar_reduce(r.data(), wide);
  Signature sig{};
  ANVIL_CHECK(crypto_scalarmult_ed25519_base_noclamp(sig.data(), r.data()) == 0, ErrorCode::kInternal,
              "signing nonce is zero");
  // k = SHA-512(R || A || M) mod L, S = r + k a: the equation crypto_sign_ed25519_verify checks.
  crypto_hash_sha512_state h;
  crypto_hash_sha512_init(&h);
  crypto_hash_sha512_update(&h, sig.data(), 32);
  crypto_hash_sha512_update(&h, cap.box.data(), cap.box.size());
  crypto_hash_sha512_update(&h, content.data(), content.size());
  crypto_hash_sha512_final(&h, wide);
  Scalar k{}, ka{};
  crypto_core_ed25519_scalar_reduce(k.data(), wide);
  crypto_core_ed25519_scalar_mul(ka.data(), k.data(), cap.scalar.data());
  crypto_core_ed25519_scalar_add(sig.data() + 32, r.data(), ka.data());
  sodium_memzero(r.data(), r.size());
  sodium_memzero(wide, sizeof wide);
  return sig;
}

bool verifyWrite(const BoxId& box, const Bytes& content, const Signature& sig) {
  initSodium();
  return crypto_sign_ed25519_verify_detached(sig.data(), content.data(), content.size(), box.data()) == 0;
}

WorkerKey workerKeyFromSeed(const std::array<uint8_t, 32>& seed) {
  initSodium();
  static_assert(crypto_box_SEEDBYTES == 32 && crypto_box_PUBLICKEYBYTES == 32 && crypto_box_SECRETKEYBYTES == 32);
  WorkerKey k;
  crypto_box_seed_keypair(k.publicKey.data(), k.secretKey.data(), seed.data());
  return k;
}

WorkerKey loadOrCreateWorkerKey(const std::string& path) {
  initSodium();
  std::ifstream in(path);
  if (in) {
    std::string hex;
    in >> hex;
    return workerKeyFromSeed(fromHexFixed<32>(hex, ("worker key file " + path).c_str()));
  }
  std::array<uint8_t, 32> seed{};
  randombytes_buf(seed.data(), seed.size());
  {
    const mode_t old = umask(077);  // the seed is the worker's secret: owner-only
    std::ofstream out(path, std::ios::trunc);
    umask(old);
    ANVIL_CHECK(out.good(), ErrorCode::kIoError, "cannot create the worker key file ", path);
    out << toHex(seed) << "\n";
    ANVIL_CHECK(out.good(), ErrorCode::kIoError, "cannot write the worker key file ", path);
  }
  return workerKeyFromSeed(seed);
}

Bytes sealToWorker(const std::array<uint8_t, 32>& workerPublicKey, const Bytes& message) {
  initSodium();
  Bytes out(message.size() + crypto_box_SEALBYTES);
  ANVIL_CHECK(crypto_box_seal(out.data(), message.data(), message.size(), workerPublicKey.data()) == 0,
              ErrorCode::kInvalidArgument, "crypto_box_seal failed (is the worker key a valid X25519 key?)");
  return out;
}

Bytes openAsWorker(const WorkerKey& key, const Bytes& sealed) {
  initSodium();
  ANVIL_CHECK(sealed.size() >= crypto_box_SEALBYTES, ErrorCode::kInvalidArgument, "a sealed job of ", sealed.size(),
              " bytes is shorter than crypto_box_SEALBYTES");
  Bytes out(sealed.size() - crypto_box_SEALBYTES);
  ANVIL_CHECK(crypto_box_seal_open(out.data(), sealed.data(), sealed.size(), key.publicKey.data(),
                                   key.secretKey.data()) == 0,
              ErrorCode::kInvalidArgument, "the job does not open with this worker's key (sealed to another worker, or corrupted)");
  return out;
}

std::string toHex(const uint8_t* data, size_t n) {
  std::string s(2 * n + 1, '\0');
  sodium_bin2hex(s.data(), s.size(), data, n);
  s.pop_back();
  return s;
}

Bytes fromHex(const std::string& hex, const char* what) {
  Bytes out(hex.size() / 2);
  size_t len = 0;
  const char* end = nullptr;
  const int rc = sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &len, &end);
  ANVIL_CHECK(rc == 0 && hex.size() % 2 == 0 && end == hex.data() + hex.size(), ErrorCode::kInvalidArgument, what,
              ": '", hex.substr(0, 80), "' is not a hex string");
  out.resize(len);
  return out;
}

void throwBadLength(const char* what, size_t expected, size_t got) {
  ANVIL_THROW(ErrorCode::kInvalidArgument, what, ": expected ", expected, " bytes, got ", got);
}

}  // namespace anvil::anon
