"""The spec's abstract syntax tree: small frozen dataclasses with source positions.

A spec is a header (name, group, input domain, parameterisation, constants) and a body, a
sequence of statements. A statement is a :class:`Layer` (``lift(size=3, W_std=1.4)``,
``relu``, ``dense(10)``), a :class:`Repeat` block, or a :class:`Branches` block (``residual``:
sum of branches, ``concat``: channel concatenation of branches).

Hyperparameter values are already evaluated here: numbers are floats/ints, symbolic words
(``same``, ``all``) are :class:`Word`, lists/tuples are Python tuples, and the expression of an
arbitrary nonlinearity (``phi(x * sigmoid(x))``) is a sympy expression in the symbol ``x`` built by
our own expression walker, never by ``sympify`` of user text.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Tuple, Union

from ..errors import SourceSpan


@dataclass(frozen=True)
class Word:
    """A bare identifier used as a value, e.g. ``padding=same``."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Argument:
    """One argument of a layer call: positional when ``name`` is None."""

    name: Optional[str]
    value: Any
    span: SourceSpan


@dataclass(frozen=True)
class Layer:
    """A layer statement ``kind(args)``; ``kind`` is e.g. ``lift``, ``gconv``, ``relu``."""

    kind: str
    args: Tuple[Argument, ...]
    span: SourceSpan


@dataclass(frozen=True)
class Repeat:
    """``repeat n { body }``: the body n times in sequence (independent weights each time)."""

    count: int
    body: Tuple["Statement", ...]
    span: SourceSpan


@dataclass(frozen=True)
class Branches:
    """``residual { ... }`` (sum) or ``concat { ... }`` (channel concatenation).

    ``branches`` holds one body per ``branch { ... }`` block. A residual block written without
    explicit branches is its body plus an identity shortcut: ``branches == (body, ())``.
    """

    combine: str  # "sum" | "concat"
    branches: Tuple[Tuple["Statement", ...], ...]
    span: SourceSpan


Statement = Union[Layer, Repeat, Branches]


@dataclass(frozen=True)
class GroupDecl:
    """``group p4`` (built-in), ``group mine = generators [[...]], [[...]]`` or ``group Z4 = trivial 4``."""

    name: str
    generators: Optional[Tuple[Tuple[Tuple[int, ...], ...], ...]]  # None: a built-in name
    lattice: str  # "square" | "hexagonal"
    span: SourceSpan
    dim: Optional[int] = None  # for user groups: the lattice dimension d


@dataclass(frozen=True)
class InputDecl:
    """``input 32 x 32 channels 3``: the box of Z^d the input signal lives on and its channels;
    or ``input sphere bandlimit 6 channels 10``: signals on S² of band limit L, sampled on the
    2L × 2L Driscoll–Healy grid (``shape`` is that grid)."""

    shape: Tuple[int, ...]
    channels: int
    span: SourceSpan
    domain: str = "box"  # "box" | "sphere"
    bandlimit: Optional[int] = None  # sphere inputs: degrees ℓ < L


@dataclass(frozen=True)
class Spec:
    """A whole parsed spec file."""

    name: str
    group: GroupDecl
    input: InputDecl
    parameterization: str  # "ntk" | "standard"
    constants: Tuple[Tuple[str, Any], ...]
    body: Tuple[Statement, ...]
    source: str = field(default="", repr=False, compare=False)
    filename: str = field(default="<spec>", compare=False)
    span: Optional[SourceSpan] = field(default=None, compare=False)
