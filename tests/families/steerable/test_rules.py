"""The steerable family's kernels (docs/math/steerable.md), checked against an independent
reference with explicit loops over r, r', u, y, y' (tests/reference/steerable_reference.py),
the general path against the reduced one (R), the pixel basis against the lattice family's p4
and p4m (the same network, another family), and exact invariance under the grid symmetries.
The Monte Carlo checks are in test_network.py."""
import functools

import numpy as np
import pytest

import kernelc
from kernelc.groups import get_group
from tests.reference import steerable_reference as ref

BODY = ("lift(size=3, {basis}W_std=1.4, b_std=0.1)\nrelu\n"
        "gconv(size=3, {basis}W_std=1.2, b_std=0.2)\nrelu\ngroup_pool\ndense(1, W_std=0.9)")


def _spec(group, box=(3, 3), channels=2, basis=""):
    return (f"network t\ngroup {group}\ninput {box[0]} x {box[1]} channels {channels}\n"
            + BODY.format(basis=basis) + "\n")


@functools.lru_cache(maxsize=None)
def _compiled(text, general=False):
    return kernelc.compile(text, identities={"R": False} if general else None)


def _images(n=3, box=(3, 3), channels=2, seed=0):
    return np.random.default_rng(seed).normal(size=(n,) + box + (channels,))


def _layers(basis="rings"):
    return [{"kind": "lift", "size": 3, "basis": basis, "W_std": 1.4, "b_std": 0.1},
            {"kind": "relu"},
            {"kind": "gconv", "size": 3, "basis": basis, "W_std": 1.2, "b_std": 0.2},
            {"kind": "relu"}, {"kind": "group_pool"}, {"kind": "dense", "W_std": 0.9,
                                                       "b_std": 0.0}]


@pytest.mark.parametrize("group,n,reflections", [
    ("C8", 8, False), pytest.param("D4", 4, True, marks=pytest.mark.slow)])
def test_matches_the_independent_reference(group, n, reflections):
    x = _images()
    got = _compiled(_spec(group)).kernel_fn(x, dtype="float64", fast_maps=False)
    want = ref.kernels(x, _layers(), n, reflections)
    for key in ("nngp", "ntk"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-11, atol=0)


@pytest.mark.slow  # ~8 s; the general stencils: tests/runtime/test_steerable.py (fast)
@pytest.mark.parametrize("group", ["C8", "D8"])
def test_general_path_equals_the_reduced_one(group):
    """(R) as a rewrite: the general plan (|H|² orientation pairs, the mean over u) gives the
    same numbers as K̃[t,t'](q)."""
    text = _spec(group)
    x = _images()
    red = _compiled(text).kernel_fn(x, dtype="float64", fast_maps=False)
    gen = _compiled(text, general=True).kernel_fn(x, dtype="float64", fast_maps=False)
    for key in ("nngp", "ntk"):
        np.testing.assert_allclose(red[key], gen[key], rtol=1e-12, atol=0)


@pytest.mark.parametrize("steerable,lattice", [
    ("C4", "p4"), pytest.param("D4", "p4m", marks=pytest.mark.slow)])
def test_pixel_basis_reduces_to_the_lattice_family(steerable, lattice):
    """With one weight per pixel, a filter rotated by 90° is a permutation of its pixels, so the
    steerable network is the lattice GCNN: M_q is a permutation matrix and the mixed stencil the
    lattice's stencil (docs/math/steerable.md, reduction)."""
    x = _images(box=(5, 5))
    got = _compiled(_spec(steerable, (5, 5), basis="basis=pixel, ")).kernel_fn(
        x, dtype="float64", fast_maps=False)
    want = _compiled(_spec(lattice, (5, 5))).kernel_fn(x, dtype="float64", fast_maps=False)
    for key in ("nngp", "ntk"):
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=0)


@pytest.mark.parametrize("group", ["C8", "D8"])
def test_invariant_under_the_grid_symmetries(group):
    """K(ρ(h)x, x') = K(x, x') for every element h that maps the grid onto itself (90°
    rotations, and the reflections for D8): exact up to float64 round-off, amplified in the
    NTK near correlation 1 (d/dc arccos c is infinite at c = 1)."""
    g = get_group(group)
    x = _images(n=2)
    compiled = _compiled(_spec(group))
    base = compiled.kernel_fn(x, dtype="float64", fast_maps=False)
    for h in g.grid_elements[1:]:
        moved = compiled.kernel_fn(g.transform_signal(x, h), x, dtype="float64",
                                   fast_maps=False)
        np.testing.assert_allclose(moved["nngp"], base["nngp"], rtol=1e-12, atol=0)
        np.testing.assert_allclose(moved["ntk"], base["ntk"], rtol=1e-8, atol=0)


def test_explain_shows_the_mixed_stencil_and_its_cost():
    text = _compiled(_spec("C8")).explain(n=100)
    assert "mixed_stencil(k_input, LIFT1_FILTER" in text
    assert "K̃⁺[t,t'](q) = σ_w²/|B| Σ_{y,y'∈S} P(y, R_q⁻¹y') K0[t+y, t'+y']" in text
    assert "6 functions of the rings basis" in text
    assert "(D) diagonal only: declined — steerable filters couple offsets" in text
