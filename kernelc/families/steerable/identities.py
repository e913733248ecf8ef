"""The symmetry identities of the steerable family (docs/math/steerable.md): (R) holds for every
steerable network; (D) and (O) do not apply. (S) is common.
"""
from __future__ import annotations

from typing import Dict

from ...compiler.identities import IdentityDecision, identity, nodes_of
from ...compiler.relayout import layout_rewrite
from ...frontend.infer import TypedGraph
from .family import STEERABLE


@identity("R", STEERABLE)
def steerable_right_invariance(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """K[(t,rs),(t',r's)] = K[(t,r),(t',r')] for s ∈ H: P(R_s⁻¹a, R_s⁻¹b) = P(a, b) because the
    basis span is closed under R_s and R_s acts orthogonally on the coefficients — whatever the
    sampled support (unlike the lattice's (R), no invariance of S is needed). So
    K[(t,r),(t',r')] = K̃[t,t'](r'r⁻¹) and a gconv's mean over u ∈ H drops out."""
    name = "right invariance"
    layers = nodes_of(tg, "lift", "gconv")
    if not layers:
        return IdentityDecision("R", name, False, "the network has no signal on G")
    if not enabled.get("R", True):
        return IdentityDecision("R", name, False, "switched off by the caller (general path)")
    order = tg.group.order
    saving = f"{order}× fewer entries" if order > 1 else "no saving for a trivial H"
    return IdentityDecision("R", name, True,
                            f"the {len(layers)} lift/gconv filter bases are closed under the "
                            f"rotations of {tg.group.name} (P(Ra,Rb) = P(a,b)): store "
                            f"K̃[t,t'](q), {saving}")


@identity("D", STEERABLE)
def steerable_diagonal_only(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """Declined: a mixed stencil's K⁺[t,t] reads K[t+y_i, t+y_j] for y_i ≠ y_j."""
    return IdentityDecision("D", "diagonal only", False,
                            "steerable filters couple offsets y ≠ y' (mixed stencils), so "
                            "K⁺[t,t] reads off-diagonal site pairs of every earlier layer")


@identity("O", STEERABLE)
def steerable_orbit_average(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """Declined: the orbit strategy averages a plain CNN's kernel over site permutations, and
    a rotation by 2π/n (n ∤ 4) is not a permutation of the pixel grid."""
    return IdentityDecision("O", "orbit average", False,
                            f"the rotations of {tg.group.name} are not all permutations of the "
                            "pixel grid (an interpolated rotation is not a group action), and "
                            "the matching CNN of a steerable filter is not a plain CNN")


# -- (R) as a layout rewrite of the plan (kernelc.compiler.relayout) ---------------------------
layout_rewrite(STEERABLE, "R", "right invariance", {"group_general": "group_reduced"},
               "K[(t,rs),(t',r's)] = K[(t,r),(t',r')] for s ∈ H (P is rotation invariant): a "
               "group kernel is kept as K̃[t,t'](q) = K[(t,e),(t',q)]; mixed stencils read "
               "K̃[t+y, t'+y'](q) with the coupling P(y, R_q⁻¹y'), and a gconv's mean over "
               "u ∈ H drops out")
