"""Finite-width steerable networks (kernelc.families.steerable.network): Monte Carlo means of the
empirical NNGP and NTK against the compiled kernels. A linear network's mean equals its kernel
at every width (every entry within 4.5 standard errors; seeded, so deterministic); through ReLU
the error must fall like width^(-1/2) (slow)."""
import numpy as np
import pytest

import kernelc
from kernelc.network import monte_carlo, network

LINEAR = """network lin
group {group}
input 4 x 4 channels 2
lift(size=3, W_std=1.3, b_std=0.3)
gconv(size=3, W_std=1.1, b_std=0.2)
group_pool
dense(1, W_std=0.9, b_std=0.1)
"""

RELU = """network deep
group C8
input 4 x 4 channels 2
lift(size=3, W_std=1.4, b_std=0.1)
relu
gconv(size=3, W_std=1.4, b_std=0.1)
relu
group_pool
dense(1)
"""


def _z(text, x, width, samples, seed):
    exact = kernelc.compile(text).kernel_fn(x, dtype="float64", fast_maps=False)
    net = network(text)
    mc = monte_carlo(net.init, net.apply, x, width=width, samples=samples, seed=seed,
                     dtype="float64")
    return {k: (v.mean(axis=0) - exact[k]) / (v.std(axis=0, ddof=1) / np.sqrt(samples))
            for k, v in mc.items()}, mc, exact


@pytest.mark.parametrize("group", ["C8", pytest.param("D8", marks=pytest.mark.slow)])
def test_linear_network_matches_monte_carlo(group):
    """Lift and gconv sample their filters from the rotated basis exactly as the rules assume."""
    x = np.random.default_rng(1).normal(size=(2, 4, 4, 2))
    z, _, _ = _z(LINEAR.format(group=group), x, width=3, samples=128, seed=2)
    for key in ("nngp", "ntk"):
        assert np.all(np.abs(z[key]) < 4.5), (key, z[key])


@pytest.mark.slow
def test_relu_network_converges_like_inverse_square_root_of_width():
    """kernelc verify on a C8 ReLU network: the Monte Carlo errors of one network's NNGP and NTK
    fall with slope ≈ −½ in log-log over widths 8..128 (measured −0.434 and −0.437)."""
    from kernelc.verify import verify
    x = np.random.default_rng(3).normal(size=(3, 4, 4, 2))
    report = verify(RELU, x, widths=(8, 16, 32, 64, 128), samples=32, seed=4, progress=False,
                    dtype="float64")
    for key in ("nngp_single", "ntk_single"):
        assert -0.75 < report.slopes[key] < -0.3, (key, report.table())


@pytest.mark.parametrize("group", ["C8", pytest.param("D8", marks=pytest.mark.slow)])
def test_finite_network_is_equivariant_under_the_grid_symmetries(group):
    """kernelc.testing.assert_equivariant on a finite C8/D8 network with an output on G: for
    every grid element h (90° rotations; and reflections for D8), f(ρ(h)x)(t, r) =
    f(x)(ρ(h)⁻¹t, h⁻¹r) — the rotated filters, the regular representation of the gconv and the
    element order of the group agree."""
    import jax
    from kernelc.groups import get_group
    from kernelc.testing import assert_equivariant
    text = (f"network eq\ngroup {group}\ninput 5 x 5 channels 2\nlift(3, b_std=0.1)\nrelu\n"
            "gconv(3, b_std=0.1, width=3)\n")
    net = network(text)
    params = net.init(jax.random.key(0), width=4)
    x = np.random.default_rng(0).normal(size=(2, 5, 5, 2)).astype(np.float32)
    assert_equivariant(net.apply, get_group(group), x, params, atol=1e-5, rtol=1e-5)
    with pytest.raises(AssertionError, match="not equivariant .* under element 1 r45"):
        # a 45° "rotation" that merely permutes pixels by the 90° one is not the group action
        assert_equivariant(net.apply, _Mislabelled(get_group(group)), x, params)


class _Mislabelled:
    """A group whose element 1 (45°) transforms images as element 2 (90°) does: the check must
    notice that the output's group axis then moves by the wrong element."""

    def __init__(self, group):
        self.group = group

    def __getattr__(self, name):
        return getattr(self.group, name)

    @property
    def grid_elements(self):
        return (1,)

    def transform_signal(self, x, h, spatial_axes=None):
        return self.group.transform_signal(x, 2 if h == 1 else h, spatial_axes)
