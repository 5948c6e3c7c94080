# Derives the GELU constants of cpu/tactics/vmath.h (kGeluU, kExp2P, kGeluCut) and checks
# them with float32 roundings: Gelu(x) = x Phi(x), Phi(-a) = 2^-U(a), U(a) = 1 + a (c1 + ...
# + a^5 c6) a weighted minimax fit of -log2 Phi(-a) on [0, cut] (weight a Phi(-a) ln 2: the
# error of x Phi may be 3e-7 of max(1, |y|), so U's may grow where a Phi(-a) is small), and
# 2^r on [-1/2, 1/2] a minimax polynomial 1 + r (e1 + ... + r^4 e5) for relative error.
# Minimax by linear programming on a dense grid (scipy's HiGHS). Run with the project venv:
#   .venv/bin/python scripts/fit_gelu.py
import numpy as np
import scipy.optimize as so
from scipy.special import ndtr

f32 = np.float32


def minimax(f, basis, xs, w):
    """Coefficients minimizing max |w (sum c_k b_k(x) - f(x))| over xs, and that maximum."""
    B = np.stack([b(xs) for b in basis], 1)
    ones = np.ones((len(xs), 1))
    A = np.vstack([np.hstack([w[:, None] * B, -ones]), np.hstack([-w[:, None] * B, -ones])])
    rhs = np.concatenate([w * f(xs), -w * f(xs)])
    cost = np.zeros(B.shape[1] + 1)
    cost[-1] = 1
    r = so.linprog(cost, A_ub=A, b_ub=rhs, bounds=[(None, None)] * len(cost), method="highs")
    return r.x[:-1], r.x[-1]


def fma(a, b, c):  # one rounding to float32 (the product of two floats is exact in double)
    return f32(np.float64(a) * np.float64(b) + np.float64(c))


def gelu32(x, U, E, cut):
    """vmath.h's gelu8/gelu16, operation for operation, in float32."""
    a = np.abs(x)
    u = np.full_like(a, U[-1])
    for c in reversed(U[:-1]):
        u = fma(u, a, c)
    u = fma(u, a, f32(1))
    magic = f32(12582912.0)
    t = f32(u + magic)
    r = f32(f32(t - magic) - u)
    p = np.full_like(a, E[-1])
    for c in reversed(E[:-1]):
        p = fma(p, r, c)
    p = fma(p, r, f32(1))
    q = f32(np.ldexp(p.astype(np.float64), -f32(t - magic).astype(np.int64)))
    q = np.where(a < cut, q, f32(0))
    return f32(x * np.where(np.signbit(x), q, f32(f32(1) - q)))


def main():
    cut = 5.75
    xs = np.linspace(-0.5, 0.5, 4001)
    e, te = minimax(lambda r: 2**r - 1, [(lambda k: lambda r: r**k)(k) for k in range(1, 6)], xs, 1 / 2**xs)
    E = [f32(c) for c in e]
    a = np.linspace(0, cut, 4000)
    w = a * ndtr(-a) * np.log(2) + 1e-9
    u, tu = minimax(lambda x: -np.log2(ndtr(-x)) - 1, [(lambda k: lambda x: (x / cut) ** k)(k) for k in range(1, 7)],
                    a, w)
    U = [f32(c / cut ** (k + 1)) for k, c in enumerate(u)]
    print("kExp2P", [float(c) for c in E], "relative error %.2g" % te)
    print("kGeluU", [float(c) for c in U], "weighted error %.2g" % tu)
    x = np.concatenate([np.linspace(-8, 8, 2000001), np.geomspace(1e-8, 8, 200000), -np.geomspace(1e-8, 8, 200000)])
    x = x.astype(f32)
    y = gelu32(x, U, E, f32(cut))
    ref = x.astype(np.float64) * ndtr(x.astype(np.float64))
    err = np.abs(y - ref) / (3e-7 * np.maximum(1, np.abs(ref)))
    small = (np.abs(x) < 1e-2) & (x != 0)
    print("worst error %.3f of the bound at x = %.7g; relative error for |x| < 0.01 under %.2g" %
          (err.max(), x[err.argmax()], (np.abs(y[small] - ref[small]) / np.abs(ref[small])).max()))


if __name__ == "__main__":
    main()
