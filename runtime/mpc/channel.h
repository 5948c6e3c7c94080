// The TCP channel between the mpc client and server: real sockets, length-prefixed
// frames, every frame sealed with libsodium's XChaCha20-Poly1305 (crypto_secretstream)
// under session keys from crypto_kx. The client knows the server's static public key from
// the public engine, so it talks to the engine's server and no one else; the client's key
// is ephemeral. Every read and write has a deadline: a silent or vanished peer is an
// error, never a hang.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/mpc/transport.h"

namespace anvil::mpc {

struct ChannelOptions {
  int timeoutMs = 30000;      // per read/write/connect/accept
  int connectRetryMs = 5000;  // the client retries a refused connection this long (the server may be starting)
  // The largest payload of one message; a frame announcing more is refused before any
  // allocation (the length prefix is read before the frame authenticates).
  size_t maxMessageBytes = size_t(512) << 20;
};

class Listener {
 public:
  // Binds and listens on "HOST:PORT" (PORT 0: a free port, see port()).
  Listener(const std::string& address, const ChannelOptions& options = {});
  ~Listener();
  int port() const;
  // Accepts one client and runs the server side of the key exchange.
  std::unique_ptr<Transport> accept(const std::vector<uint8_t>& serverPublicKey,
                                    const std::vector<uint8_t>& serverSecretKey);

 private:
  int fd_ = -1;
  ChannelOptions options_;
};

// Connects to "HOST:PORT" and runs the client side of the key exchange against the
// server's static public key (a server without the matching secret key fails it).
std::unique_ptr<Transport> connectChannel(const std::string& address, const std::vector<uint8_t>& serverPublicKey,
                                          const ChannelOptions& options = {});

// A fresh crypto_kx key pair (public, secret) for a build.
std::pair<std::vector<uint8_t>, std::vector<uint8_t>> makeServerKeyPair();

}  // namespace anvil::mpc
