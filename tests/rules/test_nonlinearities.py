"""The nonlinearity rules table against brute-force Gaussian integration written out here."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy
from scipy import integrate, special

from kernelc.errors import SpecError
from kernelc.rules.nonlinearities import (NONLINEARITIES, compose, k11, k12, k22, kernel_map,
                                          x)
from kernelc.runtime import maps

# (k11, k12, k22): generic, negative, unequal variances with rho near +1 and near -1
LAMBDAS = [
    (1.0, 0.3, 2.0),
    (0.5, -0.45, 1.5),
    (0.7, 0.9995 * math.sqrt(0.7 * 2.5), 2.5),
    (1.5, -0.998 * math.sqrt(1.5 * 0.4), 0.4),
]

_Phi = special.ndtr
_pdf = lambda z: np.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731

# name, args -> (phi, phi'), written independently of kernelc (numpy / scipy)
ENTRIES = {
    ("identity", ()): (lambda z: z, lambda z: np.ones_like(z)),
    ("relu", ()): (lambda z: np.maximum(z, 0), lambda z: (z > 0) * 1.0),
    ("leaky_relu", (0.1,)): (lambda z: np.maximum(z, 0.1 * z), lambda z: np.where(z > 0, 1, 0.1)),
    ("leaky_relu", (2.5,)): (lambda z: np.maximum(z, 2.5 * z), lambda z: np.where(z > 0, 2.5, 1)),
    ("leaky_relu", (-0.5,)): (lambda z: np.maximum(z, -0.5 * z),
                              lambda z: np.where(z > 0, 1, -0.5)),
    ("abs", ()): (np.abs, np.sign),
    ("erf", ()): (special.erf, lambda z: 2 / math.sqrt(math.pi) * np.exp(-z * z)),
    ("sin", ()): (np.sin, np.cos),
    ("cos", ()): (np.cos, lambda z: -np.sin(z)),
    ("gelu", ()): (lambda z: z * _Phi(z), lambda z: _Phi(z) + z * _pdf(z)),
    ("poly", (0.5, -1, 0.25, 0.1)): (lambda z: 0.5 - z + 0.25 * z**2 + 0.1 * z**3,
                                     lambda z: -1 + 0.5 * z + 0.3 * z**2),
}


def brute_expectation(f, K11, K12, K22, n=160, L=10.0):
    """E[f(u) f(v)] by tensor Gauss-Legendre on [-L, L]^2 in whitened coordinates, with the
    z1 range split at 0 and the z2 range split where v = 0, so kinks at 0 sit on panel edges."""
    rho = np.clip(K12 / math.sqrt(K11 * K22), -1, 1)
    rc = math.sqrt(max(1 - rho * rho, 0.0))
    t, w = np.polynomial.legendre.leggauss(n)

    def panel(a, b):  # nodes/weights on [a, b] (arrays broadcast)
        return (b - a) / 2 * t + (a + b) / 2, (b - a) / 2 * w

    z1 = np.concatenate([panel(-L, 0.0)[0], panel(0.0, L)[0]])
    w1 = np.concatenate([panel(-L, 0.0)[1], panel(0.0, L)[1]])
    kink = np.clip(-rho * z1 / rc, -L, L) if rc > 0 else np.zeros_like(z1)
    lo, wlo = panel(-L, kink[:, None])
    hi, whi = panel(kink[:, None], L)
    z2, w2 = np.concatenate([lo, hi], 1), np.concatenate([wlo, whi], 1)
    u = math.sqrt(K11) * z1[:, None]
    v = math.sqrt(K22) * (rho * z1[:, None] + rc * z2)
    dens = _pdf(z1)[:, None] * _pdf(z2)
    return float(np.sum(w1[:, None] * w2 * dens * f(u) * f(v)))


@pytest.mark.parametrize("key", list(ENTRIES), ids=lambda k: f"{k[0]}{k[1]}")
@pytest.mark.parametrize("lam", LAMBDAS)
def test_table_entry_matches_integration(key, lam):
    phi, dphi = ENTRIES[key]
    kmap = kernel_map(*key)
    nngp, ntk = kmap.evaluate(*lam)
    assert nngp == pytest.approx(brute_expectation(phi, *lam), rel=1e-6, abs=1e-12)
    assert ntk == pytest.approx(brute_expectation(dphi, *lam), rel=1e-6, abs=1e-12)


def test_every_entry_is_tested():
    assert {name for name, _ in ENTRIES} | {"phi"} == set(NONLINEARITIES)


@pytest.mark.parametrize("key", list(ENTRIES), ids=lambda k: f"{k[0]}{k[1]}")
def test_price_theorem_finite_difference(key):
    kmap = kernel_map(*key)
    h = 1e-5
    for a, c, b in LAMBDAS[:2]:
        fd = (kmap.evaluate(a, c + h, b)[0] - kmap.evaluate(a, c - h, b)[0]) / (2 * h)
        assert kmap.evaluate(a, c, b)[1] == pytest.approx(fd, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("key", [k for k in ENTRIES if k[0] != "poly"], ids=lambda k: k[0])
def test_closed_form_ntk_is_symbolic_derivative(key):
    kmap = kernel_map(*key)
    assert kmap.method == "closed form"
    diff = sympy.diff(kmap.nngp, k12) - kmap.ntk_dot
    f = sympy.lambdify((k11, k12, k22), diff, "numpy")
    for lam in LAMBDAS:
        assert abs(f(*lam)) < 1e-12


def test_relu_matches_textbook_arccos_kernel():
    kmap = kernel_map("relu")
    for a, c, b in LAMBDAS:
        theta = math.acos(c / math.sqrt(a * b))
        nngp = math.sqrt(a * b) / (2 * math.pi) * (math.sin(theta) + (math.pi - theta) * math.cos(theta))
        got = kmap.evaluate(a, c, b)
        assert got[0] == pytest.approx(nngp, rel=1e-9)
        assert got[1] == pytest.approx((math.pi - theta) / (2 * math.pi), rel=1e-9)


def test_relu_ntk_is_clean_arccos_form():
    ntk = kernel_map("relu").ntk_dot
    rho = sympy.Symbol("rho", real=True)
    clean = (sympy.pi - sympy.acos(rho)) / (2 * sympy.pi)
    on_rho = ntk.subs(k12, rho * sympy.sqrt(k11 * k22))
    assert sympy.simplify(on_rho - clean) == 0
    _, den = sympy.fraction(ntk)
    assert den == 2 * sympy.pi  # no sqrt(1 - rho^2) (or sqrt(k11 k22 - k12^2)) left over
    assert not any(p.base.has(k12) and not p.exp.is_Integer for p in ntk.atoms(sympy.Pow))
    for r in (-0.7, 0.0, 0.99):
        assert float(on_rho.subs(rho, r)) == pytest.approx((math.pi - math.acos(r)) / (2 * math.pi))


def test_erf_matches_textbook_kernel():
    kmap = kernel_map("erf")
    for a, c, b in LAMBDAS:
        q = (1 + 2 * a) * (1 + 2 * b)
        got = kmap.evaluate(a, c, b)
        assert got[0] == pytest.approx(2 / math.pi * math.asin(2 * c / math.sqrt(q)), rel=1e-9)
        assert got[1] == pytest.approx(4 / (math.pi * math.sqrt(q - 4 * c * c)), rel=1e-9)


def test_exact_correlation_edges():
    # rho = +-1 exactly (e.g. the diagonal): relu K+ = k/2 exactly, no NaN anywhere
    relu = kernel_map("relu")
    nngp, ntk = relu.evaluate([2.0, 2.0, 0.3], [2.0, -2.0, 0.3], [2.0, 2.0, 0.3])
    np.testing.assert_allclose(nngp, [1.0, 0.0, 0.15], rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(ntk, [0.5, 0.0, 0.5], rtol=1e-15, atol=1e-15)


def test_polynomial_x_squared_exact():
    kmap = kernel_map("phi", expr=x**2)
    assert kmap.method == "gaussian moments"
    assert sympy.expand(kmap.nngp - (k11 * k22 + 2 * k12**2)) == 0
    assert sympy.expand(kmap.ntk_dot - 4 * k12) == 0  # = E[2u 2v]


def test_polynomial_expression_equals_poly_entry_and_quadrature():
    expr = x**3 - 2 * x + sympy.Rational(1, 3)
    kmap = kernel_map("phi", expr=expr)
    assert kmap.method == "gaussian moments"
    same = kernel_map("poly", (sympy.Rational(1, 3), -2, 0, 1))
    assert sympy.expand(kmap.nngp - same.nngp) == 0
    f = lambda z: z**3 - 2 * z + 1 / 3  # noqa: E731
    for lam in LAMBDAS:
        assert kmap.evaluate(*lam)[0] == pytest.approx(brute_expectation(f, *lam), rel=1e-9)


def test_table_phi_expression_reuses_closed_form():
    kmap = kernel_map("phi", expr=sympy.Max(x, 0))
    assert kmap.method == "closed form" and kmap.nngp == kernel_map("relu").nngp


def _swish_dblquad(lam, f):
    a, c, b = lam
    cov = np.array([[a, c], [c, b]])
    inv, det = np.linalg.inv(cov), np.linalg.det(cov)

    def integrand(v, u):
        q = inv[0, 0] * u * u + 2 * inv[0, 1] * u * v + inv[1, 1] * v * v
        return f(u) * f(v) * math.exp(-q / 2) / (2 * math.pi * math.sqrt(det))
    lu, lv = 12 * math.sqrt(a), 12 * math.sqrt(b)
    return integrate.dblquad(integrand, -lu, lu, -lv, lv, epsabs=1e-11, epsrel=1e-10)[0]


def test_swish_quadrature_matches_dblquad():
    expr = x / (1 + sympy.exp(-x))  # x * sigmoid(x) as the front end builds it
    kmap = kernel_map("phi", expr=expr)
    assert kmap.method == "gauss-hermite(n=32)" and kmap.nngp is None and kmap.quad_degree == 32
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    f = lambda z: z * sig(z)  # noqa: E731
    df = lambda z: sig(z) + z * sig(z) * (1 - sig(z))  # noqa: E731
    for lam in [(1.0, 0.3, 2.0), (0.5, -0.45, 1.5)]:
        nngp, ntk = kmap.evaluate(*lam)
        assert nngp == pytest.approx(_swish_dblquad(lam, f), rel=1e-6)
        assert ntk == pytest.approx(_swish_dblquad(lam, df), rel=1e-6)


def test_quadrature_degree_is_configurable():
    # tanh has poles at ±iπ/2, so Gauss-Hermite converges slowly: rel. error ~4e-2 at n=8,
    # ~4e-5 at n=32, ~5e-8 at n=64
    expr = sympy.tanh(x)
    k8 = kernel_map("phi", expr=expr, quad_degree=8)
    k48 = kernel_map("phi", expr=expr, quad_degree=64)
    assert k8.method == "gauss-hermite(n=8)" and k8.emit_jax("a", "b", "c")[0].endswith(", 8, 'K⁺ of phi(tanh(x))')")
    lam = (1.0, 0.3, 2.0)
    exact = brute_expectation(np.tanh, *lam)
    assert k48.evaluate(*lam)[0] == pytest.approx(exact, rel=1e-6)
    assert k8.evaluate(*lam)[0] != pytest.approx(exact, rel=1e-9)
    assert k48.evaluate(*lam)[1] == pytest.approx(
        brute_expectation(lambda z: 1 / np.cosh(z) ** 2, *lam), rel=1e-6)


def test_latex_and_pretty():
    relu = kernel_map("relu")
    assert "\\operatorname{acos}" in relu.latex()[1] or "\\acos" in relu.latex()[1]
    assert "π" in relu.pretty()[1]
    swish = kernel_map("phi", expr=x / (1 + sympy.exp(-x)))
    nngp_tex, ntk_tex = swish.latex()
    assert nngp_tex.startswith("\\mathbb{E}") and "e^{- u}" in nngp_tex and "e^{- v}" in nngp_tex
    assert "u" in swish.pretty()[0]


# -- emitted JAX code ----------------------------------------------------------------------------

def _jax_fn(kmap):
    nngp, ntk = kmap.emit_jax("k11", "k12", "k22")
    ns = maps.namespace("jax")
    exec(f"def f(k11, k12, k22):\n    return {nngp}, {ntk}\n", ns)
    return jax.jit(ns["f"])


def _grid(dtype):
    # broadcasting shapes (3,1), (3,4), (1,4); includes rho = +1, rho = -1 and zero variances
    k11v = np.array([[1.0], [2.0], [0.0]])
    k22v = np.array([[1.0, 2.0, 0.5, 0.0]])
    rho = np.array([[1.0, -1.0, 0.3, 0.0], [0.999, -0.5, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    k12v = rho * np.sqrt(k11v * k22v)
    k12v[0, 0] = 1.0  # exact diagonal value
    return [a.astype(dtype) for a in (k11v, k12v, k22v)]


ALL_KEYS = list(ENTRIES) + [("phi", (), x / (1 + sympy.exp(-x)))]


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: f"{k[0]}{k[1]}")
def test_jax_code_jit_float32_and_float64(key):
    kmap = kernel_map(*key[:2]) if len(key) == 2 else kernel_map(key[0], expr=key[2])
    ref = kmap.evaluate(*_grid(np.float64))
    assert all(np.all(np.isfinite(r)) and r.shape == (3, 4) for r in ref)
    out32 = _jax_fn(kmap)(*_grid(np.float32))
    for got, want in zip(out32, ref):
        assert got.dtype == jnp.float32 and got.shape == (3, 4)
        assert np.all(np.isfinite(np.asarray(got)))
        np.testing.assert_allclose(np.asarray(got), want, rtol=2e-4, atol=2e-4)
    with jax.enable_x64(True):
        out64 = _jax_fn(kmap)(*_grid(np.float64))
        for got, want in zip(out64, ref):
            assert got.dtype == jnp.float64
            np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["relu", "erf", "abs", "gelu"])
def test_jax_gradients_finite_at_edges(name):
    f = _jax_fn(kernel_map(name))
    g = jax.grad(lambda a, c, b: jnp.sum(f(a, c, b)[0] + f(a, c, b)[1]), argnums=(0, 1, 2))
    for grad in g(*_grid(np.float32)):
        assert np.all(np.isfinite(np.asarray(grad)))


def test_relu_zero_variance_gives_zero():
    nngp, ntk = kernel_map("relu").evaluate(0.0, 0.0, 1.0)
    assert nngp == 0.0 and np.isfinite(ntk)


def test_emitted_text_is_deterministic():
    for key in ALL_KEYS:
        kmap = kernel_map(*key[:2]) if len(key) == 2 else kernel_map(key[0], expr=key[2])
        assert kmap.emit_jax("a", "b", "c") == kmap.emit_jax("a", "b", "c")


# -- errors ----------------------------------------------------------------------------------------

def test_unknown_name_suggests():
    with pytest.raises(SpecError) as err:
        kernel_map("rleu")
    assert "unknown nonlinearity 'rleu'" in str(err.value)
    assert "did you mean 'relu'" in str(err.value)


def test_leaky_relu_argument_errors():
    with pytest.raises(SpecError, match="leaky_relu takes exactly one numeric argument"):
        kernel_map("leaky_relu")
    with pytest.raises(SpecError, match="argument 1 must be a number"):
        kernel_map("leaky_relu", ("a",))
    with pytest.raises(SpecError, match="must be a number"):
        kernel_map("leaky_relu", (True,))
    with pytest.raises(SpecError, match="must be finite"):
        kernel_map("leaky_relu", (float("nan"),))
    assert kernel_map("leaky_relu", (0.1,)).name == "leaky_relu(0.1)"


def test_poly_and_other_argument_errors():
    with pytest.raises(SpecError, match="poly needs at least one numeric coefficient"):
        kernel_map("poly")
    with pytest.raises(SpecError, match="argument 2 must be a number"):
        kernel_map("poly", (1, "x"))
    with pytest.raises(SpecError, match="'relu' takes no arguments"):
        kernel_map("relu", (1,))
    with pytest.raises(SpecError, match="phi needs an expression"):
        kernel_map("phi")
    with pytest.raises(SpecError, match="only use the variable x, found y"):
        kernel_map("phi", expr=x * sympy.Symbol("y"))
    with pytest.raises(SpecError, match="quadrature degree"):
        kernel_map("phi", expr=sympy.tanh(x), quad_degree=0)
    with pytest.raises(SpecError, match="no JAX translation for the function 'besselj'"):
        kernel_map("phi", expr=sympy.besselj(0, x))


# φ with two slopes (a x for x > 0, b x for x < 0), as written in a spec and as compositions
TWO_SLOPES = {
    "phi(max(2*x, -0.5*x))": (2.0, -0.5, lambda: kernel_map("phi", (), sympy.Max(2 * x, -x / 2))),
    "leaky(0.1)∘leaky(0.2)": (1.0, 0.02, lambda: compose(kernel_map("leaky_relu", (0.1,)),
                                                         kernel_map("leaky_relu", (0.2,)))),
    "abs∘leaky(-0.5)": (1.0, -0.5, lambda: compose(kernel_map("abs"),
                                                   kernel_map("leaky_relu", (-0.5,)))),
    "relu∘leaky(2.5)": (2.5, 0.0, lambda: compose(kernel_map("relu"),
                                                  kernel_map("leaky_relu", (2.5,)))),
}


@pytest.mark.parametrize("name", list(TWO_SLOPES))
@pytest.mark.parametrize("lam", LAMBDAS)
def test_two_slope_phi_has_the_closed_form(name, lam):
    """φ(x) = a x (x > 0), b x (x < 0): K⁺ = (b² + b(a−b)) k12 + (a−b)² K_relu, checked against
    integration with the kink on a panel edge."""
    a, b, build = TWO_SLOPES[name]
    kmap = build()
    assert kmap.method == "closed form"
    phi = lambda z: np.where(z > 0, a * z, b * z)  # noqa: E731
    dphi = lambda z: np.where(z > 0, a, b) + 0 * z  # noqa: E731
    nngp, ntk = kmap.evaluate(*lam)
    assert nngp == pytest.approx(brute_expectation(phi, *lam), rel=1e-6, abs=1e-12)
    assert ntk == pytest.approx(brute_expectation(dphi, *lam), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("expr", [sympy.Max(0, sympy.sin(x)), sympy.erf(sympy.Max(0, x)),
                                  sympy.Max(0, x)**2, sympy.Abs(x) * x])
def test_kinked_phi_without_closed_form_is_refused(expr):
    with pytest.raises(SpecError, match="is not smooth .* so it is refused"):
        kernel_map("phi", (), expr)


def test_quadrature_accuracy_estimate_is_recorded_and_honest():
    """quadrature_estimate (n vs 2n points on the diagonal E[φ(u)²]) records, per map, an
    estimate of the true error of the n-point 2-d rule, on and off the diagonal, to within a
    factor of 2 (the 2n-point reference is itself not exact when n is small)."""
    namespace = maps.namespace("numpy")
    gh, errors = namespace["gauss_hermite_2d"], namespace["QUADRATURE_ERRORS"]
    k11, k22 = np.array([0.5, 2.0]), np.array([1.5, 2.0])
    k12 = np.array([0.6, 2.0]) * np.sqrt(k11 * k22) / np.array([1.0, 2.0])  # ρ = 0.6, 1
    coarse = gh(np.tanh, k11, k12, k22, 16, "tanh")
    fine = gh(np.tanh, k11, k12, k22, 200, "tanh fine")
    error, scale, n = errors["tanh"]
    assert n == 16 and scale == pytest.approx(np.max(fine[1]), rel=1e-2)
    true = np.max(np.abs(coarse - fine))
    assert true / 2 <= error <= 2 * true
    assert errors["tanh fine"][0] < 1e-10


# -- bounded symbolic work per user expression ------------------------------------------------

def _nested(fn, depth):
    e = x
    for _ in range(depth):
        e = fn(e)
    return e


def test_deeply_nested_continuous_phi_is_checked_structurally_and_fast():
    """tanh nested 30 deep: sympy's continuous_domain would take hours (18 s at depth 14); the
    structural test (built from functions continuous on ℝ) answers at once."""
    import time
    start = time.process_time()
    kmap = kernel_map("phi", expr=_nested(lambda e: sympy.tanh(e + sympy.Rational(1, 10)), 30))
    assert kmap.method.startswith("gauss-hermite")
    assert time.process_time() - start < 10


def test_phi_with_restricted_domain_too_deep_to_check_is_refused():
    with pytest.raises(SpecError, match=r"too large for kernelc to check that E\[φ\(u\)²\] is "
                                        r"finite \(12 operations, functions nested 8 deep; the "
                                        r"checkable limit is 200 operations and depth 6\)"):
        kernel_map("phi", expr=_nested(lambda e: sympy.log(2 + sympy.tanh(e)), 4))
    # depth 4 is still checked (continuous on ℝ, so accepted; depth 6 takes ~4 s)
    assert kernel_map("phi", expr=_nested(lambda e: sympy.log(2 + sympy.tanh(e)), 2)).nngp is None


def test_phi_with_too_many_operations_is_refused():
    big = sum(sympy.sin(k * x) / (k + 1) for k in range(1, 300))
    with pytest.raises(SpecError, match=r"has 1194 operations, more than the 1000 kernelc "
                                        r"treats symbolically"):
        kernel_map("phi", expr=big)


def test_compositions_are_bounded_like_one_phi():
    inner = kernel_map("phi", expr=sympy.log(2 + sympy.tanh(x)))
    twice = compose(inner, inner)  # depth 4: checked
    with pytest.raises(SpecError, match="functions nested 8 deep"):
        compose(twice, twice)
