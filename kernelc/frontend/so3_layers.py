"""Layer kinds of the SO(3) family (signals on S² lifted to SO(3); docs/math/so3.md).

Filters have full support: the whole sphere for ``lift``, the whole group for ``gconv``, with
band limit ``bandlimit`` (degrees ℓ < L of the filter, hence of the output). ``grid`` is the
bandwidth B of the Euler-angle grid ((2B)³ points) on which the output is sampled for the next
nonlinearity and integrated by the next layer; B ≥ L. Local (cap-shaped) supports are not
supported yet: a ``size=``/``support=`` argument is refused with that message.
"""
from __future__ import annotations

from ..errors import ShapeError
from ..groups.so3 import SHARED_KINDS
from ..runtime.harmonic import MAX_BANDWIDTH
from .layers import (FAMILY_LAYER_KINDS, LAYER_KINDS, Param, _B, _W, _WIDTH, _positive_int,
                     domain_words, layer_kind)
from .types import SignalType

_BAND = Param("bandlimit", _positive_int, None, positional=True,
              doc="band limit L of the filter and the output (degrees ℓ < L; default: the input's)")
_GRID = Param("grid", _positive_int, None,
              doc="bandwidth B ≥ L of the output's sampling grid, (2B)³ points (default: L)")
_LOCAL = Param("size", lambda v: (_ for _ in ()).throw(ValueError(
    "local (cap-shaped) filters are not supported on SO(3) yet; filters cover the whole "
    "sphere / group")), None)


def _bands(t: SignalType, hp, layer):
    band = hp["bandlimit"] or t.band
    grid = hp["grid"] or band
    if grid < band:
        raise ShapeError(f"grid={grid} cannot sample band limit {band}: the grid bandwidth must "
                         f"be ≥ the band limit", layer.span, suggestion=f"use grid={band} or more")
    if grid > MAX_BANDWIDTH:
        raise ShapeError(f"grid={grid} is above the supported bandwidth {MAX_BANDWIDTH}",
                         layer.span)
    hp["bandlimit"], hp["grid"] = band, grid
    return band, grid


@layer_kind("lift", (_BAND, _GRID, _W, _B, _WIDTH, _LOCAL),
            category="weight", family="so3",
            doc="K⁺[g,g'] = σ_w² ∫_{S²} K0[g·y, g'·y] dy + σ_b²  (S² -> SO(3), full-sphere filter)")
def _lift(t, hp, group, layer):
    if t.domain != "sphere":
        raise ShapeError(f"'lift' takes a signal on the sphere S², but gets "
                         f"{domain_words(t.domain)}", layer.span,
                         suggestion="lift once, right after the input; then use gconv")
    band, grid = _bands(t, hp, layer)
    return SignalType("so3", (2 * grid,) * 3, hp.get("width"), 0, band)


@layer_kind("gconv", (_BAND, _GRID, _W, _B, _WIDTH, _LOCAL),
            category="weight", family="so3",
            doc="K⁺[g,g'] = σ_w² ∫∫ K[u,u'] P_L(u⁻¹g g'⁻¹u') du du' + σ_b²  (SO(3) -> SO(3))")
def _gconv(t, hp, group, layer):
    if t.domain == "sphere":
        raise ShapeError("'gconv' before 'lift': the signal is still on the sphere", layer.span,
                         suggestion="start with lift(...)")
    if t.domain != "so3":
        raise ShapeError(f"'gconv' takes a signal on SO(3), but gets {domain_words(t.domain)}",
                         layer.span)
    band, grid = _bands(t, hp, layer)
    return SignalType("so3", (2 * grid,) * 3, hp.get("width"), 0, band)


@layer_kind("group_pool", (), category="pool", family="so3",
            doc="K⁺ = ∫∫ K[g,g'] dg dg'  (SO(3) -> invariant vector, Haar measure)")
def _group_pool(t, hp, group, layer):
    if t.domain != "so3":
        raise ShapeError(f"'group_pool' needs a signal on SO(3), but gets "
                         f"{domain_words(t.domain)}", layer.span,
                         suggestion="group_pool follows lift/gconv layers")
    return SignalType("vector", (), t.channels, 1)


# the shared kinds that are layer kinds (dense; the others are structural nodes of the graph)
for _kind in SHARED_KINDS:
    if _kind in LAYER_KINDS:
        FAMILY_LAYER_KINDS["so3"][_kind] = LAYER_KINDS[_kind]
