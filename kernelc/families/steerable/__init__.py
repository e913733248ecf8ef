"""The steerable family: C_n ⋉ Z² and D_n ⋉ Z² for any n (C8, D8, C16, ...), with filters in a
steerable basis (docs/steerable.md, docs/math/steerable.md).

``group`` (the group objects), ``family`` (the declaration); the stage modules ``kinds``,
``rules``, ``plan``, ``identities`` and ``network`` are imported by the stage that reads them.
"""
from .family import STEERABLE
from .group import SteerableGroup, steerable_group

__all__ = ["STEERABLE", "SteerableGroup", "steerable_group"]
