// The mpc mode's TCP channel (channel.h): POSIX sockets with poll() deadlines, a one
// round-trip crypto_kx handshake against the engine's static server key, and
// crypto_secretstream_xchacha20poly1305 frames in each direction.
#include "runtime/mpc/channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sodium.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>
#include <thread>

#include "anvil/error.h"

namespace anvil::mpc {
namespace {

using Clock = std::chrono::steady_clock;

// Wire layout. The client opens with kHelloMagic, its ephemeral public key, the header of
// its secretstream and one sealed confirmation frame; the server answers with a status
// byte, its header and its own sealed confirmation. A confirmation that fails to open
// means the two ends derived different session keys: the server lacks the secret key
// matching the public key the client was built with.
constexpr char kHelloMagic[8] = {'A', 'N', 'V', 'L', 'M', 'P', 'C', '1'};
constexpr char kConfirmClient[] = "anvil mpc channel: client confirms";
constexpr char kConfirmServer[] = "anvil mpc channel: server confirms";
constexpr uint8_t kServerAccepts = 1, kServerRejects = 0;
constexpr size_t kLengthBytes = 4, kTagBytes = 4;
constexpr size_t kSealBytes = crypto_secretstream_xchacha20poly1305_ABYTES;
constexpr size_t kHeaderBytes = crypto_secretstream_xchacha20poly1305_HEADERBYTES;
// Buffered sends are written out once they pass this, so a long run of sends without a
// receive does not grow the buffer without bound.
constexpr size_t kFlushThreshold = 1 << 20;

void initSodium() {
  static std::once_flag once;
  std::call_once(once, [] {
    ANVIL_CHECK(sodium_init() >= 0, ErrorCode::kRuntimeError, "libsodium failed to initialize");
  });
}

const char* typeName(uint32_t type) {
  switch (static_cast<MessageType>(type)) {
    case MessageType::kHello: return "kHello";
    case MessageType::kWeightMask: return "kWeightMask";
    case MessageType::kInputShare: return "kInputShare";
    case MessageType::kLayer: return "kLayer";
    case MessageType::kOutputShare: return "kOutputShare";
    case MessageType::kDone: return "kDone";
    case MessageType::kError: return "kError";
  }
  return "an unknown tag";
}

std::string errnoText() { return std::strerror(errno); }

void putU32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = uint8_t(v >> (8 * i));
}
uint32_t getU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= uint32_t(p[i]) << (8 * i);
  return v;
}

struct Endpoint {
  sockaddr_in addr{};
  std::string text;
};

Endpoint parseAddress(const std::string& address) {
  auto colon = address.rfind(':');
  ANVIL_CHECK(colon != std::string::npos && colon > 0 && colon + 1 < address.size(), ErrorCode::kInvalidArgument,
              "expected an address HOST:PORT (e.g. 127.0.0.1:5000), got '", address, "'");
  std::string host = address.substr(0, colon), portText = address.substr(colon + 1);
  char* end = nullptr;
  long port = std::strtol(portText.c_str(), &end, 10);
  ANVIL_CHECK(*end == '\0' && port >= 0 && port <= 65535, ErrorCode::kInvalidArgument,
              "expected a port number 0..65535 in '", address, "', got '", portText, "'");
  Endpoint ep;
  ep.text = address;
  ep.addr.sin_family = AF_INET;
  ep.addr.sin_port = htons(uint16_t(port));
  if (inet_pton(AF_INET, host.c_str(), &ep.addr.sin_addr) != 1) {
    addrinfo hints{}, *res = nullptr;
    hints.ai_family = AF_INET;
    hints.ai_socktype = SOCK_STREAM;
    int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    ANVIL_CHECK(rc == 0 && res, ErrorCode::kInvalidArgument, "cannot resolve host '", host, "' of '", address,
                "' to an IPv4 address: ", gai_strerror(rc));
    ep.addr.sin_addr = reinterpret_cast<sockaddr_in*>(res->ai_addr)->sin_addr;
    freeaddrinfo(res);
  }
  return ep;
}

void setNonBlocking(int fd) {
  int flags = fcntl(fd, F_GETFL, 0);
  ANVIL_CHECK(flags >= 0 && fcntl(fd, F_SETFL, flags | O_NONBLOCK) == 0, ErrorCode::kRuntimeError,
              "cannot make a socket non-blocking: ", errnoText());
}

void setNoDelay(int fd) {
  int one = 1;
  // Protocol rounds are small request/answer pairs: Nagle's delay would add to every round.
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// The connected, keyed channel. Sends are sealed into outBuf_ and written when the side
// turns to receive (or the buffer grows); while a write waits for the peer, incoming
// bytes are read into inBuf_, so two sides sending large messages at once never deadlock
// on full socket buffers.
class Channel final : public Transport {
 public:
  Channel(int fd, std::string peer, const ChannelOptions& options)
      : fd_(fd), peer_(std::move(peer)), options_(options) {
    // The length prefix is 32 bits.
    options_.maxMessageBytes = std::min<size_t>(options_.maxMessageBytes, UINT32_MAX - kTagBytes - kSealBytes);
  }
  ~Channel() override {
    if (fd_ >= 0) {
      try {
        flush();
      } catch (const Error&) {
        // The peer is gone; nothing more to tell it.
      }
      ::close(fd_);
    }
  }

  // --- handshake -----------------------------------------------------------------------
  void clientHandshake(const std::vector<uint8_t>& serverPublicKey) {
    uint8_t pk[crypto_kx_PUBLICKEYBYTES], sk[crypto_kx_SECRETKEYBYTES];
    crypto_kx_keypair(pk, sk);
    uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
    ANVIL_CHECK(crypto_kx_client_session_keys(rx, tx, pk, sk, serverPublicKey.data()) == 0,
                ErrorCode::kRuntimeError, "the server public key of the engine is not a valid key (", peer_, ")");
    sodium_memzero(sk, sizeof sk);
    uint8_t header[kHeaderBytes];
    crypto_secretstream_xchacha20poly1305_init_push(&push_, header, tx);
    outBuf_.insert(outBuf_.end(), kHelloMagic, kHelloMagic + sizeof kHelloMagic);
    outBuf_.insert(outBuf_.end(), pk, pk + sizeof pk);
    outBuf_.insert(outBuf_.end(), header, header + sizeof header);
    sealFrame(0, kConfirmClient, sizeof kConfirmClient);
    flush();

    uint8_t status = 0;
    readHandshake(&status, 1, "the server's handshake answer");
    ANVIL_CHECK(status == kServerAccepts, ErrorCode::kRuntimeError, "connection to ", peer_,
                " refused at the key exchange: the server does not hold the key of this engine (the public engine "
                "belongs to another server engine)");
    uint8_t serverHeader[kHeaderBytes];
    readHandshake(serverHeader, sizeof serverHeader, "the server's stream header");
    ANVIL_CHECK(crypto_secretstream_xchacha20poly1305_init_pull(&pull_, serverHeader, rx) == 0,
                ErrorCode::kRuntimeError, "connection to ", peer_, ": invalid stream header from the server");
    sodium_memzero(rx, sizeof rx);
    sodium_memzero(tx, sizeof tx);
    ANVIL_CHECK(confirmationOpens(kConfirmServer, sizeof kConfirmServer), ErrorCode::kRuntimeError,
                "connection to ", peer_,
                " refused at the key exchange: the server does not hold the key of this engine (its key "
                "confirmation failed to authenticate)");
    stats_.wireBytesSent = handshakeSent_;
    stats_.wireBytesReceived = handshakeReceived_;
  }

  void serverHandshake(const std::vector<uint8_t>& serverPublicKey, const std::vector<uint8_t>& serverSecretKey) {
    uint8_t hello[sizeof kHelloMagic + crypto_kx_PUBLICKEYBYTES + kHeaderBytes];
    readHandshake(hello, sizeof hello, "the client's hello");
    ANVIL_CHECK(std::memcmp(hello, kHelloMagic, sizeof kHelloMagic) == 0, ErrorCode::kRuntimeError,
                "the client at ", peer_, " does not speak the anvil mpc channel (bad hello magic)");
    const uint8_t* clientPk = hello + sizeof kHelloMagic;
    const uint8_t* clientHeader = clientPk + crypto_kx_PUBLICKEYBYTES;
    uint8_t rx[crypto_kx_SESSIONKEYBYTES], tx[crypto_kx_SESSIONKEYBYTES];
    ANVIL_CHECK(crypto_kx_server_session_keys(rx, tx, serverPublicKey.data(), serverSecretKey.data(), clientPk) == 0,
                ErrorCode::kRuntimeError, "the client at ", peer_, " sent an invalid public key");
    crypto_secretstream_xchacha20poly1305_init_pull(&pull_, clientHeader, rx);
    if (!confirmationOpens(kConfirmClient, sizeof kConfirmClient)) {
      // Tell the client in the clear: it cannot read anything sealed under our keys.
      uint8_t no = kServerRejects;
      outBuf_.push_back(no);
      try {
        flush();
      } catch (const Error&) {
      }
      ANVIL_THROW(ErrorCode::kRuntimeError, "the client at ", peer_,
                  " was built for another server key: its key confirmation failed to authenticate (the public "
                  "engine it loaded does not belong to this server engine)");
    }
    uint8_t header[kHeaderBytes];
    crypto_secretstream_xchacha20poly1305_init_push(&push_, header, tx);
    sodium_memzero(rx, sizeof rx);
    sodium_memzero(tx, sizeof tx);
    outBuf_.push_back(kServerAccepts);
    outBuf_.insert(outBuf_.end(), header, header + sizeof header);
    sealFrame(0, kConfirmServer, sizeof kConfirmServer);
    flush();
    stats_.wireBytesSent = handshakeSent_;
    stats_.wireBytesReceived = handshakeReceived_;
  }

  // --- Transport -----------------------------------------------------------------------
  void send(MessageType type, const void* data, size_t size) override {
    ensureOpen();
    ANVIL_CHECK(size <= options_.maxMessageBytes, ErrorCode::kRuntimeError, "cannot send a ", typeName(uint32_t(type)),
                " message of ", size, " bytes to ", peer_, ": the channel's maximum is ", options_.maxMessageBytes);
    size_t before = outBuf_.size();
    sealFrame(uint32_t(type), data, size);
    stats_.payloadBytesSent += size;
    stats_.wireBytesSent += outBuf_.size() - before;
    stats_.messagesSent += 1;
    if (outBuf_.size() >= kFlushThreshold) flush();
  }

  std::vector<uint8_t> receive(MessageType type, size_t expectedSize) override {
    ensureOpen();
    flush();
    const char* want = typeName(uint32_t(type));
    std::vector<uint8_t> plain = readFrame(want);
    uint32_t tag = getU32(plain.data());
    if (static_cast<MessageType>(tag) == MessageType::kError && type != MessageType::kError) {
      std::string why(plain.begin() + kTagBytes, plain.end());
      closeSocket();
      ANVIL_THROW(ErrorCode::kRuntimeError, "the peer (", peer_, ") aborted: ", why);
    }
    ANVIL_CHECK(tag == uint32_t(type), ErrorCode::kRuntimeError, "protocol error on the channel with ", peer_,
                ": expected a ", want, " message, got ", typeName(tag), " (tag ", tag, ", ",
                plain.size() - kTagBytes, " bytes)");
    size_t size = plain.size() - kTagBytes;
    ANVIL_CHECK(expectedSize == kAnySize || size == expectedSize, ErrorCode::kRuntimeError,
                "protocol error on the channel with ", peer_, ": expected a ", want, " message of ", expectedSize,
                " bytes, got ", size, " bytes");
    stats_.payloadBytesReceived += size;
    stats_.messagesReceived += 1;
    return std::vector<uint8_t>(plain.begin() + kTagBytes, plain.end());
  }

  void abort(const std::string& why) override {
    if (fd_ < 0) return;
    try {
      // A peer that stopped reading must not hold the aborting side for a full timeout.
      options_.timeoutMs = std::min(options_.timeoutMs, 1000);
      std::string text = why.substr(0, 4096);
      sealFrame(uint32_t(MessageType::kError), text.data(), text.size());
      flush();
    } catch (const Error&) {
      // Best effort: the peer may already be gone.
    }
    closeSocket();
    aborted_ = why;
  }

  TransportStats stats() const override { return stats_; }

 private:
  void ensureOpen() const {
    ANVIL_CHECK(fd_ >= 0, ErrorCode::kRuntimeError, "the channel with ", peer_, " is closed",
                aborted_.empty() ? std::string() : " (this side aborted: " + aborted_ + ")");
  }

  void closeSocket() {
    if (fd_ >= 0) {
      ::shutdown(fd_, SHUT_RDWR);
      ::close(fd_);
      fd_ = -1;
    }
    outBuf_.clear();
  }

  // Appends [length | seal(tag | payload)] to outBuf_.
  void sealFrame(uint32_t tag, const void* data, size_t size) {
    std::vector<uint8_t> plain(kTagBytes + size);
    putU32(plain.data(), tag);
    if (size) std::memcpy(plain.data() + kTagBytes, data, size);
    size_t sealed = plain.size() + kSealBytes;
    size_t at = outBuf_.size();
    outBuf_.resize(at + kLengthBytes + sealed);
    putU32(outBuf_.data() + at, uint32_t(sealed));
    unsigned long long outLen = 0;
    crypto_secretstream_xchacha20poly1305_push(&push_, outBuf_.data() + at + kLengthBytes, &outLen, plain.data(),
                                               plain.size(), nullptr, 0,
                                               crypto_secretstream_xchacha20poly1305_TAG_MESSAGE);
    sodium_memzero(plain.data(), plain.size());
  }

  // Reads one frame and opens it: returns tag | payload. `want` names the expected message
  // for the error texts.
  std::vector<uint8_t> readFrame(const char* want) {
    uint8_t len[kLengthBytes];
    readExact(len, sizeof len, want, true);
    uint32_t sealed = getU32(len);
    size_t maxSealed = options_.maxMessageBytes + kTagBytes + kSealBytes;
    ANVIL_CHECK(sealed >= kTagBytes + kSealBytes && sealed <= maxSealed, ErrorCode::kRuntimeError,
                "protocol error on the channel with ", peer_, " while a ", want, " message was expected: a frame of ",
                sealed, " bytes (expected ", kTagBytes + kSealBytes, " .. ", maxSealed, ")");
    std::vector<uint8_t> cipher(sealed);
    readExact(cipher.data(), cipher.size(), want, false);
    std::vector<uint8_t> plain(sealed - kSealBytes);
    unsigned long long plainLen = 0;
    unsigned char tag = 0;
    bool ok = crypto_secretstream_xchacha20poly1305_pull(&pull_, plain.data(), &plainLen, &tag, cipher.data(),
                                                         cipher.size(), nullptr, 0) == 0;
    ANVIL_CHECK(ok, ErrorCode::kRuntimeError, "message authentication failed on the channel with ", peer_,
                " while a ", want, " message was expected: the frame was tampered with or forged");
    stats_.wireBytesReceived += kLengthBytes + sealed;
    return plain;
  }

  // Reads the peer's sealed confirmation; false when it does not authenticate (the two
  // ends hold different session keys). A closed or silent peer throws.
  bool confirmationOpens(const char* text, size_t size) {
    uint8_t len[kLengthBytes];
    readHandshake(len, sizeof len, "the key confirmation");
    uint32_t sealed = getU32(len);
    if (sealed != kTagBytes + size + kSealBytes) return false;
    std::vector<uint8_t> cipher(sealed), plain(sealed - kSealBytes);
    readHandshake(cipher.data(), cipher.size(), "the key confirmation");
    unsigned long long plainLen = 0;
    unsigned char tag = 0;
    return crypto_secretstream_xchacha20poly1305_pull(&pull_, plain.data(), &plainLen, &tag, cipher.data(),
                                                      cipher.size(), nullptr, 0) == 0 &&
           getU32(plain.data()) == 0 && std::memcmp(plain.data() + kTagBytes, text, size) == 0;
  }

  void readHandshake(void* dst, size_t size, const char* what) {
    readExact(dst, size, what, true);
    handshakeReceived_ += size;
  }

  // Fills dst from inBuf_ and the socket. atBoundary: nothing of this item has come yet,
  // so an EOF is a closed connection rather than a truncated frame.
  void readExact(void* dst, size_t size, const char* want, bool atBoundary) {
    auto* out = static_cast<uint8_t*>(dst);
    size_t got = 0;
    while (got < size) {
      if (inPos_ < inBuf_.size()) {
        size_t take = std::min(size - got, inBuf_.size() - inPos_);
        std::memcpy(out + got, inBuf_.data() + inPos_, take);
        inPos_ += take;
        got += take;
        if (inPos_ == inBuf_.size()) inBuf_.clear(), inPos_ = 0;
        continue;
      }
      ssize_t n = 0;
      uint8_t chunk[65536];
      if (!peerClosed_) {
        pollFor(POLLIN, want, "receive");
        n = ::recv(fd_, chunk, sizeof chunk, 0);
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n <= 0) {
        std::string reason = n == 0 ? "the peer closed the connection" : "the connection failed (" + errnoText() + ")";
        closeSocket();
        if (atBoundary && got == 0)
          ANVIL_THROW(ErrorCode::kRuntimeError, reason, " (", peer_, ") while ", want,
                      " was expected");  // clean EOF between frames
        ANVIL_THROW(ErrorCode::kRuntimeError, "truncated frame: ", reason, " (", peer_, ") after ", got, " of ", size,
                    " bytes while ", want, " was expected");
      }
      inBuf_.insert(inBuf_.end(), chunk, chunk + n);
    }
  }

  // Writes outBuf_ out; while the socket is full, drains incoming bytes into inBuf_.
  void flush() {
    size_t done = 0;
    while (done < outBuf_.size()) {
      short ev = pollFor(peerClosed_ ? POLLOUT : POLLOUT | POLLIN, "the peer to take our bytes", "send");
      if (ev & POLLIN) drainIncoming();
      if (fd_ < 0) ANVIL_THROW(ErrorCode::kRuntimeError, "the connection with ", peer_, " closed while sending");
      if (!(ev & (POLLOUT | POLLERR | POLLHUP))) continue;
      ssize_t n = ::send(fd_, outBuf_.data() + done, outBuf_.size() - done, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      if (n < 0) {
        std::string reason = errnoText();
        closeSocket();
        ANVIL_THROW(ErrorCode::kRuntimeError, "sending to ", peer_, " failed: ", reason);
      }
      done += size_t(n);
      handshakeSent_ += size_t(n);
    }
    outBuf_.clear();
  }

  void drainIncoming() {
    uint8_t chunk[65536];
    for (;;) {
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        inBuf_.insert(inBuf_.end(), chunk, chunk + n);
        continue;
      }
      // EOF or an error here is reported by the read that needs those bytes; the write
      // side learns of it through send().
      if (n == 0) peerClosed_ = true;
      return;
    }
  }

  short pollFor(short events, const char* want, const char* op) {
    for (;;) {
      pollfd p{fd_, events, 0};
      int rc = ::poll(&p, 1, options_.timeoutMs);
      if (rc < 0 && errno == EINTR) continue;
      ANVIL_CHECK(rc != 0, ErrorCode::kRuntimeError, "timeout: no progress on the channel with ", peer_, " for ",
                  options_.timeoutMs, " ms (", op, ", waiting for ", want, ")");
      ANVIL_CHECK(rc > 0, ErrorCode::kRuntimeError, "poll on the channel with ", peer_, " failed: ", errnoText());
      return p.revents;
    }
  }

  int fd_;
  std::string peer_;
  ChannelOptions options_;
  crypto_secretstream_xchacha20poly1305_state push_{}, pull_{};
  std::vector<uint8_t> outBuf_, inBuf_;
  size_t inPos_ = 0;
  TransportStats stats_;
  // The handshake's wire bytes, copied into stats_ when it completes (flush counts every
  // byte it writes; frames after the handshake are counted by send() and readFrame()).
  uint64_t handshakeSent_ = 0, handshakeReceived_ = 0;
  bool peerClosed_ = false;  // the peer's EOF came while we were writing
  std::string aborted_;
};

void checkKey(const std::vector<uint8_t>& key, size_t size, const char* what) {
  ANVIL_CHECK(key.size() == size, ErrorCode::kInvalidArgument, "expected a ", size, "-byte ", what, ", got ",
              key.size(), " bytes");
}

}  // namespace

Listener::Listener(const std::string& address, const ChannelOptions& options) : options_(options) {
  initSodium();
  Endpoint ep = parseAddress(address);
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ANVIL_CHECK(fd_ >= 0, ErrorCode::kRuntimeError, "cannot create a socket: ", errnoText());
  int one = 1;
  setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (::bind(fd_, reinterpret_cast<sockaddr*>(&ep.addr), sizeof ep.addr) != 0 || ::listen(fd_, 16) != 0) {
    std::string reason = errnoText();
    ::close(fd_);
    fd_ = -1;
    ANVIL_THROW(ErrorCode::kRuntimeError, "cannot listen on ", address, ": ", reason);
  }
  setNonBlocking(fd_);
}

Listener::~Listener() {
  if (fd_ >= 0) ::close(fd_);
}

int Listener::port() const {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ANVIL_CHECK(getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0, ErrorCode::kRuntimeError,
              "cannot read the listening port: ", errnoText());
  return ntohs(addr.sin_port);
}

std::unique_ptr<Transport> Listener::accept(const std::vector<uint8_t>& serverPublicKey,
                                            const std::vector<uint8_t>& serverSecretKey) {
  checkKey(serverPublicKey, crypto_kx_PUBLICKEYBYTES, "server public key");
  checkKey(serverSecretKey, crypto_kx_SECRETKEYBYTES, "server secret key");
  for (;;) {
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, options_.timeoutMs);
    if (rc < 0 && errno == EINTR) continue;
    ANVIL_CHECK(rc != 0, ErrorCode::kRuntimeError, "timeout: no client connected to port ", port(), " within ",
                options_.timeoutMs, " ms");
    ANVIL_CHECK(rc > 0, ErrorCode::kRuntimeError, "poll on the listening socket failed: ", errnoText());
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    int fd = ::accept4(fd_, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNABORTED)) continue;
    ANVIL_CHECK(fd >= 0, ErrorCode::kRuntimeError, "accept failed: ", errnoText());
    setNoDelay(fd);
    char host[INET_ADDRSTRLEN] = "?";
    inet_ntop(AF_INET, &peer.sin_addr, host, sizeof host);
    auto channel = std::make_unique<Channel>(fd, "client " + std::string(host) + ":" + std::to_string(ntohs(peer.sin_port)),
                                             options_);
    channel->serverHandshake(serverPublicKey, serverSecretKey);
    return channel;
  }
}

std::unique_ptr<Transport> connectChannel(const std::string& address, const std::vector<uint8_t>& serverPublicKey,
                                          const ChannelOptions& options) {
  initSodium();
  checkKey(serverPublicKey, crypto_kx_PUBLICKEYBYTES, "server public key");
  Endpoint ep = parseAddress(address);
  auto retryUntil = Clock::now() + std::chrono::milliseconds(options.connectRetryMs);
  for (;;) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    ANVIL_CHECK(fd >= 0, ErrorCode::kRuntimeError, "cannot create a socket: ", errnoText());
    int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&ep.addr), sizeof ep.addr);
    int err = rc == 0 ? 0 : errno;
    if (err == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int prc;
      do prc = ::poll(&p, 1, options.timeoutMs);
      while (prc < 0 && errno == EINTR);
      if (prc == 0) {
        ::close(fd);
        ANVIL_THROW(ErrorCode::kRuntimeError, "timeout: connecting to ", address, " took more than ", options.timeoutMs,
                    " ms");
      }
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
    }
    if (err == 0) {
      setNoDelay(fd);
      auto channel = std::make_unique<Channel>(fd, "server " + address, options);
      channel->clientHandshake(serverPublicKey);
      return channel;
    }
    ::close(fd);
    bool retry = (err == ECONNREFUSED || err == ECONNRESET || err == EAGAIN) && Clock::now() < retryUntil;
    ANVIL_CHECK(retry, ErrorCode::kRuntimeError, "cannot connect to ", address, ": ", std::strerror(err),
                err == ECONNREFUSED ? " (no server listening there; retried for " : "",
                err == ECONNREFUSED ? std::to_string(options.connectRetryMs) + " ms)" : "");
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

std::pair<std::vector<uint8_t>, std::vector<uint8_t>> makeServerKeyPair() {
  initSodium();
  std::vector<uint8_t> pk(crypto_kx_PUBLICKEYBYTES), sk(crypto_kx_SECRETKEYBYTES);
  crypto_kx_keypair(pk.data(), sk.data());
  return {pk, sk};
}

}  // namespace anvil::mpc
