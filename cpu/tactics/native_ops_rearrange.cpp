// Native rearranging kernels for any element type of whole bytes: DepthToSpace and
// SpaceToDepth (one strided copy each: the reshape-transpose-reshape the ONNX spec defines,
// as strides), Tile (a strided copy whose repeat axes have stride 0) and Pad (constant,
// reflect, edge and wrap; negative pads crop): output rows copied from their source rows
// with the row's interior in one memcpy. Copies move bytes: results equal the reference
// kernels' (cpu/kernels/tensor*.cpp) exactly.
#include <cstring>

#include "cpu/tactics/native_ops_util.h"

namespace anvil::runtime::nops {

namespace {

// ---- DepthToSpace / SpaceToDepth ---------------------------------------------------

struct BlockParams {
  int64_t block = 1;
  int32_t crd = 0;  // DepthToSpace mode CRD (else DCR)
  int32_t reserved = 0;
};

void depthToSpaceKernel(const StepArgs& a) {
  const BlockParams& p = a.paramsAs<BlockParams>();
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  const int64_t b = p.block, N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  if (x.rank != 4 || C % (b * b) != 0) a.fail("X must be [N, C, H, W] with C a multiple of blocksize^2");
  const int64_t Co = C / (b * b), HW = H * W;
  if (y.rank != 4 || y.dims[0] != N || y.dims[1] != Co || y.dims[2] != H * b || y.dims[3] != W * b)
    a.fail("Y's extents differ from DepthToSpace's");
  // Y as [N, Co, H, b (i), W, b (j)]; X as [N, b, b, Co, H, W] (DCR) or [N, Co, b, b, H, W] (CRD).
  const int64_t dims[6] = {N, Co, H, b, W, b};
  int64_t st[6];
  if (p.crd) {
    const int64_t s[6] = {C * HW, b * b * HW, W, b * HW, 1, HW};
    std::memcpy(st, s, sizeof s);
  } else {
    const int64_t s[6] = {C * HW, HW, W, b * Co * HW, 1, Co * HW};
    std::memcpy(st, s, sizeof s);
  }
  if (elemBytes(x.dtype) != 4) {
    copyStrided(a.executor, elemBytes(x.dtype), 6, dims, st, x.data, y.data);
    return;
  }
  // 4-byte elements: an output row (n, co, h, i) interleaves the b input rows j = 0..b-1
  // (a strided copy would move runs of b elements).
  const uint32_t* xp = x.as<const uint32_t>();
  uint32_t* yp = y.as<uint32_t>();
  const int64_t rows = N * Co * H * b, OW = W * b;
  parallelRange(a.executor, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(OW, 1)), [&](int64_t rb, int64_t re) {
    const uint32_t* src[64];
    for (int64_t row = rb; row < re; ++row) {
      const int64_t i = row % b, h = row / b % H, co = row / (b * H) % Co, n = row / (b * H * Co);
      uint32_t* __restrict yr = yp + row * OW;
      const uint32_t* base = xp + n * st[0] + co * st[1] + h * st[2] + i * st[3];
      if (b == 2) {
        const uint32_t* __restrict s0 = base;
        const uint32_t* __restrict s1 = base + st[5];
        for (int64_t w = 0; w < W; ++w) yr[2 * w] = s0[w], yr[2 * w + 1] = s1[w];
        continue;
      }
      if (b > 64) {
        for (int64_t w = 0; w < W; ++w)
          for (int64_t j = 0; j < b; ++j) yr[w * b + j] = base[j * st[5] + w];
        continue;
      }
      for (int64_t j = 0; j < b; ++j) src[j] = base + j * st[5];
      for (int64_t w = 0; w < W; ++w)
        for (int64_t j = 0; j < b; ++j) yr[w * b + j] = src[j][w];
    }
  });
}

void spaceToDepthKernel(const StepArgs& a) {
  const BlockParams& p = a.paramsAs<BlockParams>();
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  const int64_t b = p.block, N = x.dims[0], C = x.dims[1], H = x.dims[2], W = x.dims[3];
  if (x.rank != 4 || H % b != 0 || W % b != 0) a.fail("X must be [N, C, H, W] with H and W multiples of blocksize");
  if (y.rank != 4 || y.dims[0] != N || y.dims[1] != C * b * b || y.dims[2] != H / b || y.dims[3] != W / b)
    a.fail("Y's extents differ from SpaceToDepth's");
  // Y as [N, b (i), b (j), C, H/b, W/b]; X[n][c][h b + i][w b + j].
  const int64_t dims[6] = {N, b, b, C, H / b, W / b};
  const int64_t st[6] = {C * H * W, W, 1, H * W, b * W, b};
  copyStrided(a.executor, elemBytes(x.dtype), 6, dims, st, x.data, y.data);
}

bool blockSupports(const ir::Node& n, const std::vector<ir::TensorType>& t) {
  return movable(t) && rankOf(t, 0) == 4 && n.attrs().getInt("blocksize", 0) >= 1 &&
         (n.op() == "SpaceToDepth" || n.attrs().getString("mode", "DCR") == "DCR" ||
          n.attrs().getString("mode", "DCR") == "CRD");
}

void blockPrepare(const PrepareInfo& info, Prepared* out) {
  BlockParams p;
  p.block = info.node->attrs().getInt("blocksize", 1);
  p.crd = info.node->op() == "DepthToSpace" && info.node->attrs().getString("mode", "DCR") == "CRD";
  out->setParams(p);
}

// ---- Tile ----------------------------------------------------------------------------

// Y[k0, j0, k1, j1, ...] = X[j0, j1, ...]: the output's axis d as [repeats][X's extent].
void tileKernel(const StepArgs& a) {
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  const int r = x.rank;
  if (y.rank != r || 2 * r > kMaxRank) a.fail("Y must have X's rank (at most 6)");
  if (a.in(1).numel() != r) a.fail("repeats must have one entry per axis of X");
  int64_t dims[kMaxRank], st[kMaxRank], s = 1;
  for (int d = r - 1; d >= 0; --d) {
    const int64_t rep = a.in(1).as<const int64_t>()[d];
    if (rep < 0 || y.dims[d] != x.dims[d] * rep) a.fail("Y's extents differ from X's times repeats");
    dims[2 * d] = rep, st[2 * d] = 0;
    dims[2 * d + 1] = x.dims[d], st[2 * d + 1] = s;
    s *= x.dims[d];
  }
  copyStrided(a.executor, elemBytes(x.dtype), 2 * r, dims, st, x.data, y.data);
}

// ---- Pad -----------------------------------------------------------------------------

enum class PadMode : int32_t { kConstant, kReflect, kEdge, kWrap };

struct PadParams {
  PadMode mode = PadMode::kConstant;
  int32_t reserved = 0;
};

// The source index of output index o along an axis of n inputs padded by `before`; -1: the
// constant.
inline int64_t sourceIndex(PadMode m, int64_t o, int64_t before, int64_t n) {
  int64_t i = o - before;
  if (i >= 0 && i < n) return i;
  switch (m) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return std::clamp<int64_t>(i, 0, n - 1);
    case PadMode::kWrap: return ((i % n) + n) % n;
    case PadMode::kReflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      i = ((i % period) + period) % period;
      return i >= n ? period - i : i;
    }
  }
  return -1;
}

void padKernel(const StepArgs& a) {
  const PadParams& p = a.paramsAs<PadParams>();
  const TensorView& x = a.in(0);
  const TensorView& y = a.out(0);
  const int r = x.rank;
  if (y.rank != r || r < 1) a.fail("Y must have X's rank");
  int64_t axes[kMaxRank];
  int n = r;
  if (a.hasInput(3) && a.in(3).numel() > 0) {
    n = int(a.in(3).numel());
    if (n > r) a.fail("more axes than X has");
    for (int i = 0; i < n; ++i) {
      axes[i] = normAxis(intAt(a.in(3), i), r);
      if (axes[i] < 0 || axes[i] >= r) a.fail("axes out of range");
    }
  } else {
    for (int i = 0; i < r; ++i) axes[i] = i;
  }
  if (a.in(1).numel() != 2 * n) a.fail("pads must have two entries per padded axis");
  int64_t before[kMaxRank] = {}, out[kMaxRank];
  for (int d = 0; d < r; ++d) out[d] = x.dims[d];
  for (int i = 0; i < n; ++i) {
    before[axes[i]] = intAt(a.in(1), i);
    out[axes[i]] += intAt(a.in(1), i) + intAt(a.in(1), i + n);
  }
  for (int d = 0; d < r; ++d) {
    if (out[d] != y.dims[d]) a.fail("Y's extents differ from X's with the pads");
    if (x.dims[d] == 0 && out[d] > 0 && p.mode != PadMode::kConstant) a.fail("padding an empty axis needs constant mode");
  }
  const size_t e = elemBytes(x.dtype);
  unsigned char fill[16] = {};
  if (a.hasInput(2) && a.in(2).numel() > 0) std::memcpy(fill, a.in(2).data, e);
  if (y.numel() == 0) return;
  const int64_t W = x.dims[r - 1], OW = out[r - 1], bw = before[r - 1];
  int64_t xs[kMaxRank];
  {
    int64_t s = 1;
    for (int d = r - 1; d >= 0; --d) xs[d] = s, s *= x.dims[d];
  }
  // The interior of a row: output columns [c0, c1) read input columns c0 - bw ...
  const int64_t c0 = std::clamp<int64_t>(bw, 0, OW), c1 = std::clamp<int64_t>(bw + W, 0, OW);
  const char* xp = static_cast<const char*>(x.data);
  char* yp = static_cast<char*>(y.data);
  const int64_t rows = y.numel() / OW;
  auto put = [&](char* dst, const char* src) { std::memcpy(dst, src ? src : reinterpret_cast<const char*>(fill), e); };
  parallelRange(a.executor, rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(OW, 1)), [&](int64_t rb, int64_t re) {
    for (int64_t row = rb; row < re; ++row) {
      char* yr = yp + row * OW * int64_t(e);
      // The source row: each outer index mapped along its axis.
      int64_t off = 0, rem = row;
      bool constant = false;
      for (int d = r - 2; d >= 0; --d) {
        const int64_t o = rem % out[d];
        rem /= out[d];
        const int64_t i = sourceIndex(p.mode, o, before[d], x.dims[d]);
        if (i < 0) constant = true;
        off += i * xs[d];
      }
      if (constant || W == 0) {
        for (int64_t c = 0; c < OW; ++c) put(yr + c * int64_t(e), nullptr);
        continue;
      }
      const char* xr = xp + off * int64_t(e);
      for (int64_t c = 0; c < c0; ++c) {
        const int64_t i = sourceIndex(p.mode, c, bw, W);
        put(yr + c * int64_t(e), i < 0 ? nullptr : xr + i * int64_t(e));
      }
      if (c1 > c0) std::memcpy(yr + c0 * int64_t(e), xr + (c0 - bw) * int64_t(e), size_t(c1 - c0) * e);
      for (int64_t c = std::max(c0, c1); c < OW; ++c) {
        const int64_t i = sourceIndex(p.mode, c, bw, W);
        put(yr + c * int64_t(e), i < 0 ? nullptr : xr + i * int64_t(e));
      }
    }
  });
}

bool padSupports(const ir::Node& n, const std::vector<ir::TensorType>& t) {
  if (!movable(t) || elemBytes(t[0].dtype) > 16 || rankOf(t, 0) < 1) return false;
  const std::string mode = n.attrs().getString("mode", "constant");
  if (mode != "constant" && mode != "reflect" && mode != "edge" && mode != "wrap") return false;
  if (n.attrs().has("pads") || !hasType(t, 1) || t[1].dtype != DataType::kI64) return false;  // opset < 11 form
  if (hasType(t, 2) && t[2].dtype != t[0].dtype) return false;
  if (hasType(t, 3) && t[3].dtype != DataType::kI64 && t[3].dtype != DataType::kI32) return false;
  return true;
}

void padPrepare(const PrepareInfo& info, Prepared* out) {
  const std::string mode = info.node->attrs().getString("mode", "constant");
  PadParams p;
  p.mode = mode == "reflect" ? PadMode::kReflect : mode == "edge" ? PadMode::kEdge : mode == "wrap" ? PadMode::kWrap
                                                                                     : PadMode::kConstant;
  out->setParams(p);
}

}  // namespace

void registerRearrange(Kernels& k) {
  Kernel d2s = byteKernel("x_depth_to_space_strided", "DepthToSpace");
  d2s.supports = blockSupports;
  d2s.prepare = blockPrepare;
  d2s.run = depthToSpaceKernel;
  k.add(std::move(d2s));

  Kernel s2d = byteKernel("x_space_to_depth_strided", "SpaceToDepth");
  s2d.supports = blockSupports;
  s2d.prepare = blockPrepare;
  s2d.run = spaceToDepthKernel;
  k.add(std::move(s2d));

  Kernel tile = byteKernel("x_tile_strided", "Tile");
  tile.supports = [](const ir::Node&, const std::vector<ir::TensorType>& t) {
    return movable(t) && rankOf(t, 0) >= 1 && 2 * rankOf(t, 0) <= kMaxRank && t.size() == 2 &&
           t[1].dtype == DataType::kI64;
  };
  tile.run = tileKernel;
  k.add(std::move(tile));

  Kernel pad = byteKernel("x_pad_rows", "Pad");
  pad.supports = padSupports;
  pad.prepare = padPrepare;
  pad.run = padKernel;
  k.add(std::move(pad));
}

}  // namespace anvil::runtime::nops
