// The engine file: a fixed 64-byte header, the plan (a FlatBuffer, runtime/engine.fbs)
// and a 64-byte-aligned weights section that is memory-mapped on load, not copied.
//
//   offset 0   Header (magic "ANVILENG", format version, section offsets, checksum)
//   plan       PlanDef flatbuffer: graph, tactics, I/O profiles, target
//   weights    raw initializer bytes, every tensor 64-byte aligned
//
// The checksum (XXH3-64) covers every byte after the header and is verified on load:
// measured at about 10 GB/s, it costs ~10 ms for 100 MB of weights (see docs/design.md).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "anvil/anvil.hpp"
#include "ir/graph.h"
#include "runtime/kernel.h"

namespace anvil::runtime {

constexpr char kEngineMagic[8] = {'A', 'N', 'V', 'I', 'L', 'E', 'N', 'G'};
constexpr uint32_t kEngineFormatVersion = 3;
constexpr size_t kEngineAlignment = 64;

struct EngineHeader {
  char magic[8];
  uint32_t formatVersion;
  uint32_t headerBytes;
  uint64_t planOffset, planBytes;
  uint64_t weightsOffset, weightsBytes;
  uint64_t checksum;
  uint64_t reserved;
};
static_assert(sizeof(EngineHeader) == 64, "the engine header is 64 bytes");

// One prepared kernel of the plan.
struct StepPlan {
  int node = -1;                          // index into the main graph's nodes
  std::string kernel = "ref";             // "view": output 0 aliases input 0, nothing runs
  int kernelVersion = 1;
  Device device = Device::kCPU;
  DataType precision = DataType::kUndefined;
  std::vector<const ir::Value*> inputs;   // node inputs, then outer-scope values (null: absent)
  std::vector<const ir::Value*> outputs;  // null: an unnamed optional output
  std::string params;                     // writer side
  std::vector<std::string> blobs;
  Blob paramsView;                        // reader side: views into the weights section
  std::vector<Blob> blobViews;
  uint64_t workspaceBytes = 0;
  std::vector<std::string> requirements;
  bool timed = false;
  bool untimed = false;  // a CUDA tactic chosen by heuristics (no GPU to time it on)
  int candidates = 1;
  int tasks = 0;  // > 0: the timed split of its work into tasks (the kernel keeps it in params)
  std::vector<int> packedInputs;
};

// Activation arena slot of a value at the profile's max shapes.
struct ArenaSlot {
  int64_t offset = -1;
  uint64_t bytes = 0;
};

// What an engine holds, in memory.
struct Plan {
  std::shared_ptr<ir::Graph> graph;                      // main graph, symbolic dims kept
  std::vector<std::string> tactics;                      // per main-graph node
  std::vector<StepPlan> steps;                           // the executable plan, in order
  // Planned activation slots: a value on the GPU (Value::device() kCUDA) has its slot in
  // the device arena, every other one in the host arena.
  std::map<const ir::Value*, ArenaSlot> arena;
  std::map<std::string, std::vector<int64_t>> optShapes;  // input shapes it was tuned for
  std::map<std::string, std::vector<int64_t>> minShapes, maxShapes;  // the profile
  std::vector<std::string> requirements;                 // union over CPU steps
  std::string anvilVersion;
  std::string device = "cpu";  // "cuda" when any step runs on a GPU
  int computeCapability = 0;   // CUDA engines: major * 10 + minor of the target GPU
  uint64_t peakDeviceArenaBytes = 0;
  std::string isaRequired;  // comma-separated CPU features
  std::string buildIsa;
  uint64_t peakArenaBytes = 0;
  int optLevel = 0;
  std::string producer;
  std::map<std::string, std::string> metadata;
};

// Serializes a plan (with its initializer and tensor-attribute data) into engine bytes.
std::string serializeEngine(const Plan& plan);

// Bytes of an engine file kept alive by `holder` (a mapping or a buffer).
struct EngineBytes {
  std::shared_ptr<const void> holder;
  const uint8_t* data = nullptr;
  size_t size = 0;
};
EngineBytes mapEngineFile(const std::string& path);  // mmap; throws kIoError
EngineBytes engineBytesFromString(std::string bytes);

// Validates header, checksum, plan structure and target, then builds the plan; weights
// are views into `bytes`. Throws kInvalidEngine with a clear message.
Plan deserializeEngine(const EngineBytes& bytes);
// Only the header and plan checks (no graph construction): used by tools.
void validateEngine(const EngineBytes& bytes);

uint64_t engineChecksum(const uint8_t* data, size_t n);
// The seal of a step: a hash of what its kernel trusts (see StepDef.seal in engine.fbs).
uint64_t stepSeal(const std::string& kernel, int version, const void* params, size_t paramsBytes,
                  const std::vector<uint64_t>& blobBytes, uint64_t workspaceBytes, const std::vector<int>& packedInputs);
const char* anvilVersionString();

}  // namespace anvil::runtime
