"""The steerable family's plan node: the mixed stencil of a lift or gconv with filters in a
steerable basis (docs/math/steerable.md), printed in both layouts it may be stored in.

Unlike the lattice stencil, which pairs each offset y with its own image (t+y, t'+ρ(q)y), a
steerable filter couples every pair of offsets (y_i, y_j) through the matrix M_q[i,j] =
P(y_i, R_q⁻¹y_j)/|B| of its basis (:func:`kernelc.runtime.steerable.steerable_coupling`); the
module computes the matrices at import from the basis declaration (a few lines of numpy),
instead of printing |H|·|S|² numbers.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

from ...ir.plan import Expr, FilterSum, LaidOut, Layout


@dataclass(frozen=True)
class MixedStencil(FilterSum, LaidOut):
    """The filter sum of a steerable lift or gconv, per layout:

    ``group_general``  K⁺[(t,r),(t',r')] = Σ_{i,j} M_{r,r'}[i,j] K_H[(t+y_i, r), (t'+y_j, r')],
                       K_H = mean_{u∈H} K[(·, ru), (·, r'u)] for a gconv (K0 for a lift)
    ``group_reduced``  K̃⁺[t,t'](q) = Σ_{i,j} M_q[i,j] K̃[t+y_i, t'+y_j](q)   (R)

    with M_{r,r'}[i,j] = P(R_r⁻¹y_i, R_r'⁻¹y_j)/|B| = M_{r'r⁻¹}[i,j]. ``right_mult`` is the
    table r·u (one row per u ∈ H) of a gconv, None for a lift. Module constants:
    ``{label}_FILTER`` (and ``{label}_RIGHT_MULT``).
    """

    x: Expr
    label: str
    n: int
    reflections: bool
    basis: str
    size: int
    max_frequency: Optional[int]
    right_mult: Optional[Tuple[Tuple[int, ...], ...]]
    pads: Tuple[Tuple[int, int], ...]
    out_box: Tuple[int, ...]
    padding: str
    layout: Layout
    owner: str
    layouts = ("group_general", "group_reduced")

    def constants(self) -> dict:
        out = {f"{self.label}_FILTER": repr((self.n, self.reflections, self.basis, self.size,
                                            self.max_frequency))}
        if self.layout.kind == "group_general" and self.right_mult is not None:
            out[f"{self.label}_RIGHT_MULT"] = repr(self.right_mult)
        return out

    def call(self):
        x = self.x.source()
        tail = f"{self.label}_FILTER, {self.pads!r}, {self.out_box!r}, {self.padding!r}"
        if self.layout.kind == "group_reduced":
            return "mixed_stencil", x, tail
        if self.right_mult is not None:
            x = f"right_mix({x}, {self.label}_RIGHT_MULT, {self.layout.d})"
        return "general_mixed_stencil", x, tail

    def children(self):
        return (self.x,)

    def with_children(self, children):
        return dataclasses.replace(self, x=children[0])
