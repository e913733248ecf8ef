"""The standard parameterisation: same NNGP as ntk; the NTK gets n_in·K_lin + [bias] per weight
layer (weights trained directly, w ~ N(0, σ_w²/fan_in)), computed here by hand."""
import numpy as np
import pytest

import kernelc
from kernelc.errors import SpecError

BODY = """group Z2
input 2 x 2 channels 3
parameterization {p}
flatten
dense(4, W_std=1.5, b_std=0.5)
relu
dense(1, W_std=0.8)
"""


def relu_maps(k11, k12, k22):
    s = np.sqrt(k11 * k22)
    rho = np.clip(k12 / s, -1, 1)
    theta = np.arccos(rho)
    return s * (np.sin(theta) + (np.pi - theta) * rho) / (2 * np.pi), (np.pi - theta) / (2 * np.pi)


def test_standard_ntk_by_hand():
    x = np.random.default_rng(0).normal(size=(3, 2, 2, 3))
    flat = x.reshape(3, -1)
    k0 = flat @ flat.T / 12  # flatten: mean over the 4 sites of (1/3) Σ_c
    k1 = 2.25 * k0 + 0.25
    t1 = 12 * k0 + 1.0  # fan-in 12 (3 channels × 4 sites), bias present
    d = np.diag(k1)
    k2, kdot = relu_maps(d[:, None], k1, d[None, :])
    t2 = kdot * t1
    k3 = 0.64 * k2
    t3 = 0.64 * t2 + 4 * k2  # fan-in 4, no bias
    std = kernelc.compile(BODY.format(p="standard")).kernel_fn(x, dtype="float64")
    ntk = kernelc.compile(BODY.format(p="ntk")).kernel_fn(x, dtype="float64")
    np.testing.assert_allclose(std["nngp"], k3, rtol=1e-12)
    np.testing.assert_allclose(std["ntk"], t3, rtol=1e-12)
    np.testing.assert_allclose(ntk["nngp"], std["nngp"], rtol=1e-12)
    assert not np.allclose(ntk["ntk"], std["ntk"])


def test_standard_needs_widths():
    spec = "group p4\ninput 4 x 4 channels 1\nparameterization standard\nlift(3)\nrelu\ngconv(3)\n"\
           "relu\ngroup_pool\ndense(1)"
    with pytest.raises(SpecError, match="needs the width of the layer feeding gconv1: add width=N"):
        kernelc.check(spec)
    with pytest.raises(SpecError, match="needs the width"):
        kernelc.compile(spec)
    ok = spec.replace("lift(3)", "lift(3, width=16)").replace("gconv(3)", "gconv(3, width=16)")
    assert kernelc.compile(ok).typed.output_type.domain == "vector"
