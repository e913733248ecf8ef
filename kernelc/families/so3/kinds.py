"""Layer kinds of the SO(3) family (signals on S² lifted to SO(3); docs/math/so3.md).

Filters have full support: the whole sphere for ``lift``, the whole group for ``gconv``, with
band limit ``bandlimit`` (degrees ℓ < L of the filter, hence of the output). ``grid`` is the
bandwidth B of the Euler-angle grid ((2B)³ points) on which the output is sampled for the next
nonlinearity and integrated by the next layer; B ≥ L. Local (cap-shaped) supports are not
supported yet: a ``size=``/``support=`` argument is refused with that message. The ``dense``
readout is the common kind of :mod:`kernelc.frontend.layers`.
"""
from __future__ import annotations

from ...errors import ShapeError
from ...frontend.layers import (BIAS_STD, WEIGHT_STD, WIDTH, Param, domain_words,
                                graph_defaults, input_type, layer_kind, positive_int)
from ...frontend.types import SignalType
from ...runtime.harmonic import MAX_BANDWIDTH
from .family import SO3_FAMILY

_BAND = Param("bandlimit", positive_int, None, positional=True,
              doc="band limit L of the filter and the output (degrees ℓ < L; default: the input's)")
_GRID = Param("grid", positive_int, None,
              doc="bandwidth B ≥ L of the output's sampling grid, (2B)³ points (default: the "
                  "smallest exact one for polynomial φ, else from an aliasing estimate for tol)")


def _tol(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v < 1:
        raise ValueError("expected a relative error in (0, 1), e.g. tol=1e-4")
    return float(v)


_TOL = Param("tol", _tol, None,
             doc="relative kernel error the default grids are chosen for (the smallest tol= "
                 "of the network's layers; default kernelc.families.so3.grid.DEFAULT_TOL)")
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
    hp.setdefault("grid_choice", None)  # set by grid.plan_grids before typing
    return band, grid


@graph_defaults(SO3_FAMILY)
def _grids(layers):
    """The accuracy-driven default grids (:func:`kernelc.families.so3.grid.plan_grids`)."""
    from .grid import plan_grids  # numpy/scipy work, only when an SO(3) spec is typed
    return plan_grids(layers)


@input_type(SO3_FAMILY)
def _sphere_input(decl, group) -> SignalType:
    """Band-limited samples on the sphere's (2B, 2B) grid (group order 0: continuous)."""
    return SignalType("sphere", decl.shape, decl.channels, 0, decl.bandlimit)


@layer_kind("lift", (_BAND, _GRID, _TOL, WEIGHT_STD, BIAS_STD, WIDTH, _LOCAL),
            category="weight", family=SO3_FAMILY,
            doc="K⁺[g,g'] = σ_w² ∫_{S²} K0[g·y, g'·y] dy + σ_b²  (S² -> SO(3), full-sphere filter)")
def _lift(t, hp, group, layer):
    if t.domain != "sphere":
        raise ShapeError(f"'lift' takes a signal on the sphere S², but gets "
                         f"{domain_words(t.domain)}", layer.span,
                         suggestion="lift once, right after the input; then use gconv")
    band, grid = _bands(t, hp, layer)
    return SignalType("so3", (2 * grid,) * 3, hp.get("width"), 0, band)


@layer_kind("gconv", (_BAND, _GRID, _TOL, WEIGHT_STD, BIAS_STD, WIDTH, _LOCAL),
            category="weight", family=SO3_FAMILY,
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


@layer_kind("group_pool", (), category="pool", family=SO3_FAMILY,
            doc="K⁺ = ∫∫ K[g,g'] dg dg'  (SO(3) -> invariant vector, Haar measure)")
def _group_pool(t, hp, group, layer):
    if t.domain != "so3":
        raise ShapeError(f"'group_pool' needs a signal on SO(3), but gets "
                         f"{domain_words(t.domain)}", layer.span,
                         suggestion="group_pool follows lift/gconv layers")
    return SignalType("vector", (), t.channels, 1)
