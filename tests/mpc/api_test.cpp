// The public C++ API of both privacy modes (include/anvil/privacy.hpp), used as an
// application would: only that header (and anvil.hpp for the reference engine); test rows
// are read with tools/npy.h. mpc: the digits MLP's engines, the fixed run, two runs of
// material, a server on a thread on loopback and two secure clients; anon: a bucketed
// engine, a worker on a thread, a sqlite store, submit and fetch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <future>
#include <random>
#include <thread>

#include "anvil/anvil.hpp"
#include "anvil/privacy.hpp"
#include "tools/npy.h"

namespace anvil {
namespace {

namespace fs = std::filesystem;

const std::string kSource = ANVIL_SOURCE_DIR;
const std::string kMlp = kSource + "/tests/models/precision/digits_mlp";

// A fresh directory per test, removed after it.
class TempDir {
 public:
  explicit TempDir(const std::string& tag)
      : path_(fs::temp_directory_path() / ("anvil_privacy_api_" + tag + "_" + std::to_string(getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Rows [first, first + n) of the MLP's test split as the engine's input.
HostTensor testRows(int64_t first, int64_t n) {
  static const ir::Tensor all = tools::readNpy(kMlp + "/test/input.npy");
  const int64_t per = all.numel() / all.dim(0);
  return HostTensor::fromFloats("input", {n, per}, all.data<float>() + first * per);
}

int64_t argmaxRow(const HostTensor& t, int64_t row) {
  const int64_t n = t.dims.back();
  const float* p = t.floats() + row * n;
  return std::max_element(p, p + n) - p;
}

// Top-1 of the secure run against the fixed run: a row may differ only at a near-tie (the
// fixed top-2 margin below twice the row's largest deviation: the lookups' probabilistic
// truncation moves a logit by about one table step), and at most 3 rows of the batch
// (tests/mpc/protocol_model_test.cpp measured ~0.8 such rows per 512).
int64_t checkTop1(const HostTensor& fixed, const HostTensor& secure) {
  EXPECT_EQ(fixed.dims, secure.dims);
  const int64_t rows = fixed.dims[0], n = fixed.dims.back();
  int64_t flips = 0;
  for (int64_t r = 0; r < rows; ++r) {
    if (argmaxRow(fixed, r) == argmaxRow(secure, r)) continue;
    ++flips;
    std::vector<float> f(fixed.floats() + r * n, fixed.floats() + (r + 1) * n);
    std::sort(f.begin(), f.end(), std::greater<float>());
    double dev = 0;
    for (int64_t k = 0; k < n; ++k) dev = std::max(dev, std::fabs(double(fixed.floats()[r * n + k]) - secure.floats()[r * n + k]));
    EXPECT_LT(f[0] - f[1], 2 * dev) << "row " << r << " flipped without a near-tie";
  }
  EXPECT_LE(flips, 3);
  return flips;
}

TEST(PrivacyApiMpc, BuildFixedDealServeAndTwoSecureClients) {
  TempDir dir("mpc");
  const std::string server = dir / "server.engine", pub = dir / "public.engine", off = dir / "off";
  mpc::BuildOptions bo;
  bo.shapes["input"] = {16, 64};
  bo.calibDir = kMlp + "/calib";
  ASSERT_TRUE(mpc::buildEngines(kMlp + "/model.onnx", bo, server, pub));

  // Both engines describe the same inputs and outputs.
  std::vector<TensorDesc> io, pubIo;
  ASSERT_TRUE(mpc::engineIo(server, &io));
  ASSERT_TRUE(mpc::engineIo(pub, &pubIo));
  ASSERT_EQ(io.size(), 2u);
  EXPECT_TRUE(io[0].isInput);
  EXPECT_EQ(io[0].name, "input");
  EXPECT_EQ(io[0].dims, (std::vector<int64_t>{16, 64}));
  EXPECT_FALSE(io[1].isInput);
  EXPECT_EQ(io[1].name, "logits");
  EXPECT_EQ(io[1].dims, (std::vector<int64_t>{16, 10}));
  ASSERT_EQ(pubIo.size(), 2u);
  EXPECT_EQ(pubIo[1].dims, io[1].dims);

  // The plaintext fixed-point reference of two batches of real test rows.
  const HostTensor batchA = testRows(0, 16), batchB = testRows(16, 16);
  std::vector<HostTensor> fixedA, fixedB;
  ASSERT_TRUE(mpc::runFixed(server, {batchA}, &fixedA));
  ASSERT_TRUE(mpc::runFixed(server, {batchB}, &fixedB));
  ASSERT_EQ(fixedA.size(), 1u);
  EXPECT_EQ(fixedA[0].name, "logits");
  EXPECT_EQ(fixedA[0].dims, (std::vector<int64_t>{16, 10}));
  EXPECT_EQ(fixedA[0].dtype, DataType::kFloat);
  // The fixed run's top-1 is the model's: against the labels, most rows right.
  const ir::Tensor labels = tools::readNpy(kMlp + "/test/labels.npy");
  int64_t correct = 0;
  for (int64_t r = 0; r < 16; ++r) correct += argmaxRow(fixedA[0], r) == labels.getInt(r);
  EXPECT_GE(correct, 14);

  // Errors of the fixed run and the dealer: Status, not exceptions.
  std::vector<HostTensor> unused;
  Status s = mpc::runFixed(pub, {batchA}, &unused);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("public"), std::string::npos) << s.message();
  s = mpc::runFixed(server, {testRows(0, 8)}, &unused);
  EXPECT_EQ(s.code(), ErrorCode::kShapeMismatch) << s.message();
  s = mpc::runFixed(dir / "missing.engine", {batchA}, &unused);
  EXPECT_EQ(s.code(), ErrorCode::kIoError) << s.message();
  s = mpc::deal(server, 2, off);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument);
  EXPECT_NE(s.message().find("weights"), std::string::npos) << s.message();

  mpc::DealReport deal;
  ASSERT_TRUE(mpc::deal(pub, 2, off, &deal));
  EXPECT_EQ(deal.runs, 2);
  EXPECT_GT(deal.clientBytes, 0u);
  EXPECT_GT(deal.serverBytes, 0u);

  // The server on a thread; the port comes back through the callback.
  std::promise<int> port;
  mpc::ServeReport served;
  Status serveStatus;
  mpc::ServeOptions so;
  so.timeoutSeconds = 30;
  bool bound = false;
  so.onListening = [&](int p) {
    bound = true;
    port.set_value(p);
  };
  std::thread serverThread([&] {
    serveStatus = mpc::serve(server, off + "/server", "127.0.0.1:0", so, &served);
    if (!bound) port.set_value(-1);  // never bound: unblock the client side
  });
  const int p = port.get_future().get();
  ASSERT_GT(p, 0) << serveStatus.message();
  const std::string address = "127.0.0.1:" + std::to_string(p);

  // A wrong input fails before a run is claimed (both runs still serve below).
  std::vector<HostTensor> outs;
  mpc::ClientStats stats;
  s = mpc::runClient(pub, off + "/client", address, {testRows(0, 4)}, &outs, &stats);
  EXPECT_EQ(s.code(), ErrorCode::kShapeMismatch) << s.message();
  HostTensor misnamed = batchA;
  misnamed.name = "image";
  s = mpc::runClient(pub, off + "/client", address, {misnamed}, &outs, &stats);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();

  const std::vector<const HostTensor*> batches = {&batchA, &batchB};
  const std::vector<const std::vector<HostTensor>*> fixed = {&fixedA, &fixedB};
  for (size_t run = 0; run < 2; ++run) {
    outs.clear();
    stats = {};
    const Status c = mpc::runClient(pub, off + "/client", address, {*batches[run]}, &outs, &stats);
    ASSERT_TRUE(c) << c.message();
    ASSERT_EQ(outs.size(), 1u);
    EXPECT_EQ(outs[0].name, "logits");
    checkTop1((*fixed[run])[0], outs[0]);
    EXPECT_EQ(stats.runIndex, int64_t(run));
    EXPECT_GT(stats.bytesSent, 0u);
    EXPECT_GT(stats.bytesReceived, 0u);
    EXPECT_GT(stats.rounds, 0);
    EXPECT_GT(stats.onlineMs, 0);
    EXPECT_GT(stats.lookups, 0);
    EXPECT_EQ(stats.offlineBytes, stats.offlineBytesClient + stats.offlineBytesServer);
    EXPECT_EQ(stats.offlineBytesClient * 2, deal.clientBytes);  // one run of the two dealt
    EXPECT_EQ(stats.offlineBytesServer * 2, deal.serverBytes);
    EXPECT_DOUBLE_EQ(stats.lutBytesPerActivation, 2.0);  // one byte each way per activation
    std::printf("[ mpc api ] run %zu: online %.2f ms, %lld rounds, sent %llu B, received %llu B, lookups %lld\n", run,
                stats.onlineMs, (long long)stats.rounds, (unsigned long long)stats.bytesSent,
                (unsigned long long)stats.bytesReceived, (long long)stats.lookups);
  }
  serverThread.join();
  EXPECT_TRUE(serveStatus) << serveStatus.message();
  EXPECT_EQ(served.runsServed, 2);
  EXPECT_EQ(served.runIndices, (std::vector<int64_t>{0, 1}));

  // The material is spent: a third client fails with a Status that says so.
  s = mpc::runClient(pub, off + "/client", address, {batchA}, &outs, &stats);
  EXPECT_FALSE(s);
  EXPECT_NE(s.message().find("no offline material left"), std::string::npos) << s.message();
  // And a server with nothing to serve does not listen.
  bool listened = false;
  mpc::ServeOptions none;
  none.onListening = [&](int) { listened = true; };
  s = mpc::serve(server, off + "/server", "127.0.0.1:0", none);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  EXPECT_FALSE(listened);
}

// A server that is not the engine's (another build's key) is refused by the client.
TEST(PrivacyApiMpc, ClientRefusesAnotherBuildsServer) {
  TempDir dir("mpc_keys");
  mpc::BuildOptions bo;
  bo.shapes["input"] = {16, 64};
  bo.calibDir = kMlp + "/calib";
  ASSERT_TRUE(mpc::buildEngines(kMlp + "/model.onnx", bo, dir / "s1", dir / "p1"));
  ASSERT_TRUE(mpc::buildEngines(kMlp + "/model.onnx", bo, dir / "s2", dir / "p2"));
  ASSERT_TRUE(mpc::deal(dir / "p1", 1, dir / "off1"));
  ASSERT_TRUE(mpc::deal(dir / "p2", 1, dir / "off2"));
  std::promise<int> port;
  Status serveStatus;
  mpc::ServeOptions so;
  so.timeoutSeconds = 5;
  bool bound = false;
  so.onListening = [&](int p) {
    bound = true;
    port.set_value(p);
  };
  std::thread serverThread([&] {
    serveStatus = mpc::serve(dir / "s1", dir / "off1/server", "127.0.0.1:0", so);
    if (!bound) port.set_value(-1);
  });
  const int p = port.get_future().get();
  ASSERT_GT(p, 0) << serveStatus.message();
  std::vector<HostTensor> outs;
  const Status c = mpc::runClient(dir / "p2", dir / "off2/client", "127.0.0.1:" + std::to_string(p), {testRows(0, 16)},
                                  &outs, nullptr, mpc::ClientOptions{5});
  EXPECT_FALSE(c);
  std::printf("[ mpc api ] another build's server: %s\n", c.message().c_str());
  serverThread.join();
  EXPECT_FALSE(serveStatus);  // its one run failed with the client's
  EXPECT_TRUE(outs.empty());
}

// BuildOptions::exactTruncation: the secure outputs equal runFixed's bit for bit.
TEST(PrivacyApiMpc, ExactTruncationIsBitIdenticalToFixed) {
  TempDir dir("mpc_exact");
  const std::string server = dir / "server.engine", pub = dir / "public.engine", off = dir / "off";
  mpc::BuildOptions bo;
  bo.shapes["input"] = {16, 64};
  bo.calibDir = kMlp + "/calib";
  bo.exactTruncation = true;
  ASSERT_TRUE(mpc::buildEngines(kMlp + "/model.onnx", bo, server, pub));
  ASSERT_TRUE(mpc::deal(pub, 1, off));
  std::promise<int> port;
  Status serveStatus;
  mpc::ServeOptions so;
  so.timeoutSeconds = 10;
  bool bound = false;
  so.onListening = [&](int p) {
    bound = true;
    port.set_value(p);
  };
  std::thread serverThread([&] {
    serveStatus = mpc::serve(server, off + "/server", "127.0.0.1:0", so);
    if (!bound) port.set_value(-1);
  });
  const int p = port.get_future().get();
  ASSERT_GT(p, 0) << serveStatus.message();
  const HostTensor rows = testRows(32, 16);
  std::vector<HostTensor> fixed, secure;
  ASSERT_TRUE(mpc::runFixed(server, {rows}, &fixed));
  mpc::ClientStats stats;
  const Status c = mpc::runClient(pub, off + "/client", "127.0.0.1:" + std::to_string(p), {rows}, &secure, &stats);
  serverThread.join();
  ASSERT_TRUE(c) << c.message();
  ASSERT_TRUE(serveStatus) << serveStatus.message();
  ASSERT_EQ(fixed.size(), 1u);
  ASSERT_EQ(secure.size(), 1u);
  EXPECT_EQ(secure[0].dims, fixed[0].dims);
  EXPECT_EQ(secure[0].data, fixed[0].data);  // bit for bit
  EXPECT_GT(stats.lutBytesPerActivation, 2.0);  // the exact lookups cost more than one byte each way
}

// ---- anon ---------------------------------------------------------------------------------

const std::string kAnonModels = kSource + "/tests/anon/models";

HostTensor randomImage(int64_t batch, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d;
  std::vector<float> v(size_t(batch * 32 * 32));
  for (float& x : v) x = d(rng);
  return HostTensor::fromFloats("input", {batch, 1, 32, 32}, v.data());
}

TEST(PrivacyApiAnon, BuildSubmitWorkFetch) {
  TempDir dir("anon");
  const std::string engine = dir / "anon.engine", store = "sqlite:" + (dir / "store.db");
  anon::BuildOptions bo;
  bo.timingRuns = 20;
  ASSERT_TRUE(anon::buildEngine(kAnonModels + "/anon_cnn.onnx", "input:1x1x32x32,8x1x32x32", engine, bo));
  Status s = anon::buildEngine(kAnonModels + "/anon_cnn.onnx", "input:1x1xQx32", dir / "bad.engine", bo);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  EXPECT_FALSE(s);

  // No worker has published on the store yet: submit says so.
  const HostTensor x = randomImage(3, 7);
  std::string cap;
  s = anon::submit(store, {x}, &cap);
  EXPECT_EQ(s.code(), ErrorCode::kRuntimeError) << s.message();

  std::promise<std::string> ready;
  anon::WorkerReport report;
  Status workerStatus;
  anon::WorkerConfig wc;
  wc.jobs = 1;
  wc.idleExitSeconds = 60;  // a bound on the thread if the submit below never lands
  wc.keyPath = dir / "worker.key";
  wc.onReady = [&](const std::string& key) { ready.set_value(key); };
  std::thread worker([&] {
    workerStatus = anon::runWorker(engine, store, wc, &report);
    if (!workerStatus) ready.set_value("");
  });
  const std::string workerKey = ready.get_future().get();
  ASSERT_EQ(workerKey.size(), 64u) << workerStatus.message();

  // Pinned to another worker key: refused before anything is written.
  s = anon::submit(store, {x}, &cap, std::string(64, '0'));
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  ASSERT_TRUE(anon::submit(store, {x}, &cap, workerKey));
  std::vector<HostTensor> outs;
  const Status f = anon::fetch(store, cap, 30, &outs);
  ASSERT_TRUE(f) << f.message();
  worker.join();
  EXPECT_TRUE(workerStatus) << workerStatus.message();
  EXPECT_EQ(report.jobs, 1);
  EXPECT_EQ(report.results, 1);
  EXPECT_FALSE(report.idledOut);

  // The same values as a standard engine built for exactly that shape.
  ASSERT_EQ(outs.size(), 1u);
  EXPECT_EQ(outs[0].name, "logits");
  ASSERT_EQ(outs[0].dims, (std::vector<int64_t>{3, 10}));
  BuilderConfig cfg;
  cfg.inputShapes["input"] = {3, 1, 32, 32};
  std::string bytes;
  ASSERT_TRUE(Builder::buildFromOnnx(kAnonModels + "/anon_cnn.onnx", cfg, &bytes));
  std::shared_ptr<Engine> ref;
  ASSERT_TRUE(Engine::fromBytes(bytes, &ref));
  std::unique_ptr<ExecutionContext> ctx;
  ASSERT_TRUE(ref->createContext(&ctx));
  HostTensor in = x;
  ASSERT_TRUE(ctx->setTensorAddress("input", in.data.data()));
  ASSERT_TRUE(ctx->run());
  const float* want = static_cast<const float*>(ctx->outputData("logits"));
  for (int i = 0; i < 30; ++i) EXPECT_NEAR(outs[0].floats()[i], want[i], 1e-5f) << i;

  // Forged and malformed capabilities: a Status, never an exception.
  std::string forged = cap;
  const size_t key = forged.find("\"resultKey\"");
  ASSERT_NE(key, std::string::npos);
  const size_t digit = forged.find('"', forged.find(':', key)) + 1;
  forged[digit] = forged[digit] == '0' ? '1' : '0';
  s = anon::fetch(store, forged, 0, &outs);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  std::printf("[ anon api ] forged result key: %s\n", s.message().c_str());
  s = anon::fetch(store, "{\"version\": 1, \"requestId\": \"zz\"}", 0, &outs);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  s = anon::fetch(store, "not json", 0, &outs);
  EXPECT_EQ(s.code(), ErrorCode::kInvalidArgument) << s.message();
  EXPECT_NE(s.message().find("not JSON"), std::string::npos) << s.message();
  // A well-formed capability of a box nobody wrote: a timeout Status.
  std::string other = cap;
  const size_t box = other.find("\"resultBox\"");
  const size_t boxDigit = other.find('"', other.find(':', box)) + 1;
  other[boxDigit] = other[boxDigit] == '0' ? '1' : '0';
  s = anon::fetch(store, other, 0.05, &outs);
  EXPECT_EQ(s.code(), ErrorCode::kRuntimeError) << s.message();
  // The real capability still reads its result.
  ASSERT_TRUE(anon::fetch(store, cap, 0, &outs));
  EXPECT_EQ(outs[0].dims, (std::vector<int64_t>{3, 10}));
}

// Above the top bucket the client refuses at submit; a worker that idles out says so.
TEST(PrivacyApiAnon, TooLargeRequestAndIdleWorker) {
  TempDir dir("anon_idle");
  const std::string engine = dir / "anon.engine", store = "sqlite:" + (dir / "store.db");
  anon::BuildOptions bo;
  bo.timingRuns = 10;
  ASSERT_TRUE(anon::buildEngine(kAnonModels + "/anon_cnn.onnx", "input:1x1x32x32,2x1x32x32", engine, bo));
  anon::WorkerConfig wc;
  wc.idleExitSeconds = 0.2;
  wc.keyPath = dir / "worker.key";
  anon::WorkerReport report;
  ASSERT_TRUE(anon::runWorker(engine, store, wc, &report));  // publishes, then idles out
  EXPECT_TRUE(report.idledOut);
  EXPECT_EQ(report.jobs, 0);
  std::string cap;
  const Status s = anon::submit(store, {randomImage(3, 1)}, &cap);
  EXPECT_FALSE(s);
  EXPECT_TRUE(cap.empty());
  std::printf("[ anon api ] 3 rows over a 2-row top bucket: %s\n", s.message().c_str());
  EXPECT_EQ(anon::runWorker(dir / "missing.engine", store, wc).code(), ErrorCode::kIoError);
}

}  // namespace
}  // namespace anvil
