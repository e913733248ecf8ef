"""The finite-width layers of the lattice family (docs/math/conventions.md, NTK parameterisation).

Layouts of the signals (channels last, batch first):

* box    (N, *box, C)        -- the input and plain-convolution features;
* group  (N, *box, |H|, C)   -- signals on G: one value per (site t, element r), r indexing
                                ``group.elements``;
* vector (N, C)              -- after group_pool, flatten or dense.

fan_in = C·|S| (lift, conv) or C·|S|·|R| (gconv). The lattice family's network is the base
class :class:`~kernelc.network.build.FiniteNetwork` itself (it masks hexagonal domains); each
weight layer prepares its filter expansion once (``prepare``, read back with
``net.prepared(node)``).
"""
from __future__ import annotations

import numpy as np

from ...network.build import FiniteNetwork, register_network
from ...network.filters import expand, expansion_index
from ...network.layers import affine_output, finite_layer, weight_params
from .family import LATTICE

register_network(LATTICE, FiniteNetwork)


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
    y = affine_output(net, node, params, y, fan_in)
    return net.mask(y, out_box, group_out)


# -- weight layers ------------------------------------------------------------------------------
@finite_layer("lift", LATTICE)
class Lift:
    """z(t, r) = σ_w/√(C|S|) Σ_{c, y∈S} ω_c(y) f_c(t + ρ(r)y) + σ_b β: box (N,*box,C) ->
    group (N,*box,|H|,D). Weights ω: (|S|, C, D)."""

    @staticmethod
    def init(net, node, c_in, c_out):
        m = len(net.hp(node)["support"])
        return weight_params(net, node, (m, c_in, c_out), c_in * m)

    @staticmethod
    def prepare(net, node):  # one filter per output element r: the support rotated by ρ(r)
        return expansion_index(net.group, net.hp(node)["support"], range(net.group.order), 1)

    @staticmethod
    def apply(net, node, params, ins):
        return _conv_apply(net, node, params, ins[0], net.prepared(node), False, True)


@finite_layer("gconv", LATTICE)
class GroupConv:
    """z(t, r) = σ_w/√(C|S||R|) Σ_{c, y∈S, s∈R} ω_c(y, s) f_c(t + ρ(r)y, r s) + σ_b β on
    group signals (N,*box,|H|,C). Weights ω: (|S|, |R|, C, D), R in the spec's order."""

    @staticmethod
    def init(net, node, c_in, c_out):
        hp = net.hp(node)
        m, nr = len(hp["support"]), len(hp["rotations"])
        return weight_params(net, node, (m, nr, c_in, c_out), c_in * m * nr)

    @staticmethod
    def prepare(net, node):  # per output element r: support ρ(r)S and rotations r·R
        hp, order = net.hp(node), net.group.order
        return expansion_index(net.group, hp["support"], range(order), order, hp["rotations"])

    @staticmethod
    def apply(net, node, params, ins):
        return _conv_apply(net, node, params, ins[0], net.prepared(node), True, True)


@finite_layer("conv", LATTICE)
class Conv:
    """z(t) = σ_w/√(C|S|) Σ_{c, y∈S} ω_c(y) f_c(t + y) + σ_b β on box signals (N,*box,C).
    (With a non-trivial H a plain convolution is not equivariant at finite width; only its
    kernel is, in distribution.) Weights ω: (|S|, C, D), as for the lift."""

    init = Lift.init

    @staticmethod
    def prepare(net, node):  # one unrotated filter
        return expansion_index(net.group, net.hp(node)["support"], (0,), 1)

    @staticmethod
    def apply(net, node, params, ins):
        return _conv_apply(net, node, params, ins[0], net.prepared(node), False, False)


@finite_layer("group_pool", LATTICE)
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


@finite_layer("avg_pool", LATTICE)
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


@finite_layer("flatten", LATTICE)
class Flatten:
    """All features of the domain as one vector (N, sites·[|H|·]C); on a hexagonal domain only
    the hexagon's sites (so the next dense layer's fan-in is channels × sites × |H|)."""

    @staticmethod
    def channels(net, node, ins):
        t_in = net.out_type(net.typed.inputs(node)[0])
        return ins[0] * net.site_count(t_in.shape) * (t_in.group_order
                                                      if t_in.domain == "group" else 1)

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
