// Reference kernels of the signal ops: DFT (forward/inverse, onesided, real or complex
// input, dft_length padding/truncation), STFT, the Hann/Hamming/Blackman windows and
// MelWeightMatrix. Direct O(n^2) transforms in double precision with exact twiddles.
#include <cmath>

#include "cpu/kernels/util.h"
#include "cpu/reference.h"

namespace anvil::cpu::kernels {

namespace {

std::string str(int64_t v) { return std::to_string(v); }

constexpr double kPi = 3.14159265358979323846;

int64_t scalarInt(const KernelContext& ctx, size_t i, const char* what) {
  const Tensor& t = ctx.input(i);
  ctx.check(t.numel() == 1, std::string(what) + " must be a scalar, got " + t.summary());
  return t.getInt(0);
}

// exp(sign * 2 pi i * m / n) for m in [0, n): cos and sin tables.
void twiddles(int64_t n, std::vector<double>& c, std::vector<double>& s) {
  c.resize(size_t(n));
  s.resize(size_t(n));
  for (int64_t m = 0; m < n; ++m) {
    c[size_t(m)] = std::cos(2 * kPi * double(m) / double(n));
    s[size_t(m)] = std::sin(2 * kPi * double(m) / double(n));
  }
}

void dftKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = int64_t(x.rank());
  ctx.check(r >= 2, "input must have rank >= 2, got " + x.summary());
  const int64_t comp = x.dim(size_t(r - 1));
  ctx.check(comp == 1 || comp == 2, "the last dim must be 1 (real) or 2 (complex), got " + x.summary());
  int64_t ax = ctx.hasInput(2) ? scalarInt(ctx, 2, "axis") : -2;
  ctx.check((ax >= -r && ax <= -2) || (ax >= 0 && ax <= r - 2),
            "axis " + str(ax) + " must be in [-" + str(r) + ", -2] or [0, " + str(r - 2) + "]");
  if (ax < 0) ax += r;
  const int64_t n = x.dim(size_t(ax));
  const int64_t len = ctx.hasInput(1) ? scalarInt(ctx, 1, "dft_length") : n;
  ctx.check(len >= 1, "dft_length must be positive, got " + str(len));
  const bool inverse = ctx.attrs().getInt("inverse", 0) != 0;
  const bool onesided = ctx.attrs().getInt("onesided", 0) != 0;
  ctx.check(!(inverse && onesided), "onesided and inverse cannot both be set");
  ctx.check(!(onesided && comp == 2), "onesided output needs a real input (last dim 1)");
  const int64_t outLen = onesided ? len / 2 + 1 : len;
  std::vector<int64_t> od = x.dims();
  od[size_t(ax)] = outLen;
  od.back() = 2;
  Tensor& y = ctx.allocOutput(0, x.dtype(), od);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < ax; ++i) outer *= x.dim(size_t(i));
  for (int64_t i = ax + 1; i < r - 1; ++i) inner *= x.dim(size_t(i));
  std::vector<double> cs, sn;
  twiddles(len, cs, sn);
  const double sign = inverse ? 1.0 : -1.0;
  const int64_t used = std::min(n, len);
  std::vector<double> re(static_cast<size_t>(used)), im(static_cast<size_t>(used));
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t in = 0; in < inner; ++in) {
      for (int64_t m = 0; m < used; ++m) {
        const int64_t base = ((o * n + m) * inner + in) * comp;
        re[size_t(m)] = x.getDouble(base);
        im[size_t(m)] = comp == 2 ? x.getDouble(base + 1) : 0.0;
      }
      for (int64_t k = 0; k < outLen; ++k) {
        double accR = 0, accI = 0;
        for (int64_t m = 0; m < used; ++m) {
          const size_t t = size_t((k * m) % len);
          const double c = cs[t], s = sign * sn[t];
          accR += re[size_t(m)] * c - im[size_t(m)] * s;
          accI += re[size_t(m)] * s + im[size_t(m)] * c;
        }
        if (inverse) {
          accR /= double(len);
          accI /= double(len);
        }
        const int64_t ob = ((o * outLen + k) * inner + in) * 2;
        y.setDouble(ob, accR);
        y.setDouble(ob + 1, accI);
      }
    }
  }
}

void stftKernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  ctx.check(x.rank() == 3, "signal must be [batch, length, 1 or 2], got " + x.summary());
  const int64_t B = x.dim(0), T = x.dim(1), comp = x.dim(2);
  ctx.check(comp == 1 || comp == 2, "signal's last dim must be 1 or 2");
  const bool onesided = ctx.attrs().getInt("onesided", 1) != 0;
  ctx.check(!(onesided && comp == 2), "onesided output needs a real signal");
  const int64_t step = scalarInt(ctx, 1, "frame_step");
  ctx.check(step >= 1, "frame_step must be positive");
  int64_t fl = T;
  std::vector<double> win;
  if (ctx.hasInput(2)) {
    const Tensor& w = ctx.input(2);
    ctx.check(w.rank() == 1, "window must be 1-D");
    fl = w.dim(0);
    for (int64_t i = 0; i < fl; ++i) win.push_back(w.getDouble(i));
  }
  if (ctx.hasInput(3)) {
    const int64_t v = scalarInt(ctx, 3, "frame_length");
    ctx.check(win.empty() || v == fl, "frame_length " + str(v) + " disagrees with the window length " + str(fl));
    fl = v;
  }
  ctx.check(fl >= 1 && fl <= T, "frame_length " + str(fl) + " must be in [1, signal length " + str(T) + "]");
  if (win.empty()) win.assign(size_t(fl), 1.0);
  const int64_t frames = (T - fl) / step + 1;
  const int64_t bins = onesided ? fl / 2 + 1 : fl;
  Tensor& y = ctx.allocOutput(0, x.dtype(), {B, frames, bins, 2});
  std::vector<double> cs, sn;
  twiddles(fl, cs, sn);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t f = 0; f < frames; ++f)
      for (int64_t k = 0; k < bins; ++k) {
        double accR = 0, accI = 0;
        for (int64_t m = 0; m < fl; ++m) {
          const int64_t base = (b * T + f * step + m) * comp;
          const double re = x.getDouble(base) * win[size_t(m)];
          const double im = comp == 2 ? x.getDouble(base + 1) * win[size_t(m)] : 0.0;
          const size_t t = size_t((k * m) % fl);
          const double c = cs[t], s = -sn[t];
          accR += re * c - im * s;
          accI += re * s + im * c;
        }
        const int64_t ob = ((b * frames + f) * bins + k) * 2;
        y.setDouble(ob, accR);
        y.setDouble(ob + 1, accI);
      }
}

enum class Window { kHann, kHamming, kBlackman };

void windowKernel(KernelContext& ctx, Window kind) {
  const int64_t size = scalarInt(ctx, 0, "size");
  ctx.check(size >= 0, "size must be >= 0, got " + str(size));
  const DataType dt = DataType(int32_t(ctx.attrs().getInt("output_datatype", 1)));
  const bool periodic = ctx.attrs().getInt("periodic", 1) != 0;
  Tensor& y = ctx.allocOutput(0, dt, {size});
  const double n1 = double(periodic ? size : size - 1);
  for (int64_t i = 0; i < size; ++i) {
    double v = 1.0;  // a one-point symmetric window
    if (n1 > 0) {
      const double a = 2 * kPi * double(i) / n1;
      switch (kind) {
        case Window::kHann: v = 0.5 - 0.5 * std::cos(a); break;
        case Window::kHamming: v = 25.0 / 46.0 - 21.0 / 46.0 * std::cos(a); break;
        case Window::kBlackman: v = 0.42 - 0.5 * std::cos(a) + 0.08 * std::cos(2 * a); break;
      }
    }
    y.setDouble(i, v);
  }
}

// Triangular mel filters, as the ONNX operator defines them (HTK mel scale, bins placed
// at floor((dft_length + 1) * hz / sample_rate)).
void melKernel(KernelContext& ctx) {
  const int64_t mels = scalarInt(ctx, 0, "num_mel_bins");
  const int64_t dftLen = scalarInt(ctx, 1, "dft_length");
  const int64_t rate = scalarInt(ctx, 2, "sample_rate");
  ctx.check(ctx.input(3).numel() == 1 && ctx.input(4).numel() == 1, "the edge frequencies must be scalars");
  const double lo = ctx.input(3).getDouble(0), hi = ctx.input(4).getDouble(0);
  ctx.check(mels >= 1, "num_mel_bins must be positive");
  ctx.check(dftLen >= 1, "dft_length must be positive");
  ctx.check(rate >= 1, "sample_rate must be positive");
  ctx.check(lo >= 0 && lo <= hi && hi <= double(rate) / 2,
            "need 0 <= lower_edge_hertz <= upper_edge_hertz <= sample_rate / 2");
  const int64_t specBins = dftLen / 2 + 1;
  const DataType dt = DataType(int32_t(ctx.attrs().getInt("output_datatype", 1)));
  Tensor& y = ctx.allocOutput(0, dt, {specBins, mels});
  // The reference computes the mel edges in f32 (the edge inputs' type).
  const float loMel = 2595.0f * std::log10(1.0f + float(lo) / 700.0f);
  const float hiMel = 2595.0f * std::log10(1.0f + float(hi) / 700.0f);
  const float melStep = (hiMel - loMel) / float(mels + 2);
  std::vector<int64_t> bin(static_cast<size_t>(mels + 2));
  for (int64_t i = 0; i < mels + 2; ++i) {
    const double mel = double(i) * double(melStep) + double(loMel);
    const double hz = 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
    bin[size_t(i)] = int64_t(std::floor(double(dftLen + 1) * hz / double(rate)));
  }
  std::vector<double> w(static_cast<size_t>(specBins * mels), 0.0);
  auto at = [&](int64_t j, int64_t i) -> double& {
    ctx.check(j >= 0 && j < specBins, "mel filter reaches past the spectrum");
    return w[size_t(j * mels + i)];
  };
  for (int64_t i = 0; i < mels; ++i) {
    const int64_t left = bin[size_t(i)], center = bin[size_t(i + 1)], right = bin[size_t(i + 2)];
    const int64_t up = center - left;
    if (up == 0) {
      at(center, i) = 1;
    } else {
      for (int64_t j = left; j <= center; ++j) at(j, i) = double(j - left) / double(up);
    }
    const int64_t down = right - center;
    if (down > 0)
      for (int64_t j = center; j < right; ++j) at(j, i) = double(right - j) / double(down);
  }
  for (int64_t k = 0; k < specBins * mels; ++k) y.setDouble(k, w[size_t(k)]);
}

}  // namespace

void registerControlSignalKernels(KernelRegistry& r) {
  r.add("DFT", dftKernel);
  r.add("STFT", stftKernel);
  r.add("HannWindow", [](KernelContext& c) { windowKernel(c, Window::kHann); });
  r.add("HammingWindow", [](KernelContext& c) { windowKernel(c, Window::kHamming); });
  r.add("BlackmanWindow", [](KernelContext& c) { windowKernel(c, Window::kBlackman); });
  r.add("MelWeightMatrix", melKernel);
}

}  // namespace anvil::cpu::kernels
