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

#include "anvil/dtype.h"
#include "anvil/error.h"

namespace anvil {

enum class Device { kCPU, kCUDA };

// Where a buffer bound to an engine input or output lives (ExecutionContext::setTensorAddress).
enum class MemoryLocation { kHost, kDevice };

// Element types: one enum for the public API, the IR (ir::DataType is this type) and the
// backends; values match ONNX TensorProto.DataType (include/anvil/dtype.h).
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
  std::string device = "cpu";
  int tacticVersion = 0;
  bool timed = false;            // chosen by measurement among several candidates
  bool untimed = false;          // a CUDA tactic chosen by heuristics: no GPU to time it on (cross-build)
  int candidates = 1;            // tactics that served the whole profile (each timed split of one counts)
  int tasks = 0;                 // > 0: the split of its work into tasks, timed against the others
  uint64_t workspaceBytes = 0;
  uint64_t preparedBytes = 0;    // prepared weights (packed panels, ...) in the engine
  std::vector<std::string> outputLayouts;  // per output: "NCHW", "NCHW8c", ...
  // Per output: its storage type ("f32", "u8" for an activation kept quantized between
  // INT8 layers, ...) and, when quantized, its per-tensor scale and zero point.
  std::vector<std::string> outputTypes;
  std::vector<float> outputScales;
  std::vector<int> outputZeroPoints;
  // How the precision was decided: "user" (--layerPrecisions), "budget" (--precision=auto
  // kept it high for the accuracy tolerance), "cost" (the cheapest allowed; or the builder
  // timed several precisions), "heuristic" (a cross-built CUDA layer took the lowest allowed
  // precision without a GPU to time on), "fallback" (asked for one no kernel serves), "" (f32 only).
  std::string precisionReason;
  // Condition estimates kappa_v * kappa_phi over the output components and calibration
  // samples (-1: not measured), and the predicted relative error of the chosen precision.
  double kappaMedian = -1, kappaP99 = -1, kappaMax = -1, predictedError = -1;
  double kappaNormwise = -1;
  // The layer's own relative output error, measured: its kernel on the first calibration
  // batch's f32 inputs against the f32 reference (-1: not measured).
  double measuredError = -1;  // ||phi'(v) (|W||x|+|b|)|| / ||phi(v)||: what --precision=auto predicts with
  // Activation quantization the layer's input 0 carries (scale 0: none).
  float inputScale = 0;
  int inputZeroPoint = 0;
};

// An optimization profile for one input (as TensorRT's): every run shape must lie within
// [min, max] per dim; tactics are chosen to serve the whole range and timed at opt.
struct InputProfile {
  std::vector<int64_t> min, opt, max;
};

// Default intra-op threads of new contexts and of the builder's timing runs (n <= 0: the
// default, ANVIL_NUM_THREADS or the machine's physical cores). Each context owns its own
// pool (ContextOptions::threads). Results are bitwise identical for every count.
void setCpuThreads(int n);
int cpuThreads();

// ---- building (library `anvil`) --------------------------------------------------------

struct BuilderConfig {
  // kCUDA: every node a CUDA kernel serves runs on the GPU, the rest on the CPU, with
  // copies between them (see docs/design.md, "The CUDA backend").
  Device device = Device::kCPU;
  // --device=cuda: the GPU the engine is for, major * 10 + minor (--computeCapability=9.0:
  // 90). 0: this machine's GPU. With that GPU present the CUDA candidates are timed with
  // CUDA events; without it (a cross-build) tactics are chosen by heuristics and the layer
  // info marks them untimed, as TensorRT's heuristic tactic selection.
  int computeCapability = 0;
  // Time the CUDA candidates on the simulator as if it were the GPU: tests of the timed
  // path on machines without one (the times mean nothing about a GPU).
  bool timeOnSimulator = false;
  int optimizationLevel = 3;          // 0 = no graph passes ... 3 = all
  std::string timingCachePath;        // read before and written after tuning; "" = none
  int threads = 0;                    // CPU worker threads for tactics (0 = default, see setCpuThreads)
  int timingIterations = 5;           // median of this many runs per candidate
  // Shapes to tune for (and the default run shapes), per input (--shapes): alone, an entry
  // means min = opt = max. Dynamic dims without any entry become 1.
  std::map<std::string, std::vector<int64_t>> inputShapes;
  // Optimization profiles (--minShapes/--optShapes/--maxShapes); an input named here takes
  // its range from here (opt defaults to inputShapes' entry, then to max).
  std::map<std::string, InputProfile> profiles;
  bool verbose = false;
  std::string dumpGraphDir;           // write the IR text before and after each pass ("" = off)
  // Activations in the blocked layouts NCHW8c / NCHW16c (--blockedLayouts): kAuto times
  // each region of blocked kernels against the row-major kernels and keeps the faster;
  // kNever keeps every activation row-major; kAlways blocks every region it can (tests).
  enum class BlockedLayouts { kAuto, kNever, kAlways };
  BlockedLayouts blockedLayouts = BlockedLayouts::kAuto;
  // ---- precision (trtexec's flags; see docs/precision.md) ----
  // Precisions layers may run in besides f32 (--fp16, --bf16, --int8; --best: all): the
  // builder times each linear layer's kernels of every allowed precision and keeps the
  // fastest, unless a precision was asked for it (layerPrecisions, autoPrecision).
  bool fp16 = false, bf16 = false, int8 = false;
  // Per-layer precisions by layer name (--layerPrecisions=name:int8,...; "*" = every linear
  // layer). A name no layer has is an error.
  std::map<std::string, DataType> layerPrecisions;
  // kObey: a layer whose precision no kernel serves fails the build; kPrefer (also what
  // kNone means once layerPrecisions is given) runs it in f32.
  enum class PrecisionConstraints { kNone, kPrefer, kObey };
  // Per-layer output storage by layer name (--layerOutputTypes=name:int8,...; "*" = every
  // layer): kI8 keeps the output quantized (u8 with the grid its INT8 readers use) where the
  // layer and every reader run INT8 kernels that take it so, kF32 keeps it f32. By default
  // the builder stores every such INT8-to-INT8 activation quantized. An int8 that cannot be
  // had is a warning, or an error with kObey. A name no layer has is an error.
  std::map<std::string, DataType> layerOutputTypes;
  PrecisionConstraints precisionConstraints = PrecisionConstraints::kNone;
  // INT8 needs activation ranges: from calibrationCache when the file exists (--calib;
  // written there after calibrating otherwise), else from calibrationData (--calibData:
  // one .npy per input, samples stacked along axis 0), else from random inputs (latency
  // measurements only: the accuracy means nothing; the build says so).
  std::string calibrationCache;
  std::string calibrationData;
  // minmax | entropy | percentile. Percentile (99.99) by measurement: resnet18's INT8
  // output error on 8 calibration images was 3.8% with it, 4.0% min-max, 8.7% entropy.
  std::string calibrator = "percentile";
  double calibrationPercentile = 99.99;
  // --precision=auto: each linear layer takes the cheapest allowed precision whose predicted
  // error (its condition estimate from calibrationData times the precision's unit
  // roundoff) keeps the sum within accuracyTolerance (relative output error).
  // The choice is then verified: the engine runs the held-out calibration batches (the
  // last quarter, at least one, of two or more) and the layers with the largest predicted
  // error are promoted, a quarter of the reduced ones per round, until the measured error
  // meets the tolerance: "relative" = mean over batches of the largest ||y - y_f32|| /
  // ||y_f32|| over the float outputs; "top1" = the fraction of rows of output 0 whose
  // argmax differs from f32's (where the held-out rows are too few to resolve the
  // tolerance, rows whose f32 top-2 margin is within twice the change count too).
  bool autoPrecision = false;
  double accuracyTolerance = 1e-2;
  std::string accuracyMetric = "relative";  // relative | top1
  // Per output component (--componentPrecision=tau): in an INT8 layer, the output channels
  // whose calibrated p99 of kappa_v * kappa_phi times the INT8 step exceeds tau compute in
  // FP32 inside the same kernel (0: off; needs calibrationData).
  double componentPrecision = 0;
  // At run time (--adaptivePrecision=tau): INT8 layers compute every component in INT8,
  // estimate kappa from that result and recompute in FP32 the components the test flags:
  // "product" kappa_v * kappa_phi * u > tau, "ratio" kappa_phi / |v| > tau, or "both".
  // The profiler reports the fraction recomputed per layer (0: off).
  double adaptivePrecision = 0;
  std::string adaptiveTest = "product";
  // The precision guard (--noPrecisionGuard turns it off). Layers take a reduced precision
  // by their own times; what a mixed assignment adds between layers (quantize steps, the
  // Reorders where a blocked f32 region is cut) is in no layer's time. Where some layer took
  // a reduced precision by cost, the builder also builds the FP32 engine (the same
  // configuration without --fp16/--bf16/--int8; --layerPrecisions stay) and times both
  // whole, alternately, on the same inputs; the reduced engine is kept only where it is the
  // faster. CPU builds without --precision=auto (whose budget, not speed, set the floor).
  bool precisionGuard = true;
  // One level of Strassen's algorithm as a candidate for f32 MatMul / Gemm with a constant
  // weight of depth >= 256 and width >= 256 (--noStrassen leaves it out): 7/8 of the
  // multiply-adds, timed against the plain kernels like any tactic; its rounding error is
  // bounded normwise (a few times the plain product's on typical data), as Winograd
  // convolution's is. Turn it off where every output element must carry the plain
  // product's componentwise error bound.
  bool strassen = true;
  // A blocked 1x1 convolution and the depthwise convolution that alone reads its output
  // (mobilenet's and efficientnet's expansions), where that output is 768 KiB or more per
  // thread, run as
  // one step that makes the 1x1's rows as the depthwise rows need them (anvil.FusedConvDw),
  // so the large intermediate never goes to memory (--noConvDwFusion keeps them apart).
  // The same results, bit for bit.
  bool convDwFusion = true;
  // Called as tactics are timed: (done, total, current layer name).
  std::function<void(int, int, const std::string&)> progress;
};

struct BuildReport {
  int nodesBefore = 0, nodesAfter = 0;
  int tacticsTimed = 0;       // candidate timings measured in this build
  int tacticsFromCache = 0;   // choices taken from the timing cache
  int layersTuned = 0;        // layers with more than one candidate
  uint64_t peakActivationBytes = 0;
  int blockedRegions = 0;     // regions kept in the blocked layout (NCHW8c / NCHW16c)
  int blockedNodes = 0;       // their nodes
  int reorders = 0;           // anvil.Reorder layers at their boundaries
  int concatInputsInPlace = 0;  // Concat inputs their producers write into the Concat's output
  std::map<std::string, int> layersByPrecision;  // compute layers per precision ("f32", "i8", ...)
  std::vector<std::string> warnings;             // e.g. INT8 ranges from random inputs
  // --precision=auto: the output error measured on the held-out batches (the metric of
  // accuracyMetric; -1 when not verified), the rounds it took and the layers promoted.
  double measuredError = -1;
  int verificationRounds = 0;
  int layersPromoted = 0;
  // Activations stored as u8 between INT8 layers (the producer requantizes, the consumers
  // read the bytes), and those left f32 because a kernel could not take them quantized.
  int loweredValues = 0;
  int loweredRefused = 0;
  // The precision guard (BuilderConfig::precisionGuard): the median latency of the engine with
  // reduced-precision layers and of the FP32 engine, timed whole (ms; -1 where the guard did
  // not run), and whether the FP32 engine was kept (then the reduced one was slower).
  double guardReducedMs = -1, guardF32Ms = -1;
  bool guardKeptF32 = false;
  // CUDA builds: layers placed on each device, the copies placement inserted between them,
  // the op types left on the CPU (no CUDA kernel serves them), and the CUDA layers whose
  // tactic was chosen without timing.
  int cudaLayers = 0, cpuLayers = 0, deviceCopies = 0, untimedLayers = 0;
  std::vector<std::string> cpuOps;
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

// Receives outputs whose size is known only after their step ran (NonZero, Unique, ...),
// as TensorRT's IOutputAllocator: reallocateOutput returns memory of at least `bytes`
// (it may return `current` when that is big enough; nullptr fails the run), and
// notifyShape tells the final extents. The memory stays the caller's.
class OutputAllocator {
 public:
  virtual ~OutputAllocator() = default;
  virtual void* reallocateOutput(const char* name, void* current, uint64_t bytes, uint64_t alignment) = 0;
  virtual void notifyShape(const char* name, const std::vector<int64_t>& dims) = 0;
};

// Per-context execution settings.
struct ContextOptions {
  int threads = 0;  // intra-op threads of this context's executor (0: physical cores, or ANVIL_NUM_THREADS)
  // CUDA engines: run the GPU steps on the CPU through the CUDA simulator (cuda/sim) instead
  // of a GPU (--simulate). Slow; for checking engines on machines without a GPU. Without it
  // a CUDA engine needs a GPU of the compute capability it was built for.
  bool simulate = false;
  // CUDA engines whose every layer runs on the GPU: capture the steps of a run in a CUDA
  // graph once per set of input shapes and replay it (--useCudaGraph).
  bool useCudaGraph = false;
  // CUDA engines: skip the copies of inputs to and outputs from the GPU (--noDataTransfers:
  // times the GPU work alone; outputs are then unspecified).
  bool noDataTransfers = false;
  // CUDA engines: wait for the GPU by polling instead of blocking (--useSpinWait).
  bool spinWait = false;
};

// Per-layer timing, delivered after each step of a run when a profiler is set.
struct LayerTiming {
  std::string name, type, tactic;
  double milliseconds = 0;
  // Adaptive precision (--adaptivePrecision): output components of this run recomputed in
  // the higher precision, of `components` computed (both 0 for other kernels).
  uint64_t recomputed = 0, components = 0;
};
using Profiler = std::function<void(const LayerTiming&)>;

// An immutable, shareable engine; create one ExecutionContext per thread. CUDA engines: the
// contexts on one device share the engine's weights there (uploaded by the first, freed with
// the last); each has its own activations, workspace and stream.
class Engine {
 public:
  static Status load(const std::string& path, std::shared_ptr<Engine>* engine);  // memory-maps
  static Status fromBytes(std::string bytes, std::shared_ptr<Engine>* engine);
  ~Engine();

  const std::vector<TensorDesc>& io() const;  // inputs first, then outputs
  const TensorDesc* find(const std::string& name) const;
  std::vector<int64_t> optShape(const std::string& input) const;  // the shape it was tuned for
  InputProfile profile(const std::string& input) const;           // min/opt/max of an input
  std::vector<LayerInfo> layers() const;
  uint64_t peakActivationBytes() const;  // at the tuned shapes
  std::string target() const;            // e.g. "cpu x86-64+avx2+fma"
  Status createContext(std::unique_ptr<ExecutionContext>* context) const;
  Status createContext(std::unique_ptr<ExecutionContext>* context, const ContextOptions& options) const;

  struct Impl;
  explicit Engine(std::shared_ptr<Impl> impl);
  const Impl& impl() const { return *impl_; }

 private:
  std::shared_ptr<Impl> impl_;
};

class ExecutionContext {
 public:
  ~ExecutionContext();
  // Input shapes default to the engine's tuned (opt) shapes; a shape outside the input's
  // profile is an error.
  Status setInputShape(const std::string& name, const std::vector<int64_t>& dims);
  // Caller-owned buffers for inputs and outputs; steps write outputs straight into them.
  // A tensor of zero elements may be bound to nullptr. String tensors bind std::string[].
  Status setTensorAddress(const std::string& name, void* data);
  // CUDA engines: `where` = kDevice binds memory on the engine's device (cudaMalloc memory of
  // that GPU; under ContextOptions::simulate, memory from allocateDevice of a context of this
  // engine, which all share one simulated device).
  // No pinned staging and no boundary copy happen for it: an input the GPU steps read is read
  // in place, an output a GPU step makes is written straight into the buffer (or copied there
  // device to device when the step's output is a view; with enqueue, a device-bound input is
  // read in stream order, not before enqueue returns); where the first reader or the
  // producer is a CPU layer, the context copies between the device and its host memory
  // itself. Unaffected by --noDataTransfers (there is no boundary copy to skip). The buffer
  // must hold the tensor at the current shapes (the caller's check, as for host buffers); a
  // pointer the runtime can tell is not device memory is refused at run(). Outputs whose size
  // is known only at run time cannot be bound on the device. With useCudaGraph, changing a
  // device binding (pointer or location) re-captures the graph at the next run. CPU engines
  // refuse kDevice.
  Status setTensorAddress(const std::string& name, void* data, MemoryLocation where);
  // CUDA engines: memory of this context's device runtime (the GPU's, or the simulator's),
  // 256-byte aligned, freed with the context at the latest; freeDevice takes only what
  // allocateDevice returned. copyToDevice / copyFromDevice copy between host memory and such
  // memory, in order after the runs queued on the context's own stream, and return when done.
  Status allocateDevice(size_t bytes, void** ptr);
  Status freeDevice(void* ptr);
  Status copyToDevice(void* deviceDst, const void* hostSrc, size_t bytes);
  Status copyFromDevice(void* hostDst, const void* deviceSrc, size_t bytes);
  // For outputs whose size is only known after their step ran (see Engine::io(): dims
  // -1 that no input shape decides). Without one, such outputs are kept by the context
  // and read through outputData()/getTensorShape().
  Status setOutputAllocator(const std::string& name, OutputAllocator* allocator);
  // Resolved shape of an input or output for the current input shapes.
  Status getTensorShape(const std::string& name, std::vector<int64_t>* dims);
  Status run();
  // CUDA engines: queues the run on `cudaStream` (a cudaStream_t of the engine's GPU;
  // nullptr: the context's own stream) and returns; the outputs are in the caller's buffers
  // once that stream reaches the end of the run (cudaStreamSynchronize, or synchronize()
  // for the context's own stream). Inputs are read before enqueue returns. A layer on the
  // CPU in between makes enqueue wait for the GPU work before it; so does a context's next
  // run or enqueue for the previous one (they share its buffers). The simulator has only
  // the context's own stream. CPU engines: the same as run().
  Status enqueue(void* cudaStream = nullptr);
  // Waits until every run queued by enqueue() has finished (a no-op for CPU engines).
  Status synchronize();
  // Pointer to an output's data after run() (valid until the next run), when no address was set.
  const void* outputData(const std::string& name) const;
  void setProfiler(Profiler profiler);
  uint64_t activationBytes() const;  // arena size for the current shapes
  int threads() const;               // this context's intra-op threads

  struct Impl;
  explicit ExecutionContext(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace anvil
