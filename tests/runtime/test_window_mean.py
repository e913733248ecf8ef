"""kernelc.runtime.stencils.window_mean against the loop over window offsets of its docstring."""
import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from kernelc.runtime.stencils import window_mean


def _loop(k, slots, size, stride):
    """K⁺[u, u'] = (1/size^{2d}) Σ_{a,b} K[stride·u + a, stride·u' + b]; ``slots`` lists the d
    axes of each slot."""
    d = len(slots[0])
    out_shape = list(k.shape)
    for axes in slots:
        for ax in axes:
            out_shape[ax] = (k.shape[ax] - size) // stride + 1
    out = np.zeros(out_shape)
    offsets = list(itertools.product(range(size), repeat=d))
    for idx in np.ndindex(*out_shape):
        acc = 0.0
        for a in offsets:
            for b in offsets:
                src = list(idx)
                for axes, off in zip(slots, (a, b)):
                    for ax, o in zip(axes, off):
                        src[ax] = stride * idx[ax] + o
                acc += k[tuple(src)]
        out[idx] = acc / len(offsets) ** 2
    return out


@pytest.mark.parametrize("shape, slots, size, stride", [
    ((2, 5, 6, 5, 6), ((1, 2), (3, 4)), 2, 2),            # box_full, 2-d, leftover site
    ((1, 3, 4, 4, 4, 4), ((2, 3), (4, 5)), 3, 1),         # group_reduced, overlapping windows
    ((1, 2, 5, 2, 5), ((2,), (4,)), 1, 3),                # group_general, 1-d, gaps
    ((1, 4, 3, 5, 4, 3, 5), ((1, 2, 3), (4, 5, 6)), 2, 1),  # 3-d box
])
def test_window_mean_matches_the_loop(shape, slots, size, stride):
    k = np.random.default_rng(0).normal(size=shape)
    axes = tuple(ax for s in slots for ax in s)
    want = _loop(k, slots, size, stride)
    np.testing.assert_allclose(window_mean(k, axes, size, stride), want, rtol=1e-13, atol=1e-14)
    got = np.asarray(window_mean(jnp.asarray(k), axes, size, stride))
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)  # jax default float32
