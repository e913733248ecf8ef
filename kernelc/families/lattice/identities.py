"""The symmetry identities of the lattice family (docs/math/identities.md): (R) right invariance
under the point group H, (D) diagonal only, (O) orbit average.
"""
from __future__ import annotations

from typing import Dict

import networkx as nx

from ...compiler.identities import IdentityDecision, identity, nodes_of
from .orbit import orbit_precondition
from ...compiler.relayout import layout_rewrite
from ...frontend.family_kinds import layer_kinds
from ...frontend.infer import TypedGraph
from .family import LATTICE


@identity("R", LATTICE)
def right_invariance(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """K[gs, g's] = K[g, g'] for s ∈ H when every spatial support is ρ(H)-invariant; store
    K̃[t,t'](q) = K[(t,e),(t',q)] instead of K.

    The original design also asked rotational supports R to be closed under conjugation. That
    is not needed (docs/math/identities.md (R)): every gconv input descends from a lift, so it
    is right-invariant already, and then
    K⁺[gs', g's'] = mean_{y,s} K̃[t+ρ(rs')y, t'+ρ(r's')y](r'r⁻¹) — the element s cancels
    and y ↦ ρ(s')y permutes the invariant S — which is K⁺[g, g'] for any R (checked against
    the general path and the reference for p4m with R = {e, r}).
    """
    name = "right invariance"
    group = tg.group
    layers = nodes_of(tg, "lift", "gconv")
    if not layers:
        return IdentityDecision("R", name, False, "the network has no signal on G")
    if not enabled.get("R", True):
        return IdentityDecision("R", name, False, "switched off by the caller (general path)")
    for n in layers:
        data = tg.node(n)
        if not group.is_invariant(data.hp["support"]):
            return IdentityDecision("R", name, False,
                                    f"the filter support of {data.name} (line "
                                    f"{data.span.line}) is not ρ(H)-invariant")
    saving = f"{group.order}× fewer entries" if group.order > 1 else "no saving for a trivial H"
    return IdentityDecision("R", name, True,
                            f"all {len(layers)} lift/gconv spatial supports are ρ(H)-invariant "
                            f"(rotational supports cancel): store K̃[t,t'](q), {saving}")


@identity("D", LATTICE)
def diagonal_only(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """Only K[t,t] is needed at nodes after which no layer averages over translations.

    The averaging layers are the kinds registered with ``off_diagonal=True`` (group_pool,
    avg_pool, global or windowed). A diagonal kernel is computed only from diagonal kernels, so
    a node keeps K[t,t] only if its spatial inputs and successors do too: the nodes right after
    a pooling layer with a spatial output (a windowed avg_pool) and the branches of a block
    whose other branch pools keep all pairs.
    """
    name = "diagonal only"
    if not enabled.get("D", True):
        return IdentityDecision("D", name, False, "switched off by the caller")
    g = tg
    kinds = layer_kinds(LATTICE)
    averaging = {n for n in g.order()
                 if getattr(kinds.get(g.node(n).kind), "off_diagonal", False)}
    if g.node(g.output_node).out.domain != "vector":
        return IdentityDecision("D", name, False, "the output is a feature map: all pairs needed")

    def spatial(n):
        return g.node(n).out.domain != "vector"

    diag = {n for n in g.order() if spatial(n) and n not in averaging
            and not (nx.descendants(g.graph, n) & averaging)}
    if not right_invariance(tg, enabled).applied:  # only the reduced K̃[t,t](e) has a diagonal
        diag = {n for n in diag if g.node(n).out.domain != "group"}  # layout (group_diag)
    candidates = len(diag)
    changed = True
    while changed:  # keep the diagonal nodes closed under spatial inputs and successors
        changed = False
        for n in sorted(diag):
            if any(spatial(m) and m not in diag
                   for m in list(g.inputs(n)) + list(g.successors(n))):
                diag.discard(n)
                changed = True
    if not diag:
        if candidates:
            return IdentityDecision("D", name, False, "the nodes that no pooling layer follows "
                                    "read the full kernel of a pooled signal (or of a block "
                                    "input that another branch pools), so all pairs are needed")
        return IdentityDecision("D", name, False, "a later pooling layer averages over "
                                "translations, so off-diagonal site pairs are needed")
    return IdentityDecision("D", name, True, f"no layer after {len(diag)} node(s) averages over "
                            "translations (flatten readout): keep K[t,t] only, O(P) not O(P²)",
                            frozenset(diag))


@identity("O", LATTICE)
def orbit_average(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """After group pooling, K(f, f') = mean_h k(f, ρ(h) f') with k the matching plain-CNN kernel."""
    ok, reason = orbit_precondition(tg)
    return IdentityDecision("O", "orbit average", ok, reason)


# -- the identities as layout rewrites of the plan (kernelc.compiler.relayout) ----------------
layout_rewrite(LATTICE, "R", "right invariance", {"group_general": "group_reduced"},
               "K[gs, g's] = K[g, g'] for s ∈ H: a group kernel K[(t,r),(t',r')] is kept as "
               "K̃[t,t'](q) = K[(t,e),(t',q)]; stencils read K̃[t+y, t'+ρ(q)y](q) and the "
               "rotational support drops out")
layout_rewrite(LATTICE, "D", "diagonal only", {"box_full": "box_diag",
                                                "group_reduced": "group_diag"},
               "no later layer averages over translations, so only K[t,t] is read: stencils "
               "sum K[t+y, t+y], the input is K0[t,t]")
