// Minimal, strict .npy reader/writer: every malformed header is a clear error.
#include "tools/npy.h"

#include <cstring>
#include <fstream>
#include <sstream>

namespace anvil::tools {

using ir::DataType;

namespace {
struct NpyType {
  const char* descr;
  DataType dtype;
};
constexpr NpyType kNpyTypes[] = {
    {"<f4", DataType::kF32}, {"<f8", DataType::kF64},  {"<f2", DataType::kF16}, {"|i1", DataType::kI8},
    {"|u1", DataType::kU8},  {"<i2", DataType::kI16},  {"<u2", DataType::kU16}, {"<i4", DataType::kI32},
    {"<u4", DataType::kU32}, {"<i8", DataType::kI64},  {"<u8", DataType::kU64}, {"|b1", DataType::kBool},
};

std::string headerValue(const std::string& header, const std::string& key, const std::string& path) {
  size_t k = header.find("'" + key + "'");
  ANVIL_CHECK(k != std::string::npos, ErrorCode::kInvalidArgument, path, ": .npy header has no '", key, "'");
  size_t colon = header.find(':', k);
  ANVIL_CHECK(colon != std::string::npos, ErrorCode::kInvalidArgument, path, ": malformed .npy header");
  size_t start = header.find_first_not_of(' ', colon + 1);
  ANVIL_CHECK(start != std::string::npos, ErrorCode::kInvalidArgument, path, ": malformed .npy header");
  if (header[start] == '(') {
    size_t end = header.find(')', start);
    ANVIL_CHECK(end != std::string::npos, ErrorCode::kInvalidArgument, path, ": malformed .npy shape");
    return header.substr(start + 1, end - start - 1);
  }
  if (header[start] == '\'') {
    size_t end = header.find('\'', start + 1);
    ANVIL_CHECK(end != std::string::npos, ErrorCode::kInvalidArgument, path, ": malformed .npy header");
    return header.substr(start + 1, end - start - 1);
  }
  size_t end = header.find_first_of(",}", start);
  return header.substr(start, end - start);
}
}  // namespace

ir::Tensor readNpy(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot open '", path, "'");
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string bytes = ss.str();
  ANVIL_CHECK(bytes.size() >= 10 && std::memcmp(bytes.data(), "\x93NUMPY", 6) == 0, ErrorCode::kInvalidArgument,
              path, ": not a .npy file");
  const int major = uint8_t(bytes[6]);
  size_t hlen, hstart;
  if (major == 1) {
    hlen = uint8_t(bytes[8]) | (size_t(uint8_t(bytes[9])) << 8);
    hstart = 10;
  } else {
    ANVIL_CHECK(bytes.size() >= 12, ErrorCode::kInvalidArgument, path, ": truncated .npy header");
    hlen = 0;
    for (int i = 0; i < 4; ++i) hlen |= size_t(uint8_t(bytes[8 + i])) << (8 * i);
    hstart = 12;
  }
  ANVIL_CHECK(hstart + hlen <= bytes.size(), ErrorCode::kInvalidArgument, path, ": truncated .npy header");
  const std::string header = bytes.substr(hstart, hlen);
  std::string descr = headerValue(header, "descr", path);
  if (descr == "=f4") descr = "<f4";
  if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';
  ANVIL_CHECK(headerValue(header, "fortran_order", path).find("False") != std::string::npos,
              ErrorCode::kUnsupported, path, ": Fortran-order arrays are not supported");
  DataType dt = DataType::kUndefined;
  for (const auto& t : kNpyTypes)
    if (descr == t.descr || (descr.size() == 3 && descr[0] == '|' && std::string("<") + descr.substr(1) == t.descr))
      dt = t.dtype;
  ANVIL_CHECK(dt != DataType::kUndefined, ErrorCode::kUnsupported, path, ": .npy dtype '", descr,
              "' is not supported (use little-endian numeric types)");
  std::vector<int64_t> dims;
  std::stringstream shape(headerValue(header, "shape", path));
  std::string item;
  while (std::getline(shape, item, ',')) {
    size_t a = item.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    try {
      dims.push_back(std::stoll(item.substr(a)));
    } catch (...) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, path, ": malformed .npy shape");
    }
  }
  ir::Tensor t(dt, dims);
  const size_t data = hstart + hlen;
  ANVIL_CHECK(bytes.size() - data == t.nbytes(), ErrorCode::kInvalidArgument, path, ": .npy data has ",
              bytes.size() - data, " bytes, its header says ", t.nbytes());
  if (t.nbytes()) std::memcpy(t.mutableRaw(), bytes.data() + data, t.nbytes());
  return t;
}

void writeNpy(const std::string& path, const ir::Tensor& t) {
  const char* descr = nullptr;
  for (const auto& n : kNpyTypes)
    if (n.dtype == t.dtype()) descr = n.descr;
  ir::Tensor data = t;
  if (t.dtype() == DataType::kBF16) {  // NumPy has no bfloat16: widen to f32
    data = ir::Tensor(DataType::kF32, t.dims());
    for (int64_t i = 0; i < t.numel(); ++i) data.data<float>()[i] = float(t.getDouble(i));
    descr = "<f4";
  }
  ANVIL_CHECK(descr != nullptr, ErrorCode::kUnsupported, "cannot write ", t.summary(), " as .npy");
  std::string shape = "(";
  for (size_t i = 0; i < t.rank(); ++i) shape += std::to_string(t.dim(i)) + (t.rank() == 1 || i + 1 < t.rank() ? "," : "");
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary);
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "cannot write '", path, "'");
  const uint16_t hl = uint16_t(header.size());
  f.write("\x93NUMPY\x01\x00", 8);
  f.put(char(hl & 0xff));
  f.put(char(hl >> 8));
  f.write(header.data(), std::streamsize(header.size()));
  f.write(static_cast<const char*>(data.raw()), std::streamsize(data.nbytes()));
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "failed writing '", path, "'");
}

}  // namespace anvil::tools
