"""Layer kinds: hyperparameters and typing rules, the machinery and the common table.

Each kind is registered next to its typing rule with :func:`layer_kind`. A rule takes the input
:class:`SignalType`, the resolved hyperparameters and the group, and returns the output type or
raises :class:`ShapeError`. Kinds registered with ``family=None`` (here: ``dense``) are in every
family's table; a family's own kinds are in its ``kinds`` module
(:mod:`kernelc.families.lattice.kinds`, :mod:`kernelc.families.so3.kinds`), and
:mod:`kernelc.frontend.family_kinds` answers "the table of this family". Nonlinearities are not
listed here one by one: every name in the nonlinearity rules table
(:mod:`kernelc.rules.nonlinearities`) is an elementwise layer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple

from ..errors import KernelcError, ShapeError, SpecError, did_you_mean
from ..families import Family, domain
from .ast import Layer, Word
from .gaussianity import CATEGORY_LAWS
from .types import SignalType


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


#: The kinds every family has (registered with ``family=None``), and each family's own kinds.
COMMON_KINDS: Dict[str, LayerKind] = {}
FAMILY_LAYER_KINDS: Dict[Family, Dict[str, LayerKind]] = {}


def layer_kind(name, params=(), category="pool", doc="", family: Optional[Family] = None,
               off_diagonal=False):
    """Register the decorated typing rule as layer kind ``name`` of group family ``family``
    (``None``: of every family, the common table).

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
        table = COMMON_KINDS if family is None else FAMILY_LAYER_KINDS.setdefault(family, {})
        if name in table or name in COMMON_KINDS:
            raise KernelcError(f"layer kind '{name}' registered twice")
        table[name] = LayerKind(name, tuple(params), infer, category, doc,
                                off_diagonal=off_diagonal)
        return infer
    return register


#: Each family's typing rule of the spec's input: (InputDecl, group) -> SignalType, raising
#: ShapeError when the declared input does not fit the group (registered with input_type).
FAMILY_INPUT_TYPES: Dict[Family, Callable] = {}


#: Each family's graph defaults: (LayerGraph) -> {node: {hyperparameter: value}}, completed
#: before any node is typed, for defaults that depend on the whole graph (SO(3): each layer's
#: grid depends on the nonlinearity and the band of the layer after it). Registered with
#: graph_defaults; a family without one has none.
FAMILY_GRAPH_DEFAULTS: Dict[Family, Callable] = {}


def graph_defaults(family: Family):
    """Register the decorated function as ``family``'s graph defaults (FAMILY_GRAPH_DEFAULTS)."""
    def register(rule):
        if family in FAMILY_GRAPH_DEFAULTS:
            raise KernelcError(f"the graph defaults of family '{family.name}' are set twice")
        FAMILY_GRAPH_DEFAULTS[family] = rule
        return rule
    return register


def input_type(family: Family):
    """Register the decorated function as ``family``'s typing rule of the spec's input."""
    def register(rule):
        if family in FAMILY_INPUT_TYPES:
            raise KernelcError(f"the input of family '{family.name}' is typed twice")
        FAMILY_INPUT_TYPES[family] = rule
        return rule
    return register


# -- value checkers -------------------------------------------------------------------------
class UnknownName(ValueError):
    """A bare name where a number belongs (``W_std=zz``): the parser keeps names it does not
    know as :class:`Word` (``padding=same``), so a numeric parameter meets the undefined name
    here; :func:`resolve_hyperparameters` reports it with the names the spec defines."""

    def __init__(self, name: str):
        super().__init__(f"unknown name '{name}'")
        self.name = name


def positive_int(v):
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


WEIGHT_STD = Param("W_std", _nonneg_float, 1.0, doc="weight standard deviation σ_w")
BIAS_STD = Param("b_std", _nonneg_float, 0.0, doc="bias standard deviation σ_b (0: no bias)")
WIDTH = Param("width", positive_int, None, doc="channel count of the finite network")


# -- shared helpers for the typing rules ----------------------------------------------------
def require_domain(t: SignalType, expected: str, layer: Layer, why: str):
    """ShapeError unless ``t`` lives on the domain ``expected``; ``why`` ends the message."""
    if t.domain != expected:
        raise ShapeError(f"'{layer.kind}' takes a signal on {domain_words(expected)}, "
                         f"but gets {domain_words(t.domain)}: {why}", layer.span)


def domain_words(name: str) -> str:
    """The words for a signal domain in messages, as its family declares them."""
    return domain(name).words


# -- the common layer kinds ------------------------------------------------------------------
@layer_kind("dense", (Param("width", positive_int, 1, positional=True,
                            doc="number of outputs"), WEIGHT_STD, BIAS_STD), category="weight",
            doc="K⁺ = σ_w² K + σ_b²,  Θ⁺ = σ_w² Θ + K⁺")
def _dense(t, hp, group, layer):
    if t.domain != "vector":
        raise ShapeError(f"'dense' needs an invariant vector, but gets "
                         f"{domain_words(t.domain)}", layer.span,
                         suggestion="add group_pool (invariant) or flatten before dense")
    return SignalType("vector", (), hp["width"], 1)


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
