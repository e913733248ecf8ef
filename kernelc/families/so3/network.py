"""The finite-width networks of the SO(3) family: signals on S² lifted to SO(3) (docs/math/so3.md).

Layouts (channels last, batch first): sphere signals (N, 2B, 2B, C) sampled at (θ_j, φ_k),
SO(3) signals (N, 2B, 2B, 2B, C) sampled at (α_a, β_b, γ_c), vectors (N, C); grids, harmonics
and conventions are those of :mod:`kernelc.runtime.harmonic`. Filters cover the whole sphere /
group and are white up to their band limit L, drawn as complex harmonic coefficients
ψ̂ = (u + i v)/√2 with N(0, 1) parameters u, v (NTK parameterisation; standard: N(0, σ_w²/n)).

* lift, S² -> SO(3), band L = min(L_lift, L_in), n input channels:
      out_j(R) = σ_w/√n Σ_c (1/4π) ∫ ψ_jc(R⁻¹x) f_c(x) dx + σ_b β_j,
      ψ = √2 √(4π) Re Σ_ℓm ψ̂_ℓm Y_ℓm, so E[ψ(x)ψ(x')] = Σ_{ℓ<L} (2ℓ+1) P_ℓ(x·x');
  computed as σ_w/√n · √2/√(4π) · Re so3_synthesis(G_j) + σ_b β_j with
      G^ℓ_{j,m'm} = Σ_c conj(a_cℓm') ψ̂_jcℓm,  a_c = sphere_analysis(f_c).
  Weights W: (2, L², n, D) = (u, v) of ψ̂ at (ℓ, m), ℓ-major, m = -ℓ..ℓ.
* gconv, SO(3) -> SO(3), band L, from the grid B_in to the grid B_out:
      out_j(R) = σ_w/√n Σ_c ∫ ψ_jc(R⁻¹u) f_c(u) du + σ_b β_j,
      ψ = √2 Re Σ_ℓmn ψ̂^ℓ_mn D^ℓ_mn, ψ̂^ℓ_mn = √(2ℓ+1)(u + i v)/√2, so
      E[ψ(g)ψ(g')] = P_L(g⁻¹g') = Σ_{ℓ<L} (2ℓ+1) χ_ℓ(g⁻¹g');
  computed as σ_w/√n · √2 · Re so3_synthesis(G_j, B_out) + σ_b β_j with, per degree,
      G^ℓ_j = Σ_c F̂^ℓ_c (ψ̂^ℓ_jc)^H / (2ℓ+1),  F̂_c = so3_analysis(f_c) (grid quadrature).
  Weights W: (2, Σ_ℓ (2ℓ+1)², n, D) = (u, v) at (ℓ, m, n), ℓ-major, then m, n row-major.
* nonlinearity: φ on every grid sample; group_pool: the grid quadrature Σ_g w_g f(g) of the
  normalised Haar measure (:func:`~kernelc.runtime.harmonic.so3_quadrature`); dense,
  nonlinearity and the branch structure: the common layers of :mod:`kernelc.network.layers`.

With the same quadratures, the infinite-width NNGP/NTK of this network is exactly the kernel of
the "general path" of :mod:`kernelc.runtime.so3`.
"""
from __future__ import annotations

import math

import numpy as np

from ...network.build import FiniteNetwork, register_network
from ...network.layers import affine_output, finite_layer, weight_params
from ...runtime import harmonic
from ...runtime.so3 import complex_dtype, so3_D_grid, sphere_coefficients
from .family import SO3_FAMILY


# -- filter coefficients ------------------------------------------------------------------------
def lift_blocks(W, band):
    """ψ̂ of a lift's weights W (2, L², n, D), per degree: [(2ℓ+1, n, D) complex for ℓ < L]."""
    psi = (W[0] + 1j * W[1]) / math.sqrt(2.0)
    return [psi[l * l:(l + 1) ** 2] for l in range(band)]


def gconv_blocks(W, band):
    """ψ̂ of a gconv's weights W (2, Σ(2ℓ+1)², n, D), per degree: [(2ℓ+1, 2ℓ+1, n, D)]
    (entry [m+ℓ, n+ℓ] = ψ̂^ℓ_mn, including its factor √(2ℓ+1))."""
    psi = (W[0] + 1j * W[1]) / math.sqrt(2.0)
    out, start = [], 0
    for l in range(band):
        d = 2 * l + 1
        out.append(psi[start:start + d * d].reshape((d, d) + psi.shape[1:]) * math.sqrt(d))
        start += d * d
    return out


def gconv_size(band) -> int:
    """Σ_{ℓ<L} (2ℓ+1)²: complex coefficients of a full-group filter of band limit L."""
    return band * (2 * band - 1) * (2 * band + 1) // 3


def _pad_stack(blocks, band, axes):
    """Zero-pad degree-ℓ blocks (size 2ℓ+1 on ``axes``) to 2L-1 and stack them on axis -1-len."""
    import jax.numpy as jnp
    padded = []
    for l, b in enumerate(blocks):
        lo = band - 1 - l
        pad = [(0, 0)] * b.ndim
        for ax in axes:
            pad[ax] = (lo, lo)
        padded.append(jnp.pad(b, pad))
    return jnp.stack(padded, axis=-1 - len(axes))


def _so3_coefficients(f, band):
    """F̂^ℓ_mn = (2ℓ+1) Σ_g w_g f(g) conj(D^ℓ_mn(g)) of (N, C, 2B, 2B, 2B) grid samples:
    (N, C, L, M, M). By FFTs when the grid resolves the band (2L-1 ≤ 2B), else by the same
    quadrature written out (as the kernels' general path does)."""
    import jax.numpy as jnp
    bandwidth = f.shape[-1] // 2
    if 2 * band - 1 <= 2 * bandwidth:
        return harmonic.so3_analysis(f, band)
    D = np.conj(so3_D_grid(band, bandwidth)) * harmonic.so3_quadrature(bandwidth).reshape(
        -1, 1, 1, 1) * (2 * np.arange(band) + 1)[None, :, None, None]
    flat = f.reshape(f.shape[:-3] + (-1,)).astype(complex_dtype(f))
    return jnp.einsum("...g,glmn->...lmn", flat, jnp.asarray(D, flat.dtype))


# -- layers -------------------------------------------------------------------------------------
@finite_layer("lift", SO3_FAMILY)
class Lift:
    """S² -> SO(3) with a full-sphere filter of band limit L (formula: module docstring)."""

    @staticmethod
    def init(net, node, c_in, c_out):
        return weight_params(net, node, (2, net.band(node) ** 2, c_in, c_out), c_in)

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        x = ins[0]
        band, grid = net.band(node), net.hp(node)["grid"]
        a = sphere_coefficients(x, band)
        psi = lift_blocks(params["W"].astype(x.dtype), band)
        blocks = [jnp.einsum("ncp,mcj->njpm", jnp.conj(a[:, :, l, band - 1 - l:band + l]),
                             psi[l]) for l in range(band)]           # a: (N, C, L, 2L-1)
        G = _pad_stack(blocks, band, (-2, -1))                      # (N, D, L, M, M)
        y = jnp.moveaxis(harmonic.so3_synthesis(G, grid), 1, -1)    # (N, 2B, 2B, 2B, D)
        lin = y * math.sqrt(2.0 / (4 * math.pi))
        return affine_output(net, node, params, lin, x.shape[-1])


@finite_layer("gconv", SO3_FAMILY)
class GroupConv:
    """SO(3) -> SO(3) with a full-group filter of band limit L (formula: module docstring)."""

    @staticmethod
    def init(net, node, c_in, c_out):
        return weight_params(net, node, (2, gconv_size(net.band(node)), c_in, c_out), c_in)

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        x = ins[0]
        band, grid = net.band(node), net.hp(node)["grid"]
        F = _so3_coefficients(jnp.moveaxis(x, -1, 1), band)       # (N, C, L, M, M)
        psi = gconv_blocks(params["W"].astype(x.dtype), band)
        blocks = [jnp.einsum("nckq,mqcj->njkm", F[:, :, l, band - 1 - l:band + l,
                                                  band - 1 - l:band + l],
                             jnp.conj(psi[l])) / (2 * l + 1) for l in range(band)]
        G = _pad_stack(blocks, band, (-2, -1))                      # (N, D, L, M, M)
        y = jnp.moveaxis(harmonic.so3_synthesis(G, grid), 1, -1)    # (N, 2B, 2B, 2B, D)
        return affine_output(net, node, params, y * math.sqrt(2.0), x.shape[-1])


@finite_layer("group_pool", SO3_FAMILY)
class GroupPool:
    """Σ_g w_g f(g): the Haar mean by the grid quadrature, (N, 2B, 2B, 2B, C) -> (N, C)."""

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        x = ins[0]
        w = harmonic.so3_quadrature(x.shape[1] // 2)
        return jnp.einsum("nabcj,abc->nj", x, jnp.asarray(w, x.dtype))


class SO3Network(FiniteNetwork):
    """:class:`~kernelc.network.build.FiniteNetwork` of an SO(3)-family typed graph: the same
    ``init``/``apply``/``features``/``readout_nngp``/``channels`` interface; the input box is
    the (2B, 2B) sphere grid (``dim`` = 2), hidden signals are (N, 2B, 2B, 2B, C)."""

    def __post_init__(self):
        g = self.typed
        self.order = g.order()
        self.group = self.typed.group
        self.check_layer_table()
        self.dim = 2  # the input's sample axes (θ, φ)
        self.parameterization = self.typed.spec.parameterization
        self.input_box = tuple(self.typed.input_type.shape)
        self.input_channels = int(self.typed.input_type.channels)
        self._mask = None
        self.prepare_layers()
        self.final = self._final_weight_layers()

    def band(self, node: str) -> int:
        """The band limit L a lift/gconv computes with (a lift's is capped by its input's)."""
        band = int(self.hp(node)["bandlimit"])
        if self.typed.node(node).kind == "lift":
            src = self.typed.inputs(node)[0]
            band = min(band, int(self.out_type(src).band))
        return band


register_network(SO3_FAMILY, SO3Network)

__all__ = ["SO3Network", "lift_blocks", "gconv_blocks", "gconv_size"]
