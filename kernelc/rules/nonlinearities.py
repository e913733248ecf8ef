"""The nonlinearity rules table: elementwise φ -> (NNGP map, NTK map) as sympy expressions.

With Λ = [[k11, k12], [k12, k22]] the pre-activation covariance of one pair of positions,

    K⁺ = E_{(u,v)~N(0,Λ)}[φ(u) φ(v)],   K̇ = E[φ'(u) φ'(v)],   Θ⁺ = K̇ ⊙ Θ.

By Price's theorem K̇ = ∂K⁺/∂k12, so every closed-form entry states K⁺ only; its K̇ is
``simplify(diff(K⁺, k12))`` (see :func:`_price`). Polynomials get an exact K⁺ from Gaussian
moments (:mod:`kernelc.rules.gaussian`); any other φ(x) gets φ' from sympy and both maps by 2-d
Gauss–Hermite quadrature. ``ρ = k12/√(k11 k22)`` throughout.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Optional

import numpy as np
import sympy

from kernelc.ir.jax_printer import jax_code
from kernelc.ir.plan import Map, Ref
from kernelc.errors import SpecError, did_you_mean
from kernelc.rules.gaussian import polynomial_kernel
from kernelc.rules.price_memo import PRICE_MEMO
from kernelc.runtime import maps

__all__ = ["k11", "k12", "k22", "x", "KernelMap", "NONLINEARITIES", "MAX_POLY_DEGREE", "kernel_map",
           "compose"]

k11, k22 = sympy.symbols("k11 k22", positive=True)  # variances (the zero case is guarded in code)
k12 = sympy.Symbol("k12", real=True)                # covariance, |k12| <= sqrt(k11 k22)
x = sympy.Symbol("x", real=True)                    # the argument of φ in user expressions

_SYMBOLS = (k11, k12, k22)
_MAX_QUAD_DEGREE = 256
#: Highest polynomial degree of a phi(...) / poly(...) nonlinearity (the front end checks it on
#: the spec, compose on compositions): the exact Gaussian moments grow steeply with the degree
#: (a dense degree-64 polynomial takes minutes).
MAX_POLY_DEGREE = 16


@dataclass(frozen=True)
class KernelMap:
    """K⁺ and K̇ of one nonlinearity; ``nngp``/``ntk_dot`` are None for the quadrature method.

    ``fast_angles``: the helpers of :mod:`kernelc.runtime.maps` whose fast twins the printed
    maps call (``acos_ratio2`` -> ``fast_acos_ratio2``, ...), which take the angle from a
    minimax polynomial when kernel_fn's ``fast_maps`` is on; empty: none. Set only where the
    proven bound of docs/math/fast-maps.md holds (u the dtype's unit roundoff, relative to
    √(K(x,x) K(x',x'))): ``TWO_SLOPE_FAST`` (arc-cosine and determinant, ≤ 3u on K⁺ and ≤ 2.1u
    on K̇) for the two-slope maps φ = a·x (x > 0), b·x (x < 0) with a·b ≥ 0 (relu,
    leaky_relu(α ≥ 0)), where the angle error enters with the gain (a − b)²/(a² + b²) ≤ 1, not
    for |x| (gain 2); ``ARCSINE_FAST`` (the arcsine only) for erf (K⁺ ≤ 7.51u; its K̇ = 4/(π√D)
    keeps sqrt_det2, which costs the same) and gelu (the arcsine term moves K⁺ and K̇ by
    ≤ 6.04u; the rest of its maps, with √D, is the exact code)."""

    name: str
    phi: sympy.Expr
    method: str
    nngp: Optional[sympy.Expr]
    ntk_dot: Optional[sympy.Expr]
    quad_degree: int = 0
    fast_angles: tuple = ()

    @property
    def phi_prime(self) -> sympy.Expr:
        return sympy.diff(self.phi, x)

    def latex(self) -> tuple[str, str]:
        """LaTeX of K⁺ and K̇ (for quadrature: the Gaussian expectation with φ written out)."""
        if self.nngp is not None:
            return sympy.latex(self.nngp), sympy.latex(self.ntk_dot)

        def expectation(f: sympy.Expr) -> str:
            u, v = sympy.symbols("u v", real=True)
            return (r"\mathbb{E}_{(u,v)\sim\mathcal{N}(0,\Lambda)}\left[\left("
                    + sympy.latex(f.subs(x, u)) + r"\right)\left(" + sympy.latex(f.subs(x, v))
                    + r"\right)\right]")
        return expectation(self.phi), expectation(self.phi_prime)

    def pretty(self) -> tuple[str, str]:
        """Unicode rendering (sympy.pretty) of K⁺ and K̇."""
        if self.nngp is not None:
            return (sympy.pretty(self.nngp, use_unicode=True),
                    sympy.pretty(self.ntk_dot, use_unicode=True))
        u, v = sympy.symbols("u v", real=True)
        E = sympy.Function("E")  # displayed E(φ(u)⋅φ(v)), (u, v) ~ N(0, Λ)

        def expectation(f: sympy.Expr) -> str:
            body = sympy.Mul(f.subs(x, u), f.subs(x, v), evaluate=False)
            return sympy.pretty(E(body), use_unicode=True)
        return expectation(self.phi), expectation(self.phi_prime)

    def emit_jax(self, k11: str, k12: str, k22: str) -> tuple[str, str]:
        """JAX source expressions of K⁺ and K̇ over the given variable names (calling the helpers
        of :mod:`kernelc.runtime.maps`)."""
        variables = f"{k11}, {k12}, {k22}"
        if self.nngp is None:
            # the lambda's own parameter 'x' only shadows inside the lambda body
            # the label names the map in kernel_fn's accuracy warning (a Python string literal)
            return tuple(f"gauss_hermite_2d(lambda x: {jax_code(f, {x: 'x'})}, {variables}, "
                         f"{self.quad_degree}, {label!r})"
                         for f, label in ((self.phi, f"K⁺ of {self.name}"),
                                          (self.phi_prime, f"K̇ of {self.name}")))
        names = dict(zip(_SYMBOLS, (k11, k12, k22)))
        out = []
        for expr in (self.nngp, self.ntk_dot):
            code = jax_code(expr, names, self.fast_angles)
            if not set(_SYMBOLS) <= expr.free_symbols:
                code = f"broadcast({code}, {variables})"  # e.g. K̇ = 1: keep the array shape
            out.append(code)
        return tuple(out)

    def expr(self, part: str, k11: str, k12: str, k22: str) -> Map:
        """The plan node of K⁺ (``part`` "K⁺") or K̇ ("K̇") at the arrays k11, k12, k22."""
        index = {"K⁺": 0, "K̇": 1}[part]
        return Map(self.name, part, (Ref(k11), Ref(k12), Ref(k22)),
                   lambda a, b, c: self.emit_jax(a, b, c)[index])

    def emit_precision(self, k11: str, k12: str, k22: str, label: str,
                       want_ntk: str = "want_ntk", scope: str = "stats",
                       self_pairs: str = "self_pairs") -> str:
        """JAX source of the statement that estimates the float32 rounding error after this map
        (:func:`kernelc.runtime.maps.track_precision`): ``label`` names the layer in kernel_fn's
        PrecisionWarning (e.g. ``"erf3 (line 9)"``); ``k11``, ``k12``, ``k22`` are the variable
        names the map reads; ``want_ntk`` and ``scope`` name _propagate's flag and an object made
        anew by each of its calls (its ``stats`` list), which chains the nonlinearities of one
        call; ``self_pairs`` names _propagate's flag of the self pairs (each input with itself:
        True, None, or a boolean per pair). The statement
        does nothing in float64 (nothing is traced)."""
        nngp, kdot = self.emit_jax("k11", "k12", "k22")  # the lambda's own parameters
        indent = " " * len("track_precision(")
        keywords = []  # (argument, comment)
        if self.two_slopes is not None:
            keywords.append((f"two_slopes=({', '.join(map(repr, self.two_slopes))})",
                             "K⁺(1,1,1), K̇(1,1,1), K̇(1,−1,1)"))
        if any(self.fast_angle_rows):
            keywords.append((f"fast_angles={self.fast_angle_rows!r}",
                             "the fast angles K⁺ and K̇ call"))
        statement = (f"# float32: estimate the rounding error after {label.split()[0]} "
                     "(docs/precision.md)\n"
                     f"track_precision({label!r},\n"
                     f"{indent}lambda k11, k12, k22: {nngp},  # K⁺\n"
                     f"{indent}lambda k11, k12, k22: {kdot},  # K̇\n"
                     f"{indent}{k11}, {k12}, {k22}, {want_ntk}, {scope}, {self_pairs}, "
                     f"{self.precision_kind!r}")
        if not keywords:
            return statement + ")"
        return statement + ",\n" + "\n".join(
            f"{indent}{argument}{')' if i == len(keywords) - 1 else ','}  # {comment}"
            for i, (argument, comment) in enumerate(keywords))

    @property
    def fast_angle_rows(self) -> tuple[tuple, tuple]:
        """(K⁺'s, K̇'s) rows of maps.FAST_MAP_BOUNDS ("acos", "asin") of the fast helpers the
        printed maps call (track_precision's ``fast_angles``)."""
        return tuple(_fast_angle_rows(code) for code in self.emit_jax("k11", "k12", "k22"))

    @property
    def precision_kind(self) -> str:
        """How track_precision evaluates this map: "homogeneous" (once per pair), "smooth"
        (from the variances, per entry only when that bound is not small), "quadrature" (per
        entry, all points in one quadrature loop) or "closed form" (per entry)."""
        if self.homogeneous:
            return "homogeneous"
        if self.nngp is None:
            return "quadrature"
        return "smooth" if self.smooth else "closed form"

    @property
    def smooth(self) -> bool:
        """φ built from functions smooth on ℝ (polynomials, erf, sin, cos, exp, gelu, ...; no
        Abs, Max, Min, sign or Piecewise): φ'' is continuous, so by Price's theorem
        ∂K̇/∂k12 = E[φ''(u)φ''(v)], and Cauchy–Schwarz bounds K̇ and its change at every
        correlation by their values at the variances (track_precision's "smooth" kind,
        docs/precision.md). A closed form only: quadrature maps keep the per-entry check."""
        return (self.nngp is not None and not self.homogeneous
                and _continuous_everywhere(self.phi) and not self.phi.atoms(*_NON_SMOOTH))

    @property
    def homogeneous(self) -> bool:
        """K⁺ positively homogeneous of degree 1 and K̇ of degree 0 in (k11, k12, k22), as for
        every φ(x) = a·x (x > 0), b·x (x < 0) (relu, leaky_relu, abs, identity): the normalised
        maps then depend on ρ alone (checked numerically on the float64 maps)."""
        return _homogeneous(self)

    @property
    def two_slopes(self) -> Optional[tuple[float, float, float]]:
        """(K⁺(1,1,1), K̇(1,1,1), K̇(1,−1,1)) of a homogeneous map, which is φ = a·x (x > 0),
        b·x (x < 0) (positively homogeneous of degree 1), so that

            K̇(1, ρ, 1) = ((π − θ) K̇(1,1,1) + θ K̇(1,−1,1)) / π,    θ = arccos ρ

        (E[φ'(u)φ'(v)] = a² P(u,v > 0) + b² P(u,v < 0) + 2ab P(u > 0 > v), P(u,v > 0) =
        (π − θ)/(2π), P(u > 0 > v) = θ/(2π); K̇(1,1,1) = K⁺(1,1,1) = (a² + b²)/2,
        K̇(1,−1,1) = ab); None for other maps. The emitted code's own K⁺ and K̇ are evaluated
        in float64 and the form is checked at seven correlations to 1e-9: track_precision's host
        chain evaluates K̇ by it (docs/precision.md, "Cost")."""
        return _two_slopes(self) if self.homogeneous else None

    def evaluate(self, k11, k12, k22) -> tuple[np.ndarray, np.ndarray]:
        """numpy float64 values of (K⁺, K̇), running the emitted code with jnp = numpy."""
        nngp_fn, ntk_fn = _numpy_functions(*self.emit_jax("k11", "k12", "k22"))
        args = [np.asarray(a, dtype=np.float64) for a in (k11, k12, k22)]
        # np.where evaluates both branches: the masked-out ones may warn, never leak
        with np.errstate(all="ignore"):
            return (np.asarray(nngp_fn(*args), dtype=np.float64),
                    np.asarray(ntk_fn(*args), dtype=np.float64))


#: the fast helpers printed maps call -> their row of maps.FAST_MAP_BOUNDS (fast_sqrt_det2 has
#: none: it shares fast_acos_ratio2's correlation, and relu's bounds cover both)
FAST_ANGLE_ROWS = {"fast_acos_ratio2": "acos", "fast_asin_ratio2": "asin"}


def _fast_angle_rows(code: str) -> tuple:
    """The FAST_MAP_BOUNDS rows of the fast helpers the printed map ``code`` calls, sorted:
    track_precision adds their proven errors where kernel_fn's fast_maps takes them (stated
    here rather than found by tracing each map at run time, ~8 ms a map and pass)."""
    return tuple(sorted({row for helper, row in FAST_ANGLE_ROWS.items()
                         if f"{helper}(" in code}))


@lru_cache(maxsize=256)
def _two_slopes(kmap: KernelMap) -> Optional[tuple[float, float, float]]:
    rho = np.array([1.0, -1.0, -0.9, -0.3, 0.2, 0.7, 0.99])
    one = np.ones_like(rho)
    nngp, kdot = kmap.evaluate(one, rho, one)
    theta = np.arccos(rho)
    line = ((np.pi - theta) * kdot[0] + theta * kdot[1]) / np.pi
    fits = (np.all(np.isfinite(kdot)) and np.isfinite(nngp[0])
            and np.max(np.abs(kdot - line)) <= 1e-9 * max(np.max(np.abs(kdot)), 1e-300))
    return (float(nngp[0]), float(kdot[0]), float(kdot[1])) if fits else None


@lru_cache(maxsize=256)
def _homogeneous(kmap: KernelMap) -> bool:
    if kmap.nngp is None:
        return False  # quadrature: φ is smooth, hence not of this kind (unless linear)
    points = (np.array([0.7, 1.3, 2.0, 0.2]), np.array([0.3, -0.5, 1.1, 0.19]),
              np.array([1.1, 0.9, 2.5, 0.3]))
    nngp, kdot = kmap.evaluate(*points)
    for t in (3.0, 0.01):
        scaled = kmap.evaluate(*(t * p for p in points))
        if not (np.allclose(scaled[0], t * nngp, rtol=1e-9, atol=0)
                and np.allclose(scaled[1], kdot, rtol=1e-9, atol=0)):
            return False
    return True


@lru_cache(maxsize=256)
def _numpy_functions(nngp_code: str, ntk_code: str):
    # The source is our printer's output (whitelisted functions, our own variable names and
    # numbers), never user text.
    namespace = maps.namespace("numpy")
    exec(f"def _nngp(k11, k12, k22):\n    return {nngp_code}\n"  # noqa: S102
         f"def _ntk(k11, k12, k22):\n    return {ntk_code}\n", namespace)
    return namespace["_nngp"], namespace["_ntk"]


# -- Price's theorem ---------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _price(nngp: sympy.Expr, polynomial: bool = False) -> sympy.Expr:
    """K̇ = ∂K⁺/∂k12 (Price's theorem): :func:`derive_price`, or its stored result when K⁺ is
    a built-in closed form (:data:`~kernelc.rules.price_memo.PRICE_MEMO`, keyed by srepr(K⁺):
    sympy.simplify's first call in a process imports sympy.physics.units, ~0.15 s of every
    kernelc.compile; the tests derive every stored entry again)."""
    stored = None if polynomial else PRICE_MEMO.get(sympy.srepr(nngp))
    return sympy.sympify(stored) if stored is not None else derive_price(nngp, polynomial)


def derive_price(nngp: sympy.Expr, polynomial: bool = False) -> sympy.Expr:
    """K̇ = ∂K⁺/∂k12 (Price's theorem), simplified (expanded for polynomial maps).

    After ``simplify`` the result is also tried collected over its asin/acos terms with each
    coefficient simplified on its own (simplify tends to put everything over one denominator);
    the shorter form wins, so e.g. GELU reads asin(...)/(2π) + rational part.
    """
    d = sympy.diff(nngp, k12)
    if polynomial:
        return sympy.expand(d)
    best = sympy.simplify(d)
    trig = sorted(best.atoms(sympy.asin, sympy.acos), key=sympy.default_sort_key)
    if trig:
        parts = sympy.collect(sympy.expand(best), trig, evaluate=False)
        alt = sympy.Add(*[sympy.simplify(coeff) * atom for atom, coeff in parts.items()])
        if sympy.count_ops(alt) < sympy.count_ops(best):
            best = alt
    return best


# -- the table ---------------------------------------------------------------------------------

Builder = Callable[[tuple, Optional[sympy.Expr], int], KernelMap]
NONLINEARITIES: dict[str, Builder] = {}
#: name -> the function of a closed-form entry (returns φ, K⁺[, coords]); kernelc.rules.price_memo
#: stores Price's K̇ of each K⁺
CLOSED_FORMS: dict[str, Callable[[], tuple]] = {}


def rule(name: str):
    """Register ``builder(args, expr, quad_degree) -> KernelMap`` under ``name``."""
    def register(builder: Builder) -> Builder:
        NONLINEARITIES[name] = builder
        return builder
    return register


def closed_form(name: str, fast_angles: tuple = ()):
    """Register a no-argument entry whose function returns (φ, K⁺) or (φ, K⁺, coords); K̇ comes
    from Price. ``coords`` maps auxiliary positive symbols in K⁺ (e.g. a = 1 + k11, which do not
    depend on k12) to their values: differentiating and simplifying in those coordinates keeps
    sympy from expanding the radicals, and they are substituted back afterwards.
    ``fast_angles``: see :class:`KernelMap` (the entry's proven fast-angle bound holds)."""
    def register(fn: Callable[[], tuple]):
        @rule(name)
        def builder(args, expr, quad_degree):
            if args or expr is not None:
                raise SpecError(f"'{name}' takes no arguments")
            phi, nngp, *coords = fn()
            ntk_dot = _price(nngp)
            if coords:
                nngp, ntk_dot = nngp.subs(coords[0]), ntk_dot.subs(coords[0])
            return KernelMap(name, phi, "closed form", nngp, ntk_dot, fast_angles=fast_angles)
        builder.__doc__ = fn.__doc__
        CLOSED_FORMS[name] = fn
        return fn
    return register


def _rho() -> sympy.Expr:
    return k12 / sympy.sqrt(k11 * k22)


def _relu_nngp() -> sympy.Expr:
    """Arc-cosine kernel of degree 1 (Cho & Saul): √(k11k22)/(2π) (sin θ + (π−θ) cos θ), θ = acos ρ,
    written as (√(k11 k22 − k12²) + (π − acos ρ) k12) / (2π)."""
    return (sympy.sqrt(k11 * k22 - k12**2) + (sympy.pi - sympy.acos(_rho())) * k12) / (2 * sympy.pi)


@closed_form("identity")
def identity():
    """φ = x: K⁺ = k12, K̇ = 1."""
    return x, k12


#: KernelMap.fast_angles of the two-slope maps with a·b ≥ 0 (gain ≤ 1): arc-cosine and determinant
TWO_SLOPE_FAST = ("acos_ratio2", "sqrt_det2")


@closed_form("relu", fast_angles=TWO_SLOPE_FAST)  # slopes (1, 0): gain 1
def relu():
    """φ = max(0, x): K⁺ = (√(k11k22 − k12²) + (π − acos ρ) k12)/(2π), K̇ = (π − acos ρ)/(2π)."""
    return sympy.Max(0, x), _relu_nngp()


@closed_form("abs")
def abs_():
    """φ = |x| = 2 relu(x) − x: K⁺ = 4 K_relu − 2·2·(k12/2) + k12 = 4 K_relu − k12
    (E[u relu(v)] = k12/2 by the symmetry (u, v) -> (−u, −v))."""
    return sympy.Abs(x), 4 * _relu_nngp() - k12


#: KernelMap.fast_angles of erf and gelu: the arcsine of their maps only (docs/math/fast-maps.md)
ARCSINE_FAST = ("asin_ratio2",)


@closed_form("erf", fast_angles=ARCSINE_FAST)
def erf():
    """φ = erf(x): K⁺ = (2/π) asin(2k12 / √((1 + 2k11)(1 + 2k22))) (Williams 1997)."""
    return sympy.erf(x), 2 / sympy.pi * sympy.asin(
        2 * k12 / sympy.sqrt((1 + 2 * k11) * (1 + 2 * k22)))


@closed_form("sin")
def sin():
    """φ = sin x: K⁺ = e^{−(k11+k22)/2} sinh(k12) (from E[e^{i(u±v)}])."""
    return sympy.sin(x), sympy.exp(-(k11 + k22) / 2) * sympy.sinh(k12)


@closed_form("cos")
def cos():
    """φ = cos x: K⁺ = e^{−(k11+k22)/2} cosh(k12)."""
    return sympy.cos(x), sympy.exp(-(k11 + k22) / 2) * sympy.cosh(k12)


@closed_form("gelu", fast_angles=ARCSINE_FAST)
def gelu():
    """φ = x Φ(x) (exact GELU). With a = 1 + k11, b = 1 + k22, D = ab − k12²:

        K⁺ = k12/4 + k12/(2π) · asin(k12/√(ab)) + (k11 k22 D + k12²) / (2π ab √D).

    Derived by writing Φ(u) = P(Z1 ≤ u), X = u − Z1, Y = v − Z2, regressing u, v on (X, Y) and
    using the bivariate-normal orthant moments E[X^i Y^j; X>0, Y>0] (i + j ≤ 2); agrees with
    Tsuchida et al. (2021) and is checked against 2-d numerical integration in the tests.
    D ≥ 1 + k11 + k22 > 0, so the map is smooth everywhere.
    """
    a, b = sympy.symbols("a b", positive=True)  # a = 1 + k11, b = 1 + k22 (see closed_form)
    d = a * b - k12**2
    nngp = (k12 / 4 + k12 / (2 * sympy.pi) * sympy.asin(k12 / sympy.sqrt(a * b))
            + ((a - 1) * (b - 1) * d + k12**2) / (2 * sympy.pi * a * b * sympy.sqrt(d)))
    phi = x * (1 + sympy.erf(x / sympy.sqrt(2))) / 2
    return phi, nngp, {a: 1 + k11, b: 1 + k22}


# -- entries with arguments --------------------------------------------------------------------

def _number(owner: str, value, position: int) -> sympy.Expr:
    """A finite real number argument as an exact sympy number (0.1 -> 1/10, as written)."""
    if isinstance(value, np.generic) and not isinstance(value, np.bool_):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, sympy.Number)):
        raise SpecError(f"{owner}: argument {position} must be a number, got {value!r}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise SpecError(f"{owner}: argument {position} must be finite, got {value!r}")
        return sympy.Rational(repr(value))
    number = sympy.Integer(value) if isinstance(value, int) else value
    if not (number.is_real and number.is_finite):
        raise SpecError(f"{owner}: argument {position} must be a finite real number, got {value!r}")
    return number


def _fmt(value) -> str:
    return repr(value.item() if isinstance(value, np.generic) else value) \
        if not isinstance(value, sympy.Basic) else sympy.sstr(value)


@rule("leaky_relu")
def leaky_relu(args, expr, quad_degree):
    """φ = max(x, a x) = m x + c relu(x) with (m, c) = (a, 1 − a) for a ≤ 1, (1, a − 1) for a > 1:

        K⁺ = (m² + m c) k12 + c² K_relu      (E[u relu(v)] = E[relu(u) v] = k12/2).
    """
    if expr is not None or len(args) != 1:
        raise SpecError(f"leaky_relu takes exactly one numeric argument (the negative slope), "
                        f"got {len(args)}", suggestion="e.g. leaky_relu(0.1)")
    a = _number("leaky_relu", args[0], 1)
    m, c = (a, 1 - a) if a <= 1 else (sympy.Integer(1), a - 1)
    nngp = (m**2 + m * c) * k12 + c**2 * _relu_nngp()
    return KernelMap(f"leaky_relu({_fmt(args[0])})", sympy.Max(x, a * x), "closed form",
                     nngp, _price(nngp), fast_angles=_two_slope_fast(1, a))


def _two_slope_fast(a, b) -> tuple:
    """TWO_SLOPE_FAST when a·b ≥ 0, else (): the slopes of φ = a·x (x > 0), b·x (x < 0) for which
    the fast angle's proven bound holds (KernelMap.fast_angles: the angle error's gain
    (a − b)²/(a² + b²) is ≤ 1)."""
    return TWO_SLOPE_FAST if a * b >= 0 else ()


def _polynomial_map(name: str, coeffs: list) -> KernelMap:
    phi = sum((c * x**i for i, c in enumerate(coeffs)), sympy.Integer(0))
    nngp = polynomial_kernel(coeffs, k11, k12, k22)
    return KernelMap(name, phi, "gaussian moments", nngp, _price(nngp, polynomial=True))


@rule("poly")
def poly(args, expr, quad_degree):
    """φ = c0 + c1 x + ... + cn x^n: exact K⁺ by Isserlis (kernelc.rules.gaussian)."""
    if expr is not None or not args:
        raise SpecError("poly needs at least one numeric coefficient c0, c1, ..., cn",
                        suggestion="e.g. poly(0, 1, 0.5) for x + x**2/2")
    coeffs = [_number("poly", a, i + 1) for i, a in enumerate(args)]
    return _polynomial_map("poly(" + ", ".join(_fmt(a) for a in args) + ")", coeffs)


def _as_phi(expr) -> sympy.Expr:
    """Check a user φ: a real sympy expression in x only (any Symbol named 'x' is ours)."""
    if not isinstance(expr, sympy.Expr):
        raise SpecError(f"phi needs a sympy expression in x, got {type(expr).__name__}")
    expr = expr.xreplace({s: x for s in expr.free_symbols if getattr(s, "name", None) == "x"})
    others = sorted(s.name for s in expr.free_symbols if s != x)
    if others:
        raise SpecError(f"phi(...) may only use the variable x, found {', '.join(others)}")
    return expr


#: sympy heads of a φ that is not smooth: quadrature of such a φ is refused (see phi_rule).
_NON_SMOOTH = (sympy.Max, sympy.Min, sympy.Abs, sympy.Heaviside, sympy.sign, sympy.Piecewise,
               sympy.floor, sympy.ceiling, sympy.frac)


#: functions continuous on all of ℝ (an expression built from them, x, numbers, +, ×, and
#: powers with natural exponents or a positive constant base is continuous on ℝ)
_CONTINUOUS = (sympy.sin, sympy.cos, sympy.exp, sympy.tanh, sympy.sinh, sympy.cosh, sympy.atan,
               sympy.erf, sympy.erfc, sympy.Abs, sympy.Max, sympy.Min)
#: the bound on sympy's domain computation for the other φ (see _not_gaussian_integrable)
#: (continuous_domain takes 1.5 s at function depth 4, 3.7 s at 6, 27 s at 8, log(2 + tanh(.))
#: nested; long sums are cheap: 30 terms 1/(2 + sin(kx)) in 0.3 s)
MAX_DOMAIN_OPS, MAX_DOMAIN_DEPTH = 200, 6
#: the most operations (sympy.count_ops) of any φ, after composition: bounds the symbolic work
#: (φ', printing) per expression; a 1000-operation sum of sines takes ~2 s
MAX_PHI_OPS = 1000


def _continuous_everywhere(expr: sympy.Expr) -> bool:
    """True when ``expr`` is continuous on ℝ by construction (a sufficient, linear-time test)."""
    if expr.is_Number or expr == x or (expr.is_Atom and not expr.free_symbols
                                       and expr.is_real):
        return True
    if expr.is_Add or expr.is_Mul or isinstance(expr, _CONTINUOUS):
        return all(_continuous_everywhere(a) for a in expr.args)
    if expr.is_Pow:
        base, exp = expr.args
        if exp.is_Integer and exp >= 0:
            return _continuous_everywhere(base)
        return bool(base.is_positive and not base.free_symbols) and _continuous_everywhere(exp)
    return False


def _depth(expr: sympy.Expr) -> int:
    """Nesting depth of function applications and powers (sums and products do not count)."""
    inner = max((_depth(a) for a in expr.args), default=0)
    return inner + (1 if isinstance(expr, (sympy.Function, sympy.Pow)) else 0)


def _not_gaussian_integrable(expr: sympy.Expr) -> Optional[str]:
    """Why E[φ(u)²] is not finite for a Gaussian u, or None when no reason is found: a pole,
    branch point or gap in the real domain (1/x, tan x, sqrt(x), log x), or growth like
    exp(c x²) (exp(x**2), cosh(x**2)). The domain comes from sympy's continuous_domain, with
    erf/erfc (which sympy's domain finder does not know) replaced by the equally continuous atan;
    when sympy cannot decide, the run-time quadrature estimate is the remaining check."""
    from sympy.calculus.util import continuous_domain
    for atom in expr.atoms(sympy.exp, sympy.cosh, sympy.sinh):
        arg = atom.args[0]
        if arg.is_polynomial(x) and sympy.degree(arg, x) >= 2:
            lead = sympy.Poly(arg, x).LC()
            if sympy.degree(arg, x) > 2 or (lead.is_real and lead > 0) \
                    or not isinstance(atom, sympy.exp):
                return f"grows like {sympy.sstr(atom)}"
    if _continuous_everywhere(expr):
        return None  # built from functions continuous on ℝ: no domain to compute
    ops, depth = sympy.count_ops(expr), _depth(expr)
    if ops > MAX_DOMAIN_OPS or depth > MAX_DOMAIN_DEPTH:
        # sympy's continuous_domain is exponential in the nesting depth
        raise SpecError(
            f"phi(...) has divisions, roots, logarithms or other functions with a restricted "
            f"domain, and is too large for kernelc to check that E[φ(u)²] is finite ({ops} "
            f"operations, functions nested {depth} deep; the checkable limit is "
            f"{MAX_DOMAIN_OPS} operations and depth {MAX_DOMAIN_DEPTH}), so it is refused",
            suggestion="write φ with fewer nested functions, or with functions continuous on "
                       "ℝ only (sin, cos, exp, tanh, erf, atan, polynomials, ...)")
    probe = expr.replace(sympy.erf, sympy.atan).replace(sympy.erfc, sympy.atan)
    try:
        domain = continuous_domain(probe, x, sympy.S.Reals)
    except (NotImplementedError, ValueError, TypeError, RecursionError):
        return None
    if domain != sympy.S.Reals:
        return f"is not continuous on all of ℝ (it is on {sympy.sstr(domain)[:80]})"
    return None


def _piecewise_linear_slopes(expr: sympy.Expr):
    """(a, b) when φ(x) = a x for x > 0 and b x for x < 0 (relu, |x|, leaky relu and all their
    compositions, e.g. leaky_relu(0.1)∘leaky_relu(0.2) = leaky_relu(0.02)), else None."""
    if not expr.atoms(*_NON_SMOOTH):
        return None
    t = sympy.Symbol("t", positive=True)
    a = sympy.simplify(expr.subs(x, t) / t)
    b = sympy.simplify(expr.subs(x, -t) / -t)
    if a.free_symbols or b.free_symbols or not (a.is_real and b.is_real):
        return None
    return a, b


def _piecewise_linear_map(name: str, phi: sympy.Expr, a, b) -> KernelMap:
    """φ(x) = a x (x > 0), b x (x < 0), i.e. φ = b x + (a − b) relu(x):

        K⁺ = (b² + b (a − b)) k12 + (a − b)² K_relu     (E[u relu(v)] = k12/2),

    the leaky-relu form with any two slopes."""
    m, c = b, a - b
    nngp = (m**2 + m * c) * k12 + c**2 * _relu_nngp()
    return KernelMap(name, phi, "closed form", nngp, _price(nngp),
                     fast_angles=_two_slope_fast(a, b))


@rule("phi")
def phi_rule(args, expr, quad_degree):
    """φ given as an expression in x. A table φ (e.g. Max(0, x)) reuses its closed form; a
    polynomial gets exact moments; anything else 2-d Gauss–Hermite quadrature of degree n for
    E[φ(u)φ(v)] and E[φ'(u)φ'(v)], φ' = sympy.diff(φ, x)."""
    if args:
        raise SpecError("phi takes one expression in x, e.g. phi(x*sigmoid(x))")
    if expr is None:
        raise SpecError("phi needs an expression in x, e.g. phi(x*sigmoid(x))")
    expr = _as_phi(expr)
    return expression_map(f"phi({sympy.sstr(expr)})", expr, quad_degree)


def expression_map(name: str, expr: sympy.Expr, quad_degree: int) -> KernelMap:
    """The kernel map of φ = ``expr`` (in x): a table entry's closed form, exact moments for a
    polynomial, the two-slope closed form for a piecewise-linear φ, Gauss–Hermite quadrature of
    degree ``quad_degree`` for any other smooth φ; a non-smooth φ without a closed form is
    refused (:class:`SpecError`)."""
    ops = sympy.count_ops(expr)
    if ops > MAX_PHI_OPS:
        short = name if len(name) <= 60 else name[:59] + "…"
        raise SpecError(f"{short} has {ops} operations, more than the {MAX_PHI_OPS} kernelc "
                        "treats symbolically (its derivative and printed maps grow with it)",
                        suggestion="split it into smaller nonlinearities with weight layers "
                                   "between them")
    for entry in ("identity", "relu", "abs", "erf", "sin", "cos", "gelu"):
        known = NONLINEARITIES[entry]((), None, quad_degree)
        if known.phi == expr:
            return dataclasses.replace(known, name=name)
    if expr.is_polynomial(x):
        coeffs = sympy.Poly(expr, x).all_coeffs()[::-1]
        return _polynomial_map(name, coeffs)
    slopes = _piecewise_linear_slopes(expr)
    if slopes is not None:
        return _piecewise_linear_map(name, expr, *slopes)
    problem = _not_gaussian_integrable(expr)
    if problem:
        raise SpecError(f"{name} {problem}, so E[φ(u)φ(v)] over a Gaussian is not a finite "
                        "number kernelc can compute; it is refused",
                        suggestion="use a φ that is continuous on all of ℝ and grows slower "
                                   "than exp(c·x²)")
    kinks = sorted({type(a).__name__ for a in expr.atoms(*_NON_SMOOTH)})
    if kinks:
        raise SpecError(
            f"{name} is not smooth ({', '.join(kinks)}) and has no closed form in the rules "
            "table; Gauss–Hermite quadrature of a kinked φ converges too slowly to be exact "
            "(relu∘sin at n=32 is ~2% off in K⁺ and ~20% in K̇), so it is refused",
            suggestion="put a weight layer between the nonlinearities, or use a smooth φ "
                       "(e.g. gelu in place of relu)")
    # the callers (kernel_map, compose) print it through _checked: an untranslatable φ or φ'
    # fails there, not at run time
    return KernelMap(name, expr, f"gauss-hermite(n={quad_degree})", None, None, quad_degree)


def compose(outer: KernelMap, inner: KernelMap, quad_degree: int = 32) -> KernelMap:
    """φ₂∘φ₁ as one nonlinearity of the Gaussian pre-activation u of φ₁:

        K⁺ = E[φ₂(φ₁(u)) φ₂(φ₁(v))],  K̇ = E[(φ₂∘φ₁)'(u) (φ₂∘φ₁)'(v)],  (u, v) ~ N(0, Λ),

    so Θ⁺ = K̇ ⊙ Θ with the NTK Θ of u (chain rule). φ₁(u) is not Gaussian, which is why the
    outer map cannot be applied to φ₁'s kernel. The composed expression is looked up like any
    phi(...): a table entry keeps its closed form (relu∘relu = relu, abs∘relu = relu,
    relu∘abs = abs: sympy simplifies Max(0, Max(0, x)) and |max(0, x)| itself), a polynomial
    gets exact Gaussian moments, anything else Gauss–Hermite quadrature of degree ``quad_degree``.
    """
    expr = outer.phi.subs(x, inner.phi)
    if expr.is_polynomial(x) and sympy.degree(expr, x) > MAX_POLY_DEGREE:
        raise SpecError(f"{outer.name}∘{inner.name} is a polynomial of degree "
                        f"{sympy.degree(expr, x)}, above {MAX_POLY_DEGREE}; its exact "
                        "kernel would take too long",
                        suggestion="put a weight layer between the two nonlinearities, or "
                                   "lower the polynomials' degrees")
    return _checked(expression_map(f"{outer.name}∘{inner.name}", expr, quad_degree))


def kernel_map(name: str, args: tuple = (), expr: Optional[sympy.Expr] = None,
               quad_degree: int = 32) -> KernelMap:
    """The (K⁺, K̇) rule of nonlinearity ``name``; SpecError for unknown names or bad args."""
    if not isinstance(args, (tuple, list)):
        raise SpecError(f"arguments of '{name}' must be a tuple, got {type(args).__name__}")
    builder = NONLINEARITIES.get(name)
    if builder is None:
        raise SpecError(f"unknown nonlinearity '{name}'", expected=NONLINEARITIES,
                        suggestion=did_you_mean(name, NONLINEARITIES))
    if isinstance(quad_degree, bool) or not isinstance(quad_degree, (int, np.integer)) \
            or not 1 <= quad_degree <= _MAX_QUAD_DEGREE:
        raise SpecError(f"quadrature degree must be an integer in 1..{_MAX_QUAD_DEGREE}, "
                        f"got {quad_degree!r}")
    return _checked(builder(tuple(args), expr, int(quad_degree)))


def _checked(kmap: KernelMap) -> KernelMap:
    """``kmap`` once its code prints: a coefficient beyond the double range (phi(1e200*x)) or an
    untranslatable function fails here, where the front end can point at the layer, not in
    code generation."""
    kmap.emit_jax("k11", "k12", "k22")
    return kmap
