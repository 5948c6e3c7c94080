// Capabilities: derivation deterministic from the root, box IDs of one client unlinkable,
// forged signatures and tampered ciphertexts refused, jobs sealed to the worker's key.
#include <gtest/gtest.h>

#include <set>

#include "anvil/error.h"
#include "runtime/anon/capability.h"

namespace anvil::anon {
namespace {

TEST(AnonCapability, DerivationIsDeterministicFromTheRoot) {
  const Root root = freshRoot();
  const RequestKeys a = deriveRequestKeys(root), b = deriveRequestKeys(root);
  EXPECT_EQ(a.requestId, b.requestId);
  EXPECT_EQ(a.request.box, b.request.box);
  EXPECT_EQ(a.result.box, b.result.box);
  EXPECT_EQ(a.result.key, b.result.key);
  EXPECT_EQ(a.result.scalar, b.result.scalar);
  // Another root: every derived value differs.
  const RequestKeys c = deriveRequestKeys(freshRoot());
  EXPECT_NE(a.requestId, c.requestId);
  EXPECT_NE(a.request.box, c.request.box);
  EXPECT_NE(a.result.key, c.result.key);
}

// Two boxes of one client share nothing visible: different IDs with no common prefix
// beyond chance, different keys; the box ID is the blinded scalar's public key.
TEST(AnonCapability, BoxIdsOfOneClientAreUnlinkable) {
  int sharedBytes = 0;
  for (int i = 0; i < 64; ++i) {
    const RequestKeys k = deriveRequestKeys(freshRoot());
    ASSERT_NE(k.request.box, k.result.box);
    ASSERT_NE(k.request.key, k.result.key);
    ASSERT_NE(k.request.scalar, k.result.scalar);
    size_t prefix = 0;
    while (prefix < 32 && k.request.box[prefix] == k.result.box[prefix]) ++prefix;
    sharedBytes += int(prefix);
  }
  // A common first byte happens by chance with probability 1/256 per pair: 64 pairs share
  // a handful of bytes at most, where linked IDs (same key, counter suffix) would share 31.
  EXPECT_LE(sharedBytes, 4);
}

TEST(AnonCapability, SignaturesVerifyAndForgeriesAreRefused) {
  const RequestKeys k = deriveRequestKeys(freshRoot());
  const Bytes content = {1, 2, 3, 4, 5};
  const Signature sig = signWrite(k.result, content);
  EXPECT_TRUE(verifyWrite(k.result.box, content, sig));
  // Signed by the other box's scalar: not valid for this box.
  EXPECT_FALSE(verifyWrite(k.result.box, content, signWrite(k.request, content)));
  // Other content, flipped bits in R and in S.
  EXPECT_FALSE(verifyWrite(k.result.box, Bytes{1, 2, 3, 4, 6}, sig));
  Signature badR = sig, badS = sig;
  badR[3] ^= 1;
  badS[40] ^= 1;
  EXPECT_FALSE(verifyWrite(k.result.box, content, badR));
  EXPECT_FALSE(verifyWrite(k.result.box, content, badS));
  // A write capability with the right box ID but a scalar of another client.
  WriteCap forged = k.result;
  forged.scalar = deriveRequestKeys(freshRoot()).result.scalar;
  EXPECT_FALSE(verifyWrite(k.result.box, content, signWrite(forged, content)));
  // Deterministic nonces: the same message signs the same way.
  EXPECT_EQ(sig, signWrite(k.result, content));
}

TEST(AnonCapability, SealedPayloadsRefuseTamperingWrongKeysAndOtherBoxes) {
  const RequestKeys k = deriveRequestKeys(freshRoot());
  const Bytes msg = {'h', 'e', 'l', 'l', 'o'};
  const Bytes box = sealPayload(k.result.read(), msg);
  EXPECT_EQ(openPayload(k.result.read(), box), msg);
  Bytes tampered = box;
  tampered[tampered.size() - 3] ^= 0x10;
  EXPECT_THROW(openPayload(k.result.read(), tampered), Error);
  ReadCap wrongKey = k.result.read();
  wrongKey.key[0] ^= 1;
  EXPECT_THROW(openPayload(wrongKey, box), Error);
  // The box ID is the associated data: the same bytes moved to another box do not open.
  ReadCap otherBox{k.request.box, k.result.key};
  EXPECT_THROW(openPayload(otherBox, box), Error);
  EXPECT_THROW(openPayload(k.result.read(), Bytes(10, 0)), Error);
  // Fresh nonces: sealing twice gives different boxes.
  EXPECT_NE(box, sealPayload(k.result.read(), msg));
}

TEST(AnonCapability, JobsOpenOnlyWithTheWorkersKey) {
  std::array<uint8_t, 32> seed{}, seed2{};
  seed[0] = 7;
  seed2[0] = 8;
  const WorkerKey w = workerKeyFromSeed(seed), other = workerKeyFromSeed(seed2);
  EXPECT_EQ(w.publicKey, workerKeyFromSeed(seed).publicKey);
  const Bytes msg = {9, 8, 7};
  const Bytes sealed = sealToWorker(w.publicKey, msg);
  EXPECT_EQ(openAsWorker(w, sealed), msg);
  EXPECT_THROW(openAsWorker(other, sealed), Error);
  Bytes bad = sealed;
  bad.back() ^= 1;
  EXPECT_THROW(openAsWorker(w, bad), Error);
}

TEST(AnonCapability, HexRoundTripsAndRejectsGarbage) {
  const RequestId id = deriveRequestKeys(freshRoot()).requestId;
  EXPECT_EQ((fromHexFixed<16>(toHex(id), "id")), id);
  EXPECT_THROW(fromHex("zz", "x"), Error);
  EXPECT_THROW(fromHex("abc", "x"), Error);
  EXPECT_THROW((fromHexFixed<16>("abcd", "x")), Error);
}

}  // namespace
}  // namespace anvil::anon
