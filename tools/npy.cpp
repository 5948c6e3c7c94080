// Minimal, strict .npy reader/writer: every malformed header is a clear error. Strings
// map to NumPy's fixed-width unicode arrays.
#include "tools/npy.h"

#include <algorithm>
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

// Strings travel as NumPy's fixed-width unicode ('<U<n>': n UTF-32LE code units per
// element, zero-padded); anvil keeps them as UTF-8.
std::u32string utf8To32(const std::string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    const auto c = uint8_t(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    bool valid = len > 0 && i + size_t(len) <= s.size();
    for (int k = 1; valid && k < len; ++k) valid = (uint8_t(s[i + size_t(k)]) >> 6) == 2;
    if (!valid) {  // not UTF-8: keep the byte as a code point rather than fail
      out.push_back(c);
      ++i;
      continue;
    }
    char32_t cp = len == 1 ? c : len == 2 ? c & 0x1f : len == 3 ? c & 0x0f : c & 0x07;
    for (int k = 1; k < len; ++k) cp = (cp << 6) | (uint8_t(s[i + size_t(k)]) & 0x3f);
    out.push_back(cp);
    i += size_t(len);
  }
  return out;
}

std::string utf32To8(const std::u32string& s) {
  std::string out;
  for (char32_t cp : s) {
    if (cp < 0x80) {
      out += char(cp);
    } else if (cp < 0x800) {
      out += char(0xc0 | (cp >> 6));
      out += char(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += char(0xe0 | (cp >> 12));
      out += char(0x80 | ((cp >> 6) & 0x3f));
      out += char(0x80 | (cp & 0x3f));
    } else {
      out += char(0xf0 | (cp >> 18));
      out += char(0x80 | ((cp >> 12) & 0x3f));
      out += char(0x80 | ((cp >> 6) & 0x3f));
      out += char(0x80 | (cp & 0x3f));
    }
  }
  return out;
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
  size_t unicodeWidth = 0;  // '<U<n>': code units per string
  if (descr.size() > 2 && (descr[0] == '<' || descr[0] == '|') && descr[1] == 'U') {
    try {
      unicodeWidth = std::stoul(descr.substr(2));
    } catch (...) {
      ANVIL_THROW(ErrorCode::kInvalidArgument, path, ": malformed .npy dtype '", descr, "'");
    }
    dt = DataType::kString;
  }
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
  if (dt == DataType::kString) {
    const size_t unit = 4 * unicodeWidth;
    ANVIL_CHECK(bytes.size() - data == unit * size_t(t.numel()), ErrorCode::kInvalidArgument, path,
                ": .npy data has ", bytes.size() - data, " bytes, its header says ", unit * size_t(t.numel()));
    for (int64_t i = 0; i < t.numel(); ++i) {
      std::u32string u;
      for (size_t k = 0; k < unicodeWidth; ++k) {
        const auto* b = reinterpret_cast<const uint8_t*>(bytes.data() + data + size_t(i) * unit + 4 * k);
        char32_t cp = char32_t(b[0]) | char32_t(b[1]) << 8 | char32_t(b[2]) << 16 | char32_t(b[3]) << 24;
        if (cp == 0) break;  // NumPy pads with zeros
        u.push_back(cp);
      }
      t.data<std::string>()[i] = utf32To8(u);
    }
    return t;
  }
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
  // NumPy has no bfloat16, 8-bit or 4-bit floats or 4-bit integers: widen them (exactly)
  // to f32, i8 or u8.
  DataType widenTo = DataType::kUndefined;
  switch (t.dtype()) {
    case DataType::kBF16: case DataType::kF8E4M3FN: case DataType::kF8E4M3FNUZ: case DataType::kF8E5M2:
    case DataType::kF8E5M2FNUZ: case DataType::kF4E2M1:
      widenTo = DataType::kF32;
      descr = "<f4";
      break;
    case DataType::kI4: widenTo = DataType::kI8; descr = "|i1"; break;
    case DataType::kU4: widenTo = DataType::kU8; descr = "|u1"; break;
    default: break;
  }
  if (widenTo != DataType::kUndefined) {
    data = ir::Tensor(widenTo, t.dims());
    for (int64_t i = 0; i < t.numel(); ++i) data.setDouble(i, t.getDouble(i));
  }
  std::string stringDescr;
  std::vector<std::u32string> wide;
  if (t.dtype() == DataType::kString) {
    size_t width = 1;
    for (int64_t i = 0; i < t.numel(); ++i) {
      wide.push_back(utf8To32(t.str(i)));
      width = std::max(width, wide.back().size());
    }
    stringDescr = "<U" + std::to_string(width);
    descr = stringDescr.c_str();
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
  if (t.dtype() == DataType::kString) {
    const size_t width = std::stoul(stringDescr.substr(2));
    for (const std::u32string& u : wide)
      for (size_t k = 0; k < width; ++k) {
        const char32_t cp = k < u.size() ? u[k] : 0;
        const char b[4] = {char(cp & 0xff), char((cp >> 8) & 0xff), char((cp >> 16) & 0xff), char(cp >> 24)};
        f.write(b, 4);
      }
  } else {
    f.write(static_cast<const char*>(data.raw()), std::streamsize(data.nbytes()));
  }
  ANVIL_CHECK(f.good(), ErrorCode::kIoError, "failed writing '", path, "'");
}

std::string npyFileName(const std::string& valueName) {
  std::string s = valueName;
  for (char& c : s)
    if (!(isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-')) c = '_';
  return s + ".npy";
}

}  // namespace anvil::tools
