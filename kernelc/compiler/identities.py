"""The symmetry identities (docs/math/identities.md) as named rules with checked preconditions:
the machinery, and the identity every family shares, (S) Gram symmetry.

Each identity is a table entry: a function of the typed graph that returns an
:class:`IdentityDecision` — applied or declined, where, and why. A family's (R), (D) and (O) are
in its ``identities`` module (:mod:`kernelc.families.lattice.identities`,
:mod:`kernelc.families.so3.identities`); :mod:`kernelc.compiler.family_identities` decides them
all. An applied identity that changes how kernels are stored is a rewrite of the plan
(:mod:`kernelc.compiler.relayout`), registered next to its decision; ``explain`` prints the
decisions and the rewrites; tests switch each one off and compare with the general path.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, List, Optional

from ..errors import KernelcError
from ..families import VECTOR, Family, domain
from ..frontend.infer import TypedGraph
from ..runtime.layouts import MIRRORED_LAYOUTS


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
#: The identities every family has (registered with ``family=None``), and each family's own.
COMMON_IDENTITIES: Dict[str, Decide] = {}
FAMILY_IDENTITIES: Dict[Family, Dict[str, Decide]] = {}
#: The identities in the order they are decided (and printed).
KEYS = ("R", "D", "S", "O")


def identity(key: str, family: Optional[Family] = None):
    """Register the decorated decision function as identity ``key`` of ``family`` (``None``: of
    every family)."""
    if key not in KEYS:
        raise KernelcError(f"unknown identity ({key})", expected=KEYS)

    def register(fn):
        table = COMMON_IDENTITIES if family is None else FAMILY_IDENTITIES.setdefault(family, {})
        if key in table or key in COMMON_IDENTITIES:
            raise KernelcError(f"identity ({key}) registered twice")
        table[key] = fn
        return fn
    return register


def nodes_of(tg: TypedGraph, *kinds) -> List[str]:
    """The nodes of the given kinds, in topological order."""
    return [n for n in tg.order() if tg.node(n).kind in kinds]


@identity("S")
def gram_symmetry(tg: TypedGraph, enabled: Dict[str, bool]) -> IdentityDecision:
    """K(f, f')[g, g'] = K(f', f)[g', g]: compute pairs i < j of a Gram matrix and mirror the
    rest, for a vector output as it is and for a feature map with its positions swapped (under
    (R), K̃_ji[t,t'](q) = K̃_ij[t',t](q⁻¹)): :func:`kernelc.runtime.layouts.mirror_pairs` holds
    the swap of every layout it applies to (MIRRORED_LAYOUTS)."""
    name = "Gram symmetry"
    if not enabled.get("S", True):
        return IdentityDecision("S", name, False, "switched off by the caller")
    out = tg.output_type.domain
    if domain(out).layout not in MIRRORED_LAYOUTS:
        return IdentityDecision("S", name, False, f"the output is a feature map on "
                                f"{domain(out).words}, whose kernels kernelc does not mirror")
    how = "the rest mirrored" if out == VECTOR.name else \
        "the rest mirrored with positions swapped, K_ji[g,g'] = K_ij[g',g]"
    return IdentityDecision("S", name, True, f"Gram matrices of one input set: pairs i < j are "
                            f"computed, {how} (about 2× fewer pairs)")
