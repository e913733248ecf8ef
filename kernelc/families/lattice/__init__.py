"""The lattice family: groups G = H ⋉ Z^d (p4, p4m, p6, O, ...) and plain CNNs (trivial H).

``group`` (the group objects), ``family`` (the declaration); the stage modules ``kinds``
(typing), ``rules`` (kernel rules), ``identities`` and ``network`` (finite layers) are imported
by the stage that reads them (:mod:`kernelc.families`).
"""
from .family import LATTICE
from .group import LATTICES, LatticeGroup

__all__ = ["LATTICE", "LATTICES", "LatticeGroup"]
