"""Windowed average pooling, avg_pool(size=k, stride=s) (docs/math/rules.md): compiled kernels
(float64) against the reference's explicit loops, with the identities on (reduced (R) path) and
off (general path), on box and group signals, invariant and feature-map outputs; the (D)
decision around it; (O) declined; the rotation invariance of a pooled p4 kernel when the
windows tile the box symmetrically (and its failure when they do not).

Tolerance 1e-12 relative to the largest reference entry, NNGP and NTK.
"""
from __future__ import annotations

import zlib

import numpy as np
import pytest

from kernelc.families.lattice.orbit import orbit_precondition

from tests.compiler._shared import (ALL_ON, GENERAL, GENERATORS, compiled, conv, gconv, inputs,
                                    kernels, lift, reduced_to_general, ref_to_kernelc_order,
                                    rel_err, spec_text)
from tests.reference.lattice_reference import reference_feature_kernels, reference_kernels

TOL = 1e-12


def window(size, stride=None):
    return {"kind": "avg_pool", "size": size, **({} if stride is None else {"stride": stride})}


RELU, ERF = {"kind": "relu"}, {"kind": "erf"}
POOL, FLAT, DENSE = {"kind": "group_pool"}, {"kind": "flatten"}, {"kind": "dense"}

# id: (group, box, channels, n inputs, layers). Every windowed pool follows a nonlinearity and
# is followed by a weight layer and a relu (Gaussianity typing: pooled activations are not
# Gaussian, the weight layer after them is).
CASES = {
    # plain CNN: non-overlapping 2×2 windows, flatten readout
    "Z2-k2-flatten": ("Z2", (6, 6), 1, 3, [
        conv(W_std=1.3, b_std=0.1), RELU, window(2), conv(W_std=1.2, b_std=0.1), RELU, FLAT,
        {"kind": "dense", "b_std": 0.1}]),
    # overlapping windows (stride < size) on a rectangular box, then the global avg_pool
    "Z2-k3-s1-rect": ("Z2", (5, 6), 2, 3, [
        conv(W_std=1.4), ERF, window(3, 1), conv(W_std=1.1, b_std=0.2), RELU,
        {"kind": "avg_pool"}, FLAT, DENSE]),
    # p4, windows that tile the 4×4 box, a group convolution on the 2×2 pooled box
    "p4-k2": ("p4", (4, 4), 1, 3, [
        lift(W_std=1.3, b_std=0.1), RELU, window(2), gconv(W_std=1.2, b_std=0.1), RELU, POOL,
        DENSE]),
    # p4 with stride > size (gaps) and a leftover row/column: 5×5 -> 2×2
    "p4-k1-s3": ("p4", (5, 5), 1, 2, [
        lift(W_std=1.2), ERF, window(1, 3), gconv(size=1, W_std=1.3), RELU, POOL, DENSE]),
    # non-abelian p4m (general path: |H|² blocks), size-1 gconv keeps XLA compile time short
    "p4m-k2-s1": ("p4m", (4, 4), 1, 2, [
        lift(W_std=1.3, b_std=0.1), RELU, window(2, 1), gconv(size=1, W_std=1.2), RELU, POOL,
        DENSE]),
    # p2 on a rectangular box, windowed pool after a group convolution
    "p2-k2-rect": ("p2", (4, 6), 1, 2, [
        lift(W_std=1.2), ERF, gconv(size=1, W_std=1.1, b_std=0.1), RELU, window(2),
        gconv(size=1, W_std=1.2), RELU, POOL, DENSE]),
}

# fast: the plain CNN both ways, p4 on the reduced path, p2 on the general path (~2-3 s each,
# XLA compilation); the other runs (the p4 general path, p4m, ...) are slow
FAST = {("Z2-k2-flatten", "on"), ("Z2-k2-flatten", "off"), ("p4-k2", "on"), ("p2-k2-rect", "off")}
RUNS = [pytest.param(c, ids, marks=() if (c, ids) in FAST else pytest.mark.slow)
        for c in sorted(CASES) for ids in ("on", "off")]


def _spec_and_inputs(case_id):
    group, box, ch, n, layers = CASES[case_id]
    return spec_text(group, box, ch, layers), inputs(zlib.crc32(case_id.encode()) % 1000, n,
                                                     box, ch)


_REF = {}


def _reference(case_id):
    if case_id not in _REF:
        group, box, _, _, layers = CASES[case_id]
        _, x = _spec_and_inputs(case_id)
        _REF[case_id] = reference_kernels(layers, GENERATORS[group], "square", box, x)
    return _REF[case_id]


@pytest.mark.parametrize("case_id, identities", RUNS)
def test_windowed_pool_agrees_with_reference(case_id, identities):
    text, x = _spec_and_inputs(case_id)
    k_ref, t_ref = _reference(case_id)
    net = compiled(text, ALL_ON if identities == "on" else GENERAL)
    layouts = {nd.layout.kind for nd in net.derivation.nodes}
    if CASES[case_id][0] != "Z2":  # the group path actually taken
        assert ("group_reduced" if identities == "on" else "group_general") in layouts
    out = kernels(text, ALL_ON if identities == "on" else GENERAL, x)
    assert rel_err(out["nngp"], k_ref) <= TOL
    assert rel_err(out["ntk"], t_ref) <= TOL


FEATURE_NETS = {
    "Z2": ((5, 5), [conv(W_std=1.3, b_std=0.1), RELU, window(2, 2)]),
    "p4": ((5, 5), [lift(W_std=1.3, b_std=0.1), ERF, gconv(size=1), RELU, window(3, 2)]),
}


@pytest.mark.parametrize("group, identities", [
    ("Z2", "on"), pytest.param("Z2", "off", marks=pytest.mark.slow),
    pytest.param("p4", "on", marks=pytest.mark.slow),
    pytest.param("p4", "off", marks=pytest.mark.slow)])
def test_windowed_pool_feature_map_output(group, identities):
    """A windowed pool as the last layer: the feature kernels of the pooled box, every pair of
    positions (and, on G, of elements) against the reference's general layout."""
    box, layers = FEATURE_NETS[group]
    text = spec_text(group, box, 1, layers)
    x1, x2 = inputs(5, 2, box, 1), inputs(6, 1, box, 1)
    net = compiled(text, ALL_ON if identities == "on" else GENERAL)
    out = kernels(text, ALL_ON if identities == "on" else GENERAL, x1, x2)
    ref = reference_feature_kernels(layers, GENERATORS[group], "square", box, x1, x2)
    d = len(box)
    for name in ("nngp", "ntk"):
        got = out[name]
        if group != "Z2":
            G = net.derivation.group
            if identities == "on":
                got = reduced_to_general(got, G, d)
            want = ref_to_kernelc_order(ref[name], ref["elements"], G.elements, d)
        else:
            want = ref[name]
        assert got.shape == want.shape
        assert rel_err(got, want) <= TOL


# ------------------------------------------------------------------------------ identities
def test_D_is_declined_before_a_windowed_pool_and_kernels_are_exact():
    """(D) keeps no node diagonal before the pool (it reads site pairs t ≠ t'), nor right after
    it (a diagonal cannot be taken from the pooled full kernel by the next weight layer)."""
    text, x = _spec_and_inputs("Z2-k2-flatten")
    net = compiled(text, ALL_ON)
    dec = net.derivation.decisions["D"]
    assert not dec.applied and "pooled signal" in dec.reason
    assert not {nd.layout.kind for nd in net.derivation.nodes} & {"box_diag", "group_diag"}
    # without the pool, (D) holds on the same network
    group, box, ch, _, layers = CASES["Z2-k2-flatten"]
    plain = compiled(spec_text(group, box, ch, [l for l in layers if l["kind"] != "avg_pool"]))
    assert plain.derivation.decisions["D"].applied


def test_D_with_a_branch_that_pools():
    """A block whose branches are a valid convolution and a windowed pool of the same output
    box: the shared block input feeds a pooling layer, so (D) keeps all pairs everywhere (it
    used to keep the other branch diagonal: 'branches have different layouts')."""
    layers = [conv(W_std=1.3, b_std=0.1),
              {"kind": "residual", "branches": [[conv(W_std=1.2, padding="valid")],
                                                [window(3, 1)]]},
              RELU, FLAT, DENSE]
    text = spec_text("Z2", (5, 5), 1, layers)
    x = inputs(9, 3, (5, 5), 1)
    k_ref, t_ref = reference_kernels(layers, [], "square", (5, 5), x)
    assert not compiled(text, ALL_ON).derivation.decisions["D"].applied
    out = kernels(text, ALL_ON, x)
    assert rel_err(out["nngp"], k_ref) <= TOL and rel_err(out["ntk"], t_ref) <= TOL


def test_O_is_declined_with_a_windowed_pool():
    text, _ = _spec_and_inputs("p4-k2")
    net = compiled(text)
    ok, reason = orbit_precondition(net.typed)
    assert not ok and "avg_pool" in reason
    assert not net.derivation.decisions["O"].applied


def _orbit(group, x):
    return np.concatenate([np.asarray(group.transform_signal(x, h, spatial_axes=(1, 2)))
                           for h in range(group.order)])


def _invariance_gap(box, size, stride):
    """max over h, h' of |K(ρ(h)x1, ρ(h')x2) − K(x1, x2)| / max|K| for a pooled p4 network."""
    layers = [lift(W_std=1.3, b_std=0.1), ERF, window(size, stride), gconv(W_std=1.2), ERF,
              POOL, DENSE]
    text = spec_text("p4", box, 1, layers)
    G = compiled(text).derivation.group
    x = inputs(13, 2, box, 1)
    out = kernels(text, ALL_ON, _orbit(G, x[:1]), _orbit(G, x[1:]))
    return max(rel_err(out[k], np.full_like(out[k], out[k][0, 0])) for k in ("nngp", "ntk"))


@pytest.mark.slow
def test_p4_invariance_when_the_windows_tile_symmetrically():
    """(E) survives the pool when ρ(h) maps windows to windows: (n − k) divisible by s
    (6×6, k = s = 2). With a leftover row and column (5×5, k = s = 2) it does not hold, which
    shows that the check can fail."""
    assert _invariance_gap((6, 6), 2, 2) <= 1e-12
    assert _invariance_gap((5, 5), 2, 2) > 1e-4


def test_plan_reports_entries_and_flops_of_the_window_mean():
    text, _ = _spec_and_inputs("p4-k2")
    net = compiled(text, ALL_ON)
    nd = next(n for n in net.derivation.nodes if n.kind == "avg_pool")
    (op,) = nd.ops
    assert nd.layout.kind == "group_reduced" and nd.layout.box == (2, 2)
    assert op.entries == 4 * 2 ** 4
    # four axis passes of one addition per entry (4·4·4·4 -> 2·4·4·4 -> ... -> 2·2·2·2
    # entries, times |H| = 4), then one division per output entry
    assert op.flops == 4 * (2 * 4 ** 3 + 4 * 4 ** 2 + 8 * 4 + 16) + 4 * 16
    assert "window_mean(" in op.lines[0].source() and "(1/2^4)" in op.formula
