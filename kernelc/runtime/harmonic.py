"""Harmonic analysis on S² and SO(3): Wigner-d matrices, Driscoll–Healy grids, and the forward
and inverse transforms the SO(3) family's kernels and networks are built from.

Conventions (checked in ``tests/groups/test_harmonic.py`` against sympy and direct quadrature):

* Euler angles ZYZ, R(α, β, γ) = R_z(α) R_y(β) R_z(γ), active rotations.
* Wigner D: D^ℓ_mn(α, β, γ) = e^{-imα} d^ℓ_mn(β) e^{-inγ}, d^ℓ(β) = exp(-iβ J_y), so that
  D(R₁R₂) = D(R₁)D(R₂) and Y_ℓm(R⁻¹x) = Σ_m' D^ℓ_{m'm}(R) Y_ℓm'(x).
* Spherical harmonics with the Condon–Shortley phase, orthonormal on the unit sphere:
  Y_ℓm(θ, φ) = sqrt((2ℓ+1)/4π) e^{imφ} d^ℓ_m0(θ);  f = Σ a_ℓm Y_ℓm,  a_ℓm = ∫ f conj(Y_ℓm) dΩ.
* Functions on SO(3): f = Σ_ℓ Σ_mn F^ℓ_mn D^ℓ_mn,  F^ℓ_mn = (2ℓ+1) ∫ f conj(D^ℓ_mn) dg with the
  normalised Haar measure (∫ dg = 1).
* Band limit L means degrees ℓ < L. A grid of bandwidth B has 2B equiangular points per Euler
  angle (θ_j = β_j = π(2j+1)/4B, φ_k = α_k = γ_k = 2πk/2B); its Driscoll–Healy weights integrate
  every function of band limit 2B exactly, so transforms of band-limited functions (L ≤ B) are
  exact, and products of two band-L functions integrate exactly when 2L - 1 ≤ 2B.

Coefficient arrays are dense and zero-padded: ``(..., L, 2L-1, 2L-1)`` for SO(3) (index
[ℓ, m+L-1, n+L-1]) and ``(..., L, 2L-1)`` for S². Tables are numpy (float64) and built once;
the transforms are jax.numpy so they jit, batch and differentiate.

Part of the runtime package (jax and numpy only): generated modules of the SO(3) family import
it, and ``kernelc compile --standalone`` inlines the functions they use. Why our own
transforms rather than a library (s2fft, lie_learn): the band limits here are small (L and the
grid bandwidth B at most MAX_BANDWIDTH = 64), the transforms are a few einsums and FFTs
that XLA fuses with the kernel maps, the tables are exact float64 (eigen-decomposition of J_y,
accurate to ~1e-14 at ℓ = 64), and standalone modules must stay free of other dependencies.
"""
import functools

import numpy as np
import jax.numpy as jnp

MAX_BANDWIDTH = 64  # largest grid bandwidth B (2B points per Euler angle) the tables support


@functools.lru_cache(maxsize=None)
def jy_eigen(l):
    """Eigen-decomposition of the angular momentum matrix J_y in the |ℓ m> basis, m = -ℓ..ℓ."""
    m = np.arange(-l, l)
    raise_ = np.diag(np.sqrt(l * (l + 1) - m * (m + 1.0)), -1)  # <m+1| J_+ |m>
    jy = (raise_ - raise_.T) / 2j
    return np.linalg.eigh(jy)


def wigner_d(l, beta):
    """d^ℓ(β) = exp(-iβ J_y): real (..., 2ℓ+1, 2ℓ+1), entry [m+ℓ, n+ℓ] = d^ℓ_mn(β)."""
    w, v = jy_eigen(int(l))
    beta = np.asarray(beta, dtype=np.float64)
    phase = np.exp(-1j * beta[..., None] * w)
    return np.real((v * phase[..., None, :]) @ v.conj().T)


@functools.lru_cache(maxsize=None)
def grid_angles(bandwidth):
    """The 2B equiangular colatitudes θ_j = π(2j+1)/4B and longitudes φ_k = 2πk/2B."""
    n = 2 * bandwidth
    theta = np.pi * (2 * np.arange(n) + 1) / (2 * n)
    phi = 2 * np.pi * np.arange(n) / n
    return theta, phi


@functools.lru_cache(maxsize=None)
def dh_weights(bandwidth):
    """Driscoll–Healy weights w_j of the 2B colatitudes, normalised so Σ_j w_j = 1:
    Σ_j w_j g(θ_j) = ½∫₀^π g(θ) sin θ dθ for every g = P_ℓ(cos θ), ℓ < 2B."""
    theta, _ = grid_angles(bandwidth)
    k = np.arange(bandwidth)
    w = np.sin(theta) * np.sum(np.sin(np.outer(theta, 2 * k + 1)) / (2 * k + 1), axis=1)
    return w / w.sum()


@functools.lru_cache(maxsize=None)
def so3_d_table(band, bandwidth):
    """d^ℓ_mn(β_j) for ℓ < band on the grid of ``bandwidth``: (2B, L, 2L-1, 2L-1), zero-padded."""
    theta, _ = grid_angles(bandwidth)
    size = 2 * band - 1
    table = np.zeros((len(theta), band, size, size))
    for l in range(band):
        lo = band - 1 - l
        table[:, l, lo:lo + 2 * l + 1, lo:lo + 2 * l + 1] = wigner_d(l, theta)
    return table


@functools.lru_cache(maxsize=None)
def sphere_y_table(band, bandwidth):
    """sqrt((2ℓ+1)/4π) d^ℓ_m0(θ_j): the θ part of Y_ℓm on the grid, (2B, L, 2L-1)."""
    table = so3_d_table(band, bandwidth)[:, :, :, band - 1]
    norm = np.sqrt((2 * np.arange(band) + 1) / (4 * np.pi))
    return table * norm[None, :, None]


def _frequency_index(band, bandwidth):
    """Positions of m = -(L-1)..L-1 in an FFT axis of length 2B."""
    if 2 * band - 1 > 2 * bandwidth:
        raise ValueError(f"band limit {band} needs a grid of bandwidth ≥ {band}, got {bandwidth}")
    return np.arange(-(band - 1), band) % (2 * bandwidth)


def sphere_analysis(x, band):
    """a_ℓm = ∫ f conj(Y_ℓm) dΩ of signals x (..., 2B, 2B) sampled at (θ_j, φ_k): (..., L, 2L-1)."""
    bandwidth = x.shape[-1] // 2
    idx = _frequency_index(band, bandwidth)
    fx = jnp.fft.fft(x, axis=-1)[..., idx]  # Σ_k f e^{-imφ_k}
    table = sphere_y_table(band, bandwidth) * (4 * np.pi * dh_weights(bandwidth)
                                               / (2 * bandwidth))[:, None, None]
    return jnp.einsum("...jm,jlm->...lm", fx, table.astype(np.complex128 if fx.dtype ==
                                                          jnp.complex128 else np.complex64))


def sphere_synthesis(a, bandwidth):
    """f(θ_j, φ_k) = Σ a_ℓm Y_ℓm(θ_j, φ_k) (real part) on the grid of ``bandwidth``: (..., 2B, 2B)."""
    band = a.shape[-2]
    idx = _frequency_index(band, bandwidth)
    table = sphere_y_table(band, bandwidth)
    s = jnp.einsum("...lm,jlm->...jm", a, table.astype(a.real.dtype))
    full = jnp.zeros(s.shape[:-1] + (2 * bandwidth,), s.dtype).at[..., idx].set(s)
    return jnp.real(jnp.fft.ifft(full, axis=-1)) * (2 * bandwidth)  # Σ_m e^{+imφ_k}


def so3_synthesis(coeffs, bandwidth):
    """f(α_a, β_b, γ_c) = Re Σ F^ℓ_mn D^ℓ_mn on the SO(3) grid: (..., L, M, M) -> (..., 2B, 2B, 2B)."""
    band = coeffs.shape[-3]
    idx = _frequency_index(band, bandwidth)
    table = so3_d_table(band, bandwidth)
    s = jnp.einsum("...lmn,blmn->...bmn", coeffs, table.astype(coeffs.real.dtype))
    n = 2 * bandwidth
    full = jnp.zeros(s.shape[:-2] + (n, n), s.dtype)
    full = full.at[..., idx[:, None], idx[None, :]].set(s)
    grid = jnp.real(jnp.fft.fft2(full, axes=(-2, -1)))  # Σ_mn e^{-imα_a} e^{-inγ_c}: [..., b, a, c]
    return jnp.moveaxis(grid, -3, -2)  # [..., a, b, c]


def so3_analysis(f, band):
    """F^ℓ_mn = (2ℓ+1) ∫ f conj(D^ℓ_mn) dg by the grid quadrature: (..., 2B, 2B, 2B) -> (..., L, M, M)."""
    bandwidth = f.shape[-1] // 2
    idx = _frequency_index(band, bandwidth)
    g = jnp.fft.ifft2(jnp.moveaxis(f, -3, -2), axes=(-2, -1))  # mean_ac f e^{+imα_a} e^{+inγ_c}
    g = g[..., idx[:, None], idx[None, :]]
    table = so3_d_table(band, bandwidth) * dh_weights(bandwidth)[:, None, None, None] \
        * (2 * np.arange(band) + 1)[None, :, None, None]
    return jnp.einsum("...bmn,blmn->...lmn", g, table.astype(g.real.dtype))


@functools.lru_cache(maxsize=None)
def so3_quadrature(bandwidth):
    """Weights of the SO(3) grid points (a, b, c) for the normalised Haar measure: (2B, 2B, 2B)."""
    n = 2 * bandwidth
    return np.broadcast_to(dh_weights(bandwidth)[None, :, None] / (n * n), (n, n, n)).copy()


def so3_trace(coeffs):
    """f(e) = Σ_ℓ tr F^ℓ, since D^ℓ(e) = 1: (..., L, M, M) -> (...) real."""
    return jnp.real(jnp.einsum("...lmm->...", coeffs))
