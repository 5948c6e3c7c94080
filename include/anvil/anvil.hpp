// anvil's public C++ API: build an engine from an ONNX model (Builder, in the `anvil`
// library) and load and run engines (Engine, ExecutionContext, in the lean
// `anvil_runtime` library, which links no protobuf, parser or passes).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "anvil/error.h"

namespace anvil {

enum class Device { kCPU, kCUDA };

// Element types of engine inputs and outputs (values match ONNX TensorProto.DataType).
enum class DataType : int32_t {
  kFloat = 1, kUInt8 = 2, kInt8 = 3, kUInt16 = 4, kInt16 = 5, kInt32 = 6, kInt64 = 7,
  kBool = 9, kHalf = 10, kDouble = 11, kUInt32 = 12, kUInt64 = 13, kBFloat16 = 16,
};
const char* dataTypeName(DataType t);
size_t dataTypeSize(DataType t);

// One engine input or output. Dimensions are -1 where the engine accepts any extent.
struct TensorDesc {
  std::string name;
  DataType dtype = DataType::kFloat;
  std::vector<int64_t> dims;
  bool isInput = false;
};

// One executed step of an engine (for --dumpLayerInfo / --exportLayerInfo).
struct LayerInfo {
  std::string name, type, tactic, precision;
  std::vector<std::string> inputs, outputs;
};

// Worker threads the CPU tactics may use in this process (n <= 0: the default, which is
// ANVIL_NUM_THREADS or every core). Results are bitwise identical for every count.
void setCpuThreads(int n);
int cpuThreads();

// ---- building (library `anvil`) --------------------------------------------------------

struct BuilderConfig {
  Device device = Device::kCPU;
  int optimizationLevel = 3;          // 0 = no graph passes ... 3 = all
  std::string timingCachePath;        // read before and written after tuning; "" = none
  int threads = 0;                    // CPU worker threads for tactics (0 = default, see setCpuThreads)
  int timingIterations = 5;           // median of this many runs per candidate
  // Shapes to tune for (and the default run shapes), per input; dynamic dims without an
  // entry here become 1.
  std::map<std::string, std::vector<int64_t>> inputShapes;
  bool verbose = false;
  std::string dumpGraphDir;           // write the IR text before and after each pass ("" = off)
  // Called as tactics are timed: (done, total, current layer name).
  std::function<void(int, int, const std::string&)> progress;
};

struct BuildReport {
  int nodesBefore = 0, nodesAfter = 0;
  int tacticsTimed = 0;       // candidate timings measured in this build
  int tacticsFromCache = 0;   // choices taken from the timing cache
  int layersTuned = 0;        // layers with more than one candidate
  uint64_t peakActivationBytes = 0;
  double buildMilliseconds = 0;
  std::vector<std::string> passLog;  // one line per pass (statistics)
};

class Builder {
 public:
  // Parses, optimizes, tunes and serializes; `engine` receives the engine file bytes.
  static Status buildFromOnnx(const std::string& onnxPath, const BuilderConfig& config, std::string* engine,
                              BuildReport* report = nullptr);
};

// ---- running (library `anvil_runtime`) -------------------------------------------------

class ExecutionContext;

// Per-layer timing, delivered after each step of a run when a profiler is set.
struct LayerTiming {
  std::string name, type, tactic;
  double milliseconds = 0;
};
using Profiler = std::function<void(const LayerTiming&)>;

// An immutable, shareable engine; create one ExecutionContext per thread.
class Engine {
 public:
  static Status load(const std::string& path, std::shared_ptr<Engine>* engine);  // memory-maps
  static Status fromBytes(std::string bytes, std::shared_ptr<Engine>* engine);
  ~Engine();

  const std::vector<TensorDesc>& io() const;  // inputs first, then outputs
  const TensorDesc* find(const std::string& name) const;
  std::vector<int64_t> optShape(const std::string& input) const;  // the shape it was tuned for
  std::vector<LayerInfo> layers() const;
  uint64_t peakActivationBytes() const;  // at the tuned shapes
  std::string target() const;            // e.g. "cpu x86-64+avx2+fma"
  Status createContext(std::unique_ptr<ExecutionContext>* context) const;

  struct Impl;
  explicit Engine(std::shared_ptr<Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

class ExecutionContext {
 public:
  ~ExecutionContext();
  // Input shapes default to the engine's tuned shapes.
  Status setInputShape(const std::string& name, const std::vector<int64_t>& dims);
  // Caller-owned buffers for inputs and outputs (outputs are written at the end of run()).
  Status setTensorAddress(const std::string& name, void* data);
  // Resolved shape of an input or output for the current input shapes.
  Status getTensorShape(const std::string& name, std::vector<int64_t>* dims);
  Status run();
  // Pointer to an output's data after run() (valid until the next run), when no address was set.
  const void* outputData(const std::string& name) const;
  void setProfiler(Profiler profiler);
  uint64_t activationBytes() const;  // arena size for the current shapes

  struct Impl;
  explicit ExecutionContext(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace anvil
