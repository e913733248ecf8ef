"""The registry of symmetry groups by name: the built-in lattice groups H ⋉ Z^d and SO(3).

The group objects are their families' (:mod:`kernelc.families.lattice.group`,
:mod:`kernelc.families.so3.group`); they are re-exported here for users.
"""
from kernelc.families.lattice.group import LATTICES, LatticeGroup
from kernelc.families.so3.group import SO3, HarmonicGroup
from kernelc.groups.registry import (builtin_groups, get_group, register_family_group,
                                     register_group)

__all__ = ["LATTICES", "LatticeGroup", "HarmonicGroup", "SO3", "builtin_groups", "get_group",
           "register_family_group", "register_group"]
