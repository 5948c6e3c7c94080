// The message seam between the two parties of the mpc mode: the protocol code
// (runtime/mpc/protocol.*) speaks only through Transport; the TCP channel with libsodium's
// authenticated encryption (runtime/mpc/channel.*) and the in-process pair of the tests
// implement it. Party 0 is the client (holds the input), party 1 the server (holds the
// weights).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace anvil::mpc {

// Message tags: a receive that meets another tag than it expects is a protocol error
// (out-of-order peer), never a silent misread.
enum class MessageType : uint32_t {
  kHello = 1,        // handshake: program id, material set id, run index (both ways)
  kWeightMask = 2,   // server -> client: E = W - A of every linear layer (once per run)
  kInputShare = 3,   // client -> server: the server's share of the input
  kLayer = 4,        // one protocol round's payload (Beaver openings, LUT bytes)
  kOutputShare = 5,  // server -> client: the server's shares of the outputs
  kDone = 6,         // end of run
  kError = 7,        // the peer aborts: payload is the message (the receiver throws it)
};

struct TransportStats {
  uint64_t payloadBytesSent = 0, payloadBytesReceived = 0;  // application bytes
  uint64_t wireBytesSent = 0, wireBytesReceived = 0;        // + framing, MACs, handshake
  uint64_t messagesSent = 0, messagesReceived = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  // Sends one message (may buffer; receive() flushes what was sent before it).
  virtual void send(MessageType type, const void* data, size_t size) = 0;
  // The next message, which must have `type` and, when expectedSize != kAnySize, exactly
  // that many bytes. Throws anvil::Error (ErrorCode::kRuntimeError, a
  // message naming what was expected and what came) on another tag or size, a kError from
  // the peer, a closed connection, a failed authentication, or no message within the
  // timeout.
  static constexpr size_t kAnySize = ~size_t(0);
  virtual std::vector<uint8_t> receive(MessageType type, size_t expectedSize = kAnySize) = 0;
  // Best effort: tells the peer why this side aborts (a kError message), then closes.
  virtual void abort(const std::string& why) = 0;
  virtual TransportStats stats() const = 0;
};

// Two connected in-process transports (party 0, party 1) for tests of the protocol; each
// side may run on its own thread. receive() times out after timeoutMs.
std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>> makeLocalPair(int timeoutMs = 10000);

}  // namespace anvil::mpc
