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
