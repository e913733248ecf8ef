"""The groups of the steerable family: C_n (rotations by 2π/n) and D_n (with reflections) acting
on the pixel grid Z² through steerable filters (docs/math/steerable.md).

Only rotations by multiples of 90° and the axis reflections map the grid onto itself; the
others act exactly on a filter's basis coefficients, but their rotated filters are only
sampled on the grid. :attr:`SteerableGroup.grid_elements` lists the elements that are grid
symmetries: for them signals transform by a site permutation (:meth:`transform_signal`), the
kernels are exactly invariant, and the lattice group of those elements
(:attr:`SteerableGroup.grid_group`) does the bookkeeping.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ...errors import GroupError
from ...runtime.steerable import group_matrices, support_offsets
from ..lattice.group import LatticeGroup

#: Largest n of C_n / D_n: the reduced kernel has |H| = n (2n) slices and each layer's coupling
#: |H|·|S|² entries.
MAX_ROTATIONS = 64


def _round_matrix(m):
    return tuple(tuple(int(round(c)) for c in row) for row in m)


@dataclass(frozen=True, eq=False)
class SteerableGroup:
    """C_n (``reflections=False``) or D_n: the point group of C_n ⋉ R² / D_n ⋉ R² sampled on the
    pixel grid. Element j + n·m is Rot(2πj/n)·F^m, F the reflection (y₀, y₁) ↦ (y₀, −y₁)."""

    name: str
    n: int
    reflections: bool
    description: str = ""
    dim: int = 2
    lattice: str = "square"  # the pixel grid (what avg_pool's windows and messages ask)
    generators: tuple = field(default=(), repr=False)

    def __post_init__(self):
        if isinstance(self.n, bool) or not isinstance(self.n, int) or not \
                1 <= self.n <= MAX_ROTATIONS:
            raise GroupError(f"group '{self.name}': n must be an integer in 1..{MAX_ROTATIONS}, "
                             f"got {self.n!r}")
        mats = group_matrices(self.n, self.reflections)
        object.__setattr__(self, "_matrices", mats)
        cayley = np.array([[self._index_near(a @ b) for b in mats] for a in mats], dtype=np.int64)
        inverse = np.argmax(cayley == 0, axis=1)
        for table in (mats, cayley, inverse):  # read-only, as the lattice group's tables
            table.flags.writeable = False
        object.__setattr__(self, "_cayley", cayley)
        object.__setattr__(self, "_inverse", inverse)

    # ----------------------------------------------------------------- the abstract group
    @property
    def elements(self) -> np.ndarray:
        """(|H|, 2, 2) float64 rotation/reflection matrices, element order j + n·m."""
        return self._matrices

    @property
    def order(self) -> int:
        return len(self._matrices)

    def _index_near(self, matrix) -> int:
        dist = np.abs(self._matrices - np.asarray(matrix)[None]).max(axis=(1, 2))
        i = int(np.argmin(dist))
        if dist[i] > 1e-9:
            raise GroupError(f"{np.asarray(matrix).tolist()} is not an element of {self.name}")
        return i

    index_of = _index_near

    @property
    def cayley(self) -> np.ndarray:
        """cayley[a, b] = index of R_a R_b."""
        return self._cayley

    @property
    def inverse(self) -> np.ndarray:
        """inverse[a] = index of R_a⁻¹ (made with the Cayley table)."""
        return self._inverse

    @property
    def is_abelian(self) -> bool:
        return bool((self._cayley == self._cayley.T).all())

    @property
    def conjugacy_classes(self) -> tuple:
        seen, classes = set(), []
        inv = self.inverse
        for a in range(self.order):
            if a in seen:
                continue
            cls = sorted({int(self._cayley[self._cayley[g, a], inv[g]]) for g in range(self.order)})
            seen.update(cls)
            classes.append(tuple(cls))
        return tuple(classes)

    @property
    def element_labels(self) -> tuple:
        """``e``, ``r45`` (rotation by 45°), ``r90·f`` (the reflection F, then the rotation)."""
        labels = []
        for m in range(2 if self.reflections else 1):
            for j in range(self.n):
                angle = 360 * j / self.n
                text = f"r{angle:g}" if j else ""
                if m:
                    text = f"{text}·f" if text else "f"
                labels.append(text or "e")
        return tuple(labels)

    # ----------------------------------------------------------------- the pixel grid
    @property
    def grid_elements(self) -> tuple:
        """Indices of the elements that map Z² onto itself (multiples of 90°, reflections
        composed with them)."""
        return tuple(i for i, m in enumerate(self._matrices)
                     if np.abs(m - np.round(m)).max() < 1e-12)

    @property
    def grid_group(self) -> LatticeGroup:
        """The grid symmetries of this group as a lattice point group (C1, C2, C4, D1, D2, D4)."""
        cached = getattr(self, "_grid_group", None)
        if cached is None:
            gens = [_round_matrix(self._matrices[i]) for i in self.grid_elements if i]
            cached = LatticeGroup.from_generators(f"{self.name}∩grid", 2, gens)
            object.__setattr__(self, "_grid_group", cached)
        return cached

    def default_support(self, size: int, *, span=None) -> np.ndarray:
        """The k×k box of offsets (odd k), lexicographic: the samples of every filter."""
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1 \
                or size % 2 == 0:
            raise GroupError(f"a steerable filter needs an odd size (centred on a pixel), got "
                             f"{size!r}", span)
        return support_offsets(int(size))

    def domain_mask(self, shape) -> np.ndarray:
        """Every pixel of the box belongs to the domain."""
        return np.ones(tuple(shape), dtype=bool)

    def site_permutation(self, shape) -> np.ndarray:
        """(|grid elements|, P): the site permutations of the grid symmetries (GroupError if
        the box is not mapped onto itself, e.g. a non-square box under 90° rotations)."""
        return self.grid_group.site_permutation(shape)

    def transform_signal(self, x, h, spatial_axes: Optional[tuple] = None):
        """(R_h f)(x) = f(R_h⁻¹x) about the box centre, for a grid element h (index of this
        group); GroupError for a rotation that does not map the grid onto itself."""
        h = int(h)
        if h not in self.grid_elements:
            angle = 360 * (h % self.n) / self.n
            raise GroupError(f"element {self.element_labels[h]} of {self.name} (rotation by "
                             f"{angle:g}°) does not map the pixel grid onto itself: a rotated "
                             "image is only an interpolation, not a group action",
                             suggestion="use the grid elements (multiples of 90°, reflections): "
                                        f"{[self.element_labels[i] for i in self.grid_elements]}")
        grid = self.grid_group
        return grid.transform_signal(x, grid.index_of(_round_matrix(self._matrices[h])),
                                     spatial_axes)

    # ----------------------------------------------------------------- text
    def describe(self) -> str:
        kind = "D" if self.reflections else "C"
        return (f"{self.name}: {kind}_{self.n} ⋉ Z², order {self.order}, rotations by "
                f"{360 / self.n:g}°{' and reflections' if self.reflections else ''}; steerable "
                f"filters, grid symmetries {len(self.grid_elements)} of {self.order}")

    def __repr__(self) -> str:
        return f"SteerableGroup({self.name!r}, order={self.order})"


_NAME = re.compile(r"^([CD])(\d+)$")


def steerable_group(name: str) -> Optional[SteerableGroup]:
    """``C8`` -> C_8, ``D16`` -> D_16 (n in 1..MAX_ROTATIONS); None for another name."""
    match = _NAME.match(name)
    if match is None or not 1 <= int(match.group(2)) <= MAX_ROTATIONS:
        return None
    n, refl = int(match.group(2)), match.group(1) == "D"
    what = f"{360 / n:g}° rotations" + (" and reflections" if refl else "")
    return SteerableGroup(name, n, refl, f"{match.group(1)}{n} ⋉ Z²: {what}, steerable filters")
