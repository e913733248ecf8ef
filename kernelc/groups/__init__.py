"""Symmetry groups as algebraic data: lattice groups H ⋉ Z^d built from generators."""
from kernelc.groups.lattice import LATTICES, LatticeGroup
from kernelc.groups.registry import builtin_groups, get_group, register_group

__all__ = ["LATTICES", "LatticeGroup", "builtin_groups", "get_group", "register_group"]
