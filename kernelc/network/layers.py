"""The finite-width layer table: for each layer kind, its parameters and its forward pass.

Layouts of the signals flowing through the network (channels last, batch first):

* box    (N, *box, C)        -- the input and plain-convolution features;
* group  (N, *box, |H|, C)   -- signals on G: one value per (site t, element r), r indexing
                                ``group.elements``;
* vector (N, C)              -- after group_pool, flatten or dense.

Conventions (docs/math/conventions.md, NTK parameterisation): weights ω and biases β are N(0, 1) parameters,
and a layer computes σ_w/√fan_in · Σ ω·input + σ_b·β with fan_in = C·|S| (lift, conv),
C·|S|·|R| (gconv) or the input size (dense). In the standard parameterisation the parameters
themselves have standard deviations σ_w/√fan_in and σ_b and the layer is Σ ω·input + β.
Biases are per output channel, shared over sites and group elements (needed for equivariance);
a layer with σ_b = 0 has no bias parameter. Each kind registers ``init`` and ``apply`` with
:func:`finite_layer`, next to its definition, like the kernel rules in
:mod:`kernelc.rules.layers`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np

from ..errors import KernelcError
from .filters import expand


@dataclass(frozen=True)
class FiniteLayer:
    kind: str
    init: Optional[Callable]   # (net, node, c_in, c_out) -> {param: (shape, std)}
    apply: Callable            # (net, node, params, inputs) -> output


FINITE_LAYERS: Dict[str, FiniteLayer] = {}


def finite_layer(kind: str):
    """Register the decorated class's ``init`` (optional) and ``apply`` for ``kind``."""
    def register(cls):
        FINITE_LAYERS[kind] = FiniteLayer(kind, getattr(cls, "init", None), cls.apply)
        return cls
    return register


# -- helpers ------------------------------------------------------------------------------------
def _weight_params(net, node, shape, fan_in):
    """{"W": (shape, std), "b": ((D,), std)}: N(0,1) (ntk) or N(0, σ_w²/fan_in) and N(0, σ_b²)
    (standard); no "b" when σ_b = 0. The network draws all of them in one go."""
    hp = net.hp(node)
    standard = net.parameterization == "standard"
    params = {"W": (tuple(shape), hp["W_std"] / math.sqrt(fan_in) if standard else 1.0)}
    if hp["b_std"] > 0:
        params["b"] = ((shape[-1],), hp["b_std"] if standard else 1.0)
    return params


def _affine(net, node, params, lin, fan_in):
    """σ_w/√fan_in · lin + σ_b β (ntk) or lin + β (standard); β broadcast over sites/elements."""
    hp = net.hp(node)
    if net.parameterization == "standard":
        w_scale, b_scale = 1.0, 1.0
    else:
        w_scale, b_scale = hp["W_std"] / math.sqrt(fan_in), hp["b_std"]
    out = lin * w_scale if w_scale != 1.0 else lin
    if "b" in params:
        out = out + b_scale * params["b"]
    return out


def _conv_apply(net, node, params, x, exp, group_in: bool, group_out: bool):
    """Shared body of lift/gconv/conv: expand the filter, pad, cross-correlate, crop, affine."""
    import jax.numpy as jnp
    from jax import lax

    hp = net.hp(node)
    d = net.dim
    W = params["W"]
    c_in, c_out = W.shape[-2], W.shape[-1]
    n = x.shape[0]
    box = x.shape[1:1 + d]
    if group_in:
        x = x.reshape((n,) + box + (exp.h_in * c_in,))      # channels (q, c)
    filt = expand(W if W.ndim == 4 else W[:, None], exp)
    filt = filt.astype(x.dtype)
    mode = hp["padding"]
    if mode != "valid" and any(lo or hi for lo, hi in exp.pads):
        x = jnp.pad(x, [(0, 0)] + list(exp.pads) + [(0, 0)],
                    mode="constant" if mode == "same" else "wrap")
    spec = tuple(range(d + 2))
    dn = lax.ConvDimensionNumbers(lhs_spec=(0, d + 1) + spec[1:d + 1],
                                  rhs_spec=(d + 1, d) + spec[:d],
                                  out_spec=(0, d + 1) + spec[1:d + 1])
    y = lax.conv_general_dilated(x, filt, (1,) * d, "VALID", dimension_numbers=dn,
                                 precision=lax.Precision.HIGHEST)
    out_box = net.out_type(node).shape
    start = [lo + mn for (lo, _), mn in zip(exp.pads, exp.lo)]
    y = y[(slice(None),) + tuple(slice(s, s + b) for s, b in zip(start, out_box))]
    if group_out:
        y = y.reshape((n,) + tuple(out_box) + (exp.h_out, c_out))
    fan_in = c_in * exp.m * exp.n_rot
    y = _affine(net, node, params, y, fan_in)
    return net.mask(y, out_box, group_out)


# -- weight layers ------------------------------------------------------------------------------
@finite_layer("lift")
class Lift:
    """z(t, r) = σ_w/√(C|S|) Σ_{c, y∈S} ω_c(y) f_c(t + ρ(r)y) + σ_b β: box (N,*box,C) ->
    group (N,*box,|H|,D). Weights ω: (|S|, C, D)."""

    @staticmethod
    def init(net, node, c_in, c_out):
        m = len(net.hp(node)["support"])
        return _weight_params(net, node, (m, c_in, c_out), c_in * m)

    @staticmethod
    def apply(net, node, params, ins):
        return _conv_apply(net, node, params, ins[0], net.expansion(node), False, True)


@finite_layer("gconv")
class GroupConv:
    """z(t, r) = σ_w/√(C|S||R|) Σ_{c, y∈S, s∈R} ω_c(y, s) f_c(t + ρ(r)y, r s) + σ_b β on
    group signals (N,*box,|H|,C). Weights ω: (|S|, |R|, C, D), R in the spec's order."""

    @staticmethod
    def init(net, node, c_in, c_out):
        hp = net.hp(node)
        m, nr = len(hp["support"]), len(hp["rotations"])
        return _weight_params(net, node, (m, nr, c_in, c_out), c_in * m * nr)

    @staticmethod
    def apply(net, node, params, ins):
        return _conv_apply(net, node, params, ins[0], net.expansion(node), True, True)


@finite_layer("conv")
class Conv:
    """z(t) = σ_w/√(C|S|) Σ_{c, y∈S} ω_c(y) f_c(t + y) + σ_b β on box signals (N,*box,C).
    (With a non-trivial H a plain convolution is not equivariant at finite width; only its
    kernel is, in distribution.) Weights ω: (|S|, C, D), as for the lift."""

    init = Lift.init

    @staticmethod
    def apply(net, node, params, ins):
        return _conv_apply(net, node, params, ins[0], net.expansion(node), False, False)


@finite_layer("dense")
class Dense:
    """z = σ_w/√n Σ_i ω_i x_i + σ_b β on vectors (N, n). Weights ω: (n, D)."""

    @staticmethod
    def init(net, node, c_in, c_out):
        return _weight_params(net, node, (c_in, c_out), c_in)

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        from jax import lax
        x = ins[0]
        W = params["W"].astype(x.dtype)
        lin = jnp.matmul(x, W, precision=lax.Precision.HIGHEST)
        return _affine(net, node, params, lin, W.shape[0])


# -- parameter-free layers ----------------------------------------------------------------------
@finite_layer("nonlinearity")
class Nonlinearity:
    """φ elementwise (translated from the rule's sympy φ by kernelc's JAX printer)."""

    @staticmethod
    def apply(net, node, params, ins):
        x = ins[0]
        t = net.out_type(node)
        y = net.phi(node)(x)
        if t.domain == "vector":
            return y
        return net.mask(y, t.shape, t.domain == "group")


@finite_layer("group_pool")
class GroupPool:
    """Mean over all (t, r) of the domain: (N,*box,|H|,C) -> (N, C). On a hexagonal domain the
    mean runs over the hexagon's sites only (the signal is zero elsewhere)."""

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        x = ins[0]
        d = net.dim
        box = x.shape[1:1 + d]
        axes = tuple(range(1, d + 2))
        return jnp.sum(x, axis=axes) / float(net.site_count(box) * x.shape[1 + d])


@finite_layer("avg_pool")
class AvgPool:
    """Mean over sites, keeping the group axis: (N,*box,[|H|,]C) -> (N,1,..,1,[|H|,]C). With
    size=k, stride=s: the mean over each valid window {s·u + a : a ∈ {0..k−1}^d},
    (N,*box,[|H|,]C) -> (N,*out,[|H|,]C) with out = floor((n − k)/s) + 1 per axis."""

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        from jax import lax
        x = ins[0]
        d = net.dim
        box = x.shape[1:1 + d]
        hp = net.hp(node)
        if hp.get("size") is not None:
            k, s = hp["size"], hp["stride"]
            rest = (1,) * (x.ndim - 1 - d)
            total = lax.reduce_window(x, 0.0, lax.add, (1,) + (k,) * d + rest,
                                      (1,) + (s,) * d + rest, "VALID")
            return total / float(k ** d)
        return jnp.sum(x, axis=tuple(range(1, d + 1)), keepdims=True) / float(net.site_count(box))


@finite_layer("flatten")
class Flatten:
    """All features of the domain as one vector (N, sites·[|H|·]C); on a hexagonal domain only
    the hexagon's sites (so the next dense layer's fan-in is channels × sites × |H|)."""

    @staticmethod
    def apply(net, node, params, ins):
        x = ins[0]
        d = net.dim
        box = tuple(x.shape[1:1 + d])
        n = x.shape[0]
        sites = x.reshape((n, int(np.prod(box))) + x.shape[1 + d:])
        keep = net.site_index(box)
        if keep is not None:
            sites = sites[:, keep]
        return sites.reshape(n, -1)


@finite_layer("sum")
class Sum:
    """Residual join: the sum of the branch outputs."""

    @staticmethod
    def apply(net, node, params, ins):
        out = ins[0]
        for other in ins[1:]:
            out = out + other
        return out


@finite_layer("concat")
class Concat:
    """Channel concatenation of the branch outputs."""

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        return jnp.concatenate(ins, axis=-1)


@finite_layer("fanout")
class FanOut:
    apply = staticmethod(lambda net, node, params, ins: ins[0])


@finite_layer("identity")
class Identity:
    apply = staticmethod(lambda net, node, params, ins: ins[0])


def check_table(kinds) -> None:
    """KernelcError naming every layer kind the finite network cannot build."""
    missing = sorted(set(kinds) - set(FINITE_LAYERS) - {"input"})
    if missing:
        raise KernelcError(f"no finite-width network for layer kind(s): {', '.join(missing)}")


__all__ = ["FINITE_LAYERS", "FiniteLayer", "finite_layer", "check_table"]
