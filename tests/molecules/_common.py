"""Shared helpers of the molecule tests: toy molecules, exact rotations, a toy invariant kernel."""
import jax
import numpy as np

from kernelc.runtime import harmonic

# a small non-symmetric "molecule" with every QM9 element (Å); atoms ~1–2.5 Å apart
Z_TOY = np.array([6, 1, 1, 8, 7, 9, 1])
R_TOY = np.array([[0.00, 0.00, 0.00], [1.09, 0.00, 0.00], [-0.36, 1.03, 0.05],
                  [-0.40, -0.70, 1.10], [0.30, -0.90, -1.20], [-1.30, -0.40, -0.50],
                  [0.80, -1.40, 1.60]])


def rotation(alpha, beta, gamma):
    """Q = R_z(α) R_y(β) R_z(γ) (ZYZ Euler angles, active)."""
    def rz(a):
        return np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1.0]])
    ry = np.array([[np.cos(beta), 0, np.sin(beta)], [0, 1.0, 0], [-np.sin(beta), 0, np.cos(beta)]])
    return rz(alpha) @ ry @ rz(gamma)


def wigner_D(l, alpha, beta, gamma):
    """D^ℓ_mn(α,β,γ) = e^{-imα} d^ℓ_mn(β) e^{-inγ}: (2ℓ+1, 2ℓ+1), index [m+ℓ, n+ℓ]."""
    m = np.arange(-l, l + 1)
    return (np.exp(-1j * m[:, None] * alpha) * harmonic.wigner_d(l, beta)
            * np.exp(-1j * m[None, :] * gamma))


def rotate_coefficients(a, angles):
    """a_ℓ -> D^ℓ(Q) a_ℓ on dense zero-padded (..., L, 2L-1) coefficients."""
    band = a.shape[-2]
    out = np.zeros_like(a)
    for l in range(band):
        lo = band - 1 - l
        out[..., l, lo:lo + 2 * l + 1] = a[..., l, lo:lo + 2 * l + 1] @ wigner_D(l, *angles).T
    return out


def analysis(signals, band):
    """Coefficients (N, C, L, 2L-1) of grid signals (N, 2B, 2B, C), in float64."""
    with jax.enable_x64(True):
        return np.asarray(harmonic.sphere_analysis(np.moveaxis(np.asarray(signals), -1, 1), band))


def power_spectrum_kernel(x1, x2=None, get="ntk", band=4):
    """Toy atom kernel k(a, b) = Σ_{c,ℓ} (Σ_m |a_cℓm|²)(Σ_m |b_cℓm|²): each factor is invariant
    to rotating its own argument (‖D^ℓ a_ℓ‖ = ‖a_ℓ‖), so k is invariant to rotating either one.
    Same calling convention as compiled kernelc kernels."""
    def spectrum(x):
        return np.sum(np.abs(analysis(x, band)) ** 2, axis=-1).reshape(len(x), -1)
    p1 = spectrum(x1)
    p2 = p1 if x2 is None else spectrum(x2)
    gram = p1 @ p2.T
    return gram if isinstance(get, str) else {name: (i + 1) * gram for i, name in enumerate(get)}


def padded_dataset(molecules, energies=None):
    """A QM9-style dict dataset (zero-padded to 29 atoms) from [(Z, R), ...]."""
    n = len(molecules)
    Z = np.zeros((n, 29), np.int8)
    R = np.zeros((n, 29, 3))  # float64, so rotated copies stay exact
    counts = np.array([len(z) for z, _ in molecules], np.int16)
    for k, (z, r) in enumerate(molecules):
        Z[k, :len(z)] = z
        R[k, :len(z)] = r
    energy = np.arange(n, dtype=np.float64) * -0.1 if energies is None else np.asarray(energies)
    return {"Z": Z, "R": R, "n_atoms": counts, "U0_atomization": energy}
