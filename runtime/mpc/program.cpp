// The mpc / fixed engine file: "ANVILMPC", a format version, the payload length, the
// program's fields in a fixed order (little-endian, every vector length-prefixed), and a
// BLAKE2b checksum (libsodium crypto_generichash) of everything before it. Reading checks
// every length against what is left and every id and enum against its range, so a
// corrupt, truncated or foreign file is an anvil::Error (kInvalidEngine), never a crash.
#include <sodium.h>

#include <cstring>
#include <fstream>

#include "anvil/error.h"
#include "runtime/mpc/program.h"

namespace anvil::mpc {

namespace {

constexpr char kMagic[8] = {'A', 'N', 'V', 'I', 'L', 'M', 'P', 'C'};
constexpr uint32_t kVersion = 2;  // 2 added exactTruncation (version 1 files read as false)
constexpr size_t kChecksumBytes = 32;
constexpr size_t kHeaderBytes = sizeof(kMagic) + 4 + 8;
// Bounds that no real program reaches; they stop a hostile length from allocating wildly.
constexpr uint64_t kMaxRank = 16;

class Writer {
 public:
  void raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  void u8(uint8_t v) { raw(&v, 1); }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(uint8_t(v >> (8 * i)));
  }
  void u64(uint64_t v) {
    for (int i = 0; i < 8; ++i) u8(uint8_t(v >> (8 * i)));
  }
  void i64(int64_t v) { u64(uint64_t(v)); }
  void i32(int32_t v) { u32(uint32_t(v)); }
  void f64(double v) {
    uint64_t b;
    std::memcpy(&b, &v, 8);
    u64(b);
  }
  void str(const std::string& s) {
    u64(s.size());
    raw(s.data(), s.size());
  }
  void bytes(const std::vector<uint8_t>& b) {
    u64(b.size());
    raw(b.data(), b.size());
  }
  void i64s(const std::vector<int64_t>& v) {
    u64(v.size());
    for (int64_t x : v) i64(x);
  }
  void i32s(const std::vector<int32_t>& v) {
    u64(v.size());
    for (int32_t x : v) i32(x);
  }
  void ring(const std::vector<Ring>& v) {
    u64(v.size());
    for (Ring x : v) u64(x);
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  Reader(const char* p, size_t n) : p_(p), left_(n) {}
  void need(uint64_t n, const char* what) {
    ANVIL_CHECK(n <= left_, ErrorCode::kInvalidEngine, "mpc engine file is truncated or corrupt: ", what,
                " needs ", n, " bytes, ", left_, " left");
  }
  uint8_t u8(const char* what) {
    need(1, what);
    uint8_t v = uint8_t(*p_);
    ++p_;
    --left_;
    return v;
  }
  uint32_t u32(const char* what) {
    need(4, what);
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t(uint8_t(p_[i])) << (8 * i);
    p_ += 4;
    left_ -= 4;
    return v;
  }
  uint64_t u64(const char* what) {
    need(8, what);
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t(uint8_t(p_[i])) << (8 * i);
    p_ += 8;
    left_ -= 8;
    return v;
  }
  int64_t i64(const char* what) { return int64_t(u64(what)); }
  int32_t i32(const char* what) { return int32_t(u32(what)); }
  double f64(const char* what) {
    uint64_t b = u64(what);
    double v;
    std::memcpy(&v, &b, 8);
    return v;
  }
  // A count of elements of `elemBytes` each that must fit in what is left.
  uint64_t count(uint64_t elemBytes, const char* what) {
    uint64_t n = u64(what);
    ANVIL_CHECK(n <= left_ / elemBytes, ErrorCode::kInvalidEngine, "mpc engine file is corrupt: ", what,
                " claims ", n, " elements, more than the file holds");
    return n;
  }
  std::string str(const char* what) {
    uint64_t n = count(1, what);
    std::string s(p_, n);
    p_ += n;
    left_ -= n;
    return s;
  }
  std::vector<uint8_t> bytes(const char* what) {
    std::string s = str(what);
    return {s.begin(), s.end()};
  }
  std::vector<int64_t> i64s(const char* what) {
    std::vector<int64_t> v(count(8, what));
    for (int64_t& x : v) x = i64(what);
    return v;
  }
  std::vector<int32_t> i32s(const char* what) {
    std::vector<int32_t> v(count(4, what));
    for (int32_t& x : v) x = i32(what);
    return v;
  }
  std::vector<Ring> ring(const char* what) {
    std::vector<Ring> v(count(8, what));
    for (Ring& x : v) x = u64(what);
    return v;
  }
  size_t left() const { return left_; }

 private:
  const char* p_;
  size_t left_;
};

[[noreturn]] void corrupt(const std::string& why) {
  ANVIL_THROW(ErrorCode::kInvalidEngine, "mpc engine file is corrupt: ", why);
}

// No tensor of a real program comes near 2^31 elements; the cap keeps a hostile file from
// asking for terabytes.
int64_t checkedNumel(const std::vector<int64_t>& shape, const std::string& what) {
  if (shape.size() > kMaxRank) corrupt(what + " has rank " + std::to_string(shape.size()));
  constexpr int64_t kMaxElements = int64_t(1) << 31;
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0 || d > kMaxElements || (d > 0 && n > kMaxElements / d))
      corrupt(what + " has an impossible extent");
    n *= d;
  }
  return n;
}

// The structural checks an executor relies on: ids in range, enums known, constant sizes
// matching their shapes. Shapes of step inputs and outputs are checked by the kernels.
void validate(const Program& p) {
  const int32_t nt = int32_t(p.tensors.size());
  for (const TensorDef& t : p.tensors) checkedNumel(t.shape, "tensor '" + t.name + "'");
  auto checkId = [&](int32_t id, const std::string& what) {
    if (id < 0 || id >= nt) corrupt(what + " refers to tensor " + std::to_string(id) + " of " + std::to_string(nt));
  };
  for (size_t i = 0; i < p.steps.size(); ++i) {
    const Step& s = p.steps[i];
    const std::string where = "step " + std::to_string(i) + " ('" + s.name + "')";
    if (int32_t(s.kind) < 0 || int32_t(s.kind) > int32_t(StepKind::kOutput)) corrupt(where + " has an unknown kind");
    if (int32_t(s.linear) < 0 || int32_t(s.linear) > int32_t(LinearKind::kConv)) corrupt(where + " has an unknown linear map");
    if (int32_t(s.function) < 0 || int32_t(s.function) > int32_t(LutFunction::kLeakyRelu))
      corrupt(where + " has an unknown function");
    // Window geometry (every step carries one; the defaults are valid): kernels read
    // divide by strides and index with dilations.
    const ConvGeometry& g = s.conv;
    constexpr int64_t kMaxExtent = int64_t(1) << 20;
    for (int k = 0; k < 2; ++k)
      if (g.kernel[k] < 1 || g.stride[k] < 1 || g.dilation[k] < 1 || g.kernel[k] > kMaxExtent ||
          g.stride[k] > kMaxExtent || g.dilation[k] > kMaxExtent)
        corrupt(where + " has a window with a kernel, stride or dilation outside [1, 2^20]");
    for (int64_t pad : g.pads)
      if (pad < 0 || pad > kMaxExtent) corrupt(where + " has a pad outside [0, 2^20]");
    if (g.group < 1 || g.group > kMaxExtent) corrupt(where + " has a group outside [1, 2^20]");
    for (int32_t id : s.inputs) checkId(id, where);
    if (s.kind != StepKind::kOutput) checkId(s.output, where);
    if (s.kind == StepKind::kLut || s.kind == StepKind::kMaxPool) {
      if (s.table.size() != 256) corrupt(where + " has a table of " + std::to_string(s.table.size()) + " entries, not 256");
      if (s.shift < 0 || s.shift > 56) corrupt(where + " has shift " + std::to_string(s.shift) + " outside [0, 56]");
      if (s.tableLow < -255 || s.tableLow > 0) corrupt(where + " has a table low end outside [-255, 0]");
    }
    if (s.kind == StepKind::kLinear || s.kind == StepKind::kScale) {
      int64_t n = checkedNumel(s.weightShape, where + "'s weights");
      if (!p.isPublic && int64_t(s.weights.size()) != n) corrupt(where + " has the wrong number of weights");
      if (p.isPublic && (!s.weights.empty() || !s.bias.empty())) corrupt(where + ": a public engine holds weights");
    }
  }
  for (int32_t id : p.inputs) checkId(id, "the input list");
  for (int32_t id : p.outputs) checkId(id, "the output list");
  if (p.programId.size() != 16) corrupt("the program id is not 16 bytes");
  if (p.isPublic && !p.serverSecretKey.empty()) corrupt("a public engine holds the server's secret key");
}

}  // namespace

std::string serializeProgram(const Program& p) {
  ANVIL_CHECK(sodium_init() >= 0, ErrorCode::kInternal, "libsodium failed to initialize");
  Writer w;
  w.raw(kMagic, sizeof(kMagic));
  w.u32(kVersion);
  w.u64(0);  // payload length, patched below
  w.str(p.programId);
  w.u8(p.isPublic ? 1 : 0);
  w.u8(p.exactTruncation ? 1 : 0);
  w.bytes(p.serverPublicKey);
  w.bytes(p.serverSecretKey);
  w.u64(p.tensors.size());
  for (const TensorDef& t : p.tensors) {
    w.str(t.name);
    w.i64s(t.shape);
    w.f64(t.scale);
  }
  w.u64(p.steps.size());
  for (const Step& s : p.steps) {
    w.i32(int32_t(s.kind));
    w.str(s.name);
    w.i32s(s.inputs);
    w.i32(s.output);
    w.i32(int32_t(s.linear));
    w.i64s(s.weightShape);
    w.f64(s.weightScale);
    w.ring(s.weights);
    w.ring(s.bias);
    for (int64_t v : s.conv.kernel) w.i64(v);
    for (int64_t v : s.conv.stride) w.i64(v);
    for (int64_t v : s.conv.dilation) w.i64(v);
    for (int64_t v : s.conv.pads) w.i64(v);
    w.i64(s.conv.group);
    w.i32(s.shift);
    w.i32(int32_t(s.function));
    w.ring(s.table);
    w.i32(s.tableLow);
    w.i64(s.factor);
    w.i64s(s.axes);
    w.i64s(s.perm);
    w.i64s(s.starts);
    w.i64s(s.ends);
    w.i64s(s.steps);
    w.i64(s.axis);
  }
  w.i32s(p.inputs);
  w.i32s(p.outputs);
  std::string& out = w.out();
  uint64_t payload = out.size() - kHeaderBytes;
  for (int i = 0; i < 8; ++i) out[sizeof(kMagic) + 4 + i] = char(uint8_t(payload >> (8 * i)));
  unsigned char sum[kChecksumBytes];
  crypto_generichash(sum, sizeof(sum), reinterpret_cast<const unsigned char*>(out.data()), out.size(), nullptr, 0);
  out.append(reinterpret_cast<const char*>(sum), sizeof(sum));
  return std::move(out);
}

Program deserializeProgram(const std::string& bytes) {
  ANVIL_CHECK(sodium_init() >= 0, ErrorCode::kInternal, "libsodium failed to initialize");
  ANVIL_CHECK(bytes.size() >= sizeof(kMagic) && std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) == 0,
              ErrorCode::kInvalidEngine, "not an mpc engine file (no ANVILMPC magic)");
  ANVIL_CHECK(bytes.size() >= kHeaderBytes + kChecksumBytes, ErrorCode::kInvalidEngine,
              "mpc engine file is truncated: ", bytes.size(), " bytes, less than its header and checksum");
  Reader header(bytes.data() + sizeof(kMagic), kHeaderBytes - sizeof(kMagic));
  uint32_t version = header.u32("the version");
  ANVIL_CHECK(version == 1 || version == kVersion, ErrorCode::kInvalidEngine, "mpc engine file has format version ",
              version, "; this anvil reads versions 1 to ", kVersion);
  uint64_t payload = header.u64("the payload length");
  ANVIL_CHECK(payload == bytes.size() - kHeaderBytes - kChecksumBytes, ErrorCode::kInvalidEngine,
              "mpc engine file is truncated or has trailing bytes: the header says ", payload,
              " payload bytes, the file holds ", bytes.size() - kHeaderBytes - kChecksumBytes);
  unsigned char sum[kChecksumBytes];
  crypto_generichash(sum, sizeof(sum), reinterpret_cast<const unsigned char*>(bytes.data()),
                     kHeaderBytes + payload, nullptr, 0);
  ANVIL_CHECK(sodium_memcmp(sum, bytes.data() + kHeaderBytes + payload, kChecksumBytes) == 0,
              ErrorCode::kInvalidEngine, "mpc engine file is corrupt: checksum mismatch");

  Reader r(bytes.data() + kHeaderBytes, payload);
  Program p;
  p.programId = r.str("the program id");
  p.isPublic = r.u8("the public flag") != 0;
  if (version >= 2) {
    const uint8_t exact = r.u8("the exact truncation flag");
    ANVIL_CHECK(exact <= 1, ErrorCode::kInvalidEngine, "mpc engine file is corrupt: exact truncation flag ", int(exact),
                " (expected 0 or 1)");
    p.exactTruncation = exact == 1;
  }
  p.serverPublicKey = r.bytes("the server public key");
  p.serverSecretKey = r.bytes("the server secret key");
  uint64_t nt = r.count(8 + 8 + 8, "the tensor count");
  p.tensors.resize(nt);
  for (TensorDef& t : p.tensors) {
    t.name = r.str("a tensor name");
    t.shape = r.i64s("a tensor shape");
    t.scale = r.f64("a tensor scale");
  }
  uint64_t ns = r.count(64, "the step count");
  p.steps.resize(ns);
  for (Step& s : p.steps) {
    s.kind = StepKind(r.i32("a step kind"));
    s.name = r.str("a step name");
    s.inputs = r.i32s("step inputs");
    s.output = r.i32("a step output");
    s.linear = LinearKind(r.i32("a linear kind"));
    s.weightShape = r.i64s("a weight shape");
    s.weightScale = r.f64("a weight scale");
    s.weights = r.ring("weights");
    s.bias = r.ring("a bias");
    for (int64_t& v : s.conv.kernel) v = r.i64("a kernel");
    for (int64_t& v : s.conv.stride) v = r.i64("a stride");
    for (int64_t& v : s.conv.dilation) v = r.i64("a dilation");
    for (int64_t& v : s.conv.pads) v = r.i64("pads");
    s.conv.group = r.i64("a group");
    s.shift = r.i32("a shift");
    s.function = LutFunction(r.i32("a function"));
    s.table = r.ring("a table");
    s.tableLow = r.i32("a table's low end");
    s.factor = r.i64("a factor");
    s.axes = r.i64s("axes");
    s.perm = r.i64s("a perm");
    s.starts = r.i64s("starts");
    s.ends = r.i64s("ends");
    s.steps = r.i64s("steps");
    s.axis = r.i64("an axis");
  }
  p.inputs = r.i32s("the inputs");
  p.outputs = r.i32s("the outputs");
  ANVIL_CHECK(r.left() == 0, ErrorCode::kInvalidEngine, "mpc engine file is corrupt: ", r.left(),
              " unread bytes after the program");
  validate(p);
  return p;
}

Program publicCopy(const Program& p) {
  Program q = p;
  q.isPublic = true;
  q.serverSecretKey.clear();
  for (Step& s : q.steps) {
    s.weights.clear();
    s.bias.clear();
  }
  return q;
}

bool isMpcEngineFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  char head[sizeof(kMagic)];
  if (!f.read(head, sizeof(head))) return false;
  return std::memcmp(head, kMagic, sizeof(kMagic)) == 0;
}

}  // namespace anvil::mpc
