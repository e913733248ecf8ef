"""The guarded JAX printer and the runtime helpers (kernelc.runtime.maps) its output calls."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sympy

from kernelc.ir.jax_printer import jax_code
from kernelc.errors import SpecError
from kernelc.runtime import maps

a, b = sympy.symbols("a b", positive=True)
c = sympy.Symbol("c", real=True)
NAMES = {a: "A", b: "B", c: "C"}


def code(expr):
    return jax_code(expr, NAMES)


def test_function_mapping():
    assert code(sympy.sqrt(a)) == "safe_sqrt(A)"
    assert code(sympy.erf(c)) == "jsp.erf(C)"
    assert code(sympy.pi * c) == "jnp.pi*C"
    assert code(sympy.exp(c) + sympy.cosh(c)) == "jnp.exp(C) + jnp.cosh(C)"
    assert code(sympy.acos(c)) == "safe_acos(C)"
    assert code(sympy.asin(c)) == "safe_asin(C)"
    assert code(sympy.Abs(c)) == "jnp.abs(C)"
    assert code(sympy.Max(c, 0)) == "jnp.maximum(0, C)"
    assert code(sympy.Heaviside(c)) == "jnp.heaviside(C, 1/2)"
    assert code(sympy.Float(0.1) * c) == "0.1*C"


def test_correlation_acos_becomes_atan2_ratio():
    # a product of two variances under the root: the scaled helpers (no underflow)
    assert code(sympy.acos(c / sympy.sqrt(a * b))) == "acos_ratio2(C, A, B)"
    assert code(sympy.asin(2 * c / sympy.sqrt((1 + a) * (1 + b)))) == "asin_ratio2(2*C, A + 1, B + 1)"
    assert code(sympy.acos(c / sympy.sqrt(a))) == "acos_ratio(C, A)"


def test_determinant_under_root_is_cancellation_free():
    """√(p − c·n²) (c a rational square) prints as sqrt_det(p, √c·n), or as the scaled
    sqrt_det2(a, b, √c·n) when p = a·b; other roots stay."""
    assert code(sympy.sqrt(a * b - c**2)) == "sqrt_det2(A, B, C)"
    assert code(sympy.sqrt((2 * a + 1) * (2 * b + 1) - 4 * c**2)) == "sqrt_det2(2*A + 1, 2*B + 1, 2*C)"
    assert code(((1 + a) * (1 + b) - c**2) ** sympy.Rational(3, 2)) == "sqrt_det2(A + 1, B + 1, C)**3"
    assert code(1 / sympy.sqrt(a * b - c**2)) == "safe_div(1, sqrt_det2(A, B, C))"
    assert code(sympy.sqrt(2 * a * b - c**2)) == "sqrt_det(2*A*B, C)"
    assert code(sympy.sqrt(a * b - 2 * c**2)) == "safe_sqrt(A*B - 2*C**2)"  # √2 is not rational
    assert code(sympy.sqrt(a * b + c**2)) == "safe_sqrt(A*B + C**2)"
    assert code(sympy.sqrt(a + b - c**2)) == "safe_sqrt(A + B - C**2)"  # three terms


def test_relu_maps_use_exact_determinant():
    from kernelc.rules.nonlinearities import kernel_map
    nngp, ntk = kernel_map("relu").emit_jax("k11", "k12", "k22")
    assert "sqrt_det2(k11, k22, k12)" in nngp and "acos_ratio2(k12, k11, k22)" in ntk
    assert "safe_sqrt" not in nngp + ntk


def test_division_guards():
    assert code(c / a) == "safe_div(C, A)"
    assert code(1 / sympy.sqrt(a)) == "safe_div(1, safe_sqrt(A))"
    assert code(-c / (2 * a)) == "safe_div(-C, 2*A)"
    assert code(c / (2 * sympy.pi)) == "C/(2*jnp.pi)"  # constant denominators stay plain
    assert code(a ** sympy.Rational(3, 2)) == "safe_sqrt(A)**3"


def test_piecewise_and_relations():
    pw = sympy.Piecewise((c, c > 0), (0, True))
    assert code(pw) == "jnp.where((C > 0), C, 0)"


def test_errors():
    with pytest.raises(SpecError, match="no JAX translation for the function 'gamma'"):
        code(sympy.gamma(c))
    with pytest.raises(SpecError, match="no variable name given for symbol 'z'"):
        code(sympy.Symbol("z"))


def test_deterministic():
    expr = (sympy.sqrt(a * b - c**2) + (sympy.pi - sympy.acos(c / sympy.sqrt(a * b))) * c) / (2 * sympy.pi)
    assert code(expr) == code(expr)


def _helpers(backend):
    ns = maps.namespace(backend)
    assert ns["jnp"] is (np if backend == "numpy" else jnp)
    return ns


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_helper_values(backend):
    h = _helpers(backend)
    assert float(h["safe_sqrt"](-1.0)) == 0.0
    assert float(h["safe_div"](1.0, 0.0)) == 0.0
    assert float(h["safe_acos"](1.0000001)) == 0.0
    assert float(h["safe_acos"](-2.0)) == pytest.approx(np.pi)
    assert np.isnan(float(h["safe_acos"](float("nan"))))
    assert float(h["acos_ratio"](2.0, 4.0)) == 0.0       # rho = 1 exactly
    assert float(h["acos_ratio"](0.0, 0.0)) == pytest.approx(np.pi / 2)  # zero variance
    assert float(h["asin_ratio"](-3.0, 9.0)) == pytest.approx(-np.pi / 2)
    assert float(h["asin_ratio"](1.0, 4.0)) == pytest.approx(np.arcsin(0.5))
    assert float(h["clip_corr"](1.5)) == 1.0
    assert float(h["sqrt_det"](4.0, 1.0)) == pytest.approx(np.sqrt(3.0))
    assert float(h["sqrt_det"](4.0, -3.0)) == 0.0      # p < m²: clamped
    assert float(h["sqrt_det"](-1.0, 0.5)) == 0.0      # p < 0
    assert h["broadcast"](1, np.ones((2, 1)), np.ones((1, 3)), 1.0).shape == (2, 3)
    # the scaled forms: exact at a self pair, no underflow for tiny variances
    tiny = 1e-170 if backend == "numpy" else 1e-25  # its square underflows (float64 / float32)
    assert float(h["acos_ratio2"](tiny, tiny, tiny)) == 0.0
    assert float(h["sqrt_det2"](tiny, tiny, tiny)) == 0.0
    assert float(h["sqrt_det2"](4 * tiny, tiny, tiny)) == pytest.approx(np.sqrt(3.0) * tiny)
    assert float(h["acos_ratio2"](tiny, 4 * tiny, tiny)) == pytest.approx(np.arccos(0.5))
    assert float(h["asin_ratio2"](tiny, 4 * tiny, tiny)) == pytest.approx(np.arcsin(0.5))
    assert float(h["acos_ratio2"](0.0, 0.0, 0.0)) == pytest.approx(np.pi / 2)


def _x64():
    """A local float64 context (no global JAX flags)."""
    enable = getattr(jax, "enable_x64", None)
    if enable is None:  # older JAX
        from jax.experimental import enable_x64
        return enable_x64()
    return enable(True)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_self_pair_is_exact(backend):
    """k11 = k22 = k12 = v bit-identical: det exactly 0 and angle exactly 0, for any v (the
    naive k11*k22 − k12**2 leaves the rounding error of v·v under a fused multiply-add)."""
    h = _helpers(backend)
    v = np.random.default_rng(0).uniform(1e-3, 1e3, size=2000)
    q = v * v  # fl(v·v), computed apart from the helper (as the product k11*k22 is)
    if backend == "jax":
        with _x64():
            det, ang, asn = (np.asarray(jax.jit(h[name])(*args)) for name, args in
                             [("sqrt_det", (q, v)), ("acos_ratio", (v, q)),
                              ("asin_ratio", (v, q))])
        assert det.dtype == np.float64
    else:
        det, ang, asn = h["sqrt_det"](q, v), h["acos_ratio"](v, q), h["asin_ratio"](v, q)
    assert np.all(det == 0) and np.all(ang == 0) and np.all(asn == np.pi / 2)


@pytest.mark.parametrize("backend", ["numpy", "jax"])
def test_scaled_self_pair_is_exact_on_broadcast_arrays(backend):
    """The scaled helpers at a self pair, with the reduced layout's broadcasting (variances
    (p, 1, t, 1) against (p, 1, 1, t')): exact although XLA's vectorised float64 division on
    CPU gave v / v = 0.9999999999999999 (an angle of 1.5e-8, a relu NTK 5e-9 off)."""
    h = _helpers(backend)
    v = np.random.default_rng(1).uniform(1e-3, 1e3, size=(2, 1, 9, 1))
    n = np.broadcast_to(v, (2, 4, 9, 9)) * np.eye(9)[None, None]  # n = v on the diagonal t = t'
    a, b = v, v.reshape(2, 1, 1, 9)
    if backend == "jax":
        with _x64():
            det, ang = (np.asarray(jax.jit(h[name])(*args)) for name, args in
                        [("sqrt_det2", (a, b, n)), ("acos_ratio2", (n, a, b))])
    else:
        det, ang = h["sqrt_det2"](a, b, n), h["acos_ratio2"](n, a, b)
    diag = np.broadcast_to(np.eye(9, dtype=bool)[None, None], det.shape)
    assert np.all(det[diag] == 0) and np.all(ang[diag] == 0)


def test_helper_gradients_finite_at_guards():
    h = _helpers("jax")
    for fn, arg in [("safe_sqrt", 0.0), ("safe_acos", 1.0), ("safe_asin", -1.0)]:
        assert np.isfinite(float(jax.grad(h[fn])(arg)))
    assert np.isfinite(float(jax.grad(h["safe_div"], argnums=1)(1.0, 0.0)))
    g = jax.grad(h["acos_ratio"], argnums=(0, 1))
    for n, q in [(2.0, 4.0), (0.0, 0.0), (-1.0, 1.0)]:
        assert all(np.isfinite(float(v)) for v in g(n, q))
    g = jax.grad(h["sqrt_det"], argnums=(0, 1))
    for p, m in [(4.0, 2.0), (0.0, 0.0), (-1.0, 1.0), (1.0, 3.0)]:
        assert all(np.isfinite(float(v)) for v in g(p, m))


def test_gauss_hermite_helper_under_jit():
    h = _helpers("jax")
    f = jax.jit(lambda k11, k12, k22: h["gauss_hermite_2d"](lambda t: t * t, k11, k12, k22, 8))
    out = f(jnp.ones((2, 3)), jnp.full((2, 3), 0.5), jnp.ones((1, 3)) * 2.0)
    np.testing.assert_allclose(np.asarray(out), 1 * 2 + 2 * 0.25, rtol=1e-5)


def test_what_the_printer_refuses():
    """The spec language cannot write these (the parser refuses complex numbers and has no
    Piecewise); jax_code refuses them for any other caller."""
    with pytest.raises(SpecError, match="^error: kernel maps must be real; cannot generate code "
                                        "for the imaginary unit$"):
        code(sympy.I * c)
    with pytest.raises(SpecError, match="^error: a Piecewise expression needs an 'otherwise' "
                                        "branch to become array code$"):
        code(sympy.Piecewise((c, c > 0)))
    with pytest.raises(ValueError, match=r"^no fast twin of \['acos'\]; known: \('acos_ratio2', "
                                         r"'asin_ratio2', 'sqrt_det2'\)$"):
        jax_code(c, NAMES, fast_angles=("acos",))
