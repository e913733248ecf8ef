"""The finite-width layers of the steerable family (docs/math/steerable.md, NTK parameterisation):
filters sampled from their basis exactly as the kernel rules assume, so that Monte Carlo checks
the kernels.

Signals are laid out as in the lattice family: images (N, *box, C), signals on G
(N, *box, |H|, C) with the group axis in the order of ``group.elements``, vectors (N, C).

* lift:  z(t, r) = σ_w/√(C|B|) Σ_{c,y∈S} Σ_k w_{k,c} B_k(R_r⁻¹y) f_c(t+y) + σ_b β,
         weights (|B|, C, D);
* gconv: z(t, r) = σ_w/√(C|B||H|) Σ_{c,s∈H,y∈S} Σ_k w_{k,r⁻¹s,c} B_k(R_r⁻¹y) f_c(t+y, s)
         + σ_b β, weights (|B|, |H|, C, D).

The poolings and flatten are the lattice family's finite layers.
"""
from __future__ import annotations

import numpy as np

from ...network.build import FiniteNetwork, register_network
from ...network.layers import FAMILY_FINITE_LAYERS, affine_output, finite_layer, weight_params
from ...runtime.steerable import rotated_basis
from ..lattice import network as lattice_network  # noqa: F401 - registers the layers reused below
from ..lattice.family import LATTICE
from .family import STEERABLE

register_network(STEERABLE, FiniteNetwork)


def _rotated(net, node):
    """(|H|, |B|, |S|): the basis of the filter rotated to each orientation, B_k(R_r⁻¹y)."""
    hp, group = net.hp(node), net.group
    return rotated_basis(group.n, group.reflections, hp["basis"], hp["size"],
                         hp["max_frequency"])


def _correlate(net, node, x, bank):
    """Cross-correlation z(t) = Σ_y F[y] x(t+y) of x (N, *box, C_in) with the k×k filter bank
    (k, k, C_in, C_out), padded as the layer says ('same': zeros, 'circular': wrap)."""
    import jax.numpy as jnp
    from jax import lax
    hp = net.hp(node)
    r = (hp["size"] - 1) // 2
    if hp["padding"] != "valid" and r:
        x = jnp.pad(x, [(0, 0), (r, r), (r, r), (0, 0)],
                    mode="constant" if hp["padding"] == "same" else "wrap")
    return lax.conv_general_dilated(x, bank.astype(x.dtype), (1, 1), "VALID",
                                    dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                    precision=lax.Precision.HIGHEST)


@finite_layer("lift", STEERABLE)
class Lift:
    """Image (N, *box, C) -> signal on G (N, *box, |H|, D); weights (|B|, C, D)."""

    @staticmethod
    def init(net, node, c_in, c_out):
        count = net.hp(node)["basis_size"]
        return weight_params(net, node, (count, c_in, c_out), c_in * count)

    prepare = staticmethod(_rotated)

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        x, W = ins[0], params["W"]
        k = net.hp(node)["size"]
        basis = jnp.asarray(net.prepared(node), dtype=W.dtype)       # (H, B, S)
        order, (_, c_in, c_out) = basis.shape[0], W.shape
        filters = jnp.einsum("rky,kcd->ycrd", basis, W)              # F_r[y, c, d]
        bank = filters.reshape(k, k, c_in, order * c_out)
        y = _correlate(net, node, x, bank)
        y = y.reshape(y.shape[:3] + (order, c_out))
        return affine_output(net, node, params, y, c_in * W.shape[0])


@finite_layer("gconv", STEERABLE)
class GroupConv:
    """Signal on G (N, *box, |H|, C) -> (N, *box, |H|, D); weights (|B|, |H|, C, D), the
    second axis indexed by u = r⁻¹s."""

    @staticmethod
    def init(net, node, c_in, c_out):
        count, order = net.hp(node)["basis_size"], net.group.order
        return weight_params(net, node, (count, order, c_in, c_out), c_in * count * order)

    @staticmethod
    def prepare(net, node):
        group = net.group
        inv_mul = np.array([[group.cayley[group.inverse[r], s] for s in range(group.order)]
                            for r in range(group.order)])            # u = r⁻¹s
        return _rotated(net, node), inv_mul

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        x, W = ins[0], params["W"]
        k = net.hp(node)["size"]
        basis, inv_mul = net.prepared(node)
        basis = jnp.asarray(basis, dtype=W.dtype)                     # (H, B, S)
        count, order, c_in, c_out = W.shape
        per_output = W[:, inv_mul]                                   # (B, H_r, H_s, C, D)
        filters = jnp.einsum("rky,krscd->yscrd", basis, per_output)  # F_r[y, (s, c), d]
        bank = filters.reshape(k, k, order * c_in, order * c_out)
        n, box = x.shape[0], x.shape[1:3]
        y = _correlate(net, node, x.reshape((n,) + box + (order * c_in,)), bank)
        y = y.reshape(y.shape[:3] + (order, c_out))
        return affine_output(net, node, params, y, c_in * count * order)


# The poolings and flatten: the lattice family's finite layers (the same signals).
for _kind in ("group_pool", "avg_pool", "flatten"):
    finite_layer(_kind, STEERABLE)(FAMILY_FINITE_LAYERS[LATTICE][_kind])
