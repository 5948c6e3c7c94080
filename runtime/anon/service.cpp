// The client (submit, fetch) and the worker of the anonymous mode (service.h).
#include "runtime/anon/service.h"

#include <chrono>
#include <algorithm>
#include <cstring>
#include <sstream>
#include <thread>

namespace anvil::anon {

namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

double msSince(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

std::map<std::string, Dims> shapesOf(const Tensors& t) {
  std::map<std::string, Dims> m;
  for (const auto& [name, x] : t) m[name] = x.dims();
  return m;
}

uint64_t bytesOf(const std::vector<Dims>& shapes, const std::vector<DataType>& types) {
  uint64_t b = 0;
  for (size_t i = 0; i < shapes.size(); ++i) {
    uint64_t n = 1;
    for (int64_t d : shapes[i]) n *= uint64_t(d);
    b += n * dataTypeSize(types[i]);
  }
  return b;
}

// Holds until `deadline`: sleep, then spin the last 300 us so the release lands on the
// rung with microseconds of spread instead of the scheduler's.
void holdUntil(Clock::time_point deadline) {
  const auto spin = std::chrono::microseconds(300);
  if (Clock::now() < deadline - spin) std::this_thread::sleep_until(deadline - spin);
  while (Clock::now() < deadline) {
  }
}

template <size_t N>
std::array<uint8_t, N> hexField(const json& j, const char* name) {
  ANVIL_CHECK(j.contains(name) && j[name].is_string(), ErrorCode::kInvalidArgument, "missing field '", name, "'");
  return fromHexFixed<N>(j[name].get<std::string>(), name);
}

}  // namespace

size_t paddedPayloadSize(uint64_t dataBytes) { return 4 + kHeaderReserve + size_t(dataBytes); }

Bytes encodePayload(json header, const Tensors& tensors, size_t padTo) {
  header["tensors"] = json::array();
  size_t data = 0;
  for (const auto& [name, t] : tensors) {
    ANVIL_CHECK(t.dtype() != DataType::kString, ErrorCode::kUnsupported, "tensor '", name, "': strings are not supported");
    header["tensors"].push_back({{"name", name}, {"dtype", int(t.dtype())}, {"dims", t.dims()}});
    data += t.nbytes();
  }
  const std::string h = header.dump();
  ANVIL_CHECK(h.size() <= kHeaderReserve, ErrorCode::kInvalidArgument, "payload header of ", h.size(),
              " bytes exceeds ", kHeaderReserve, " (too many tensors or long names)");
  Bytes out;
  out.reserve(std::max(padTo, 4 + h.size() + data));
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t((h.size() >> (8 * i)) & 0xff));
  out.insert(out.end(), h.begin(), h.end());
  for (const auto& [name, t] : tensors) {
    const auto* p = static_cast<const uint8_t*>(t.raw());
    out.insert(out.end(), p, p + t.nbytes());
  }
  if (out.size() < padTo) out.resize(padTo, 0);
  return out;
}

std::pair<json, Tensors> decodePayload(const Bytes& b) {
  ANVIL_CHECK(b.size() >= 4, ErrorCode::kInvalidArgument, "payload of ", b.size(), " bytes has no header length");
  const size_t hl = size_t(b[0]) | size_t(b[1]) << 8 | size_t(b[2]) << 16 | size_t(b[3]) << 24;
  ANVIL_CHECK(hl <= kHeaderReserve && 4 + hl <= b.size(), ErrorCode::kInvalidArgument, "payload header length ", hl,
              " is out of range");
  json h;
  try {
    h = json::parse(b.begin() + 4, b.begin() + 4 + std::ptrdiff_t(hl));
  } catch (const json::exception& e) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "payload header is not JSON: ", e.what());
  }
  Tensors out;
  size_t pos = 4 + hl;
  try {
    for (const auto& t : h.at("tensors")) {
      const auto dtype = DataType(t.at("dtype").get<int>());
      const Dims dims = t.at("dims").get<Dims>();
      uint64_t n = 1;
      for (int64_t d : dims) {
        ANVIL_CHECK(d >= 0 && d < (int64_t(1) << 31), ErrorCode::kInvalidArgument, "payload tensor dim ", d, " out of range");
        n *= uint64_t(d);
        ANVIL_CHECK(n < (uint64_t(1) << 34), ErrorCode::kInvalidArgument, "payload tensor too large");
      }
      ANVIL_CHECK(dtype != DataType::kString && dataTypeSize(dtype) > 0, ErrorCode::kInvalidArgument,
                  "payload tensor of unsupported type ", int(dtype));
      // Checked before allocating: a hostile header cannot make the worker allocate more
      // than the box holds.
      ANVIL_CHECK(b.size() - pos >= n * dataTypeSize(dtype), ErrorCode::kInvalidArgument,
                  "payload truncated in tensor '", t.at("name").get<std::string>(), "'");
      ir::Tensor x(dtype, dims);
      if (x.nbytes()) std::memcpy(x.mutableRaw(), b.data() + pos, x.nbytes());
      pos += x.nbytes();
      out.push_back({t.at("name").get<std::string>(), x});
    }
  } catch (const json::exception& e) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, "payload header: ", e.what());
  }
  return {h, out};
}

json Capability::toJson() const {
  return {{"version", 1}, {"requestId", toHex(requestId)}, {"resultBox", toHex(result.box)},
          {"resultKey", toHex(result.key)}};
}

Capability Capability::fromJson(const json& j) {
  ANVIL_CHECK(j.is_object() && j.value("version", 0) == 1, ErrorCode::kInvalidArgument,
              "capability: not a version-1 anon capability object");
  Capability c;
  c.requestId = hexField<16>(j, "requestId");
  c.result.box = hexField<32>(j, "resultBox");
  c.result.key = hexField<32>(j, "resultKey");
  return c;
}

Capability submit(Store& store, const Tensors& inputs, const SubmitOptions& o) {
  const auto meta = store.getMeta(kWorkerMetaKey);
  ANVIL_CHECK(meta.has_value(), ErrorCode::kRuntimeError, store.spec(),
              ": no worker has published its key and buckets here (start anvil anon-worker on this store first)");
  json w;
  AnonHeader pub;
  std::array<uint8_t, 32> workerPk{};
  try {
    w = json::parse(*meta);
    pub = headerFromJson(w.at("engine"));
    workerPk = hexField<32>(w, "workerKey");
  } catch (const json::exception& e) {
    ANVIL_THROW(ErrorCode::kInvalidArgument, store.spec(), ": the worker record is malformed: ", e.what());
  }
  if (!o.pinnedWorkerKey.empty())
    ANVIL_CHECK(o.pinnedWorkerKey == toHex(workerPk), ErrorCode::kInvalidArgument, "the store shows worker key ",
                toHex(workerPk), ", not the pinned ", o.pinnedWorkerKey, ": refusing to submit");
  // The buckets are public: a request above the top bucket is refused before it leaves.
  int bucket = -1;
  std::vector<Dims> bucketShapes;
  if (o.checkBuckets) {
    bucket = findBucket(pub.buckets, shapesOf(inputs));
    std::string shapes;
    for (const auto& [name, t] : inputs) {
      shapes += (shapes.empty() ? "" : ", ") + name + ":";
      for (size_t i = 0; i < t.dims().size(); ++i) shapes += (i ? "x" : "") + std::to_string(t.dims()[i]);
    }
    ANVIL_CHECK(bucket >= 0, ErrorCode::kInvalidArgument, "request ", shapes,
                " exceeds the top bucket of the worker's engine: refused");
  }
  for (const auto& [name, t] : inputs) {
    auto pos = std::find(pub.buckets.inputs.begin(), pub.buckets.inputs.end(), name);
    if (pos == pub.buckets.inputs.end()) continue;  // the worker reports it
    const size_t k = size_t(pos - pub.buckets.inputs.begin());
    ANVIL_CHECK(t.dtype() == pub.inputTypes[k], ErrorCode::kInvalidArgument, "input '", name, "' is ",
                dataTypeName(t.dtype()), ", the worker's engine takes ", dataTypeName(pub.inputTypes[k]));
    bucketShapes.push_back(pub.buckets.shapes[size_t(bucket >= 0 ? bucket : int(pub.buckets.shapes.size()) - 1)][k]);
  }
  const RequestKeys k = deriveRequestKeys(freshRoot());
  // Padded to the bucket's size (the top bucket's when not checked): the box's length
  // shows the bucket, never the request's own shape.
  const Bytes plain = encodePayload({{"kind", "request"}}, inputs,
                                    paddedPayloadSize(bytesOf(bucketShapes, pub.inputTypes)));
  const Bytes content = sealPayload(k.request.read(), plain);
  store.putBox(k.request.box, content, signWrite(k.request, content));
  const json job = {{"version", 1},
                    {"requestBox", toHex(k.request.box)},
                    {"requestKey", toHex(k.request.key)},
                    {"requestId", toHex(k.requestId)},
                    {"resultBox", toHex(k.result.box)},
                    {"resultKey", toHex(k.result.key)},
                    {"resultScalar", toHex(k.result.scalar)},
                    {"resultNonceKey", toHex(k.result.nonceKey)}};
  const std::string js = job.dump();
  store.enqueue(sealToWorker(workerPk, Bytes(js.begin(), js.end())));
  return {k.requestId, k.result.read()};
}

Tensors fetch(Store& store, const Capability& cap, double waitSeconds) {
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(waitSeconds));
  std::optional<Box> box;
  while (!(box = store.getBox(cap.result.box)) && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ANVIL_CHECK(box.has_value(), ErrorCode::kRuntimeError, "no result in box ", toHex(cap.result.box).substr(0, 16),
              "... after ", waitSeconds, " s (the worker has not served it yet, or the capability names another box)");
  ANVIL_CHECK(verifyWrite(cap.result.box, box->content, box->sig), ErrorCode::kInvalidArgument, "result box ",
              toHex(cap.result.box).substr(0, 16),
              "...: its signature does not verify under the box ID (a corrupted or forged box): refused");
  const Bytes plain = openPayload(cap.result, box->content);
  auto [h, tensors] = decodePayload(plain);
  ANVIL_CHECK(h.value("requestId", std::string()) == toHex(cap.requestId), ErrorCode::kInvalidArgument,
              "the result carries request id ", h.value("requestId", std::string("(none)")), ", not ",
              toHex(cap.requestId), " (a replayed or substituted result): refused");
  const std::string kind = h.value("kind", std::string());
  ANVIL_CHECK(kind != "error", ErrorCode::kRuntimeError, "the worker refused the request: ",
              h.value("error", std::string("(no reason)")));
  ANVIL_CHECK(kind == "result", ErrorCode::kInvalidArgument, "the result box holds a '", kind, "' payload");
  return tensors;
}

Worker::Worker(const AnonEngine& engine, Store& store, const WorkerOptions& options)
    : engine_(engine), store_(store), options_(options), key_(loadOrCreateWorkerKey(options.keyPath)),
      runner_(engine, options.threads) {
  // Warm every bucket (first runs at a shape plan the arena and fault pages in): a cold
  // first request would otherwise overrun its rung and stand out.
  const AnonHeader& h = engine_.header();
  for (size_t k = 0; k < h.buckets.shapes.size(); ++k) {
    Tensors zeros;
    for (size_t i = 0; i < h.buckets.inputs.size(); ++i)
      zeros.push_back({h.buckets.inputs[i], ir::Tensor(h.inputTypes[i], h.buckets.shapes[k][i])});
    for (int r = 0; r < 3; ++r) runner_.run(zeros, int(k));
    // Then a short check of the build's ladder on this machine, over what a job does between
    // its claim and its release (what the rung quantizes), not the run alone: the sealed job
    // opened, the store's reads, then compute() as process() calls it. The store, the crypto
    // and the payload copies cost 0.45-0.8 ms a job on the 2-core dev box, enough to push a
    // bucket whose run fits its rung past it. A throwaway request of the bucket's shape, its
    // boxes never written: the store sees reads of boxes and a request id that do not exist,
    // and compute() gets the request box from here.
    const RequestKeys keys = deriveRequestKeys(freshRoot());
    const std::string js = json{{"version", 1}, {"requestId", toHex(keys.requestId)}}.dump();
    const Bytes sealedJob = sealToWorker(key_.publicKey, Bytes(js.begin(), js.end()));
    const size_t requestBytes = paddedPayloadSize(bytesOf(h.buckets.shapes[k], h.inputTypes));
    std::optional<Box> requestBox(Box{sealPayload(keys.request.read(),
                                                  encodePayload({{"kind", "request"}}, zeros, requestBytes))});
    requestBox->sig = signWrite(keys.request, requestBox->content);
    std::vector<double> ms, runMs;
    for (int r = 0; r < 20; ++r) {
      const auto t0 = Clock::now();
      (void)openAsWorker(key_, sealedJob);
      (void)store_.served(keys.requestId);
      (void)store_.getBox(keys.result.box);
      (void)store_.getBox(keys.request.box);  // absent: the request box is at hand
      JobReport report;
      (void)compute(keys.request.read(), requestBox, keys.result, keys.requestId, report);
      ANVIL_CHECK(report.outcome.empty(), ErrorCode::kRuntimeError, "start-up check of bucket ", k, ": ",
                  report.message);
      ms.push_back(msSince(t0));
      runMs.push_back(report.runMs);
    }
    std::sort(ms.begin(), ms.end());
    std::sort(runMs.begin(), runMs.end());
    const double p95 = ms[18], rung = h.ladderMs[size_t(h.bucketRung[k])];
    if (p95 > rung) {
      std::ostringstream w;
      w << "bucket " << k << ": jobs here take up to " << p95 << " ms (p95 of 20; the run alone " << runMs[18]
        << " ms, the rest the store's reads and the crypto), above its rung of " << rung
        << " ms timed at build: jobs will overrun to later rungs; rebuild the engine on this machine or raise "
           "--ladderFloor";
      ladderWarnings_.push_back(w.str());
    }
  }
}

std::string Worker::id() const {
  return options_.workerId.empty() ? "worker-" + toHex(key_.publicKey).substr(0, 16) : options_.workerId;
}

void Worker::publish() {
  const json w = {{"version", 1}, {"workerKey", toHex(key_.publicKey)}, {"engine", headerToJson(engine_.header())}};
  store_.setMeta(kWorkerMetaKey, w.dump());
}

std::optional<JobReport> Worker::step() {
  std::optional<ClaimedJob> job = store_.claim(id(), options_.leaseSeconds);
  if (!job) return std::nullopt;
  // The store sees the claim now and the result write later: the interval between them is
  // what the ladder quantizes.
  const auto start = Clock::now();
  if (options_.pause) options_.pause("claimed", job->id);
  return process(*job, start);
}

// The job's work between its replay check and its release, shared by process() and the
// start-up check: the request box verified, opened and run (on its bucket when bucketed),
// the result (or the error) encoded, sealed for `result` and signed. Sets r.bucket and
// r.runMs, and r.outcome and r.message on an error.
std::pair<Bytes, Signature> Worker::compute(const ReadCap& request, const std::optional<Box>& box,
                                            const WriteCap& result, const RequestId& requestId, JobReport& r) {
  json header = {{"requestId", toHex(requestId)}};
  Tensors outputs;
  size_t padTo = paddedPayloadSize(0);
  try {
    ANVIL_CHECK(box.has_value(), ErrorCode::kInvalidArgument, "the request box is missing");
    ANVIL_CHECK(verifyWrite(request.box, box->content, box->sig), ErrorCode::kInvalidArgument,
                "the request box's signature does not verify (corrupted or forged box)");
    auto [rh, inputs] = decodePayload(openPayload(request, box->content));
    if (options_.buckets) {
      r.bucket = findBucket(engine_.header().buckets, shapesOf(inputs));
      ANVIL_CHECK(r.bucket >= 0, ErrorCode::kInvalidArgument, "the request exceeds the top bucket of the engine");
      padTo = paddedPayloadSize(runner_.bucketOutputBytes(r.bucket));
    }
    const auto r0 = Clock::now();
    outputs = runner_.run(inputs, options_.buckets ? r.bucket : -1);
    r.runMs = msSince(r0);
    header["kind"] = "result";
  } catch (const std::exception& e) {
    header["kind"] = "error";
    header["error"] = e.what();
    outputs.clear();
    r.outcome = "error";
    r.message = e.what();
  }
  Bytes content = sealPayload(result.read(), encodePayload(header, outputs, padTo));
  const Signature sig = signWrite(result, content);
  return {std::move(content), sig};
}

JobReport Worker::process(const ClaimedJob& cj, Clock::time_point start) {
  JobReport r;
  r.job = cj.id;
  r.attempts = cj.attempts;
  auto refuse = [&](const std::string& why) {
    store_.refuse(cj.id, why);
    r.outcome = "refused";
    r.message = why;
    r.computeMs = r.releaseMs = msSince(start);
    return r;
  };
  json job;
  RequestId requestId{};
  ReadCap request;
  WriteCap result;
  try {
    const Bytes plain = openAsWorker(key_, cj.sealed);
    job = json::parse(plain.begin(), plain.end());
    requestId = hexField<16>(job, "requestId");
    request.box = hexField<32>(job, "requestBox");
    request.key = hexField<32>(job, "requestKey");
    result.box = hexField<32>(job, "resultBox");
    result.key = hexField<32>(job, "resultKey");
    result.scalar = hexField<32>(job, "resultScalar");
    result.nonceKey = hexField<32>(job, "resultNonceKey");
  } catch (const std::exception& e) {
    return refuse(std::string("malformed job: ") + e.what());
  }
  // A request id already served, or a result box already written: a replay. Nothing is
  // computed and nothing written.
  if (store_.served(requestId) || store_.getBox(result.box))
    return refuse("replayed request " + toHex(requestId) + ": already served (its result box is written once)");

  const auto [content, sig] = compute(request, store_.getBox(request.box), result, requestId, r);
  r.computeMs = msSince(start);
  if (options_.pause) options_.pause("computed", cj.id);
  if (options_.buckets) {
    // Errors are released on the first rung their work reaches, every request of a bucket
    // on the bucket's own rung (a later one only where the work overran it).
    r.rungMs = engine_.rungMs(r.computeMs, r.outcome.empty() ? r.bucket : -1);
    holdUntil(start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(r.rungMs)));
  }
  r.releaseMs = msSince(start);
  const Completion c = store_.complete(cj.id, result.box, content, sig, requestId);
  if (c != Completion::kWritten)
    return refuse(c == Completion::kReplay ? "replayed request: its id was served meanwhile"
                                           : "the result box was written meanwhile (a replay)");
  if (r.outcome.empty()) r.outcome = "result";
  return r;
}

WorkerLoopResult runWorkerLoop(Worker& worker, const WorkerLoopOptions& o,
                               const std::function<void(const JobReport&)>& onJob) {
  WorkerLoopResult out;
  auto idleSince = std::chrono::steady_clock::now();
  while (!(o.stop && *o.stop) && (o.maxJobs < 0 || out.jobs < o.maxJobs)) {
    std::optional<JobReport> r = worker.step();
    if (!r) {
      if (o.idleExitSeconds >= 0 &&
          std::chrono::duration<double>(std::chrono::steady_clock::now() - idleSince).count() >= o.idleExitSeconds) {
        out.idledOut = true;
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    ++out.jobs;
    idleSince = std::chrono::steady_clock::now();
    if (onJob) onJob(*r);
  }
  return out;
}

}  // namespace anvil::anon
