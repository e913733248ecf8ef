"""Print sympy kernel maps as guarded JAX source text.

``jax_code(expr, names)`` turns a sympy expression into one Python expression over ``jnp``
(``jax.numpy``), ``jsp`` (``jax.scipy.special``) and the helpers of :mod:`kernelc.runtime.maps`:

* ``sqrt(a)``          -> ``safe_sqrt(a)``   = sqrt(max(a, 0)), zero gradient at a <= 0;
* ``a / b``            -> ``safe_div(a, b)`` = a/b, and 0 where b == 0 (zero-variance inputs);
* ``acos(c), asin(c)`` -> ``safe_acos(c)``, ``safe_asin(c)``: c clipped into [-1, 1], finite
  gradient at |c| = 1; a ratio ``n/√q`` (a correlation) -> ``acos_ratio(n, q)`` =
  atan2(√(q − n²), n), which stays exact at correlation ±1;
* a determinant under a root, ``(p − c·n²)^(k/2)`` with c a rational square (the relu/erf/gelu
  ``√(k11 k22 − k12²)``) -> ``sqrt_det(p, m)**k``, m = √c·n: with s = √p it is
  √((s − m)(s + m)), free of cancellation. The same helper gives √(q − n²) inside
  ``acos_ratio``/``asin_ratio``. For a self pair (k11 = k22 = k12 = a, bit-identical)
  √(fl(a·a)) = a exactly in IEEE arithmetic, so the determinant is exactly 0 and the angle exactly
  0; the naive ``k11*k22 - k12**2`` is contracted under jit into a fused multiply-add that leaves
  the rounding error of a·a (~1e-16 a²), i.e. an angle of ~1e-8 instead of 0 and a K̇ off by
  ~1e-9 (see docs/pipeline/5-plan-codegen-runtime.md, "Exact diagonals"). When p (or q) is a
  product a·b of two variances, the scaled forms ``sqrt_det2(a, b, m)``,
  ``acos_ratio2(n, a, b)``, ``asin_ratio2(n, a, b)`` divide everything by c = max(|a|, |b|)
  first: k11·k22 of tiny inputs (1e-10 in float32, 1e-78 in float64) no longer underflows, and
  a self pair (a = b = n) still gives exactly 1·1 − 1² = 0;
* the helpers named in ``fast_angles`` (``KernelMap.fast_angles``: ``acos_ratio2`` and
  ``sqrt_det2`` for relu and leaky_relu(α ≥ 0), ``asin_ratio2`` for erf and gelu) print as
  their fast twins ``fast_acos_ratio2``, ``fast_sqrt_det2``, ``fast_asin_ratio2``: the same
  values, by a polynomial arc-cosine/arcsine when kernel_fn's ``fast_maps`` allows it
  (docs/math/fast-maps.md);
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
# Functions whose domain is restricted get a guarded helper of kernelc.runtime.maps instead.
_GUARDED_FUNCTIONS = {"acos": "safe_acos", "asin": "safe_asin"}


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
    _default_settings = dict(StrPrinter._default_settings, names=None, fast_angles=())

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
            return f"safe_div(1, {self._print(sympy.Pow(base, -e))})"
        if e.is_Rational and e.q == 2:
            det = _determinant(base)
            if det is not None:  # √(p − m²) without cancellation: exact 0 at correlation ±1
                p, m = det
                pair = _two_factors(p)
                root = (f"sqrt_det({self._print(p)}, {self._print(m)})" if pair is None else
                        f"{self._fast('sqrt_det2')}sqrt_det2({self._print(pair[0])}, "
                        f"{self._print(pair[1])}, {self._print(m)})")
            else:
                root = f"safe_sqrt({self._print(base)})"
            return root if e.p == 1 else f"{root}**{e.p}"
        return super()._print_Pow(expr, rational=rational)

    def _print_Mul(self, expr):
        num, den = _numer_denom(expr)
        if not den.free_symbols:
            # constant denominators (2*pi, ...) cannot vanish: plain division reads better
            return super()._print_Mul(expr)
        return f"safe_div({self._print(num)}, {self._print(den)})"

    def _fast(self, helper: str) -> str:
        # the helpers the map's entry names in fast_angles print as their fast twins
        # (fast_acos_ratio2, ...), which take a polynomial angle when kernel_fn's fast_maps is
        # on (docs/math/fast-maps.md)
        return "fast_" if helper in self._settings["fast_angles"] else ""

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
                    return (f"{self._fast(name + '_ratio2')}{name}_ratio2({self._print(num)}, "
                            f"{self._print(pair[0])}, {self._print(pair[1])})")
                return f"{name}_ratio({self._print(num)}, {self._print(q)})"
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


#: the helpers of kernelc.runtime.maps with a fast twin fast_<name> (docs/math/fast-maps.md)
FAST_HELPERS = ("acos_ratio2", "asin_ratio2", "sqrt_det2")


def jax_code(expr: sympy.Expr, names: dict, fast_angles: tuple = ()) -> str:
    """Guarded JAX source text of ``expr``; ``names[symbol]`` is the variable each symbol reads.
    ``fast_angles``: the helpers (``"acos_ratio2"``, ``"asin_ratio2"``, ``"sqrt_det2"``) to print
    as their fast twins ``fast_*`` (for the maps whose proven fast-angle bound holds, see
    :class:`kernelc.rules.nonlinearities.KernelMap`)."""
    unknown = set(fast_angles) - set(FAST_HELPERS)
    if unknown:
        raise ValueError(f"no fast twin of {sorted(unknown)}; known: {FAST_HELPERS}")
    return _jax_code(sympy.sympify(expr, strict=True), tuple(names.items()),
                     tuple(sorted(fast_angles)))


@functools.lru_cache(maxsize=4096)
def _jax_code(expr: sympy.Expr, names: tuple, fast_angles: tuple = ()) -> str:
    # cached: a stack of 3,000 relu layers prints the same two maps 3,000 times
    return JaxKernelPrinter({"names": dict(names), "fast_angles": fast_angles}).doprint(expr)
