"""The plan: a small kernel-op IR between the symbolic derivation and the JAX code.

A :class:`Layout` says how one layer's kernel is stored per pair of inputs (leading axis ``p``):

=================  ==============================  =========================================
layout             array shape per batch of pairs  entry
=================  ==============================  =========================================
``box_full``       (p, *box, *box)                 K[t, t']
``box_diag``       (p, *box)                       K[t, t]            -- identity (D)
``group_reduced``  (p, H, *box, *box)              K̃[t, t'](q) = K[(t,e), (t',q)]  -- (R)
``group_diag``     (p, *box)                       K̃[t, t](e)         -- (R) and (D)
``group_general``  (p, H, *box, H, *box)           K[(t,r), (t',r')]  -- no identity
``vector``         (p,)                            K
``sphere_coeffs``  2 × (p, C, L, 2L-1) complex     a_cℓm of f and f' (SO(3) family input)
``so3_reduced``    (p, (2B)³ + 1)                  K̃(q) = K[e, q] on the grid, then K̃(e) -- (R)
``so3_general``    (p, (2B)³, (2B)³)               K[g_i, g_j]       -- no identity
=================  ==============================  =========================================

An :class:`Op` is one step of the plan: its statements (:class:`Assign` of expressions such as
:class:`Call`, :class:`Affine`, :class:`Sum`; each prints itself as source), the formula it
implements (a comment in the generated code) and its cost per pair (entries written, FLOPs).
The rewrite passes (:mod:`kernelc.compiler.passes`) fold and forward these statements; the code
generator and ``explain`` print the result.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np

LAYOUT_KINDS = ("box_full", "box_diag", "group_reduced", "group_diag", "group_general", "vector",
                "sphere_coeffs", "so3_reduced", "so3_general")


@dataclass(frozen=True)
class Layout:
    kind: str
    box: Tuple[int, ...] = ()
    order: int = 1  # |H|

    @property
    def d(self) -> int:
        return len(self.box)

    @property
    def sites(self) -> int:
        return int(np.prod(self.box)) if self.box else 1

    @property
    def entries(self) -> int:
        """Kernel entries stored per pair of inputs."""
        P, H = self.sites, self.order
        return {"box_full": P * P, "box_diag": P, "group_reduced": H * P * P, "group_diag": P,
                "group_general": H * H * P * P, "vector": 1, "sphere_coeffs": P,
                "so3_reduced": P + 1, "so3_general": P * P}[self.kind]

    @property
    def pair_shape(self) -> Tuple[int, ...]:
        b, H = self.box, self.order
        return {"box_full": b + b, "box_diag": b, "group_reduced": (H,) + b + b,
                "group_diag": b, "group_general": (H,) + b + (H,) + b, "vector": (),
                "sphere_coeffs": b, "so3_reduced": (self.sites + 1,),
                "so3_general": (self.sites, self.sites)}[self.kind]

    @property
    def variance_shape(self) -> Tuple[int, ...]:
        """Per input, the shape of the per-site variances K[g,g](f,f) a nonlinearity reads in
        this layout (:func:`kernelc.runtime.layouts.self_diagonal` of a self pair's kernel)."""
        b, H = self.box, self.order
        return {"box_full": b, "box_diag": b, "group_reduced": b, "group_diag": b,
                "group_general": (H,) + b, "vector": (), "so3_reduced": (),
                "so3_general": (self.sites,)}[self.kind]

    @property
    def is_diag(self) -> bool:
        return self.kind in ("box_diag", "group_diag")

    def describe(self) -> str:
        shape = "×".join(map(str, self.pair_shape)) or "1"
        return f"{self.kind} ({shape} per pair)"


@dataclass
class Value:
    """A kernel pair (NNGP array name, NTK array name or None for Θ = 0) with its layout."""

    nngp: str
    ntk: Optional[str]
    layout: Layout
    node: Optional[str] = None  # the layer whose kernel this is (set by the derivation)


# -- statements ----------------------------------------------------------------------------------
# An op's body is a list of statements over array names. The common forms are structured (the
# rewrite passes of kernelc.compiler.passes read and fold them); the rest are kept as ``Code``
# (an expression) or ``Line`` (a statement) of array source text until they get a form of their
# own. Every node prints itself as Python source with ``source()``: the code generator and
# ``explain`` print the same statements.

class Expr:
    """An array expression of the plan."""

    def source(self) -> str:  # pragma: no cover - every expression overrides it
        raise NotImplementedError

    def refs(self) -> Tuple[str, ...]:
        """The array names the expression reads."""
        return tuple(r for c in self.children() for r in c.refs())

    def children(self) -> Tuple["Expr", ...]:
        """The sub-expressions (the passes rewrite and rename through them)."""
        return ()

    def with_children(self, children: Tuple["Expr", ...]) -> "Expr":
        """This node over other sub-expressions (same number, same order)."""
        return self


def number_source(value: float) -> str:
    """A constant as short source text: 15 significant digits (sqrt(2)**2 prints as 2.0)."""
    return repr(float(f"{value:.15g}"))


@dataclass(frozen=True)
class Ref(Expr):
    """An array by name."""

    name: str

    def source(self) -> str:
        return self.name

    def refs(self):
        return (self.name,)


@dataclass(frozen=True)
class Num(Expr):
    """A floating-point constant."""

    value: float

    def source(self) -> str:
        return number_source(self.value)


@dataclass(frozen=True)
class Param(Expr):
    """A hyperparameter of the network (a weight layer's ``W_std`` or ``b_std``), raised to
    ``power``: ``params['lift1.W_std'] ** 2`` in the generated ``_propagate``, which takes the
    values as an argument (the spec's values, ``default``, are the module's DEFAULT_PARAMS), so
    that the kernels can be differentiated with respect to them. Never folded as a constant."""

    key: str
    default: float
    power: int = 1

    def source(self) -> str:
        base = f"params[{self.key!r}]"
        return base if self.power == 1 else f"{base} ** {self.power}"

    @property
    def value(self) -> float:
        """The value at the spec's default (what a constant in its place would be)."""
        return self.default ** self.power


@dataclass(frozen=True)
class Lit(Expr):
    """A Python literal argument (an int, a tuple of offsets, a layout name): ``repr``."""

    value: object

    def source(self) -> str:
        return repr(self.value)


@dataclass(frozen=True)
class Call(Expr):
    """``fn(arg, ...)``: a runtime helper or a jax function."""

    fn: str
    args: Tuple[Expr, ...]

    def source(self) -> str:
        return f"{self.fn}({', '.join(a.source() for a in self.args)})"

    def children(self):
        return self.args

    def with_children(self, children):
        return Call(self.fn, tuple(children))


@dataclass(frozen=True)
class Affine(Expr):
    """``scale * x + shift`` (no shift: ``scale * x``)."""

    scale: Expr
    x: Expr
    shift: Optional[Expr] = None

    def source(self) -> str:
        scale = self.scale.source()
        if not isinstance(self.scale, (Ref, Num, Lit, Call, Param)):  # a sum or a map: parenthesised
            scale = f"({scale})"
        head = f"{scale} * {self.x.source()}"
        return head if self.shift is None else f"{head} + {self.shift.source()}"

    def children(self):
        return (self.scale, self.x) + (() if self.shift is None else (self.shift,))

    def with_children(self, children):
        return Affine(*children)


@dataclass(frozen=True)
class Sum(Expr):
    """``a + b + ...``."""

    terms: Tuple[Expr, ...]

    def source(self) -> str:
        return " + ".join(t.source() for t in self.terms)

    def children(self):
        return self.terms

    def with_children(self, children):
        return Sum(tuple(children))


@dataclass(frozen=True)
class Map(Expr):
    """A nonlinearity's kernel map at (k11, k12, k22): ``part`` "K⁺" = E[φ(u)φ(v)] or
    "K̇" = E[φ'(u)φ'(v)], (u, v) ~ N(0, [[k11, k12], [k12, k22]]), of the map ``name``
    (rules.nonlinearities.KernelMap). ``emit`` prints its array source at three argument
    sources (the rules' printer; the IR does not know the maps)."""

    name: str
    part: str
    args: Tuple[Expr, Expr, Expr]
    emit: Callable[[str, str, str], str] = field(compare=False, repr=False)

    def source(self) -> str:
        return self.emit(*(a.source() for a in self.args))

    def children(self):
        return self.args

    def with_children(self, children):
        return Map(self.name, self.part, tuple(children), self.emit)


@dataclass(frozen=True)
class Mean(Expr):
    """The mean of ``x`` over site or group axes: Σ_axes x / count over ``axes`` (None: every
    axis after the pair axis; ``keepdims`` keeps them as size 1), or with ``window`` = (size,
    stride) the windowed mean of runtime.stencils.window_mean over ``axes``. The sum is
    runtime.stencils.pairwise_sum's, whose float32 error does not grow with the number of
    entries as a running sum's does."""

    x: Expr
    axes: Optional[Tuple[int, ...]] = None
    count: float = 1.0
    keepdims: bool = False
    window: Optional[Tuple[int, int]] = None

    def source(self) -> str:
        a = self.x.source()
        if self.window is not None:
            return f"window_mean({a}, {self.axes!r}, {self.window[0]}, {self.window[1]})"
        axes = f"tuple(range(1, {a}.ndim))" if self.axes is None else repr(self.axes)
        keep = ", keepdims=True" if self.keepdims else ""
        total = f"pairwise_sum({a}, {axes}{keep})"
        return total if self.count == 1 else f"{total} / {float(self.count)!r}"  # x / 1 = x

    def children(self):
        return (self.x,)

    def with_children(self, children):
        return dataclasses.replace(self, x=children[0])


@dataclass(frozen=True)
class Code(Expr):
    """Array source text not (yet) structured: its names are only renamed by the passes."""

    text: str
    names: Tuple[str, ...] = ()  # the array names it reads

    def source(self) -> str:
        return self.text

    def refs(self):
        return self.names


class FilterSum(Expr):
    """A filter sum S(K) printed as one runtime call ``fn(x, rest)``: :meth:`call` gives the
    three parts (source text), so that :class:`WithTheta` can print S of K and of Θ as one
    call. Subclasses are the families' stencil nodes; ``children()[0]`` is the kernel read."""

    def call(self) -> Tuple[str, str, str]:  # pragma: no cover
        raise NotImplementedError

    def source(self) -> str:
        fn, x, rest = self.call()
        return f"{fn}({x}, {rest})"

    def reading(self, x: Expr) -> "FilterSum":
        """The same filter sum applied to ``x`` instead of its kernel."""
        return self.with_children((x,) + tuple(self.children()[1:]))


@dataclass(frozen=True)
class WithTheta(Expr):
    """(S(K), S(Θ)) of one filter sum S (a :class:`FilterSum` reading K) as one call on K and
    Θ stacked on the pair axis (``runtime.stencils.with_theta``); Θ's part only when the NTK is
    wanted (``want_ntk``, else None). Assigned to two names: the filter sums of K and Θ."""

    stencil: Expr
    theta: Expr

    def source(self) -> str:
        fn, x, rest = self.stencil.call()
        _, theta, _ = self.stencil.reading(self.theta).call()
        return f"with_theta({fn}, {x}, {theta} if want_ntk else None, {rest})"

    def children(self):
        return (self.stencil, self.theta)

    def with_children(self, children):
        return WithTheta(children[0], children[1])


# -- layout-carrying expressions -----------------------------------------------------------------
# The lowerings state every kernel in the family's general layout (box_full, group_general,
# so3_general); the identity passes (kernelc.compiler.relayout) rewrite a node of layout A into
# the same node in layout B where an identity proves them equal (docs/math/identities.md). Each
# such node prints itself in every layout it lists in ``layouts``; ``owner`` is the layer whose
# kernel's layout it is (the identity (D) holds at some layers only).

class LaidOut(Expr):
    """An expression whose code depends on the storage layout of one layer's kernel."""

    layouts: Tuple[str, ...] = ()

    def at(self, layout: Layout) -> "LaidOut":
        """The same computation for the kernel stored in ``layout``."""
        if layout.kind not in self.layouts:
            raise ValueError(f"{type(self).__name__} has no form for a {layout.kind} kernel")
        return dataclasses.replace(self, layout=layout)


_VARIANCE_LAYOUTS = ("box_full", "box_diag", "group_reduced", "group_diag", "group_general",
                     "vector", "so3_reduced", "so3_general")


@dataclass(frozen=True)
class SelfVariances(LaidOut):
    """(v_a, v_b): the per-site variances K[g,g](f,f) of both inputs of a nonlinearity, from the
    self pass (``stats_a[i]``, ``stats_b[i]``), or read off the diagonal of ``x`` for a self
    pair (``self_pairs``: every pair when stats_a is None, else a flag per pair;
    :func:`kernelc.runtime.layouts.pair_variances`)."""

    index: int
    x: Expr
    layout: Layout
    owner: str
    layouts = _VARIANCE_LAYOUTS

    def source(self) -> str:
        return (f"pair_variances({self.layout.kind!r}, {self.layout.d}, {self.x.source()}, "
                f"stats_a, stats_b, {self.index}, self_pairs)")

    def children(self):
        return (self.x,)

    def with_children(self, children):
        return dataclasses.replace(self, x=children[0])


@dataclass(frozen=True)
class Variances(LaidOut):
    """(k11, k22): the variances ``va``, ``vb`` broadcast against a kernel of ``layout``."""

    va: Expr
    vb: Expr
    layout: Layout
    owner: str
    layouts = _VARIANCE_LAYOUTS

    def source(self) -> str:
        return (f"variances({self.layout.kind!r}, {self.layout.d}, {self.va.source()}, "
                f"{self.vb.source()})")

    def children(self):
        return (self.va, self.vb)

    def with_children(self, children):
        return dataclasses.replace(self, va=children[0], vb=children[1])


@dataclass(frozen=True)
class SelfDiagonal(LaidOut):
    """K[g,g] for every g of a kernel ``x`` of ``layout`` (runtime.layouts.self_diagonal)."""

    x: Expr
    layout: Layout
    owner: str
    layouts = _VARIANCE_LAYOUTS

    def source(self) -> str:
        return f"self_diagonal({self.layout.kind!r}, {self.layout.d}, {self.x.source()})"

    def children(self):
        return (self.x,)

    def with_children(self, children):
        return dataclasses.replace(self, x=children[0])


@dataclass(frozen=True)
class MaskSites(LaidOut):
    """``x`` zero at the sites outside a masked (hexagonal) domain: the module constant
    SITE_MASK on every site slot of ``layout``."""

    x: Expr
    layout: Layout
    owner: str
    layouts = ("box_full", "box_diag", "group_reduced", "group_diag", "group_general")

    def source(self) -> str:
        x, d = self.x.source(), self.layout.d
        if self.layout.kind in ("box_diag", "group_diag"):
            return f"{x} * SITE_MASK"
        lead = d + 1 if self.layout.kind == "group_general" else d  # the first slot's axes
        return f"{x} * (SITE_MASK.reshape(SITE_MASK.shape + (1,) * {lead}) * SITE_MASK)"

    def children(self):
        return (self.x,)

    def with_children(self, children):
        return dataclasses.replace(self, x=children[0])


def relayout(e: Expr, layout_of: Callable[[str, Layout], Layout]) -> Expr:
    """``e`` with every layout-carrying node moved to ``layout_of(owner, layout)``."""
    children = e.children()
    if children:
        e = e.with_children(tuple(relayout(c, layout_of) for c in children))
    if isinstance(e, LaidOut):
        new = layout_of(e.owner, e.layout)
        return e if new == e.layout else e.at(new)
    return e


def walk(e: Expr) -> Iterator[Expr]:
    """Every node of ``e``, children before their parent (what the passes and the derivation's
    collections of constants, variances and hyperparameters go through)."""
    for c in e.children():
        yield from walk(c)
    yield e


class Stmt:
    """A statement of an op's body."""

    def source(self) -> str:  # pragma: no cover
        raise NotImplementedError


@dataclass(frozen=True)
class Assign(Stmt):
    """``target, ... = value``."""

    targets: Tuple[str, ...]
    value: Expr

    def source(self) -> str:
        return f"{', '.join(self.targets)} = {self.value.source()}"


@dataclass(frozen=True)
class Line(Stmt):
    """A statement as source text (not structured yet)."""

    text: str

    def source(self) -> str:
        return self.text


def as_statement(item) -> Stmt:
    """Statements stay; text becomes a :class:`Line`."""
    return item if isinstance(item, Stmt) else Line(str(item))


@dataclass
class Op:
    """One plan step: its body (``lines``, statements; ``ntk_lines`` run only when the NTK is
    wanted), the formula it implements (a comment above the code and a line of ``explain``) and
    its cost per pair. Text given for a statement becomes a :class:`Line`."""

    kind: str  # input | stencil | reindex | affine | elementwise | mean | mask | combine
    formula: str
    lines: List[Stmt]
    entries: int  # entries written per pair (NNGP; the NTK doubles it when requested)
    flops: int  # floating point operations per pair
    ntk_lines: List[Stmt] = field(default_factory=list)  # executed only when the NTK is wanted
    #: the layout of ``owner``'s kernel (this op's output) that ``entries`` and ``formula``
    #: are stated for, and the layout of ``source``'s kernel that ``flops`` scale with (the
    #: output's when None): when an identity pass stores a kernel in another layout, the cost
    #: scales with its entries and the formula is the one of the new layout
    layout: Optional[Layout] = None
    owner: Optional[str] = None
    source_layout: Optional[Layout] = None
    source: Optional[str] = None
    #: the formula in each layout the op may be rewritten to, keyed by the source's layout kind
    #: when there is a source, else by the output's (``formula`` is the current one)
    formulas: Optional[Dict[str, str]] = None
    #: (entries, flops) in each layout, keyed like ``formulas``, where the cost is not
    #: proportional to the entries (SO(3): transforms in one layout, grid sums in the other)
    costs: Optional[Dict[str, Tuple[int, int]]] = None

    def __post_init__(self):
        self.lines = [as_statement(s) for s in self.lines]
        self.ntk_lines = [as_statement(s) for s in self.ntk_lines]

    def relaid(self, layout_of: Callable[[str, Layout], Layout]) -> "Op":
        """This op's formula and cost once every kernel ``k`` of layer ``n`` is stored in
        ``layout_of(n, layout)`` (the statements are rewritten by :func:`relayout`)."""
        if self.layout is None:
            return self
        out = layout_of(self.owner, self.layout)
        flops = self.flops * out.entries / self.layout.entries
        src = self.source_layout
        if src is not None:
            new_src = layout_of(self.source, src)
            flops = self.flops * new_src.entries / src.entries
            src = new_src
        # a reading op (a mean) states its formula for the layout it reads
        key = (src or out).kind
        formula = self.formulas[key] if self.formulas else self.formula
        entries = self.entries * out.entries / self.layout.entries
        if self.costs:
            entries, flops = self.costs[key]
        return dataclasses.replace(self, layout=out, source_layout=src, formula=formula,
                                   entries=int(round(entries)), flops=int(round(flops)))


def stencil_cost(layout: Layout, n_terms: int) -> int:
    return layout.entries * max(1, n_terms)


def pairs_literal(pairs) -> str:
    """Deterministic, compact source text of a nested tuple of offset pairs."""
    return repr(tuple(tuple(tuple(int(c) for c in o) for o in pr) for pr in pairs))


def pad_widths(support: np.ndarray) -> Tuple[Tuple[int, int], ...]:
    """Per axis (lo, hi): how far the stencil reaches below and above the output site."""
    lo = np.maximum(-support.min(axis=0), 0)
    hi = np.maximum(support.max(axis=0), 0)
    return tuple((int(a), int(b)) for a, b in zip(lo, hi))
