"""Print sympy kernel maps as guarded JAX source text.

``jax_code(expr, names)`` turns a sympy expression into one Python expression over ``jnp``
(``jax.numpy``), ``jsp`` (``jax.scipy.special``) and the helpers of :data:`PRELUDE`:

* ``sqrt(a)``          -> ``_safe_sqrt(a)``   = sqrt(max(a, 0)), zero gradient at a <= 0;
* ``a / b``            -> ``_safe_div(a, b)`` = a/b, and 0 where b == 0 (zero-variance inputs);
* ``acos(c), asin(c)`` -> ``_safe_acos(c)``, ``_safe_asin(c)``: c clipped into [-1, 1], finite
  gradient at |c| = 1; a ratio ``n/√q`` (a correlation) -> ``_acos_ratio(n, q)`` =
  atan2(√(q − n²), n), which stays exact at correlation ±1;
* a determinant under a root, ``(p − c·n²)^(k/2)`` with c a rational square (the relu/erf/gelu
  ``√(k11 k22 − k12²)``) -> ``_sqrt_det(p, m)**k``, m = √c·n: with s = √p it is
  √((s − m)(s + m)), free of cancellation. The same helper gives √(q − n²) inside
  ``_acos_ratio``/``_asin_ratio``. For a self pair (k11 = k22 = k12 = a, bit-identical)
  √(fl(a·a)) = a exactly in IEEE arithmetic, so the determinant is exactly 0 and the angle exactly
  0; the naive ``k11*k22 - k12**2`` is contracted under jit into a fused multiply-add that leaves
  the rounding error of a·a (~1e-16 a²), i.e. an angle of ~1e-8 instead of 0 and a K̇ off by
  ~1e-9 (see docs/pipeline/5-plan-codegen-runtime.md, "Exact diagonals"). When p (or q) is a
  product a·b of two variances, the scaled forms ``_sqrt_det2(a, b, m)``,
  ``_acos_ratio2(n, a, b)``, ``_asin_ratio2(n, a, b)`` divide everything by c = max(|a|, |b|)
  first: k11·k22 of tiny inputs (1e-10 in float32, 1e-78 in float64) no longer underflows, and
  a self pair (a = b = n) still gives exactly 1·1 − 1² = 0;
* ``erf`` -> ``jsp.erf``, ``pi`` -> ``jnp.pi``, ``Max`` -> ``jnp.maximum``, ``Piecewise`` ->
  ``jnp.where`` ...

Only names common to ``numpy``/``scipy.special`` and ``jax.numpy``/``jax.scipy.special`` are
used, so the same text runs on either backend (the numpy float64 reference evaluates it with
``jnp = numpy``). Unknown functions raise :class:`~kernelc.errors.SpecError`. The output is
deterministic: sympy's canonical term order, nothing depending on hashing or memory addresses.
"""
from __future__ import annotations

import functools
import math

import sympy
from sympy.printing.precedence import PRECEDENCE
from sympy.printing.str import StrPrinter

from kernelc.errors import SpecError

# sympy function name -> array function with the same meaning on both backends.
_PLAIN_FUNCTIONS = {
    "exp": "jnp.exp", "log": "jnp.log", "sin": "jnp.sin", "cos": "jnp.cos", "tan": "jnp.tan",
    "sinh": "jnp.sinh", "cosh": "jnp.cosh", "tanh": "jnp.tanh", "atan": "jnp.arctan",
    "asinh": "jnp.arcsinh", "acosh": "jnp.arccosh", "atanh": "jnp.arctanh", "Abs": "jnp.abs",
    "sign": "jnp.sign", "floor": "jnp.floor", "ceiling": "jnp.ceil", "erf": "jsp.erf",
    "erfc": "jsp.erfc", "atan2": "jnp.arctan2",
}
# Functions whose domain is restricted get a guarded helper from PRELUDE instead.
_GUARDED_FUNCTIONS = {"acos": "_safe_acos", "asin": "_safe_asin"}


def _numer_denom(expr: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """Split a product into numerator and denominator without expanding or combining anything."""
    numer, denom = [], []
    for factor in sympy.Mul.make_args(expr):
        if factor.is_Pow and factor.exp.is_Rational and factor.exp.is_negative:
            denom.append(sympy.Pow(factor.base, -factor.exp))
        elif factor.is_Rational and factor.q != 1:
            numer.append(sympy.Integer(factor.p))
            denom.append(sympy.Integer(factor.q))
        else:
            numer.append(factor)
    return sympy.Mul(*numer), sympy.Mul(*denom)


def _has_radical(expr: sympy.Expr) -> bool:
    return any(not p.exp.is_Integer for p in expr.atoms(sympy.Pow))


def _determinant(base: sympy.Expr):
    """(p, m) when ``base`` is p − m² written as a two-term sum p − c·n² (c > 0 a rational
    square, m = √c·n), e.g. k11*k22 − k12**2 or (2k11 + 1)(2k22 + 1) − 4k12**2; else None."""
    if not base.is_Add or len(base.args) != 2:
        return None
    for i, term in enumerate(base.args):
        coeff, rest = term.as_coeff_Mul()
        if not (coeff.is_Rational and coeff.is_negative and rest.is_Pow and rest.exp == 2):
            continue
        root = sympy.sqrt(-coeff)
        if not root.is_Rational:
            continue
        return base.args[1 - i], root * rest.base
    return None


def _two_factors(p: sympy.Expr):
    """(a, b) when ``p`` is a product a·b of two non-constant factors with coefficient 1
    (k11*k22, (2k11 + 1)(2k22 + 1)), else None: the helpers then form a·b scaled by
    max(|a|, |b|), which does not underflow for tiny variances."""
    if not p.is_Mul:
        return None
    coeff, rest = p.as_coeff_Mul()
    if coeff != 1 or not rest.is_Mul or len(rest.args) != 2:
        return None
    a, b = rest.args
    return (a, b) if a.free_symbols and b.free_symbols else None


class JaxKernelPrinter(StrPrinter):
    """StrPrinter that writes guarded ``jnp`` code; ``names`` maps each sympy Symbol to a variable."""

    printmethod = "_kernelc_jax"
    _default_settings = dict(StrPrinter._default_settings, names=None)

    # -- atoms -------------------------------------------------------------------------------
    def _print_Symbol(self, expr):
        names = self._settings["names"] or {}
        if expr not in names:
            raise SpecError(f"no variable name given for symbol '{expr.name}' in generated code")
        return names[expr]

    def _print_Pi(self, expr):
        return "jnp.pi"

    def _print_Exp1(self, expr):
        return "jnp.e"

    def _print_Infinity(self, expr):
        return "jnp.inf"

    def _print_NegativeInfinity(self, expr):
        return "-jnp.inf"

    def _print_NaN(self, expr):
        return "jnp.nan"

    def _print_Float(self, expr):
        # repr of the double: shortest round-tripping text, e.g. 0.1 rather than 0.100000000000000
        return _double(expr)

    def _print_Integer(self, expr):
        # a Python int beyond int32 next to a JAX array overflows JAX's (x32) conversion: write
        # it as a double (exact up to 2**53, relative 1e-16 beyond)
        return str(int(expr)) if abs(int(expr)) < 2**31 else _double(expr)

    def _print_Rational(self, expr):
        if max(abs(int(expr.p)), abs(int(expr.q))) < 2**31:
            return super()._print_Rational(expr)
        return _double(expr)

    def _print_BooleanTrue(self, expr):
        return "True"

    def _print_BooleanFalse(self, expr):
        return "False"

    def _print_ImaginaryUnit(self, expr):
        raise SpecError("kernel maps must be real; cannot generate code for the imaginary unit")

    # -- arithmetic --------------------------------------------------------------------------
    def _print_Pow(self, expr, rational=False):
        base, e = expr.as_base_exp()
        if e.is_Rational and e.is_negative and base.free_symbols:
            # a**-p = 1 / a**p, with the division guarded against a == 0
            return f"_safe_div(1, {self._print(sympy.Pow(base, -e))})"
        if e.is_Rational and e.q == 2:
            det = _determinant(base)
            if det is not None:  # √(p − m²) without cancellation: exact 0 at correlation ±1
                p, m = det
                pair = _two_factors(p)
                root = (f"_sqrt_det({self._print(p)}, {self._print(m)})" if pair is None else
                        f"_sqrt_det2({self._print(pair[0])}, {self._print(pair[1])}, "
                        f"{self._print(m)})")
            else:
                root = f"_safe_sqrt({self._print(base)})"
            return root if e.p == 1 else f"{root}**{e.p}"
        return super()._print_Pow(expr, rational=rational)

    def _print_Mul(self, expr):
        num, den = _numer_denom(expr)
        if not den.free_symbols:
            # constant denominators (2*pi, ...) cannot vanish: plain division reads better
            return super()._print_Mul(expr)
        return f"_safe_div({self._print(num)}, {self._print(den)})"

    # -- functions ---------------------------------------------------------------------------
    def _print_Function(self, expr):
        name = type(expr).__name__
        args = ", ".join(self._print(a) for a in expr.args)
        if name in _PLAIN_FUNCTIONS:
            return f"{_PLAIN_FUNCTIONS[name]}({args})"
        if name in _GUARDED_FUNCTIONS:
            num, den = _numer_denom(expr.args[0])
            q = den**2
            if den.free_symbols and den.is_positive and not _has_radical(q):
                # acos(n/√q) = atan2(√(q − n²), n): exact at ρ = ±1, where acos of the rounded
                # ratio k12/√(k11 k22) loses half the digits (√eps error on the diagonal)
                pair = _two_factors(q)
                if pair is not None:  # q = a·b: scaled, so that tiny variances do not underflow
                    return (f"_{name}_ratio2({self._print(num)}, {self._print(pair[0])}, "
                            f"{self._print(pair[1])})")
                return f"_{name}_ratio({self._print(num)}, {self._print(q)})"
            return f"{_GUARDED_FUNCTIONS[name]}({args})"
        raise SpecError(f"no JAX translation for the function '{name}'",
                        expected=sorted(_PLAIN_FUNCTIONS) + sorted(_GUARDED_FUNCTIONS) +
                        ["Heaviside", "Max", "Min", "Piecewise", "sqrt"])

    # sympy prints these through dedicated methods rather than _print_Function
    _print_exp = _print_Function
    _print_log = _print_Function
    _print_Abs = _print_Function
    _print_sign = _print_Function
    _print_erf = _print_Function
    _print_erfc = _print_Function

    def _print_Heaviside(self, expr):
        h0 = expr.args[1] if len(expr.args) > 1 else sympy.S.Half
        return f"jnp.heaviside({self._print(expr.args[0])}, {self._print(h0)})"

    def _print_MinMax(self, expr, fn):
        # sympy orders Max/Min arguments canonically, so the nesting is deterministic
        args = [self._print(a) for a in expr.args]
        out = args[0]
        for a in args[1:]:
            out = f"{fn}({out}, {a})"
        return out

    def _print_Max(self, expr):
        return self._print_MinMax(expr, "jnp.maximum")

    def _print_Min(self, expr):
        return self._print_MinMax(expr, "jnp.minimum")

    def _print_Piecewise(self, expr):
        pieces = list(expr.args)
        if pieces[-1].cond != sympy.true:
            raise SpecError("a Piecewise expression needs an 'otherwise' branch to become array code")
        out = self._print(pieces[-1].expr)
        for piece in reversed(pieces[:-1]):
            out = f"jnp.where({self._print(piece.cond)}, {self._print(piece.expr)}, {out})"
        return out

    def _print_Relational(self, expr):
        lhs = self.parenthesize(expr.lhs, PRECEDENCE["Relational"])
        rhs = self.parenthesize(expr.rhs, PRECEDENCE["Relational"])
        return f"({lhs} {expr.rel_op} {rhs})"

    def _print_And(self, expr):
        return self._print_MinMax(expr, "jnp.logical_and")

    def _print_Or(self, expr):
        return self._print_MinMax(expr, "jnp.logical_or")

    def _print_Not(self, expr):
        return f"jnp.logical_not({self._print(expr.args[0])})"


def _double(expr) -> str:
    """repr of a finite double, or a SpecError: a kernel-map coefficient beyond the double range
    (e.g. phi(1e200*x), whose K⁺ has 1e400) would print as the name 'inf'."""
    value = float(expr)
    if not math.isfinite(value):
        raise SpecError(f"a coefficient of the kernel map, {sympy.sstr(expr)[:40]}, is beyond the "
                        "range of a double (about 1.8e308)",
                        suggestion="rescale φ or the weights so that its coefficients stay "
                                   "below ~1e150")
    return repr(value)


def jax_code(expr: sympy.Expr, names: dict) -> str:
    """Guarded JAX source text of ``expr``; ``names[symbol]`` is the variable each symbol reads."""
    return _jax_code(sympy.sympify(expr, strict=True), tuple(names.items()))


@functools.lru_cache(maxsize=4096)
def _jax_code(expr: sympy.Expr, names: tuple) -> str:
    # cached: a stack of 3,000 relu layers prints the same two maps 3,000 times
    return JaxKernelPrinter({"names": dict(names)}).doprint(expr)


PRELUDE_IMPORTS = "import jax.numpy as jnp\nimport jax.scipy.special as jsp\n"

# Helpers the generated expressions call. Written against ``jnp`` only (plus a local numpy import
# for the Gauss-Hermite nodes, computed once per trace in float64), so that the same text also
# runs with ``jnp = numpy`` for the float64 reference. The double-``where`` idiom keeps both the
# value and the gradient finite at the guarded points (jnp.where differentiates both branches).
PRELUDE_BODY = '''
def _safe_sqrt(a):
    """sqrt(max(a, 0)); gradient 0 (not inf/NaN) where a <= 0."""
    pos = a > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, a, 1)), 0)


def _sqrt_det(p, m):
    """sqrt(max(p - m^2, 0)) as sqrt((s - m)(s + m)), s = sqrt(max(p, 0)): no cancellation, and
    no fused multiply-add can leave the rounding error of p = fl(a*a) behind, since
    sqrt(fl(a*a)) == |a| exactly in IEEE arithmetic. So for p = a*a, m = a (a self pair,
    correlation 1) the result is exactly 0. p <= 0 gives 0; gradients stay finite (_safe_sqrt)."""
    s = _safe_sqrt(p)
    return _safe_sqrt((s - m) * (s + m))


def _safe_div(a, b):
    """a / b, and 0 where b == 0 (a correlation of a zero-variance input counts as 0)."""
    nonzero = b != 0
    return jnp.where(nonzero, a / jnp.where(nonzero, b, 1), 0)


def _clip_corr(c):
    """Correlation clipped into [-1, 1] (round-off can push k12/sqrt(k11 k22) past 1)."""
    return jnp.clip(c, -1, 1)


def _safe_acos(c):
    """arccos of c clipped into [-1, 1]; finite gradient at |c| >= 1; NaN passes through."""
    inside = jnp.abs(c) < 1
    edge = jnp.where(c >= 1, 0.0, jnp.where(c <= -1, jnp.pi, c))
    return jnp.where(inside, jnp.arccos(jnp.where(inside, c, 0)), edge)


def _safe_asin(c):
    """arcsin of c clipped into [-1, 1]; finite gradient at |c| >= 1; NaN passes through."""
    inside = jnp.abs(c) < 1
    edge = jnp.where(c >= 1, jnp.pi / 2, jnp.where(c <= -1, -jnp.pi / 2, c))
    return jnp.where(inside, jnp.arcsin(jnp.where(inside, c, 0)), edge)


def _acos_ratio(n, q):
    """arccos(n / sqrt(q)) as atan2(sqrt(q - n^2), n): exact at n^2 = q (correlation +-1; the
    determinant by _sqrt_det, so exactly 0 for q = fl(n*n)), implicitly clipped to [-1, 1];
    q = n = 0 (zero variance) counts as correlation 0."""
    s = _sqrt_det(q, n)
    degenerate = (s == 0) & (n == 0)
    return jnp.where(degenerate, jnp.pi / 2, jnp.arctan2(s, jnp.where(degenerate, 1, n)))


def _asin_ratio(n, q):
    """arcsin(n / sqrt(q)) as atan2(n, sqrt(q - n^2)); same guards as _acos_ratio."""
    s = _sqrt_det(q, n)
    degenerate = (s == 0) & (n == 0)
    return jnp.where(degenerate, 0.0, jnp.arctan2(n, jnp.where(degenerate, 1, s)))


def _pair_scale(a, b):
    """max(|a|, |b|), and 1 where both are 0: the scale of a product a*b of two variances."""
    c = jnp.maximum(jnp.abs(a), jnp.abs(b))
    return jnp.where(c > 0, c, 1)


def _correlation_one(n, a, b):
    """a = b = |n| bit for bit: a self pair, correlation exactly +-1. Tested explicitly because
    XLA's vectorised float64 division on CPU is not correctly rounded (v / v gave
    0.9999999999999999), so the scaled forms below cannot rely on a/c == 1."""
    return (a == b) & (jnp.abs(n) == a)


def _sqrt_det2(a, b, m):
    """sqrt(max(a*b - m^2, 0)) as c * _sqrt_det((a/c)(b/c), m/c), c = max(|a|, |b|): a*b of two
    tiny variances (1e-160 each in float64, 1e-20 in float32) underflows, the scaled product
    does not; a self pair (a = b = |m|) gives exactly 0."""
    c = _pair_scale(a, b)
    return jnp.where(_correlation_one(m, a, b), 0.0, c * _sqrt_det((a / c) * (b / c), m / c))


def _acos_ratio2(n, a, b):
    """arccos(n / sqrt(a*b)) = _acos_ratio(n/c, (a/c)(b/c)), c = max(|a|, |b|) (no underflow);
    exactly 0 (pi) at a self pair with n = a (n = -a)."""
    c = _pair_scale(a, b)
    edge = jnp.where(n > 0, 0.0, jnp.pi)
    return jnp.where(_correlation_one(n, a, b) & (a > 0), edge,
                     _acos_ratio(n / c, (a / c) * (b / c)))


def _asin_ratio2(n, a, b):
    """arcsin(n / sqrt(a*b)) = _asin_ratio(n/c, (a/c)(b/c)), c = max(|a|, |b|) (no underflow);
    exactly +-pi/2 at a self pair."""
    c = _pair_scale(a, b)
    edge = jnp.where(n > 0, jnp.pi / 2, -jnp.pi / 2)
    return jnp.where(_correlation_one(n, a, b) & (a > 0), edge,
                     _asin_ratio(n / c, (a / c) * (b / c)))


def _broadcast(value, k11, k12, k22):
    """value as a float array of the broadcast shape of (k11, k12, k22): constant maps keep shape."""
    dtype = jnp.result_type(k11, k12, k22, 1.0)
    shape = jnp.broadcast_shapes(jnp.shape(k11), jnp.shape(k12), jnp.shape(k22))
    return jnp.broadcast_to(jnp.asarray(value, dtype=dtype), shape)


def _sum_over_nodes(term, total, z, w):
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
#: accuracy estimate seen since kernel_fn last cleared it (see _quadrature_estimate)
_QUADRATURE_ERRORS = {}


def _record_quadrature(label, n, error, scale):
    """Keep the worst (error, scale) of the map ``label`` (called from inside jit as a callback)."""
    import numpy as _np
    error, scale = float(_np.max(error)), float(_np.max(scale))
    old = _QUADRATURE_ERRORS.get(label)
    if old is None or error * max(old[1], 1e-300) > old[0] * max(scale, 1e-300):
        _QUADRATURE_ERRORS[label] = (error, scale, n)


def _hermite_rule(n):
    """Probabilists' Gauss-Hermite nodes and weights (summing to 1) by Golub-Welsch: the
    eigenvalues of the Jacobi matrix of He_n and the squared first eigenvector components
    (stable for any n, where numpy's hermegauss overflows past n ~ 400)."""
    import numpy as _np
    off = _np.sqrt(_np.arange(1, n, dtype=_np.float64))
    nodes, vectors = _np.linalg.eigh(_np.diag(off, 1) + _np.diag(off, -1))
    weights = vectors[0] ** 2
    return nodes, weights / weights.sum()


def _quadrature_estimate(phi, k, n, label):
    """Accuracy of the n-point rule where it is worst, on the diagonal: I_m(k) = sum_i w_i
    phi(sqrt(k) z_i)^2 = E[phi(u)^2] by the m-point rule; |I_n - I_2n| estimates the n-point
    error (the 2n-point rule is far more accurate for a smooth phi), and it bounds the
    off-diagonal error of the 2-d rule, which reduces to I_n at correlation 1. Recorded with
    max I_2n under ``label``; kernel_fn warns when the relative error is above tolerance."""
    dtype = jnp.result_type(k, 1.0)
    s = _safe_sqrt(jnp.asarray(k, dtype=dtype))
    estimates = [_sum_over_nodes(lambda zi, wi: wi * phi(s * zi) ** 2,
                                 jnp.zeros(jnp.shape(s), dtype=dtype), *_hermite_rule(m))
                 for m in (n, 2 * n)]
    error = jnp.max(jnp.abs(estimates[0] - estimates[1]))
    scale = jnp.max(jnp.abs(estimates[1]))
    if jnp.__name__.startswith("jax"):
        import functools
        import jax
        jax.debug.callback(functools.partial(_record_quadrature, label, n), error, scale)
    else:
        _record_quadrature(label, n, error, scale)


def _gauss_hermite_2d(phi, k11, k12, k22, n, label="phi"):
    """E[phi(u) phi(v)], (u, v) ~ N(0, [[k11, k12], [k12, k22]]), by n x n Gauss-Hermite.

    Probabilists' nodes z_i, weights w_i / sqrt(2 pi); u = sqrt(k11) z1,
    v = sqrt(k22) (rho z1 + sqrt(1 - rho^2) z2), rho = k12 / sqrt(k11 k22) clipped to [-1, 1].
    The outer sum is a loop (lax.scan under JAX) so memory stays at n times the input size.
    The rule's accuracy at the variances k11 is estimated and recorded under ``label``
    (_quadrature_estimate): quadrature is not exact, and kernel_fn says so when it matters.
    """
    import numpy as _np
    _quadrature_estimate(phi, k11, n, label)
    z, w = _np.polynomial.hermite_e.hermegauss(n)
    w = w / _np.sqrt(2 * _np.pi)
    dtype = jnp.result_type(k11, k12, k22, 1.0)
    shape = jnp.broadcast_shapes(jnp.shape(k11), jnp.shape(k12), jnp.shape(k22))
    s11 = _safe_sqrt(jnp.asarray(k11, dtype=dtype))
    s22 = _safe_sqrt(jnp.asarray(k22, dtype=dtype))
    # ρ and √(1 − ρ²) from s = √(k11 k22) and the cancellation-free determinant: a self pair
    # (k11 = k22 = k12 bit-identical) gets ρ = 1 and √(1 − ρ²) = 0 exactly (1 − ρ² from a ρ one
    # ulp off 1 is ~1e-8, which moves every node v and the result by ~1e-7)
    k12 = jnp.asarray(k12, dtype=dtype)
    p = jnp.asarray(k11, dtype=dtype) * jnp.asarray(k22, dtype=dtype)
    s12 = _safe_sqrt(p)
    rho = _clip_corr(_safe_div(k12, s12))
    rho_c = jnp.minimum(_safe_div(_sqrt_det(p, k12), s12), 1)
    z_in = jnp.asarray(z, dtype=dtype)
    w_in = jnp.asarray(w, dtype=dtype)
    b22, b_rho, b_rho_c = s22[..., None], rho[..., None], rho_c[..., None]

    def outer_term(z1, w1):  # w1 phi(u) sum_j w_j phi(v_j) at one outer node z1
        inner = jnp.sum(phi(b22 * (b_rho * z1 + b_rho_c * z_in)) * w_in, axis=-1)
        return w1 * phi(s11 * z1) * inner

    return _sum_over_nodes(outer_term, jnp.zeros(shape, dtype=dtype), z, w)
'''


def prelude(imports: bool = True) -> str:
    """Source of the helper functions generated kernel code calls; ``imports`` adds jnp/jsp."""
    return (PRELUDE_IMPORTS if imports else "") + PRELUDE_BODY
