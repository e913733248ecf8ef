"""The symmetry identities (docs/math/identities.md) as named rules with checked preconditions.

Each identity is an entry of :data:`IDENTITIES`: a function of the typed graph that returns an
:class:`IdentityDecision` — applied or declined, where, and why. The derivation consults the
decisions; ``explain`` prints them; tests switch each one off and compare with the general path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List

import networkx as nx

from ..frontend.infer import TypedGraph
from ..frontend.layers import layer_kinds
from .orbit import orbit_precondition


@dataclass(frozen=True)
class IdentityDecision:
    key: str  # "R", "D", "S", "O"
    name: str
    applied: bool
    reason: str
    nodes: FrozenSet[str] = field(default_factory=frozenset)  # where it applies

    def line(self) -> str:
        mark = "applied" if self.applied else "declined"
        return f"({self.key}) {self.name}: {mark} — {self.reason}"


Decide = Callable[[TypedGraph, Dict[str, bool]], IdentityDecision]
#: One table per group family; ``IDENTITIES`` is the lattice family's.
FAMILY_IDENTITIES: Dict[str, Dict[str, Decide]] = {"lattice": {}, "so3": {}}
IDENTITIES = FAMILY_IDENTITIES["lattice"]


def identity(key: str, families=("lattice",)):
    def register(fn):
        for family in families:
            FAMILY_IDENTITIES[family][key] = fn
        return fn
    return register


def _nodes_of(tg: TypedGraph, *kinds) -> List[str]:
    return [n for n in tg.layers.order() if tg.layers.node(n)["kind"] in kinds]


@identity("R")
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
    layers = _nodes_of(tg, "lift", "gconv")
    if not layers:
        return IdentityDecision("R", name, False, "the network has no signal on G")
    if not enabled.get("R", True):
        return IdentityDecision("R", name, False, "switched off by the caller (general path)")
    for n in layers:
        data = tg.layers.node(n)
        if not group.is_invariant(data["hp"]["support"]):
            return IdentityDecision("R", name, False,
                                    f"the filter support of {data['name']} (line "
                                    f"{data['span'].line}) is not ρ(H)-invariant")
    saving = f"{group.order}× fewer entries" if group.order > 1 else "no saving for a trivial H"
    return IdentityDecision("R", name, True,
                            f"all {len(layers)} lift/gconv spatial supports are ρ(H)-invariant "
                            f"(rotational supports cancel): store K̃[t,t'](q), {saving}")


@identity("D")
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
    g = tg.layers
    kinds = layer_kinds(getattr(tg.group, "family", "lattice"))
    averaging = {n for n in g.order()
                 if getattr(kinds.get(g.node(n)["kind"]), "off_diagonal", False)}
    if g.node(g.output_node)["out"].domain != "vector":
        return IdentityDecision("D", name, False, "the output is a feature map: all pairs needed")

    def spatial(n):
        return g.node(n)["out"].domain != "vector"

    diag = {n for n in g.order() if spatial(n) and n not in averaging
            and not (nx.descendants(g.graph, n) & averaging)}
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


@identity("S", families=("lattice", "so3"))
def gram_symmetry(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """K(f, f') = K(f', f): compute pairs i < j of a Gram matrix, mirror the rest."""
    name = "Gram symmetry"
    if not enabled.get("S", True):
        return IdentityDecision("S", name, False, "switched off by the caller")
    if tg.output_type.domain != "vector":
        return IdentityDecision("S", name, False, "the output is a feature map; mirroring "
                                "would need a transpose of positions (not done)")
    return IdentityDecision("S", name, True, "Gram matrices of one input set: pairs i < j are "
                            "computed, the rest mirrored (about 2× fewer pairs)")


@identity("O")
def orbit_average(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """After group pooling, K(f, f') = mean_h k(f, ρ(h) f') with k the matching plain-CNN kernel."""
    ok, reason = orbit_precondition(tg)
    return IdentityDecision("O", "orbit average", ok, reason)


# -- the SO(3) family (docs/math/so3.md) ----------------------------------------------------------
@identity("R", families=("so3",))
def so3_right_invariance(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """With full-sphere / full-group filters every layer is right-invariant under all of SO(3):
    K[gs, g's] = K[g, g'] (the Haar integrals ∫dy, ∫dh absorb s), so K[g, g'] = K̃(g'g⁻¹) and
    one function on SO(3) per pair is stored: (2B)³ entries instead of (2B)⁶. The lift becomes
    the spherical cross-correlation K̃(q) = σ_w² ∫ K0[y, q·y] dy + σ_b², a group convolution the
    band-limit projection K̃⁺ = σ_w² Π_L K̃ + σ_b², and nonlinearities see the constant
    variances K̃(e)."""
    name = "right invariance"
    layers = _nodes_of(tg, "lift", "gconv")
    if not layers:
        return IdentityDecision("R", name, False, "the network has no signal on SO(3)")
    if not enabled.get("R", True):
        return IdentityDecision("R", name, False, "switched off by the caller (general path)")
    for node in _nodes_of(tg, "gconv"):
        data = tg.layers.node(node)
        grid_in = tg.layers.node(tg.layers.inputs(node)[0])["out"].shape[0] // 2
        if data["hp"]["bandlimit"] > grid_in:
            # Π_L of a K̃ sampled on a grid of bandwidth B_in < L is not defined by the SO(3)
            # FFT of that grid; the general path's written-out quadrature is
            return IdentityDecision(
                "R", name, False,
                f"'{data['name']}' (line {data['span'].line}) has band limit "
                f"{data['hp']['bandlimit']} above the bandwidth {grid_in} of its input grid; "
                "the general path integrates it exactly (raise the previous layer's grid= to "
                "use the reduced path)")
    grids = sorted({tg.layers.node(n)["hp"]["grid"] for n in layers})
    n = (2 * grids[-1]) ** 3
    return IdentityDecision("R", name, True,
                            f"all {len(layers)} lift/gconv filters cover the whole sphere/group: "
                            f"store K̃(g'g⁻¹) on the SO(3) grid, {n} entries per pair instead "
                            f"of {n}² = {n * n}")


@identity("D", families=("so3",))
def so3_diagonal_only(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """SO(3) has no translations that a readout could leave unaveraged."""
    return IdentityDecision("D", "diagonal only", False, "not applicable: SO(3) features are "
                            "pooled over the group (K̃ already stores one entry per g'g⁻¹)")


@identity("O", families=("so3",))
def so3_orbit_average(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """K(f, f') = ∫ k(f, ρ(h)f') dh with k the matching MLP kernel, when no gconv truncates."""
    gconvs = _nodes_of(tg, "gconv")
    pooled = bool(_nodes_of(tg, "group_pool"))
    if not pooled:
        return IdentityDecision("O", "orbit average", False, "the network does not pool over SO(3)")
    if gconvs:
        return IdentityDecision("O", "orbit average", False,
                                f"{len(gconvs)} band-limited gconv layer(s): K̃⁺ = Π_L K̃ differs "
                                "from the MLP's K̃ by the truncated degrees (it holds as L → ∞)")
    return IdentityDecision("O", "orbit average", True,
                            "K(f,f') = ∫_SO(3) k(f, ρ(h)f') dh with k the kernel of the matching "
                            "MLP (lift at g = e is a dense layer on L²(S²)); a check, not a "
                            "faster path here")


def decide(tg: TypedGraph, enabled: Dict[str, bool]) -> Dict[str, IdentityDecision]:
    table = FAMILY_IDENTITIES[getattr(tg.group, "family", "lattice")]
    return {key: table[key](tg, enabled) for key in ("R", "D", "S", "O") if key in table}
