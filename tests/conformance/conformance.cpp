// ONNX backend node-test conformance: every case (model.onnx + test_data_set_*/) runs in a
// forked child (a crash or hang costs one case, not the run) and is compared with the
// expected outputs at per-type tolerances. --path chooses how a case reaches the kernels:
//   interp  parser -> (passes::optimize at --opt-level) -> reference interpreter (default);
//   engine  Builder::buildFromOnnx at --opt-level -> engine bytes -> Engine -> context, as an
//           application uses the C++ API (outputs of data-dependent size through an
//           OutputAllocator, zero-element inputs bound to nullptr);
//   cli     the `anvil` CLI (--anvil=PATH) as a child process: inputs as .npy files
//           (raw bytes + --shapes for types NumPy lacks), outputs read back from --saveOutputs.
// Prints one line per failing case (PASS/FAIL/CRASH, the first error line) and a summary
// per data set: passed / failed / crashed / excluded. Exits non-zero when a case crashes or
// a data set passes fewer cases than the baseline file records for this path (format in
// loadBaseline and at the top of baseline.txt). --write-docs (interp path) writes
// docs/operators.md from the importer table.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "anvil/anvil.hpp"
#include "runtime/kernel.h"
#include "cpu/reference.h"
#include "ir/op_schema.h"
#include "parser/onnx_parser.h"
#include "passes/pipeline.h"
#include "tools/npy.h"

namespace fs = std::filesystem;
using anvil::ir::DataType;
using anvil::ir::Tensor;

namespace {

struct Exclusion {
  std::regex pattern;
  std::string text, reason;
};

std::vector<Exclusion> loadExclusions(const std::string& path) {
  std::vector<Exclusion> out;
  if (path.empty()) return out;
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open exclusions file " + path);
  std::string line;
  while (std::getline(f, line)) {
    size_t a = line.find_first_not_of(" \t");
    if (a == std::string::npos || line[a] == '#') continue;
    size_t hash = line.find('#', a);
    std::string pat = line.substr(a, hash == std::string::npos ? std::string::npos : hash - a);
    pat.erase(pat.find_last_not_of(" \t") + 1);
    std::string reason = hash == std::string::npos ? "" : line.substr(hash + 1);
    reason.erase(0, reason.find_first_not_of(" \t"));
    if (reason.empty()) throw std::runtime_error("exclusion '" + pat + "' has no reason (add '# why')");
    out.push_back({std::regex(pat), pat, reason});
  }
  return out;
}

// Tolerances per element type, in the spirit of onnxruntime's test runner.
struct Tol {
  double atol, rtol;
};
Tol tolFor(DataType t) {
  switch (t) {
    case DataType::kF64: return {1e-7, 1e-5};
    case DataType::kF32: return {1e-5, 1e-3};
    case DataType::kF16: return {1e-3, 1e-2};
    case DataType::kBF16: return {1e-2, 2e-2};
    default: return {0, 0};  // integers, bool, f8/f4 codes: exact
  }
}

std::string compare(const Tensor& got, const Tensor& want, const std::string& name) {
  std::ostringstream os;
  if (got.dtype() != want.dtype()) {
    os << name << ": type " << anvil::ir::dtypeName(got.dtype()) << ", expected " << anvil::ir::dtypeName(want.dtype());
    return os.str();
  }
  if (got.dims() != want.dims()) {
    os << name << ": shape " << got.summary() << ", expected " << want.summary();
    return os.str();
  }
  if (got.dtype() == DataType::kString) {
    for (int64_t i = 0; i < got.numel(); ++i)
      if (got.str(i) != want.str(i)) return name + ": string mismatch at " + std::to_string(i);
    return "";
  }
  const DataType dt = got.dtype();
  const bool exactBits = !(dt == DataType::kF32 || dt == DataType::kF64 || dt == DataType::kF16 || dt == DataType::kBF16);
  if (exactBits && dt != DataType::kF8E4M3FN && dt != DataType::kF8E4M3FNUZ && dt != DataType::kF8E5M2 &&
      dt != DataType::kF8E5M2FNUZ) {
    if (got.sameAs(want)) return "";
    for (int64_t i = 0; i < got.numel(); ++i)
      if (got.getDouble(i) != want.getDouble(i)) {
        os << name << ": element " << i << " is " << got.getDouble(i) << ", expected " << want.getDouble(i);
        return os.str();
      }
    return name + ": bytes differ";
  }
  Tol tol = tolFor(dt);
  for (int64_t i = 0; i < got.numel(); ++i) {
    double g = got.getDouble(i), w = want.getDouble(i);
    if (std::isnan(w) || std::isnan(g)) {
      if (std::isnan(w) != std::isnan(g)) {
        os << name << ": element " << i << " is " << g << ", expected " << w;
        return os.str();
      }
      continue;
    }
    if (std::isinf(w) || std::isinf(g)) {
      if (g != w) {
        os << name << ": element " << i << " is " << g << ", expected " << w;
        return os.str();
      }
      continue;
    }
    if (std::fabs(g - w) > tol.atol + tol.rtol * std::fabs(w)) {
      os << name << ": element " << i << " is " << g << ", expected " << w << " (|diff| " << std::fabs(g - w) << ")";
      return os.str();
    }
  }
  return "";
}

void collectOps(const anvil::ir::Graph& g, std::set<std::string>& ops) {
  for (const auto& n : g.nodes()) ops.insert(n->domain().empty() ? n->op() : n->domain() + "." + n->op());
  for (const auto* sub : g.subgraphs())
    for (const auto& n : sub->nodes()) ops.insert(n->domain().empty() ? n->op() : n->domain() + "." + n->op());
}

// ONNX's test generator stores bf16 data as uint16 (the same bits): retag it where bf16 is meant.
Tensor bf16FromU16(Tensor t, DataType meant) {
  if (t.dtype() != DataType::kU16 || meant != DataType::kBF16) return t;
  Tensor r(DataType::kBF16, t.dims());
  if (t.nbytes() > 0) std::memcpy(r.mutableRaw(), t.raw(), t.nbytes());
  return r;
}

// How a case reaches the kernels: the reference interpreter on the parsed graph, the
// builder + runtime through the public C++ API, or the `anvil` CLI as a child process.
enum class Path { kInterp, kEngine, kCli };
const char* pathName(Path p) { return p == Path::kInterp ? "interp" : p == Path::kEngine ? "engine" : "cli"; }

struct RunOptions {
  Path path = Path::kInterp;
  int optLevel = 0;
  // --blocked-layouts (engine path): "always" builds every case's blockable nodes with
  // NCHW16c / NCHW8c kernels, whatever the timings say, so the blocked kernels meet every
  // node test; "auto" (the builder's default) times them.
  anvil::BuilderConfig::BlockedLayouts blocked = anvil::BuilderConfig::BlockedLayouts::kAuto;
  std::string anvil;  // the CLI binary (--path=cli)
  // --anvil-arg=X (repeatable, --path=cli): appended to every CLI run, e.g. --device=cuda
  // --computeCapability=9.0 --simulate to run the cases as CUDA engines on the simulator.
  std::vector<std::string> anvilArgs;
};

// One test_data_set_N: inputs by graph-input name (in graph order) and expected outputs.
struct DataSet {
  std::string name;
  std::vector<std::pair<std::string, Tensor>> inputs;
  std::vector<Tensor> expected;
};

std::vector<DataSet> loadDataSets(const fs::path& dir, const anvil::ir::Graph& g) {
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) dirs.push_back(e.path());
  std::sort(dirs.begin(), dirs.end());
  std::vector<const anvil::ir::Value*> realInputs;
  for (const auto* v : g.inputs())
    if (!v->isInitializer()) realInputs.push_back(v);
  std::vector<DataSet> sets;
  for (const fs::path& d : dirs) {
    DataSet s;
    s.name = d.filename().string();
    for (size_t i = 0;; ++i) {
      fs::path p = d / ("input_" + std::to_string(i) + ".pb");
      if (!fs::exists(p)) break;
      ANVIL_CHECK(i < realInputs.size(), anvil::ErrorCode::kInvalidArgument, "more input files than graph inputs");
      s.inputs.emplace_back(realInputs[i]->name(),
                            bf16FromU16(anvil::parser::loadTensorProto(p.string()), realInputs[i]->dtype()));
    }
    for (size_t i = 0;; ++i) {
      fs::path p = d / ("output_" + std::to_string(i) + ".pb");
      if (!fs::exists(p)) break;
      DataType meant = i < g.outputs().size() ? g.outputs()[i]->dtype() : DataType::kUndefined;
      s.expected.push_back(bf16FromU16(anvil::parser::loadTensorProto(p.string()), meant));
    }
    sets.push_back(std::move(s));
  }
  return sets;
}

// Compares the outputs of one data set; "" when all match.
std::string compareOutputs(const std::vector<Tensor>& got, const DataSet& set, const anvil::ir::Graph& g) {
  for (size_t i = 0; i < set.expected.size(); ++i) {
    if (i >= got.size()) return "fewer outputs than expected";
    std::string diff = compare(got[i], set.expected[i], "output " + std::to_string(i) + " '" + g.outputs()[i]->name() + "'");
    if (!diff.empty()) return set.name + ": " + diff;
  }
  return "";
}

// The shapes to build for: the first data set's, widened to a profile when later sets
// use other extents of the same rank.
void fillShapes(const std::vector<DataSet>& sets, anvil::BuilderConfig& cfg) {
  if (sets.empty()) return;
  for (const auto& [name, t] : sets[0].inputs) {
    cfg.inputShapes[name] = t.dims();
    anvil::InputProfile p{t.dims(), t.dims(), t.dims()};
    bool differs = false, sameRank = true;
    for (size_t k = 1; k < sets.size(); ++k)
      for (const auto& [n2, t2] : sets[k].inputs) {
        if (n2 != name) continue;
        if (t2.rank() != t.rank()) sameRank = false;
        if (t2.dims() != t.dims()) differs = true;
        for (size_t d = 0; sameRank && d < t.rank(); ++d) {
          p.min[d] = std::min(p.min[d], t2.dim(d));
          p.max[d] = std::max(p.max[d], t2.dim(d));
        }
      }
    if (differs && sameRank) cfg.profiles[name] = p;
  }
}

// Receives outputs whose size only the run decides: keeps the memory and the final shape.
class RecordingAllocator : public anvil::OutputAllocator {
 public:
  explicit RecordingAllocator(DataType dtype) : dtype_(dtype) {}
  ~RecordingAllocator() override { std::free(raw_); }
  void* reallocateOutput(const char*, void* current, uint64_t bytes, uint64_t alignment) override {
    ++reallocations_;
    if (current && current == data() && bytes <= capacity_) return current;
    if (dtype_ == DataType::kString) {  // string tensors are arrays of std::string
      strings_.assign(std::max<size_t>(1, size_t(bytes / sizeof(std::string)) + 1), std::string());
      capacity_ = strings_.size() * sizeof(std::string);
      return strings_.data();
    }
    const size_t align = std::max<size_t>(64, size_t(alignment));
    const size_t size = std::max<size_t>(align, (size_t(bytes) + align - 1) / align * align);
    std::free(raw_);
    raw_ = std::aligned_alloc(align, size);
    capacity_ = raw_ ? size : 0;
    return raw_;
  }
  void notifyShape(const char*, const std::vector<int64_t>& dims) override {
    dims_ = dims;
    notified_ = true;
  }
  bool notified() const { return notified_; }
  int reallocations() const { return reallocations_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  const void* data() const { return dtype_ == DataType::kString ? static_cast<const void*>(strings_.data()) : raw_; }
  uint64_t capacity() const { return capacity_; }

 private:
  DataType dtype_;
  void* raw_ = nullptr;
  std::vector<std::string> strings_;
  uint64_t capacity_ = 0;
  std::vector<int64_t> dims_;
  bool notified_ = false;
  int reallocations_ = 0;
};

// A copy of `n` elements of `dtype` at `data` as a tensor of `dims`.
Tensor tensorFrom(DataType dtype, const std::vector<int64_t>& dims, const void* data) {
  Tensor t(dtype, dims);
  if (t.numel() == 0) return t;
  if (dtype == DataType::kString) {
    for (int64_t i = 0; i < t.numel(); ++i) t.data<std::string>()[i] = static_cast<const std::string*>(data)[i];
  } else {
    std::memcpy(t.mutableRaw(), data, t.nbytes());
  }
  return t;
}

std::string statusText(const anvil::Status& s) {
  return std::string(anvil::errorCodeName(s.code())) + ": " + s.message();
}

// Builder -> engine bytes -> Engine -> one context run per data set, all through the
// public API as an application would use it.
std::string runEngineCase(const fs::path& dir, const anvil::ir::Graph& g, const std::vector<DataSet>& sets,
                          const RunOptions& opt) {
  anvil::BuilderConfig cfg;
  cfg.optimizationLevel = opt.optLevel;
  cfg.blockedLayouts = opt.blocked;
  cfg.threads = 1;
  cfg.timingIterations = 1;  // correctness, not speed: one timing per candidate is enough
  fillShapes(sets, cfg);
  std::string bytes;
  anvil::Status s = anvil::Builder::buildFromOnnx((dir / "model.onnx").string(), cfg, &bytes);
  if (!s) return "build: " + statusText(s);
  std::shared_ptr<anvil::Engine> engine;
  s = anvil::Engine::fromBytes(std::move(bytes), &engine);
  if (!s) return "load: " + statusText(s);
  std::unique_ptr<anvil::ExecutionContext> ctx;
  anvil::ContextOptions copts;
  copts.threads = 1;
  s = engine->createContext(&ctx, copts);
  if (!s) return "context: " + statusText(s);
  std::vector<const anvil::TensorDesc*> outs;
  for (const auto& d : engine->io())
    if (!d.isInput) outs.push_back(&d);
  for (size_t i = 0; i < outs.size() && i < g.outputs().size(); ++i)
    if (outs[i]->name != g.outputs()[i]->name())
      return "engine output " + std::to_string(i) + " is '" + outs[i]->name + "', the model's is '" +
             g.outputs()[i]->name() + "'";
  for (const DataSet& set : sets) {
    for (const auto& [name, t] : set.inputs) {
      const anvil::TensorDesc* d = engine->find(name);
      if (!d) continue;  // an input the optimized graph no longer reads
      if (!d->isInput) return "engine: '" + name + "' is not an input";
      s = ctx->setInputShape(name, t.dims());
      if (!s) return set.name + ": setInputShape('" + name + "'): " + statusText(s);
      // The context only reads inputs; a zero-element input is bound to nullptr.
      void* p = t.numel() == 0 ? nullptr : const_cast<void*>(t.raw());
      s = ctx->setTensorAddress(name, p);
      if (!s) return set.name + ": setTensorAddress('" + name + "'): " + statusText(s);
    }
    std::vector<Tensor> fixed(outs.size());
    std::vector<std::unique_ptr<RecordingAllocator>> allocators(outs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      std::vector<int64_t> dims;
      s = ctx->getTensorShape(outs[i]->name, &dims);
      if (!s) return set.name + ": getTensorShape('" + outs[i]->name + "'): " + statusText(s);
      bool known = std::all_of(dims.begin(), dims.end(), [](int64_t d) { return d >= 0; });
      if (known) {
        fixed[i] = Tensor(outs[i]->dtype, dims);
        s = ctx->setTensorAddress(outs[i]->name, fixed[i].numel() ? fixed[i].mutableRaw() : nullptr);
      } else {
        allocators[i] = std::make_unique<RecordingAllocator>(outs[i]->dtype);
        s = ctx->setOutputAllocator(outs[i]->name, allocators[i].get());
      }
      if (!s) return set.name + ": binding output '" + outs[i]->name + "': " + statusText(s);
    }
    s = ctx->run();
    if (!s) return set.name + ": run: " + statusText(s);
    std::vector<Tensor> got;
    for (size_t i = 0; i < outs.size(); ++i) {
      if (!allocators[i]) {
        got.push_back(fixed[i]);
        continue;
      }
      const RecordingAllocator& a = *allocators[i];
      if (!a.notified())
        return set.name + ": the output allocator of '" + outs[i]->name + "' was never told its shape";
      const size_t need = anvil::ir::storageBytes(outs[i]->dtype, anvil::ir::numelOf(a.dims()));
      if (need > 0 && (!a.data() || a.capacity() < need))
        return set.name + ": output '" + outs[i]->name + "' needs " + std::to_string(need) +
               " bytes, the allocator was asked for " + std::to_string(a.capacity());
      got.push_back(tensorFrom(outs[i]->dtype, a.dims(), a.data()));
    }
    std::string diff = compareOutputs(got, set, g);
    if (!diff.empty()) return diff;
  }
  return "";
}

// ---- the CLI path ------------------------------------------------------------------------

// Types a .npy file carries; the others go to the CLI as raw bytes with --shapes.
bool npyCarries(DataType t) {
  switch (t) {
    case DataType::kF32: case DataType::kF64: case DataType::kF16: case DataType::kI8: case DataType::kU8:
    case DataType::kI16: case DataType::kU16: case DataType::kI32: case DataType::kU32: case DataType::kI64:
    case DataType::kU64: case DataType::kBool: case DataType::kString:
      return true;
    default:
      return false;
  }
}

std::string shapeSpec(const std::vector<int64_t>& dims) {
  std::string s;
  for (size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
  return s;
}

std::string cliFileName(const std::string& name) {
  std::string s = name;
  for (char& c : s)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  return s;
}

// Thrown (in the forked child) when the CLI died of a signal: the case crashed.
struct CliCrash {
  std::string what;
};

// Runs argv with stdout/stderr to `log`; returns the exit status as waitpid reports it.
int spawn(const std::vector<std::string>& args, const fs::path& log) {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* f = std::fopen(log.c_str(), "w");
    if (f) {
      dup2(fileno(f), 1);
      dup2(fileno(f), 2);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

// The first error line of the CLI's log ("[E] ..."), else its last line.
std::string firstError(const fs::path& log) {
  std::ifstream f(log);
  std::string line, last;
  while (std::getline(f, line)) {
    if (line.rfind("[E]", 0) == 0) return line;
    if (!line.empty()) last = line;
  }
  return last.empty() ? "(no output)" : last;
}

// Each data set: inputs written to files, one `anvil --onnx=...` run, outputs read back.
std::string runCliCase(const fs::path& dir, const anvil::ir::Graph& g, const std::vector<DataSet>& sets,
                       const RunOptions& opt, const fs::path& scratch) {
  for (const DataSet& set : sets) {
    fs::path work = scratch / set.name;
    fs::create_directories(work);
    std::string load, shapes;
    for (size_t i = 0; i < set.inputs.size(); ++i) {
      const auto& [name, t] = set.inputs[i];
      const bool npy = npyCarries(t.dtype());
      fs::path file = work / ("input_" + std::to_string(i) + (npy ? ".npy" : ".bin"));
      if (npy) {
        anvil::tools::writeNpy(file.string(), t);
      } else {
        std::ofstream f(file, std::ios::binary);
        f.write(static_cast<const char*>(t.raw()), std::streamsize(t.nbytes()));
      }
      load += (load.empty() ? "" : ",") + name + ":" + file.string();
      shapes += (shapes.empty() ? "" : ",") + name + ":" + (t.rank() ? shapeSpec(t.dims()) : "scalar");
    }
    fs::path outDir = work / "out";
    std::vector<std::string> args = {opt.anvil, "--onnx=" + (dir / "model.onnx").string(),
                                     "--saveOutputs=" + outDir.string(), "--iterations=1", "--duration=0",
                                     "--warmUp=0", "--threads=1",
                                     "--builderOptimizationLevel=" + std::to_string(opt.optLevel)};
    if (!load.empty()) {
      args.push_back("--loadInputs=" + load);
      args.push_back("--shapes=" + shapes);
    }
    args.insert(args.end(), opt.anvilArgs.begin(), opt.anvilArgs.end());
    const fs::path log = work / "anvil.log";
    int status = spawn(args, log);
    if (WIFSIGNALED(status))
      throw CliCrash{set.name + ": the CLI crashed with signal " + strsignal(WTERMSIG(status)) + ": " + firstError(log)};
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return set.name + ": the CLI exited " + std::to_string(WEXITSTATUS(status)) + ": " + firstError(log);
    std::vector<Tensor> got;
    for (size_t i = 0; i < set.expected.size() && i < g.outputs().size(); ++i) {
      fs::path file = outDir / (cliFileName(g.outputs()[i]->name()) + ".npy");
      if (!fs::exists(file)) return set.name + ": the CLI wrote no " + file.filename().string();
      got.push_back(anvil::tools::readNpy(file.string()));
    }
    // Types NumPy lacks (bf16, f8, f4, 4-bit integers) reach the .npy widened, exactly, to
    // f32/i8/u8. bf16 narrows back exactly (and keeps its tolerance); the others are
    // compared widened (f8 saturates Inf on the way back).
    DataSet widened = set;
    for (size_t i = 0; i < got.size(); ++i) {
      const Tensor& w = set.expected[i];
      if (npyCarries(w.dtype()) || got[i].dtype() == w.dtype()) continue;
      if (w.dtype() == DataType::kBF16) {
        Tensor b(DataType::kBF16, got[i].dims());
        for (int64_t k = 0; k < b.numel(); ++k) b.setDouble(k, got[i].getDouble(k));
        got[i] = b;
        continue;
      }
      Tensor t(got[i].dtype(), w.dims());
      for (int64_t k = 0; k < w.numel(); ++k) t.setDouble(k, w.getDouble(k));
      widened.expected[i] = t;
    }
    std::string diff = compareOutputs(got, widened, g);
    if (!diff.empty()) return diff;
  }
  return "";
}

// Runs one case; returns "" on success or the reason of failure. `ops` gets the op types.
std::string runCase(const fs::path& dir, const RunOptions& opt, const fs::path& scratch, std::set<std::string>& ops,
                    std::string& opsOut) {
  anvil::ir::Model model = anvil::parser::parseOnnxFile((dir / "model.onnx").string());
  collectOps(*model.graph, ops);
  for (const auto& o : ops) opsOut += o + ",";
  std::vector<DataSet> sets = loadDataSets(dir, *model.graph);
  if (sets.empty()) return "no test_data_set";
  if (opt.path == Path::kEngine) return runEngineCase(dir, *model.graph, sets, opt);
  if (opt.path == Path::kCli) return runCliCase(dir, *model.graph, sets, opt, scratch);
  if (opt.optLevel > 0) anvil::passes::optimize(*model.graph, opt.optLevel);
  for (const DataSet& set : sets) {
    std::map<std::string, Tensor> inputs(set.inputs.begin(), set.inputs.end());
    auto outs = anvil::cpu::Interpreter::run(*model.graph, inputs);
    std::string diff = compareOutputs(outs, set, *model.graph);
    if (!diff.empty()) return diff;
  }
  return "";
}

struct Result {
  std::string status;  // PASS FAIL CRASH
  std::string reason;
  std::vector<std::string> ops;
};

// Fork so that a crash or a hang costs one case. The child leads its own process group,
// so a timeout also ends a CLI it started.
Result runIsolated(const fs::path& dir, const RunOptions& opt, const fs::path& scratch, int timeoutSec) {
  int fds[2];
  if (pipe(fds) != 0) return {"FAIL", "pipe failed", {}};
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    close(fds[0]);
    std::string msg, ops;
    std::set<std::string> opset;
    try {
      std::string why = runCase(dir, opt, scratch, opset, ops);
      msg = why.empty() ? "PASS\n" : "FAIL\n" + why;
    } catch (const CliCrash& c) {
      msg = "CRASH\n" + c.what;
    } catch (const anvil::Error& e) {
      msg = std::string("FAIL\n") + anvil::errorCodeName(e.code()) + ": " + e.what();
    } catch (const std::exception& e) {
      msg = std::string("FAIL\nexception: ") + e.what();
    }
    size_t nl = msg.find('\n');
    std::replace(msg.begin() + long(nl) + 1, msg.end(), '\n', ' ');
    msg = ops + "\n" + msg;
    size_t off = 0;
    while (off < msg.size()) {
      ssize_t w = write(fds[1], msg.data() + off, msg.size() - off);
      if (w <= 0) break;
      off += size_t(w);
    }
    _exit(0);
  }
  setpgid(pid, pid);
  close(fds[1]);
  std::string data;
  char buf[4096];
  bool timedOut = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSec);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timedOut = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int n = poll(&p, 1, int(std::min<int64_t>(left.count(), 1000)));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    ssize_t r = read(fds[0], buf, sizeof buf);
    if (r <= 0) break;
    data.append(buf, size_t(r));
  }
  if (timedOut) kill(-pid, SIGKILL);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (timedOut) kill(-pid, SIGKILL);  // anything the child left behind in its group
  Result res;
  size_t nl = data.find('\n');
  if (nl != std::string::npos) {
    std::stringstream ss(data.substr(0, nl));
    std::string op;
    while (std::getline(ss, op, ','))
      if (!op.empty()) res.ops.push_back(op);
    data = data.substr(nl + 1);
  }
  if (timedOut) return {"FAIL", "timeout after " + std::to_string(timeoutSec) + " s", res.ops};
  if (WIFSIGNALED(status)) {
    res.status = "CRASH";
    res.reason = std::string("crashed with signal ") + strsignal(WTERMSIG(status));
    return res;
  }
  nl = data.find('\n');
  res.status = data.substr(0, nl);
  res.reason = nl == std::string::npos ? "" : data.substr(nl + 1);
  if (res.status != "PASS" && res.status != "FAIL" && res.status != "CRASH") {
    res.status = "CRASH";
    res.reason = "child produced no result";
  }
  return res;
}

void writeDocs(const std::string& path, const std::map<std::string, std::pair<int, int>>& perOp,
               const std::vector<std::string>& summaries) {
  std::ofstream f(path);
  f << "# Supported ONNX operators\n\n"
    << "Generated by `anvil_conformance --write-docs` from the importer table (`parser/importers/`)\n"
    << "and the ONNX backend node tests; do not edit by hand.\n\n"
    << "Default-domain opsets " << anvil::parser::kMinOpset << " to " << anvil::parser::kMaxOpset
    << " are imported. Each row is one importer: the op, the model opsets it accepts, how many\n"
    << "node-test cases that use the op pass on the reference CPU backend, and the CUDA tactics\n"
    << "that serve it (`cuda/tactics/`; a layer no CUDA tactic serves runs on the CPU in a CUDA engine).\n\n";
  for (const auto& s : summaries) f << "- " << s << "\n";
  std::map<std::string, std::set<std::string>> cudaKernels;  // "domain.op" -> kernel names
  for (const anvil::runtime::Kernel* k : anvil::runtime::Kernels::instance().all())
    if (k->device == anvil::Device::kCUDA)
      cudaKernels[k->domain.empty() ? k->op : k->domain + "." + k->op].insert(k->name);
  f << "\n| Op | Domain | Opsets | Node tests passed | CUDA tactics |\n|---|---|---|---|---|\n";
  std::set<std::string> imported;
  for (const auto& imp : anvil::parser::importerTable()) {
    std::string key = imp.domain.empty() ? imp.op : imp.domain + "." + imp.op;
    std::string cases = "—";
    auto it = perOp.find(key);
    if (it != perOp.end())  // cases count per op, shown on each of its opset rows
      cases = std::to_string(it->second.first) + "/" + std::to_string(it->second.second);
    std::string cuda = "—";
    if (auto k = cudaKernels.find(key); k != cudaKernels.end()) cuda = std::to_string(k->second.size());
    f << "| " << imp.op << " | " << (imp.domain.empty() ? "ai.onnx" : imp.domain) << " | " << imp.sinceVersion
      << "–" << imp.untilVersion << " | " << cases << " | " << cuda << " |\n";
    imported.insert(key);
  }
  f << "\n## Ops in the node tests that anvil does not import\n\n";
  bool any = false;
  for (const auto& [op, c] : perOp)
    if (!imported.count(op)) {
      f << "- " << op << " (" << c.second << " cases)\n";
      any = true;
    }
  if (!any) f << "None.\n";
}

// Baseline file: one line per path and data set, "PATH LABEL PASS_COUNT" (a line of two
// words, "LABEL PASS_COUNT", is the interp path); '#' starts a comment.
std::map<std::string, int> loadBaseline(const std::string& path) {
  std::map<std::string, int> out;
  if (path.empty()) return out;
  std::ifstream f(path);
  if (!f) throw std::runtime_error("cannot open baseline file " + path);
  std::string line;
  while (std::getline(f, line)) {
    line = line.substr(0, line.find('#'));
    std::stringstream ss(line);
    std::vector<std::string> words;
    std::string w;
    while (ss >> w) words.push_back(w);
    if (words.empty()) continue;
    if (words.size() == 2) words.insert(words.begin(), "interp");
    if (words.size() != 3) throw std::runtime_error("baseline line '" + line + "' is not 'PATH LABEL COUNT'");
    out[words[0] + " " + words[1]] = std::stoi(words[2]);
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::pair<std::string, std::string>> datasets;  // label, dir
  std::string excludeFile, docsPath, baselineFile, filter;
  bool quiet = false;
  int timeoutSec = 120;
  RunOptions opt;
  const char* usage =
      "usage: anvil_conformance --data=LABEL:DIR... [--path=interp|engine|cli] [--anvil=PATH] [--anvil-arg=ARG...] [--exclude=FILE]"
      " [--baseline=FILE] [--write-docs=FILE] [--filter=REGEX] [--opt-level=N] [--timeout=S] [--blocked-layouts=auto|never|always] [--quiet]\n";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto val = [&](const char* flag) -> std::string {
      std::string f = std::string(flag) + "=";
      return a.rfind(f, 0) == 0 ? a.substr(f.size()) : std::string();
    };
    if (auto v = val("--data"); !v.empty()) {
      size_t eq = v.find(':');
      if (eq == std::string::npos) {
        std::cerr << "--data=LABEL:DIR\n";
        return 2;
      }
      datasets.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (auto v2 = val("--exclude"); !v2.empty()) {
      excludeFile = v2;
    } else if (auto v3 = val("--write-docs"); !v3.empty()) {
      docsPath = v3;
    } else if (auto v4 = val("--baseline"); !v4.empty()) {
      baselineFile = v4;
    } else if (auto v5 = val("--filter"); !v5.empty()) {
      filter = v5;
    } else if (auto v6 = val("--timeout"); !v6.empty()) {
      timeoutSec = std::stoi(v6);
    } else if (auto v7 = val("--opt-level"); !v7.empty()) {
      opt.optLevel = std::stoi(v7);
      if (opt.optLevel < 0 || opt.optLevel > 3) {
        std::cerr << "--opt-level is 0..3\n";
        return 2;
      }
    } else if (auto v8 = val("--path"); !v8.empty()) {
      if (v8 == "interp") opt.path = Path::kInterp;
      else if (v8 == "engine") opt.path = Path::kEngine;
      else if (v8 == "cli") opt.path = Path::kCli;
      else {
        std::cerr << "--path is interp, engine or cli\n";
        return 2;
      }
    } else if (auto va = val("--anvil-arg"); !va.empty()) {
      opt.anvilArgs.push_back(va);
    } else if (auto v9 = val("--anvil"); !v9.empty()) {
      opt.anvil = fs::absolute(v9).string();
    } else if (auto v10 = val("--blocked-layouts"); !v10.empty()) {
      using BL = anvil::BuilderConfig::BlockedLayouts;
      if (v10 == "auto") opt.blocked = BL::kAuto;
      else if (v10 == "never") opt.blocked = BL::kNever;
      else if (v10 == "always") opt.blocked = BL::kAlways;
      else {
        std::cerr << "--blocked-layouts is auto, never or always\n";
        return 2;
      }
    } else if (a == "--quiet") {
      quiet = true;
    } else {
      std::cerr << "unknown argument " << a << "\n" << usage;
      return 2;
    }
  }
  if (opt.path == Path::kCli && (opt.anvil.empty() || !fs::exists(opt.anvil))) {
    std::cerr << "--path=cli needs --anvil=PATH to the anvil CLI\n";
    return 2;
  }
  if (!docsPath.empty() && opt.path != Path::kInterp) {
    std::cerr << "--write-docs describes the interp path; run it with --path=interp\n";
    return 2;
  }
  std::vector<Exclusion> excl = loadExclusions(excludeFile);
  std::map<std::string, int> baseline = loadBaseline(baselineFile);
  // Scratch space for the CLI path's input and output files, one folder per case.
  fs::path scratchRoot;
  if (opt.path == Path::kCli) {
    std::string tmpl = (fs::temp_directory_path() / "anvil_conformance_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      std::cerr << "cannot create a scratch directory\n";
      return 2;
    }
    scratchRoot = tmpl;
  }
  const std::string path = pathName(opt.path);
  std::map<std::string, std::pair<int, int>> perOp;
  std::vector<std::string> summaries, docSummaries;
  bool ok = true;
  std::regex filterRe(filter.empty() ? ".*" : filter);
  for (const auto& [label, dir] : datasets) {
    if (!fs::is_directory(dir)) {
      std::cerr << "[" << label << "] data directory '" << dir << "' does not exist\n";
      ok = false;
      continue;
    }
    std::vector<fs::path> cases;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
    std::sort(cases.begin(), cases.end());
    int pass = 0, fail = 0, crashed = 0, excluded = 0, total = 0;
    for (const auto& c : cases) {
      const std::string name = c.filename().string();
      if (!std::regex_search(name, filterRe)) continue;
      ++total;
      const Exclusion* ex = nullptr;
      for (const auto& e : excl)
        if (std::regex_match(name, e.pattern)) ex = &e;
      if (ex) {
        ++excluded;
        if (!quiet) std::cout << "EXCL " << label << "/" << name << "  (" << ex->reason << ")\n";
        continue;
      }
      fs::path scratch = scratchRoot.empty() ? fs::path() : scratchRoot / name;
      Result r = runIsolated(c, opt, scratch, timeoutSec);
      if (!scratch.empty()) {
        std::error_code ec;
        fs::remove_all(scratch, ec);
      }
      const bool passed = r.status == "PASS";
      if (passed) ++pass;
      else if (r.status == "CRASH") ++crashed;
      else ++fail;
      for (const auto& op : r.ops) {
        perOp[op].second++;
        if (passed) perOp[op].first++;
      }
      if (r.reason.size() > 400) r.reason = r.reason.substr(0, 400) + " ...";
      if (!quiet || !passed)
        std::cout << r.status << " " << label << "/" << name << (passed ? "" : "  " + r.reason) << std::endl;
    }
    std::ostringstream s;
    s << label << " [" << path << (opt.optLevel ? ", opt-level " + std::to_string(opt.optLevel) : std::string())
      << "]: " << pass << "/" << total << " node-test cases pass (" << (total ? 100.0 * pass / total : 0.0) << "%), "
      << fail << " fail, " << crashed << " crashed, " << excluded << " excluded";
    // The goal of the other paths: as many passes as the interpreter.
    auto ib = baseline.find("interp " + label);
    if (opt.path != Path::kInterp && ib != baseline.end())
      s << "; the interp path passes " << ib->second << " (" << (pass >= ib->second ? "+" : "")
        << pass - ib->second << ")";
    summaries.push_back(s.str());
    std::ostringstream d;  // docs/operators.md's line (interp path)
    d << label << ": " << pass << "/" << total << " node-test cases pass (" << (total ? 100.0 * pass / total : 0.0)
      << "%), " << fail + crashed << " fail, " << excluded << " excluded";
    docSummaries.push_back(d.str());
    if (crashed > 0) {
      std::cout << "CRASHES " << label << " [" << path << "]: " << crashed << " case(s) crashed\n";
      ok = false;
    }
    auto b = baseline.find(path + " " + label);
    if (b != baseline.end() && pass < b->second) {
      std::cout << "REGRESSION " << label << " [" << path << "]: " << pass << " pass, the recorded baseline is "
                << b->second << "\n";
      ok = false;
    }
  }
  if (!scratchRoot.empty()) {
    std::error_code ec;
    fs::remove_all(scratchRoot, ec);
  }
  if (!docsPath.empty()) writeDocs(docsPath, perOp, docSummaries);
  std::cout << "\n";
  for (const auto& s : summaries) std::cout << "conformance summary: " << s << "\n";
  return ok ? 0 : 1;
}
