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


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow)
                                  if c in ("group_general", "box_full") else c  # ~18 s; the
                                  for c in SPECS])  # unit test below covers their mirrors
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


@pytest.mark.parametrize("kind", ["box_full", "group_general", "group_reduced", "box_diag"])
def test_mirror_pairs_against_the_definition(kind):
    """mirror_pairs on arrays, against K_ji[g, g'] = K_ij[g', g] written out per layout, with
    a right-invariant general kernel for the reduced layout (D3: q ↦ q⁻¹ is not the identity)."""
    from kernelc.families.steerable.group import SteerableGroup
    from kernelc.runtime.layouts import mirror_pairs
    g = SteerableGroup("D3", 3, True)
    h, d, rng = g.order, 2, np.random.default_rng(0)
    general = rng.normal(size=(2, h, 3, 3, h, 3, 3))
    swapped = general.transpose(0, 4, 5, 6, 1, 2, 3)  # K_ji[(t,r),(t',r')] = K_ij[(t',r'),(t,r)]
    if kind == "group_general":
        np.testing.assert_array_equal(mirror_pairs(general, (kind, d, None)), swapped)
    elif kind == "box_full":
        box = general[:, 0, :, :, 0]
        np.testing.assert_array_equal(mirror_pairs(box, (kind, d, None)),
                                      box.transpose(0, 3, 4, 1, 2))
    elif kind == "box_diag":
        diag = general[:, 0, :, :, 0, 0, 0]
        np.testing.assert_array_equal(mirror_pairs(diag, (kind, d, None)), diag)
    else:  # K[(t,r),(t',r')] = K̃[t,t'](r'r⁻¹): build a right-invariant K from a random K̃
        red = rng.normal(size=(2, h, 3, 3, 3, 3))
        q = np.array([[g.cayley[b, g.inverse[a]] for b in range(h)] for a in range(h)])
        full = red[:, q].transpose(0, 1, 3, 4, 2, 5, 6)  # (p, r, t, r', t')
        full_ji = full.transpose(0, 4, 5, 6, 1, 2, 3)
        want = full_ji[:, 0, :, :, :, :, :].transpose(0, 3, 1, 2, 4, 5)  # K̃_ji[t,t'](q)
        got = mirror_pairs(red, (kind, d, tuple(int(i) for i in g.inverse)))
        np.testing.assert_allclose(got, want)
