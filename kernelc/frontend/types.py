"""What flows along an edge of the layer graph: the type of a signal.

Five domains, declared by the group families (:mod:`kernelc.families`; docs/math/conventions.md,
"Signals"; docs/math/so3.md):

* ``box``    -- a signal on a finite box of Z^d (the input image, or a plain CNN's features);
* ``group``  -- a signal on G = H ⋉ Z^d restricted to the box: one value per (site, h ∈ H);
* ``sphere`` -- a signal on S² of band limit ``band``, sampled on a 2B × 2B grid (``shape``);
* ``so3``    -- a signal on SO(3) of band limit ``band``, sampled on a (2B)³ Euler-angle grid;
* ``vector`` -- an invariant vector (after group pooling, flatten or a dense layer).

``channels`` is the finite channel count where the spec fixes one (the input, ``width=``), or
``None`` for the infinite-width hidden layers the kernels describe. ``law`` says whether the
signal is Gaussian (:mod:`kernelc.frontend.gaussianity`); it decides which nonlinearities are
exact, and is not part of type equality (two signals of one shape are interchangeable for
every layer but a nonlinearity).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Tuple

import numpy as np

from ..families import domain


@dataclass(frozen=True)
class SignalType:
    domain: str
    shape: Tuple[int, ...] = ()
    channels: Optional[int] = None
    group_order: int = 1
    band: int = 0  # band limit L of sphere/so3 signals (degrees ℓ < L)
    law: Optional[object] = field(default=None, compare=False)  # a gaussianity.Law

    @property
    def sites(self) -> int:
        """Number of spatial sites P of the box (1 for vectors)."""
        return int(np.prod(self.shape)) if self.shape else 1

    def describe(self) -> str:
        return domain(self.domain).describe(self)

    def __str__(self) -> str:
        return self.describe()
