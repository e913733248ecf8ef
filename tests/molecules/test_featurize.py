"""Per-atom spherical signals: Funk–Hecke coefficients, exact projection, symmetries, errors."""
import os
import re

import jax
import numpy as np
import pytest

from kernelc.errors import InputError
from kernelc.runtime import harmonic
from kernelc.molecules import featurize as F

from ._common import R_TOY, Z_TOY, analysis, padded_dataset, rotate_coefficients, rotation

BAND = 4


def grid_directions(bandwidth):
    """Unit vectors n̂(θ_j, φ_k) of the Driscoll–Healy grid: (2B, 2B, 3)."""
    theta, phi = harmonic.grid_angles(bandwidth)
    st = np.sin(theta)[:, None]
    return np.stack([st * np.cos(phi), st * np.sin(phi), np.cos(theta)[:, None] + 0 * phi], -1)


def brute_force_signals(Z, R, bandwidth, powers=F.DEFAULT_POWERS):
    """s_i,c(n̂) evaluated pointwise on a grid from the definition: (n, C, 2B, 2B)."""
    n_hat = grid_directions(bandwidth)
    out = np.zeros((len(Z), F.n_channels(powers), 2 * bandwidth, 2 * bandwidth))
    for i in range(len(Z)):
        for j in range(len(Z)):
            if i != j:
                d = R[j] - R[i]
                r = np.linalg.norm(d)
                for q, p in enumerate(powers):
                    c = F.ELEMENTS.index(Z[j]) * len(powers) + q
                    out[i, c] += Z[i] * Z[j] / r ** p * F.bump(n_hat @ (d / r))
    return out


def test_bump_has_95_percent_falloff_at_45_degrees():
    assert F.bump(1.0) == 1.0
    assert F.bump(np.cos(np.pi / 4)) == pytest.approx(0.05, rel=1e-12)
    assert F.BETA == pytest.approx((1 - np.cos(np.pi / 4)) ** 2 / np.log(20))


def test_zonal_coefficients_match_direct_quadrature():
    # g_ℓ = 2π ∫ g(t) P_ℓ(t) dt, here by a fine midpoint rule in θ (t = cos θ, dt = sin θ dθ)
    band = 12
    n = 20000
    theta = (np.arange(n) + 0.5) * np.pi / n
    t = np.cos(theta)
    direct = 2 * np.pi * F.legendre_table(band, t) @ (F.bump(t) * np.sin(theta)) * np.pi / n
    np.testing.assert_allclose(F.zonal_coefficients(band), direct, rtol=0, atol=1e-8)
    # Legendre recurrence against numpy's
    for l in range(band):
        np.testing.assert_allclose(F.legendre_table(band, t[:50])[l],
                                   np.polynomial.legendre.Legendre.basis(l)(t[:50]), atol=1e-13)


def test_funk_hecke_on_an_off_axis_direction():
    # coefficients of g(r̂·n̂) by Driscoll–Healy quadrature of the sampled function = g_ℓ conj(Y(r̂))
    r_hat = np.array([0.3, -0.5, 0.8]) / np.linalg.norm([0.3, -0.5, 0.8])
    samples = F.bump(grid_directions(32) @ r_hat)
    with jax.enable_x64(True):
        numeric = np.asarray(harmonic.sphere_analysis(samples, 8))
    exact = F.zonal_coefficients(8)[:, None] * F.conj_harmonics(r_hat, 8)
    np.testing.assert_allclose(numeric, exact, rtol=0, atol=1e-13)


def test_conj_harmonics_match_the_harmonic_module_grid():
    # Y on the grid from sphere_synthesis of unit coefficients vs. our pointwise evaluation
    bandwidth = 5
    dirs = grid_directions(bandwidth)
    ours = np.conj(F.conj_harmonics(dirs, BAND))  # (2B, 2B, L, M)
    for l in range(BAND):
        for m in range(-l, l + 1):
            for part in (1.0, 1j):  # synthesis keeps the real part: probe Re and Im of Y_ℓm
                a = np.zeros((BAND, 2 * BAND - 1), complex)
                a[l, m + BAND - 1] = np.conj(part)
                with jax.enable_x64(True):
                    grid = np.asarray(harmonic.sphere_synthesis(a, bandwidth))
                expected = np.real(ours[..., l, m + BAND - 1] * np.conj(part))
                np.testing.assert_allclose(grid, expected, atol=1e-13)


def test_projection_matches_brute_force_grid_projection():
    """Compare at the level of coefficients ℓ < band: analyse the pointwise signal on a fine grid.

    Tolerance: the Driscoll–Healy rule of bandwidth B integrates s·conj(Y_ℓm) exactly when s has
    band limit ≤ 2B − ℓ; the neglected tail of s is Σ |g_ℓ'| for ℓ' ≥ 2B − band, which for B = 32
    is below 1e-14 (g_ℓ ≈ 7e-12 at ℓ = 48 and falls super-exponentially), so only round-off
    remains. 1e-11 relative leaves margin for the summation order."""
    exact = F.atom_coefficients(Z_TOY, R_TOY, BAND)
    numeric = analysis(np.moveaxis(brute_force_signals(Z_TOY, R_TOY, 32), 1, -1), BAND)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(numeric / scale, exact / scale, rtol=0, atol=1e-11)


def test_signals_are_the_synthesis_of_the_coefficients():
    coeffs = F.atom_coefficients(Z_TOY, R_TOY, BAND)
    for bandwidth in (None, 6):
        signals = F.atom_signals(Z_TOY, R_TOY, BAND, bandwidth=bandwidth)
        B = bandwidth or BAND
        assert signals.shape == (len(Z_TOY), 2 * B, 2 * B, 10) and signals.dtype == np.float64
        with jax.enable_x64(True):
            reference = np.asarray(harmonic.sphere_synthesis(coeffs, B))
        np.testing.assert_allclose(signals, np.moveaxis(reference, 1, -1), atol=1e-12)
        np.testing.assert_allclose(analysis(signals, BAND), coeffs, atol=1e-12)


def test_coefficients_of_a_real_signal_have_conjugate_symmetry():
    a = F.atom_coefficients(Z_TOY, R_TOY, BAND)
    m = np.arange(-(BAND - 1), BAND)
    np.testing.assert_allclose(a[..., ::-1], (-1.0) ** m * np.conj(a), atol=1e-13)


def test_channel_order_is_element_major_then_power():
    # a carbon with one H along +x at 1.1 Å and one O along +z at 1.3 Å, powers (1, 2, 3)
    Z = np.array([6, 1, 8])
    R = np.array([[0.0, 0, 0], [1.1, 0, 0], [0, 0, 1.3]])
    powers = (1, 2, 3)
    a = F.atom_coefficients(Z, R, BAND, powers)
    assert a.shape == (3, 15, BAND, 2 * BAND - 1)
    norms = np.linalg.norm(a[0].reshape(15, -1), axis=1)
    h, o = F.ELEMENTS.index(1), F.ELEMENTS.index(8)
    nonzero = {h * 3 + q for q in range(3)} | {o * 3 + q for q in range(3)}
    assert set(np.flatnonzero(norms > 0)) == nonzero
    # within an element the powers differ by the factor r: channel p+1 = channel p / r
    np.testing.assert_allclose(a[0, h * 3 + 1], a[0, h * 3] / 1.1, rtol=1e-13)
    np.testing.assert_allclose(a[0, o * 3 + 2], a[0, o * 3] / 1.3 ** 2, rtol=1e-13)
    # channel (C, H, p=1) of the carbon: Z_C Z_H / r · g_ℓ conj(Y_ℓm(+x))
    expected = 6 * 1 / 1.1 * F.zonal_coefficients(BAND)[:, None] \
        * F.conj_harmonics(np.array([1.0, 0, 0]), BAND)
    np.testing.assert_allclose(a[0, h * 3], expected, rtol=1e-13)


def test_single_atom_has_zero_signal():
    a = F.atom_coefficients(np.array([8]), np.zeros((1, 3)), BAND)
    assert a.shape == (1, 10, BAND, 2 * BAND - 1) and not np.any(a)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_rotation_equivariance(seed):
    rng = np.random.default_rng(seed)
    angles = (rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi))
    Q = rotation(*angles)
    band = 6
    a = F.atom_coefficients(Z_TOY, R_TOY, band)
    rotated = F.atom_coefficients(Z_TOY, R_TOY @ Q.T, band)  # every position x -> Q x
    np.testing.assert_allclose(rotated, rotate_coefficients(a, angles), rtol=0,
                               atol=1e-12 * np.abs(a).max())


def test_translation_invariance():
    a = F.atom_coefficients(Z_TOY, R_TOY, BAND)
    moved = F.atom_coefficients(Z_TOY, R_TOY + np.array([3.25, -7.5, 11.0]), BAND)
    np.testing.assert_allclose(moved, a, rtol=0, atol=1e-12 * np.abs(a).max())


def test_atom_permutation_permutes_features():
    perm = np.random.default_rng(3).permutation(len(Z_TOY))
    a = F.atom_coefficients(Z_TOY, R_TOY, BAND)
    np.testing.assert_allclose(F.atom_coefficients(Z_TOY[perm], R_TOY[perm], BAND), a[perm],
                               rtol=0, atol=1e-12 * np.abs(a).max())
    s = F.atom_signals(Z_TOY, R_TOY, BAND)
    np.testing.assert_allclose(F.atom_signals(Z_TOY[perm], R_TOY[perm], BAND), s[perm],
                               rtol=0, atol=1e-12 * np.abs(s).max())


# -- datasets ----------------------------------------------------------------------------------
def toy_molecules():
    return [(Z_TOY, R_TOY), (np.array([6, 1, 1, 1, 1]),
                             np.array([[0, 0, 0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63],
                                       [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]])),
            (np.array([8, 1, 1]), np.array([[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]]))]


def test_featurize_dataset_layout_and_scale():
    data = padded_dataset(toy_molecules(), energies=[-1.0, -2.0, -3.0])
    out = F.featurize_dataset(data, [2, 0], BAND)
    sizes = [3, 7]
    assert out.n_molecules == 2
    np.testing.assert_array_equal(out.offsets, [0, 3, 10])
    np.testing.assert_array_equal(out.molecule, [0] * 3 + [1] * 7)
    np.testing.assert_array_equal(out.energy, [-3.0, -1.0])
    np.testing.assert_array_equal(out.Z, np.concatenate([[8, 1, 1], Z_TOY]))
    np.testing.assert_array_equal(out.indices, [2, 0])
    assert out.signals.shape == (sum(sizes), 2 * BAND, 2 * BAND, 10)
    assert np.sqrt(np.mean(out.signals ** 2)) == pytest.approx(1.0)  # default scale: RMS
    raw = F.atom_signals(Z_TOY, R_TOY, BAND)
    np.testing.assert_allclose(out.signals[3:] * out.scale, raw, rtol=1e-12, atol=1e-12)
    # a test set reuses the training scale
    test = F.featurize_dataset(data, [1], BAND, scale=out.scale, bandwidth=5)
    assert test.scale == out.scale and test.signals.shape == (5, 10, 10, 10)
    np.testing.assert_allclose(test.signals * out.scale,
                               F.atom_signals(*toy_molecules()[1], BAND, bandwidth=5), atol=1e-12)


def _qm9_path():
    here = os.path.dirname(os.path.abspath(__file__))
    for path in ("/work/shared/data/qm9_subset.npz",
                 os.path.join(here, "..", "..", "..", "shared", "data", "qm9_subset.npz")):
        if os.path.exists(path):
            return path
    return None


@pytest.mark.skipif(_qm9_path() is None,
                    reason="QM9 subset not found at /work/shared/data/qm9_subset.npz or "
                           "../shared/data/qm9_subset.npz relative to the repository")
def test_featurize_real_qm9_molecules():
    path = _qm9_path()
    with np.load(path) as raw:
        n_atoms, energy = raw["n_atoms"][:5], raw["U0_atomization"][:5]
    out = F.featurize_dataset(path, np.arange(5), BAND)
    assert out.offsets[-1] == n_atoms.sum() and len(out.Z) == n_atoms.sum()
    assert set(np.unique(out.Z)) <= set(F.ELEMENTS)
    np.testing.assert_array_equal(out.energy, energy)
    assert np.all(np.isfinite(out.signals)) and 1.0 < out.scale < 100.0


# -- errors ------------------------------------------------------------------------------------
def test_unknown_element_lists_supported_ones():
    with pytest.raises(InputError, match=r"unknown element.*\[17\].*H \(1\), C \(6\)"):
        F.atom_coefficients(np.array([6, 17]), np.eye(2, 3), BAND)


def test_coincident_atoms():
    with pytest.raises(InputError, match="coincident atoms 0 and 2"):
        F.atom_coefficients(np.array([6, 1, 1]), np.array([[0, 0, 0], [1.0, 0, 0], [0, 0, 0]]),
                            BAND)


@pytest.mark.parametrize("Z, R", [(np.array([6, 1]), np.zeros((3, 3))),
                                  (np.array([6, 1]), np.zeros((2, 2))),
                                  (np.array([[6, 1]]), np.zeros((2, 3)))])
def test_shape_mismatch(Z, R):
    with pytest.raises(InputError, match="shapes mismatch"):
        F.atom_coefficients(Z, R, BAND)


@pytest.mark.parametrize("band", [0, -1, 2.0, True])
def test_band_must_be_a_positive_integer(band):
    with pytest.raises(InputError, match="band must be an integer ≥ 1"):
        F.atom_coefficients(Z_TOY, R_TOY, band)
    with pytest.raises(InputError, match="band must be an integer ≥ 1"):
        F.atom_signals(Z_TOY, R_TOY, band)
    with pytest.raises(InputError, match="band must be an integer ≥ 1"):
        F.featurize_dataset(padded_dataset(toy_molecules()), [0], band)


def test_other_input_errors():
    with pytest.raises(InputError, match="band 65 exceeds the largest supported 64"):
        F.atom_coefficients(Z_TOY, R_TOY, 65)
    with pytest.raises(InputError, match="at least one atom"):
        F.atom_coefficients(np.zeros(0, int), np.zeros((0, 3)), BAND)
    with pytest.raises(InputError, match="NaN or infinite"):
        F.atom_coefficients(np.array([6, 1]), np.array([[0, 0, 0], [np.nan, 0, 0]]), BAND)
    with pytest.raises(InputError, match="powers must be a non-empty"):
        F.atom_coefficients(Z_TOY, R_TOY, BAND, powers=())
    with pytest.raises(InputError, match=r"band ≤ bandwidth ≤ 64 \(band 4\), got 3"):
        F.atom_signals(Z_TOY, R_TOY, BAND, bandwidth=3)
    data = padded_dataset(toy_molecules())
    with pytest.raises(InputError, match="indices out of range"):
        F.featurize_dataset(data, [0, 3], BAND)
    with pytest.raises(InputError, match="indices is empty"):
        F.featurize_dataset(data, [], BAND)
    with pytest.raises(InputError, match="1-d array of integers"):
        F.featurize_dataset(data, [0.5], BAND)
    with pytest.raises(InputError, match="scale must be a positive"):
        F.featurize_dataset(data, [0], BAND, scale=0.0)
    with pytest.raises(InputError, match=r"lacks array\(s\) \['U0_atomization'\]"):
        F.featurize_dataset({k: v for k, v in data.items() if k != "U0_atomization"}, [0], BAND)
    with pytest.raises(InputError, match="dataset file not found"):
        F.featurize_dataset("/nonexistent/qm9.npz", [0], BAND)


# -- hostile inputs: each a clear InputError, never a wrong number -----------------------------
@pytest.mark.parametrize("Z, message", [
    (np.array([6.5, 1, 8]),
     r"Z must be integer atomic numbers, got non-integer value\(s\) \[6.5\]"),
    (np.array([np.nan, 1, 8]), r"got non-integer value\(s\) \[nan\]"),
    (np.array(["C", "H", "O"]), "Z must be integer atomic numbers, got dtype <U1"),
    (np.array([True, True, True]), "Z must be integer atomic numbers, got dtype bool"),
    (np.array([6 + 1j, 1, 8]), "Z must be integer atomic numbers, got dtype complex128"),
])
def test_atomic_numbers_must_be_integers(Z, message):
    # int(6.5) made a carbon, a bool a hydrogen; 'C', nan and complex died in int()
    with pytest.raises(InputError, match=message):
        F.atom_coefficients(Z, R_TOY[:3], BAND)
    assert F.atom_coefficients(np.array([6.0, 1.0, 8.0]), R_TOY[:3], BAND).shape[0] == 3


@pytest.mark.parametrize("R, message", [
    (R_TOY[:3] + 1j, "positions R must be real numbers, got dtype complex128"),  # imag dropped
    ([["a", "b", "c"]] * 3, "positions R must be real numbers, got dtype <U1"),
    ([[0, 0], [1, 2, 3], [1, 1, 1]], "positions R must be an array of real numbers, got a ragged"),
    (R_TOY[:3] * 1e200, r"positions R are too large: interatomic distances overflow float64 "
                        r"\(largest \|coordinate\| 1.09e\+200; positions are in Å\)"),
])
def test_positions_must_be_real(R, message):
    with pytest.raises(InputError, match=message):
        F.atom_coefficients(Z_TOY[:3], R, BAND)


@pytest.mark.parametrize("powers", [2, None, "ab", (1 + 1j,), (np.complex128(2),), (True,),
                                    [[1, 2]]])
def test_powers_must_be_real_numbers(powers):
    # a number or None: TypeError of tuple(); complex: imaginary part dropped or a TypeError
    with pytest.raises(InputError, match=r"powers must be a non-empty sequence of finite numbers, "
                                         r"got " + re.escape(repr(powers))):
        F.atom_coefficients(Z_TOY, R_TOY, BAND, powers=powers)
    with pytest.raises(InputError, match="powers must be a non-empty sequence"):
        F.n_channels(powers)


def test_conj_harmonics_and_zonal_coefficients_check_their_arguments():
    with pytest.raises(InputError, match=r"directions must be unit vectors \(norm 1\), got norms "
                                         r"from 1.73205 to 1.73205: divide by np.linalg.norm"):
        F.conj_harmonics(np.array([1.0, 1.0, 1.0]), BAND)  # was silently another direction
    with pytest.raises(InputError, match=r"unit vectors of shape \(\.\.\., 3\), got shape \(2,\)"):
        F.conj_harmonics(np.array([0.0, 1.0]), BAND)
    with pytest.raises(InputError, match="directions must be real numbers, got dtype complex128"):
        F.conj_harmonics(np.array([0, 0, 1 + 1j]), BAND)
    for fn in (lambda b: F.conj_harmonics(np.array([0.0, 0, 1]), b), F.zonal_coefficients):
        for band in (0, -1, 2.0, [3]):  # [3]: unhashable, refused before the cache
            with pytest.raises(InputError, match="band must be an integer ≥ 1"):
                fn(band)
    with pytest.raises(InputError, match=r"beta must be a positive finite number \(the squared "
                                         r"width of the bump in t\), got 0.0"):
        F.zonal_coefficients(BAND, 0.0)
    with pytest.raises(InputError,
                       match=r"order must be an integer ≥ 1 \(Gauss–Legendre nodes\), got 0"):
        F.zonal_coefficients(BAND, F.BETA, 0)


def test_synthesize_needs_a_large_enough_grid():
    # unreachable through atom_signals (its bandwidth check comes first): synthesize directly
    with pytest.raises(InputError, match="band 3 needs a grid of bandwidth ≥ 3, got 2"):
        F.synthesize(np.ones((3, 5)), 2)


def test_dataset_files_that_are_not_npz_archives(tmp_path):
    data = padded_dataset(toy_molecules())
    with pytest.raises(InputError, match="dataset path is a folder, not an .npz file"):
        F.featurize_dataset(tmp_path, [0], BAND)  # IsADirectoryError
    (tmp_path / "text.npz").write_text("Z R n_atoms\n")
    with pytest.raises(InputError, match=r"cannot read dataset file .*text.npz as an .npz archive "
                                         r"of arrays Z, R, n_atoms, U0_atomization \(ValueError"):
        F.featurize_dataset(tmp_path / "text.npz", [0], BAND)  # numpy's "pickled data" error
    (tmp_path / "empty.npz").write_bytes(b"")
    with pytest.raises(InputError, match=r"cannot read dataset file .*empty.npz .*\(EOFError"):
        F.featurize_dataset(tmp_path / "empty.npz", [0], BAND)
    np.save(tmp_path / "z.npy", data["Z"])
    with pytest.raises(InputError, match=r"dataset file .*z.npy holds a single array \(3, 29\), "
                                         r"not an .npz archive"):
        F.featurize_dataset(tmp_path / "z.npy", [0], BAND)  # TypeError: not a context manager
    for value in (None, 3, b"qm9.npz", [1, 2]):
        with pytest.raises(InputError, match="path_or_npz must be the path of an .npz file, an "
                                             "NpzFile or a dict of arrays, got "
                                             + type(value).__name__):
            F.featurize_dataset(value, [0], BAND)


@pytest.mark.parametrize("change, message", [
    # Z[k, :n] with n beyond the slots, or negative, silently dropped atoms; 2.7 became 2
    ({"n_atoms": [7, 30, 3]}, r"n_atoms must be integers from 1 to 29 \(the atom slots of Z and "
                              r"R\); molecule\(s\) \[1\] have \[30\]"),
    ({"n_atoms": [7, -1, 3]}, r"molecule\(s\) \[1\] have \[-1\]"),
    ({"n_atoms": [7, 4.5, 3]}, r"molecule\(s\) \[1\] have \[4.5\]"),
    ({"n_atoms": ["7", "5", "3"]}, "n_atoms must be integers, got dtype <U1"),
    # IndexError / a numpy conversion error / the imaginary part dropped
    ({"n_atoms": [7, 5]}, r"dataset arrays do not fit together: expected Z \(n_mol, max_atoms\), "
                          r"R \(n_mol, max_atoms, 3\), n_atoms \(n_mol,\), U0_atomization "
                          r"\(n_mol,\); got Z \(3, 29\), R \(3, 29, 3\), n_atoms \(2,\), "
                          r"U0_atomization \(3,\)"),
    ({"R": np.zeros((3, 29, 2))}, r"dataset arrays do not fit together.*R \(3, 29, 2\)"),
    ({"Z": np.zeros(29, int)}, r"dataset arrays do not fit together.*got Z \(29,\)"),
    ({"U0_atomization": ["a", "b", "c"]}, "U0_atomization must be real numbers, got dtype <U1"),
    ({"U0_atomization": [1j, 2, 3]}, "U0_atomization must be real numbers, got dtype complex128"),
    ({"Z": np.full((3, 29), 6.5)}, r"Z must be integer atomic numbers, got non-integer"),
    # NaN targets went through to the regression
    ({"U0_atomization": [1.0, np.nan, 3.0]}, r"U0_atomization is NaN or infinite for "
                                             r"molecule\(s\) \[1\]; leave them out of indices"),
])
def test_dataset_arrays_that_do_not_fit(change, message):
    data = {**padded_dataset(toy_molecules()), **{k: np.asarray(v) for k, v in change.items()}}
    with pytest.raises(InputError, match=message):
        F.featurize_dataset(data, [1, 0], BAND)


@pytest.mark.parametrize("scale", ["1", 1 + 1j, np.complex128(2), True, np.array([1.0, 2.0])])
def test_scale_must_be_a_real_number(scale):
    # a complex scale made complex signals, True was 1; a string or an array died in numpy
    with pytest.raises(InputError, match="scale must be a positive finite number, got " +
                       re.escape(repr(scale))):
        F.featurize_dataset(padded_dataset(toy_molecules()), [0], BAND, scale=scale)
    out = F.featurize_dataset(padded_dataset(toy_molecules()), [2], BAND, scale=np.array(2.0))
    assert out.scale == 2.0
