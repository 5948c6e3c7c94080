// The stores, each backend against the same contract: SQLite on a temp file and Redis on
// a redis-server started on a free loopback port.
#include <gtest/gtest.h>

#include "runtime/anon/store.h"
#include "anvil/error.h"
#include "tests/anon/test_util.h"

namespace anvil::anon {
namespace {

using testing::RedisServer;

void checkContract(Store& s) {
  const RequestKeys k = deriveRequestKeys(freshRoot());
  const Bytes content = sealPayload(k.request.read(), Bytes{1, 2, 3});
  // A write signed by another box's key is refused; nothing is stored.
  EXPECT_THROW(s.putBox(k.request.box, content, signWrite(k.result, content)), Error);
  EXPECT_FALSE(s.getBox(k.request.box).has_value());
  s.putBox(k.request.box, content, signWrite(k.request, content));
  auto got = s.getBox(k.request.box);
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->content, content);
  EXPECT_TRUE(verifyWrite(k.request.box, got->content, got->sig));
  // Write-once.
  const Bytes other = sealPayload(k.request.read(), Bytes{4});
  EXPECT_THROW(s.putBox(k.request.box, other, signWrite(k.request, other)), Error);
  EXPECT_EQ(s.getBox(k.request.box)->content, content);

  // Queue: FIFO, a claimed job is not claimed by another worker while leased.
  const int64_t j1 = s.enqueue(Bytes{'a'}), j2 = s.enqueue(Bytes{'b'});
  auto c1 = s.claim("w1", 60);
  ASSERT_TRUE(c1.has_value());
  EXPECT_EQ(c1->id, j1);
  EXPECT_EQ(c1->sealed, Bytes{'a'});
  EXPECT_EQ(c1->attempts, 1);
  auto c2 = s.claim("w2", 60);
  ASSERT_TRUE(c2.has_value());
  EXPECT_EQ(c2->id, j2);
  EXPECT_FALSE(s.claim("w5", 60).has_value());  // (w2 itself would take its own claim back)
  EXPECT_EQ(s.job(j1).state, "claimed");
  // The same worker after a restart takes its own claim back at once.
  auto again = s.claim("w1", 60);
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->id, j1);
  EXPECT_EQ(again->attempts, 2);
  // An expired lease is taken by another worker.
  const int64_t j3 = s.enqueue(Bytes{'c'});
  auto c3 = s.claim("w3", -1);  // already expired
  ASSERT_TRUE(c3.has_value());
  EXPECT_EQ(c3->id, j3);
  auto stolen = s.claim("w4", 60);
  ASSERT_TRUE(stolen.has_value());
  EXPECT_EQ(stolen->id, j3);

  // complete(): result box + served + done in one step; a second completion of the same
  // request or into the same box writes nothing.
  const Bytes result = sealPayload(k.result.read(), Bytes{42});
  const int64_t boxesBefore = s.countBoxes();
  EXPECT_FALSE(s.served(k.requestId));
  EXPECT_THROW(s.complete(j1, k.result.box, result, signWrite(k.request, result), k.requestId), Error);
  EXPECT_EQ(s.complete(j1, k.result.box, result, signWrite(k.result, result), k.requestId), Completion::kWritten);
  EXPECT_TRUE(s.served(k.requestId));
  EXPECT_EQ(s.job(j1).state, "done");
  EXPECT_EQ(s.countBoxes(), boxesBefore + 1);
  EXPECT_EQ(s.complete(j2, k.result.box, result, signWrite(k.result, result), k.requestId), Completion::kBoxExists);
  const RequestKeys k2 = deriveRequestKeys(freshRoot());
  const Bytes r2 = sealPayload(k2.result.read(), Bytes{1});
  EXPECT_EQ(s.complete(j2, k2.result.box, r2, signWrite(k2.result, r2), k.requestId), Completion::kReplay);
  EXPECT_FALSE(s.getBox(k2.result.box).has_value());
  EXPECT_EQ(s.countBoxes(), boxesBefore + 1);
  s.refuse(j2, "replayed request");
  EXPECT_EQ(s.job(j2).state, "refused");
  EXPECT_EQ(s.job(j2).error, "replayed request");
  // Done and refused jobs are never claimed again.
  auto rest = s.claim("w9", 60);
  EXPECT_TRUE(!rest.has_value() || rest->id == j3);

  EXPECT_FALSE(s.getMeta("worker").has_value());
  s.setMeta("worker", "{\"a\":1}");
  s.setMeta("worker", "{\"a\":2}");
  EXPECT_EQ(*s.getMeta("worker"), "{\"a\":2}");
  EXPECT_THROW(s.job(999999), Error);
}

TEST(AnonStore, SqliteContract) {
  const auto dir = testing::tempDir("store");
  {
    auto s = openStore("sqlite:" + (dir / "s.db").string());
    checkContract(*s);
  }
  // Everything committed is there for the next process.
  auto s = openStore("sqlite:" + (dir / "s.db").string());
  EXPECT_EQ(s->countBoxes(), 2);
  std::filesystem::remove_all(dir);
}

TEST(AnonStore, RedisContract) {
  if (!testing::haveRedisServer()) GTEST_SKIP() << "redis-server is not installed (apt-get install redis-server)";
  RedisServer server;
  auto s = openStore(server.spec());
  checkContract(*s);
}

TEST(AnonStore, BadSpecsAndUnreachableServersAreErrors) {
  EXPECT_THROW(openStore("postgres://x"), Error);
  EXPECT_THROW(openStore("redis://127.0.0.1"), Error);
  EXPECT_THROW(openStore("redis://127.0.0.1:notaport"), Error);
  EXPECT_THROW(openStore("redis://127.0.0.1:" + std::to_string(testing::freePort())), Error);
  EXPECT_THROW(openStore("sqlite:/nonexistent/dir/s.db"), Error);
}

}  // namespace
}  // namespace anvil::anon
