"""The table of layer kinds the spec language knows: hyperparameters and typing rules.

Each kind is registered next to its typing rule with :func:`layer_kind`. A rule takes the input
:class:`SignalType`, the resolved hyperparameters and the group, and returns the output type or
raises :class:`ShapeError`. Nonlinearities are not listed here one by one: every name in the
nonlinearity rules table (:mod:`kernelc.rules.nonlinearities`) is an elementwise layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Tuple

import numpy as np

from ..errors import KernelcError, ShapeError, SpecError, did_you_mean
from ..groups import get_group
from .ast import Layer, Word
from .gaussianity import CATEGORY_LAWS
from .types import SignalType

PADDINGS = ("same", "valid", "circular")
#: Most offsets a filter support may have (size=k gives k^d), and the largest offset coordinate.
MAX_SUPPORT = 10_000
MAX_OFFSET = 2 ** 20


@dataclass(frozen=True)
class Param:
    name: str
    check: Callable[[Any], Any]  # converts/validates a value, raising ValueError with a reason
    default: Any = None
    positional: bool = False
    doc: str = ""


@dataclass(frozen=True)
class LayerKind:
    name: str
    params: Tuple[Param, ...]
    infer: Callable[..., SignalType]
    category: str = "pool"  # "weight" or "pool": the Gaussianity rule (frontend.gaussianity)
    doc: str = ""
    extra: Dict[str, Any] = field(default_factory=dict)
    #: The kernel rule reads entries K[g, g'] at g ≠ g' of its input (a mean over positions):
    #: identity (D) must keep full kernels at every node before it (compiler.identities).
    off_diagonal: bool = False

    @property
    def parametric(self) -> bool:
        """Fresh weights (and a width under the standard parameterization): a weight layer."""
        return self.category == "weight"


#: One table of layer kinds per group family; ``LAYER_KINDS`` is the lattice family's.
FAMILY_LAYER_KINDS: Dict[str, Dict[str, LayerKind]] = {"lattice": {}}
LAYER_KINDS: Dict[str, LayerKind] = FAMILY_LAYER_KINDS["lattice"]


def layer_kind(name, params=(), category="pool", doc="", family="lattice", off_diagonal=False):
    """Register the decorated typing rule as layer kind ``name`` of group family ``family``.

    ``category`` says what the layer is for the Gaussianity of its output
    (:data:`kernelc.frontend.gaussianity.CATEGORY_LAWS`): ``"weight"`` (fresh independent weights:
    the output is Gaussian; also what makes a kind parametric) or ``"pool"`` (a fixed linear map:
    Gaussian stays Gaussian). ``off_diagonal``: the kind's kernel rule reads site pairs g ≠ g' of
    its input (poolings that average over positions), so identity (D) cannot hold before it.
    """
    if category not in CATEGORY_LAWS:
        raise KernelcError(f"layer kind '{name}': unknown category '{category}'",
                           expected=CATEGORY_LAWS)

    def register(infer):
        table = FAMILY_LAYER_KINDS.setdefault(family, {})
        if name in table:
            raise KernelcError(f"layer kind '{name}' registered twice")
        table[name] = LayerKind(name, tuple(params), infer, category, doc,
                                off_diagonal=off_diagonal)
        return infer
    return register


def spec_family(spec) -> str:
    """The group family a spec's group belongs to (user-defined groups are lattice groups)."""
    if spec.group.generators is not None:
        return "lattice"
    try:
        return get_group(spec.group.name).family
    except KernelcError:  # an unknown name is reported, with suggestions, by the type checker
        return "lattice"


def layer_kinds(family: str) -> Dict[str, LayerKind]:
    """The layer table of a group family (importing the family's typing rules on first use)."""
    if family == "so3":
        from . import so3_layers  # noqa: F401 - registers the SO(3) kinds
    return FAMILY_LAYER_KINDS[family]


# -- value checkers -------------------------------------------------------------------------
class UnknownName(ValueError):
    """A bare name where a number belongs (``W_std=zz``): the parser keeps names it does not
    know as :class:`Word` (``padding=same``), so a numeric parameter meets the undefined name
    here; :func:`resolve_hyperparameters` reports it with the names the spec defines."""

    def __init__(self, name: str):
        super().__init__(f"unknown name '{name}'")
        self.name = name


def _positive_int(v):
    if isinstance(v, Word):
        raise UnknownName(v.name)
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError("expected a positive integer")
    return v


#: Largest weight/bias standard deviation: σ² then stays far inside the double range (σ_w =
#: 1e160 used to overflow in the rules); real networks use values of order 1.
MAX_STD = 1e6


def _nonneg_float(v):
    if isinstance(v, Word):
        raise UnknownName(v.name)
    if not isinstance(v, (int, float)):
        raise ValueError("expected a number")
    if v < 0:
        raise ValueError("expected a number ≥ 0")
    if v > MAX_STD:
        raise ValueError(f"expected a number ≤ {MAX_STD:g} (a standard deviation of order 1)")
    return float(v)


class BadValue(ValueError):
    """A rejected hyperparameter value, with the valid choices and a suggestion when known."""

    def __init__(self, reason, expected=None, suggestion=None):
        super().__init__(reason)
        self.expected, self.suggestion = expected, suggestion


def _padding(v):
    if not isinstance(v, Word) or v.name not in PADDINGS:
        hint = did_you_mean(str(v), PADDINGS) if isinstance(v, Word) else None
        raise BadValue("expected same, valid or circular", PADDINGS, hint)
    return v.name


def _offsets(v):
    if not isinstance(v, tuple) or not v:
        raise ValueError("expected a list of integer offsets like [(0,0), (1,0)]")
    rows = []
    for item in v:
        item = item if isinstance(item, tuple) else (item,)
        if not all(isinstance(c, int) for c in item):
            raise ValueError("offsets must be integers")
        rows.append(item)
    if len({len(r) for r in rows}) != 1:
        raise ValueError("all offsets need the same number of coordinates")
    if len(set(rows)) != len(rows):
        raise ValueError("the support lists an offset twice")
    if any(abs(c) > MAX_OFFSET for r in rows for c in r):
        raise ValueError(f"offsets must lie within ±{MAX_OFFSET}")
    return np.array(rows, dtype=np.int64)


def _rotations(v):
    if isinstance(v, Word) and v.name == "all":
        return "all"
    if isinstance(v, Word) and v.name in ("e", "identity"):
        return (0,)
    if isinstance(v, int):
        v = (v,)
    if isinstance(v, tuple) and v and all(isinstance(i, int) and i >= 0 for i in v):
        if len(set(v)) != len(v):
            raise ValueError("an element is listed twice")
        return tuple(sorted(v))
    raise BadValue("expected 'all', 'identity' or a list of element indices (see `kernelc groups`)",
                   suggestion=did_you_mean(v.name, ["all", "identity"]) if isinstance(v, Word) else None)


def _any(v):
    return v


_W = Param("W_std", _nonneg_float, 1.0, doc="weight standard deviation σ_w")
_B = Param("b_std", _nonneg_float, 0.0, doc="bias standard deviation σ_b (0: no bias)")
_WIDTH = Param("width", _positive_int, None, doc="channel count of the finite network")
_SIZE = Param("size", _positive_int, 3, positional=True, doc="filter side length k")
_SUPPORT = Param("support", _offsets, None, doc="explicit filter offsets (overrides size)")
_PAD = Param("padding", _padding, "same", doc="same | valid | circular")


# -- shared helpers for the typing rules ----------------------------------------------------
def resolve_support(hp, group, span, dim) -> np.ndarray:
    """The filter support as an (m, d) offset array, checked invariant under the point group."""
    try:
        if hp.get("support") is not None:
            support = hp["support"]
            if support.shape[1] != dim:
                raise ShapeError(f"support offsets have {support.shape[1]} coordinates, "
                                 f"the domain has {dim}", span)
        else:
            if hp["size"] ** dim > MAX_SUPPORT:
                raise ShapeError(f"a filter of size={hp['size']} has {hp['size']}^{dim} offsets; "
                                 f"at most {MAX_SUPPORT} are supported", span,
                                 suggestion="filters wider than the input box add nothing")
            support = group.default_support(hp["size"])
        if not group.is_invariant(support):
            raise ShapeError(f"the filter support is not invariant under the point group of "
                             f"{group.name}; (R) and equivariance need ρ(h)S = S", span,
                             suggestion="use an odd, centred size=k or a symmetric support")
    except ShapeError:
        raise
    except KernelcError as exc:
        raise ShapeError(exc.message, span, suggestion=exc.suggestion) from None
    return support


def conv_output_shape(shape, support, padding, group, span) -> Tuple[int, ...]:
    """'same'/'circular' keep the box; 'valid' keeps the sites whose whole stencil is inside."""
    if padding != "valid":
        if padding == "circular" and group.lattice == "hexagonal":
            raise ShapeError("circular padding is not defined on a hexagonal domain", span)
        return tuple(shape)
    if group.lattice == "hexagonal":
        raise ShapeError("valid padding is not supported on hexagonal domains; use same", span)
    if (support.min(axis=0) > 0).any() or (support.max(axis=0) < 0).any():
        raise ShapeError("valid padding needs a support whose bounding box contains the offset "
                         "0 on every axis (output site t reads t + y)", span)
    extent = support.max(axis=0) - support.min(axis=0)
    out = tuple(int(n - e) for n, e in zip(shape, extent))
    if min(out) < 1:
        raise ShapeError(f"valid padding shrinks the {'×'.join(map(str, shape))} box to nothing",
                         span)
    if support.min(axis=0).tolist() != (-support.max(axis=0)).tolist() and group.order > 1:
        raise ShapeError("valid padding with an off-centre support breaks the box symmetry", span)
    return out


def _require(t: SignalType, domain: str, layer: Layer, why: str):
    if t.domain != domain:
        raise ShapeError(f"'{layer.kind}' takes a signal on {domain_words(domain)}, "
                         f"but gets {domain_words(t.domain)}: {why}", layer.span)


def domain_words(domain: str) -> str:
    return {"box": "the input box (Z^d)", "group": "the group G", "vector": "an invariant vector",
            "sphere": "the sphere S²", "so3": "the group SO(3)"}[domain]


# -- the layer kinds ------------------------------------------------------------------------
@layer_kind("lift", (_SIZE, _SUPPORT, _W, _B, _PAD, _WIDTH), category="weight",
            doc="K[g,g'] = σ_w²/|S| Σ_{y∈S} K0[g·y, g'·y] + σ_b²  (X -> G)")
def _lift(t, hp, group, layer):
    if t.domain == "group":
        raise ShapeError("'lift' on a signal that is already on G; use 'gconv' here", layer.span)
    _require(t, "box", layer, "lift maps signals on the box to signals on G")
    support = resolve_support(hp, group, layer.span, len(t.shape))
    hp["support"] = support
    shape = conv_output_shape(t.shape, support, hp["padding"], group, layer.span)
    return SignalType("group", shape, hp.get("width"), group.order)


@layer_kind("gconv", (_SIZE, _SUPPORT, Param("rotations", _rotations, "all",
            doc="rotational support R ⊂ H: all, identity, or element indices"), _W, _B, _PAD,
            _WIDTH), category="weight",
            doc="K⁺[g,g'] = σ_w²/|S_G| Σ_{h∈S_G} K[gh, g'h] + σ_b²  (G -> G)")
def _gconv(t, hp, group, layer):
    if t.domain == "box":
        raise ShapeError("'gconv' before any 'lift': the signal is still on the input box",
                         layer.span, suggestion="start the group part with lift(...)")
    _require(t, "group", layer, "group convolutions act on signals on G")
    support = resolve_support(hp, group, layer.span, len(t.shape))
    hp["support"] = support
    rot = hp["rotations"]
    if rot == "all":
        rot = tuple(range(group.order))
    if max(rot) >= group.order:
        raise ShapeError(f"rotation index {max(rot)} is out of range: {group.name} has "
                         f"{group.order} elements (0..{group.order - 1})", layer.span)
    hp["rotations"] = rot
    shape = conv_output_shape(t.shape, support, hp["padding"], group, layer.span)
    return SignalType("group", shape, hp.get("width"), group.order)


@layer_kind("conv", (_SIZE, _SUPPORT, _W, _B, _PAD, _WIDTH), category="weight",
            doc="K⁺[t,t'] = σ_w²/|S| Σ_{y∈S} K[t+y, t'+y] + σ_b²  (plain convolution)")
def _conv(t, hp, group, layer):
    if t.domain == "group":
        raise ShapeError("'conv' is the plain convolution on the box; on G use 'gconv'",
                         layer.span)
    _require(t, "box", layer, "plain convolutions act on the box")
    support = resolve_support(hp, group, layer.span, len(t.shape))
    hp["support"] = support
    shape = conv_output_shape(t.shape, support, hp["padding"], group, layer.span)
    return SignalType("box", shape, hp.get("width"), 1)


@layer_kind("dense", (Param("width", _positive_int, 1, positional=True,
                            doc="number of outputs"), _W, _B), category="weight",
            doc="K⁺ = σ_w² K + σ_b²,  Θ⁺ = σ_w² Θ + K⁺")
def _dense(t, hp, group, layer):
    if t.domain != "vector":
        raise ShapeError(f"'dense' needs an invariant vector, but gets "
                         f"{domain_words(t.domain)}", layer.span,
                         suggestion="add group_pool (invariant) or flatten before dense")
    return SignalType("vector", (), hp["width"], 1)


@layer_kind("group_pool", (), category="pool", off_diagonal=True,
            doc="K⁺ = mean_{g,g'} K[g,g']  (G -> invariant vector)")
def _group_pool(t, hp, group, layer):
    if t.domain != "group":
        raise ShapeError(f"'group_pool' needs a signal on G, but gets {domain_words(t.domain)}",
                         layer.span, suggestion="group_pool follows lift/gconv layers")
    return SignalType("vector", (), t.channels, 1)


@layer_kind("avg_pool", (Param("size", _positive_int, None, positional=True,
                             doc="window side k (default: none, the global mean)"),
                       Param("stride", _positive_int, None,
                             doc="step s between windows (default: size)")),
            category="pool", off_diagonal=True,
            doc="K⁺[h,h'] = mean_{t,t'} K[(t,h),(t',h')]  (global mean over translations); with "
                "size=k, stride=s: K⁺[u,u'] = mean_{a,b∈{0..k-1}^d} K[su+a, su'+b] per group "
                "index (valid windows, floor((n-k)/s)+1 per axis)")
def _avg_pool(t, hp, group, layer):
    if t.domain == "vector":
        raise ShapeError("'avg_pool' needs a spatial signal, but gets an invariant vector",
                         layer.span)
    size, stride = hp["size"], hp["stride"]
    if size is None:
        if stride is not None:
            raise SpecError("'avg_pool' with stride= needs a window size=; without size= it is "
                            "the global mean over all positions", layer.span,
                            suggestion=f"avg_pool(size={stride}, stride={stride})")
        return SignalType(t.domain, (1,) * len(t.shape), t.channels, t.group_order)
    if getattr(group, "lattice", "square") != "square":
        raise ShapeError(f"windowed 'avg_pool' (size=) needs a square lattice; {group.name} "
                         f"lives on the {group.lattice} lattice, whose domain has no square "
                         "windows", layer.span,
                         suggestion="use the global avg_pool (no size=) or group_pool")
    if size > min(t.shape):
        axis = int(np.argmin(t.shape))
        raise ShapeError(f"the window size={size} does not fit the "
                         f"{'×'.join(map(str, t.shape))} box (n = {t.shape[axis]} on axis "
                         f"{axis}; windows are not padded)", layer.span,
                         suggestion=f"use size ≤ {min(t.shape)}")
    stride = size if stride is None else stride
    hp["stride"] = stride
    shape = tuple((n - size) // stride + 1 for n in t.shape)
    return SignalType(t.domain, shape, t.channels, t.group_order)


@layer_kind("flatten", (), category="pool",
            doc="K⁺ = mean_g K[g,g]  (features -> vector, no averaging over positions)")
def _flatten(t, hp, group, layer):
    if t.domain == "vector":
        raise ShapeError("'flatten' of a vector does nothing; remove it", layer.span)
    return SignalType("vector", (), None if t.channels is None else t.channels * t.sites
                      * t.group_order, 1)


def resolve_hyperparameters(layer: Layer, kind: LayerKind,
                            defined_names: Tuple[str, ...] = ()) -> Dict[str, Any]:
    """Match a layer call's arguments to its kind's parameters (defaults filled in).

    ``defined_names``: the names a value may use (the spec's ``let`` constants, pi, e), listed
    or suggested when a numeric parameter gets an undefined name."""
    names = [p.name for p in kind.params]
    positional = [p for p in kind.params if p.positional]
    hp: Dict[str, Any] = {}
    for i, arg in enumerate(layer.args):
        if arg.name is None:
            if i >= len(positional) or any(a.name for a in layer.args[:i]):
                raise SpecError(f"'{layer.kind}' takes {len(positional)} positional "
                                f"argument(s); name the others", arg.span,
                                expected=[f"{n}=" for n in names])
            param = positional[i]
        else:
            param = next((p for p in kind.params if p.name == arg.name), None)
            if param is None:
                raise SpecError(f"'{layer.kind}' has no hyperparameter '{arg.name}'", arg.span,
                                expected=names, suggestion=did_you_mean(arg.name, names))
        if param.name in hp:
            raise SpecError(f"hyperparameter '{param.name}' given twice", arg.span)
        try:
            hp[param.name] = param.check(arg.value)
        except UnknownName as exc:
            listing = ", ".join(defined_names) if defined_names else "none"
            raise SpecError(f"unknown name '{exc.name}': '{param.name}' of '{layer.kind}' takes "
                            f"a number or a name defined with 'let' (defined names: {listing})",
                            arg.span, suggestion=did_you_mean(exc.name, defined_names)
                            or f"define it first: let {exc.name} = ...") from None
        except ValueError as exc:
            raise SpecError(f"bad value for '{param.name}' of '{layer.kind}': {exc}",
                            arg.span, expected=getattr(exc, "expected", None),
                            suggestion=getattr(exc, "suggestion", None)) from None
    for p in kind.params:
        hp.setdefault(p.name, p.default)
    return hp
