"""Each family's table of layer kinds: its own kinds and the common ones.

Importing the families' ``kinds`` modules here registers their kinds
(:func:`kernelc.frontend.layers.layer_kind`); the rest of the front end asks this module.
"""
from __future__ import annotations

from typing import Dict

from ..errors import KernelcError
from ..families import FAMILIES, LATTICE, Family, family_of
from ..families.lattice import kinds as lattice_kinds  # noqa: F401 - registers the kinds
from ..families.so3 import kinds as so3_kinds  # noqa: F401 - registers the kinds
from ..families.steerable import kinds as steerable_kinds  # noqa: F401 - registers the kinds
from ..groups import get_group
from .layers import (COMMON_KINDS, FAMILY_GRAPH_DEFAULTS, FAMILY_INPUT_TYPES, FAMILY_LAYER_KINDS,
                     LayerKind)


def layer_kinds(family: Family) -> Dict[str, LayerKind]:
    """The layer kinds a spec of ``family`` may use: the family's own and the common ones."""
    return {**COMMON_KINDS, **FAMILY_LAYER_KINDS[family]}


def input_types(family: Family):
    """The family's typing rule of the spec's input: (InputDecl, group) -> SignalType."""
    return FAMILY_INPUT_TYPES[family]


def graph_defaults(family: Family, layers) -> Dict[str, Dict]:
    """``{node: {hyperparameter: value}}`` the family completes from the whole layer graph
    before typing (none for a family that registers no graph defaults)."""
    rule = FAMILY_GRAPH_DEFAULTS.get(family)
    return rule(layers) if rule is not None else {}


def families_with_kind(name: str):
    """The families whose table has layer kind ``name`` (for "not defined for this family")."""
    return [f for f in FAMILIES.values() if name in layer_kinds(f)]


def spec_family(spec) -> Family:
    """The group family of a spec's group. A group declared by generators is a lattice group;
    so is, for now, an unknown name (the type checker reports it, with suggestions)."""
    if spec.group.generators is not None:
        return LATTICE
    try:
        return family_of(get_group(spec.group.name))
    except KernelcError:
        return LATTICE
