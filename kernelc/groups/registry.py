"""The built-in lattice groups, one declaration each.

A group is data, not code: a name, a dimension and the generators of its point group H
(integer matrices acting on Z^d). Everything else — closure, Cayley table, the permutations
of filter offsets and box sites — is derived by :class:`LatticeGroup`. Adding a group is
one ``register_group`` line below.
"""
from __future__ import annotations

from typing import Optional, Sequence

from kernelc.errors import GroupError, SourceSpan, SpecError, did_you_mean
from kernelc.families.lattice.group import LatticeGroup
from kernelc.families.so3.group import SO3
from kernelc.families.steerable.group import steerable_group

_REGISTRY: dict = {}


def register_group(name: str, dim: int, generators: Sequence = (), lattice: str = "square",
                   description: str = "") -> LatticeGroup:
    """Build ``name`` from its generators, store it in the registry and return it."""
    if name in _REGISTRY:
        raise GroupError(f"group '{name}' is already registered")
    group = LatticeGroup.from_generators(name, dim, generators, lattice=lattice, description=description)
    _REGISTRY[name] = group
    return group


def register_family_group(group) -> None:
    """Store a group of another family (e.g. the harmonic SO(3)) under its name."""
    if group.name in _REGISTRY:
        raise GroupError(f"group '{group.name}' is already registered")
    _REGISTRY[group.name] = group


def get_group(name: str, span: Optional[SourceSpan] = None) -> LatticeGroup:
    """The built-in group called ``name``; SpecError (with a suggestion) if there is none."""
    group = _REGISTRY.get(name)
    if group is None:
        group = _by_pattern(name)
    if group is None:
        names = sorted(_REGISTRY)
        raise SpecError(f"unknown group '{name}'", span, expected=names,
                        suggestion=did_you_mean(name, names))
    return group


#: Families whose groups are named by a pattern (C12, D7): name -> group or None, tried in order
#: for a name that is not registered; the groups made are kept (one object per name).
GROUP_PATTERNS = (steerable_group,)
_MADE: dict = {}


def _by_pattern(name: str):
    if name not in _MADE:
        for make in GROUP_PATTERNS:
            group = make(name)
            if group is not None:
                _MADE[name] = group
                break
    return _MADE.get(name)


def builtin_groups() -> dict:
    """All registered groups, sorted by name."""
    return {k: _REGISTRY[k] for k in sorted(_REGISTRY)}


# --- rotation matrices used below -------------------------------------------------------------
_R90 = ((0, -1), (1, 0))                      # 90° rotation of Z^2
_MIRROR = ((1, 0), (0, -1))                   # reflection y -> -y
_HEX60 = ((0, -1), (1, 1))                    # 60° rotation, axial coords (a, b) -> (-b, a + b)
_RX90 = ((1, 0, 0), (0, 0, -1), (0, 1, 0))    # 90° about the x axis
_RY90 = ((0, 0, 1), (0, 1, 0), (-1, 0, 0))    # 90° about the y axis

# --- the built-in table: one line per group -----------------------------------------------------
register_group("Z2", 2, (), description="trivial point group: plain CNN on Z^2")
register_group("p2", 2, [((-1, 0), (0, -1))], description="C2 ⋉ Z^2: 180° rotations")
register_group("p4", 2, [_R90], description="C4 ⋉ Z^2: 90° rotations (the paper's group)")
register_group("p4m", 2, [_R90, _MIRROR], description="D4 ⋉ Z^2: 90° rotations and reflections")
register_group("p6", 2, [_HEX60], lattice="hexagonal", description="C6 ⋉ hexagonal lattice: 60° rotations")
register_group("Z3", 3, (), description="trivial point group: plain CNN on Z^3")
register_group("O", 3, [_RX90, _RY90], description="O ⋉ Z^3: the 24 rotations of the cube")
register_family_group(SO3)
for _name in ("C8", "D8", "C16", "D16"):  # escnn's usual orientations; any C<n>, D<n> also works
    register_family_group(steerable_group(_name))
