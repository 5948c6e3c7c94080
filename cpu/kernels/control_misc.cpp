// Reference kernels of the rest of the control family: NonMaxSuppression, AffineGrid,
// GridSample (2-D and 3-D; linear, nearest, cubic; zeros/border/reflection padding), the
// random generators, TfIdfVectorizer and the string ops.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <regex>
#include <set>

#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

// ---- NonMaxSuppression ---------------------------------------------------------------------

struct Box {
  double xmin, ymin, xmax, ymax;
};

Box boxAt(const Tensor& boxes, int64_t off, bool centerPoint) {
  const double a = boxes.getDouble(off), b = boxes.getDouble(off + 1), c = boxes.getDouble(off + 2),
               d = boxes.getDouble(off + 3);
  if (centerPoint) return {a - c / 2, b - d / 2, a + c / 2, b + d / 2};  // [x_c, y_c, w, h]
  // [y1, x1, y2, x2], any pair of diagonal corners.
  return {std::min(b, d), std::min(a, c), std::max(b, d), std::max(a, c)};
}

// Whether the IoU of two boxes exceeds the threshold (degenerate boxes never suppress).
bool suppresses(const Box& p, const Box& q, double threshold) {
  const double ix0 = std::max(p.xmin, q.xmin), ix1 = std::min(p.xmax, q.xmax);
  if (ix1 <= ix0) return false;
  const double iy0 = std::max(p.ymin, q.ymin), iy1 = std::min(p.ymax, q.ymax);
  if (iy1 <= iy0) return false;
  const double inter = (ix1 - ix0) * (iy1 - iy0);
  const double a1 = (p.xmax - p.xmin) * (p.ymax - p.ymin), a2 = (q.xmax - q.xmin) * (q.ymax - q.ymin);
  const double uni = a1 + a2 - inter;
  if (inter <= 0 || a1 <= 0 || a2 <= 0 || uni <= 0) return false;
  return inter / uni > threshold;
}

void nmsKernel(KernelContext& ctx) {
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  ctx.check(boxes.rank() == 3 && boxes.dim(2) == 4, "boxes must be [batch, boxes, 4], got " + boxes.summary());
  ctx.check(scores.rank() == 3, "scores must be [batch, classes, boxes], got " + scores.summary());
  const int64_t nb = boxes.dim(0), nbox = boxes.dim(1), nc = scores.dim(1);
  ctx.check(scores.dim(0) == nb && scores.dim(2) == nbox,
            "scores " + scores.summary() + " do not match boxes " + boxes.summary());
  const bool center = ctx.attrs().getInt("center_point_box", 0) != 0;
  int64_t maxOut = 0;
  if (ctx.hasInput(2) && ctx.input(2).numel() > 0) maxOut = ctx.input(2).getInt(0);
  double iouTh = 0;
  if (ctx.hasInput(3) && ctx.input(3).numel() > 0) iouTh = ctx.input(3).getDouble(0);
  ctx.check(iouTh >= 0 && iouTh <= 1, "iou_threshold must be in [0, 1]");
  std::optional<double> scoreTh;
  if (ctx.hasInput(4) && ctx.input(4).numel() > 0) scoreTh = ctx.input(4).getDouble(0);
  std::vector<int64_t> sel;
  for (int64_t b = 0; b < nb && maxOut > 0; ++b)
    for (int64_t c = 0; c < nc; ++c) {
      std::vector<std::pair<double, int64_t>> cand;
      for (int64_t i = 0; i < nbox; ++i) {
        const double s = scores.getDouble((b * nc + c) * nbox + i);
        if (!scoreTh || s > *scoreTh) cand.push_back({s, i});
      }
      // Highest score first; ties keep the lower box index first.
      std::stable_sort(cand.begin(), cand.end(), [](const auto& p, const auto& q) { return p.first > q.first; });
      std::vector<Box> kept;
      for (const auto& [s, i] : cand) {
        if (int64_t(kept.size()) >= maxOut) break;
        const Box bx = boxAt(boxes, (b * nbox + i) * 4, center);
        bool ok = true;
        for (const Box& k : kept)
          if (suppresses(bx, k, iouTh)) {
            ok = false;
            break;
          }
        if (!ok) continue;
        kept.push_back(bx);
        sel.insert(sel.end(), {b, c, i});
      }
    }
  Tensor& y = ctx.allocOutput(0, DataType::kI64, {int64_t(sel.size() / 3), 3});
  for (size_t i = 0; i < sel.size(); ++i) y.data<int64_t>()[i] = sel[i];
}

// ---- AffineGrid / GridSample ---------------------------------------------------------------

// Normalized coordinate of pixel i of n along one axis.
double baseCoord(int64_t i, int64_t n, bool alignCorners) {
  if (alignCorners) return n == 1 ? -1.0 : -1.0 + 2.0 * double(i) / double(n - 1);
  return -1.0 + (2.0 * double(i) + 1.0) / double(n);
}

void affineGridKernel(KernelContext& ctx) {
  const Tensor& theta = ctx.input(0);
  const Tensor& size = ctx.input(1);
  ctx.check(size.rank() == 1 && (size.numel() == 4 || size.numel() == 5), "size must have 4 or 5 elements");
  const int64_t nd = size.numel() - 2;
  const std::vector<int64_t> sz = size.toInt64Vector();
  ctx.check(theta.rank() == 3 && theta.dim(1) == nd && theta.dim(2) == nd + 1,
            "theta must be [N, " + str(nd) + ", " + str(nd + 1) + "], got " + theta.summary());
  const int64_t N = theta.dim(0);
  ctx.check(sz[0] == N, "size[0] = " + str(sz[0]) + " disagrees with theta's batch " + str(N));
  for (int64_t v : sz) ctx.check(v >= 0, "size must not be negative");
  const bool align = ctx.attrs().getInt("align_corners", 0) != 0;
  // Spatial dims in order (D,) H, W; the grid's last axis holds x (W), y (H)(, z (D)).
  std::vector<int64_t> sp(sz.begin() + 2, sz.end());
  std::vector<int64_t> od = {N};
  od.insert(od.end(), sp.begin(), sp.end());
  od.push_back(nd);
  Tensor& y = ctx.allocOutput(0, theta.dtype(), od);
  int64_t pts = 1;
  for (int64_t v : sp) pts *= v;
  std::vector<double> coord(static_cast<size_t>(nd) + 1);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < pts; ++p) {
      int64_t rem = p;
      for (int64_t k = nd - 1; k >= 0; --k) {  // k indexes sp; coordinate index is nd-1-k
        const int64_t i = rem % sp[size_t(k)];
        rem /= sp[size_t(k)];
        coord[size_t(nd - 1 - k)] = baseCoord(i, sp[size_t(k)], align);
      }
      coord[size_t(nd)] = 1.0;
      for (int64_t row = 0; row < nd; ++row) {
        double acc = 0;
        for (int64_t col = 0; col <= nd; ++col)
          acc += theta.getDouble((n * nd + row) * (nd + 1) + col) * coord[size_t(col)];
        y.setDouble((n * pts + p) * nd + row, acc);
      }
    }
}

double reflect(double x, double lo, double hi) {
  const double rng = hi - lo;
  if (rng <= 0) return lo;
  if (x < lo) {
    const double dx = lo - x;
    const int64_t n = int64_t(dx / rng);
    const double r = dx - double(n) * rng;
    return n % 2 == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    const double dx = x - hi;
    const int64_t n = int64_t(dx / rng);
    const double r = dx - double(n) * rng;
    return n % 2 == 0 ? hi - r : lo + r;
  }
  return x;
}

void cubicCoeffs(double x, double c[4]) {
  const double a = -0.75;
  x = std::fabs(x);
  c[0] = ((a * (x + 1) - 5 * a) * (x + 1) + 8 * a) * (x + 1) - 4 * a;
  c[1] = ((a + 2) * x - (a + 3)) * x * x + 1;
  c[2] = ((a + 2) * (1 - x) - (a + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = ((a * (2 - x) - 5 * a) * (2 - x) + 8 * a) * (2 - x) - 4 * a;
}

void gridSampleKernel(KernelContext& ctx) {
  const Tensor& X = ctx.input(0);
  const Tensor& G = ctx.input(1);
  const size_t r = X.rank();
  ctx.check(r >= 3, "X must be [N, C, spatial...], got " + X.summary());
  const int64_t nd = int64_t(r) - 2;
  ctx.check(G.rank() == r && G.dim(r - 1) == nd && G.dim(0) == X.dim(0),
            "grid must be [N, out spatial..., " + str(nd) + "] matching X " + X.summary() + ", got " + G.summary());
  const std::string mode = ctx.attrs().getString("mode", "linear");
  const std::string pad = ctx.attrs().getString("padding_mode", "zeros");
  const bool align = ctx.attrs().getInt("align_corners", 0) != 0;
  ctx.check(mode == "linear" || mode == "nearest" || mode == "cubic", "mode must be linear, nearest or cubic");
  ctx.check(pad == "zeros" || pad == "border" || pad == "reflection", "bad padding_mode '" + pad + "'");
  ctx.check(mode != "cubic" || nd == 2, "cubic mode supports 4-D input only");
  const int64_t N = X.dim(0), C = X.dim(1);
  std::vector<int64_t> dims(X.dims().begin() + 2, X.dims().end());
  std::vector<int64_t> od = {N, C};
  for (size_t i = 1; i + 1 < r; ++i) od.push_back(G.dim(i));
  Tensor& Y = ctx.allocOutput(0, X.dtype(), od);
  int64_t outPts = 1, inPts = 1;
  for (size_t i = 2; i < r; ++i) outPts *= od[i];
  for (int64_t d : dims) inPts *= d;
  std::vector<double> lo(static_cast<size_t>(nd)), hi(static_cast<size_t>(nd));
  for (int64_t i = 0; i < nd; ++i) {
    lo[size_t(i)] = align ? 0.0 : -0.5;
    hi[size_t(i)] = align ? double(dims[size_t(i)] - 1) : double(dims[size_t(i)]) - 0.5;
  }
  // Index of tap `i` along axis k after padding, or -1 for a zero contribution.
  auto tap = [&](int64_t i, int64_t k) -> int64_t {
    const int64_t d = dims[size_t(k)];
    if (pad == "zeros") return i >= 0 && i < d ? i : -1;
    if (pad == "border") return std::clamp<int64_t>(i, 0, d - 1);
    int64_t j = int64_t(reflect(double(i), lo[size_t(k)], hi[size_t(k)]));
    return std::clamp<int64_t>(j, 0, d - 1);
  };
  const int taps = mode == "cubic" ? 4 : mode == "linear" ? 2 : 1;
  std::vector<double> x(static_cast<size_t>(nd));
  std::vector<std::vector<int64_t>> idx(static_cast<size_t>(nd), std::vector<int64_t>(size_t(taps)));
  std::vector<std::vector<double>> wts(static_cast<size_t>(nd), std::vector<double>(size_t(taps)));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < outPts; ++p) {
      for (int64_t k = 0; k < nd; ++k) {
        // The grid's last axis is ordered x (innermost spatial axis) first.
        const double g = G.getDouble((n * outPts + p) * nd + (nd - 1 - k));
        const int64_t d = dims[size_t(k)];
        double v = align ? (g + 1) / 2.0 * double(d - 1) : ((g + 1) * double(d) - 1) / 2.0;
        v = double(float(v));  // the reference keeps coordinates in f32
        if (mode == "nearest") v = std::nearbyint(v);
        if (v < lo[size_t(k)] || v > hi[size_t(k)]) {
          if (pad == "border") v = std::clamp(v, 0.0, double(d - 1));
          else if (pad == "reflection") v = reflect(v, lo[size_t(k)], hi[size_t(k)]);
        }
        x[size_t(k)] = v;
        if (mode == "nearest") {
          idx[size_t(k)][0] = tap(int64_t(v), k);
          wts[size_t(k)][0] = 1.0;
        } else {
          const double f = std::floor(v);
          const int64_t i0 = int64_t(f);
          const double t = v - f;
          if (mode == "linear") {
            idx[size_t(k)] = {tap(i0, k), tap(i0 + 1, k)};
            wts[size_t(k)] = {1 - t, t};
          } else {
            double c[4];
            cubicCoeffs(t, c);
            idx[size_t(k)] = {tap(i0 - 1, k), tap(i0, k), tap(i0 + 1, k), tap(i0 + 2, k)};
            wts[size_t(k)] = {c[0], c[1], c[2], c[3]};
          }
        }
      }
      int64_t combos = 1;
      for (int64_t k = 0; k < nd; ++k) combos *= taps;
      for (int64_t c = 0; c < C; ++c) {
        const int64_t base = (n * C + c) * inPts;
        double acc = 0;
        for (int64_t q = 0; q < combos; ++q) {
          int64_t rem = q, off = 0;
          double w = 1;
          bool zero = false;
          for (int64_t k = nd - 1; k >= 0; --k) {
            const int64_t t = rem % taps;
            rem /= taps;
            const int64_t i = idx[size_t(k)][size_t(t)];
            w *= wts[size_t(k)][size_t(t)];
            if (i < 0) zero = true;
            int64_t stride = 1;
            for (int64_t kk = k + 1; kk < nd; ++kk) stride *= dims[size_t(kk)];
            off += i * stride;
          }
          if (!zero && w != 0) acc += w * X.getDouble(base + off);
        }
        Y.setDouble((n * C + c) * outPts + p, acc);
      }
    }
}

// ---- random -------------------------------------------------------------------------------

// A generator seeded from the 'seed' attribute when present (deterministic), else from
// the system's entropy source.
std::mt19937_64 generator(const KernelContext& ctx) {
  if (ctx.attrs().has("seed")) {
    const float s = ctx.attrs().getFloat("seed", 0.f);
    uint32_t bits;
    std::memcpy(&bits, &s, sizeof bits);
    return std::mt19937_64(uint64_t(bits) * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull);
  }
  std::random_device rd;
  return std::mt19937_64((uint64_t(rd()) << 32) ^ rd());
}

void fillRandom(KernelContext& ctx, Tensor& y, bool normal) {
  auto gen = generator(ctx);
  const ir::Attributes& a = ctx.attrs();
  if (normal) {
    std::normal_distribution<double> dist(a.getFloat("mean", 0.f), a.getFloat("scale", 1.f));
    for (int64_t i = 0; i < y.numel(); ++i) y.setDouble(i, dist(gen));
  } else {
    const double lo = a.getFloat("low", 0.f), hi = a.getFloat("high", 1.f);
    ctx.check(lo <= hi, "low must not exceed high");
    std::uniform_real_distribution<double> dist(lo, hi);
    for (int64_t i = 0; i < y.numel(); ++i) y.setDouble(i, dist(gen));
  }
}

void randomKernel(KernelContext& ctx, bool normal, bool like) {
  DataType dt;
  std::vector<int64_t> dims;
  if (like) {
    const Tensor& x = ctx.input(0);
    dt = ctx.attrs().has("dtype") ? DataType(int32_t(ctx.attrs().getInt("dtype", 1))) : x.dtype();
    dims = x.dims();
  } else {
    dt = DataType(int32_t(ctx.attrs().getInt("dtype", 1)));
    dims = ctx.attrs().getInts("shape");
  }
  ctx.check(ir::isFloat(dt), "the output type must be a float type");
  fillRandom(ctx, ctx.allocOutput(0, dt, dims), normal);
}

void multinomialKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.rank() == 2, "input must be [batch, classes], got " + x.summary());
  const int64_t B = x.dim(0), K = x.dim(1);
  ctx.check(K >= 1, "need at least one class");
  const int64_t n = ctx.attrs().getInt("sample_size", 1);
  const DataType dt = DataType(int32_t(ctx.attrs().getInt("dtype", 6)));
  Tensor& y = ctx.allocOutput(0, dt, {B, n});
  auto gen = generator(ctx);
  for (int64_t b = 0; b < B; ++b) {
    // Unnormalized log-probabilities: p_k proportional to exp(x_k - max).
    double mx = -INFINITY;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, x.getDouble(b * K + k));
    std::vector<double> w(static_cast<size_t>(K));
    for (int64_t k = 0; k < K; ++k) w[size_t(k)] = std::exp(x.getDouble(b * K + k) - mx);
    std::discrete_distribution<int64_t> dist(w.begin(), w.end());
    for (int64_t s = 0; s < n; ++s) y.setDouble(b * n + s, double(dist(gen)));
  }
}

void bernoulliKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const DataType dt = ctx.attrs().has("dtype") ? DataType(int32_t(ctx.attrs().getInt("dtype", 1))) : x.dtype();
  Tensor& y = ctx.allocOutput(0, dt, x.dims());
  auto gen = generator(ctx);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double p = x.getDouble(i);
    ctx.check(p >= 0 && p <= 1, "probabilities must be in [0, 1], got " + std::to_string(p));
    const bool v = u(gen) < p;
    if (dt == DataType::kBool) y.data<bool>()[i] = v;
    else y.setDouble(i, v ? 1.0 : 0.0);
  }
}

// ---- TfIdfVectorizer --------------------------------------------------------------------

void tfidfKernel(KernelContext& ctx) {
  const Tensor& X = ctx.input(0);
  const ir::Attributes& a = ctx.attrs();
  const int64_t minN = a.getInt("min_gram_length", 1), maxN = a.getInt("max_gram_length", 1);
  const int64_t maxSkip = a.getInt("max_skip_count", 0);
  ctx.check(minN >= 1 && minN <= maxN, "need 1 <= min_gram_length <= max_gram_length");
  ctx.check(maxSkip >= 0, "max_skip_count must be >= 0");
  const std::string mode = a.getString("mode", "");
  const auto counts = a.getInts("ngram_counts");
  const auto indexes = a.getInts("ngram_indexes");
  const auto weights = a.getFloats("weights");
  const auto poolI = a.getInts("pool_int64s");
  const auto poolS = a.getStrings("pool_strings");
  const bool strings = X.dtype() == DataType::kString;
  ctx.check(strings ? poolI.empty() : poolS.empty(), "the pool type must match X's type");
  const int64_t total = strings ? int64_t(poolS.size()) : int64_t(poolI.size());
  int64_t outSize = 0;
  for (int64_t v : indexes) outSize = std::max(outSize, v + 1);
  ctx.check(weights.empty() || int64_t(weights.size()) >= outSize, "weights needs one entry per output column");
  // n-gram (as a list of keys) -> output column.
  using Key = std::vector<std::string>;
  std::map<Key, int64_t> grams;
  auto keyOfPool = [&](int64_t i) { return strings ? poolS[size_t(i)] : std::to_string(poolI[size_t(i)]); };
  int64_t id = 0;
  for (size_t g = 0; g < counts.size(); ++g) {
    const int64_t n = int64_t(g) + 1;
    const int64_t start = counts[g], end = g + 1 < counts.size() ? counts[g + 1] : total;
    ctx.check(start >= 0 && start <= end && end <= total, "ngram_counts is inconsistent with the pool");
    const int64_t num = (end - start) / n;
    for (int64_t q = 0; q < num; ++q, ++id) {
      if (n < minN || n > maxN) continue;
      ctx.check(id < int64_t(indexes.size()), "ngram_indexes has fewer entries than the pool has n-grams");
      Key k;
      for (int64_t j = 0; j < n; ++j) k.push_back(keyOfPool(start + q * n + j));
      grams[k] = indexes[size_t(id)];
    }
  }
  ctx.check(X.rank() <= 2, "X must be [C] or [B, C], got " + X.summary());
  const int64_t rows = X.rank() == 2 ? X.dim(0) : 1;
  const int64_t C = X.rank() == 0 ? 1 : X.dim(X.rank() - 1);
  Tensor& Y = ctx.allocOutput(0, DataType::kF32, X.rank() == 2 ? std::vector<int64_t>{rows, outSize}
                                                                  : std::vector<int64_t>{outSize});
  auto keyOfX = [&](int64_t i) { return strings ? X.str(i) : std::to_string(X.getInt(i)); };
  std::vector<int64_t> freq(static_cast<size_t>(rows * outSize), 0);
  for (int64_t row = 0; row < rows && !grams.empty(); ++row) {
    for (int64_t skip = 0; skip <= maxSkip; ++skip) {
      const int64_t dist = skip + 1;
      // Unigrams do not depend on the skip distance: count them once.
      const int64_t from = skip == 0 ? minN : std::max<int64_t>(minN, 2);
      for (int64_t s = 0; s < C; ++s) {
        Key k;
        for (int64_t n = 1; n <= maxN; ++n) {
          const int64_t pos = s + (n - 1) * dist;
          if (pos >= C) break;
          k.push_back(keyOfX(row * C + pos));
          if (n < from) continue;
          auto it = grams.find(k);
          if (it != grams.end()) ++freq[size_t(row * outSize + it->second)];
        }
      }
    }
  }
  float* y = Y.data<float>();
  for (int64_t row = 0; row < rows; ++row)
    for (int64_t i = 0; i < outSize; ++i) {
      const int64_t f = freq[size_t(row * outSize + i)];
      const double w = weights.empty() ? 1.0 : double(weights[size_t(i)]);
      double v;
      if (mode == "TF") v = double(f);
      else if (mode == "IDF") v = f > 0 ? w : 0.0;
      else if (mode == "TFIDF") v = w * double(f);
      else ctx.fail("mode must be TF, IDF or TFIDF, got '" + mode + "'");
      y[row * outSize + i] = float(v);
    }
}

// ---- strings ------------------------------------------------------------------------------

std::string asciiCase(std::string s, bool upper) {
  for (char& c : s) c = char(upper ? std::toupper(static_cast<unsigned char>(c)) : std::tolower(static_cast<unsigned char>(c)));
  return s;
}

void stringConcatKernel(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  ctx.check(a.dtype() == DataType::kString && b.dtype() == DataType::kString, "inputs must be string tensors");
  std::vector<int64_t> dims;
  try {
    dims = ir::broadcastExtents(a.dims(), b.dims());
  } catch (const Error& e) {
    ctx.fail(e.what());
  }
  Tensor& y = ctx.allocOutput(0, DataType::kString, dims);
  auto ia = broadcastIndex(a.dims(), dims), ib = broadcastIndex(b.dims(), dims);
  for (int64_t i = 0; i < y.numel(); ++i) y.data<std::string>()[i] = a.str(ia[size_t(i)]) + b.str(ib[size_t(i)]);
}

bool pySpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= '\x1c' && c <= '\x1f');
}

// Python's str.split(sep, maxsplit): sep empty = runs of whitespace, ends ignored.
std::vector<std::string> pySplit(const std::string& s, const std::string& sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep.empty()) {
    size_t i = 0;
    while (true) {
      while (i < s.size() && pySpace(s[i])) ++i;
      if (i >= s.size()) break;
      if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
        out.push_back(s.substr(i));
        break;
      }
      size_t j = i;
      while (j < s.size() && !pySpace(s[j])) ++j;
      out.push_back(s.substr(i, j - i));
      i = j;
    }
    return out;
  }
  size_t i = 0;
  while (true) {
    size_t j = s.find(sep, i);
    if (j == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) == maxsplit)) {
      out.push_back(s.substr(i));
      break;
    }
    out.push_back(s.substr(i, j - i));
    i = j + sep.size();
  }
  return out;
}

void stringSplitKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.dtype() == DataType::kString, "X must be a string tensor");
  const std::string sep = ctx.attrs().getString("delimiter", "");
  const int64_t maxsplit = ctx.attrs().has("maxsplit") ? ctx.attrs().getInt("maxsplit", -1) : -1;
  std::vector<std::vector<std::string>> parts(static_cast<size_t>(x.numel()));
  size_t most = 0;
  for (int64_t i = 0; i < x.numel(); ++i) {
    parts[size_t(i)] = pySplit(x.str(i), sep, maxsplit);
    most = std::max(most, parts[size_t(i)].size());
  }
  std::vector<int64_t> dims = x.dims();
  dims.push_back(int64_t(most));
  Tensor& sub = ctx.allocOutput(0, DataType::kString, dims);
  for (int64_t i = 0; i < x.numel(); ++i)
    for (size_t j = 0; j < parts[size_t(i)].size(); ++j)
      sub.data<std::string>()[size_t(i) * most + j] = parts[size_t(i)][j];
  if (ctx.numOutputs() > 1 && ctx.outputWanted(1)) {
    Tensor& len = ctx.allocOutput(1, DataType::kI64, x.dims());
    for (int64_t i = 0; i < x.numel(); ++i) len.data<int64_t>()[i] = int64_t(parts[size_t(i)].size());
  }
}

// Stop words are whole elements (as onnxruntime does); case changes are ASCII-only.
void stringNormalizerKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.dtype() == DataType::kString, "X must be a string tensor");
  ctx.check(x.rank() == 1 || (x.rank() == 2 && x.dim(0) == 1), "X must be [C] or [1, C], got " + x.summary());
  const ir::Attributes& a = ctx.attrs();
  const std::string act = a.getString("case_change_action", "NONE");
  ctx.check(act == "NONE" || act == "LOWER" || act == "UPPER", "bad case_change_action '" + act + "'");
  const bool sensitive = a.getInt("is_case_sensitive", 0) != 0;
  std::set<std::string> stops;
  for (const std::string& s : a.getStrings("stopwords")) stops.insert(sensitive ? s : asciiCase(s, false));
  std::vector<std::string> kept;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const std::string& w = x.str(i);
    if (stops.count(sensitive ? w : asciiCase(w, false))) continue;
    kept.push_back(act == "NONE" ? w : asciiCase(w, act == "UPPER"));
  }
  if (kept.empty()) kept.push_back("");
  std::vector<int64_t> dims = x.rank() == 1 ? std::vector<int64_t>{int64_t(kept.size())}
                                            : std::vector<int64_t>{1, int64_t(kept.size())};
  Tensor& y = ctx.allocOutput(0, DataType::kString, dims);
  for (size_t i = 0; i < kept.size(); ++i) y.data<std::string>()[i] = kept[i];
}

void regexFullMatchKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.dtype() == DataType::kString, "X must be a string tensor");
  const std::string pattern = ctx.attrs().getString("pattern", "");
  std::regex re;
  try {
    re = std::regex(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    ctx.fail("pattern '" + pattern + "' is not a valid regular expression: " + e.what());
  }
  Tensor& y = ctx.allocOutput(0, DataType::kBool, x.dims());
  for (int64_t i = 0; i < x.numel(); ++i) y.data<bool>()[i] = std::regex_match(x.str(i), re);
}

}  // namespace

void registerControlMiscKernels(KernelRegistry& r) {
  r.add("NonMaxSuppression", nmsKernel);
  r.add("AffineGrid", affineGridKernel);
  r.add("GridSample", gridSampleKernel);
  r.add("RandomNormal", [](KernelContext& c) { randomKernel(c, true, false); });
  r.add("RandomUniform", [](KernelContext& c) { randomKernel(c, false, false); });
  r.add("RandomNormalLike", [](KernelContext& c) { randomKernel(c, true, true); });
  r.add("RandomUniformLike", [](KernelContext& c) { randomKernel(c, false, true); });
  r.add("Multinomial", multinomialKernel);
  r.add("Bernoulli", bernoulliKernel);
  r.add("TfIdfVectorizer", tfidfKernel);
  r.add("StringConcat", stringConcatKernel);
  r.add("StringSplit", stringSplitKernel);
  r.add("StringNormalizer", stringNormalizerKernel);
  r.add("RegexFullMatch", regexFullMatchKernel);
}

}  // namespace anvil::cpu::kernels
