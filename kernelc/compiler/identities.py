"""The symmetry identities (DESIGN §4) as named rules with checked preconditions.

Each identity is an entry of :data:`IDENTITIES`: a function of the typed graph that returns an
:class:`IdentityDecision` — applied or declined, where, and why. The derivation consults the
decisions; ``explain`` prints them; tests switch each one off and compare with the general path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List


from ..frontend.infer import TypedGraph


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


IDENTITIES: Dict[str, Callable[[TypedGraph, Dict[str, bool]], IdentityDecision]] = {}


def identity(key: str):
    def register(fn):
        IDENTITIES[key] = fn
        return fn
    return register


def _nodes_of(tg: TypedGraph, *kinds) -> List[str]:
    return [n for n in tg.layers.order() if tg.layers.node(n)["kind"] in kinds]


@identity("R")
def right_invariance(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """K[gs, g's] = K[g, g'] for s ∈ H when every spatial support is ρ(H)-invariant; store
    K̃[t,t'](q) = K[(t,e),(t',q)] instead of K.

    DESIGN §4 also asks rotational supports R to be closed under conjugation. That is not
    needed here: every gconv input descends from a lift, so it is right-invariant already, and
    then K⁺[gs', g's'] = mean_{y,s} K̃[t+ρ(rs')y, t'+ρ(r's')y](r'r⁻¹) — the element s cancels
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
    """Only K[t,t] is needed at nodes after which no layer averages over translations."""
    name = "diagonal only"
    if not enabled.get("D", True):
        return IdentityDecision("D", name, False, "switched off by the caller")
    g = tg.layers
    averaging = set(_nodes_of(tg, "group_pool", "avg_pool"))
    if g.node(g.output_node)["out"].domain != "vector":
        return IdentityDecision("D", name, False, "the output is a feature map: all pairs needed")
    diag = set()
    import networkx as nx
    for n in g.order():
        if g.node(n)["out"].domain == "vector":
            continue
        if not (nx.descendants(g.graph, n) & averaging) and n not in averaging:
            diag.add(n)
    if not diag:
        return IdentityDecision("D", name, False, "a later pooling layer averages over "
                                "translations, so off-diagonal site pairs are needed")
    return IdentityDecision("D", name, True, f"no layer after {len(diag)} node(s) averages over "
                            "translations (flatten readout): keep K[t,t] only, O(P) not O(P²)",
                            frozenset(diag))


@identity("S")
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
    from .orbit import orbit_precondition
    ok, reason = orbit_precondition(tg)
    return IdentityDecision("O", "orbit average", ok, reason)


def decide(tg: TypedGraph, enabled: Dict[str, bool]) -> Dict[str, IdentityDecision]:
    return {key: fn(tg, enabled) for key, fn in IDENTITIES.items()}
