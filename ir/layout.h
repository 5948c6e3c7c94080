// How a value's elements lie in memory (Layout) and where it lives (Device): metadata a
// value carries beside its logical type, set by layout and placement passes and read by
// codegen. A value's shape is always its logical (ONNX) shape; the layout says only how
// that shape is stored.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace anvil::ir {

class Layout;
std::optional<Layout> parseLayout(std::string_view name);

// A storage format: a family name and, for blocked families, a block size. Families are
// open-ended strings (a new packed format is a new name, not a new enumerator); the ones
// the verifier knows are listed in knownLayoutRank(). Text names:
//   plain             row-major in the logical shape (the default; prints nothing)
//   NCHW, NHWC        4-D activations, channels second / last
//   NCHW8c, NCHW16c   family "NCHWc", block 8 / 16: channels split into blocks of `block`,
//                     stored [N][ceil(C/block)][H][W][block], the last block zero-padded
//   packed_gemm_b_16  family "packed_gemm_b", block 16: a GEMM B operand in panels of 16
//                     columns, as a tactic's prepare step packs it
// A name is either UPPER<digits>lower (a channel-blocked family: the digits are the block,
// the family is the name without them) or family_<digits> (the block after the last '_'),
// or a bare family without a block.
class Layout {
 public:
  Layout() = default;  // plain
  // Checks that (family, block) has a text name that reads back as itself.
  static Layout of(std::string family, int32_t block = 0);
  static Layout plain() { return {}; }
  static Layout nchw() { return of("NCHW"); }
  static Layout nhwc() { return of("NHWC"); }
  static Layout nchwc(int32_t block) { return of("NCHWc", block); }
  static Layout packedGemmB(int32_t panel) { return of("packed_gemm_b", panel); }

  const std::string& family() const { return family_; }  // "" for plain
  int32_t block() const { return block_; }                // 0: not blocked
  bool isPlain() const { return family_.empty(); }
  // Whether its bytes are the row-major bytes of the logical shape (plain and NCHW), so a
  // kernel that knows no layouts can read it.
  bool isRowMajor() const { return family_.empty() || family_ == "NCHW"; }

  bool operator==(const Layout& o) const { return family_ == o.family_ && block_ == o.block_; }
  bool operator!=(const Layout& o) const { return !(*this == o); }

 private:
  friend std::optional<Layout> parseLayout(std::string_view name);
  std::string family_;
  int32_t block_ = 0;
};

// Elements the storage of a value with these static extents takes in layout `l`: the
// element count for row-major layouts; NCHW<b>c rounds the channels (dim 1 of a rank-4
// value) up to a multiple of b.
int64_t storageElements(const Layout& l, const std::vector<int64_t>& extents);

// "plain", "NCHW", "NCHW8c", "packed_gemm_b_16".
std::string layoutName(const Layout& l);
// Inverse of layoutName ("" and "plain" are plain); nullopt for a malformed name (not
// [A-Za-z_][A-Za-z0-9_]*, or a block of 0 or above 65536). Unknown families are accepted.
std::optional<Layout> parseLayout(std::string_view name);
// The rank a known family requires (4 for NCHW, NHWC, NCHWc; 2 for packed_gemm_b), -1 for
// plain or a family the IR does not know (checked by whoever made it).
int knownLayoutRank(const Layout& l);
// Whether the family is known to need a block (NCHWc, packed_gemm_b).
bool layoutNeedsBlock(const Layout& l);

// Where a value lives or a node runs. Same order as anvil::Device (include/anvil/anvil.hpp),
// so converting is a cast.
enum class Device : uint8_t { kCPU = 0, kCUDA = 1 };
const char* deviceName(Device d);                         // "cpu", "cuda"
std::optional<Device> parseDevice(std::string_view name);  // inverse; nullopt if unknown

}  // namespace anvil::ir
