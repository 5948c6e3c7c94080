// makeLocalPair: two in-process Transport endpoints joined by a pair of message queues,
// so the protocol tests run both parties on two threads with the same checks (tags, sizes,
// timeouts, the peer's abort) as over the TCP channel.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "anvil/error.h"
#include "runtime/mpc/transport.h"

namespace anvil::mpc {
namespace {

const char* messageTypeName(MessageType t) {
  switch (t) {
    case MessageType::kHello: return "hello";
    case MessageType::kWeightMask: return "weight mask";
    case MessageType::kInputShare: return "input share";
    case MessageType::kLayer: return "layer";
    case MessageType::kOutputShare: return "output share";
    case MessageType::kDone: return "done";
    case MessageType::kError: return "error";
  }
  return "unknown";
}

// The framing a real channel adds per message (type + length); counted in the wire bytes so
// the local numbers read like the channel's minus its MACs.
constexpr uint64_t kFrameBytes = 8;

struct Message {
  MessageType type;
  std::vector<uint8_t> data;
};

// One direction: what one side sent and the other has not yet received.
struct Queue {
  std::deque<Message> messages;
  bool closed = false;  // the sender is gone (destroyed or aborted): nothing more will come
};

struct Shared {
  std::mutex mutex;
  std::condition_variable changed;
  Queue toParty[2];
};

class LocalTransport final : public Transport {
 public:
  LocalTransport(std::shared_ptr<Shared> shared, int party, int timeoutMs)
      : shared_(std::move(shared)), party_(party), timeoutMs_(timeoutMs) {}
  ~LocalTransport() override { close(); }

  void send(MessageType type, const void* data, size_t size) override {
    const auto* bytes = static_cast<const uint8_t*>(data);
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      ANVIL_CHECK(!closedHere_, ErrorCode::kRuntimeError, "mpc transport: send on a closed connection");
      Queue& q = shared_->toParty[1 - party_];
      if (q.closed) return;  // the receiver is gone: dropped, as a socket's peer that closed
      q.messages.push_back({type, std::vector<uint8_t>(bytes, bytes + size)});
      stats_.payloadBytesSent += size;
      stats_.wireBytesSent += size + kFrameBytes;
      ++stats_.messagesSent;
    }
    shared_->changed.notify_all();
  }

  std::vector<uint8_t> receive(MessageType type, size_t expectedSize) override {
    std::unique_lock<std::mutex> lock(shared_->mutex);
    ANVIL_CHECK(!closedHere_, ErrorCode::kRuntimeError, "mpc transport: receive on a closed connection");
    Queue& q = shared_->toParty[party_];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs_);
    while (q.messages.empty() && !q.closed) {
      if (shared_->changed.wait_until(lock, deadline) == std::cv_status::timeout && q.messages.empty() && !q.closed)
        ANVIL_THROW(ErrorCode::kRuntimeError, "mpc transport: no ", messageTypeName(type), " message from the peer within ",
                    timeoutMs_, " ms");
    }
    if (q.messages.empty())
      ANVIL_THROW(ErrorCode::kRuntimeError, "mpc transport: the peer closed the connection while a ",
                  messageTypeName(type), " message was expected");
    Message m = std::move(q.messages.front());
    q.messages.pop_front();
    stats_.payloadBytesReceived += m.data.size();
    stats_.wireBytesReceived += m.data.size() + kFrameBytes;
    ++stats_.messagesReceived;
    if (m.type == MessageType::kError)
      ANVIL_THROW(ErrorCode::kRuntimeError, "mpc peer aborted: ", std::string(m.data.begin(), m.data.end()));
    ANVIL_CHECK(m.type == type, ErrorCode::kRuntimeError, "mpc transport: expected a ", messageTypeName(type),
                " message, the peer sent a ", messageTypeName(m.type), " message (", m.data.size(), " bytes)");
    ANVIL_CHECK(expectedSize == kAnySize || m.data.size() == expectedSize, ErrorCode::kRuntimeError,
                "mpc transport: expected a ", messageTypeName(type), " message of ", expectedSize,
                " bytes, the peer sent ", m.data.size());
    return std::move(m.data);
  }

  void abort(const std::string& why) override {
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      if (closedHere_) return;
      Queue& q = shared_->toParty[1 - party_];
      if (!q.closed) q.messages.push_back({MessageType::kError, std::vector<uint8_t>(why.begin(), why.end())});
    }
    close();
  }

  TransportStats stats() const override {
    std::lock_guard<std::mutex> lock(shared_->mutex);
    return stats_;
  }

 private:
  // Marks both directions closed for this side: the peer's pending receive wakes up and
  // reads what was queued, then fails instead of waiting for its timeout.
  void close() {
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      if (closedHere_) return;
      closedHere_ = true;
      shared_->toParty[1 - party_].closed = true;
      shared_->toParty[party_].closed = true;
    }
    shared_->changed.notify_all();
  }

  std::shared_ptr<Shared> shared_;
  int party_;
  int timeoutMs_;
  bool closedHere_ = false;  // guarded by shared_->mutex
  TransportStats stats_;     // guarded by shared_->mutex
};

}  // namespace

std::pair<std::unique_ptr<Transport>, std::unique_ptr<Transport>> makeLocalPair(int timeoutMs) {
  auto shared = std::make_shared<Shared>();
  return {std::make_unique<LocalTransport>(shared, 0, timeoutMs), std::make_unique<LocalTransport>(shared, 1, timeoutMs)};
}

}  // namespace anvil::mpc
