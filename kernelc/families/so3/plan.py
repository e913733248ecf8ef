"""The SO(3) family's plan nodes, each printed in both storage layouts (:mod:`kernelc.ir.plan`):
``so3_general`` (K[g_i, g_j] on every pair of grid points) and ``so3_reduced`` (identity (R):
Wigner coefficients of K̃(q) = K[e, q], sampled on the grid, plus K̃(e)).

The rules (:mod:`kernelc.families.so3.rules`) lower in ``so3_general``; the (R) rewrite
(:mod:`kernelc.families.so3.identities`) moves every node to ``so3_reduced``. A weight layer is
the same four statements in both layouts: ``lin`` (the lift or projection), ``coef = σ_w² lin +
bias``, ``K⁺ = sample(coef)``, and for the NTK ``Θ⁺ = sample(σ_w² Π Θ + coef)``; in
``so3_general`` the bias is σ_b² itself and sampling is the identity (the kernel is on the grid
already), in ``so3_reduced`` both act on Wigner coefficients. The runtime helpers are
:mod:`kernelc.runtime.so3`'s.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ...ir.plan import Expr, LaidOut, Layout

_SO3 = ("so3_general", "so3_reduced")


def _one_child(cls):
    cls.children = lambda self: (self.x,)
    cls.with_children = lambda self, children: dataclasses.replace(self, x=children[0])
    return cls


@_one_child
@dataclass(frozen=True)
class SO3Lift(LaidOut):
    """The lift of the coefficient pair ``x`` = (a, b) of both inputs: general
    K[g,g'] = ∫ K0[g·y, g'·y] dy on every grid pair; reduced the Wigner coefficients
    K̂^ℓ_mn = (1/4πC) Σ_c conj(b_cℓm) a_cℓn (ℓ < band) of K̃(q) = (1/C) Σ_c ∫ f_c(y) f'_c(q·y) dy."""

    x: Expr
    band: int
    grid: int
    layout: Layout
    owner: str
    layouts = _SO3

    def source(self) -> str:
        if self.layout.kind == "so3_reduced":
            return f"so3_cross_correlation(*{self.x.source()}, {self.band})"
        return f"so3_lift_general(*{self.x.source()}, {self.band}, {self.grid})"


@_one_child
@dataclass(frozen=True)
class SO3Project(LaidOut):
    """A full-group filter of band limit L applied to ``x`` (grid bandwidth ``grid_in``):
    general ∫∫ K[u,u'] P_L(u⁻¹gg'⁻¹u') du du' to bandwidth ``grid``; reduced the projection
    Π_L K̃ (Wigner coefficients ℓ < L)."""

    x: Expr
    grid_in: int
    band: int
    grid: int
    layout: Layout
    owner: str
    layouts = _SO3

    def source(self) -> str:
        if self.layout.kind == "so3_reduced":
            return f"so3_project({self.x.source()}, {self.grid_in}, {self.band})"
        return (f"so3_gconv_general({self.x.source()}, {self.grid_in}, {self.band}, "
                f"{self.grid})")


@dataclass(frozen=True)
class SO3Bias(LaidOut):
    """σ_b² added to a kernel ``x``: the constant itself on the grid; in Wigner coefficients
    the degree-0 coefficient (``so3_bias``)."""

    x: Expr
    b2: Expr
    layout: Layout
    owner: str
    layouts = _SO3

    def source(self) -> str:
        if self.layout.kind == "so3_reduced":
            return f"so3_bias({self.b2.source()}, {self.x.source()})"
        return self.b2.source()

    def children(self):
        return (self.x, self.b2)

    def with_children(self, children):
        return dataclasses.replace(self, x=children[0], b2=children[1])

    def refs(self):  # the grid form reads no array (σ_b² reads none either)
        return self.x.refs() if self.layout.kind == "so3_reduced" else ()


@_one_child
@dataclass(frozen=True)
class SO3Sample(LaidOut):
    """A kernel on the grid of bandwidth ``grid``: the kernel ``x`` itself in so3_general;
    in so3_reduced the synthesis of its Wigner coefficients on the grid, then K̃(e)."""

    x: Expr
    grid: int
    layout: Layout
    owner: str
    layouts = _SO3

    def source(self) -> str:
        if self.layout.kind == "so3_reduced":
            return f"so3_sample({self.x.source()}, {self.grid})"
        return self.x.source()


@_one_child
@dataclass(frozen=True)
class SO3Mean(LaidOut):
    """The Haar mean ∫∫ K[g,g'] dg dg' by grid quadrature (bandwidth ``grid``); reduced
    ∫ K̃(q) dq."""

    x: Expr
    grid: int
    layout: Layout
    owner: str
    layouts = _SO3

    def source(self) -> str:
        fn = "so3_mean" if self.layout.kind == "so3_reduced" else "so3_mean_general"
        return f"{fn}({self.x.source()}, {self.grid})"
