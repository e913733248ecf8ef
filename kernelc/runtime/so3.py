"""Runtime helpers of the SO(3) family (jax and numpy only), on the harmonic transforms of
:mod:`kernelc.runtime.harmonic`. Generated modules of the family import them.

Two storage layouts per pair of inputs (f, f'):

* reduced (identity R): K̃(q) = K[e, q] on the SO(3) grid, flattened to (2B)³ values, followed
  by one more entry, K̃(e) (the identity is not a grid point; nonlinearities need it);
* general: K[g_i, g_j] for all pairs of grid points, (2B)³ × (2B)³ — the validation path.
"""
import functools

import numpy as np
import jax.numpy as jnp

from kernelc.runtime.harmonic import (grid_angles, so3_analysis, so3_d_table, so3_quadrature,
                                      so3_synthesis, so3_trace, sphere_analysis)

__all__ = ['complex_dtype', 'so3_D_grid', 'so3_bias', 'so3_cross_correlation', 'so3_gconv_general', 'so3_lift_general', 'so3_mean', 'so3_mean_general', 'so3_project', 'so3_sample', 'sphere_coefficients', 'truncate']


def complex_dtype(x):
    return jnp.complex128 if x.dtype in (jnp.float64, jnp.complex128) else jnp.complex64


def sphere_coefficients(x, band):
    """Harmonic coefficients of the inputs: (p, 2B, 2B, C) grid samples -> (p, C, L, 2L-1)."""
    return sphere_analysis(jnp.moveaxis(x, -1, 1).astype(complex_dtype(x)), band)


def truncate(c, band):
    """Sphere coefficients (..., L, 2L-1) of degrees ℓ < min(band, L): (..., L', 2L'-1)."""
    full = c.shape[-2]
    band = min(band, full)
    return c[..., :band, full - band:full + band - 1]  # the centred m range of degree < band


# -- reduced layout -----------------------------------------------------------------------------
def so3_cross_correlation(ca, cb, band):
    """Wigner coefficients of K̃(q) = (1/C) Σ_c ∫ f_c(y) f'_c(q·y) dy (dy: normalised measure):
    K̂^ℓ_mn = (1/4πC) Σ_c conj(b_cℓm) a_cℓn, for ℓ < band."""
    a, b = truncate(ca, band), truncate(cb, band)
    return jnp.einsum("pclm,pcln->plmn", jnp.conj(b), a) / (4 * np.pi * ca.shape[1])


def so3_bias(b2, coeffs):
    """The constant σ_b² as Wigner coefficients (degree 0 only)."""
    return jnp.zeros_like(coeffs).at[:, 0, coeffs.shape[-1] // 2, coeffs.shape[-1] // 2].set(b2)


def so3_sample(coeffs, bandwidth):
    """(p, L, M, M) coefficients -> (p, (2B)³ + 1): the grid values, then the value at e."""
    grid = so3_synthesis(coeffs, bandwidth)
    flat = grid.reshape(grid.shape[0], -1)
    return jnp.concatenate([flat, so3_trace(coeffs)[:, None].astype(flat.dtype)], axis=1)


def so3_project(k, bandwidth, band):
    """Π_L: Wigner coefficients ℓ < band of the function sampled in k (p, (2B)³ + 1)."""
    n = 2 * bandwidth
    grid = k[:, :n ** 3].reshape(k.shape[0], n, n, n)
    return so3_analysis(grid.astype(complex_dtype(grid)), band)


def so3_mean(k, bandwidth):
    """∫ K̃(q) dq by the grid quadrature (exact for band limits ≤ 2B)."""
    n = 2 * bandwidth
    w = jnp.asarray(so3_quadrature(bandwidth).reshape(-1), k.dtype)
    return k[:, :n ** 3] @ w


# -- general layout -----------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def so3_D_grid(band, bandwidth):
    """D^ℓ_mn(g_i) at the grid points g_i = (α_a, β_b, γ_c): (N, L, M, M) complex128."""
    theta, phi = grid_angles(bandwidth)
    m = np.arange(-(band - 1), band)
    d = so3_d_table(band, bandwidth)  # (2B, L, M, M)
    ea = np.exp(-1j * phi[:, None] * m[None, :])  # (2B, M)
    table = ea[:, None, None, None, :, None] * d[None, :, None, :, :, :] \
        * ea[None, None, :, None, None, :]
    return table.reshape(-1, band, 2 * band - 1, 2 * band - 1)


def so3_lift_general(ca, cb, band, bandwidth):
    """K[g_i, g_j] = (1/C) Σ_c ∫ f_c(g_i·y) f'_c(g_j·y) dy = (1/4πC) Σ_cℓ <D^ℓ(g_i)^H a_cℓ,
    D^ℓ(g_j)^H b_cℓ>, for every pair of grid points (no right invariance used)."""
    a, b = truncate(ca, band), truncate(cb, band)
    D = jnp.asarray(so3_D_grid(a.shape[-2], bandwidth), complex_dtype(ca.real))
    ra = jnp.einsum("ilnm,pcln->pcilm", jnp.conj(D), a)
    rb = jnp.einsum("ilnm,pcln->pcilm", jnp.conj(D), b)
    k = jnp.einsum("pcilm,pcjlm->pij", jnp.conj(ra), rb)
    return jnp.real(k) / (4 * np.pi * ca.shape[1])


def so3_gconv_general(k, bandwidth_in, band, bandwidth_out):
    """∫∫ K[u,u'] P_L(u⁻¹ g g'⁻¹ u') du du' with P_L = Σ_{ℓ<L} (2ℓ+1) χ_ℓ, the covariance of a
    full-group filter of band limit L: Σ_ℓ (2ℓ+1) Σ_bcd D^ℓ_bc(g) M^ℓ_bd conj(D^ℓ_dc(g')), with
    M^ℓ_bd = Σ_a ∫∫ K[u,u'] conj(D^ℓ_ba(u)) D^ℓ_da(u') du du' by the grid quadrature."""
    cdt = complex_dtype(k)
    w = jnp.asarray(so3_quadrature(bandwidth_in).reshape(-1), k.dtype)
    D_in = jnp.asarray(so3_D_grid(band, bandwidth_in), cdt)
    D_out = jnp.asarray(so3_D_grid(band, bandwidth_out), cdt)
    kw = (k * w[None, :, None] * w[None, None, :]).astype(cdt)
    x = jnp.einsum("ulba,puv->plbav", jnp.conj(D_in), kw)
    m = jnp.einsum("plbav,vlda->plbd", x, D_in)
    y = jnp.einsum("rlbc,plbd->prldc", D_out, m)
    dim = jnp.asarray(2 * np.arange(band) + 1, k.dtype)
    return jnp.real(jnp.einsum("prldc,sldc,l->prs", y, jnp.conj(D_out), dim.astype(cdt)))


def so3_mean_general(k, bandwidth):
    """∫∫ K[g, g'] dg dg' by the grid quadrature on both arguments."""
    w = jnp.asarray(so3_quadrature(bandwidth).reshape(-1), k.dtype)
    return jnp.einsum("pij,i,j->p", k, w, w)
