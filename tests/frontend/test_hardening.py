"""Regression tests for the reproducers of the hardening campaign (issue 15, findings 2, 3, 5):
each used to crash with a non-kernelc exception or to give a silently wrong number; each is now
refused with a positioned KernelcError, or computes the right thing.
"""
from __future__ import annotations

import numpy as np
import pytest

import kernelc
from kernelc.errors import KernelcError, SpecError

from .test_errors import assert_error

H = "network t\ngroup p4\ninput 4 x 4 channels 1\n"
SO3 = "network t\ngroup SO3\ninput sphere bandlimit 2 channels 1\n"
NOT_CONTINUOUS = ("is not continuous on all of ℝ (it is on {}), so E[φ(u)φ(v)] over a "
                  "Gaussian is not a finite number kernelc can compute; it is refused")
CONTINUOUS = "use a φ that is continuous on all of ℝ and grows slower than exp(c·x²)"


# -- numbers beyond the double range ----------------------------------------------------------

def test_integer_beyond_the_double_range_is_refused():
    assert_error(H + "lift(W_std=2**1024)\ngroup_pool\ndense\n", SpecError,
                 "bad value for 'W_std' of 'lift': expected a number ≤ 1e+06 (a standard "
                 "deviation of order 1)", 4, 6)


def test_literal_with_thousands_of_digits_is_refused():
    assert_error(H + "lift(W_std=" + "1" * 5000 + ")\ngroup_pool\ndense\n", SpecError,
                 "the number 11111111111111111111… is beyond the range of a double "
                 "(about 1.8e308)", 4, 12)


@pytest.mark.parametrize("arg", ["W_std=1e160", "b_std=e**709"])
def test_standard_deviations_above_the_limit_are_refused(arg):
    name = arg.split("=")[0]
    err = assert_error(H + f"lift({arg})\ngroup_pool\ndense\n", SpecError,
                       f"bad value for '{name}' of 'lift': expected a number ≤ 1e+06 (a "
                       "standard deviation of order 1)", 4, 6, in_message=True)
    assert err.span.line == 4


def test_kernel_map_coefficient_beyond_the_double_range_is_refused_at_the_layer():
    assert_error(H + "lift\nphi(1e200*x)\ngroup_pool\ndense\n", SpecError,
                 "a coefficient of the kernel map, 9.9999999999999994e+399, is beyond the range "
                 "of a double (about 1.8e308)", 5, 1,
                 suggestion="rescale φ or the weights so that its coefficients stay below ~1e150")


@pytest.mark.parametrize("layer", ["leaky_relu(4e9)", "poly(0, 4e9)",
                                   "poly(1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 100)"])
def test_integer_coefficients_beyond_int32_run(layer):
    """Integers ≥ 2**31 in the kernel map print as doubles: JAX's x32 conversion of a Python int
    used to overflow ("overflow while parsing an argument to a jitted computation")."""
    net = kernelc.compile(H + f"lift\n{layer}\ngroup_pool\ndense\n")
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 1))
    out = net.kernel_fn(x, dtype="float64")
    assert np.all(np.isfinite(out["nngp"])) and np.all(np.diag(out["nngp"]) > 0)


# -- φ whose Gaussian expectation is not a finite number ------------------------------------

@pytest.mark.parametrize("phi, domain", [
    ("1/x", "Union(Interval.open(-oo, 0), Interval.open(0, oo))"),
    ("x**-3", "Union(Interval.open(-oo, 0), Interval.open(0, oo))"),
    ("sqrt(x)", "Interval(0, oo)"),
    ("log(x)", "Interval.open(0, oo)"),
])
def test_phi_not_continuous_on_the_real_line_is_refused(phi, domain):
    shown = {"x**-3": "x**(-3)"}.get(phi, phi)
    assert_error(H + f"lift\nphi({phi})\ngroup_pool\ndense\n", SpecError,
                 f"phi({shown}) " + NOT_CONTINUOUS.format(domain), 5, 1, suggestion=CONTINUOUS)


def test_phi_with_poles_on_the_real_line_is_refused():
    err = assert_error(H + "lift\nphi(tan(x))\ngroup_pool\ndense\n", SpecError,
                       "phi(tan(x)) is not continuous on all of ℝ", 5, 1, in_message=True,
                       suggestion=CONTINUOUS)
    assert "refused" in err.message


@pytest.mark.parametrize("phi", ["exp(x**2)", "cosh(x**2)", "x*exp(2*x**2 + 1)"])
def test_phi_growing_like_a_gaussian_inverse_is_refused(phi):
    err = assert_error(H + f"lift\nphi({phi})\ngroup_pool\ndense\n", SpecError,
                       "grows like", 5, 1, in_message=True, suggestion=CONTINUOUS)
    assert "over a Gaussian is not a finite number" in err.message


@pytest.mark.parametrize("phi", ["exp(-x**2)", "atan(x)", "log(1 + exp(x))", "sqrt(1 + x**2)",
                                 "x*erf(x)"])
def test_well_behaved_phi_is_accepted(phi):
    kernelc.check(H + f"lift\nphi({phi})\ngroup_pool\ndense\n")


def test_x_cannot_be_a_constant():
    assert_error(H + "let x = 5\nlift\nphi(x*x)\ngroup_pool\ndense\n", SpecError,
                 "'x' cannot be a constant: it is the variable of phi(...), and a constant x "
                 "would silently turn phi(x*x) into a number", 4, 5,
                 suggestion="choose another name")


# -- SO(3) specs that used to crash after check -----------------------------------------------

def test_so3_gconv_band_limit_above_its_input_grid_takes_the_general_path():
    # grids given: the default grids are chosen for accuracy (and would resolve L = 3 here)
    net = kernelc.compile(SO3 + "lift(bandlimit=2, grid=2)\nrelu\ngconv(bandlimit=3, grid=3)\nrelu\n"
                                "group_pool\ndense\n")
    decision = net.derivation.decisions["R"]
    assert not decision.applied and "band limit 3 above the bandwidth 2" in decision.reason
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 1))
    assert np.all(np.isfinite(net.kernel_fn(x, dtype="float64")["ntk"]))


def test_so3_residual_after_group_pool_compiles():
    """Used to raise KeyError: 'fanout' in the derivation (Monte Carlo values:
    tests/families/so3/test_network.py::test_residual_and_concat_on_so3_match_monte_carlo)."""
    net = kernelc.compile(SO3 + "lift\nrelu\ngroup_pool\nresidual {\n  dense\n}\ndense\n")
    x = np.random.default_rng(2).normal(size=(2, 4, 4, 1))
    assert net.kernel_fn(x, dtype="float64")["nngp"].shape == (2, 2)


def test_refusals_are_kernelc_errors():
    for text in (H + "lift(W_std=2**1024)\n", H + "lift\nphi(1/x)\n"):
        with pytest.raises(KernelcError):
            kernelc.check(text)


@pytest.mark.slow
def test_four_thousand_consecutive_relus_compose_into_one():
    """repeat 4000 { relu } used to run 7.5 minutes to 7 GB and die (std::bad_alloc); the relus
    compose into one relu (relu∘relu = relu), so the kernel is the one-relu network's (19 s)."""
    many = kernelc.compile(H + "lift\nrepeat 4000 { relu }\ngroup_pool\ndense\n")
    one = kernelc.compile(H + "lift\nrelu\ngroup_pool\ndense\n")
    x = np.random.default_rng(3).normal(size=(2, 4, 4, 1))
    a, b = many.kernel_fn(x, dtype="float64"), one.kernel_fn(x, dtype="float64")
    np.testing.assert_allclose(a["nngp"], b["nngp"], rtol=1e-14)
    np.testing.assert_allclose(a["ntk"], b["ntk"], rtol=1e-14)
