// runtime_no_alloc: a run of a prepared context allocates nothing on the heap, on the
// calling thread or on the context's worker threads, for every model of the zoo.
//   alloc_test MODELS_DIR [gtest flags]
// Every heap entry point of the process (operator new/delete in all variants, malloc,
// calloc, realloc, aligned_alloc, posix_memalign, memalign, valloc) is replaced here by a
// counting wrapper over glibc's allocator; the count is global, so worker threads count.
#include <execinfo.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "anvil/anvil.hpp"

// ---- the counting allocator --------------------------------------------------------------

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace alloc_count {

std::atomic<bool> armed{false};
std::atomic<uint64_t> allocations{0}, frees{0}, bytes{0};

// The first few allocations seen while armed, with a backtrace each, so that a failure
// points at the code that allocated (symbolized through -rdynamic, else addr2line).
constexpr int kTraces = 4, kDepth = 12;
struct Trace {
  size_t size;
  int depth;
  void* frames[kDepth];
};
Trace traces[kTraces];
std::atomic<int> traceCount{0};
// backtrace() may allocate (it loads libgcc on first use): the hook does not re-enter.
thread_local bool inHook = false;

inline void noteAlloc(size_t size) {
  if (!armed.load(std::memory_order_relaxed) || inHook) return;
  allocations.fetch_add(1, std::memory_order_relaxed);
  bytes.fetch_add(size, std::memory_order_relaxed);
  int slot = traceCount.fetch_add(1, std::memory_order_relaxed);
  if (slot < kTraces) {
    inHook = true;
    traces[slot].size = size;
    traces[slot].depth = backtrace(traces[slot].frames, kDepth);
    inHook = false;
  }
}
inline void noteFree(void* p) {
  if (p && armed.load(std::memory_order_relaxed) && !inHook) frees.fetch_add(1, std::memory_order_relaxed);
}

void arm() {
  allocations = 0;
  frees = 0;
  bytes = 0;
  traceCount = 0;
  armed = true;
}
void disarm() { armed = false; }

void printTraces() {
  int n = std::min(traceCount.load(), kTraces);
  for (int i = 0; i < n; ++i) {
    std::fprintf(stderr, "allocation %d of %zu bytes at:\n", i + 1, traces[i].size);
    // Frame 0 is the hook itself.
    backtrace_symbols_fd(traces[i].frames + 1, traces[i].depth - 1, 2);
  }
}

void* alignedAlloc(size_t align, size_t size) {
  noteAlloc(size);
  return __libc_memalign(align < sizeof(void*) ? sizeof(void*) : align, size);
}

}  // namespace alloc_count

extern "C" {
void* malloc(size_t n) {
  alloc_count::noteAlloc(n);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  alloc_count::noteAlloc(n * size);
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  alloc_count::noteAlloc(n);
  return __libc_realloc(p, n);
}
void* reallocarray(void* p, size_t n, size_t size) {
  if (size && n > SIZE_MAX / size) {
    errno = ENOMEM;
    return nullptr;
  }
  return realloc(p, n * size);
}
void free(void* p) {
  alloc_count::noteFree(p);
  __libc_free(p);
}
void* aligned_alloc(size_t align, size_t n) { return alloc_count::alignedAlloc(align, n); }
void* memalign(size_t align, size_t n) { return alloc_count::alignedAlloc(align, n); }
void* valloc(size_t n) { return alloc_count::alignedAlloc(4096, n); }
int posix_memalign(void** out, size_t align, size_t n) {
  if (align % sizeof(void*) != 0 || (align & (align - 1)) != 0) return EINVAL;
  void* p = alloc_count::alignedAlloc(align, n);
  if (!p && n) return ENOMEM;
  *out = p;
  return 0;
}
}

// operator new goes straight to glibc (not through malloc above) so each allocation
// counts once.
namespace {
void* newImpl(size_t n) {
  alloc_count::noteAlloc(n);
  void* p = __libc_malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void* newAligned(size_t n, std::align_val_t a) {
  void* p = alloc_count::alignedAlloc(size_t(a), n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
void deleteImpl(void* p) noexcept {
  alloc_count::noteFree(p);
  __libc_free(p);
}
}  // namespace

void* operator new(size_t n) { return newImpl(n); }
void* operator new[](size_t n) { return newImpl(n); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  alloc_count::noteAlloc(n);
  return __libc_malloc(n ? n : 1);
}
void* operator new[](size_t n, const std::nothrow_t&) noexcept {
  alloc_count::noteAlloc(n);
  return __libc_malloc(n ? n : 1);
}
void* operator new(size_t n, std::align_val_t a) { return newAligned(n, a); }
void* operator new[](size_t n, std::align_val_t a) { return newAligned(n, a); }
void* operator new(size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return alloc_count::alignedAlloc(size_t(a), n ? n : 1);
}
void* operator new[](size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  return alloc_count::alignedAlloc(size_t(a), n ? n : 1);
}
void operator delete(void* p) noexcept { deleteImpl(p); }
void operator delete[](void* p) noexcept { deleteImpl(p); }
void operator delete(void* p, size_t) noexcept { deleteImpl(p); }
void operator delete[](void* p, size_t) noexcept { deleteImpl(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { deleteImpl(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { deleteImpl(p); }
void operator delete(void* p, std::align_val_t) noexcept { deleteImpl(p); }
void operator delete[](void* p, std::align_val_t) noexcept { deleteImpl(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { deleteImpl(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { deleteImpl(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { deleteImpl(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { deleteImpl(p); }

// ---- the models ----------------------------------------------------------------------------

namespace {

std::string gModelsDir;  // argv[1]

bool isDir(const std::string& path) {
  std::error_code ec;
  return !path.empty() && std::filesystem::is_directory(path, ec);
}

// A C-order little-endian .npy array: its dtype descriptor ("<f4", "<i8", ...), shape
// and raw bytes. Enough for the zoo's inputs.
struct Npy {
  std::string descr;
  std::vector<int64_t> dims;
  std::vector<uint8_t> data;
};

std::string headerField(const std::string& header, const std::string& key) {
  size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) return "";
  size_t colon = header.find(':', k);
  return colon == std::string::npos ? "" : header.substr(colon + 1);
}

bool readNpy(const std::string& path, Npy* out, std::string* error) {
  std::ifstream f(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) {
    *error = path + ": not a .npy file";
    return false;
  }
  const int major = uint8_t(bytes[6]);
  size_t headerLen, start;
  if (major == 1) {
    headerLen = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8;
    start = 10;
  } else {
    headerLen = uint8_t(bytes[8]) | size_t(uint8_t(bytes[9])) << 8 | size_t(uint8_t(bytes[10])) << 16 |
                size_t(uint8_t(bytes[11])) << 24;
    start = 12;
  }
  const std::string header = bytes.substr(start, headerLen);
  const std::string order = headerField(header, "fortran_order");
  if (order.find("True") < order.find(',')) {
    *error = path + ": Fortran-order arrays are not read here";
    return false;
  }
  std::string d = headerField(header, "descr");
  size_t q1 = d.find('\''), q2 = d.find('\'', q1 + 1);
  out->descr = d.substr(q1 + 1, q2 - q1 - 1);
  std::string s = headerField(header, "shape");
  s = s.substr(s.find('(') + 1, s.find(')') - s.find('(') - 1);
  out->dims.clear();
  for (size_t i = 0; i < s.size();) {
    size_t j = s.find(',', i);
    std::string tok = s.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (tok.find_first_of("0123456789") != std::string::npos) out->dims.push_back(std::stoll(tok));
    if (j == std::string::npos) break;
    i = j + 1;
  }
  out->data.assign(bytes.begin() + long(start + headerLen), bytes.end());
  return true;
}

struct ModelCase {
  std::string name;
  int runs;               // armed runs
  std::string precision;  // "" (f32), or every linear layer in "int8" / "fp16" / "bf16" / "int8-adaptive"
};

// 1000 armed runs of every model, as the executable-plan issue asks (the ImageNet CNNs
// take about two minutes of the suite together, at 1 and 2 threads).
const ModelCase kCases[] = {
    {"tiny_cnn", 1000}, {"mlp", 1000},          {"lstm", 1000},             {"bert_tiny", 1000},
    {"resnet18", 1000}, {"mobilenet_v2", 1000}, {"efficientnet_b0", 1000},
    // The reduced-precision kernels (forced on every linear layer; INT8 ranges from the
    // builder's random calibration): the same rule.
    {"tiny_cnn", 1000, "int8"}, {"bert_tiny", 1000, "int8"}, {"resnet18", 200, "int8"},
    {"tiny_cnn", 1000, "int8-adaptive"}, {"mlp", 1000, "fp16"}, {"tiny_cnn", 1000, "bf16"},
};

// One model's file and its saved inputs (input name -> .npy path).
struct ModelFiles {
  std::string onnx;
  std::map<std::string, std::string> inputs;
};

// tiny_cnn is the bundled example; the others come from export_models.py's manifest.
bool modelFiles(const std::string& name, ModelFiles* out, std::string* error) {
  if (name == "tiny_cnn") {
    const std::string dir = std::string(ANVIL_SOURCE_DIR) + "/examples/models/";
    out->onnx = dir + "tiny_cnn.onnx";
    out->inputs["input"] = dir + "tiny_cnn.input.npy";
    return true;
  }
  std::ifstream f(gModelsDir + "/manifest.json");
  if (!f) {
    *error = gModelsDir + "/manifest.json is missing";
    return false;
  }
  nlohmann::json manifest = nlohmann::json::parse(f, nullptr, false);
  if (manifest.is_discarded() || !manifest.contains("models") || !manifest["models"].contains(name)) {
    *error = gModelsDir + "/manifest.json has no model '" + name + "'";
    return false;
  }
  const auto& entry = manifest["models"][name];
  out->onnx = gModelsDir + "/" + entry["file"].get<std::string>();
  for (const auto& in : entry["inputs"])
    out->inputs[in["name"].get<std::string>()] = gModelsDir + "/" + in["file"].get<std::string>();
  return true;
}

// Engine bytes built once per model and shared by the thread-count variants.
std::map<std::string, std::string> gEngines;

struct Param {
  ModelCase model;
  int threads;  // ContextOptions::threads: 1 (no workers) and 2 (a worker thread)
};

std::string caseName(const ModelCase& m) {
  std::string p = m.precision;
  for (char& c : p)
    if (c == '-') c = '_';
  return m.name + (p.empty() ? "" : "_" + p);
}

void PrintTo(const Param& p, std::ostream* os) { *os << caseName(p.model) << " threads=" << p.threads; }

std::string paramName(const testing::TestParamInfo<Param>& info) {
  return caseName(info.param.model) + "_threads" + std::to_string(info.param.threads);
}

std::vector<Param> allParams() {
  std::vector<Param> out;
  for (const ModelCase& m : kCases)
    for (int t : {1, 2}) out.push_back({m, t});
  return out;
}

class NoAlloc : public testing::TestWithParam<Param> {};

TEST_P(NoAlloc, RunAllocatesNothing) {
  const Param& p = GetParam();
  const std::string& name = p.model.name;
  if (name != "tiny_cnn" && !isDir(gModelsDir))
    GTEST_SKIP() << "models directory '" << gModelsDir
                 << "' is absent (export it: .venv/bin/python tests/models/export_models.py BUILD/models)";
  ModelFiles files;
  std::string err;
  ASSERT_TRUE(modelFiles(name, &files, &err)) << name << ": " << err;
  std::map<std::string, Npy> npys;
  for (const auto& [input, path] : files.inputs) {
    ASSERT_TRUE(readNpy(path, &npys[input], &err)) << name << ": " << err;
  }

  // Tuned for the saved inputs' shapes (the zoo exports a dynamic batch).
  std::string& bytes = gEngines[caseName(p.model)];
  if (bytes.empty()) {
    anvil::BuilderConfig cfg;
    cfg.threads = 1;
    if (name != "tiny_cnn")
      for (const auto& [input, a] : npys) cfg.inputShapes[input] = a.dims;
    const std::string& prec = p.model.precision;
    if (!prec.empty()) {
      cfg.int8 = prec.rfind("int8", 0) == 0;
      cfg.fp16 = prec == "fp16";
      cfg.bf16 = prec == "bf16";
      cfg.layerPrecisions["*"] = cfg.int8   ? anvil::DataType::kInt8
                                 : cfg.fp16 ? anvil::DataType::kF16
                                            : anvil::DataType::kBFloat16;
      if (prec == "int8-adaptive") cfg.adaptivePrecision = 0.5;
    }
    anvil::Status s = anvil::Builder::buildFromOnnx(files.onnx, cfg, &bytes);
    ASSERT_TRUE(s) << name << ": build failed: " << s.message();
  }
  std::shared_ptr<anvil::Engine> engine;
  anvil::Status s = anvil::Engine::fromBytes(bytes, &engine);
  ASSERT_TRUE(s) << name << ": " << s.message();
  std::unique_ptr<anvil::ExecutionContext> ctx;
  s = engine->createContext(&ctx, anvil::ContextOptions{p.threads});
  ASSERT_TRUE(s) << name << ": " << s.message();

  // Inputs from the saved .npy files (zeros at the tuned shape where none), outputs in
  // caller buffers. Moving a vector into `buffers` keeps its storage, so the bound
  // addresses stay valid.
  std::vector<std::vector<uint8_t>> buffers;
  buffers.reserve(engine->io().size());
  for (const auto& d : engine->io()) {
    if (!d.isInput) continue;
    std::vector<int64_t> dims = engine->optShape(d.name);
    std::vector<uint8_t> data;
    if (npys.count(d.name)) {
      dims = npys[d.name].dims;
      data = std::move(npys[d.name].data);
    }
    size_t n = anvil::dataTypeSize(d.dtype);
    for (int64_t x : dims) n *= size_t(x);
    ASSERT_TRUE(data.empty() || data.size() == n)
        << name << ": input '" << d.name << "' has " << data.size() << " bytes, the engine expects " << n;
    data.resize(std::max<size_t>(n, 1), 0);
    ASSERT_TRUE(s = ctx->setInputShape(d.name, dims)) << name << ": " << s.message();
    buffers.push_back(std::move(data));
    ASSERT_TRUE(s = ctx->setTensorAddress(d.name, buffers.back().data())) << name << ": " << s.message();
  }
  for (const auto& d : engine->io()) {
    if (d.isInput) continue;
    std::vector<int64_t> dims;
    ASSERT_TRUE(s = ctx->getTensorShape(d.name, &dims)) << name << ": " << s.message();
    size_t n = anvil::dataTypeSize(d.dtype);
    for (int64_t x : dims) n *= size_t(std::max<int64_t>(x, 0));
    buffers.emplace_back(std::max<size_t>(n, 1), 0);
    ASSERT_TRUE(s = ctx->setTensorAddress(d.name, buffers.back().data())) << name << ": " << s.message();
  }

  s = ctx->run();  // the first run may set things up
  ASSERT_TRUE(s) << name << ": first run failed: " << s.message();

  int failedRuns = 0;
  alloc_count::arm();
  for (int i = 0; i < p.model.runs; ++i)
    if (!ctx->run()) ++failedRuns;
  alloc_count::disarm();
  const uint64_t count = alloc_count::allocations, freed = alloc_count::frees, total = alloc_count::bytes;

  std::printf("[ alloc    ] %-16s threads=%d runs=%d: %llu allocations (%.1f per run, %llu bytes), %llu frees\n",
              name.c_str(), p.threads, p.model.runs, (unsigned long long)count, double(count) / p.model.runs,
              (unsigned long long)total, (unsigned long long)freed);
  RecordProperty("allocations", std::to_string(count));
  EXPECT_EQ(failedRuns, 0) << name << ": runs failed while counting";
  EXPECT_EQ(count, 0u) << name << " (threads=" << p.threads << "): " << count << " heap allocations in "
                       << p.model.runs << " runs; the first ones follow on stderr";
  if (count) alloc_count::printTraces();
}

INSTANTIATE_TEST_SUITE_P(Zoo, NoAlloc, testing::ValuesIn(allParams()), paramName);

// The counter itself: it sees new, malloc and allocations on other threads, and nothing
// while disarmed. Without this a broken hook would make every model pass.
TEST(AllocCounter, CountsEveryEntryPoint) {
  alloc_count::arm();
  auto* a = new int(1);
  void* b = std::malloc(16);
  void* c = nullptr;
  ASSERT_EQ(posix_memalign(&c, 64, 64), 0);
  auto* d = new (std::align_val_t(128)) char[256];
  std::thread([] { delete new std::string(100, 'x'); }).join();
  alloc_count::disarm();
  const uint64_t armedCount = alloc_count::allocations;
  delete a;
  std::free(b);
  std::free(c);
  operator delete[](d, std::align_val_t(128));
  EXPECT_GE(armedCount, 5u);  // std::thread may allocate its state too
  alloc_count::arm();
  alloc_count::disarm();
  void* e = std::malloc(8);
  std::free(e);
  EXPECT_EQ(alloc_count::allocations.load(), 0u);
}

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  gModelsDir = argc > 1 ? argv[1] : "";
  // Loads libgcc's unwinder now, so backtrace() in the hook does not allocate later.
  void* warm[2];
  backtrace(warm, 2);
  return RUN_ALL_TESTS();
}
