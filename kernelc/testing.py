"""Public test helpers.

:func:`assert_equivariant` checks a finite network against the symmetry its spec promises:
transforming the input by an element h of the point group H must

* leave invariant outputs unchanged      -- vectors (N, C), e.g. after ``group_pool``;
* permute outputs on G                   -- group signals (N, *box, |H|, C):
  f(h·x)[t, r] = f(x)[h⁻¹t, h⁻¹r]  (rotate the sites about the box centre like the input,
  and move the group axis by r ↦ h r);
* rotate outputs on the box              -- box signals (N, *box, C): f(h·x) = h·f(x)
  (only true for the trivial group, or for convolutions with symmetric filters).

These are the layouts of :mod:`kernelc.network` (channels last, the group axis just before the
channels, indexing ``group.elements``).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import InputError

OUTPUTS = ("auto", "invariant", "group", "box")


def _call(apply_fn, params, x):
    return np.asarray(apply_fn(x) if params is None else apply_fn(params, x), dtype=np.float64)


def transform_output(group, y: np.ndarray, h: int, output: str) -> np.ndarray:
    """The expected output for the input transformed by element ``h`` (see module docs)."""
    if output == "invariant":
        return y
    d = group.dim
    spatial = tuple(range(1, d + 1))
    rotated = np.asarray(group.transform_signal(y, h, spatial_axes=spatial))
    if output == "box":
        return rotated
    # out'[..., r, :] = out[..., h⁻¹ r, :]
    src = np.asarray(group.cayley[group.inverse[h]], dtype=np.int64)
    return np.take(rotated, src, axis=d + 1)


def _output_kind(group, y, output: str) -> str:
    if output not in OUTPUTS:
        raise InputError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
    if output != "auto":
        return output
    d = group.dim
    if y.ndim == 2:
        return "invariant"
    if y.ndim == d + 3 and y.shape[d + 1] == group.order:
        return "group"
    if y.ndim == d + 2:
        return "box"
    raise InputError(f"cannot tell the layout of an output of shape {y.shape} for "
                     f"{group.name} (d={group.dim}, |H|={group.order}); pass output=")


def assert_equivariant(apply_fn: Callable, group, x, params=None, atol: float = 1e-5,
                       rtol: float = 1e-5, output: str = "auto", elements=None) -> None:
    """Assert that ``apply_fn`` is invariant/equivariant under every element of ``group``'s H.

    ``apply_fn(params, x)`` (or ``apply_fn(x)`` when ``params`` is None) maps (N, *box, C)
    inputs to outputs in one of the layouts above; ``output`` forces the layout ("invariant",
    "group", "box"), "auto" infers it from the shape. Inputs are first restricted to the
    group's domain (``group.domain_mask``: the hexagon for p6), since values outside it have
    no rotated counterpart. Passes when |f(h·x) − h·f(x)| ≤ atol + rtol·|h·f(x)| everywhere,
    for every h in ``elements`` (default: every element that maps the grid onto itself,
    ``group.grid_elements``: all of H for a lattice group, the 90° rotations and reflections of
    a steerable C_n/D_n); otherwise raises AssertionError naming the element, the layout and the
    largest deviation.
    """
    if isinstance(group, str):  # a name, as in a spec's group line
        from .groups.registry import get_group
        group = get_group(group)
    for name, tol in (("atol", atol), ("rtol", rtol)):
        if isinstance(tol, bool) or not isinstance(tol, (int, float, np.integer, np.floating)) \
                or not tol >= 0:
            raise InputError(f"{name} must be a number >= 0, got {tol!r}")
    x = np.asarray(x)
    d = group.dim
    if x.ndim == d + 1:
        x = x[..., None]
    if x.ndim != d + 2:
        raise InputError(f"x must have shape (N, *box, C) with {d} box axes, got {x.shape}")
    box = x.shape[1:1 + d]
    mask = np.asarray(group.domain_mask(box), dtype=bool)
    if not mask.all():
        x = x * mask[None, ..., None].astype(x.dtype)
    y = _call(apply_fn, params, x)
    kind = _output_kind(group, y, output)
    for h in (group.grid_elements if elements is None else elements):
        h = int(h)
        xt = np.asarray(group.transform_signal(x, h))
        got = _call(apply_fn, params, xt)
        want = transform_output(group, y, h, kind)
        if got.shape != want.shape:
            raise AssertionError(f"element {h} {group.element_labels[h]} of {group.name}: output "
                                 f"shape {got.shape} differs from {want.shape}")
        dev = np.abs(got - want)
        bad = dev > atol + rtol * np.abs(want)
        if bad.any() or not np.all(np.isfinite(got)):
            where = np.unravel_index(int(np.argmax(dev)), dev.shape)
            what = {"invariant": "invariant", "group": "equivariant (outputs on G)",
                    "box": "equivariant (outputs on the box)"}[kind]
            raise AssertionError(
                f"not {what} under element {h} {group.element_labels[h]} of {group.name}: "
                f"max deviation {float(dev.max()):.3g} at index {tuple(int(i) for i in where)} "
                f"(atol={atol:g}, rtol={rtol:g}; {int(bad.sum())} of {bad.size} entries off, "
                f"output scale {float(np.abs(want).max()):.3g})")


__all__ = ["assert_equivariant", "transform_output"]
