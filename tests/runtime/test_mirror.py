"""Identity (S) on feature-map outputs (kernelc.runtime.layouts.mirror_pairs): a Gram matrix of
one input set computes the pairs i < j only and takes (j, i) from (i, j) with the positions
swapped (under (R): K̃_ji[t,t'](q) = K̃_ij[t',t](q⁻¹)). Checked against computing every pair
(symmetric=False), in each layout a feature map can be stored in, and in the JAX-native form."""
import functools

import numpy as np
import pytest

import kernelc

SPECS = {
    "box_full": ("Z2", "conv(3, b_std=0.1)\nrelu\nconv(3)"),
    "group_reduced": ("p4m", "lift(3, b_std=0.1)\nrelu\ngconv(3)"),
    "group_general": ("p4m", "lift(3, b_std=0.1)\nrelu\ngconv(3)"),
    "steerable_reduced": ("D4", "lift(3, b_std=0.1)\nrelu\ngconv(3)"),
}


@functools.lru_cache(maxsize=None)
def _compiled(case):
    group, body = SPECS[case]
    text = f"network m\ngroup {group}\ninput 4 x 4 channels 2\n{body}\n"
    return kernelc.compile(text, identities={"R": False} if case == "group_general" else None)


@pytest.mark.parametrize("case", list(SPECS))
def test_mirrored_feature_maps_equal_every_pair_computed(case):
    net = _compiled(case)
    assert net.derivation.decisions["S"].applied
    x = np.random.default_rng(0).normal(size=(3, 4, 4, 2))
    mirrored = net.kernel_fn(x, dtype="float64", fast_maps=False)
    computed = net.kernel_fn(x, dtype="float64", fast_maps=False, symmetric=False)
    for key in ("nngp", "ntk"):
        np.testing.assert_allclose(mirrored[key], computed[key], rtol=1e-11, atol=1e-13)
    if case == "steerable_reduced":  # and the JAX-native form mirrors the same way
        from kernelc.runtime.driver import x64_context
        with x64_context("float64"):
            native = net.kernel(x, get="nngp", fast_maps=False)
        np.testing.assert_allclose(np.asarray(native), computed["nngp"], rtol=1e-11, atol=1e-13)


def test_a_feature_map_on_so3_is_not_mirrored():
    net = kernelc.compile("network s\ngroup SO3\ninput sphere bandlimit 2 channels 1\nlift(2)\n")
    dec = net.derivation.decisions["S"]
    assert not dec.applied and "whose kernels kernelc does not mirror" in dec.reason
    assert net.module.OUTPUT_MIRROR is None
