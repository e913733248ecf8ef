"""Symmetry groups as algebraic data: lattice groups H ⋉ Z^d built from generators, and the
harmonic family (SO(3) on S²) declared by its grids and representations."""
from kernelc.groups.lattice import LATTICES, LatticeGroup
from kernelc.groups.so3 import SO3, HarmonicGroup
from kernelc.groups.registry import (builtin_groups, get_group, register_family_group,
                                     register_group)

__all__ = ["LATTICES", "LatticeGroup", "HarmonicGroup", "SO3", "builtin_groups", "get_group",
           "register_family_group", "register_group"]
