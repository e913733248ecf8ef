"""The harmonic transforms against independent references: the textbook d¹ matrix, scipy's
spherical harmonics, the group law of D, the rotation law of Y, and quadrature exactness."""
import numpy as np
import pytest
import jax.numpy as jnp
from scipy.special import sph_harm_y

from kernelc.runtime import harmonic as h
from kernelc.families.so3 import group as so3
from kernelc.runtime.driver import x64_context


def _real_sphere_coefficients(rng, band, channels=()):
    """Random coefficients of a real band-limited signal: a_ℓ,-m = (-1)^m conj(a_ℓm)."""
    a = np.zeros(channels + (band, 2 * band - 1), complex)
    for l in range(band):
        a[..., l, band - 1] = rng.normal(size=channels)
        for m in range(1, l + 1):
            z = rng.normal(size=channels) + 1j * rng.normal(size=channels)
            a[..., l, band - 1 + m] = z
            a[..., l, band - 1 - m] = (-1) ** m * np.conj(z)
    return a


def test_wigner_d1_is_the_textbook_matrix():
    b = 0.7
    c, s = np.cos(b), np.sin(b)
    r2 = np.sqrt(2)
    # rows/columns m = -1, 0, 1
    ref = np.array([[(1 + c) / 2, s / r2, (1 - c) / 2],
                    [-s / r2, c, s / r2],
                    [(1 - c) / 2, -s / r2, (1 + c) / 2]])
    np.testing.assert_allclose(h.wigner_d(1, b), ref, atol=1e-15)


@pytest.mark.parametrize("l", [0, 1, 2, 5, 12])
def test_wigner_D_is_a_representation(l):
    rng = np.random.default_rng(l)
    r1, r2 = so3.random_rotation(rng), so3.random_rotation(rng)
    lhs = so3.wigner_D(l, *so3.euler_angles(r1 @ r2))
    rhs = so3.wigner_D(l, *so3.euler_angles(r1)) @ so3.wigner_D(l, *so3.euler_angles(r2))
    np.testing.assert_allclose(lhs, rhs, atol=1e-12)
    np.testing.assert_allclose(lhs @ lhs.conj().T, np.eye(2 * l + 1), atol=1e-12)


def _y(l, m, theta, phi):
    return np.sqrt((2 * l + 1) / (4 * np.pi)) * np.exp(1j * m * phi) * \
        h.wigner_d(l, theta)[..., m + l, l]


@pytest.mark.parametrize("l,m", [(0, 0), (1, -1), (3, 2), (4, -3), (6, 6)])
def test_spherical_harmonics_match_scipy(l, m):
    theta, phi = 0.4, 1.2
    assert abs(_y(l, m, theta, phi) - sph_harm_y(l, m, theta, phi)) < 1e-14


def test_rotation_law_of_spherical_harmonics():
    """Y_ℓm(R⁻¹x) = Σ_m' D^ℓ_{m'm}(R) Y_ℓm'(x)."""
    rng = np.random.default_rng(3)
    r = so3.random_rotation(rng)
    theta, phi = 0.4, 1.2
    x = np.array([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)])
    y = r.T @ x
    th, ph = np.arccos(y[2]), np.arctan2(y[1], y[0])
    l = 3
    D = so3.wigner_D(l, *so3.euler_angles(r))
    lhs = np.array([_y(l, m, th, ph) for m in range(-l, l + 1)])
    rhs = D.T @ np.array([_y(l, m, theta, phi) for m in range(-l, l + 1)])
    np.testing.assert_allclose(lhs, rhs, atol=1e-13)


@pytest.mark.parametrize("bandwidth", [1, 2, 5, 16])
def test_dh_weights_integrate_legendre_polynomials_exactly(bandwidth):
    theta, _ = h.grid_angles(bandwidth)
    w = h.dh_weights(bandwidth)
    for k in range(2 * bandwidth):
        p = np.polynomial.legendre.legval(np.cos(theta), [0] * k + [1])
        assert abs(np.sum(w * p) - (k == 0)) < 1e-13


def test_sphere_and_so3_transforms_round_trip():
    rng = np.random.default_rng(0)
    band, bandwidth = 5, 6
    with x64_context("float64"):
        a = _real_sphere_coefficients(rng, band)
        f = h.sphere_synthesis(jnp.asarray(a), bandwidth)
        np.testing.assert_allclose(np.asarray(h.sphere_analysis(f, band)), a, atol=1e-13)
        # a real function on SO(3): F^ℓ_{-m,-n} = (-1)^{m-n} conj(F^ℓ_mn)
        F = rng.normal(size=(band, 9, 9)) + 1j * rng.normal(size=(band, 9, 9))
        m = np.arange(-4, 5)
        F = (F + (-1.0) ** (m[:, None] - m[None, :]) * np.conj(F[:, ::-1, ::-1])) / 2
        for l in range(band):
            keep = (np.abs(m) <= l)
            F[l] *= keep[:, None] * keep[None, :]
        g = np.asarray(h.so3_synthesis(jnp.asarray(F), bandwidth))
        np.testing.assert_allclose(np.asarray(h.so3_analysis(jnp.asarray(g), band)), F,
                                   atol=1e-12)
    # one grid value against the direct sum Σ F^ℓ_mn D^ℓ_mn(α, β, γ)
    theta, phi = h.grid_angles(bandwidth)
    direct = sum((F[l, 4 - l:5 + l, 4 - l:5 + l] * so3.wigner_D(l, phi[3], theta[5], phi[7])).sum()
                 for l in range(band))
    assert abs(direct.real - g[3, 5, 7]) < 1e-12


def test_band_limit_above_grid_is_refused():
    with pytest.raises(ValueError, match="needs a grid of bandwidth ≥ 5"):
        h.so3_synthesis(jnp.zeros((5, 9, 9), jnp.complex64), 4)


def test_exact_signal_rotation_composes():
    rng = np.random.default_rng(5)
    band = 4
    a = _real_sphere_coefficients(rng, band, (2,))
    with x64_context("float64"):
        x = np.moveaxis(np.asarray(h.sphere_synthesis(jnp.asarray(a), band)), 0, -1)[None]
    r1, r2 = so3.random_rotation(rng), so3.random_rotation(rng)
    twice = so3.rotate_sphere_signal(so3.rotate_sphere_signal(x, r2, band), r1, band)
    np.testing.assert_allclose(twice, so3.rotate_sphere_signal(x, r1 @ r2, band), atol=1e-12)
