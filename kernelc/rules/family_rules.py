"""Each family's table of kernel rules: its own rules and the common ones.

Importing the families' ``rules`` modules here registers their rules
(:func:`kernelc.rules.layers.rule`); the compiler asks this module.
"""
from __future__ import annotations

from typing import Dict

from ..families import Family
from ..families.lattice import rules as lattice_rules  # noqa: F401 - registers the rules
from ..families.so3 import rules as so3_rules  # noqa: F401 - registers the rules
from ..families.steerable import rules as steerable_rules  # noqa: F401 - registers the rules
from .layers import COMMON_RULES, FAMILY_RULES, LayerRule


def rules_for(family: Family) -> Dict[str, LayerRule]:
    """The rules of every node kind a graph of ``family`` has: its own and the common ones."""
    return {**COMMON_RULES, **FAMILY_RULES[family]}
