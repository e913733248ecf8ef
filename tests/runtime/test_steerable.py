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


def _direct(k, coupling, size, box, grouped, mode):
    """Σ_{i,j} M_q[i,j] k[t+y_i, t'+y_j](q) by loops: zero padding ('same'), wrapped
    ('circular'), or none ('valid': output site t reads t + r + y, the box shrinks by 2r)."""
    r = size // 2
    lead = k.ndim - 4
    if mode == "valid":
        padded, box = k, tuple(n - 2 * r for n in box)
    else:
        padded = np.pad(k, [(0, 0)] * lead + [(r, r)] * 4,
                        mode="constant" if mode == "same" else "wrap")
    order = coupling.shape[0]
    want = np.zeros((k.shape[0], order) + box + box)
    support = rt.support_offsets(size)
    for q in range(order):
        kq = padded[:, q] if grouped else padded
        for i, a in enumerate(support):
            for j, b in enumerate(support):
                want[:, q] += coupling[q, i, j] * kq[:, r + a[0]:r + a[0] + box[0],
                                                    r + a[1]:r + a[1] + box[1],
                                                    r + b[0]:r + b[0] + box[0],
                                                    r + b[1]:r + b[1] + box[1]]
    return want


@pytest.mark.parametrize("size,grouped,mode", [(3, False, "same"), (3, True, "circular"),
                                               (3, True, "valid"), (5, False, "circular"),
                                               (5, True, "same"), (5, False, "valid")])
def test_mixed_stencil_is_the_sum_over_offset_pairs(size, grouped, mode):
    """mixed_stencil against Σ_{i,j} M_q[i,j] k[t+y_i, t'+y_j] written as loops: 3×3 through
    the fused multiply-adds, 5×5 through the depthwise convolution (FUSED_TERMS)."""
    filt = (4, True, "rings", size, None)
    coupling = rt.steerable_coupling(*filt)
    order, box = coupling.shape[0], (5, 6) if mode == "valid" else (3, 4)
    k = np.random.default_rng(0).normal(size=(2,) + ((order,) if grouped else ()) + box + box)
    r = size // 2
    out = tuple(n - 2 * r for n in box) if mode == "valid" else box
    with x64_context("float64"):
        got = np.asarray(rt.mixed_stencil(k, filt, ((r, r), (r, r)), out, mode))
    want = _direct(k, coupling, size, box, grouped, mode)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("size", [3, 5])
def test_general_mixed_stencil_is_the_reduced_one_per_orientation_pair(size):
    """general_mixed_stencil of a kernel K[(t,r),(t',r')] = K̃[t,t'](r'r⁻¹) (right-invariant)
    equals the reduced stencil read at r'r⁻¹, for both paths (fused and convolution)."""
    filt = (3, True, "rings", size, None)
    from kernelc.families.steerable.group import SteerableGroup
    g = SteerableGroup("D3", 3, True)
    order, box, r = g.order, (3, 3), size // 2
    red = np.random.default_rng(1).normal(size=(2, order) + box + box)
    q = np.array([[g.cayley[b, g.inverse[a]] for b in range(order)] for a in range(order)])
    general = red[:, q].transpose(0, 1, 3, 4, 2, 5, 6)   # (p, r, *box, r', *box)
    pads = ((r, r), (r, r))
    with x64_context("float64"):
        want = np.asarray(rt.mixed_stencil(red, filt, pads, box, "same"))
        got = np.asarray(rt.general_mixed_stencil(general, filt, pads, box, "same"))
        lift = np.asarray(rt.general_mixed_stencil(red[:, 0], filt, pads, box, "same"))
        lift_red = np.asarray(rt.mixed_stencil(red[:, 0], filt, pads, box, "same"))
    np.testing.assert_allclose(got, want[:, q].transpose(0, 1, 3, 4, 2, 5, 6), atol=1e-12)
    np.testing.assert_allclose(lift, lift_red[:, q].transpose(0, 1, 3, 4, 2, 5, 6), atol=1e-12)
