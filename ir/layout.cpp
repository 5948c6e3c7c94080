// Layout and device names: the text forms the IR printer, the parser and the engine use.
#include "ir/layout.h"

#include "anvil/error.h"

namespace anvil::ir {

namespace {

constexpr int32_t kMaxBlock = 65536;

bool isUpper(char c) { return c >= 'A' && c <= 'Z'; }
bool isLower(char c) { return c >= 'a' && c <= 'z'; }
bool isDigit(char c) { return c >= '0' && c <= '9'; }

bool isIdent(std::string_view s) {
  if (s.empty() || !(isUpper(s[0]) || isLower(s[0]) || s[0] == '_')) return false;
  for (char c : s)
    if (!(isUpper(c) || isLower(c) || isDigit(c) || c == '_')) return false;
  return true;
}

// "NCHWc": upper-case letters then one lower-case letter, the channel-blocked form.
bool isChannelBlockedFamily(std::string_view f) {
  if (f.size() < 2 || !isLower(f.back())) return false;
  for (size_t i = 0; i + 1 < f.size(); ++i)
    if (!isUpper(f[i])) return false;
  return true;
}

// Digits 1..kMaxBlock without a leading zero; 0 when malformed.
int32_t blockOf(std::string_view digits) {
  if (digits.empty() || digits.size() > 5 || digits[0] == '0') return 0;
  int32_t v = 0;
  for (char c : digits) {
    if (!isDigit(c)) return 0;
    v = v * 10 + (c - '0');
  }
  return v <= kMaxBlock ? v : 0;
}

}  // namespace

Layout Layout::of(std::string family, int32_t block) {
  Layout l;
  l.family_ = std::move(family);
  l.block_ = block;
  ANVIL_CHECK(l.family_.empty() ? block == 0 : parseLayout(layoutName(l)) == l, ErrorCode::kInternal,
              "layout family '", l.family_, "' with block ", block, " has no text name that reads back");
  return l;
}

std::string layoutName(const Layout& l) {
  if (l.isPlain()) return "plain";
  if (l.block() == 0) return l.family();
  const std::string& f = l.family();
  if (isChannelBlockedFamily(f)) return f.substr(0, f.size() - 1) + std::to_string(l.block()) + f.back();
  return f + "_" + std::to_string(l.block());
}

std::optional<Layout> parseLayout(std::string_view name) {
  if (name.empty() || name == "plain") return Layout();
  if (!isIdent(name)) return std::nullopt;
  Layout l;
  // UPPER<digits>lower: NCHW8c.
  size_t d = 0;
  while (d < name.size() && isUpper(name[d])) ++d;
  size_t e = d;
  while (e < name.size() && isDigit(name[e])) ++e;
  if (d > 0 && e > d && e + 1 == name.size() && isLower(name[e])) {
    const int32_t block = blockOf(name.substr(d, e - d));
    if (!block) return std::nullopt;
    Layout out;
    out.family_ = std::string(name.substr(0, d)) + name[e];
    out.block_ = block;
    return out;
  }
  // family_<digits>: packed_gemm_b_16.
  const size_t us = name.rfind('_');
  if (us != std::string_view::npos && us + 1 < name.size()) {
    bool digits = true;
    for (size_t i = us + 1; i < name.size(); ++i) digits = digits && isDigit(name[i]);
    if (digits) {
      const int32_t block = blockOf(name.substr(us + 1));
      if (!block || us == 0 || name[us - 1] == '_') return std::nullopt;
      l.family_ = std::string(name.substr(0, us));
      l.block_ = block;
      // The family must not itself look blocked, or the name would read back otherwise.
      if (isChannelBlockedFamily(l.family_)) return std::nullopt;
      return l;
    }
  }
  // A bare family. "NCHWc" without digits is a (block-less) family of its own: the
  // verifier rejects it where a block is needed.
  l.family_ = std::string(name);
  return l;
}

int knownLayoutRank(const Layout& l) {
  const std::string& f = l.family();
  if (f == "NCHW" || f == "NHWC" || f == "NCHWc") return 4;
  if (f == "packed_gemm_b") return 2;
  return -1;
}

bool layoutNeedsBlock(const Layout& l) { return l.family() == "NCHWc" || l.family() == "packed_gemm_b"; }

const char* deviceName(Device d) { return d == Device::kCUDA ? "cuda" : "cpu"; }

std::optional<Device> parseDevice(std::string_view name) {
  if (name == "cpu") return Device::kCPU;
  if (name == "cuda") return Device::kCUDA;
  return std::nullopt;
}

int64_t storageElements(const Layout& l, const std::vector<int64_t>& extents) {
  int64_t n = 1;
  for (size_t i = 0; i < extents.size(); ++i) {
    int64_t d = extents[i];
    if (i == 1 && extents.size() == 4 && l.family() == "NCHWc" && l.block() > 0) d = (d + l.block() - 1) / l.block() * l.block();
    n *= d;
  }
  return n;
}

}  // namespace anvil::ir
