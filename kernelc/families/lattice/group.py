"""Lattice groups G = H ⋉ Z^d, built from the generators of the point group H.

H is a finite group of integer d×d matrices ρ(r). Elements of G are pairs g = (t, r) with
product (t, r)(t', r') = (t + ρ(r)t', r r') and action on the lattice X = Z^d

    (t, r)·x = ρ(r)x + t.

Translations are handled by the convolution rules themselves (they are shifts of the box);
this module supplies everything about the finite part H that the compiler needs:

* the closure of the generators (``elements``, identity first, then breadth-first order),
* the Cayley table ``cayley[a, b] = index(ρ_a ρ_b)``, inverses, conjugacy classes,
* the permutation each ρ(r) induces on a filter support S ⊂ Z^d (``offset_permutation``),
* the permutation each ρ(r) induces on the sites of a finite box, rotating *about the box
  centre* c = (n−1)/2 (``site_permutation``), and the induced action on signals
  (ρ(h)f)(x) = f(ρ(h)⁻¹x) (``transform_signal``).

On a hexagonal lattice points are written in axial coordinates (a, b) (basis vectors at 120°,
so the hexagonal "ball" of radius r is |a|, |b|, |a+b| ≤ r) and finite domains are hexagons
inscribed in an odd square box.
"""
from __future__ import annotations

import itertools
import sys
from collections import deque
from dataclasses import dataclass, field
from functools import cached_property
from typing import Optional, Sequence

import numpy as np

from kernelc.errors import GroupError, SourceSpan

LATTICES = ("square", "hexagonal")


def _frozen(a: np.ndarray) -> np.ndarray:
    """Mark a cached array read-only: callers share it, so accidental writes must fail loudly."""
    a.setflags(write=False)
    return a


def _int_det(m: Sequence[Sequence[int]]) -> int:
    """Exact determinant of an integer matrix (Bareiss elimination; no floating point)."""
    a = [list(row) for row in m]
    n, sign, prev = len(a), 1, 1
    for k in range(n - 1):
        if a[k][k] == 0:  # pivot: swap in a row with a nonzero entry in column k
            swap = next((i for i in range(k + 1, n) if a[i][k] != 0), None)
            if swap is None:
                return 0
            a[k], a[swap], sign = a[swap], a[k], -sign
        for i in range(k + 1, n):
            for j in range(k + 1, n):
                a[i][j] = (a[i][j] * a[k][k] - a[i][k] * a[k][j]) // prev
        prev = a[k][k]
    return sign * a[n - 1][n - 1] if n else 1


def _fmt_matrix(m) -> str:
    """Compact matrix text: ``[[0,-1],[1,0]]``."""
    return "[" + ",".join("[" + ",".join(str(int(v)) for v in row) + "]" for row in m) + "]"


def _fmt_point(p) -> str:
    return "(" + ",".join(str(int(v)) for v in p) + ")"


def _normalize_generator(name: str, dim: int, k: int, gen) -> tuple:
    """Generator ``k`` as a d×d tuple of Python ints; GroupError if it is not a d×d integer matrix."""
    try:
        arr = np.asarray(gen, dtype=object)
    except Exception as exc:  # ragged nested lists and the like
        raise GroupError(f"group '{name}': generator {k + 1} is not a matrix ({exc})") from None
    if arr.shape != (dim, dim):
        raise GroupError(f"group '{name}': generator {k + 1} has shape "
                         f"{' x '.join(map(str, arr.shape)) or 'scalar'}; expected {dim} x {dim}")
    rows = []
    for row in arr:
        out = []
        for v in row:
            # integral floats (1.0) are accepted; 0.5 or 'a' are not
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not float(v).is_integer():
                raise GroupError(f"group '{name}': generator {k + 1} has a non-integer entry {v!r}; "
                                 "point-group matrices must be integer (they act on Z^d)")
            out.append(int(v))
        rows.append(tuple(out))
    det = _int_det(rows)
    if det not in (1, -1):
        raise GroupError(f"group '{name}': generator {k + 1} {_fmt_matrix(rows)} has determinant {det}; "
                         "it must be ±1 so that its inverse is an integer matrix")
    return tuple(rows)


@dataclass(frozen=True, eq=False)
class LatticeGroup:
    """The point group H (finite, integer matrices) of a lattice group H ⋉ Z^d.

    Constructing one validates the generators and computes the closure eagerly, so an invalid
    declaration fails at once. Equality is identity (``eq=False``): groups are looked up by name.
    Derived tables are cached on the instance and returned read-only.
    """

    name: str
    dim: int
    generators: tuple = ()
    lattice: str = "square"
    description: str = ""
    max_order: int = field(default=1000, repr=False)

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_generators(cls, name: str, dim: int, generators: Sequence = (), lattice: str = "square",
                        description: str = "", max_order: int = 1000) -> "LatticeGroup":
        """Validate ``generators`` (d×d integer matrices, det ±1) and build the group."""
        return cls(name, dim, tuple(generators), lattice, description, max_order)

    def __post_init__(self):
        if not isinstance(self.dim, (int, np.integer)) or isinstance(self.dim, bool) or self.dim < 1:
            raise GroupError(f"group '{self.name}': dimension must be an integer >= 1, got {self.dim!r}")
        if self.lattice not in LATTICES:
            raise GroupError(f"group '{self.name}': unknown lattice '{self.lattice}'",
                             expected=LATTICES)
        if self.lattice == "hexagonal" and self.dim != 2:
            raise GroupError(f"group '{self.name}': a hexagonal lattice is 2-dimensional, got dim {self.dim}")
        gens = tuple(_normalize_generator(self.name, int(self.dim), k, g)
                     for k, g in enumerate(self.generators))
        # frozen dataclass: normalized values go in through object.__setattr__
        object.__setattr__(self, "dim", int(self.dim))
        object.__setattr__(self, "generators", gens)
        object.__setattr__(self, "_site_cache", {})
        object.__setattr__(self, "_elements", self._closure())

    def _closure(self) -> np.ndarray:
        """Breadth-first closure: identity first, then right-multiplication by each generator."""
        d = self.dim
        gens = [np.array(g, dtype=np.int64) for g in self.generators]
        ident = np.eye(d, dtype=np.int64)
        seen = {ident.tobytes(): 0}
        out, queue = [ident], deque([ident])
        while queue:
            g = queue.popleft()
            for s in gens:
                p = g @ s
                key = p.tobytes()
                if key in seen:
                    continue
                if len(out) >= self.max_order:
                    # a generator of infinite order (e.g. a shear) never closes; stop here
                    raise GroupError(f"group '{self.name}': closure exceeds {self.max_order} elements; "
                                     "the generators must generate a finite group "
                                     "(rotations/reflections of the lattice)")
                seen[key] = len(out)
                out.append(p)
                queue.append(p)
        return _frozen(np.stack(out))

    # ----------------------------------------------------------------- group tables
    @property
    def elements(self) -> np.ndarray:
        """(|H|, d, d) int64 matrices ρ(h); index 0 is the identity."""
        return self._elements

    @property
    def order(self) -> int:
        return int(self._elements.shape[0])

    @property
    def identity(self) -> int:
        return 0

    @property
    def is_trivial(self) -> bool:
        return self.order == 1

    @cached_property
    def _index(self) -> dict:
        return {m.tobytes(): i for i, m in enumerate(self._elements)}

    def index_of(self, matrix) -> int:
        """Index of ``matrix`` in ``elements``; GroupError if it is not an element of H."""
        m = np.asarray(matrix)
        if m.shape != (self.dim, self.dim) or not np.all(np.equal(np.mod(m, 1), 0)):
            raise GroupError(f"{m.tolist()!r} is not a {self.dim} x {self.dim} integer matrix")
        i = self._index.get(m.astype(np.int64).tobytes())
        if i is None:
            raise GroupError(f"{_fmt_matrix(m)} is not an element of {self.name}")
        return i

    @cached_property
    def cayley(self) -> np.ndarray:
        """``cayley[a, b]`` = index of ρ_a ρ_b."""
        n, idx = self.order, self._index
        table = np.empty((n, n), dtype=np.int64)
        for a in range(n):
            prods = self._elements[a] @ self._elements  # (n, d, d), row a at once
            table[a] = [idx[p.tobytes()] for p in prods]
        return _frozen(table)

    @cached_property
    def inverse(self) -> np.ndarray:
        """``inverse[a]`` = index of ρ_a⁻¹ (the b with cayley[a, b] = identity)."""
        return _frozen(np.argmin(self.cayley != 0, axis=1).astype(np.int64))

    @cached_property
    def is_abelian(self) -> bool:
        return bool(np.array_equal(self.cayley, self.cayley.T))

    @cached_property
    def conjugacy_classes(self) -> tuple:
        """Classes {g a g⁻¹ : g ∈ H} as sorted index tuples, ordered by smallest member."""
        c, inv = self.cayley, self.inverse
        classes, done = [], set()
        for a in range(self.order):
            if a in done:
                continue
            cls = tuple(sorted({int(c[c[g, a], inv[g]]) for g in range(self.order)}))
            done.update(cls)
            classes.append(cls)
        return tuple(classes)

    @cached_property
    def grid_elements(self) -> tuple:
        """Every element: each maps the lattice onto itself (a steerable group lists only some)."""
        return tuple(range(self.order))

    @cached_property
    def element_labels(self) -> tuple:
        """Short names: ``"e"`` for the identity, otherwise the matrix, e.g. ``[[0,-1],[1,0]]``."""
        return tuple("e" if i == 0 else _fmt_matrix(m) for i, m in enumerate(self._elements))

    # ----------------------------------------------------------------- filter offsets
    def default_support(self, size: int, *, span: Optional[SourceSpan] = None) -> np.ndarray:
        """Filter offsets of a size-``size`` filter, centred at 0, in lexicographic order.

        Square lattice: the box {−(k−1)/2 … (k−1)/2}^d for odd k; for even k the box
        {−k/2 … k/2−1}^d, which is only accepted when H maps it onto itself (trivial H).
        Hexagonal lattice: the hexagonal ball {(a,b): |a|, |b|, |a+b| ≤ (k−1)/2}, k odd.
        """
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
            raise GroupError(f"filter size must be a positive integer, got {size!r}", span)
        k, d = int(size), self.dim
        if self.lattice == "hexagonal":
            if k % 2 == 0:
                raise GroupError(f"even filter size {k} has no centre on the hexagonal lattice of "
                                 f"{self.name}; use an odd size", span)
            r = (k - 1) // 2
            pts = [(a, b) for a in range(-r, r + 1) for b in range(-r, r + 1) if abs(a + b) <= r]
            return np.array(pts, dtype=np.int64).reshape(-1, 2)
        lo = -((k - 1) // 2) if k % 2 else -(k // 2)
        pts = np.array(list(itertools.product(range(lo, lo + k), repeat=d)), dtype=np.int64).reshape(-1, d)
        if k % 2 == 0 and not self.is_invariant(pts):
            raise GroupError(f"even filter size {k} cannot be invariant under {self.name}; "
                             "use an odd size", span)
        return pts

    def _offset_images(self, offsets: np.ndarray) -> np.ndarray:
        """(|H|, m, d): ρ(h) applied to every offset."""
        return np.einsum("hij,mj->hmi", self._elements, offsets)

    def offset_permutation(self, offsets, *, span: Optional[SourceSpan] = None) -> np.ndarray:
        """(|H|, m) int: ``perm[h, i] = j`` with ρ(h)·offsets[i] = offsets[j].

        GroupError if the offsets repeat or are not mapped onto themselves by H.
        """
        off = self._as_offsets(offsets, span)
        lookup = {tuple(p): j for j, p in enumerate(off.tolist())}
        if len(lookup) != len(off):
            raise GroupError("filter offsets contain duplicates", span)
        imgs = self._offset_images(off)
        perm = np.empty(imgs.shape[:2], dtype=np.int64)
        for h in range(self.order):
            for i, p in enumerate(imgs[h].tolist()):
                j = lookup.get(tuple(p))
                if j is None:
                    raise GroupError(
                        f"the filter support is not invariant under {self.name}: element "
                        f"{self.element_labels[h]} maps offset {_fmt_point(off[i])} to {_fmt_point(p)}, "
                        "which is not in the support", span)
                perm[h, i] = j
        return perm

    def is_invariant(self, offsets) -> bool:
        """Whether every ρ(h) maps the offset set onto itself."""
        off = self._as_offsets(offsets, None)
        pts = {tuple(p) for p in off.tolist()}
        return all(tuple(p) in pts for p in self._offset_images(off).reshape(-1, self.dim).tolist())

    def _as_offsets(self, offsets, span) -> np.ndarray:
        off = np.asarray(offsets)
        if off.ndim != 2 or off.shape[1] != self.dim or not np.all(np.equal(np.mod(off, 1), 0)):
            raise GroupError(f"filter offsets must be an (m, {self.dim}) integer array, "
                             f"got shape {off.shape}", span)
        return off.astype(np.int64)

    # ----------------------------------------------------------------- finite boxes
    def _check_shape(self, shape) -> tuple:
        shape = tuple(int(n) for n in shape)
        if len(shape) != self.dim or any(n < 1 for n in shape):
            raise GroupError(f"a box for {self.name} needs {self.dim} positive sides, got {shape}")
        return shape

    def domain_mask(self, shape) -> np.ndarray:
        """Boolean mask of the domain inside the box ``shape``.

        Square lattice: the whole box. Hexagonal lattice: the hexagon inscribed in an odd n×n
        box, axial offsets (a, b) = x − c from the centre c = (n−1)/2 with |a|, |b|, |a+b| ≤ c.
        """
        shape = self._check_shape(shape)
        if self.lattice == "square":
            return np.ones(shape, dtype=bool)
        n = shape[0]
        if shape[0] != shape[1] or n % 2 == 0:
            raise GroupError(f"a hexagonal domain for {self.name} needs an odd square box "
                             f"(n x n, n odd), got {shape[0]} x {shape[1]}")
        r = (n - 1) // 2
        a, b = np.meshgrid(np.arange(n) - r, np.arange(n) - r, indexing="ij")
        return (np.abs(a) <= r) & (np.abs(b) <= r) & (np.abs(a + b) <= r)

    def site_permutation(self, shape) -> np.ndarray:
        """(|H|, P) int, P = prod(shape), C-order sites: ``perm[h, p] = q`` iff ρ(h) sends p to q.

        The rotation is about the box centre: x ↦ ρ(h)(x − c) + c with c = (n−1)/2 per axis,
        computed exactly in doubled coordinates u = 2x − (n−1) (odd when a side is even).
        GroupError if the box is not mapped onto itself. On a hexagonal lattice only the
        hexagonal domain (``domain_mask``) must be invariant; sites outside it are left fixed,
        so that every row is still a permutation of the whole box (signals vanish there).
        """
        shape = self._check_shape(shape)
        cached = self._site_cache.get(shape)
        if cached is not None:
            return cached
        n = np.array(shape, dtype=np.int64)
        mask = self.domain_mask(shape).reshape(-1)
        sites = np.array(list(itertools.product(*(range(s) for s in shape))), dtype=np.int64)
        doubled = 2 * sites - (n - 1)                              # (P, d)
        images = np.einsum("hij,pj->hpi", self._elements, doubled)  # (|H|, P, d)
        twice = images + (n - 1)                                    # = 2 x'
        inside = np.all((twice % 2 == 0) & (twice >= 0) & (twice <= 2 * (n - 1)), axis=2)
        new = twice // 2
        flat = np.ravel_multi_index(tuple(np.clip(new, 0, n - 1).transpose(2, 0, 1)), shape)
        ok = inside & mask[flat] if self.lattice == "hexagonal" else inside
        bad = np.argwhere(~ok & mask[None, :])
        if len(bad):
            h, p = bad[0]
            box = " x ".join(map(str, shape))
            where = "outside the box" if not inside[h, p] else "outside the hexagonal domain"
            hint = ("use a square box" if len(set(shape)) > 1
                    else f"use a box invariant under {self.name}")
            what = f"the {box} box" if self.lattice == "square" else f"the hexagonal domain of the {box} box"
            raise GroupError(f"{what} is not invariant under {self.name} (element "
                             f"{self.element_labels[h]} maps site {_fmt_point(sites[p])} {where}); {hint}")
        perm = np.where(mask[None, :], flat, np.arange(len(sites))[None, :]).astype(np.int64)
        perm = _frozen(perm)
        self._site_cache[shape] = perm
        return perm

    def transform_signal(self, x, h, spatial_axes: Optional[Sequence[int]] = None):
        """(ρ(h)f)(x) = f(ρ(h)⁻¹x), rotating about the box centre; numpy or jax arrays.

        ``h`` is an element index (or a matrix of H). ``spatial_axes`` defaults to the d axes
        before the last, i.e. layout (..., *spatial, channels). Implemented as a gather with the
        site permutation of ρ(h)⁻¹, so transform(transform(x, a), b) = transform(x, cayley[b, a]).
        """
        if not isinstance(h, (int, np.integer)):
            h = self.index_of(h)
        h = int(h)
        if not 0 <= h < self.order:
            raise GroupError(f"element index {h} out of range for {self.name} (order {self.order})")
        xp = _namespace(x)
        if xp is np:
            x = np.asarray(x)
        nd, d = x.ndim, self.dim
        axes = tuple(range(nd - 1 - d, nd - 1)) if spatial_axes is None else tuple(a % nd for a in spatial_axes)
        if len(axes) != d or min(axes, default=0) < 0 or len(set(axes)) != d:
            raise GroupError(f"transform_signal needs {d} distinct spatial axes for {self.name} "
                             f"in an array of rank {nd}, got {spatial_axes!r}")
        shape = tuple(x.shape[a] for a in axes)
        # out[q] = x[ρ(h)⁻¹ q]: row h⁻¹ of the site permutation is exactly that map
        src = self.site_permutation(shape)[self.inverse[h]]
        moved = xp.moveaxis(x, axes, tuple(range(nd - d, nd)))
        lead = moved.shape[:nd - d]
        flat = moved.reshape(lead + (-1,))
        out = xp.take(flat, xp.asarray(src), axis=-1).reshape(lead + shape)
        return xp.moveaxis(out, tuple(range(nd - d, nd)), axes)

    # ----------------------------------------------------------------- text
    def describe(self) -> str:
        gens = ", ".join(_fmt_matrix(g) for g in self.generators) or "none"
        return (f"{self.name}: order {self.order}, dim {self.dim}, {self.lattice} lattice, "
                f"generators {gens}")

    def __repr__(self) -> str:
        return f"LatticeGroup({self.name!r}, order={self.order}, dim={self.dim}, lattice={self.lattice!r})"


def _namespace(x):
    """jax.numpy for jax arrays/tracers, numpy otherwise (jax is not imported unless in use)."""
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.Array):
        import jax.numpy as jnp
        return jnp
    return np
