"""The steerable runtime (kernelc.runtime.steerable): the bases, the invariance of their
correlation P under every rotation and reflection, the pixel basis refused off the grid, and the
mixed stencil against a direct sum over offset pairs."""
import numpy as np
import pytest

from kernelc.runtime import steerable as rt
from kernelc.runtime.driver import x64_context


@pytest.mark.parametrize("n,reflections,size", [(8, False, 3), (16, True, 5), (7, True, 3)])
def test_the_rings_basis_correlation_is_rotation_invariant(n, reflections, size):
    """P(R a, R b) = P(a, b) at off-grid points: the span of the basis is closed under every
    rotation and reflection and they act orthogonally on the coefficients (docs/math)."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 20, 2))
    for rot in rt.group_matrices(n, reflections):
        pa = rt.basis_functions("rings", size, None, a)
        pb = rt.basis_functions("rings", size, None, b)
        qa = rt.basis_functions("rings", size, None, a @ rot.T)
        qb = rt.basis_functions("rings", size, None, b @ rot.T)
        np.testing.assert_allclose(np.einsum("ki,ki->i", qa, qb), np.einsum("ki,ki->i", pa, pb),
                                   atol=1e-12)


def test_the_rings_basis_follows_escnn_defaults():
    """3×3: a point at the centre (frequency 0) and the ring of radius 1 with frequencies ≤ 2:
    1 + 1 + 2·2 = 6 functions; 5×5: 1 + 5 + 5 = 11 (outer ring capped at 2)."""
    assert rt.basis_functions("rings", 3).shape == (6, 9)
    assert rt.basis_functions("rings", 5).shape == (11, 25)
    assert rt.basis_functions("rings", 5, max_frequency=1).shape == (7, 25)


def test_the_pixel_basis_is_defined_on_grid_points_only():
    with pytest.raises(ValueError, match="the pixel basis is defined on grid points only"):
        rt.rotated_basis(8, False, "pixel", 3)
    assert rt.rotated_basis(4, True, "pixel", 3).shape == (8, 9, 9)


@pytest.mark.parametrize("grouped", [False, True])
def test_mixed_stencil_is_the_sum_over_offset_pairs(grouped):
    """mixed_stencil against Σ_{i,j} M_q[i,j] k[t+y_i, t'+y_j] written as loops (zero padding)."""
    filt = (4, True, "rings", 3, None)
    coupling = rt.steerable_coupling(*filt)
    order, box = coupling.shape[0], (3, 4)
    rng = np.random.default_rng(0)
    k = rng.normal(size=(2,) + ((order,) if grouped else ()) + box + box)
    with x64_context("float64"):
        got = np.asarray(rt.mixed_stencil(k, filt, ((1, 1), (1, 1)), box, "same"))
    padded = np.pad(k, [(0, 0)] * (k.ndim - 4) + [(1, 1)] * 4)
    want = np.zeros((2, order) + box + box)
    support = rt.support_offsets(3)
    for q in range(order):
        kq = padded[:, q] if grouped else padded
        for i, a in enumerate(support):
            for j, b in enumerate(support):
                want[:, q] += coupling[q, i, j] * kq[:, 1 + a[0]:1 + a[0] + box[0],
                                                    1 + a[1]:1 + a[1] + box[1],
                                                    1 + b[0]:1 + b[0] + box[0],
                                                    1 + b[1]:1 + b[1] + box[1]]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
