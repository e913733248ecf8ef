"""Per-atom spherical signals of molecules, computed exactly in harmonic space.

For atom i of a molecule, channel (E, p) (element E ∈ ELEMENTS, power p ∈ powers) is the signal
on the unit sphere

    s_i,(E,p)(n̂) = Σ_{j ≠ i, Z_j = E} Z_i Z_j / r_ij^p · g(r̂_ij · n̂),    r_ij = R_j − R_i,

a bump of shape g(t) = exp(−(t − 1)²/β) pointing from atom i towards each neighbour j, weighted
by a Coulomb-like factor. β is fixed by a 95 % fall-off at 45°: g(cos 45°) = 0.05, i.e.
β = (1 − cos 45°)² / ln 20.

g(r̂ · n̂) is zonal, so by Funk–Hecke its coefficients are a_ℓm = g_ℓ conj(Y_ℓm(r̂)) with
g_ℓ = 2π ∫_{-1}^{1} g(t) P_ℓ(t) dt. The band-limited (ℓ < band) projection of the signal is
therefore, in closed form,

    a_ℓm(i, E, p) = g_ℓ Σ_{j ≠ i, Z_j = E} Z_i Z_j r_ij^{-p} conj(Y_ℓm(r̂_ij)).

No grid is sampled to get these coefficients, so they are exactly rotation equivariant:
rotating every position by Q maps a_ℓ to D^ℓ(Q) a_ℓ (Y, D conventions of
:mod:`kernelc.runtime.harmonic`). They are invariant to translations and equivariant to atom
permutations by construction.

Channel order (channels are the last axis of signals): channel index = element_index ·
len(powers) + power_index, element_index into ELEMENTS = (H, C, N, O, F), power_index into
powers. With the default powers (1, 2): [H/r, H/r², C/r, C/r², N/r, ..., F/r²].
"""
from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from ..runtime import harmonic
from ..runtime.driver import x64_context

ELEMENTS = (1, 6, 7, 8, 9)  # H, C, N, O, F: the QM9 elements
ELEMENT_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F"}
DEFAULT_POWERS = (1, 2)
COS45 = float(np.cos(np.pi / 4))
BETA = (1.0 - COS45) ** 2 / np.log(20.0)  # g(cos 45°) = exp(−ln 20) = 0.05
MIN_DISTANCE = 1e-6  # Å; closer atoms count as coincident (r^-p and r̂ undefined)


def bump(t, beta=BETA):
    """g(t) = exp(−(t − 1)²/β), t = r̂ · n̂ ∈ [−1, 1]."""
    return np.exp(-(np.asarray(t, dtype=np.float64) - 1.0) ** 2 / beta)


def legendre_table(band, t):
    """P_ℓ(t) for ℓ < band by Bonnet's recurrence: (band, *t.shape)."""
    t = np.asarray(t, dtype=np.float64)
    out = np.empty((band,) + t.shape)
    out[0] = 1.0
    if band > 1:
        out[1] = t
    for l in range(1, band - 1):
        out[l + 1] = ((2 * l + 1) * t * out[l] - l * out[l - 1]) / (l + 1)
    return out


def zonal_coefficients(band, beta=BETA, order=200):
    """g_ℓ = 2π ∫_{-1}^{1} g(t) P_ℓ(t) dt for ℓ < band (Funk–Hecke), by Gauss–Legendre quadrature.

    g is smooth (width √β ≈ 0.17 in t), so 200 nodes integrate g·P_ℓ to machine precision for
    every band the harmonic tables support."""
    # checked before the cache: a list as band was "unhashable type: 'list'" from lru_cache
    _check_band(band)
    if isinstance(beta, bool) or not isinstance(beta, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(beta) and beta > 0):
        raise InputError(f"beta must be a positive finite number (the squared width of the bump "
                         f"in t), got {beta!r}")
    if isinstance(order, bool) or not isinstance(order, (int, np.integer)) or order < 1:
        raise InputError(f"order must be an integer ≥ 1 (Gauss–Legendre nodes), got {order!r}")
    return _zonal_coefficients(int(band), float(beta), int(order))


@functools.lru_cache(maxsize=None)
def _zonal_coefficients(band, beta, order):
    """:func:`zonal_coefficients` of checked arguments, computed once per (band, beta, order)."""
    t, w = np.polynomial.legendre.leggauss(order)
    values = 2 * np.pi * legendre_table(band, t) @ (w * bump(t, beta))
    values.setflags(write=False)
    return values


@functools.lru_cache(maxsize=None)
def _d_column_factors(l):
    """Eigenvalues w_k and V_mk conj(V_ℓk) of d^ℓ(β) = V e^{-iβw} V^H, so d^ℓ_m0(β) = Σ_k V_mk e^{-iβw_k} conj(V_ℓk).

    Only the n = 0 column of d^ℓ is needed: this costs O(ℓ²) per direction instead of the
    O(ℓ³) of building the whole matrix with harmonic.wigner_d (same eigen-decomposition, so the
    same conventions and accuracy)."""
    w, v = harmonic.jy_eigen(l)
    return w, (v * v[l].conj()[None, :]).T  # (k, m): V_mk conj(V_ℓk)


def conj_harmonics(directions, band):
    """conj(Y_ℓm(r̂)) of unit vectors r̂ (..., 3), dense zero-padded: (..., band, 2·band − 1).

    Y_ℓm(θ, φ) = sqrt((2ℓ+1)/4π) e^{imφ} d^ℓ_m0(θ), the convention of kernelc.runtime.harmonic."""
    _check_band(band)
    directions = _real_array(directions, "directions")
    if directions.ndim == 0 or directions.shape[-1] != 3:
        raise InputError(f"directions must be unit vectors of shape (..., 3), got shape "
                         f"{directions.shape}")
    norms = np.linalg.norm(directions, axis=-1)
    if norms.size and not np.all(np.abs(norms - 1.0) <= 1e-6):
        # θ = arccos(clip(z)) of a longer vector was silently another direction
        raise InputError(f"directions must be unit vectors (norm 1), got norms from "
                         f"{norms.min():.6g} to {norms.max():.6g}: divide by "
                         "np.linalg.norm(directions, axis=-1, keepdims=True)")
    theta = np.arccos(np.clip(directions[..., 2], -1.0, 1.0))
    phi = np.arctan2(directions[..., 1], directions[..., 0])
    out = np.zeros(directions.shape[:-1] + (band, 2 * band - 1), dtype=np.complex128)
    for l in range(band):
        w, factors = _d_column_factors(l)
        phase = np.exp(-1j * theta[..., None] * w)  # (..., 2ℓ+1) over eigenvalues k
        d_m0 = np.real(phase @ factors)
        m = np.arange(-l, l + 1)
        lo = band - 1 - l
        out[..., l, lo:lo + 2 * l + 1] = (np.sqrt((2 * l + 1) / (4 * np.pi)) * d_m0
                                          * np.exp(-1j * m * phi[..., None]))
    return out


def n_channels(powers=DEFAULT_POWERS):
    return len(ELEMENTS) * len(_check_powers(powers))


def _check_band(band):
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or band < 1:
        raise InputError(f"band must be an integer ≥ 1 (degrees ℓ < band), got {band!r}")
    if band > harmonic.MAX_BANDWIDTH:
        raise InputError(f"band {band} exceeds the largest supported {harmonic.MAX_BANDWIDTH}")


def _real_array(value, what):
    """``value`` as a float64 array; an InputError naming ``what`` for complex numbers (whose
    imaginary part a float64 cast drops), strings, bools, objects and ragged sequences."""
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged nested sequences
        raise InputError(f"{what} must be an array of real numbers, got a ragged "
                         "sequence") from None
    if arr.dtype.kind not in "iuf":
        raise InputError(f"{what} must be real numbers, got dtype {arr.dtype}")
    return arr.astype(np.float64)


def _check_powers(powers):
    """``powers`` as a tuple of finite real numbers (not bools, not complex)."""
    try:
        values = tuple(powers)
    except TypeError:  # a number, None
        values = ()
    if not values or any(isinstance(p, (bool, np.bool_))
                         or not isinstance(p, (int, float, np.integer, np.floating))
                         or not np.isfinite(p) for p in values):
        raise InputError(f"powers must be a non-empty sequence of finite numbers, got {powers!r}")
    return values


def _check_molecule(Z, R, band, powers):
    Z = np.asarray(Z)
    R = _real_array(R, "positions R")
    _check_band(band)
    if Z.dtype.kind not in "iuf" or (Z.dtype.kind == "f" and not np.all(Z == np.round(Z))):
        # int(6.5) was 6 (a silent carbon), int('C') / int(nan) / a bool (hydrogen) got through
        shown = f"dtype {Z.dtype}" if Z.dtype.kind != "f" else \
            f"non-integer value(s) {Z[Z != np.round(Z)][:3].tolist()}"
        raise InputError(f"Z must be integer atomic numbers, got {shown}")
    if Z.ndim != 1 or R.ndim != 2 or R.shape != (Z.shape[0], 3):
        raise InputError(f"shapes mismatch: Z must be (n,) and R (n, 3), got Z {Z.shape} and "
                         f"R {R.shape}")
    if Z.shape[0] == 0:
        raise InputError("a molecule needs at least one atom")
    if not np.all(np.isfinite(R)):
        raise InputError("positions R contain NaN or infinite values")
    unknown = sorted(set(int(z) for z in Z) - set(ELEMENTS))
    if unknown:
        supported = ", ".join(f"{ELEMENT_SYMBOLS[e]} ({e})" for e in ELEMENTS)
        raise InputError(f"unknown element(s) with atomic number {unknown}; supported elements: "
                         f"{supported}")
    return Z.astype(np.int64), R, _check_powers(powers)


def atom_coefficients(Z, R, band, powers=DEFAULT_POWERS):
    """Exact band-limited coefficients of every atom's signal in one molecule.

    Z (n,) atomic numbers, R (n, 3) positions (no padding). Returns complex128
    (n, C, band, 2·band − 1), C = len(ELEMENTS)·len(powers), index [i, c, ℓ, m + band − 1]:
    a_ℓm(i, E, p) = g_ℓ Σ_{j≠i, Z_j=E} Z_i Z_j r_ij^{-p} conj(Y_ℓm(r̂_ij)), r_ij = R_j − R_i."""
    Z, R, powers = _check_molecule(Z, R, band, powers)
    n = Z.shape[0]
    diff = R[None, :, :] - R[:, None, :]  # [i, j] = R_j − R_i
    with np.errstate(over="ignore"):  # refused just below, with its own message
        dist = np.linalg.norm(diff, axis=-1)
    if not np.all(np.isfinite(dist)):  # |R| ~1e155 and more: r̂ = diff / inf was 0, no direction
        raise InputError(f"positions R are too large: interatomic distances overflow float64 "
                         f"(largest |coordinate| {np.abs(R).max():.3g}; positions are in Å)")
    off = ~np.eye(n, dtype=bool)
    close = off & (dist < MIN_DISTANCE)
    if np.any(close):
        i, j = np.argwhere(close)[0]
        raise InputError(f"coincident atoms {i} and {j} (distance {dist[i, j]:.3g} Å < "
                         f"{MIN_DISTANCE} Å): directions and 1/r^p are undefined")
    safe = np.where(off, dist, 1.0)  # the diagonal gets weight 0; avoid 0/0 there
    directions = np.where(off[..., None], diff / safe[..., None], np.array([0.0, 0.0, 1.0]))
    onehot = (Z[:, None] == np.asarray(ELEMENTS)[None, :]).astype(np.float64)  # (n, E)
    inv_pow = safe[..., None] ** -np.asarray(powers, dtype=np.float64)  # (n, n, P)
    # weight of neighbour j in channel (e, p) of atom i; channel index = e·P + p
    weight = (Z[:, None, None, None] * Z[None, :, None, None] * off[..., None, None]
              * onehot[None, :, :, None] * inv_pow[:, :, None, :]).reshape(n, n, -1)
    harm = conj_harmonics(directions, band)  # (n, n, L, M)
    # Σ_j weight[i, j, c] harm[i, j, ℓ, m] as one batched matmul (einsum does not use BLAS here)
    coeffs = (weight.transpose(0, 2, 1) @ harm.reshape(n, n, -1)).reshape(n, -1, *harm.shape[2:])
    return coeffs * zonal_coefficients(band)[:, None]


def synthesize(coeffs, bandwidth):
    """Real grid samples of Σ a_ℓm Y_ℓm on the Driscoll–Healy grid: (..., L, M) -> (..., 2B, 2B),
    float64 (harmonic.sphere_synthesis in a local x64 context; global JAX flags untouched)."""
    coeffs = np.asarray(coeffs, dtype=np.complex128)
    band = coeffs.shape[-2]
    if band > bandwidth:
        raise InputError(f"band {band} needs a grid of bandwidth ≥ {band}, got {bandwidth}")
    with x64_context("float64"):
        return np.asarray(harmonic.sphere_synthesis(coeffs, bandwidth), dtype=np.float64)


def atom_signals(Z, R, band, powers=DEFAULT_POWERS, bandwidth=None):
    """Grid samples of every atom's band-limited signal, channels last: (n, 2B, 2B, C) float64.

    B = bandwidth or band; axes [atom, θ_j, φ_k, channel] on the grid of harmonic.grid_angles(B),
    the input layout of compiled SO(3) kernels. Exact samples of the band-limited projection."""
    _check_band(band)
    bandwidth = band if bandwidth is None else bandwidth
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, np.integer)) \
            or not band <= bandwidth <= harmonic.MAX_BANDWIDTH:
        raise InputError(f"bandwidth must be an integer with band ≤ bandwidth ≤ "
                         f"{harmonic.MAX_BANDWIDTH} (band {band!r}), got {bandwidth!r}")
    coeffs = atom_coefficients(Z, R, band, powers)
    return np.moveaxis(synthesize(coeffs, int(bandwidth)), 1, -1)


@dataclass(frozen=True)
class AtomData:
    """Featurised molecules, flattened to atoms.

    signals  (total_atoms, 2B, 2B, C) float64, already divided by ``scale``
    molecule (total_atoms,) index k of the atom's molecule among the selected ones
    offsets  (n_mol + 1,) atoms of molecule k are signals[offsets[k]:offsets[k + 1]]
    energy   (n_mol,) U0_atomization in Hartree (unscaled)
    Z        (total_atoms,) atomic numbers
    scale    the divisor applied to the raw signals (reuse the training one for test sets)
    indices  (n_mol,) rows of the source file the molecules came from
    """

    signals: np.ndarray
    molecule: np.ndarray
    offsets: np.ndarray
    energy: np.ndarray
    Z: np.ndarray
    scale: float
    indices: np.ndarray

    @property
    def n_molecules(self) -> int:
        return len(self.offsets) - 1


DATASET_KEYS = ("Z", "R", "n_atoms", "U0_atomization")


def _load(path_or_npz):
    if isinstance(path_or_npz, (str, os.PathLike)):
        path = os.fspath(path_or_npz)
        if not os.path.exists(path):
            raise InputError(f"dataset file not found: {path}")
        if os.path.isdir(path):
            raise InputError(f"dataset path is a folder, not an .npz file: {path}")
        try:
            data = np.load(path)
        except (OSError, ValueError, EOFError) as exc:  # a text file, an empty one, a bad zip
            raise InputError(f"cannot read dataset file {path} as an .npz archive of arrays "
                             f"{', '.join(DATASET_KEYS)} ({type(exc).__name__}: {exc})") from None
        if not isinstance(data, Mapping):  # np.load of an .npy file: one array
            raise InputError(f"dataset file {path} holds a single array "
                             f"{getattr(data, 'shape', '')}, not an .npz archive of arrays "
                             f"{', '.join(DATASET_KEYS)}")
        with data:
            return {k: data[k] for k in DATASET_KEYS if k in data}
    if not isinstance(path_or_npz, Mapping):
        raise InputError(f"path_or_npz must be the path of an .npz file, an NpzFile or a dict of "
                         f"arrays, got {type(path_or_npz).__name__}")
    return path_or_npz  # an NpzFile or a dict of arrays


def _check_dataset(Zs, Rs, counts, energy, indices):
    """The dataset's arrays fit together and the selected molecules' atom counts fit Z and R
    (Z[k, :n] of an n beyond the padded width, or negative, silently dropped atoms)."""
    if Zs.ndim != 2 or Rs.shape != Zs.shape + (3,) or counts.shape != Zs.shape[:1] \
            or energy.shape != Zs.shape[:1]:
        raise InputError(f"dataset arrays do not fit together: expected Z (n_mol, max_atoms), "
                         f"R (n_mol, max_atoms, 3), n_atoms (n_mol,), U0_atomization (n_mol,); "
                         f"got Z {Zs.shape}, R {Rs.shape}, n_atoms {counts.shape}, "
                         f"U0_atomization {energy.shape}")
    if energy.dtype.kind not in "iuf":
        raise InputError(f"U0_atomization must be real numbers, got dtype {energy.dtype}")
    unknown = indices[~np.isfinite(energy[indices].astype(np.float64))]
    if len(unknown):  # NaN targets passed through to the regression's solve
        raise InputError(f"U0_atomization is NaN or infinite for molecule(s) "
                         f"{unknown[:5].tolist()}; leave them out of indices")
    if counts.dtype.kind not in "iuf":
        raise InputError(f"n_atoms must be integers, got dtype {counts.dtype}")
    selected = counts[indices]
    fits = (selected == np.round(selected)) & (selected >= 1) & (selected <= Zs.shape[1])
    if not np.all(fits):
        bad = indices[~fits][:5]
        raise InputError(f"n_atoms must be integers from 1 to {Zs.shape[1]} (the atom slots of Z "
                         f"and R); molecule(s) {bad.tolist()} have {counts[bad].tolist()}")


def featurize_dataset(path_or_npz, indices, band, powers=DEFAULT_POWERS, bandwidth=None,
                      scale=None):
    """Featurise the molecules ``indices`` of a QM9-style npz (arrays Z, R, n_atoms, U0_atomization).

    ``scale=None`` divides the signals by the RMS of all signal values of these molecules (the raw
    Z_iZ_j/r^p values are ~10–40); pass the training set's ``AtomData.scale`` for a test set so
    both live in the same units."""
    data = _load(path_or_npz)
    missing = [k for k in DATASET_KEYS if k not in data]
    if missing:
        raise InputError(f"dataset lacks array(s) {missing}; expected Z, R, n_atoms, U0_atomization")
    Zs, Rs, counts, energy = (np.asarray(data[k]) for k in DATASET_KEYS)
    indices = np.asarray(indices)
    if indices.ndim != 1 or (indices.size and not np.issubdtype(indices.dtype, np.integer)):
        raise InputError(f"indices must be a 1-d array of integers, got shape {indices.shape} "
                         f"dtype {indices.dtype}")
    if indices.size == 0:
        raise InputError("indices is empty: select at least one molecule")
    if indices.min() < -len(counts) or indices.max() >= len(counts):
        raise InputError(f"indices out of range for a dataset of {len(counts)} molecules")
    _check_dataset(Zs, Rs, counts, energy, indices)
    if scale is not None and (np.ndim(scale) != 0 or np.asarray(scale).dtype.kind not in "iuf"
                              or not (np.isfinite(scale) and scale > 0)):
        # a complex scale made complex signals, a bool was 1, strings and arrays died in numpy
        raise InputError(f"scale must be a positive finite number, got {scale!r}")
    blocks, zs = [], []
    for k in indices:
        n = int(counts[k])
        # checked as given: .astype(int64) first made 6.5 a carbon
        blocks.append(atom_signals(Zs[k, :n], Rs[k, :n], band, powers, bandwidth))
        zs.append(Zs[k, :n].astype(np.int64))
    sizes = np.array([len(z) for z in zs])
    signals = np.concatenate(blocks)
    if scale is None:
        scale = float(np.sqrt(np.mean(signals ** 2)))
        if scale == 0.0:  # e.g. only single-atom molecules: nothing to normalise
            scale = 1.0
    return AtomData(signals=signals / scale,
                    molecule=np.repeat(np.arange(len(indices)), sizes),
                    offsets=np.concatenate([[0], np.cumsum(sizes)]),
                    energy=energy[indices].astype(np.float64),
                    Z=np.concatenate(zs), scale=float(scale), indices=indices.copy())
