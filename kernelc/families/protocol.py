"""What every pipeline stage may ask about a group family: the :class:`Family` declaration.

A family is a kind of group with its own base space, signals, layer kinds, kernel rules,
identities and finite network (the lattice groups H ⋉ Z^d; SO(3) on S²). Its declaration is
data: the class of its groups (a group belongs to the family whose ``group_type`` it is an
instance of), the signal domains its layers pass along, the domain of a spec's input, and the
texts the front end and ``kernelc groups`` print about its groups. The stage tables (layer
kinds, rules, identities, finite layers) are keyed by the :class:`Family` object itself and
filled by the family's modules of that stage (:mod:`kernelc.families`). Layer-order
constraints are not declared separately: they follow from the domains, which the kinds' typing
rules check (SO(3)'s ``lift`` takes a signal on the sphere, its ``gconv`` one on SO(3)).

This module sits in the ``groups`` layer: it imports nothing of kernelc but the errors.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import KernelcError


@dataclass(frozen=True)
class Domain:
    """A signal domain: what a :class:`~kernelc.frontend.types.SignalType` lives on.

    ``words`` names it in messages ("takes a signal on {words}"); ``text`` is the
    ``SignalType.describe`` template, with the fields ``box`` (the sample shape, "8×8"), ``d``
    (its number of axes), ``width`` ("∞" or the channel count), ``order`` (|H|) and ``band``.
    ``layout`` is the general storage layout (:mod:`kernelc.ir.plan`) of the kernel of two
    signals on it, in which the rules lower (the identity passes may reduce it).
    """

    name: str
    words: str
    text: str
    layout: str = "vector"

    def describe(self, signal) -> str:
        return self.text.format(**_fields(signal))


def _fields(signal) -> dict:
    """The fields of a Domain's ``text`` template for ``signal``."""
    width = "∞" if signal.channels is None else str(signal.channels)
    return dict(box="×".join(map(str, signal.shape)), d=len(signal.shape), width=width,
                order=signal.group_order, band=signal.band)


#: The domain every family ends in: an invariant vector (after pooling, flatten or dense).
VECTOR = Domain("vector", "an invariant vector", "vector[{width}]")


@dataclass(frozen=True, eq=False)
class Family:
    """A group family's declarations. Equality is identity: the stage tables are keyed by it.

    ``input_mismatch(group, owner)`` is the (message, suggestion) given when a spec pairs a
    group of this family with an input on the domain of the family ``owner``. ``listing(group)``
    is the group's row of ``kernelc groups`` after its name: (order, dim, base, generators);
    ``details(group)`` is ``kernelc groups NAME``. ``input_text`` is the template (fields as
    :class:`Domain`'s) of the input in a network's one-line summary.

    ``tile_working_set``: {platform: bytes} or None, the working set one tile of the family's
    generated modules should stay under (XLA's ``memory_analysis`` of the compiled pass, per
    device), measured per family (docs/performance.md); the module states it as
    TILE_WORKING_SET and the runtime's memory plan applies it (:func:`kernelc.runtime.driver.
    tiled_kernel`). None: tiles as large as the memory budget and MAX_TILE allow.
    """

    name: str
    group_type: type
    input_domain: str
    input_text: str
    domains: Tuple[Domain, ...]
    continuous: bool
    input_mismatch: Callable[[Any, "Family"], Tuple[str, Optional[str]]]
    listing: Callable[[Any], Tuple[str, str, str, str]]
    details: Callable[[Any], str]
    acts_on: str  # the base space, in messages: "a group that acts on {acts_on}"
    example_group: str  # a built-in group of the family, suggested in messages
    doc: str = ""
    tile_working_set: Optional[Dict[str, int]] = None

    def order_text(self, group) -> str:
        """``|H|=8`` for a finite point group, ``continuous`` for a continuous group."""
        return "continuous" if self.continuous else f"|H|={group.order}"

    def describe_input(self, signal) -> str:
        """The spec's input in a network's summary, e.g. ``32×32×3``."""
        return self.input_text.format(**_fields(signal))

    def __repr__(self) -> str:
        return f"Family({self.name!r})"


#: Every family by name, in registration order (lattice first).
FAMILIES: Dict[str, Family] = {}


def register_family(family: Family) -> Family:
    """Add ``family`` to :data:`FAMILIES` (each family's ``family.py`` does, at import)."""
    if family.name in FAMILIES:
        raise KernelcError(f"group family '{family.name}' is registered twice")
    FAMILIES[family.name] = family
    return family


def family_of(group) -> Family:
    """The family of ``group``: the one whose ``group_type`` it is an instance of."""
    for family in FAMILIES.values():
        if isinstance(group, family.group_type):
            return family
    raise KernelcError(f"{group!r} belongs to no registered group family",
                       expected=list(FAMILIES))


def family_of_input(domain: str) -> Family:
    """The family whose specs declare their input on ``domain`` ("box", "sphere")."""
    for family in FAMILIES.values():
        if family.input_domain == domain:
            return family
    raise KernelcError(f"no group family takes inputs on '{domain}'")


def domain(name: str) -> Domain:
    """The :class:`Domain` called ``name``, whichever family declares it."""
    for family in FAMILIES.values():
        for d in family.domains:
            if d.name == name:
                return d
    if name == VECTOR.name:
        return VECTOR
    raise KernelcError(f"unknown signal domain '{name}'")
