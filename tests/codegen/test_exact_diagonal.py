"""Exact diagonals: the float64 Gram matrix under jit against a long-double reference.

At the sites of a self pair (an input with itself) the relu sees k11 = k22 = k12 and the angle
θ = acos ρ must be exactly 0. Printed naively, k11·k22 − k12² is contracted under jit into a
fused multiply-add that leaves the rounding error of k11·k22 (~1e-16 relative); θ becomes ~1e-8
and K̇ = (π − θ)/(2π) is off by ~1e-9 per site, ~1e-11–1e-10 on the NTK diagonal. The printer's
``sqrt_det`` computes the determinant as (s − k12)(s + k12), s = √(k11 k22), which is exactly 0
there; the runtime takes every self pair (the Gram diagonal, also with symmetric=False, and
pairs of identical inputs) from the self pass, whose variances are bit-identical to the pair's
covariances.

The reference below is independent of kernelc: plain-CNN recursions written out over the joint
(input, site) index in numpy long double (64-bit mantissa on x86; the test is skipped where
long double is just double), with θ = atan2(√det, k12).
"""
from __future__ import annotations

import numpy as np
import pytest

import kernelc

LD = np.longdouble
pytestmark = pytest.mark.skipif(np.finfo(LD).eps > 1e-18,
                                reason="numpy long double is not extended precision here")

N = 3
WS = float(np.sqrt(2))
# case -> (box side, channels, layers of the reference). Which sites XLA contracts into FMAs
# depends on the shapes; on an x86 CPU, measured before the fix:
# * avg_pool: the mnist_cnn pattern (box_full kernels); on the odd 7×7 box the naive determinant
#   left an NTK diagonal error of 8.1e-11 (also with symmetric=False);
# * flatten: per-site box_diag kernels and a relu on the pooled vector; on 6×6×2 the cross pass of
#   (x_i, x_i) (symmetric=False, or kernel_fn(x, x)) was off by 1.4e-9, even with the exact
#   determinant, as its covariances round differently from the self pass's variances.
CASES = {
    "avg_pool": (7, 1, [("conv", WS, 0.1), ("relu",), ("conv", WS, 0.1), ("relu",),
                        ("avg_pool",), ("flatten",), ("dense", 1.0, 0.0)]),
    "flatten": (6, 2, [("conv", 1.4, 0.1), ("relu",), ("conv", 1.3, 0.2), ("relu",),
                       ("conv", 1.5, 0.0), ("relu",), ("flatten",), ("dense", 1.3, 0.2),
                       ("relu",), ("dense", 1.1, 0.05)]),
}


def _text(case: str) -> str:
    box, channels, layers = CASES[case]
    lines = [f"network exact_{case}", "group Z2", f"input {box} x {box} channels {channels}"]
    for layer in layers:
        if layer[0] == "conv":
            lines.append(f"conv(size=3, W_std={layer[1]!r}, b_std={layer[2]!r}, padding=same)")
        elif layer[0] == "dense":
            lines.append(f"dense(1, W_std={layer[1]!r}, b_std={layer[2]!r})")
        else:
            lines.append(layer[0])
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ long-double reference
PI = 4 * np.arctan(LD(1))


def _relu(k11, k12, k22):
    """Arc-cosine maps with θ = atan2(√(k11 k22 − k12²), k12): exactly 0 at k11 = k22 = k12."""
    root = np.sqrt(np.maximum(k11 * k22 - k12 * k12, LD(0)))
    theta = np.arctan2(root, k12)
    return (root + (PI - theta) * k12) / (2 * PI), (PI - theta) / (2 * PI)


def reference(layers, x):
    """(NNGP, NTK) Gram matrices, NTK parameterisation, 3×3 'same' convolutions."""
    x = np.asarray(x, dtype=LD)
    n, b = x.shape[0], x.shape[1]
    feats = x.reshape(n, b * b, -1)
    K = np.einsum("npc,mqc->npmq", feats, feats) / feats.shape[-1]  # (n, sites, n, sites)
    T = np.zeros_like(K)
    for layer in layers:
        kind = layer[0]
        if kind == "conv":
            w2, b2 = LD(layer[1]) ** 2, LD(layer[2]) ** 2
            side = b + 2

            def conv(A):
                P = np.zeros((n, side, side, n, side, side), dtype=LD)
                P[:, 1:-1, 1:-1, :, 1:-1, 1:-1] = A.reshape(n, b, b, n, b, b)
                out = sum(P[:, 1 + u:1 + u + b, 1 + v:1 + v + b, :, 1 + u:1 + u + b, 1 + v:1 + v + b]
                          for u in (-1, 0, 1) for v in (-1, 0, 1))
                return (out / 9).reshape(A.shape)
            K = w2 * conv(K) + b2
            T = w2 * conv(T) + K
        elif kind == "relu":
            M = K.reshape(int(np.sqrt(K.size)), -1)
            var = np.diagonal(M).copy()
            k, kdot = _relu(var[:, None], M, var[None, :])
            K, T = k.reshape(K.shape), kdot.reshape(K.shape) * T
        elif kind == "avg_pool":
            K, T = K.mean(axis=(1, 3), keepdims=True), T.mean(axis=(1, 3), keepdims=True)
        elif kind == "flatten":
            K, T = (np.einsum("nimi->nm", A) / A.shape[1] for A in (K, T))
        elif kind == "dense":
            w2, b2 = LD(layer[1]) ** 2, LD(layer[2]) ** 2
            K = w2 * K + b2
            T = w2 * T + K
    return K, T


# --------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def grams():
    """Per case: the long-double reference and kernelc's float64 Grams (jit) for N inputs."""
    out = {}
    for case, (box, channels, layers) in CASES.items():
        x = np.random.default_rng(1).normal(size=(N, box, box, channels))
        net = kernelc.compile(_text(case))
        out[case] = {
            "ref": dict(zip(("nngp", "ntk"), reference(layers, x))),
            "sym": net.kernel_fn(x, dtype="float64"),
            "full": net.kernel_fn(x, dtype="float64", symmetric=False),
            "cross": net.kernel_fn(x, x[::-1], dtype="float64"),  # x2 holds the same inputs
        }
    return out


def _errors(got, ref):
    err = np.abs(np.asarray(got, dtype=LD) - ref) / np.abs(ref)
    on = np.eye(len(ref), dtype=bool)
    return float(err[on].max()), float(err[~on].max())


# relative error bounds against the long-double reference
BOUNDS = {"nngp": 1e-14, "ntk": 1e-13}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("name", ["nngp", "ntk"])
def test_gram_diagonal_and_off_diagonal_exact(grams, case, name):
    g = grams[case]
    diag, off = _errors(g["sym"][name], g["ref"][name])
    assert diag <= BOUNDS[name], f"{case} {name}: diagonal rel. error {diag:.2e}"
    assert off <= BOUNDS[name], f"{case} {name}: off-diagonal rel. error {off:.2e}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_unsymmetric_gram_has_the_same_diagonal(grams, case):
    """symmetric=False computes every pair i != j in the cross pass, but the diagonal pairs are
    still self pairs: the same values as with symmetry, bit for bit."""
    g = grams[case]
    for name in ("nngp", "ntk"):
        np.testing.assert_array_equal(np.diagonal(g["full"][name]), np.diagonal(g["sym"][name]))
        diag, off = _errors(g["full"][name], g["ref"][name])
        assert max(diag, off) <= BOUNDS[name], (case, name, diag, off)


@pytest.mark.parametrize("case", sorted(CASES))
def test_identical_inputs_of_a_cross_gram_are_self_pairs(grams, case):
    """kernel_fn(x, x[::-1]): the pairs (i, N−1−i) hold one input twice and equal the diagonal
    of the Gram matrix exactly."""
    g = grams[case]
    for name in ("nngp", "ntk"):
        cross = g["cross"][name][:, ::-1]
        np.testing.assert_array_equal(np.diagonal(cross), np.diagonal(g["sym"][name]))
        diag, off = _errors(cross, g["ref"][name])
        assert max(diag, off) <= BOUNDS[name], (case, name, diag, off)
