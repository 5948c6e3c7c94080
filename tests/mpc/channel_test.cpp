// Tests of the mpc TCP channel (runtime/mpc/channel.*) over real loopback sockets: round
// trips, exact stats, the key check at connect, tampering and truncation by a proxy in the
// middle, timeouts, protocol errors and aborts.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <random>
#include <thread>

#include "anvil/error.h"
#include "runtime/mpc/channel.h"

namespace anvil::mpc {
namespace {

using Clock = std::chrono::steady_clock;

std::string addressOf(int port) { return "127.0.0.1:" + std::to_string(port); }

std::vector<uint8_t> pattern(size_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = uint8_t(rng());
  return v;
}

// Runs `server` on a thread against a fresh listener and returns the client's channel
// and the future of the server's work.
struct Pair {
  std::unique_ptr<Listener> listener;
  std::vector<uint8_t> pk, sk;
};

Pair makePair(const ChannelOptions& options = {}) {
  Pair p;
  p.listener = std::make_unique<Listener>("127.0.0.1:0", options);
  std::tie(p.pk, p.sk) = makeServerKeyPair();
  return p;
}

// Expects `f` to throw anvil::Error with kRuntimeError and a message containing `needle`.
template <typename F>
std::string expectError(F&& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kRuntimeError) << e.what();
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << "message: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an error containing '" << needle << "'";
  return "";
}

TEST(MpcChannel, RoundTripManySizesBothWays) {
  Pair p = makePair();
  const std::vector<size_t> sizes = {0, 1, 7, 64, 1000, 65536, 65537, 3 << 20, 1, 0, 200000, 6 << 20};
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto got = t->receive(MessageType::kLayer, sizes[i]);
      EXPECT_EQ(got, pattern(sizes[i], uint32_t(i))) << "message " << i;
      // Answer with a different content and size, so each direction carries its own bytes.
      auto answer = pattern(sizes[sizes.size() - 1 - i], uint32_t(1000 + i));
      t->send(MessageType::kOutputShare, answer.data(), answer.size());
    }
    t->receive(MessageType::kDone, 0);
    return t->stats();
  });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk);
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto msg = pattern(sizes[i], uint32_t(i));
    c->send(MessageType::kLayer, msg.data(), msg.size());
    auto answer = c->receive(MessageType::kOutputShare);
    EXPECT_EQ(answer, pattern(sizes[sizes.size() - 1 - i], uint32_t(1000 + i))) << "answer " << i;
  }
  c->send(MessageType::kDone, nullptr, 0);
  c.reset();  // flushes kDone
  TransportStats s = server.get();
  uint64_t total = 0;
  for (size_t n : sizes) total += n;
  EXPECT_EQ(s.payloadBytesReceived, total);
  EXPECT_EQ(s.payloadBytesSent, total);
  EXPECT_EQ(s.messagesReceived, sizes.size() + 1);
  EXPECT_EQ(s.messagesSent, sizes.size());
}

// Both sides send several MiB before either receives: the channel must read while it
// writes, or both block on full socket buffers.
TEST(MpcChannel, SimultaneousLargeSendsDoNotDeadlock) {
  ChannelOptions options;
  options.timeoutMs = 5000;
  Pair p = makePair(options);
  const size_t n = 16 << 20;
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    auto mine = pattern(n, 1);
    t->send(MessageType::kWeightMask, mine.data(), mine.size());
    auto got = t->receive(MessageType::kInputShare, n);
    EXPECT_EQ(got, pattern(n, 2));
    t->send(MessageType::kDone, nullptr, 0);
  });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk, options);
  auto mine = pattern(n, 2);
  c->send(MessageType::kInputShare, mine.data(), mine.size());
  EXPECT_EQ(c->receive(MessageType::kWeightMask, n), pattern(n, 1));
  c->receive(MessageType::kDone, 0);
  server.get();
}

TEST(MpcChannel, StatsAreExact) {
  Pair p = makePair();
  const std::vector<size_t> sizes = {0, 5, 1000, 70000};
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    for (size_t n : sizes) t->receive(MessageType::kLayer, n);
    auto back = pattern(300, 9);
    t->send(MessageType::kOutputShare, back.data(), back.size());
    t->receive(MessageType::kDone, 0);
    return t->stats();
  });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk);
  TransportStats afterHandshake = c->stats();
  EXPECT_EQ(afterHandshake.payloadBytesSent, 0u);
  EXPECT_EQ(afterHandshake.messagesSent, 0u);
  EXPECT_GT(afterHandshake.wireBytesSent, 0u);      // the key exchange is on the wire
  EXPECT_GT(afterHandshake.wireBytesReceived, 0u);
  for (size_t n : sizes) {
    auto m = pattern(n, uint32_t(n));
    c->send(MessageType::kLayer, m.data(), m.size());
  }
  c->receive(MessageType::kOutputShare, 300);
  c->send(MessageType::kDone, nullptr, 0);
  TransportStats cs = c->stats();
  c.reset();
  TransportStats ss = server.get();

  // Per message: a 4-byte length, a 4-byte tag and the 17-byte secretstream seal.
  const uint64_t perMessage = 4 + 4 + 17;
  uint64_t payload = 0;
  for (size_t n : sizes) payload += n;
  EXPECT_EQ(cs.payloadBytesSent, payload);
  EXPECT_EQ(cs.payloadBytesReceived, 300u);
  EXPECT_EQ(cs.messagesSent, sizes.size() + 1);
  EXPECT_EQ(cs.messagesReceived, 1u);
  EXPECT_EQ(cs.wireBytesSent, afterHandshake.wireBytesSent + payload + (sizes.size() + 1) * perMessage);
  EXPECT_EQ(cs.wireBytesReceived, afterHandshake.wireBytesReceived + 300 + perMessage);
  // The two ends agree on every byte.
  EXPECT_EQ(ss.payloadBytesReceived, cs.payloadBytesSent);
  EXPECT_EQ(ss.payloadBytesSent, cs.payloadBytesReceived);
  EXPECT_EQ(ss.wireBytesReceived, cs.wireBytesSent);
  EXPECT_EQ(ss.wireBytesSent, cs.wireBytesReceived);
  EXPECT_EQ(ss.messagesReceived, cs.messagesSent);
  EXPECT_EQ(ss.messagesSent, cs.messagesReceived);
}

TEST(MpcChannel, WrongServerKeyIsRefusedAtConnect) {
  ChannelOptions options;
  options.timeoutMs = 3000;
  Pair p = makePair(options);
  auto [otherPk, otherSk] = makeServerKeyPair();
  auto server = std::async(std::launch::async, [&] {
    return expectError([&] { p.listener->accept(p.pk, p.sk); }, "another server key");
  });
  expectError([&] { connectChannel(addressOf(p.listener->port()), otherPk, options); },
              "the server does not hold the key of this engine");
  server.get();
}

// An impostor server that answers like a real one but holds another secret key: the
// client must not accept its stream.
TEST(MpcChannel, ServerWithOtherSecretKeyIsRefused) {
  ChannelOptions options;
  options.timeoutMs = 3000;
  Pair p = makePair(options);
  auto [impostorPk, impostorSk] = makeServerKeyPair();
  auto server = std::async(std::launch::async, [&] {
    // The impostor knows the real public key, not the secret key that goes with it.
    try {
      p.listener->accept(p.pk, impostorSk);
    } catch (const Error&) {
    }
  });
  expectError([&] { connectChannel(addressOf(p.listener->port()), p.pk, options); },
              "the server does not hold the key of this engine");
  server.get();
}

TEST(MpcChannel, MalformedKeysAreRejected) {
  Pair p = makePair();
  try {
    connectChannel(addressOf(p.listener->port()), std::vector<uint8_t>(5));
    FAIL() << "a 5-byte key was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("32-byte"), std::string::npos) << e.what();
  }
}

// A TCP proxy between client and server that forwards bytes both ways and lets a test
// alter the server-bound stream: `mutate(offset, byte)` sees each byte at its offset in
// that stream and returns false to close both connections there.
class Proxy {
 public:
  using Mutate = std::function<bool(uint64_t offset, uint8_t& byte)>;
  Proxy(int targetPort, Mutate toServer) : mutate_(std::move(toServer)) {
    listenFd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listenFd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
    listen(listenFd_, 1);
    socklen_t len = sizeof a;
    getsockname(listenFd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this, targetPort] { run(targetPort); });
  }
  ~Proxy() {
    stop_ = true;
    thread_.join();
    close(listenFd_);
  }
  int port() const { return port_; }

 private:
  void run(int targetPort) {
    pollfd lp{listenFd_, POLLIN, 0};
    if (poll(&lp, 1, 5000) <= 0) return;
    int client = accept(listenFd_, nullptr, nullptr);
    int server = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(uint16_t(targetPort));
    if (connect(server, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return;
    uint64_t offset = 0;
    uint8_t buf[65536];
    bool open = true;
    while (open && !stop_) {
      pollfd fds[2] = {{client, POLLIN, 0}, {server, POLLIN, 0}};
      if (poll(fds, 2, 100) <= 0) continue;
      if (fds[0].revents) {
        ssize_t n = read(client, buf, sizeof buf);
        if (n <= 0) break;
        ssize_t keep = n;
        for (ssize_t i = 0; i < n; ++i, ++offset)
          if (!mutate_(offset, buf[i])) {
            keep = i;
            open = false;
            break;
          }
        if (keep > 0 && write(server, buf, size_t(keep)) != keep) break;
      }
      if (open && fds[1].revents) {
        ssize_t n = read(server, buf, sizeof buf);
        if (n <= 0 || write(client, buf, size_t(n)) != n) break;
      }
    }
    shutdown(client, SHUT_RDWR);
    shutdown(server, SHUT_RDWR);
    close(client);
    close(server);
  }

  int listenFd_ = -1, port_ = 0;
  Mutate mutate_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The client's handshake is 8 (magic) + 32 (key) + 24 (stream header) + the sealed
// confirmation; the first frame after it starts at the offset measured here.
uint64_t clientHandshakeBytes() {
  Pair p = makePair();
  auto server = std::async(std::launch::async, [&] { return p.listener->accept(p.pk, p.sk)->stats(); });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk);
  EXPECT_EQ(server.get().wireBytesReceived, c->stats().wireBytesSent);
  return c->stats().wireBytesSent;
}

TEST(MpcChannel, FlippedByteFailsAuthentication) {
  ChannelOptions options;
  options.timeoutMs = 3000;
  Pair p = makePair(options);
  const uint64_t frameStart = clientHandshakeBytes();
  // Flip a byte inside the first frame's sealed body (after its 4-byte length).
  Proxy proxy(p.listener->port(), [&](uint64_t offset, uint8_t& b) {
    if (offset == frameStart + 4 + 10) b ^= 0x20;
    return true;
  });
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    return expectError([&] { t->receive(MessageType::kLayer, 100); }, "authentication failed");
  });
  auto c = connectChannel(addressOf(proxy.port()), p.pk, options);
  auto m = pattern(100, 3);
  c->send(MessageType::kLayer, m.data(), m.size());
  // The server fails before answering: the client sees the connection close.
  expectError([&] { c->receive(MessageType::kDone, 0); }, "closed");
  server.get();
}

TEST(MpcChannel, TamperedFrameAbortReachesThePeer) {
  ChannelOptions options;
  options.timeoutMs = 3000;
  Pair p = makePair(options);
  const uint64_t frameStart = clientHandshakeBytes();
  Proxy proxy(p.listener->port(), [&](uint64_t offset, uint8_t& b) {
    if (offset == frameStart + 4 + 30) b ^= 1;
    return true;
  });
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    try {
      t->receive(MessageType::kLayer, 100);
    } catch (const Error& e) {
      t->abort(std::string("server: ") + e.what());
    }
  });
  auto c = connectChannel(addressOf(proxy.port()), p.pk, options);
  auto m = pattern(100, 3);
  c->send(MessageType::kLayer, m.data(), m.size());
  expectError([&] { c->receive(MessageType::kOutputShare); }, "authentication failed");
  server.get();
}

TEST(MpcChannel, TruncatedFrameIsAnErrorNotAHang) {
  ChannelOptions options;
  options.timeoutMs = 5000;
  Pair p = makePair(options);
  const uint64_t frameStart = clientHandshakeBytes();
  // Forward the frame's length and 50 bytes of its body, then close both connections.
  Proxy proxy(p.listener->port(), [&](uint64_t offset, uint8_t&) { return offset < frameStart + 4 + 50; });
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    auto start = Clock::now();
    expectError([&] { t->receive(MessageType::kLayer, 1000); }, "truncated frame");
    return Clock::now() - start;
  });
  auto c = connectChannel(addressOf(proxy.port()), p.pk, options);
  auto m = pattern(1000, 3);
  c->send(MessageType::kLayer, m.data(), m.size());
  try {
    c->receive(MessageType::kDone, 0);
  } catch (const Error&) {
  }
  EXPECT_LT(server.get(), std::chrono::milliseconds(options.timeoutMs)) << "the truncation waited for the timeout";
}

TEST(MpcChannel, SilentPeerTimesOut) {
  ChannelOptions options;
  options.timeoutMs = 300;
  Pair p = makePair(options);
  std::promise<void> done;
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    done.get_future().wait();  // connected, never sends
  });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk, options);
  auto start = Clock::now();
  expectError([&] { c->receive(MessageType::kLayer); }, "timeout");
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(250));
  EXPECT_LT(waited, std::chrono::milliseconds(2000));
  done.set_value();
  server.get();
}

TEST(MpcChannel, AcceptTimesOutWithoutClient) {
  ChannelOptions options;
  options.timeoutMs = 200;
  Pair p = makePair(options);
  auto start = Clock::now();
  expectError([&] { p.listener->accept(p.pk, p.sk); }, "no client connected");
  EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(2000));
}

// A client that connects and never speaks must not hold the server in accept().
TEST(MpcChannel, SilentClientTimesOutInHandshake) {
  ChannelOptions options;
  options.timeoutMs = 300;
  Pair p = makePair(options);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(uint16_t(p.listener->port()));
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  expectError([&] { p.listener->accept(p.pk, p.sk); }, "timeout");
  close(fd);
}

TEST(MpcChannel, NotAnAnvilClientIsRefused) {
  ChannelOptions options;
  options.timeoutMs = 2000;
  Pair p = makePair(options);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(uint16_t(p.listener->port()));
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  std::string junk(200, 'x');
  ASSERT_EQ(write(fd, junk.data(), junk.size()), ssize_t(junk.size()));
  expectError([&] { p.listener->accept(p.pk, p.sk); }, "bad hello magic");
  close(fd);
}

TEST(MpcChannel, OutOfOrderTagAndWrongSizeAreErrors) {
  Pair p = makePair();
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    auto m = pattern(64, 1);
    t->send(MessageType::kOutputShare, m.data(), m.size());
    t->send(MessageType::kLayer, m.data(), m.size());
    t->send(MessageType::kLayer, m.data(), m.size());
    t->receive(MessageType::kDone, 0);
  });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk);
  std::string what = expectError([&] { c->receive(MessageType::kLayer); }, "expected a kLayer message, got kOutputShare");
  expectError([&] { c->receive(MessageType::kLayer, 63); }, "expected a kLayer message of 63 bytes, got 64 bytes");
  // The stream stays in step: the next frame is read whole.
  EXPECT_EQ(c->receive(MessageType::kLayer, 64), pattern(64, 1));
  c->send(MessageType::kDone, nullptr, 0);
  c.reset();
  server.get();
}

TEST(MpcChannel, AbortTellsThePeerWhy) {
  Pair p = makePair();
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    t->receive(MessageType::kHello);
    t->abort("offline material of another engine (program 1234)");
    // After abort this side refuses to go on, naming why.
    expectError([&] { t->send(MessageType::kLayer, nullptr, 0); }, "this side aborted");
  });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk);
  c->send(MessageType::kHello, "hi", 2);
  expectError([&] { c->receive(MessageType::kWeightMask); },
              "aborted: offline material of another engine (program 1234)");
  server.get();
}

TEST(MpcChannel, PeerClosingIsAnError) {
  Pair p = makePair();
  auto server = std::async(std::launch::async, [&] { p.listener->accept(p.pk, p.sk); });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk);
  server.get();  // the server's transport is destroyed: its socket closes
  expectError([&] { c->receive(MessageType::kLayer); }, "the peer closed the connection");
}

TEST(MpcChannel, OversizedFramesAreRefused) {
  ChannelOptions options;
  options.maxMessageBytes = 1000;
  options.timeoutMs = 3000;
  Pair p = makePair(options);
  ChannelOptions large = options;
  large.maxMessageBytes = 1 << 20;
  auto server = std::async(std::launch::async, [&] {
    auto t = p.listener->accept(p.pk, p.sk);
    return expectError([&] { t->receive(MessageType::kLayer); }, "a frame of 2021 bytes");
  });
  auto c = connectChannel(addressOf(p.listener->port()), p.pk, large);
  auto m = pattern(2000, 1);
  c->send(MessageType::kLayer, m.data(), m.size());
  c.reset();
  server.get();
  // And the sender refuses to build one over its own limit.
  Pair q = makePair(options);
  auto server2 = std::async(std::launch::async, [&] { return q.listener->accept(q.pk, q.sk); });
  auto c2 = connectChannel(addressOf(q.listener->port()), q.pk, options);
  expectError([&] { c2->send(MessageType::kLayer, m.data(), m.size()); }, "the channel's maximum is 1000");
  server2.get();
}

TEST(MpcChannel, ConnectToNobodyFailsAfterRetrying) {
  // A port that was free a moment ago and has no listener now.
  int port;
  {
    Listener probe("127.0.0.1:0");
    port = probe.port();
  }
  ChannelOptions options;
  options.connectRetryMs = 400;
  auto [pk, sk] = makeServerKeyPair();
  auto start = Clock::now();
  expectError([&] { connectChannel(addressOf(port), pk, options); }, "cannot connect to 127.0.0.1:");
  auto waited = Clock::now() - start;
  EXPECT_GE(waited, std::chrono::milliseconds(350));
  EXPECT_LT(waited, std::chrono::milliseconds(3000));
}

TEST(MpcChannel, ClientWaitsForAServerThatStartsLate) {
  int port;
  {
    Listener probe("127.0.0.1:0");
    port = probe.port();
  }
  auto [pk, sk] = makeServerKeyPair();
  auto server = std::async(std::launch::async, [&, pk = pk, sk = sk] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Listener late(addressOf(port));
    auto t = late.accept(pk, sk);
    t->send(MessageType::kDone, nullptr, 0);
  });
  ChannelOptions options;
  options.connectRetryMs = 5000;
  auto c = connectChannel(addressOf(port), pk, options);
  c->receive(MessageType::kDone, 0);
  server.get();
}

TEST(MpcChannel, BadAddressesAreRejected) {
  auto [pk, sk] = makeServerKeyPair();
  for (std::string bad : {"127.0.0.1", "127.0.0.1:", "127.0.0.1:99999", ":80", "127.0.0.1:x"}) {
    try {
      connectChannel(bad, pk);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument) << bad << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace anvil::mpc
