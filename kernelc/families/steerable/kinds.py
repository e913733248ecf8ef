"""The layer kinds of the steerable family, with their typing rules (docs/steerable.md).

``lift`` and ``gconv`` sample their filters from a steerable basis (``basis=rings``, the
default: Gaussian rings × angular harmonics, escnn's defaults; ``basis=pixel``: one weight per
offset, which only grid rotations can rotate). Filters are k×k, k odd. The poolings and the
flatten readout are the lattice family's kinds (the signals are the same), listed in this
family's table too.
"""
from __future__ import annotations

from ...errors import KernelcError, ShapeError
from ...frontend.ast import Word
from ...frontend.layers import (BIAS_STD, FAMILY_LAYER_KINDS, WEIGHT_STD, WIDTH, BadValue, Param,
                                input_type, layer_kind, positive_int, require_domain)
from ...frontend.types import SignalType
from ...runtime.steerable import BASES, basis_functions
from ..lattice.family import LATTICE
from ..lattice.kinds import PADDING, conv_output_shape  # also registers the kinds reused
from .family import STEERABLE

#: Most offsets of a filter (k² for size=k): the coupling matrices have |H|·k⁴ entries.
MAX_SIZE = 15


def _basis(v):
    if not isinstance(v, Word) or v.name not in BASES:
        raise BadValue("expected rings (steerable, the default) or pixel", BASES)
    return v.name


def _frequency(v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise ValueError("expected a non-negative integer (the highest angular frequency)")
    return v


_SIZE = Param("size", positive_int, 3, positional=True, doc="filter side length k (odd)")
_BASIS = Param("basis", _basis, "rings",
               doc="rings (Gaussian rings × angular harmonics, rotated exactly) | pixel")
_FREQ = Param("max_frequency", _frequency, None,
              doc="highest angular frequency of the rings basis (default: escnn's cutoff)")


def _filter(t, hp, group, layer) -> tuple:
    """Resolve the filter: its k×k support, its basis (checked against the group) and the
    number |B| of its basis functions; returns the output box."""
    try:
        support = group.default_support(hp["size"], span=layer.span)
    except KernelcError as exc:
        raise ShapeError(exc.message, layer.span, suggestion="use size=3, 5, ...") from None
    if hp["size"] > MAX_SIZE:
        raise ShapeError(f"size={hp['size']} is above the largest steerable filter, "
                         f"{MAX_SIZE}×{MAX_SIZE}", layer.span)
    if hp["basis"] == "pixel":
        if hp["max_frequency"] is not None:
            raise ShapeError("max_frequency= belongs to basis=rings; the pixel basis has one "
                             "weight per offset", layer.span)
        if len(group.grid_elements) != group.order:
            raise ShapeError(f"basis=pixel rotates a filter by permuting its pixels, which only "
                             f"rotations by multiples of 90° can do; {group.name} rotates by "
                             f"{360 / group.n:g}°", layer.span,
                             suggestion="use basis=rings (the steerable basis)")
    count = basis_functions(hp["basis"], hp["size"], hp["max_frequency"]).shape[0]
    hp["support"] = support
    hp["basis_size"] = count
    return conv_output_shape(t.shape, support, hp["padding"], group, layer.span)


@input_type(STEERABLE)
def _box_input(decl, group) -> SignalType:
    """An image: a 2-d box of pixels with channels."""
    if len(decl.shape) != 2:
        raise ShapeError(f"group {group.name} acts on the pixel grid Z², but the input box has "
                         f"{len(decl.shape)} axes", decl.span)
    return SignalType("box", decl.shape, decl.channels, 1)


@layer_kind("lift", (_SIZE, _BASIS, _FREQ, WEIGHT_STD, BIAS_STD, PADDING, WIDTH), category="weight",
            family=STEERABLE,
            doc="K⁺[(t,r),(t',r')] = σ_w²/|B| Σ_{y,y'∈S} P(R_r⁻¹y, R_r'⁻¹y') K0[t+y, t'+y'] + σ_b²"
                "  (X -> G; P(a,b) = Σ_k B_k(a)B_k(b))")
def _lift(t, hp, group, layer):
    if t.domain == "group":
        raise ShapeError("'lift' on a signal that is already on G; use 'gconv' here", layer.span)
    require_domain(t, "box", layer, "lift maps images to signals on G")
    shape = _filter(t, hp, group, layer)
    hp["weights_per_channel"] = hp["basis_size"]
    return SignalType("group", shape, hp.get("width"), group.order)


@layer_kind("gconv", (_SIZE, _BASIS, _FREQ, WEIGHT_STD, BIAS_STD, PADDING, WIDTH),
            category="weight", family=STEERABLE,
            doc="K⁺[(t,r),(t',r')] = σ_w²/(|B||H|) Σ_{u∈H} Σ_{y,y'∈S} P(R_r⁻¹y, R_r'⁻¹y') "
                "K[(t+y, ru), (t'+y', r'u)] + σ_b²  (G -> G)")
def _gconv(t, hp, group, layer):
    if t.domain == "box":
        raise ShapeError("'gconv' before any 'lift': the signal is still on the input box",
                         layer.span, suggestion="start the group part with lift(...)")
    require_domain(t, "group", layer, "group convolutions act on signals on G")
    shape = _filter(t, hp, group, layer)
    hp["weights_per_channel"] = hp["basis_size"] * group.order
    return SignalType("group", shape, hp.get("width"), group.order)


# The poolings and flatten act on the same signals as the lattice family's: its kinds, listed
# in this family's table.
for _name in ("group_pool", "avg_pool", "flatten"):
    _kind = FAMILY_LAYER_KINDS[LATTICE][_name]
    layer_kind(_name, _kind.params, _kind.category, _kind.doc, family=STEERABLE,
               off_diagonal=_kind.off_diagonal)(_kind.infer)
