"""The SO(3) family's kernels, checked three ways (docs/math/so3.md): the reduced path
(R) against the
general (2B)³ × (2B)³ path, exact invariance to 3-d rotations of band-limited inputs, and the
pooled kernel against an independent Haar average of the matching MLP kernel.

Where the integrands are band-limited (polynomial φ, grid large enough) the discrete Haar
integrals are exact and so are the identities, to float64 round-off. Through ReLU/erf the kernels
are not band-limited: the grid quadrature then aliases, and both (R) and invariance hold up to
that aliasing error, which falls as the grid bandwidth B grows (tested).
"""
import functools

import numpy as np
import pytest
import jax.numpy as jnp

import kernelc
from kernelc.frontend.parser import parse_spec
from kernelc.runtime import harmonic as h
from kernelc.families.so3 import group as so3
from kernelc.runtime.driver import x64_context
from tests.runtime.test_harmonic import _real_sphere_coefficients

BAND = 3


def _spec(body: str, band: int = BAND, channels: int = 2) -> str:
    return (f"network t\ngroup SO3\ninput sphere bandlimit {band} channels {channels}\n"
            + body + "\n")


@functools.lru_cache(maxsize=None)
def _compiled(text: str, reduced: bool = True):
    return kernelc.compile(parse_spec(text), identities=None if reduced else {"R": False})


def _inputs(n=3, band=BAND, channels=2, seed=0):
    """Band-limited signals sampled on the 2L × 2L grid: (n, 2L, 2L, C)."""
    rng = np.random.default_rng(seed)
    a = _real_sphere_coefficients(rng, band, (n, channels))
    with x64_context("float64"):
        return np.moveaxis(np.asarray(h.sphere_synthesis(jnp.asarray(a), band)), 1, -1)


POLY = _spec("lift(W_std=1.3, b_std=0.2, grid=4)\nphi(x*x + x)\ngconv(W_std=1.2, b_std=0.1, "
             "grid=4)\nphi(x*x)\ngroup_pool\ndense(1, b_std=0.3)")
RELU = _spec("lift(W_std=1.3, b_std=0.2, grid={g})\nrelu\ngconv(W_std=1.2, b_std=0.1, grid={g})"
             "\nerf\ngroup_pool\ndense(1)")


def _rel(a, b):
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def test_reduced_equals_general_exactly_when_band_limited():
    """φ polynomial of degree 2 after a band-3 lift: every integrand has degree ≤ 2·2+2 < 2B."""
    x = _inputs()
    red = _compiled(POLY).kernel_fn(x, dtype="float64")
    gen = _compiled(POLY, reduced=False).kernel_fn(x, dtype="float64")
    for key in ("nngp", "ntk"):
        assert _rel(red[key], gen[key]) < 1e-12


@pytest.mark.slow  # 7 s over three grids; the default grid's accuracy is checked in test_grid
def test_reduced_approaches_general_through_relu_as_the_grid_grows():
    x = _inputs()
    errors = []
    for grid in (3, 5):
        red = _compiled(RELU.format(g=grid)).kernel_fn(x, dtype="float64", get="ntk")
        gen = _compiled(RELU.format(g=grid), reduced=False).kernel_fn(x, dtype="float64",
                                                                      get="ntk")
        errors.append(_rel(red, gen))
    assert errors[0] < 1e-2 and errors[1] < errors[0] / 10, errors


@pytest.mark.parametrize("seed", [1, 2])
def test_exactly_invariant_to_rotations_when_band_limited(seed):
    x = _inputs(2)
    r = so3.random_rotation(np.random.default_rng(seed))
    xr = so3.rotate_sphere_signal(x, r, BAND)
    kf = _compiled(POLY).kernel_fn
    base = kf(x, dtype="float64")
    for key in ("nngp", "ntk"):
        np.testing.assert_allclose(kf(xr, x, dtype="float64")[key], base[key], rtol=1e-12)
        np.testing.assert_allclose(kf(xr, dtype="float64")[key], base[key], rtol=1e-12)


def test_rotation_invariance_through_relu_improves_with_the_grid():
    x = _inputs(2)
    xr = so3.rotate_sphere_signal(x, so3.random_rotation(np.random.default_rng(7)), BAND)
    errors = []
    for grid in (3, 6):
        kf = _compiled(RELU.format(g=grid)).kernel_fn
        errors.append(_rel(kf(xr, x, dtype="float64", get="ntk"),
                           kf(x, dtype="float64", get="ntk")))
    assert errors[0] < 1e-2 and errors[1] < errors[0] / 10, errors


def _mlp_kernel_haar_average(a, b, w2, b2, w2_out, b2_out, nodes=24):
    """∫_SO(3) k(f, ρ(h)f') dh for the MLP f ↦ dense(relu(<ψ, f>)): pre-activation
    σ_w² <f, ρ(h)f'>_{L²(S², dΩ/4π)}/C + σ_b², the arc-cosine map, the readout. Independent of
    the compiler: Gauss–Legendre in cos β, uniform in α and γ, rotations as Wigner matrices."""
    band = a.shape[-2]
    u, wu = np.polynomial.legendre.leggauss(nodes)
    betas, wb = np.arccos(u), wu / 2
    alphas = 2 * np.pi * np.arange(2 * nodes) / (2 * nodes)
    m = np.arange(-(band - 1), band)
    phase = np.exp(-1j * np.outer(alphas, m))  # (nα, M)
    c = a.shape[0]

    def inner(x, y):  # <x, ρ(h)y> for every h on the product grid: (nα, nβ, nγ)
        out = 0
        for l in range(band):
            d = np.stack([h.wigner_d(l, bb) for bb in betas])  # (nβ, 2l+1, 2l+1)
            sl = slice(band - 1 - l, band + l)
            for ch in range(c):
                left = np.conj(x[ch, l, sl])[None, :] * phase[:, sl]  # conj(a_m) e^{-imα}
                right = phase[:, sl] * y[ch, l, sl][None, :]  # e^{-inγ} b_n
                out = out + np.einsum("am,bmn,cn->abc", left, d, right)
        return np.real(out) / (4 * np.pi * c)

    k12 = w2 * inner(a, b) + b2
    k11 = w2 * np.real(np.sum(np.conj(a) * a)) / (4 * np.pi * c) + b2
    k22 = w2 * np.real(np.sum(np.conj(b) * b)) / (4 * np.pi * c) + b2
    rho = np.clip(k12 / np.sqrt(k11 * k22), -1, 1)
    relu = np.sqrt(k11 * k22) * (np.sqrt(1 - rho ** 2) + (np.pi - np.arccos(rho)) * rho) / (2 * np.pi)
    mean = np.einsum("abc,b->", relu, wb) / (2 * nodes) ** 2
    return w2_out * mean + b2_out


def test_pooled_kernel_is_the_haar_average_of_the_mlp_kernel():
    """Identity (O) for SO(3): lift -> relu -> group_pool -> dense equals ∫ k_MLP(f, ρ(h)f') dh."""
    text = _spec("lift(W_std=1.3, b_std=0.2, grid=8)\nrelu\ngroup_pool\ndense(1, W_std=0.9, "
                 "b_std=0.1)")
    rng = np.random.default_rng(11)
    a = _real_sphere_coefficients(rng, BAND, (2, 2))
    with x64_context("float64"):
        x = np.moveaxis(np.asarray(h.sphere_synthesis(jnp.asarray(a), BAND)), 1, -1)
    k = _compiled(text).kernel_fn(x, dtype="float64", get="nngp")
    ref = _mlp_kernel_haar_average(a[0], a[1], 1.69, 0.04, 0.81, 0.01)
    assert abs(k[0, 1] - ref) < 1e-5 * abs(ref)
    assert _compiled(text).derivation.decisions["O"].applied


def test_lift_ntk_is_the_nngp():
    """Θ = K after the lift (the input NTK is zero): not the reference code's 2K − σ_b²."""
    text = _spec("lift(W_std=1.3, b_std=0.5)\ngroup_pool\ndense(1, W_std=1.0, b_std=0.0)")
    x = _inputs()
    out = _compiled(text).kernel_fn(x, dtype="float64")
    # after the readout: Θ = σ_w² Θ_pool + K = 2 K_pool when Θ_pool = K_pool, σ_w = 1, σ_b = 0
    np.testing.assert_allclose(out["ntk"], 2 * out["nngp"], rtol=1e-12)
