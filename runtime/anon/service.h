// Store-compute-store (docs/anon.md): the client submits a request (input sealed in a
// request box, the job sealed to the worker's key), the worker claims jobs, runs them
// padded to their bucket, holds each completion to its latency rung and writes the sealed
// result to the result box, and the client fetches it with its capability.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "runtime/anon/bucket_engine.h"
#include "runtime/anon/capability.h"
#include "runtime/anon/store.h"

namespace anvil::anon {

// Payload plaintexts: u32 (LE) header length, a JSON header (<= kHeaderReserve bytes; its
// "tensors" lists name, dtype code and dims), the tensors' bytes in that order, zero
// padding to `padTo` (lengths then depend on the bucket only, not on the request).
constexpr size_t kHeaderReserve = 4096;
Bytes encodePayload(nlohmann::json header, const Tensors& tensors, size_t padTo);
std::pair<nlohmann::json, Tensors> decodePayload(const Bytes& plaintext);
// The plaintext size of a bucket's request (or of outputs of `dataBytes`).
size_t paddedPayloadSize(uint64_t dataBytes);

// What the client keeps to fetch its result (cap.json): the result box's read capability
// and the request id the result must carry.
struct Capability {
  RequestId requestId{};
  ReadCap result;
  nlohmann::json toJson() const;
  static Capability fromJson(const nlohmann::json& j);  // throws on missing or malformed fields
};

// The worker's public record in the store (meta key "worker"): its X25519 key, the buckets,
// the input types and the ladder.
constexpr const char* kWorkerMetaKey = "worker";

struct SubmitOptions {
  std::string pinnedWorkerKey;  // hex: refuse a store that shows another worker key
  bool checkBuckets = true;     // refuse above the top bucket here (tests turn it off to reach the worker)
};
Capability submit(Store& store, const Tensors& inputs, const SubmitOptions& options = {});

// Waits up to waitSeconds for the result box; throws (kRuntimeError) on a timeout, an error
// result (the worker refused the request), and kInvalidArgument on a forged or corrupted
// box or a result for another request.
Tensors fetch(Store& store, const Capability& cap, double waitSeconds);

struct WorkerOptions {
  std::string keyPath;         // the worker's X25519 seed (created when absent)
  // Owner name of its claims (default worker-<key prefix>). Processes sharing a key need
  // distinct ids; a restarted process with its old id takes its claims back at once.
  std::string workerId;
  bool buckets = true;         // false: --noBuckets (own shapes, no hold): leaks timing, for comparison
  double leaseSeconds = 30;
  int threads = 0;             // 0: the engine's (the ladder was timed with them)
  // Debug hook for crash tests (ANVIL_ANON_PAUSE=claimed|computed in the CLI): called at
  // those points with the job id.
  std::function<void(const char* point, int64_t job)> pause;
};

struct JobReport {
  int64_t job = 0;
  int attempts = 0;
  std::string outcome;  // result | error | refused
  std::string message;  // why, for error and refused
  int bucket = -1;
  double runMs = 0;      // the model's run alone (0: it did not run)
  double computeMs = 0;  // claim to the sealed result ready
  double releaseMs = 0;  // claim to the moment the result is released to the store
  double rungMs = 0;     // the rung held to (0: unbucketed)
};

class Worker {
 public:
  Worker(const AnonEngine& engine, Store& store, const WorkerOptions& options);
  // Writes the public record (key, buckets, ladder) to the store.
  void publish();
  // Claims and processes one job; nullopt when none is pending.
  std::optional<JobReport> step();
  const WorkerKey& key() const { return key_; }
  // Buckets whose jobs on this machine (timed at start-up: the run with the store's reads
  // and the crypto around it) overrun the rung the build measured: the ladder then shows
  // this machine's noise. One line per such bucket.
  const std::vector<std::string>& ladderWarnings() const { return ladderWarnings_; }
  std::string id() const;

 private:
  JobReport process(const ClaimedJob& job, std::chrono::steady_clock::time_point start);
  std::pair<Bytes, Signature> compute(const ReadCap& request, const std::optional<Box>& box, const WriteCap& result,
                                      const RequestId& requestId, JobReport& r);

  const AnonEngine& engine_;
  Store& store_;
  WorkerOptions options_;
  WorkerKey key_;
  AnonRunner runner_;
  std::vector<std::string> ladderWarnings_;
};

// The worker's serving loop (anon-worker, anon::runWorker of the public API): step() until
// maxJobs jobs are done (< 0: no limit), idleExitSeconds pass without a job (< 0: never),
// or *stop turns true; onJob sees each job's report. Polls every 10 ms when idle.
struct WorkerLoopOptions {
  long maxJobs = -1;
  double idleExitSeconds = -1;
  const std::atomic<bool>* stop = nullptr;
};
struct WorkerLoopResult {
  long jobs = 0;
  bool idledOut = false;  // left because idleExitSeconds passed
};
WorkerLoopResult runWorkerLoop(Worker& worker, const WorkerLoopOptions& options,
                               const std::function<void(const JobReport&)>& onJob);

}  // namespace anvil::anon
