// The engine file: a fixed 64-byte header, the plan (a FlatBuffer, runtime/engine.fbs)
// and a 64-byte-aligned weights section that is memory-mapped on load, not copied.
//
//   offset 0   Header (magic "ANVILENG", format version, section offsets, checksum)
//   plan       PlanDef flatbuffer: graph, tactics, I/O profiles, target
//   weights    raw initializer bytes, every tensor 64-byte aligned
//
// The checksum (FNV-1a 64) covers every byte after the header.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace anvil::runtime {

constexpr char kEngineMagic[8] = {'A', 'N', 'V', 'I', 'L', 'E', 'N', 'G'};
constexpr uint32_t kEngineFormatVersion = 1;
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

// What an engine holds, in memory.
struct Plan {
  std::shared_ptr<ir::Graph> graph;                      // main graph, symbolic dims kept
  std::vector<std::string> tactics;                      // per main-graph node
  std::map<std::string, std::vector<int64_t>> optShapes;  // input shapes it was tuned for
  std::string anvilVersion;
  std::string device = "cpu";
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

uint64_t fnv1a64(const uint8_t* data, size_t n);
const char* anvilVersionString();

}  // namespace anvil::runtime
