// The bucketed engine of the anonymous mode (docs/anon.md): one standard engine whose
// optimization profile spans the public shape buckets, the buckets themselves and the
// public latency ladder measured at build time from the engine's own timings, in one file
// (anon.engine). A request runs padded with zeros to the smallest bucket that holds it and
// the padding is sliced out of its outputs.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "anvil/anvil.hpp"
#include "ir/tensor.h"

namespace anvil::anon {

using Dims = std::vector<int64_t>;
using Tensors = std::vector<std::pair<std::string, ir::Tensor>>;  // (name, value), in engine order

// Per input (in --shapeBuckets order) its shape in each bucket; bucket k is entry k of
// every input.
struct BucketSpec {
  std::vector<std::string> inputs;
  std::vector<std::vector<Dims>> shapes;  // [bucket][input]
};
// "input:1x1x8x8,8x1x8x8[,other:AxB,CxD]": an entry without "name:" is the next bucket of
// the input named before it.
BucketSpec parseShapeBuckets(const std::string& spec);

// The smallest bucket whose every input dim is >= the request's (same ranks, fixed dims
// equal); -1 when the request exceeds the top bucket. A dim equal in every bucket is fixed:
// the request must match it (only dims that differ between buckets are padded). Throws on
// a rank or fixed-dim mismatch, or a missing or unknown input.
int findBucket(const BucketSpec& buckets, const std::map<std::string, Dims>& request);

struct BucketTiming {
  int runs = 0;
  double medianMs = 0, p99Ms = 0, maxMs = 0;
};

struct LadderOptions {
  double margin = 0.25;  // each bucket's rung >= its p99 * (1 + margin)
  double ratio = 2.0;    // rung k = rung 0 * ratio^k
  double floorMs = 1.0;  // the lowest rung is at least this (absorbs scheduling noise)
};

struct AnonBuildOptions {
  int threads = 1;        // the worker's context threads: the ladder is timed with them
  int timingRuns = 200;   // timed runs per bucket (after 20 warm-up runs)
  LadderOptions ladder;
  bool verbose = false;
};

// The public part of the file: what the store shows clients (buckets, ladder) and what
// the worker needs besides the standard engine.
struct AnonHeader {
  int version = 1;
  BucketSpec buckets;
  std::vector<DataType> inputTypes;      // per bucketed input
  std::vector<BucketTiming> timings;     // per bucket, measured at build time
  std::vector<double> ladderMs;          // public rungs, increasing
  std::vector<int> bucketRung;           // the rung each bucket's p99 (+ margin) lands on
  LadderOptions ladder;
  int threads = 1;
  std::string target;                    // the standard engine's target (CPU ISA)
  std::vector<double> paddingMaxAbsDiff; // build-time check per bucket (0: exact)
};
nlohmann::json headerToJson(const AnonHeader& h);
AnonHeader headerFromJson(const nlohmann::json& j);

// Ladder rungs from per-bucket timings (exposed for tests).
void deriveLadder(AnonHeader* h);

class AnonEngine {
 public:
  static AnonEngine build(const std::string& onnxPath, const BucketSpec& buckets, const AnonBuildOptions& options);
  static AnonEngine load(const std::string& path);
  static AnonEngine fromBytes(const std::string& bytes);
  std::string serialize() const;

  const AnonHeader& header() const { return header_; }
  const std::shared_ptr<Engine>& engine() const { return engine_; }
  const std::string& engineBytes() const { return engineBytes_; }
  // The release time of a job of `bucket` whose work took `elapsedMs`: its bucket's rung,
  // or where the work overran it, the smallest rung >= the work (past the top, the ladder
  // continues geometrically). bucket < 0 (errors, no bucket): the smallest rung >= the work.
  double rungMs(double elapsedMs, int bucket = -1) const;

 private:
  AnonHeader header_;
  std::string engineBytes_;
  std::shared_ptr<Engine> engine_;
};

// One execution context of an AnonEngine (one per thread). run() pads the request to
// `bucket` (>= 0) or runs it at its own shape (bucket -1: the unbucketed mode) and returns
// the outputs at the request's own output shapes (what the engine resolves for the
// request's input shapes): the leading corner of the padded outputs.
class AnonRunner {
 public:
  explicit AnonRunner(const AnonEngine& engine, int threads = 0);  // 0: the header's threads
  Tensors run(const Tensors& inputs, int bucket);
  // Bytes of the outputs at a bucket's shapes (result payloads are padded to it).
  uint64_t bucketOutputBytes(int bucket) const { return bucketBytes_.at(size_t(bucket)); }

 private:
  // The output shapes (in the engine's I/O order) at the request's input shapes (in the
  // header's input order). Resolved on the shape context once per distinct shape, then
  // looked up: a resolution costs 50-150 us, and resolving per request made a request
  // smaller than its bucket slower than one at the bucket's shape (a size-dependent delay,
  // enough to move a job whose work ends near a rung onto the next one).
  const std::vector<Dims>& outputShapes(const std::vector<Dims>& inputShapes);

  const AnonEngine& anon_;
  std::unique_ptr<ExecutionContext> ctx_, shapeCtx_;
  std::map<std::vector<Dims>, std::vector<Dims>> outputShapes_;
  std::vector<uint64_t> bucketBytes_;
};

// Copies the leading corner shared by two shapes of one rank (pad: src smaller; slice: dst
// smaller), row-major, `elem` bytes per element.
void copyCorner(const uint8_t* src, const Dims& srcDims, uint8_t* dst, const Dims& dstDims, size_t elem);

}  // namespace anvil::anon
