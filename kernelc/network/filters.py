"""Filter expansion: one dense convolution filter that applies a weight layer to every element
of the point group at once.

A lattice-group layer evaluates, for every output element r ∈ H (the rotational index of the
output),

    lift:  z(t, r) = Σ_{c, y∈S} ω_c(y) f_c(t + ρ(r)y)
    gconv: z(t, r) = Σ_{c, y∈S, s∈R} ω_c(y, s) f_c(t + ρ(r)y, r s)
    conv:  z(t)    = Σ_{c, y∈S} ω_c(y) f_c(t + y)

Each is one ordinary cross-correlation over the bounding box of the support S, with input
channels (q, c) (the group index q of the input times its channels) and output channels (r, d):

    F[o, (q, c), (r, d)] = ω_{c,d}(y_i, s)   if o = ρ(r) y_i and q = r s (s ∈ R),   else 0.

For fixed (o, q, r) at most one (i, s) qualifies (ρ(r) permutes S, s = r⁻¹q), so ``F`` is a
gather from the weights ``ω`` (flattened to (|S|·|R|, C, D), plus a zero row for "no entry").
:func:`expansion_index` builds that gather index once, in numpy, from the group tables; the
network applies it under jit (its gradient is the matching scatter-add).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence, Tuple

import numpy as np


@dataclass(frozen=True)
class FilterExpansion:
    """How one weight layer turns its weights ω (m, |R|, C, D) into a dense filter.

    ``index``: (K, H_in, H_out) ints into ω.reshape(m·|R|, C, D) with the extra row m·|R| = 0,
    K = prod(kbox) the positions of the bounding box of the support (C order);
    ``kbox``: bounding-box side lengths; ``lo``: the smallest offset per axis (box position 0);
    ``pads``: (lo, hi) padding per axis, the same reach the kernel's stencil uses.
    """

    index: np.ndarray
    kbox: Tuple[int, ...]
    lo: Tuple[int, ...]
    pads: Tuple[Tuple[int, int], ...]
    m: int
    n_rot: int
    h_in: int
    h_out: int


def expansion_index(group, support: np.ndarray, out_elements: Sequence[int],
                    in_order: int, rotations: Sequence[int] = (0,)) -> FilterExpansion:
    """Gather index for a layer whose outputs are the elements ``out_elements`` of H.

    lift: ``out_elements = range(|H|)``, ``in_order = 1`` (the input lives on the box),
    ``rotations = (e,)``; gconv: ``out_elements = range(|H|)``, ``in_order = |H|``, ``rotations =
    R``; conv: ``out_elements = (e,)``, ``in_order = 1``.
    """
    support = np.asarray(support, dtype=np.int64)
    m, d = support.shape
    lo = support.min(axis=0)
    hi = support.max(axis=0)
    kbox = tuple(int(v) for v in hi - lo + 1)
    out_elements = [int(r) for r in out_elements]
    rotations = [int(s) for s in rotations]
    n_rot = len(rotations)
    if out_elements == [0]:
        perm = np.arange(m)[None, :]
    else:
        perm = group.offset_permutation(support)          # perm[r, i] = j: ρ(r) y_i = y_j
    position = np.ravel_multi_index(tuple((support - lo).T), kbox)  # support index -> box pos
    sentinel = m * n_rot
    index = np.full((int(np.prod(kbox)), in_order, len(out_elements)), sentinel, dtype=np.int32)
    for a, r in enumerate(out_elements):
        row = perm[0] if out_elements == [0] else perm[r]
        for i in range(m):
            k = position[row[i]]
            for s_idx, s in enumerate(rotations):
                q = int(group.cayley[r, s]) if in_order > 1 else 0
                index[k, q, a] = i * n_rot + s_idx
    pads = tuple((int(max(-a, 0)), int(max(b, 0))) for a, b in zip(lo, hi))
    return FilterExpansion(index, kbox, tuple(int(v) for v in lo), pads, m, n_rot, in_order,
                           len(out_elements))


def expand(weights, exp: FilterExpansion):
    """ω (m, |R|, C, D) -> dense filter (*kbox, H_in·C, H_out·D) for ``lax.conv``."""
    import jax.numpy as jnp
    m, n_rot, c, dout = weights.shape
    flat = jnp.concatenate([weights.reshape(m * n_rot, c, dout),
                            jnp.zeros((1, c, dout), weights.dtype)], axis=0)
    full = flat[exp.index]                                   # (K, H_in, H_out, C, D)
    full = jnp.transpose(full, (0, 1, 3, 2, 4))              # (K, H_in, C, H_out, D)
    return full.reshape(exp.kbox + (exp.h_in * c, exp.h_out * dout))
