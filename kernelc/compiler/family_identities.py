"""Each family's identities, decided: its own (R), (D), (O) and the common (S).

Importing the families' ``identities`` modules here registers them
(:func:`kernelc.compiler.identities.identity`); the derivation asks this module.
"""
from __future__ import annotations

from typing import Dict

from ..families import Family, family_of
from ..families.lattice import identities as lattice_identities  # noqa: F401 - registers them
from ..families.so3 import identities as so3_identities  # noqa: F401 - registers them
from ..families.steerable import identities as steerable_identities  # noqa: F401 - registers them
from ..frontend.infer import TypedGraph
from .identities import COMMON_IDENTITIES, FAMILY_IDENTITIES, KEYS, Decide, IdentityDecision


def identities_for(family: Family) -> Dict[str, Decide]:
    """The identities of ``family``: its own and the common ones."""
    return {**COMMON_IDENTITIES, **FAMILY_IDENTITIES[family]}


def decide(tg: TypedGraph, enabled: Dict[str, bool]) -> Dict[str, IdentityDecision]:
    """Every identity of the graph's family, decided, in the order R, D, S, O."""
    table = identities_for(family_of(tg.group))
    return {key: table[key](tg, enabled) for key in KEYS if key in table}
