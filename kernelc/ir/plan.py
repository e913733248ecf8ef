"""The plan: a small kernel-op IR between the symbolic derivation and the JAX code.

A :class:`Layout` says how one layer's kernel is stored per pair of inputs (leading axis ``p``):

=================  ==============================  =========================================
layout             array shape per batch of pairs  entry
=================  ==============================  =========================================
``box_full``       (p, *box, *box)                 K[t, t']
``box_diag``       (p, *box)                       K[t, t]            -- identity (D)
``group_reduced``  (p, H, *box, *box)              K̃[t, t'](q) = K[(t,e), (t',q)]  -- (R)
``group_diag``     (p, *box)                       K̃[t, t](e)         -- (R) and (D)
``group_general``  (p, H, *box, H, *box)           K[(t,r), (t',r')]  -- no identity
``vector``         (p,)                            K
``sphere_coeffs``  2 × (p, C, L, 2L-1) complex     a_cℓm of f and f' (SO(3) family input)
``so3_reduced``    (p, (2B)³ + 1)                  K̃(q) = K[e, q] on the grid, then K̃(e) -- (R)
``so3_general``    (p, (2B)³, (2B)³)               K[g_i, g_j]       -- no identity
=================  ==============================  =========================================

An :class:`Op` is one step of the plan: the JAX source lines it stands for, the formula it
implements (a comment in the generated code) and its cost per pair (entries written, FLOPs).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

LAYOUT_KINDS = ("box_full", "box_diag", "group_reduced", "group_diag", "group_general", "vector",
                "sphere_coeffs", "so3_reduced", "so3_general")


@dataclass(frozen=True)
class Layout:
    kind: str
    box: Tuple[int, ...] = ()
    order: int = 1  # |H|

    @property
    def d(self) -> int:
        return len(self.box)

    @property
    def sites(self) -> int:
        return int(np.prod(self.box)) if self.box else 1

    @property
    def entries(self) -> int:
        """Kernel entries stored per pair of inputs."""
        P, H = self.sites, self.order
        return {"box_full": P * P, "box_diag": P, "group_reduced": H * P * P, "group_diag": P,
                "group_general": H * H * P * P, "vector": 1, "sphere_coeffs": P,
                "so3_reduced": P + 1, "so3_general": P * P}[self.kind]

    @property
    def pair_shape(self) -> Tuple[int, ...]:
        b, H = self.box, self.order
        return {"box_full": b + b, "box_diag": b, "group_reduced": (H,) + b + b,
                "group_diag": b, "group_general": (H,) + b + (H,) + b, "vector": (),
                "sphere_coeffs": b, "so3_reduced": (self.sites + 1,),
                "so3_general": (self.sites, self.sites)}[self.kind]

    @property
    def is_diag(self) -> bool:
        return self.kind in ("box_diag", "group_diag")

    def describe(self) -> str:
        shape = "×".join(map(str, self.pair_shape)) or "1"
        return f"{self.kind} ({shape} per pair)"


@dataclass
class Value:
    """A kernel pair (NNGP array name, NTK array name or None for Θ = 0) with its layout."""

    nngp: str
    ntk: Optional[str]
    layout: Layout


@dataclass
class Op:
    """One plan step. ``lines`` are JAX statements; ``formula`` goes above them as a comment."""

    kind: str  # input | stencil | reindex | affine | elementwise | mean | mask | combine
    formula: str
    lines: List[str]
    entries: int  # entries written per pair (NNGP; the NTK doubles it when requested)
    flops: int  # floating point operations per pair
    ntk_lines: List[str] = field(default_factory=list)  # executed only when the NTK is wanted


def stencil_cost(layout: Layout, n_terms: int) -> int:
    return layout.entries * max(1, n_terms)


def pairs_literal(pairs) -> str:
    """Deterministic, compact source text of a nested tuple of offset pairs."""
    return repr(tuple(tuple(tuple(int(c) for c in o) for o in pr) for pr in pairs))


def pad_widths(support: np.ndarray) -> Tuple[Tuple[int, int], ...]:
    """Per axis (lo, hi): how far the stencil reaches below and above the output site."""
    lo = np.maximum(-support.min(axis=0), 0)
    hi = np.maximum(support.max(axis=0), 0)
    return tuple((int(a), int(b)) for a, b in zip(lo, hi))
