"""Helpers of the nonlinearity maps (jax.numpy, and numpy for the float64 reference).

The expressions :func:`kernelc.ir.jax_printer.jax_code` prints call these functions by
name: ``safe_sqrt``/``safe_div`` guard the variances, ``acos_ratio``/``asin_ratio`` (and their
scaled forms ``*2``) evaluate the angle of a correlation n/√q without cancellation (their
``fast_*`` twins by a minimax polynomial, docs/math/fast-maps.md), and
``gauss_hermite_2d`` computes E[φ(u)φ(v)] for maps without a closed form (docs/math/rules.md);
``track_precision`` estimates the float32 rounding error after each map (docs/precision.md).

Every function reads the module global ``jnp`` at call time, so the same code runs on numpy:
:func:`namespace` ("numpy") returns these helpers bound to numpy and scipy.special (or math's
erf), which the float64 reference and the rule tests evaluate the printed maps with. The
double-``where`` idiom keeps value and gradient finite at the guarded points (``jnp.where``
differentiates both branches).
"""
import functools
import math
import sys
import types

import numpy as np
import jax.numpy as jnp
import jax.scipy.special as jsp  # noqa: F401 - the printed maps call jsp.erf and jsp.erfc

__all__ = ['safe_sqrt', 'sqrt_det', 'safe_div', 'clip_corr', 'safe_acos', 'safe_asin', 'acos_ratio', 'asin_ratio', 'pair_scale', 'correlation_one', 'sqrt_det2', 'acos_ratio2', 'asin_ratio2', 'broadcast', 'sum_over_nodes', 'record_quadrature', 'hermite_rule', 'quadrature_estimate', 'gauss_hermite_2d', 'QUADRATURE_ERRORS',
           'track_precision', 'record_precision', 'precision_tracking', 'PRECISION_ESTIMATES', 'PRECISION_ROUNDING',
           'fast_maps', 'fast_correlation', 'fast_acos_ratio2', 'fast_asin_ratio2', 'fast_sqrt_det2', 'asin_poly', 'FAST_ASIN_FLOAT32', 'FAST_ASIN_FLOAT64', 'FAST_MAP_BOUNDS']

def safe_sqrt(a):
    """sqrt(max(a, 0)); gradient 0 (not inf/NaN) where a <= 0."""
    pos = a > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, a, 1)), 0)


def sqrt_det(p, m):
    """sqrt(max(p - m^2, 0)) as sqrt((s - m)(s + m)), s = sqrt(max(p, 0)): no cancellation, and
    no fused multiply-add can leave the rounding error of p = fl(a*a) behind, since
    sqrt(fl(a*a)) == |a| exactly in IEEE arithmetic. So for p = a*a, m = a (a self pair,
    correlation 1) the result is exactly 0. p <= 0 gives 0; gradients stay finite (safe_sqrt)."""
    s = safe_sqrt(p)
    return safe_sqrt((s - m) * (s + m))


def safe_div(a, b):
    """a / b, and 0 where b == 0 (a correlation of a zero-variance input counts as 0)."""
    return _safe_div(jnp, a, b)


def clip_corr(c):
    """Correlation clipped into [-1, 1] (round-off can push k12/sqrt(k11 k22) past 1)."""
    return jnp.clip(c, -1, 1)


def safe_acos(c):
    """arccos of c clipped into [-1, 1]; finite gradient at |c| >= 1; NaN passes through."""
    inside = jnp.abs(c) < 1
    edge = jnp.where(c >= 1, 0.0, jnp.where(c <= -1, jnp.pi, c))
    return jnp.where(inside, jnp.arccos(jnp.where(inside, c, 0)), edge)


def safe_asin(c):
    """arcsin of c clipped into [-1, 1]; finite gradient at |c| >= 1; NaN passes through."""
    inside = jnp.abs(c) < 1
    edge = jnp.where(c >= 1, jnp.pi / 2, jnp.where(c <= -1, -jnp.pi / 2, c))
    return jnp.where(inside, jnp.arcsin(jnp.where(inside, c, 0)), edge)


def acos_ratio(n, q):
    """arccos(n / sqrt(q)) as atan2(sqrt(q - n^2), n): exact at n^2 = q (correlation +-1; the
    determinant by sqrt_det, so exactly 0 for q = fl(n*n)), implicitly clipped to [-1, 1];
    q = n = 0 (zero variance) counts as correlation 0."""
    s = sqrt_det(q, n)
    degenerate = (s == 0) & (n == 0)
    return jnp.where(degenerate, jnp.pi / 2, jnp.arctan2(s, jnp.where(degenerate, 1, n)))


def asin_ratio(n, q):
    """arcsin(n / sqrt(q)) as atan2(n, sqrt(q - n^2)); same guards as acos_ratio."""
    s = sqrt_det(q, n)
    degenerate = (s == 0) & (n == 0)
    return jnp.where(degenerate, 0.0, jnp.arctan2(n, jnp.where(degenerate, 1, s)))


def pair_scale(a, b):
    """max(|a|, |b|), and 1 where both are 0: the scale of a product a*b of two variances."""
    c = jnp.maximum(jnp.abs(a), jnp.abs(b))
    return jnp.where(c > 0, c, 1)


def correlation_one(n, a, b):
    """a = b = |n| bit for bit: a self pair, correlation exactly +-1. Tested explicitly because
    XLA's vectorised float64 division on CPU is not correctly rounded (v / v gave
    0.9999999999999999), so the scaled forms below cannot rely on a/c == 1. Not for a = inf:
    an overflowed variance is no self pair, and its NaN must reach the driver's finiteness
    check (as ±1 it made a bounded map such as erf's return ±W_std² without a word)."""
    return (a == b) & (jnp.abs(n) == a) & (a < jnp.inf)


def sqrt_det2(a, b, m):
    """sqrt(max(a*b - m^2, 0)) as c * sqrt_det((a/c)(b/c), m/c), c = max(|a|, |b|): a*b of two
    tiny variances (1e-160 each in float64, 1e-20 in float32) underflows, the scaled product
    does not; a self pair (a = b = |m|) gives exactly 0."""
    c = pair_scale(a, b)
    return jnp.where(correlation_one(m, a, b), 0.0, c * sqrt_det((a / c) * (b / c), m / c))


def acos_ratio2(n, a, b):
    """arccos(n / sqrt(a*b)) = acos_ratio(n/c, (a/c)(b/c)), c = max(|a|, |b|) (no underflow);
    exactly 0 (pi) at a self pair with n = a (n = -a)."""
    c = pair_scale(a, b)
    edge = jnp.where(n > 0, 0.0, jnp.pi)
    return jnp.where(correlation_one(n, a, b) & (a > 0), edge,
                     acos_ratio(n / c, (a / c) * (b / c)))


def asin_ratio2(n, a, b):
    """arcsin(n / sqrt(a*b)) = asin_ratio(n/c, (a/c)(b/c)), c = max(|a|, |b|) (no underflow);
    exactly +-pi/2 at a self pair."""
    c = pair_scale(a, b)
    edge = jnp.where(n > 0, jnp.pi / 2, -jnp.pi / 2)
    return jnp.where(correlation_one(n, a, b) & (a > 0), edge,
                     asin_ratio(n / c, (a / c) * (b / c)))


# -- the fast arc-cosine/arcsine (docs/math/fast-maps.md) --------------------------------------
#
# The exact relu map costs ~50 ns of CPU time per float32 entry (atan2, and divisions and square
# roots that XLA writes out as arrays); the fast one ~11 ns: the angle comes from a polynomial
# and only one square root per entry remains (benchmarks/fast_maps.py). The coefficients are printed by benchmarks/fast_maps_remez.py
# (Remez minimax fit of R(w) = (asin(√w)/√w − 1)/w on [0, 1/2 + 2^-11], rounded to the dtype),
# which also proves max|P − R| on that interval; tests/runtime/test_fast_maps.py checks that
# these are its numbers.

#: float32: degree 8 in w = z²; proven max|P − R| ≤ 4.97e-9 on [0, W], W = 1/2 + 2^-11
FAST_ASIN_FLOAT32 = (
    0.1666666716337204,
    0.0749993845820427,
    0.04467369616031647,
    0.029789498075842857,
    0.028012491762638092,
    -0.012250632978975773,
    0.10219462960958481,
    -0.13154268264770508,
    0.11415857076644897,
)
#: float64: degree 15 in w = z²; proven max|P − R| ≤ 5.16e-14 on [0, W]
FAST_ASIN_FLOAT64 = (
    0.16666666666666272,
    0.0750000000038977,
    0.044642856501055886,
    0.030381986145580162,
    0.022370739417928148,
    0.017381901362471947,
    0.013573893576314583,
    0.015157031488209384,
    -0.013802156047204361,
    0.11941675892581183,
    -0.37179583312941955,
    0.9382006058721712,
    -1.6062995140557477,
    1.878145922289423,
    -1.3193247161851143,
    0.4441770100874882,
)
#: proven bounds of the fast maps in units of the dtype's unit roundoff u (2^-24, 2^-53), printed
#: by benchmarks/fast_maps_remez.py (docs/math/fast-maps.md), by helper and dtype: (the relative
#: error of the correlation read, the error of K̇ and of K⁺ relative to √(K(x,x) K(x',x'))).
#: "acos" (fast_acos_ratio2, fast_sqrt_det2): relu and the maps with TWO_SLOPE_FAST (gain ≤ 1);
#: "asin" (fast_asin_ratio2): erf (K⁺ 7.51u; its K̇ takes no angle) and gelu (its arcsine term,
#: ≤ 6.04u on K⁺ and K̇), whose read error's effect grows with the variances (as atan2's).
FAST_MAP_BOUNDS = {
    'acos': {'float32': (6.0, 2.13, 2.97), 'float64': (6.0, 54.36, 54.4)},
    'asin': {'float32': (7.0, 6.04, 7.51), 'float64': (7.0, 215.32, 216.67)},
}

#: which dtypes take the fast maps, read at trace time (kernel_fn(fast_maps=...) sets it):
#: None (the default) float32 only (DEFAULT_FAST_HELPERS), True float32 and float64, False none
_FAST_MAPS = [None]
#: trace-time count of fast angles by helper (the tests read it)
_FAST_ANGLE_CALLS = {"acos": 0, "asin": 0}


class fast_maps:
    """``with fast_maps(setting):`` traces fast_acos_ratio2/fast_asin_ratio2/fast_sqrt_det2
    inside the block by the polynomial or as acos_ratio2/asin_ratio2/sqrt_det2: ``None`` (the
    default outside any block) fast in float32 only, ``True`` in float32 and float64, ``False``
    never; the arcsine (fast_asin_ratio2) is fast with ``True`` only (DEFAULT_FAST_HELPERS).
    kernel_fn jit-compiles its passes once for each setting. float64 is not fast by default:
    the relu map's proven evaluation bound (6e-15) is far below 1e-13, but it reads the
    correlation with up to 6 roundoffs instead of ~2.5, which at the square-root edge of
    ρ = 1 moves K̇ by up to √(12u)/π ≈ 1.2e-8 where atan2's path can be exact. The arcsine's
    float32 bound (erf's K⁺ 7.51u) is above the ~2 ulp of a default (docs/math/fast-maps.md).
    Only JAX code is affected: the numpy float64 reference always takes the exact helpers."""

    def __init__(self, setting):
        if setting not in (None, True, False):
            raise ValueError(f"fast_maps must be None, True or False, got {setting!r}")
        self.setting = setting

    def __enter__(self):
        _FAST_MAPS.append(self.setting)

    def __exit__(self, *exc):
        _FAST_MAPS.pop()


#: the fast helpers taken by default (fast_maps None) in float32: those whose proven bound is
#: within ~2 ulp of the kernel's scale (the issue's criterion): relu's arc-cosine (2.97u). The
#: arcsine of erf and gelu (7.51u, 6.04u) is taken with fast_maps=True only.
DEFAULT_FAST_HELPERS = ("acos",)


def _fast_dtype(*arrays, helper="acos"):
    """The dtype name ("float32", "float64") whose fast map the setting of :class:`fast_maps`
    allows for these arrays and the helper (a FAST_MAP_BOUNDS row), or None for the exact
    helpers (numpy, the reference; fast maps off; float64, or a helper not in
    DEFAULT_FAST_HELPERS, by default; any other dtype)."""
    setting = _FAST_MAPS[-1]
    if not jnp.__name__.startswith("jax") or setting is False:
        return None
    name = str(jnp.result_type(*arrays))
    if setting is None:
        return name if name == "float32" and helper in DEFAULT_FAST_HELPERS else None
    return name if name in ("float32", "float64") else None


def asin_poly(z):
    """asin(z) for 0 ≤ z ≤ 1/√2 (+ rounding) as z + z·w·P(w), w = z², P the minimax polynomial
    of the dtype (FAST_ASIN_FLOAT32/64): Horner's rule, 8 (15) multiply-adds."""
    coeffs = FAST_ASIN_FLOAT64 if str(jnp.result_type(z)) == "float64" else FAST_ASIN_FLOAT32
    w = z * z
    acc = jnp.asarray(coeffs[-1], z.dtype)
    for c in coeffs[-2::-1]:
        acc = acc * w + c
    return z + z * (w * acc)


def site_roots(a):
    """(√a, 1/√a) of the per-site variances a, as safe_sqrt and safe_div(1, ·) (0 where a ≤ 0).

    Taken over a's non-unit axes followed by one unit axis, then reshaped to a's shape (which
    only inserts unit axes: the map's loop reads it with no index arithmetic). XLA's CPU loop
    emitter lets LLVM unroll and vectorize a loop whose innermost axis is a spatial one (16
    wide: ~1,000 lines of IR for 8,192 square roots, ~80 ms of compile time, and a network has
    four per nonlinearity); behind a unit axis it is a short loop. The arrays hold one entry
    per site, so the run time does not notice (docs/performance.md, "The XLA programs made
    smaller")."""
    shape = jnp.shape(a)
    column = safe_sqrt(jnp.reshape(a, tuple(n for n in shape if n != 1) + (1,)))
    return jnp.reshape(column, shape), jnp.reshape(safe_div(1, column), shape)


def fast_correlation(n, a, b):
    """(√a, √b, ρ, |ρ|, σ) for ρ = n/√(ab) clipped to [−1, 1] and σ = √((1 − |ρ|)(1 + |ρ|)) =
    sin(arccos ρ). The square roots and reciprocals are taken of the per-site variances a, b
    (small arrays, broadcast against n): per kernel entry only multiplications and the one
    square root σ remain, so XLA fuses the map into one loop (a division or square root per
    entry with several users is written out as a full array on CPU). No product a·b is formed,
    so tiny variances do not underflow; a zero variance gives ρ = 0."""
    (sa, inv_a), (sb, inv_b) = site_roots(a), site_roots(b)
    rho = jnp.clip(n * inv_a * inv_b, -1, 1)
    r = jnp.abs(rho)
    # 1 − r is exact for r ≥ 1/2 (Sterbenz), so σ keeps its relative accuracy near |ρ| = 1
    return sa, sb, rho, r, safe_sqrt((1 - r) * (1 + r))


def fast_acos_ratio2(n, a, b):
    """arccos(n/√(ab)) like :func:`acos_ratio2` (exact 0, π at a self pair), with the angle
    from :func:`asin_poly` instead of atan2 when fast maps are on (docs/math/fast-maps.md):

        θ = p (ρ ≥ 0, σ < |ρ|),  π − p (ρ < 0, σ < |ρ|),  π/2 ∓ asin|ρ| (σ ≥ |ρ|),

    p = asin σ, so asin is only evaluated on [0, 1/√2] and the √(1 − ρ) edge comes from σ.
    Otherwise (numpy, fast maps off, a dtype other than float32/float64): acos_ratio2."""
    if _fast_dtype(n, a, b) is None:
        return acos_ratio2(n, a, b)
    _FAST_ANGLE_CALLS["acos"] += 1
    _, _, rho, r, sigma = fast_correlation(n, a, b)
    near_axis = sigma < r
    p = asin_poly(jnp.minimum(sigma, r))
    theta = jnp.where(near_axis, jnp.where(rho > 0, p, jnp.pi - p),
                      jnp.pi / 2 - jnp.where(rho < 0, -p, p))
    edge = jnp.where(n > 0, 0.0, jnp.pi)
    return jnp.where(correlation_one(n, a, b) & (a > 0), edge, theta)


def fast_asin_ratio2(n, a, b):
    """arcsin(n/√(ab)) like :func:`asin_ratio2` (exact ±π/2 at a self pair), with the angle
    from :func:`asin_poly` instead of atan2 when fast maps are on (docs/math/fast-maps.md,
    "The fast arcsine of erf and gelu"):

        ψ = sign(ρ)·p (σ ≥ |ρ|, p = asin|ρ|),   sign(ρ)·(π/2 − p) (σ < |ρ|, p = asin σ),

    so asin is only evaluated on [0, 1/√2] and the edge |ρ| → 1 comes from σ, as in
    fast_acos_ratio2. Otherwise (numpy, fast maps
    off, a dtype other than float32/float64): asin_ratio2."""
    if _fast_dtype(n, a, b, helper="asin") is None:
        return asin_ratio2(n, a, b)
    _FAST_ANGLE_CALLS["asin"] += 1
    _, _, rho, r, sigma = fast_correlation(n, a, b)
    near_axis = sigma < r
    p = asin_poly(jnp.minimum(sigma, r))
    psi = jnp.where(near_axis, jnp.pi / 2 - p, p)
    edge = jnp.where(n > 0, jnp.pi / 2, -jnp.pi / 2)
    return jnp.where(correlation_one(n, a, b) & (a > 0), edge, jnp.where(rho < 0, -psi, psi))


def fast_sqrt_det2(a, b, m):
    """√(ab − m²) like :func:`sqrt_det2` (exactly 0 at a self pair), as √a·√b·σ from
    :func:`fast_correlation` (the same σ as fast_acos_ratio2's: XLA computes it once) when
    fast maps are on; otherwise sqrt_det2."""
    if _fast_dtype(a, b, m) is None:
        return sqrt_det2(a, b, m)
    sa, sb, _, _, sigma = fast_correlation(m, a, b)
    return jnp.where(correlation_one(m, a, b), 0.0, (sa * sb) * sigma)


def broadcast(value, k11, k12, k22):
    """value as a float array of the broadcast shape of (k11, k12, k22): constant maps keep shape."""
    dtype = jnp.result_type(k11, k12, k22, 1.0)
    shape = jnp.broadcast_shapes(jnp.shape(k11), jnp.shape(k12), jnp.shape(k22))
    return jnp.broadcast_to(jnp.asarray(value, dtype=dtype), shape)


def sum_over_nodes(term, total, z, w):
    """total + sum_i term(z_i, w_i) over quadrature nodes: lax.scan under JAX (the body is
    traced once, so compile time does not grow with the number of nodes), a loop under numpy."""
    if jnp.__name__.startswith("jax"):
        import jax
        step = lambda acc, zw: (acc + term(zw[0], zw[1]), None)  # noqa: E731
        nodes = (jnp.asarray(z, total.dtype), jnp.asarray(w, total.dtype))
        return jax.lax.scan(step, total, nodes)[0]
    for zi, wi in zip(z.tolist(), w.tolist()):  # numpy reference path
        total = total + term(zi, wi)
    return total


#: label -> (estimated absolute error, largest E[phi(u)^2], n): the worst Gauss-Hermite
#: accuracy estimate seen since kernel_fn last cleared it (see quadrature_estimate)
QUADRATURE_ERRORS = {}


def record_quadrature(label, n, error, scale):
    """Keep the worst (error, scale) of the map ``label`` (called from inside jit as a callback)."""
    error, scale = float(np.max(error)), float(np.max(scale))
    old = QUADRATURE_ERRORS.get(label)
    if old is None or error * max(old[1], 1e-300) > old[0] * max(scale, 1e-300):
        QUADRATURE_ERRORS[label] = (error, scale, n)


def hermite_rule(n):
    """Probabilists' Gauss-Hermite nodes and weights (summing to 1) by Golub-Welsch: the
    eigenvalues of the Jacobi matrix of He_n and the squared first eigenvector components
    (stable for any n, where numpy's hermegauss overflows past n ~ 400)."""
    off = np.sqrt(np.arange(1, n, dtype=np.float64))
    nodes, vectors = np.linalg.eigh(np.diag(off, 1) + np.diag(off, -1))
    weights = vectors[0] ** 2
    return nodes, weights / weights.sum()


def quadrature_estimate(phi, k, n, label):
    """Accuracy of the n-point rule where it is worst, on the diagonal: I_m(k) = sum_i w_i
    phi(sqrt(k) z_i)^2 = E[phi(u)^2] by the m-point rule; |I_n - I_2n| estimates the n-point
    error (the 2n-point rule is far more accurate for a smooth phi), and it bounds the
    off-diagonal error of the 2-d rule, which reduces to I_n at correlation 1. Recorded with
    max I_2n under ``label``; kernel_fn warns when the relative error is above tolerance."""
    dtype = jnp.result_type(k, 1.0)
    s = safe_sqrt(jnp.asarray(k, dtype=dtype))
    estimates = [sum_over_nodes(lambda zi, wi: wi * phi(s * zi) ** 2,
                                 jnp.zeros(jnp.shape(s), dtype=dtype), *hermite_rule(m))
                 for m in (n, 2 * n)]
    error = jnp.max(jnp.abs(estimates[0] - estimates[1]))
    scale = jnp.max(jnp.abs(estimates[1]))
    if jnp.__name__.startswith("jax"):
        import functools
        import jax
        jax.debug.callback(functools.partial(record_quadrature, label, n), error, scale,
                           partitioned=True)
    else:
        record_quadrature(label, n, error, scale)


def gauss_hermite_2d(phi, k11, k12, k22, n, label="phi"):
    """E[phi(u) phi(v)], (u, v) ~ N(0, [[k11, k12], [k12, k22]]), by n x n Gauss-Hermite.

    Probabilists' nodes z_i, weights w_i / sqrt(2 pi); u = sqrt(k11) z1,
    v = sqrt(k22) (rho z1 + sqrt(1 - rho^2) z2), rho = k12 / sqrt(k11 k22) clipped to [-1, 1].
    The outer sum is a loop (lax.scan under JAX) so memory stays at n times the input size.
    The rule's accuracy at the variances k11 is estimated and recorded under ``label``
    (quadrature_estimate): quadrature is not exact, and kernel_fn says so when it matters.
    """
    quadrature_estimate(phi, k11, n, label)
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / np.sqrt(2 * np.pi)
    dtype = jnp.result_type(k11, k12, k22, 1.0)
    shape = jnp.broadcast_shapes(jnp.shape(k11), jnp.shape(k12), jnp.shape(k22))
    s11 = safe_sqrt(jnp.asarray(k11, dtype=dtype))
    s22 = safe_sqrt(jnp.asarray(k22, dtype=dtype))
    # ρ and √(1 − ρ²) from s = √(k11 k22) and the cancellation-free determinant: a self pair
    # (k11 = k22 = k12 bit-identical) gets ρ = 1 and √(1 − ρ²) = 0 exactly (1 − ρ² from a ρ one
    # ulp off 1 is ~1e-8, which moves every node v and the result by ~1e-7)
    k12 = jnp.asarray(k12, dtype=dtype)
    p = jnp.asarray(k11, dtype=dtype) * jnp.asarray(k22, dtype=dtype)
    s12 = safe_sqrt(p)
    rho = clip_corr(safe_div(k12, s12))
    rho_c = jnp.minimum(safe_div(sqrt_det(p, k12), s12), 1)
    z_in = jnp.asarray(z, dtype=dtype)
    w_in = jnp.asarray(w, dtype=dtype)
    b22, b_rho, b_rho_c = s22[..., None], rho[..., None], rho_c[..., None]

    def outer_term(z1, w1):  # w1 phi(u) sum_j w_j phi(v_j) at one outer node z1
        inner = jnp.sum(phi(b22 * (b_rho * z1 + b_rho_c * z_in)) * w_in, axis=-1)
        return w1 * phi(s11 * z1) * inner

    return sum_over_nodes(outer_term, jnp.zeros(shape, dtype=dtype), z, w)


#: (order, label) -> [NNGP, NTK (nan: not computed), largest correlation slope, largest change
#: of K̇]: the worst float32 error estimates after each nonlinearity since kernel_fn cleared it
PRECISION_ESTIMATES = {}
#: float32 roundoffs u = 2^-24 added to the correlation a map reads (the layers before it, its
#: arguments) and to its output (its evaluation); calibrated in docs/precision.md
PRECISION_ROUNDING = (4.0, 2.0)
#: a smooth map's error from the variances alone (Cauchy–Schwarz, track_precision) is used when
#: it is at most this (a hundredth of driver.PRECISION_TOLERANCE): overestimating an error that
#: small cannot make a warning unless later layers stretch it 100-fold, when a per-entry estimate
#: of those layers would be near the tolerance too
PRECISION_SMALL = 1e-5
#: id(scope) -> [scope, count, e_k, e_t, e_var, deferred] of one _propagate trace (a few are
#: kept): the per-pair errors after the last map evaluated in the graph, then the homogeneous
#: maps since, whose per-pair arithmetic the host does (track_precision)
_PRECISION_CHAINS = {}


_PRECISION_TRACKING = [True]  # read at trace time: kernel_fn(check_precision=...) sets it
#: one dict per open precision_tracking block: the host calls its track_precision statements
#: want, {key: (function, arrays)}, made as one callback when the block closes
_PRECISION_REPORTS = []


class precision_tracking:
    """``with precision_tracking(enabled):`` traces ``track_precision`` statements (True) or
    traces nothing for them (False) inside the block: kernel_fn jit-compiles its passes once
    for each setting. The statements' reports to the host are gathered and made as one
    ``jax.debug.callback`` when the block (inside the traced function) closes: each callback
    costs ~0.5–1 ms per call, which a ten-layer MLP paid per map. The callbacks are
    partitioned: on several devices each reports its own pairs (the host keeps the worst
    estimate over reports), where gathering the operands to the first device made XLA warn of
    an "involuntary full rematerialization" on every multi-device run. (A class, not a
    generator: generated modules have no decorators.)"""

    def __init__(self, enabled):
        self.enabled = bool(enabled)

    def __enter__(self):
        _PRECISION_TRACKING.append(self.enabled)
        _PRECISION_REPORTS.append({})

    def __exit__(self, kind, *exc):
        _PRECISION_TRACKING.pop()
        reports = list(_PRECISION_REPORTS.pop().values())
        if reports and kind is None:
            import jax
            sizes = [len(arrays) for _, arrays in reports]
            jax.debug.callback(functools.partial(_call_reports, [f for f, _ in reports], sizes),
                               *[a for _, arrays in reports for a in arrays], partitioned=True)


def _call_reports(functions, sizes, *arrays):
    """Host side of a precision_tracking block's one callback: each report with its arrays."""
    start = 0
    for function, size in zip(functions, sizes):
        function(*arrays[start:start + size])
        start += size


def _report(key, function, *arrays):
    """Hand ``arrays`` to ``function`` on the host: gathered into the open precision_tracking
    block's callback (a later report under the same ``key`` replaces an earlier one), or a
    callback of its own outside any block."""
    if _PRECISION_REPORTS:
        _PRECISION_REPORTS[-1][key] = (function, arrays)
    else:
        import jax
        jax.debug.callback(function, *arrays, partitioned=True)


def record_precision(label, order, e_k, e_t, slope, gain):
    """Keep the worst estimates of the nonlinearity ``label`` (a callback from inside jit)."""
    new = [float(np.max(v)) if np.size(v) else 0.0 for v in (e_k, e_t, slope, gain)]
    old = PRECISION_ESTIMATES.get((order, label), new)
    PRECISION_ESTIMATES[(order, label)] = [float(np.fmax(o, n)) for o, n in zip(old, new)]


def _two_slope_nngp(value, k11, k12, k22):
    """K⁺(1,1,1) = ``value`` as an array (numpy, the host's chain of relu-like maps)."""
    return value * np.ones_like(k12)


def _two_slope_kdot(plus, minus, k11, rho, k22):
    """K̇(1, ρ, 1) = ((π − θ)·plus + θ·minus)/π, θ = arccos ρ (numpy, the host's chain;
    ``plus``, ``minus``: K̇(1, ±1, 1), a relu-like map's ``two_slopes``)."""
    theta = np.arccos(np.clip(rho, -1, 1))
    return ((np.pi - theta) * plus + theta * minus) / np.pi


def _safe_div(xp, a, b):
    """:func:`safe_div` in the array namespace ``xp`` (jax.numpy, or numpy on the host, where
    calling JAX is unsafe)."""
    nonzero = b != 0
    return xp.where(nonzero, a / xp.where(nonzero, b, 1), 0)


def _homogeneous_step(xp, nngp, kdot, max_rho2, e_k, e_t, e_var, before, after, want_ntk,
                      read_k=0.0):
    """One relu-like map (K⁺ of degree 1, K̇ of degree 0) of track_precision's chain, per pair,
    with the arrays of ``xp`` (jax.numpy in the graph, numpy on the host). The slope
    and the change of K̇ depend on ρ alone, so the maps are evaluated at unit variances once per
    pair, at its largest |ρ| (``max_rho2`` = that ρ²):

        e_in = √(e_k² + e_var² + before²),  hi = min(√max_rho2 + e_in, 1),
        slope = |K̇(1, hi, 1)| / |K⁺(1, 1, 1)|,   e_k⁺ = √((slope·e_in)² + (slope·read_k)² + after²),
        gain = |K̇(1, hi, 1) − K̇(1, max(hi − e_in, 0), 1)| / |K̇(1, 1, 1)|,
        e_Θ⁺ = √(max(e_Θ, e_in)² + gain² + after²),   e_var⁺ = √(e_var² + after²).

    (``read_k``: a fast correlation read by K⁺ alone, track_precision.) Returns (e_k⁺, e_Θ⁺,
    e_var⁺, slope, gain); e_Θ⁺ and gain are NaN without the NTK."""
    one = xp.ones_like(max_rho2)
    e_in = xp.sqrt(e_k * e_k + e_var * e_var + before * before)
    hi = xp.minimum(xp.sqrt(max_rho2) + e_in, 1)
    d_hi = xp.abs(kdot(one, hi, one))
    slope = d_hi * _safe_div(xp, 1, xp.abs(nngp(one, one, one)))
    e_k_out = xp.sqrt((slope * e_in) ** 2 + (slope * read_k) ** 2 + after * after)
    e_var_out = xp.sqrt(e_var * e_var + after * after)
    if not want_ntk:
        return e_k_out, xp.full_like(one, np.nan), e_var_out, slope, xp.full_like(one, np.nan)
    d_lo = xp.abs(kdot(one, xp.maximum(hi - e_in, 0), one))
    gain = _safe_div(xp, xp.abs(d_hi - d_lo), xp.abs(kdot(one, one, one)))
    return e_k_out, _theta_error(xp, e_t, e_in, gain, after), e_var_out, slope, gain


def _theta_error(xp, e_t, e_in, gain, after):
    """Θ⁺ = K̇ ⊙ (σ_w² Θ + K): the error of Θ or K, the change of K̇, the map's rounding."""
    return xp.sqrt(xp.maximum(e_t, e_in) ** 2 + gain * gain + after * after)


def _record_homogeneous_run(steps, start, *arrays):
    """Host side of a run of relu-like maps (a jax.debug.callback): the chain of
    :func:`_homogeneous_step` per pair in numpy float64 from the errors ``start`` of the map
    before the run (which of e_k, e_Θ, e_var are arrays; zeros otherwise), one step per entry of
    ``steps`` (label, order, two_slopes, want_ntk, before, after, read_k) with its per-pair
    largest ρ², each step's worst pair recorded (record_precision)."""
    arrays = [np.asarray(a, np.float64) for a in arrays]
    given = iter(arrays[:sum(start)])
    e_k, e_t, e_var = (next(given) if present else 0.0 for present in start)
    for (label, order, (value, plus, minus), want_ntk, before, after, read_k), max_rho2 in zip(
            steps, arrays[sum(start):]):
        e_k, e_t_out, e_var, slope, gain = _homogeneous_step(
            np, functools.partial(_two_slope_nngp, value),
            functools.partial(_two_slope_kdot, plus, minus), max_rho2, e_k, e_t, e_var,
            before, after, want_ntk, read_k)
        record_precision(label, order, e_k, e_t_out, slope, gain)
        e_t = e_t_out if want_ntk else 0.0


def _graph_errors(chain, like):
    """The chain's (e_k, e_Θ, e_var) in the graph, zeros (shaped ``like``, one per pair) where
    none is known yet, after evaluating its deferred homogeneous maps there (a map that needs
    the errors per entry comes next; their estimates were recorded by the host already)."""
    for (_, _, nngp, kdot, want_ntk, before, after, read_k), max_rho2, _ in chain[5]:
        e_k, e_t, e_var = (jnp.zeros_like(like) if c is None else c for c in chain[2:5])
        e_k, e_t_out, e_var, _, _ = _homogeneous_step(jnp, nngp, kdot, max_rho2, e_k, e_t,
                                                       e_var, before, after, want_ntk, read_k)
        chain[2:5] = [e_k, e_t_out if want_ntk else None, e_var]
    chain[5] = []
    return tuple(jnp.zeros_like(like) if c is None else c for c in chain[2:5])


def track_precision(label, nngp, kdot, k11, k12, k22, want_ntk, scope, self_pairs=False,
                    kind="closed form", two_slopes=None, fast_angles=((), ())):
    """First-order estimate of the float32 rounding error after the nonlinearity ``label``
    (K⁺ = ``nngp``, K̇ = ``kdot`` of (k11, k12, k22)), carried on from the one before it in the
    same _propagate call (``scope``, made anew by each call) and recorded in
    PRECISION_ESTIMATES for kernel_fn's PrecisionWarning. Nothing is traced unless float32.

    Per pair, in correlation units: an error e in ρ = k12/√(k11 k22) becomes slope·e after the
    map, slope = |K̇| √(k11 k22) / √(K⁺(k11,k11,k11) K⁺(k22,k22,k22)) (χ(1) near ρ = 1: above 1
    the network is chaotic); the NTK gains the change of K̇ over the window [hi − e, hi],
    hi = min(|ρ| + e, 1) (K̇ increasing and convex in |ρ|), which stays finite at relu's
    square-root edge. ``self_pairs``: which pairs are self pairs (x, x), whose entries with
    k11 = k22 = |k12| are exact in ρ: True (all, the self pass), None or False (none), or a
    boolean array (pairs,) (one pass serving both, :func:`~kernelc.runtime.layouts.pair_variances`).
    ``kind``: "homogeneous" (K⁺ of degree 1: relu, abs, leaky_relu; evaluated once
    per pair at its largest |ρ|, :func:`_homogeneous_step`), "smooth" (bounded from the
    variances while that bound is below PRECISION_SMALL, else per entry), "quadrature" or
    "closed form". ``two_slopes``: (K⁺(1,1,1), K̇(1,1,1), K̇(1,−1,1)) of a homogeneous map,
    derived by the compiler (``KernelMap.two_slopes``: K̇ is then linear in θ = arccos ρ).
    ``fast_angles``: the FAST_MAP_BOUNDS rows ("acos", "asin") of the fast helpers K⁺ and K̇
    call, as the compiler printed them; each counts where the fast_maps setting takes it (in
    float32: "acos" by default, both with fast_maps=True). See docs/precision.md.

    Where it runs: the graph computes what needs every entry. For a run of homogeneous maps
    that is one reduction per map (the largest ρ² of each pair); the host does the rest of
    the chain in numpy (from ``two_slopes``; the run's per-pair arrays reach it in the
    pass's one callback, :func:`_report`), which keeps ~50 small fusions per network out of
    XLA's compile. A map that reads the errors per entry (the other kinds) first evaluates the
    run in the graph (:func:`_graph_errors`).
    """
    if not jnp.__name__.startswith("jax") or not _PRECISION_TRACKING[-1]:
        return None
    dtype = jnp.result_type(k11, k12, k22)
    if dtype != jnp.float32:
        return None  # float64: nothing to check, nothing traced
    import jax
    chain = _PRECISION_CHAINS.get(id(scope))
    if chain is None or chain[0] is not scope:
        while len(_PRECISION_CHAINS) >= 8:  # they hold tracers: keep a few traces only
            del _PRECISION_CHAINS[next(iter(_PRECISION_CHAINS))]
        chain = _PRECISION_CHAINS[id(scope)] = [scope, 0, None, None, None, []]
    order, chain[1] = chain[1], chain[1] + 1
    before, after = (np.float32(c * 2.0 ** -24) for c in PRECISION_ROUNDING)
    # the fast helpers K⁺ and K̇ take under this fast_maps setting
    fast_k, fast_t = (tuple(h for h in rows if _fast_dtype(k11, k12, k22, helper=h))
                      for rows in fast_angles)
    read_k = np.float32(0)  # the fast ρ read of a K⁺ whose K̇ takes no fast angle (erf)
    if fast_t or fast_k:
        # the fast maps' proven errors (FAST_MAP_BOUNDS, the worst of the helpers the map
        # takes), added in quadrature to the calibrated roundings: the ρ they read (6u, 7u;
        # both windows where K̇ reads it, else slope · read on the NNGP's error below) and
        # their evaluation (the larger of K⁺'s and K̇'s)
        rho_err, kdot_err, nngp_err = (max(FAST_MAP_BOUNDS[h]["float32"][i]
                                           for h in set(fast_t + fast_k)) for i in range(3))
        if fast_t:
            before = np.float32(math.hypot(PRECISION_ROUNDING[0], rho_err) * 2.0 ** -24)
        else:
            read_k = np.float32(rho_err * 2.0 ** -24)
        after = np.float32(math.hypot(PRECISION_ROUNDING[1], max(kdot_err, nngp_err))
                           * 2.0 ** -24)
    k11, k12, k22 = (jnp.asarray(a, dtype) for a in (k11, k12, k22))
    shape = jnp.broadcast_shapes(k11.shape, k12.shape, k22.shape)
    pairs = shape[0]

    def per_pair(a):  # the worst entry of each pair
        full = jnp.broadcast_shapes(jnp.shape(a), k11.shape, k22.shape)
        return jnp.max(jnp.broadcast_to(a, full).reshape(pairs, -1), axis=1)

    def column(e):
        return e.reshape((pairs,) + (1,) * (len(shape) - 1))

    (s1, inv_s1), (s2, inv_s2) = site_roots(k11), site_roots(k22)  # fast_correlation's
    if self_pairs is None or self_pairs is False:
        inexact = True
    elif self_pairs is True:
        inexact = ~correlation_one(k12, k11, k22)
    else:
        inexact = ~(correlation_one(k12, k11, k22) & column(jnp.asarray(self_pairs)))
    if kind == "homogeneous":  # the slope and change depend on ρ alone
        # (ρ², the clip and the mask as a product: no abs and no full-size constant array next
        # to the reduction, which XLA would materialise: +20% on p4_histology)
        rho = k12 * inv_s1 * inv_s2
        max_rho2 = per_pair(rho * rho if inexact is True else rho * rho * inexact)
        step = (label, order, nngp, kdot, want_ntk, before, after, read_k)
        if two_slopes is not None:  # the host evaluates the run so far, this map included
            chain[5].append((step, max_rho2, two_slopes))
            start = [c is not None for c in chain[2:5]]
            runs = [(s[:2] + (c,) + s[4:], m) for s, m, c in chain[5]]
            # one report per run: each map's covers the run so far (the last one all of it)
            _report(("run", id(chain[5][0][1])),
                    functools.partial(_record_homogeneous_run, [s for s, _ in runs], start),
                    *[c for c in chain[2:5] if c is not None], *[m for _, m in runs])
            return None
        e_k, e_t, e_var = _graph_errors(chain, max_rho2)
        e_k_out, e_t_out, e_var_out, slope, gain = _homogeneous_step(
            jnp, nngp, kdot, max_rho2, e_k, e_t, e_var, before, after, want_ntk, read_k)
    else:
        e_k, e_t, e_var = _graph_errors(chain, jnp.zeros((pairs,), dtype))
        # K⁺ and its log-slope at the variances of both inputs (small arrays)
        flat = jnp.concatenate([jnp.ravel(k11), jnp.ravel(k22)])
        v, dv = jax.jvp(lambda a: nngp(a, a, a), (flat,), (flat,))
        stretch = jnp.max(jnp.abs(safe_div(dv, v)))  # variance errors grow by it
        v1, v2 = v[:k11.size].reshape(k11.shape), v[k11.size:].reshape(k22.shape)
        e_in = jnp.sqrt(e_k * e_k + e_var * e_var + before * before)  # of the ρ this map reads
        n = None  # K̇ at the variances (the NTK's scale)

        def per_entry():  # every entry its own window; an exact one only its arguments' rounding
            a12, width = jnp.abs(k12), column(e_in)
            if inexact is not True:
                width = jnp.where(~inexact, before, width)
            # entries sharing their variances (e.g. the group axis of group_reduced): the largest
            free = tuple(ax for ax in range(1, len(shape)) if k11.ndim == k12.ndim == k22.ndim
                         and k11.shape[ax] == 1 and k22.shape[ax] == 1 and k12.shape[ax] > 1)
            if free:
                a12 = jnp.max(a12, axis=free, keepdims=True)
                if jnp.ndim(width) and width.shape[free[0]] > 1:
                    width = jnp.max(width, axis=free, keepdims=True)
            s = s1 * s2
            hi = jnp.minimum(a12 + width * s, s)
            lo = jnp.maximum(hi - width * s, 0)
            d_lo, scale = None, n
            if kind == "quadrature":  # one loop over the nodes for all points, on flat arrays
                full = jnp.broadcast_shapes(hi.shape, k11.shape, k22.shape)
                a, b = (jnp.ravel(jnp.broadcast_to(x, full)) for x in (k11, k22))
                ends = [jnp.ravel(jnp.broadcast_to(x, full)) for x in ([hi, lo][:1 + want_ntk])]
                at = [flat] if want_ntk else []  # K̇ at the variances, for the NTK
                d = jnp.abs(kdot(*(jnp.concatenate(at + x) for x in
                                   ([a] * len(ends), ends, [b] * len(ends)))))
                m = flat.size if want_ntk else 0
                scale, d_hi, d_lo = d[:m], d[m:m + a.size].reshape(full), d[m + a.size:]
                d_lo = d_lo.reshape(full) if want_ntk else None
            else:
                d_hi = jnp.abs(kdot(k11, hi, k22))
            stretched = d_hi * safe_div(s1, safe_sqrt(v1)) * safe_div(s2, safe_sqrt(v2))
            slope = per_pair(stretched)
            e_k_out = jnp.sqrt(per_pair(stretched * width) ** 2 + (slope * read_k) ** 2
                               + after * after)
            if not want_ntk:
                return e_k_out, slope, jnp.full((pairs,), jnp.nan, dtype)
            if d_lo is None:
                d_lo = jnp.abs(kdot(k11, lo, k22))
            if scale is None:
                scale = jnp.abs(kdot(flat, flat, flat))
            n1, n2 = scale[:k11.size].reshape(k11.shape), scale[k11.size:].reshape(k22.shape)
            gain = per_pair(safe_div(jnp.abs(d_hi - d_lo), safe_sqrt(n1) * safe_sqrt(n2)))
            return e_k_out, slope, gain

        if kind == "smooth":
            # Price and Cauchy–Schwarz: |K̇(k11,k12,k22)| = |E[φ'(u)φ'(v)]| ≤ √(K̇₁ K̇₂) and
            # |∂K̇/∂k12| = |E[φ''(u)φ''(v)]| ≤ √(K̈₁ K̈₂), K̇ᵢ, K̈ᵢ at the variances kᵢ: slope ≤
            # √(χ₁χ₂), χ = k K̇/K⁺, and the change of K̇ over the window ≤ e √(g₁g₂), g = k K̈/K̇,
            # from the small arrays alone; per entry only when that bound is not small
            n, n_dot = jax.jvp(lambda c: kdot(flat, c, flat), (flat,), (jnp.ones_like(flat),))
            n = jnp.abs(n)
            chi = jnp.abs(flat * n * safe_div(1, v))
            g = jnp.abs(flat * n_dot * safe_div(1, n))

            def per_pair_site(a, like):  # the largest value over each pair's sites
                return jnp.broadcast_to(jnp.max(a.reshape(like.shape[0], -1), axis=1), (pairs,))

            slope_b = jnp.sqrt(per_pair_site(chi[:k11.size], k11)
                               * per_pair_site(chi[k11.size:], k22))
            gain_b = e_in * jnp.sqrt(per_pair_site(g[:k11.size], k11)
                                     * per_pair_site(g[k11.size:], k22))
            if not want_ntk:
                gain_b = jnp.full((pairs,), jnp.nan, dtype)
            small = jnp.max(slope_b * e_in) <= PRECISION_SMALL
            if want_ntk:
                small = small & (jnp.max(gain_b) <= PRECISION_SMALL)
            bound = (jnp.sqrt((slope_b * e_in) ** 2 + (slope_b * read_k) ** 2 + after * after),
                     slope_b, gain_b)
            e_k_out, slope, gain = jax.lax.cond(small, lambda: bound, per_entry)
        else:
            e_k_out, slope, gain = per_entry()
        e_var_out = jnp.sqrt((stretch * e_var) ** 2 + after * after)
        e_t_out = _theta_error(jnp, e_t, e_in, gain, after) if want_ntk else gain
    chain[2:5] = [e_k_out, e_t_out if want_ntk else None, e_var_out]
    # the worst pair, reduced in the graph: a tile split over devices hands the host a scalar
    # (an all-reduce), not its per-pair arrays
    _report(("map", id(chain), order), functools.partial(record_precision, label, order),
            *(jnp.max(v) for v in (e_k_out, e_t_out, slope, gain)))
    return None


@functools.lru_cache(maxsize=None)
def _numpy_special():
    """scipy.special when installed; otherwise erf/erfc vectorised from math (float64)."""
    try:
        import scipy.special
        return scipy.special
    except ImportError:  # scipy is not a kernelc dependency
        return types.SimpleNamespace(erf=np.vectorize(math.erf, otypes=[np.float64]),
                                     erfc=np.vectorize(math.erfc, otypes=[np.float64]))


class _SpecialOnUse:
    """The numpy namespace's ``jsp``: :func:`_numpy_special` imported when a printed map first
    calls it (``jsp.erf``). The relu-like maps never do, and importing scipy.special took
    ~0.12 s of every kernelc.compile of a relu network (their two_slopes run the maps)."""

    def __getattr__(self, name):
        return getattr(_numpy_special(), name)


def namespace(backend="jax"):
    """A fresh dict holding these helpers (and ``jnp``, ``jsp``) to evaluate printed maps in:
    bound to jax.numpy (``"jax"``) or to numpy with float64 special functions (``"numpy"``,
    the reference backend; its QUADRATURE_ERRORS is a dict of its own)."""
    if backend == "jax":
        return {name: globals()[name] for name in __all__ + ["jnp", "jsp"]}
    if backend != "numpy":
        raise ValueError(f"backend must be 'jax' or 'numpy', got {backend!r}")
    return dict(_numpy_helpers())


@functools.lru_cache(maxsize=None)
def _numpy_helpers():
    """This module's source executed once more, with ``jnp`` = numpy (the helpers read it at
    call time): the numpy float64 twins of the helpers above."""
    ns = {"__name__": __name__ + "[numpy]"}
    source = sys.modules[__name__].__loader__.get_source(__name__)
    exec(compile(source, __file__, "exec"), ns)  # noqa: S102 - this module's own source
    ns["jnp"], ns["jsp"] = np, _SpecialOnUse()
    return tuple((name, ns[name]) for name in __all__ + ["jnp", "jsp"])
