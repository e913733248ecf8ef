"""The layer kinds of the lattice family, with their typing rules: signals on a box of Z^d
(``box``), on G = H ⋉ Z^d restricted to the box (``group``), and invariant vectors.

Filters have a finite support S ⊂ Z^d (``size=k`` or ``support=[...]``) that must be invariant
under the point group H; ``padding`` says what happens at the box's edge.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from ...errors import KernelcError, ShapeError, SpecError, did_you_mean
from ...frontend.ast import Word
from ...frontend.layers import (BIAS_STD, WEIGHT_STD, WIDTH, BadValue, Param, domain_words,
                                input_type, layer_kind, positive_int,
                                require_domain)
from ...frontend.types import SignalType
from .family import LATTICE

PADDINGS = ("same", "valid", "circular")
#: Most offsets a filter support may have (size=k gives k^d), and the largest offset coordinate.
MAX_SUPPORT = 10_000
MAX_OFFSET = 2 ** 20


# -- value checkers -------------------------------------------------------------------------
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


_SIZE = Param("size", positive_int, 3, positional=True, doc="filter side length k")
_SUPPORT = Param("support", _offsets, None, doc="explicit filter offsets (overrides size)")
#: The padding hyperparameter of every filter layer on the pixel grid (the steerable family's too).
PADDING = Param("padding", _padding, "same", doc="same | valid | circular")


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


# -- the input and the layer kinds ----------------------------------------------------------
@input_type(LATTICE)
def _box_input(decl, group) -> SignalType:
    """A box of Z^d that the point group maps onto itself (about its centre)."""
    shape = decl.shape
    if group.dim != len(shape):
        raise ShapeError(f"group {group.name} acts on Z^{group.dim}, but the input box has "
                         f"{len(shape)} axes", decl.span)
    try:
        group.domain_mask(shape)
        group.site_permutation(shape)
    except KernelcError as exc:
        raise ShapeError(exc.message, decl.span, suggestion=exc.suggestion) from None
    return SignalType("box", shape, decl.channels, 1)


@layer_kind("lift", (_SIZE, _SUPPORT, WEIGHT_STD, BIAS_STD, PADDING, WIDTH), category="weight",
            family=LATTICE,
            doc="K[g,g'] = σ_w²/|S| Σ_{y∈S} K0[g·y, g'·y] + σ_b²  (X -> G)")
def _lift(t, hp, group, layer):
    if t.domain == "group":
        raise ShapeError("'lift' on a signal that is already on G; use 'gconv' here", layer.span)
    require_domain(t, "box", layer, "lift maps signals on the box to signals on G")
    support = resolve_support(hp, group, layer.span, len(t.shape))
    hp["support"] = support
    shape = conv_output_shape(t.shape, support, hp["padding"], group, layer.span)
    return SignalType("group", shape, hp.get("width"), group.order)


_ROTATIONS = Param("rotations", _rotations, "all",
                   doc="rotational support R ⊂ H: all, identity, or element indices")


@layer_kind("gconv", (_SIZE, _SUPPORT, _ROTATIONS, WEIGHT_STD, BIAS_STD, PADDING, WIDTH),
            category="weight", family=LATTICE,
            doc="K⁺[g,g'] = σ_w²/|S_G| Σ_{h∈S_G} K[gh, g'h] + σ_b²  (G -> G)")
def _gconv(t, hp, group, layer):
    if t.domain == "box":
        raise ShapeError("'gconv' before any 'lift': the signal is still on the input box",
                         layer.span, suggestion="start the group part with lift(...)")
    require_domain(t, "group", layer, "group convolutions act on signals on G")
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


@layer_kind("conv", (_SIZE, _SUPPORT, WEIGHT_STD, BIAS_STD, PADDING, WIDTH), category="weight",
            family=LATTICE,
            doc="K⁺[t,t'] = σ_w²/|S| Σ_{y∈S} K[t+y, t'+y] + σ_b²  (plain convolution)")
def _conv(t, hp, group, layer):
    if t.domain == "group":
        raise ShapeError("'conv' is the plain convolution on the box; on G use 'gconv'",
                         layer.span)
    require_domain(t, "box", layer, "plain convolutions act on the box")
    support = resolve_support(hp, group, layer.span, len(t.shape))
    hp["support"] = support
    shape = conv_output_shape(t.shape, support, hp["padding"], group, layer.span)
    return SignalType("box", shape, hp.get("width"), 1)


@layer_kind("group_pool", (), category="pool", family=LATTICE, off_diagonal=True,
            doc="K⁺ = mean_{g,g'} K[g,g']  (G -> invariant vector)")
def _group_pool(t, hp, group, layer):
    if t.domain != "group":
        raise ShapeError(f"'group_pool' needs a signal on G, but gets {domain_words(t.domain)}",
                         layer.span, suggestion="group_pool follows lift/gconv layers")
    return SignalType("vector", (), t.channels, 1)


@layer_kind("avg_pool", (Param("size", positive_int, None, positional=True,
                             doc="window side k (default: none, the global mean)"),
                       Param("stride", positive_int, None,
                             doc="step s between windows (default: size)")),
            category="pool", family=LATTICE, off_diagonal=True,
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
    if group.lattice != "square":
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


@layer_kind("flatten", (), category="pool", family=LATTICE,
            doc="K⁺ = mean_g K[g,g]  (features -> vector, no averaging over positions)")
def _flatten(t, hp, group, layer):
    if t.domain == "vector":
        raise ShapeError("'flatten' of a vector does nothing; remove it", layer.span)
    return SignalType("vector", (), None if t.channels is None else t.channels * t.sites
                      * t.group_order, 1)


