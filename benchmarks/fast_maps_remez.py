"""Coefficients of kernelc's fast arcsine (kernelc.runtime.maps, FAST_ASIN_*) and the proof of
their approximation error (docs/math/fast-maps.md, step 2).

    asin(z) = z + z·w·R(w),  w = z²,  R(w) = Σ_{k≥0} a_{k+1} w^k,  a_k = C(2k, k)/(4^k (2k+1))

is the Taylor series of asin (all a_k > 0, decreasing). The fast map evaluates asin only for
z ∈ [0, 1/√2] (the rest by symmetry), i.e. w ∈ [0, W], W = 1/2 + 2^-11 (a margin for rounding).
This script

1. fits P ≈ R on [0, W] by the Remez exchange algorithm (minimax absolute error; Chebyshev
   basis on [0, W] for the linear solves, then converted to monomial coefficients in w for
   Horner's rule), degree 8 for float32 and 15 for float64;
2. rounds the coefficients to the dtype they are used in (float32 for the float32 set);
3. PROVES a bound on max_{w∈[0,W]} |P(w) − R(w)| for the rounded coefficients: e = P − R is
   evaluated at the 2^20 + 1 points of a uniform grid of step h in float64 with a rigorous
   bound on its rounding error (Horner's rule: |fl(P(w)) − P(w)| ≤ γ_2n Σ|p_k| w^k, Higham,
   "Accuracy and Stability of Numerical Algorithms", §5.1), R's series truncated after K terms
   with the tail bounded by a_{K+2} W^{K+1}/(1 − W); between grid points |e| can exceed the
   larger endpoint value by at most h²/8 · max|e''| (linear interpolation error), with
   max|e''| ≤ Σ k(k−1)|p_k| W^{k−2} + R''(W) (R'' has non-negative coefficients, so it is
   largest at W);
4. computes the constants of the rounding analysis of docs/math/fast-maps.md (Horner's running
   error bound, the condition of w ↦ P(w), the largest correction term) and from them the
   theorem's bounds, in units of the dtype's unit roundoff u;
5. prints the coefficients and FAST_MAP_BOUNDS (as pasted into kernelc/runtime/maps.py).

Run: python benchmarks/fast_maps_remez.py  (numpy only; ~2 s). tests/runtime/test_fast_maps.py
checks that maps.py holds exactly these coefficients and that the bound holds.
"""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.polynomial import chebyshev as C
from numpy.polynomial import polynomial as Pm

W = 0.5 + 2.0**-11          # w = z² ranges over [0, W]
DEGREES = {"float32": 8, "float64": 15}
K_SERIES = 64               # terms of R's series used in float64 (tail bounded below)
GRID = 2**20                # grid intervals for the proof
EPS64 = 2.0**-53            # float64 unit roundoff


def series(K: int = K_SERIES) -> list[Fraction]:
    """a_1 .. a_{K+1}: R(w) = Σ_{k=0}^{K} a_{k+1} w^k + tail (exact rationals)."""
    return [Fraction(math.comb(2 * k, k), 4**k * (2 * k + 1)) for k in range(1, K + 2)]


A = series()
A_FLOAT = np.array([float(a) for a in A])
#: a_{K+2} W^{K+1} / (1 − W) bounds Σ_{k>K} a_{k+1} w^k on [0, W] (a_k decreasing)
TAIL = float(Fraction(math.comb(2 * (K_SERIES + 2), K_SERIES + 2),
                      4**(K_SERIES + 2) * (2 * K_SERIES + 5))) * W**(K_SERIES + 1) / (1 - W)


def horner(coeffs, w):
    acc = np.zeros_like(w)
    for c in coeffs[::-1]:
        acc = acc * w + c
    return acc


def R(w):
    return horner(A_FLOAT, w)


def remez(degree: int, iterations: int = 40):
    """Minimax polynomial (monomial coefficients in w, float64) of R on [0, W]."""
    n = degree + 2
    x = (1 - np.cos(np.pi * np.arange(n) / (n - 1))) / 2 * W
    grid = np.linspace(0, W, 400001)
    for _ in range(iterations):
        M = np.hstack([C.chebvander(2 * x / W - 1, degree),
                       ((-1.0) ** np.arange(n))[:, None]])
        sol = np.linalg.solve(M, R(x))
        cheb = sol[:-1]
        err = C.chebval(2 * grid / W - 1, cheb) - R(grid)
        sign = np.where(err >= 0, 1, -1)
        cuts = np.concatenate([[0], np.nonzero(np.diff(sign))[0] + 1, [grid.size]])
        new = np.array([grid[a + np.argmax(np.abs(err[a:b]))] for a, b in zip(cuts[:-1], cuts[1:])])
        if new.size != n or np.allclose(new, x, rtol=0, atol=1e-12):
            break
        x = new
    # Chebyshev series in t = 2w/W − 1 -> power series in w
    mono_t = C.cheb2poly(cheb)
    mono_w = Pm.polycompose(mono_t, [-1.0, 2.0 / W]) if hasattr(Pm, "polycompose") else None
    if mono_w is None:
        mono_w = np.zeros(degree + 1)
        shift = np.array([1.0])
        for c in mono_t:
            mono_w[:shift.size] += c * shift
            shift = Pm.polymul(shift, [-1.0, 2.0 / W])
    return mono_w


def proven_bound(coeffs) -> dict:
    """Rigorous upper bound on max_{[0,W]} |P − R| for the given (already rounded) coefficients,
    and the quantities the rounding analysis of docs/math/fast-maps.md needs."""
    p = np.asarray(coeffs, dtype=np.float64)
    w = np.linspace(0, W, GRID + 1)
    h = W / GRID
    e = horner(p, w) - R(w)
    # rounding of the float64 evaluation: Horner's rule has |fl(P) − P| ≤ γ_2n Σ|p_k| w^k
    # (γ_m = m u / (1 − m u)), R's series has non-negative terms; the subtraction adds u|e|
    gamma = lambda m: m * EPS64 / (1 - m * EPS64)  # noqa: E731
    absp = horner(np.abs(p), w)
    rounding = gamma(2 * p.size) * absp + gamma(2 * A_FLOAT.size) * R(w) + EPS64 * np.abs(e)
    k = np.arange(p.size)
    d2p = float(np.sum(k * (k - 1) * np.abs(p) * W ** np.maximum(k - 2, 0)))
    kk = np.arange(A_FLOAT.size)
    d2r = float(np.sum(kk * (kk - 1) * A_FLOAT * W ** np.maximum(kk - 2, 0))) * 1.01  # + tail
    bound = float(np.max(np.abs(e) + rounding)) + TAIL + h * h / 8 * (d2p + d2r)
    # the Horner analysis (docs/math/fast-maps.md) also needs max w·P'(w)/P(w) and max z·w·P
    dp = horner(p[1:] * k[1:], w)
    kappa = float(np.max(w * dp / horner(p, w)))
    t_max = float(np.max(np.sqrt(w) * w * horner(p, w)))
    cond = float(np.max(absp / horner(p, w)))  # Horner's condition number Σ|p_k|w^k / P(w)
    return {"bound": bound, "grid_max": float(np.max(np.abs(e))), "kappa_w": kappa, "cond": cond,
            "t_max": t_max, "second_derivative": d2p + d2r, "tail": TAIL}


UNIT = {"float32": 2.0**-24, "float64": 2.0**-53}


def horner_running(p, w):
    """First-order running error bound of Horner's rule, divided by u (Higham §5.1): with the
    partial sums s_d = p_d, s_k = s_{k+1} w + p_k, |fl(P(w)) − P(w)| ≤ u Σ_{k<d} w^k
    (|s_{k+1}| w + |s_k|) (a fused multiply-add only removes roundings)."""
    s = [np.full_like(w, p[-1])]
    for c in p[-2::-1]:
        s.append(s[-1] * w + c)
    s = s[::-1]  # s[k]
    return sum(w**k * (np.abs(s[k + 1]) * w + np.abs(s[k])) for k in range(len(p) - 1))


def theorem(dtype: str, coeffs) -> dict:
    """The bounds of docs/math/fast-maps.md for one dtype, in units of its u."""
    u = UNIT[dtype]
    p = np.asarray(coeffs, dtype=np.float64)
    info = proven_bound(coeffs)
    w = np.linspace(0, W, GRID + 1)[1:]
    P = horner(p, w)
    mu = float(np.max(horner_running(p, w) / P))
    c_t = mu + info["kappa_w"] + 3           # Horner, w's rounding (twice), two products
    approx = W**1.5 * info["bound"] / u      # z³|P − R| ≤ W^{3/2} max|P − R|
    p_max = math.asin(math.sqrt(W))
    e_poly = c_t * info["t_max"] + p_max + approx        # |p̂ − asin(ẑ)|
    # |fl(π) − π| with π − fl64(π) = sin(fl64(π)) (to 1e-32): the difference is exact in float64
    pi_rep = abs(float(np.asarray(math.pi, dtype=dtype)) - math.pi - math.sin(math.pi)) / u
    e_theta = 2 + e_poly + pi_rep + 2        # σ's error, polynomial, fl(π), final rounding
    e_det = 6.5                              # √a, √b, their product, ·σ, σ
    return {"mu": mu, "c_t": c_t, "approx": approx, "e_poly": e_poly, "pi_rep": pi_rep,
            "e_theta": e_theta, "rho": 6.0, "kdot": e_theta / math.pi,
            "nngp": math.hypot(e_theta, e_det) / math.pi, "u": u}


def asin_theorem(dtype: str, coeffs) -> dict:
    """The bounds of docs/math/fast-maps.md, "The fast arcsine of erf and gelu", in units of u:
    the relative error of ψ̂ = fast_asin_ratio2 against asin at the ρ̂ it reads, in each branch
    (the worst z of a 2^20-point grid, as μ and κ above); for erf, K⁺ = 2ψ̂/π relative to
    √(K⁺(x,x) K⁺(x',x')) (Cauchy–Schwarz: |K⁺| ≤ the scale); for gelu, the change of K⁺ and K̇
    from ψ̂ − asin ρ̂ (the rest of its code is atan2's), relative to their scales."""
    u = UNIT[dtype]
    p = np.asarray(coeffs, dtype=np.float64)
    t = theorem(dtype, coeffs)
    bound = proven_bound(coeffs)["bound"]
    z = np.linspace(0, math.sqrt(W), GRID + 1)[1:]
    w = z * z
    corr = z * w * horner(p, w)              # t = z·w·P(w), the correction added to z
    asz = np.arcsin(z)
    poly = t["c_t"] * corr + asz + z**3 * bound / u   # |p̂ − asin z| / u (as E_p, per z)
    small = float(np.max(poly / asz))        # ψ = asin r, r = z exact
    pi_half = t["pi_rep"] / 2                # fl(π/2) = fl(π)/2 exactly
    # ψ = π/2 − asin σ: σ̂'s 2u moves asin by 2u·σ/√(1 − σ²); fl(π/2); the subtraction ≤ u ψ
    large = float(np.max((2 * z / np.sqrt(1 - w) + poly + pi_half) / (np.pi / 2 - asz))) + 1
    psi = max(small, large)
    pi_rel = t["pi_rep"] / math.pi           # |fl(π) − π| / π
    erf = psi + 1 + pi_rel                   # K⁺ = fl(2ψ̂ / fl(π)); K̇ takes no angle
    gelu = psi                               # K⁺ and K̇: ψ's weight is ≤ 1 of the scale
    return {"small": small, "large": large, "psi": psi, "pi_rel": pi_rel, "erf": erf,
            "gelu": gelu, "rho": 7.0, "kdot": gelu, "nngp": max(erf, gelu), "u": u}


def asin_gain(name: str, k11, k22):
    """G(k11, k22) of erf or gelu: a relative error ε of the ρ' their arcsine reads moves K⁺
    (and gelu's K̇) by at most ε·G of the kernel's scale (docs/math/fast-maps.md), for the fast
    and the atan2 path alike; ρ'_m = max |ρ'| = ρ' at k12 = √(k11 k22).
    erf: G = ρ'_m / (√(1 − ρ'_m²) √(asin ρ'_11 asin ρ'_22)), ρ' = 2k12/√((1+2k11)(1+2k22));
    gelu: G = (2/π) ρ'_m / √(1 − ρ'_m²), ρ' = k12/√((1+k11)(1+k22))."""
    if name == "erf":
        r1, r2 = 2 * k11 / (1 + 2 * k11), 2 * k22 / (1 + 2 * k22)
        rm = np.sqrt(r1 * r2)
        return rm / (np.sqrt(1 - rm * rm) * np.sqrt(np.arcsin(r1) * np.arcsin(r2)))
    rm = np.sqrt(k11 * k22 / ((1 + k11) * (1 + k22)))
    return 2 / np.pi * rm / np.sqrt((1 + k11 + k22) / ((1 + k11) * (1 + k22)))


def coefficients() -> dict:
    """dtype name -> tuple of Python floats (exactly representable in that dtype)."""
    out = {}
    for dtype, degree in DEGREES.items():
        mono = remez(degree)
        out[dtype] = tuple(float(c) for c in np.asarray(mono, dtype=dtype))
    return out


def main() -> None:
    bounds, asin = {}, {}
    for dtype, coeffs in coefficients().items():
        info = proven_bound(coeffs)
        print(f"# {dtype}: degree {len(coeffs) - 1} in w = z² on [0, {W}]")
        print(f"#   proven max|P − R| ≤ {info['bound']:.3e} (grid max {info['grid_max']:.3e}, "
              f"h²/8·max|e''| with max|e''| ≤ {info['second_derivative']:.3g}, "
              f"series tail {info['tail']:.1e})")
        print(f"#   max w·P'/P = {info['kappa_w']:.4f}, max z·w·P = {info['t_max']:.5f}, "
              f"Horner condition max Σ|p_k|w^k/P = {info['cond']:.4f}")
        print(f"FAST_ASIN_{dtype.upper()} = (")
        for c in coeffs:
            print(f"    {c!r},")
        print(")")
        t = theorem(dtype, coeffs)
        print(f"#   Horner running bound μ = {t['mu']:.4f}, c_t = {t['c_t']:.4f}, "
              f"approximation {t['approx']:.4f}u, |p̂ − asin ẑ| ≤ {t['e_poly']:.4f}u, "
              f"|fl(π) − π| = {t['pi_rep']:.4f}u, |θ̂ − arccos ρ̂| ≤ {t['e_theta']:.4f}u")
        e = asin_theorem(dtype, coeffs)
        print(f"#   arcsine: |ψ̂ − asin ρ̂|/asin ρ̂ ≤ {e['small']:.4f}u (|ρ̂| ≤ 1/√2), "
              f"{e['large']:.4f}u (beyond); erf's K⁺ = 2ψ̂/π ≤ {e['erf']:.4f}u "
              f"(|fl(π) − π|/π = {e['pi_rel']:.4f}u), gelu's K⁺ and K̇ ≤ {e['gelu']:.4f}u")
        bounds.setdefault("acos", {})[dtype] = rounded(t)
        bounds.setdefault("asin", {})[dtype] = rounded(e)
        asin[dtype] = e
    print("FAST_MAP_BOUNDS = {")
    for helper, rows in bounds.items():
        print(f"    {helper!r}: {{" + ", ".join(f"{d!r}: {b!r}" for d, b in rows.items()) + "},")
    print("}")
    ks = (0.01, 0.1, 1.0, 4.0, 10.0, 100.0, 1e3, 1e4, 1e5)
    grid = np.logspace(-6, 6, 400)
    k11, k22 = np.meshgrid(grid, grid)
    for name in ("erf", "gelu"):
        top = np.maximum(k11, k22)
        worst = float(np.max(asin_gain(name, k11, k22) / asin_gain(name, top, top)))
        print(f"# {name}: max G(k11, k22)/G(k, k), k = max(k11, k22), on a 400×400 grid over "
              f"1e-6…1e6: {worst:.6f}")
        print(f"# {name}: the read error 7u of ρ' moves the kernel by ≤ 7u·G(k11, k22) of its "
              "scale (atan2's ~3.5u by ≤ 3.5u·G); at k11 = k22 = k:")
        print("#   k                " + "".join(f"{k:>9g}" for k in ks))
        print("#   G                " + "".join(f"{asin_gain(name, k, k):9.3g}" for k in ks))
        for dtype in ("float32", "float64"):
            rho, own = 7.0, asin[dtype][name]
            total = [(own + rho * asin_gain(name, k, k)) * UNIT[dtype] for k in ks]
            print(f"#   {dtype} eval + read" + "".join(f"{x:9.2g}" for x in total))
        # G grows with the variances (in each of them: G(k11, k22) ≤ G(k, k), k = max): the
        # largest k within 1e-13 in float64
        lo, hi = 1.0, 1e12
        for _ in range(200):
            mid = math.sqrt(lo * hi)
            ok = (asin["float64"][name] + 7.0 * asin_gain(name, mid, mid)) * UNIT["float64"]
            lo, hi = (mid, hi) if ok <= 1e-13 else (lo, mid)
        print(f"#   float64: within 1e-13 for k11, k22 ≤ {lo:.3g}")


def rounded(t: dict) -> tuple:
    """(ρ read, K̇, K⁺) of a theorem's dict, rounded up to 0.01u: a FAST_MAP_BOUNDS row."""
    return tuple(math.ceil(100 * t[k]) / 100 for k in ("rho", "kdot", "nngp"))


if __name__ == "__main__":
    main()
