"""The lattice family's plan nodes: the input kernel, the filter-sum stencils and the means over
positions, each printed in every storage layout it may be rewritten to (:mod:`kernelc.ir.plan`).

The lowerings (:mod:`kernelc.families.lattice.rules`) state every kernel in the general layout,
``box_full`` on the box and ``group_general`` on G. The identity passes
(:mod:`kernelc.families.lattice.identities`) move a node to ``group_reduced`` (R) or to
``box_diag``/``group_diag`` (D); the node then prints the computation of that layout, which the
identity proves equal (docs/math/identities.md). The runtime helpers named here live in
:mod:`kernelc.runtime.stencils` and :mod:`kernelc.runtime.layouts`.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from ...ir.plan import Expr, FilterSum, LaidOut, Layout, Mean, pairs_literal


def _matrix(m) -> Tuple[Tuple[int, ...], ...]:
    return tuple(tuple(int(c) for c in row) for row in np.asarray(m))


@dataclass(frozen=True)
class InputKernel(LaidOut):
    """K0[t,t'] = (1/C) Σ_c f_c(t) f'_c(t') of the pair (xa[p], xb[p]); K0[t,t] in box_diag."""

    layout: Layout
    owner: str
    layouts = ("box_full", "box_diag")

    def source(self) -> str:
        if self.layout.kind == "box_diag":
            return "input_diag(xa, xb)"
        return f"input_full(xa, xb, {self.layout.d})"


@dataclass(frozen=True)
class Stencil(FilterSum, LaidOut):
    """The filter sum of a lift, gconv or conv layer over its support S ⊂ Z^d, per layout:

    ``box_full``       K⁺[t,t'] = mean_{y∈S} K[t+y, t'+y]
    ``box_diag``       K⁺[t,t]  = mean_{y∈S} K[t+y, t+y]
    ``group_general``  K⁺[(t,r),(t',r')] = mean_{y∈S} K_R[(t+ρ(r)y, r), (t'+ρ(r')y, r')],
                       K_R = mean_{s∈R} K[(·, rs), (·, r's)] for a gconv with rotations R
    ``group_reduced``  K̃⁺[t,t'](q) = mean_{y∈S} K̃[t+y, t'+ρ(q)y](q)
    ``group_diag``     K̃⁺[t,t](e) = mean_{y∈S} K̃[t+y, t+y](e)

    ``elements`` are the matrices ρ(h) of H in the group's order; ``right_mult[i][r]`` is the
    index of r·s_i for the rotational support R = {s_i} of a gconv (None for lift and conv).
    Its offset tables are module constants named ``{label}_TERMS`` (and ``{label}_RIGHT_MULT``).
    """

    x: Expr
    label: str
    support: Tuple[Tuple[int, ...], ...]
    elements: Tuple[Tuple[Tuple[int, ...], ...], ...]
    right_mult: Optional[Tuple[Tuple[int, ...], ...]]
    pads: Tuple[Tuple[int, int], ...]
    out_box: Tuple[int, ...]
    padding: str
    layout: Layout
    owner: str
    layouts = ("box_full", "box_diag", "group_general", "group_reduced", "group_diag")

    @classmethod
    def of(cls, x: Expr, label: str, support, elements, right_mult, pads, out_box, padding,
           layout: Layout, owner: str) -> "Stencil":
        return cls(x, label, tuple(tuple(int(c) for c in y) for y in np.asarray(support)),
                   tuple(_matrix(m) for m in elements),
                   None if right_mult is None else tuple(tuple(int(i) for i in row)
                                                         for row in right_mult),
                   tuple(pads), tuple(out_box), padding, layout, owner)

    def terms(self) -> str:
        """The offset table of the layout, as source text: ``box_diag``/``group_diag``: (y,);
        ``box_full``: (y, y); ``group_reduced``: per q, (y, ρ(q)y); ``group_general``: per
        (r, r'), (ρ(r)y, ρ(r')y)."""
        support = [np.array(y) for y in self.support]
        kind = self.layout.kind
        if kind in ("box_diag", "group_diag"):
            return pairs_literal([(y,) for y in support])
        if kind == "box_full":
            return pairs_literal([(y, y) for y in support])
        rho = [np.array(m) for m in self.elements]
        if kind == "group_reduced":  # one line per q
            return "(\n    " + ",\n    ".join(pairs_literal([(y, q @ y) for y in support])
                                           for q in rho) + ",\n)"
        rows = []
        for r in rho:  # one line per (r, r')
            rows.append("(\n        " + ",\n        ".join(
                pairs_literal([(r @ y, rp @ y) for y in support]) for rp in rho) + ",\n    )")
        return "(\n    " + ",\n    ".join(rows) + ",\n)"

    def constants(self) -> dict:
        out = {f"{self.label}_TERMS": self.terms()}
        if self.layout.kind == "group_general" and self.right_mult is not None:
            out[f"{self.label}_RIGHT_MULT"] = repr(self.right_mult)
        return out

    def call(self):
        kind, x = self.layout.kind, self.x.source()
        table = f"{self.label}_TERMS"
        tail = f"{self.pads!r}, {self.out_box!r}, {self.padding!r}"
        if kind in ("box_diag", "group_diag", "box_full"):  # slots: one site, or a pair
            return "stencil", x, f"{table}, {1 if kind != 'box_full' else 2}, {tail}"
        if kind == "group_reduced":
            return "reduced_stencil", x, f"{table}, {tail}"
        if self.right_mult is not None:
            x = f"right_mix({x}, {self.label}_RIGHT_MULT, {self.layout.d})"
        return "general_stencil", x, f"{table}, {tail}"

    def children(self):
        return (self.x,)

    def with_children(self, children):
        return dataclasses.replace(self, x=children[0])


#: The site axes (both slots) of each full layout, counting the leading pair axis.
SITE_AXES = {
    "box_full": lambda d: tuple(range(1, 1 + 2 * d)),
    "group_reduced": lambda d: tuple(range(2, 2 + 2 * d)),
    "group_general": lambda d: tuple(range(2, 2 + d)) + tuple(range(3 + d, 3 + 2 * d)),
}


@dataclass(frozen=True)
class PoolMean(LaidOut):
    """A mean over positions of a kernel ``x`` of ``layout`` (``sites`` positions per slot, a
    masked domain counted without its masked sites):

    ``over="all"``       mean_{g,g'} K[g,g']: every axis; |H|·P² entries of K̃ under (R)
    ``over="sites"``     mean_{t,t'} K[(t,h),(t',h')] per group index (keepdims)
    ``over="window"``    the windowed mean of runtime.stencils.window_mean, ``window`` = (k, s)
    ``over="diagonal"``  mean_g of K[g,g] (``x`` is the self-diagonal of a ``layout`` kernel)
    """

    x: Expr
    over: str
    sites: int
    layout: Layout
    owner: str
    window: Optional[Tuple[int, int]] = None
    layouts = ("box_full", "box_diag", "group_general", "group_reduced", "group_diag")

    def mean(self) -> Mean:
        """The plain :class:`~kernelc.ir.plan.Mean` this is in the current layout."""
        kind, n, h, d = self.layout.kind, self.sites, self.layout.order, self.layout.d
        if self.over == "all":
            entries = {"group_reduced": h, "group_general": h * h}.get(kind, 1)
            return Mean(self.x, None, float(n * n * entries))
        if self.over == "diagonal":
            return Mean(self.x, None, float(n * (h if kind == "group_general" else 1)))
        axes = SITE_AXES[kind](d)
        if self.over == "window":
            return Mean(self.x, axes, window=self.window)
        return Mean(self.x, axes, float(n * n), keepdims=True)

    def source(self) -> str:
        return self.mean().source()

    def children(self):
        return (self.x,)

    def with_children(self, children):
        return dataclasses.replace(self, x=children[0])
