// Checks of the DeviceRuntime contract (cuda/runtime.h) that hold on both runtimes: the sim
// tests run them always, the device tests where a GPU is. Ordering is observed through a
// gate (a host function that blocks its stream until the test opens it), never through timing.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "anvil/error.h"
#include "cuda/device.h"
#include "cuda/runtime.h"
#include "tests/cuda/cuda_test_util.h"

namespace anvil::cuda::testing {

inline void expectError(const std::function<void()>& f, ErrorCode code,
                        const std::string& fragment) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing \"" << fragment << "\"";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), code) << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
  }
}

// A host function that holds its stream until open() (cudaLaunchHostFunc on a GPU).
class Gate {
 public:
  static void hold(void* self) {
    auto& g = *static_cast<Gate*>(self);
    std::unique_lock<std::mutex> lock(g.m_);
    g.reached_ = true;
    g.cv_.notify_all();
    g.cv_.wait(lock, [&] { return g.open_; });
  }
  void enqueue(DeviceRuntime& rt, Stream s) { rt.launchHost(s, &Gate::hold, this); }
  void waitReached() {
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return reached_; });
  }
  void open() {
    std::lock_guard<std::mutex> lock(m_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool reached_ = false;
  bool open_ = false;
};

// Device memory for n values of T, freed on scope exit.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer(DeviceRuntime& rt, std::size_t n)
      : rt_(rt), n_(n), p_(static_cast<T*>(rt.allocate(n * sizeof(T)))) {}
  ~DeviceBuffer() { rt_.free(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  T* get() const { return p_; }
  std::size_t bytes() const { return n_ * sizeof(T); }

 private:
  DeviceRuntime& rt_;
  std::size_t n_;
  T* p_;
};

inline std::vector<float> readBack(DeviceRuntime& rt, const float* d, std::size_t n) {
  std::vector<float> out(n);
  rt.copy(out.data(), d, n * sizeof(float), CopyKind::kDeviceToHost);
  return out;
}

inline void checkAllocationAlignment(DeviceRuntime& rt) {
  for (std::size_t bytes : {1, 7, 255, 256, 257, 4099}) {
    void* p = rt.allocate(bytes);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % DeviceRuntime::kAlignment, 0u) << bytes;
    rt.free(p);
  }
  EXPECT_EQ(rt.allocate(0), nullptr);
  EXPECT_NO_THROW(rt.free(nullptr));
  void* h = rt.allocateHost(1000);
  EXPECT_NE(h, nullptr);
  rt.freeHost(h);
}

// H2D, D2D, memset, D2H and launches on one stream run in the order they were queued.
inline void checkOrderingOnOneStream(DeviceRuntime& rt, Stream s) {
  const std::size_t n = 4099;
  const std::vector<float> x = makeInput<float>(n, 11);
  DeviceBuffer<float> a(rt, n), b(rt, n), c(rt, n);
  rt.copyAsync(a.get(), x.data(), a.bytes(), CopyKind::kHostToDevice, s);
  launchActivation(rt, s, Activation::kRelu, DataType::kF32, a.get(), b.get(), n);
  rt.memsetAsync(a.get(), 0, a.bytes(), s);  // after the launch read it
  rt.copyAsync(c.get(), b.get(), b.bytes(), CopyKind::kDeviceToDevice, s);
  launchActivation(rt, s, Activation::kSigmoid, DataType::kF32, c.get(), c.get(), n);  // in place
  std::vector<float> got(n, -1.0f), zeros(n, -1.0f);
  rt.copyAsync(got.data(), c.get(), c.bytes(), CopyKind::kDeviceToHost, s);
  rt.copyAsync(zeros.data(), a.get(), a.bytes(), CopyKind::kDeviceToHost, s);
  rt.synchronize(s);
  EXPECT_TRUE(rt.query(s));
  std::vector<double> want(n);
  for (std::size_t i = 0; i < n; ++i) {
    want[i] = referenceActivation(Activation::kSigmoid, x[i] < 0 ? 0.0f : x[i]);
  }
  EXPECT_EQ(compare(got.data(), want), "");
  EXPECT_EQ(zeros, std::vector<float>(n, 0.0f));
}

// Pinned host memory for n floats, freed on scope exit. Copies queued behind a gate use it:
// on a GPU, an async copy to or from pageable memory may block the host until it is done,
// which would deadlock against the gate.
class PinnedFloats {
 public:
  PinnedFloats(DeviceRuntime& rt, std::size_t n)
      : rt_(rt), p_(static_cast<float*>(rt.allocateHost(n * sizeof(float)))), n_(n) {}
  ~PinnedFloats() { rt_.freeHost(p_); }
  PinnedFloats(const PinnedFloats&) = delete;
  PinnedFloats& operator=(const PinnedFloats&) = delete;
  float* get() const { return p_; }
  std::vector<float> values() const { return std::vector<float>(p_, p_ + n_); }
  void fill(float v) { std::fill(p_, p_ + n_, v); }

 private:
  DeviceRuntime& rt_;
  float* p_;
  std::size_t n_;
};

// The host runs ahead: queued work has not happened while a gate holds the stream; a copy
// from pinned memory reads the source when the stream reaches it, not when it is queued.
inline void checkAsyncRunsAhead(DeviceRuntime& rt) {
  const Stream s = rt.createStream();
  const Event done = rt.createEvent();
  const std::size_t n = 1000;
  PinnedFloats in(rt, n), out(rt, n);
  in.fill(1.0f);
  out.fill(-1.0f);
  DeviceBuffer<float> d(rt, n);
  Gate gate;
  gate.enqueue(rt, s);
  rt.copyAsync(d.get(), in.get(), d.bytes(), CopyKind::kHostToDevice, s);
  rt.copyAsync(out.get(), d.get(), d.bytes(), CopyKind::kDeviceToHost, s);
  rt.record(done, s);
  gate.waitReached();
  EXPECT_FALSE(rt.query(s));
  EXPECT_FALSE(rt.query(done));
  EXPECT_EQ(out.values(), std::vector<float>(n, -1.0f));  // the copies wait behind the gate
  in.fill(2.0f);
  gate.open();
  rt.synchronize(done);
  EXPECT_TRUE(rt.query(done));
  rt.synchronize(s);
  EXPECT_EQ(out.values(), std::vector<float>(n, 2.0f));
  rt.destroyEvent(done);
  rt.destroyStream(s);
}

// Stream b waits on an event of stream a: b's kernel sees a's copy, though a is held back.
inline void checkTwoStreamsWithAnEvent(DeviceRuntime& rt) {
  const Stream a = rt.createStream(), b = rt.createStream();
  const Event copied = rt.createEvent(), start = rt.createEvent(), end = rt.createEvent();
  const std::size_t n = 1000;
  const std::vector<float> x = makeInput<float>(n, 5);
  PinnedFloats staged(rt, n);
  std::copy(x.begin(), x.end(), staged.get());
  DeviceBuffer<float> d(rt, n);
  rt.memsetAsync(d.get(), 0, d.bytes(), Stream{});
  rt.synchronize(Stream{});
  Gate gate;
  rt.record(start, b);
  gate.enqueue(rt, a);
  rt.copyAsync(d.get(), staged.get(), d.bytes(), CopyKind::kHostToDevice, a);
  rt.record(copied, a);
  rt.wait(b, copied);
  launchActivation(rt, b, Activation::kTanh, DataType::kF32, d.get(), d.get(), n);
  rt.record(end, b);
  gate.waitReached();
  EXPECT_FALSE(rt.query(b));  // held by a's gate through the event
  EXPECT_FALSE(rt.query(end));
  gate.open();
  rt.synchronize(b);
  EXPECT_TRUE(rt.query(copied));
  EXPECT_TRUE(rt.query(end));
  EXPECT_GE(rt.elapsedMs(start, end), 0.0f);
  std::vector<double> want(n);
  for (std::size_t i = 0; i < n; ++i) want[i] = referenceActivation(Activation::kTanh, x[i]);
  EXPECT_EQ(compare(readBack(rt, d.get(), n).data(), want), "");
  for (Event e : {copied, start, end}) rt.destroyEvent(e);
  rt.destroyStream(a);
  rt.destroyStream(b);
}

// The default stream is its own queue, not ordered with created streams (which are
// non-blocking on a GPU): it runs while a created stream is held.
inline void checkDefaultStreamIsIndependent(DeviceRuntime& rt) {
  const Stream s = rt.createStream();
  Gate gate;
  gate.enqueue(rt, s);
  gate.waitReached();
  DeviceBuffer<float> d(rt, 16);
  const std::vector<float> x(16, 3.0f);
  rt.copy(d.get(), x.data(), d.bytes(), CopyKind::kHostToDevice);  // the default stream
  EXPECT_EQ(readBack(rt, d.get(), 16), x);
  EXPECT_FALSE(rt.query(s));
  gate.open();
  rt.destroyStream(s);
}

// destroyStream lets the stream's queued work finish first.
inline void checkDestroyDrains(DeviceRuntime& rt) {
  const std::size_t n = 257;
  PinnedFloats in(rt, n), out(rt, n);
  in.fill(7.0f);
  out.fill(0.0f);
  DeviceBuffer<float> d(rt, n);
  const Stream s = rt.createStream();
  rt.copyAsync(d.get(), in.get(), d.bytes(), CopyKind::kHostToDevice, s);
  launchActivation(rt, s, Activation::kRelu, DataType::kF32, d.get(), d.get(), n);
  rt.copyAsync(out.get(), d.get(), d.bytes(), CopyKind::kDeviceToHost, s);
  rt.destroyStream(s);
  EXPECT_EQ(out.values(), std::vector<float>(n, 7.0f));
}

// A captured copy-in, kernel, copy-out replays on new inputs placed in the same buffer, on
// the capturing stream and on another one; capturing runs nothing.
inline void checkGraphReplay(DeviceRuntime& rt) {
  const std::size_t n = 1000;
  PinnedFloats in(rt, n), out(rt, n);
  in.fill(-1.0f);
  out.fill(0.0f);
  DeviceBuffer<float> d(rt, n);
  const Stream s = rt.createStream(), other = rt.createStream();
  rt.beginCapture(s);
  rt.copyAsync(d.get(), in.get(), d.bytes(), CopyKind::kHostToDevice, s);
  launchActivation(rt, s, Activation::kRelu, DataType::kF32, d.get(), d.get(), n);
  rt.copyAsync(out.get(), d.get(), d.bytes(), CopyKind::kDeviceToHost, s);
  const Graph g = rt.endCapture(s);
  rt.synchronize(s);
  EXPECT_EQ(out.values(), std::vector<float>(n, 0.0f));  // captured, not run
  for (float v : {2.0f, -3.0f, 5.0f}) {
    in.fill(v);
    const Stream on = v < 0 ? other : s;
    rt.launchGraph(g, on);
    rt.synchronize(on);
    EXPECT_EQ(out.values(), std::vector<float>(n, v < 0 ? 0.0f : v)) << v;
  }
  expectError([&] { rt.beginCapture(Stream{}); }, ErrorCode::kInvalidArgument,
              "the default stream cannot be captured");
  rt.destroyGraph(g);
  expectError([&] { rt.launchGraph(g, s); }, ErrorCode::kInvalidArgument,
              "graph " + std::to_string(g.id) + " was destroyed");
  rt.destroyStream(s);
  rt.destroyStream(other);
}

// Misuse that both runtimes report the same way.
inline void checkHandleMisuse(DeviceRuntime& rt) {
  const Stream s = rt.createStream();
  rt.destroyStream(s);
  const std::string id = std::to_string(s.id);
  expectError([&] { rt.synchronize(s); }, ErrorCode::kInvalidArgument,
              "stream " + id + " was destroyed");
  expectError([&] { rt.memsetAsync(nullptr, 0, 4, s); }, ErrorCode::kInvalidArgument,
              "was destroyed");
  expectError([&] { rt.launchHost(s, &Gate::hold, nullptr); }, ErrorCode::kInvalidArgument,
              "stream " + id + " was destroyed");
  expectError([&] { rt.destroyStream(s); }, ErrorCode::kInvalidArgument, "was destroyed");
  expectError([&] { rt.query(Stream{1u << 30}); }, ErrorCode::kInvalidArgument,
              "was never created by this runtime");
  expectError([&] { rt.destroyStream(Stream{}); }, ErrorCode::kInvalidArgument,
              "the default stream cannot be destroyed");

  const Event e = rt.createEvent();
  const std::string eid = std::to_string(e.id);
  expectError([&] { rt.wait(Stream{}, e); }, ErrorCode::kInvalidArgument,
              "event " + eid + " was never recorded");
  expectError([&] { rt.synchronize(e); }, ErrorCode::kInvalidArgument, "was never recorded");
  expectError([&] { rt.query(e); }, ErrorCode::kInvalidArgument, "was never recorded");
  expectError([&] { rt.elapsedMs(e, e); }, ErrorCode::kInvalidArgument, "was never recorded");
  rt.destroyEvent(e);
  expectError([&] { rt.record(e, Stream{}); }, ErrorCode::kInvalidArgument,
              "event " + eid + " was destroyed");
}

}  // namespace anvil::cuda::testing
