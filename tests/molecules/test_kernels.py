"""Molecule kernels K(M, M') = Σ_{i∈M} Σ_{j∈M'} k(atom_i, atom_j)."""
import numpy as np
import pytest

from kernelc.errors import InputError
from kernelc.molecules import featurize_dataset, molecule_gram, molecule_kernel_fn

from ._common import R_TOY, Z_TOY, padded_dataset, power_spectrum_kernel, rotation

BAND = 4


def naive_molecule_gram(k, off1, off2):
    out = np.zeros((len(off1) - 1, len(off2) - 1) + k.shape[2:])
    for a in range(len(off1) - 1):
        for b in range(len(off2) - 1):
            for i in range(off1[a], off1[a + 1]):
                for j in range(off2[b], off2[b + 1]):
                    out[a, b] += k[i, j]
    return out


def test_molecule_gram_equals_naive_double_loop():
    rng = np.random.default_rng(0)
    off1, off2 = np.array([0, 2, 5, 6]), np.array([0, 1, 4])
    k = rng.normal(size=(6, 4))
    np.testing.assert_allclose(molecule_gram(k, off1, off2), naive_molecule_gram(k, off1, off2),
                               rtol=1e-13)
    # trailing output axes are carried along
    k3 = rng.normal(size=(6, 4, 2))
    np.testing.assert_allclose(molecule_gram(k3, off1, off2), naive_molecule_gram(k3, off1, off2),
                               rtol=1e-13)
    # offsets2=None: the same atoms on both sides
    ks = rng.normal(size=(6, 6))
    np.testing.assert_allclose(molecule_gram(ks, off1), naive_molecule_gram(ks, off1, off1),
                               rtol=1e-13)


def test_molecule_gram_is_invariant_to_atom_order_within_molecules():
    rng = np.random.default_rng(1)
    offsets = np.array([0, 3, 7, 9])
    x = rng.normal(size=(9, 5))
    k = np.exp(-np.sum((x[:, None] - x[None]) ** 2, -1))
    # shuffle atoms inside each molecule (and the atom kernel with them)
    perm = np.concatenate([lo + rng.permutation(hi - lo) for lo, hi in zip(offsets[:-1],
                                                                          offsets[1:])])
    np.testing.assert_allclose(molecule_gram(k[perm][:, perm], offsets), molecule_gram(k, offsets),
                               rtol=1e-13)


def rigid_copy(Z, R, seed):
    """Rotated, translated and atom-permuted copy of a molecule."""
    rng = np.random.default_rng(seed)
    Q = rotation(*rng.uniform(0, np.pi, size=3) * [2, 1, 2])
    perm = rng.permutation(len(Z))
    return Z[perm], (R @ Q.T + rng.normal(size=3) * 5)[perm]


def test_molecule_kernel_is_invariant_to_rigid_motions_and_permutations():
    water = (np.array([8, 1, 1]), np.array([[0, 0, 0.12], [0, 0.76, -0.47], [0, -0.76, -0.47]]))
    molecules = [(Z_TOY, R_TOY), water, rigid_copy(Z_TOY, R_TOY, 7), rigid_copy(*water, 8)]
    data = featurize_dataset(padded_dataset(molecules), np.arange(4), BAND)
    K = molecule_kernel_fn(power_spectrum_kernel, data, get="nngp", band=BAND)
    assert K.shape == (4, 4)
    np.testing.assert_allclose(K, K.T, rtol=1e-12)
    # molecule 2 is a rigid+permuted copy of molecule 0, molecule 3 of molecule 1
    np.testing.assert_allclose(K[2], K[0], rtol=1e-10)
    np.testing.assert_allclose(K[3], K[1], rtol=1e-10)
    # and the kernel tells the two different molecules apart
    assert not np.isclose(K[0, 0], K[1, 1])
    # rectangular: a test set against a training set (training scale reused)
    test = featurize_dataset(padded_dataset(molecules), np.array([3, 2]), BAND, scale=data.scale)
    K_test = molecule_kernel_fn(power_spectrum_kernel, test, data, get="ntk", band=BAND)
    np.testing.assert_allclose(K_test, K[[3, 2]], rtol=1e-10)


def test_molecule_kernel_fn_aggregates_dicts_and_equals_summing_atom_kernels():
    molecules = [(Z_TOY, R_TOY), (Z_TOY[:4], R_TOY[:4])]
    data = featurize_dataset(padded_dataset(molecules), np.arange(2), BAND)
    both = molecule_kernel_fn(power_spectrum_kernel, data, get=("nngp", "ntk"), band=BAND)
    atom = power_spectrum_kernel(data.signals, band=BAND)
    assert set(both) == {"nngp", "ntk"}
    np.testing.assert_allclose(both["nngp"], naive_molecule_gram(atom, data.offsets, data.offsets),
                               rtol=1e-12)
    np.testing.assert_allclose(both["ntk"], 2 * both["nngp"], rtol=1e-12)


def test_molecule_kernel_fn_passes_arguments_through():
    calls = []

    def fake(x1, x2, get, **kw):
        calls.append((x1.shape, None if x2 is None else x2.shape, get, kw))
        return np.ones((len(x1), len(x1) if x2 is None else len(x2)))

    data = featurize_dataset(padded_dataset([(Z_TOY, R_TOY), (Z_TOY[:2], R_TOY[:2])]),
                             np.arange(2), BAND)
    K = molecule_kernel_fn(fake, data, dtype="float64")
    assert calls == [((9, 8, 8, 10), None, "ntk", {"dtype": "float64"})]
    np.testing.assert_array_equal(K, [[49, 14], [14, 4]])  # n_a · n_b


# -- errors ------------------------------------------------------------------------------------
@pytest.mark.parametrize("offsets, message", [
    (np.array([0, 2, 2, 4]), "strictly increasing"),
    (np.array([1, 2, 4]), "must start at 0 and end at the number of atoms 4"),
    (np.array([0, 2, 3]), "must start at 0 and end at the number of atoms 4"),
    (np.array([0.0, 4.0]), "1-d integer array"),
    (np.array([4]), "1-d integer array"),
])
def test_bad_offsets(offsets, message):
    with pytest.raises(InputError, match=message):
        molecule_gram(np.ones((4, 4)), offsets)


def test_other_kernel_errors():
    with pytest.raises(InputError, match="offsets2 must start at 0 and end at the number of atoms 3"):
        molecule_gram(np.ones((4, 3)), np.array([0, 4]))
    with pytest.raises(InputError, match="at least 2-d"):
        molecule_gram(np.ones(4), np.array([0, 4]))
    with pytest.raises(InputError, match="data1 must be an AtomData"):
        molecule_kernel_fn(power_spectrum_kernel, np.ones((3, 8, 8, 10)))


def test_atom_gram_must_be_numbers():
    # np.add.reduceat of bools is a logical or: a block of four True summed to True, not 4
    with pytest.raises(InputError, match="atom_gram must be numbers, got dtype bool"):
        molecule_gram(np.ones((4, 4), bool), np.array([0, 2, 4]))
    with pytest.raises(InputError, match="atom_gram must be numbers, got dtype <U1"):
        molecule_gram(np.full((4, 4), "a"), np.array([0, 2, 4]))
    np.testing.assert_array_equal(molecule_gram(np.ones((4, 4), np.int64), np.array([0, 2, 4])),
                                  np.full((2, 2), 4))
    # summed in 64 bits: four int8 entries of 100 are 400, not 400 - 256
    np.testing.assert_array_equal(molecule_gram(np.full((4, 4), 100, np.int8),
                                                np.array([0, 2, 4])), np.full((2, 2), 400))


def test_molecule_kernel_fn_checks_the_kernel_and_data2():
    data = featurize_dataset(padded_dataset([(Z_TOY[:2], R_TOY[:2])]), np.arange(1), BAND)
    with pytest.raises(InputError, match=r"atom_kernel_fn must be a function \(x1, x2, get=\.\.\., "
                                         r"\*\*kwargs\) -> Gram matrix, such as a compiled "
                                         r"kernel's kernel_fn, got int"):
        molecule_kernel_fn(3, data)  # TypeError: 'int' object is not callable
    with pytest.raises(InputError, match=r"data2 must be an AtomData \(fields signals and "
                                         r"offsets\), got ndarray"):
        molecule_kernel_fn(power_spectrum_kernel, data, np.ones((2, 8, 8, 10)))
