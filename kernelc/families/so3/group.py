"""SO(3), the compact group of 3-d rotations: the harmonic family (docs/math/so3.md).

A group of this family is declared by its data, not by kernel code: the base space (S²), the
grids and quadratures of :mod:`kernelc.runtime.harmonic`, and the Wigner-D representation. The
family's layer kinds (:mod:`kernelc.families.so3.kinds`), kernel rules
(:mod:`kernelc.families.so3.rules`) and finite network (:mod:`kernelc.families.so3.network`)
look these up.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...runtime import harmonic
from ...runtime.driver import x64_context


@dataclass(frozen=True)
class HarmonicGroup:
    """A compact group acting on a homogeneous base space, analysed by harmonics."""

    name: str
    base: str  # the base space the inputs live on
    description: str = ""
    order: int = 0  # the group is infinite: 0 stands for "continuous" (verify's report)
    dim: int = 3  # SO(3) rotates R³

    def describe(self) -> str:
        return (f"{self.name}: {self.description}\n"
                f"base space {self.base}; functions of band limit L (degrees ℓ < L) sampled on "
                f"Driscoll–Healy grids of bandwidth B ≥ L (2B points per angle); Haar "
                f"measure normalised to 1; Wigner-D representation D^ℓ_mn(α,β,γ) = "
                f"e^(-imα) d^ℓ_mn(β) e^(-inγ)")

    def domain_mask(self, shape):  # every grid point belongs to the domain
        return np.ones(shape, dtype=bool)


SO3 = HarmonicGroup("SO3", "S²", "all 3-d rotations; signals on the sphere lifted to SO(3)")


# -- exact rotations, for tests, featurisers and users ------------------------------------------
def rotation_matrix(alpha, beta, gamma):
    """R(α, β, γ) = R_z(α) R_y(β) R_z(γ) (ZYZ Euler angles, active)."""
    def rz(a):
        c, s = np.cos(a), np.sin(a)
        return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    c, s = np.cos(beta), np.sin(beta)
    ry = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
    return rz(alpha) @ ry @ rz(gamma)


def euler_angles(matrix):
    """ZYZ Euler angles (α, β, γ) of a rotation matrix (inverse of :func:`rotation_matrix`)."""
    m = np.asarray(matrix, dtype=np.float64)
    beta = np.arccos(np.clip(m[2, 2], -1.0, 1.0))
    if np.sin(beta) < 1e-12:  # gimbal lock: only α ± γ is defined
        sign = 1.0 if m[2, 2] > 0 else -1.0  # β = 0: R = R_z(α+γ); β = π: R_z(α-γ)·R_y(π)
        return np.arctan2(sign * m[1, 0], sign * m[0, 0]), beta, 0.0
    return np.arctan2(m[1, 2], m[0, 2]), beta, np.arctan2(m[2, 1], -m[2, 0])


def wigner_D(l, alpha, beta, gamma):
    """D^ℓ(α,β,γ): (2ℓ+1, 2ℓ+1), entry [m+ℓ, n+ℓ] = e^{-imα} d^ℓ_mn(β) e^{-inγ}."""
    m = np.arange(-l, l + 1)
    return np.exp(-1j * m[:, None] * alpha) * harmonic.wigner_d(l, beta) \
        * np.exp(-1j * m[None, :] * gamma)


def random_rotation(rng):
    """A Haar-random rotation matrix (from a uniformly random unit quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def rotate_sphere_coefficients(coeffs, matrix):
    """Coefficients of f(R⁻¹x) from those of f: a_ℓ -> D^ℓ(R) a_ℓ, exactly, (..., L, 2L-1)."""
    coeffs = np.asarray(coeffs)
    band = coeffs.shape[-2]
    angles = euler_angles(matrix)
    out = np.zeros_like(coeffs, dtype=np.complex128)
    for l in range(band):
        lo = band - 1 - l
        block = coeffs[..., l, lo:lo + 2 * l + 1]
        out[..., l, lo:lo + 2 * l + 1] = np.einsum("mn,...n->...m", wigner_D(l, *angles), block)
    return out


def rotate_sphere_signal(x, matrix, band):
    """Grid samples (N, 2B, 2B, C) of f(R⁻¹x) for band-limited f: exact, via the harmonics."""
    x = np.asarray(x, dtype=np.float64)
    with x64_context("float64"):
        a = np.asarray(harmonic.sphere_analysis(np.moveaxis(x, -1, -3), band))
        rotated = rotate_sphere_coefficients(a, matrix)
        out = np.asarray(harmonic.sphere_synthesis(rotated, x.shape[-2] // 2))
    return np.moveaxis(out, -3, -1)
