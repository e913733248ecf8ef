"""The SO(3) family's default grids (kernelc.families.so3.grid, docs/so3.md "Discretisation").

* polynomial φ: the default grid is the smallest exact one, d·(L−1) + L' ≤ 2B; the kernel there
  equals the kernel on a much finer grid (also exact) to round-off, and one grid less is not
  exact (so the comparison can tell);
* relu: the default grid's kernel is within ``tol`` of a much finer grid's, in correlation
  units |ΔK| / sqrt(K(x,x) K(x',x'));
* the aliasing estimate follows the measured error; ``explain`` shows the choice and its cost;
  bad ``tol=`` and an unreachable tolerance are clear errors.
"""
import functools
from types import SimpleNamespace

import numpy as np
import pytest
import jax.numpy as jnp

import kernelc
from kernelc.errors import SpecError
from kernelc.frontend.infer import check
from kernelc.frontend.parser import parse_spec
from kernelc.families.so3 import grid as G
from kernelc.rules.nonlinearities import kernel_map, x
from kernelc.runtime import harmonic as h
from kernelc.runtime.driver import x64_context
from tests.runtime.test_harmonic import _real_sphere_coefficients


def _spec(body, band=3, channels=2):
    return (f"network t\ngroup SO3\ninput sphere bandlimit {band} channels {channels}\n"
            + body + "\n")


@functools.lru_cache(maxsize=None)
def _compiled(text):
    return kernelc.compile(parse_spec(text))


def _inputs(n=3, band=3, channels=2, seed=0):
    rng = np.random.default_rng(seed)
    a = _real_sphere_coefficients(rng, band, (n, channels))
    with x64_context("float64"):
        return np.moveaxis(np.asarray(h.sphere_synthesis(jnp.asarray(a), band)), 1, -1)


def _grids(text):
    tg = check(parse_spec(text))
    return {tg.node(n).name: tg.node(n).hp for n in tg.order()
            if tg.node(n).kind in ("lift", "gconv")}


def _corr_error(k, ref):
    d = np.sqrt(np.diag(ref))
    return float(np.max(np.abs(k - ref) / np.outer(d, d)))


POLY = _spec("lift(W_std=1.3, b_std=0.2{g1})\nphi(x*x + x)\ngconv(W_std=1.2, b_std=0.1{g2})\n"
             "phi(x*x)\ngroup_pool\ndense(1, b_std=0.3)")


def test_exact_grid_condition():
    # the case: L = 4, degree 2, a gconv of band 4 after it: 2·3 + 4 ≤ 2B from B = 5
    assert G.exact_grid(2, 4, 4) == 5
    assert G.exact_grid(1, 4, 4) == 4      # linear: the band itself (B ≥ L)
    assert G.exact_grid(2, 3, 1) == 3      # before group_pool: 2·2 + 1 ≤ 2B
    assert G.polynomial_degree(kernel_map("relu")) is None
    # polynomial_degree reads φ only (a KernelMap's phi; no map derivation needed here)
    assert G.polynomial_degree(SimpleNamespace(phi=x + x ** 3 / 2)) == 3
    assert G.polynomial_degree(SimpleNamespace(phi=x)) == 1


def test_polynomial_default_grid_is_the_smallest_exact_one():
    hp = _grids(POLY.format(g1="", g2=""))
    # lift: 2·(3−1) + 3 ≤ 2B -> B = 4; gconv before the pool: 2·2 + 1 ≤ 2B -> B = 3
    assert (hp["lift1"]["grid"], hp["gconv1"]["grid"]) == (4, 3)
    assert hp["lift1"]["grid_choice"].rule == "exact"


@pytest.mark.slow
def test_polynomial_network_is_exact_at_the_default_grid():
    x = _inputs()
    default = _compiled(POLY.format(g1="", g2="")).kernel_fn(x, dtype="float64")
    fine = _compiled(POLY.format(g1=", grid=8", g2=", grid=8")).kernel_fn(x, dtype="float64")
    coarse = _compiled(POLY.format(g1=", grid=3", g2="")).kernel_fn(x, dtype="float64")
    for key in ("nngp", "ntk"):
        assert _corr_error(default[key], fine[key]) < 1e-12
        assert _corr_error(coarse[key], fine[key]) > 1e-6  # one grid less aliases


RELU = _spec("lift(W_std=1.4, b_std=0.1{tol})\nrelu\ngconv(W_std=1.4, b_std=0.1{g})\nrelu\n"
             "group_pool\ndense(1)", band=2)


def test_relu_default_grid_meets_tol_by_its_estimate():
    tol = 1e-3
    hp = _grids(RELU.format(tol=f", tol={tol}", g=""))
    choice = hp["lift1"]["grid_choice"]
    assert choice.rule == "estimate" and choice.tol == tol
    assert G.SAFETY * (choice.error + hp["gconv1"]["grid_choice"].error) <= tol
    # the default tol (6e-5) takes finer grids than 1e-3
    default = _grids(RELU.format(tol="", g=""))
    assert default["lift1"]["grid"] > choice.grid


@pytest.mark.slow
@pytest.mark.parametrize("phi1, phi2", [("relu", "relu"), ("erf", "abs")])
def test_default_grid_is_within_tol_of_a_fine_grid(phi1, phi2):
    tol = 1e-3
    text = RELU.replace("\nrelu\ngconv", f"\n{phi1}\ngconv").replace("\nrelu\ngroup_pool",
                                                                    f"\n{phi2}\ngroup_pool")
    x = _inputs(band=2)
    default = _compiled(text.format(tol=f", tol={tol}", g="")).kernel_fn(x, dtype="float64")
    fine = _compiled(text.format(tol=", grid=24", g=", grid=24")).kernel_fn(x, dtype="float64")
    for key in ("nngp", "ntk"):
        assert _corr_error(default[key], fine[key]) < tol, (key, _corr_error(default[key],
                                                                             fine[key]))


def test_estimate_follows_the_error_and_falls_with_the_grid():
    relu = (kernel_map("relu"),)
    e = [G.aliasing_error(relu, 4, 4, b) for b in (4, 8, 16)]
    assert e[0] > e[1] > e[2] > 0
    # measured on QM9 atoms (L = 4, NTK, max error against B = 24): 1.3e-4 at B = 8
    assert 5e-5 < e[1] < 5e-4


def test_given_grid_is_kept_and_its_estimate_shown():
    hp = _grids(RELU.format(tol="", g=", grid=2"))
    assert hp["gconv1"]["grid"] == 2 and hp["gconv1"]["grid_choice"].rule == "given"
    assert hp["gconv1"]["grid_choice"].error > 0


def test_explain_shows_the_grid_why_and_its_cost():
    text = _compiled(RELU.format(tol=", tol=1e-3", g="")).explain()
    assert "grid B = " in text and "aliasing estimate" in text and "grid values per pair" in text


@pytest.mark.parametrize("value", ["0", "1.5", "-1e-3"])
def test_bad_tol(value):
    with pytest.raises(SpecError, match="relative error in"):
        check(parse_spec(RELU.format(tol=f", tol={value}", g="")))


def test_unreachable_tolerance_is_refused():
    with pytest.raises(SpecError, match="no grid up to bandwidth 64.*tol=1e-12"):
        check(parse_spec(RELU.format(tol=", tol=1e-12", g="")))
