// Building, storing and running bucketed engines (bucket_engine.h): the profile that spans
// the buckets, the build-time padding check, the per-bucket timings and the ladder, the
// anon.engine container, padding and slicing.
#include "runtime/anon/bucket_engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

namespace anvil::anon {

namespace {

constexpr char kMagic[8] = {'A', 'N', 'V', 'L', 'A', 'N', 'O', 'N'};
constexpr uint32_t kFormatVersion = 1;

std::string dimsStr(const Dims& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "x" : "") + std::to_string(d[i]);
  return s.empty() ? "scalar" : s;
}

void check(const Status& s, const char* what) {
  if (!s) ANVIL_THROW(s.code(), what, ": ", s.message());
}

// A dim that differs between buckets is bucketed (padded); the others are fixed.
bool isBucketedDim(const BucketSpec& b, size_t input, size_t d) {
  for (const auto& bucket : b.shapes)
    if (bucket[input][d] != b.shapes[0][input][d]) return true;
  return false;
}

Dims parseDims(const std::string& spec, const std::string& item, const std::string& body) {
  Dims dims;
  if (body == "scalar") return dims;
  std::stringstream ss(body + "x");
  std::string d;
  while (std::getline(ss, d, 'x')) {
    const bool digits = !d.empty() && d.size() < 19 && std::all_of(d.begin(), d.end(), ::isdigit);
    ANVIL_CHECK(digits && std::stoll(d) > 0, ErrorCode::kInvalidArgument, "--shapeBuckets=", spec, ": '", item,
                "': '", d, "' is not a positive dimension (dims are separated by 'x')");
    dims.push_back(std::stoll(d));
  }
  return dims;
}

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const size_t k = size_t(std::ceil(p * double(v.size()))) - 1;
  return v[std::min(k, v.size() - 1)];
}

ir::Tensor randomTensor(DataType t, const Dims& dims, std::mt19937& rng) {
  ir::Tensor x(t, dims);
  std::uniform_real_distribution<double> u(-1, 1);
  std::uniform_int_distribution<int> small(0, 3);
  for (int64_t i = 0; i < x.numel(); ++i) x.setDouble(i, t == DataType::kF32 || t == DataType::kF64 ? u(rng) : small(rng));
  return x;
}

}  // namespace

BucketSpec parseShapeBuckets(const std::string& spec) {
  std::vector<std::pair<std::string, std::vector<Dims>>> perInput;
  std::stringstream ss(spec);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.rfind(':');
    std::string body = item;
    if (colon != std::string::npos) {
      const std::string name = item.substr(0, colon);
      ANVIL_CHECK(!name.empty(), ErrorCode::kInvalidArgument, "--shapeBuckets=", spec, ": '", item, "' has no input name");
      for (const auto& [n, _] : perInput)
        ANVIL_CHECK(n != name, ErrorCode::kInvalidArgument, "--shapeBuckets=", spec, " names input '", name, "' twice");
      perInput.push_back({name, {}});
      body = item.substr(colon + 1);
    }
    ANVIL_CHECK(!perInput.empty(), ErrorCode::kInvalidArgument, "--shapeBuckets=", spec,
                ": expected name:AxB,CxD (e.g. input:1x1x8x8,8x1x8x8)");
    perInput.back().second.push_back(parseDims(spec, item, body));
  }
  ANVIL_CHECK(!perInput.empty(), ErrorCode::kInvalidArgument, "--shapeBuckets is empty");
  BucketSpec b;
  const size_t n = perInput[0].second.size();
  for (const auto& [name, shapes] : perInput) {
    ANVIL_CHECK(shapes.size() == n, ErrorCode::kInvalidArgument, "--shapeBuckets=", spec, ": input '", name, "' lists ",
                shapes.size(), " buckets, '", perInput[0].first, "' ", n, " (every input lists one shape per bucket)");
    b.inputs.push_back(name);
  }
  b.shapes.assign(n, {});
  for (size_t k = 0; k < n; ++k)
    for (size_t i = 0; i < perInput.size(); ++i) {
      const Dims& d = perInput[i].second[k];
      ANVIL_CHECK(d.size() == perInput[i].second[0].size(), ErrorCode::kInvalidArgument, "--shapeBuckets=", spec,
                  ": input '", b.inputs[i], "' has buckets of different ranks");
      if (k > 0) {
        const Dims& prev = b.shapes[k - 1][i];
        for (size_t j = 0; j < d.size(); ++j) {
          ANVIL_CHECK(d[j] >= prev[j], ErrorCode::kInvalidArgument, "--shapeBuckets=", spec, ": bucket ", k, " of '",
                      b.inputs[i], "' (", dimsStr(d), ") is smaller than bucket ", k - 1, " (", dimsStr(prev),
                      ") in dim ", j, ": list buckets from smallest to largest");
        }
      }
      b.shapes[k].push_back(d);
    }
  for (size_t k = 1; k < n; ++k)
    ANVIL_CHECK(b.shapes[k] != b.shapes[k - 1], ErrorCode::kInvalidArgument, "--shapeBuckets=", spec, ": buckets ",
                k - 1, " and ", k, " are the same");
  return b;
}

int findBucket(const BucketSpec& b, const std::map<std::string, Dims>& request) {
  ANVIL_CHECK(request.size() == b.inputs.size(), ErrorCode::kInvalidArgument, "the request has ", request.size(),
              " inputs, the engine ", b.inputs.size());
  for (size_t i = 0; i < b.inputs.size(); ++i) {
    auto it = request.find(b.inputs[i]);
    ANVIL_CHECK(it != request.end(), ErrorCode::kInvalidArgument, "the request has no input '", b.inputs[i], "'");
    const Dims& d = it->second;
    const Dims& top = b.shapes.back()[i];
    ANVIL_CHECK(d.size() == top.size(), ErrorCode::kShapeMismatch, "input '", b.inputs[i], "': rank ", d.size(),
                ", the buckets have rank ", top.size(), " (", dimsStr(top), ")");
    for (size_t j = 0; j < d.size(); ++j)
      ANVIL_CHECK(isBucketedDim(b, i, j) ? d[j] >= 1 : d[j] == top[j], ErrorCode::kShapeMismatch, "input '",
                  b.inputs[i], "': shape ", dimsStr(d), " has dim ", j, " = ", d[j], " where every bucket has ",
                  top[j], " (only the dims that differ between buckets are padded)");
  }
  for (size_t k = 0; k < b.shapes.size(); ++k) {
    bool fits = true;
    for (size_t i = 0; i < b.inputs.size() && fits; ++i) {
      const Dims& d = request.at(b.inputs[i]);
      for (size_t j = 0; j < d.size(); ++j) fits &= d[j] <= b.shapes[k][i][j];
    }
    if (fits) return int(k);
  }
  return -1;
}

void copyCorner(const uint8_t* src, const Dims& srcDims, uint8_t* dst, const Dims& dstDims, size_t elem) {
  const size_t rank = srcDims.size();
  if (rank == 0) {
    std::memcpy(dst, src, elem);
    return;
  }
  Dims common(rank);
  for (size_t d = 0; d < rank; ++d) common[d] = std::min(srcDims[d], dstDims[d]);
  for (int64_t c : common)
    if (c == 0) return;
  // Row-major strides of both; the innermost common run is one memcpy.
  Dims ss(rank, 1), ds(rank, 1);
  for (size_t d = rank - 1; d > 0; --d) {
    ss[d - 1] = ss[d] * srcDims[d];
    ds[d - 1] = ds[d] * dstDims[d];
  }
  Dims idx(rank, 0);
  const size_t run = size_t(common[rank - 1]) * elem;
  while (true) {
    int64_t so = 0, dof = 0;
    for (size_t d = 0; d + 1 < rank; ++d) {
      so += idx[d] * ss[d];
      dof += idx[d] * ds[d];
    }
    std::memcpy(dst + size_t(dof) * elem, src + size_t(so) * elem, run);
    int d = int(rank) - 2;
    for (; d >= 0; --d) {
      if (++idx[size_t(d)] < common[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
    if (d < 0) return;
  }
}

nlohmann::json headerToJson(const AnonHeader& h) {
  nlohmann::json j;
  j["version"] = h.version;
  j["inputs"] = nlohmann::json::array();
  for (size_t i = 0; i < h.buckets.inputs.size(); ++i)
    j["inputs"].push_back({{"name", h.buckets.inputs[i]}, {"dtype", dataTypeName(h.inputTypes[i])},
                           {"dtypeCode", int(h.inputTypes[i])}});
  j["buckets"] = h.buckets.shapes;
  j["ladderMs"] = h.ladderMs;
  j["bucketRung"] = h.bucketRung;
  j["ladder"] = {{"margin", h.ladder.margin}, {"ratio", h.ladder.ratio}, {"floorMs", h.ladder.floorMs}};
  j["timings"] = nlohmann::json::array();
  for (const BucketTiming& t : h.timings)
    j["timings"].push_back({{"runs", t.runs}, {"medianMs", t.medianMs}, {"p99Ms", t.p99Ms}, {"maxMs", t.maxMs}});
  j["threads"] = h.threads;
  j["target"] = h.target;
  j["paddingMaxAbsDiff"] = h.paddingMaxAbsDiff;
  return j;
}

AnonHeader headerFromJson(const nlohmann::json& j) {
  try {
    AnonHeader h;
    h.version = j.at("version").get<int>();
    ANVIL_CHECK(h.version == 1, ErrorCode::kInvalidEngine, "anon header version ", h.version, " (this anvil reads 1)");
    for (const auto& in : j.at("inputs")) {
      h.buckets.inputs.push_back(in.at("name").get<std::string>());
      h.inputTypes.push_back(DataType(in.at("dtypeCode").get<int>()));
    }
    h.buckets.shapes = j.at("buckets").get<std::vector<std::vector<Dims>>>();
    h.ladderMs = j.at("ladderMs").get<std::vector<double>>();
    h.bucketRung = j.at("bucketRung").get<std::vector<int>>();
    h.ladder.margin = j.at("ladder").at("margin").get<double>();
    h.ladder.ratio = j.at("ladder").at("ratio").get<double>();
    h.ladder.floorMs = j.at("ladder").at("floorMs").get<double>();
    for (const auto& t : j.at("timings"))
      h.timings.push_back({t.at("runs").get<int>(), t.at("medianMs").get<double>(), t.at("p99Ms").get<double>(),
                           t.at("maxMs").get<double>()});
    h.threads = j.at("threads").get<int>();
    h.target = j.at("target").get<std::string>();
    h.paddingMaxAbsDiff = j.at("paddingMaxAbsDiff").get<std::vector<double>>();
    const size_t n = h.buckets.shapes.size();
    ANVIL_CHECK(n > 0 && h.timings.size() == n && h.bucketRung.size() == n && !h.ladderMs.empty() &&
                    h.ladder.ratio > 1 && h.inputTypes.size() == h.buckets.inputs.size(),
                ErrorCode::kInvalidEngine, "anon header: inconsistent bucket, timing and ladder lists");
    for (const auto& bucket : h.buckets.shapes)
      ANVIL_CHECK(bucket.size() == h.buckets.inputs.size(), ErrorCode::kInvalidEngine,
                  "anon header: a bucket without a shape for every input");
    for (size_t k = 0; k < h.ladderMs.size(); ++k)
      ANVIL_CHECK(h.ladderMs[k] > 0 && (k == 0 || h.ladderMs[k] > h.ladderMs[k - 1]), ErrorCode::kInvalidEngine,
                  "anon header: the ladder is not increasing");
    for (int r : h.bucketRung)
      ANVIL_CHECK(r >= 0 && size_t(r) < h.ladderMs.size(), ErrorCode::kInvalidEngine, "anon header: bad bucket rung");
    return h;
  } catch (const nlohmann::json::exception& e) {
    ANVIL_THROW(ErrorCode::kInvalidEngine, "anon header: ", e.what());
  }
}

void deriveLadder(AnonHeader* h) {
  // need[k]: the time bucket k's work stays under except one run in a hundred, plus the
  // margin; nondecreasing (a larger bucket never gets an earlier rung than a smaller one).
  std::vector<double> need;
  for (const BucketTiming& t : h->timings)
    need.push_back(std::max(need.empty() ? 0.0 : need.back(), t.p99Ms * (1 + h->ladder.margin)));
  h->ladderMs.clear();
  h->bucketRung.clear();
  // Rungs are a geometric series from the first bucket's need (or the floor): a rung
  // serves every bucket whose need it covers, so buckets share rungs where their times
  // are within the ratio and the ladder stays short and public.
  double rung = std::max(h->ladder.floorMs, need.front());
  h->ladderMs.push_back(rung);
  while (h->ladderMs.back() < need.back()) h->ladderMs.push_back(h->ladderMs.back() * h->ladder.ratio);
  for (double n : need) {
    size_t k = 0;
    while (h->ladderMs[k] < n) ++k;
    h->bucketRung.push_back(int(k));
  }
}

double AnonEngine::rungMs(double elapsedMs, int bucket) const {
  const auto& ladder = header_.ladderMs;
  // Never earlier than the bucket's own rung: whether a job's work stays under a lower rung
  // depends on the request (its true size changes decoding, padding and caches), so a
  // release there would tell sizes apart inside the bucket.
  const size_t first = bucket >= 0 && size_t(bucket) < header_.bucketRung.size() ? size_t(header_.bucketRung[size_t(bucket)]) : 0;
  for (size_t k = first; k < ladder.size(); ++k)
    if (ladder[k] >= elapsedMs) return ladder[k];
  double r = ladder.back();
  while (r < elapsedMs) r *= header_.ladder.ratio;
  return r;
}

AnonEngine AnonEngine::build(const std::string& onnxPath, const BucketSpec& buckets, const AnonBuildOptions& o) {
  BuilderConfig cfg;
  cfg.threads = o.threads;
  cfg.verbose = o.verbose;
  // One profile spanning every bucket: the bucketed dims from 1 (the unbucketed mode runs
  // requests at their own shape) to the top bucket, tuned for the top bucket.
  for (size_t i = 0; i < buckets.inputs.size(); ++i) {
    InputProfile p;
    p.max = buckets.shapes.back()[i];
    p.opt = p.max;
    p.min = p.max;
    for (size_t d = 0; d < p.min.size(); ++d)
      if (isBucketedDim(buckets, i, d)) p.min[d] = 1;
    cfg.profiles[buckets.inputs[i]] = p;
    cfg.inputShapes[buckets.inputs[i]] = p.opt;
  }
  AnonEngine e;
  check(Builder::buildFromOnnx(onnxPath, cfg, &e.engineBytes_), "building the bucketed engine");
  check(Engine::fromBytes(e.engineBytes_, &e.engine_), "loading the built engine");
  AnonHeader& h = e.header_;
  h.buckets = buckets;
  h.threads = o.threads;
  h.ladder = o.ladder;
  h.target = e.engine_->target();
  size_t inputsInEngine = 0;
  for (const TensorDesc& t : e.engine_->io()) inputsInEngine += t.isInput;
  ANVIL_CHECK(inputsInEngine == buckets.inputs.size(), ErrorCode::kInvalidArgument, "--shapeBuckets names ",
              buckets.inputs.size(), " inputs, the model has ", inputsInEngine, ": give buckets for every input");
  for (const std::string& name : buckets.inputs) {
    const TensorDesc* d = e.engine_->find(name);
    ANVIL_CHECK(d && d->isInput, ErrorCode::kInvalidArgument, "--shapeBuckets: the model has no input '", name, "'");
    ANVIL_CHECK(d->dtype != DataType::kString, ErrorCode::kUnsupported, "input '", name,
                "' is a string tensor: the anon mode pads numeric tensors only");
    h.inputTypes.push_back(d->dtype);
  }

  AnonRunner runner(e, o.threads);
  std::mt19937 rng(1234);
  for (size_t k = 0; k < buckets.shapes.size(); ++k) {
    // Padding check: the request that pads most into bucket k (one past the previous
    // bucket along each bucketed dim) must give, sliced, what it gives at its own shape.
    Tensors request;
    for (size_t i = 0; i < buckets.inputs.size(); ++i) {
      Dims d = buckets.shapes[k][i];
      for (size_t j = 0; j < d.size(); ++j)
        if (isBucketedDim(buckets, i, j)) d[j] = k == 0 ? 1 : std::min(d[j], buckets.shapes[k - 1][i][j] + 1);
      request.push_back({buckets.inputs[i], randomTensor(h.inputTypes[i], d, rng)});
    }
    const Tensors own = runner.run(request, -1), padded = runner.run(request, int(k));
    double maxDiff = 0, scale = 0;
    for (size_t t = 0; t < own.size(); ++t) {
      ANVIL_CHECK(own[t].second.dims() == padded[t].second.dims(), ErrorCode::kInternal, "padded output '",
                  own[t].first, "' sliced to the wrong shape");
      for (int64_t x = 0; x < own[t].second.numel(); ++x) {
        maxDiff = std::max(maxDiff, std::abs(own[t].second.getDouble(x) - padded[t].second.getDouble(x)));
        scale = std::max(scale, std::abs(own[t].second.getDouble(x)));
      }
    }
    h.paddingMaxAbsDiff.push_back(maxDiff);
    ANVIL_CHECK(maxDiff <= 1e-5 * std::max(scale, 1.0), ErrorCode::kUnsupported, "bucket ", k,
                ": zero padding changes the outputs (max abs difference ", maxDiff, " at ", scale,
                " scale): the model mixes positions along a padded dim (softmax, attention or normalization over "
                "it); bucket only the dims along which outputs are independent (batch, or a position-wise sequence)");

    // Timing at the bucket's shape, as the worker runs it.
    Tensors full;
    for (size_t i = 0; i < buckets.inputs.size(); ++i)
      full.push_back({buckets.inputs[i], randomTensor(h.inputTypes[i], buckets.shapes[k][i], rng)});
    for (int w = 0; w < 20; ++w) runner.run(full, int(k));
    std::vector<double> ms;
    for (int r = 0; r < std::max(o.timingRuns, 10); ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      runner.run(full, int(k));
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    h.timings.push_back({int(ms.size()), percentile(ms, 0.5), percentile(ms, 0.99), percentile(ms, 1.0)});
  }
  deriveLadder(&h);
  return e;
}

std::string AnonEngine::serialize() const {
  const std::string json = headerToJson(header_).dump();
  std::string out(kMagic, sizeof kMagic);
  auto put = [&](uint64_t v, int bytes) {
    for (int i = 0; i < bytes; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
  };
  put(kFormatVersion, 4);
  put(0, 4);  // reserved
  put(json.size(), 8);
  out += json;
  put(engineBytes_.size(), 8);
  out += engineBytes_;
  return out;
}

AnonEngine AnonEngine::fromBytes(const std::string& bytes) {
  size_t pos = 0;
  auto need = [&](size_t n, const char* what) {
    ANVIL_CHECK(bytes.size() - pos >= n, ErrorCode::kInvalidEngine, "anon engine truncated in ", what, " (",
                bytes.size(), " bytes)");
  };
  auto get = [&](int n, const char* what) {
    need(size_t(n), what);
    uint64_t v = 0;
    for (int i = 0; i < n; ++i) v |= uint64_t(uint8_t(bytes[pos + size_t(i)])) << (8 * i);
    pos += size_t(n);
    return v;
  };
  need(sizeof kMagic, "the magic");
  ANVIL_CHECK(std::memcmp(bytes.data(), kMagic, sizeof kMagic) == 0, ErrorCode::kInvalidEngine,
              "not an anon engine (no ANVLANON magic): build one with anvil --mode=anon --shapeBuckets=...");
  pos = sizeof kMagic;
  const uint64_t version = get(4, "the version");
  ANVIL_CHECK(version == kFormatVersion, ErrorCode::kInvalidEngine, "anon engine format version ", version,
              " (this anvil reads ", kFormatVersion, ")");
  get(4, "the reserved word");
  const uint64_t jsonLen = get(8, "the header length");
  need(jsonLen, "the header");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(bytes.substr(pos, jsonLen));
  } catch (const nlohmann::json::exception& ex) {
    ANVIL_THROW(ErrorCode::kInvalidEngine, "anon engine header is not JSON: ", ex.what());
  }
  pos += jsonLen;
  AnonEngine e;
  e.header_ = headerFromJson(j);
  const uint64_t engineLen = get(8, "the engine length");
  need(engineLen, "the standard engine");
  ANVIL_CHECK(pos + engineLen == bytes.size(), ErrorCode::kInvalidEngine, "anon engine: ",
              bytes.size() - pos - engineLen, " trailing bytes");
  e.engineBytes_ = bytes.substr(pos, engineLen);
  check(Engine::fromBytes(e.engineBytes_, &e.engine_), "the anon engine's standard engine");
  for (size_t i = 0; i < e.header_.buckets.inputs.size(); ++i) {
    const TensorDesc* d = e.engine_->find(e.header_.buckets.inputs[i]);
    ANVIL_CHECK(d && d->isInput && d->dtype == e.header_.inputTypes[i], ErrorCode::kInvalidEngine,
                "anon engine: bucketed input '", e.header_.buckets.inputs[i], "' is not an input of its engine");
  }
  return e;
}

AnonEngine AnonEngine::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  ANVIL_CHECK(in.good(), ErrorCode::kIoError, "cannot read the anon engine ", path);
  std::stringstream ss;
  ss << in.rdbuf();
  return fromBytes(ss.str());
}

AnonRunner::AnonRunner(const AnonEngine& engine, int threads) : anon_(engine) {
  ContextOptions opts;
  opts.threads = threads > 0 ? threads : engine.header().threads;
  check(engine.engine()->createContext(&ctx_, opts), "creating the run context");
  ContextOptions one;
  one.threads = 1;
  check(engine.engine()->createContext(&shapeCtx_, one), "creating the shape context");
  const AnonHeader& h = engine.header();
  for (const auto& shapes : h.buckets.shapes) {
    uint64_t bytes = 0;
    size_t o = 0;
    for (const TensorDesc& d : engine.engine()->io()) {
      if (d.isInput) continue;
      uint64_t n = 1;
      for (int64_t x : outputShapes(shapes)[o++]) n *= uint64_t(std::max<int64_t>(x, 0));
      bytes += n * dataTypeSize(d.dtype);
    }
    bucketBytes_.push_back(bytes);
  }
}

const std::vector<Dims>& AnonRunner::outputShapes(const std::vector<Dims>& inputShapes) {
  auto it = outputShapes_.find(inputShapes);
  if (it != outputShapes_.end()) return it->second;
  // Bounded: a worker serving many distinct shapes (buckets over two dims) starts over.
  if (outputShapes_.size() >= 4096) outputShapes_.clear();
  const AnonHeader& h = anon_.header();
  for (size_t i = 0; i < h.buckets.inputs.size(); ++i)
    check(shapeCtx_->setInputShape(h.buckets.inputs[i], inputShapes[i]), "setting the request shape");
  std::vector<Dims> out;
  for (const TensorDesc& d : anon_.engine()->io()) {
    if (d.isInput) continue;
    out.emplace_back();
    check(shapeCtx_->getTensorShape(d.name, &out.back()), "resolving an output shape");
  }
  return outputShapes_.emplace(inputShapes, std::move(out)).first->second;
}

Tensors AnonRunner::run(const Tensors& inputs, int bucket) {
  const AnonHeader& h = anon_.header();
  ANVIL_CHECK(inputs.size() == h.buckets.inputs.size(), ErrorCode::kInvalidArgument, "the request has ",
              inputs.size(), " inputs, the engine ", h.buckets.inputs.size());
  std::vector<ir::Tensor> bound;
  std::vector<Dims> requestShapes(inputs.size());
  std::vector<bool> given(inputs.size(), false);
  for (size_t i = 0; i < inputs.size(); ++i) {
    const auto& [name, t] = inputs[i];
    auto pos = std::find(h.buckets.inputs.begin(), h.buckets.inputs.end(), name);
    ANVIL_CHECK(pos != h.buckets.inputs.end(), ErrorCode::kInvalidArgument, "the engine has no input '", name, "'");
    const size_t k = size_t(pos - h.buckets.inputs.begin());
    ANVIL_CHECK(t.dtype() == h.inputTypes[k], ErrorCode::kShapeMismatch, "input '", name, "' is ",
                dataTypeName(t.dtype()), ", the engine takes ", dataTypeName(h.inputTypes[k]));
    // The request's own shape decides its output shapes (the slice).
    ANVIL_CHECK(!given[k], ErrorCode::kInvalidArgument, "input '", name, "' is given twice");
    given[k] = true;
    requestShapes[k] = t.dims();
    if (bucket < 0) {
      bound.push_back(t);
    } else {
      const Dims& bd = h.buckets.shapes[size_t(bucket)][k];
      ir::Tensor p(t.dtype(), bd);  // zero-filled
      copyCorner(static_cast<const uint8_t*>(t.raw()), t.dims(), static_cast<uint8_t*>(p.mutableRaw()), bd,
                 dataTypeSize(t.dtype()));
      bound.push_back(p);
    }
    check(ctx_->setInputShape(name, bound.back().dims()), "setting the run shape");
    check(ctx_->setTensorAddress(name, bound.back().mutableRaw()), "binding an input");
  }
  check(ctx_->run(), "running the request");
  const std::vector<Dims>& owns = outputShapes(requestShapes);
  Tensors out;
  size_t o = 0;
  for (const TensorDesc& d : anon_.engine()->io()) {
    if (d.isInput) continue;
    Dims ran;
    const Dims& own = owns[o++];
    check(ctx_->getTensorShape(d.name, &ran), "reading an output shape");
    for (int64_t x : own)
      ANVIL_CHECK(x >= 0, ErrorCode::kUnsupported, "output '", d.name,
                  "': its shape depends on the data, so the padding cannot be sliced out of it");
    ANVIL_CHECK(ran.size() == own.size(), ErrorCode::kInternal, "output '", d.name, "': rank differs between shapes");
    for (size_t j = 0; j < own.size(); ++j)
      ANVIL_CHECK(own[j] <= ran[j], ErrorCode::kUnsupported, "output '", d.name, "' of the request (", dimsStr(own),
                  ") is larger than at the bucket (", dimsStr(ran), ")");
    ir::Tensor t(d.dtype, own);
    const auto* src = static_cast<const uint8_t*>(ctx_->outputData(d.name));
    ANVIL_CHECK(src || t.numel() == 0, ErrorCode::kInternal, "output '", d.name, "' has no data after the run");
    if (t.numel() > 0) copyCorner(src, ran, static_cast<uint8_t*>(t.mutableRaw()), own, dataTypeSize(d.dtype));
    out.push_back({d.name, t});
  }
  return out;
}

}  // namespace anvil::anon
