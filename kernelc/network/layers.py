"""Finite-width layers: for each layer kind, its parameters and its forward pass; the machinery
and the common table (``dense``, ``nonlinearity`` and the branch structure ``fanout``,
``identity``, ``sum``, ``concat``). A family's own layers are in its ``network`` module
(:mod:`kernelc.families.lattice.network`, :mod:`kernelc.families.so3.network`); the layouts of
the signals are the families' (channels last, batch first; vectors (N, C)).

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
from typing import Any, Callable, Dict, Optional

from ..errors import KernelcError, ShapeError
from ..families import Family
from ..ir.jax_printer import jax_code
from ..rules.nonlinearities import x as X
from ..runtime import maps


@dataclass(frozen=True)
class FiniteLayer:
    kind: str
    init: Optional[Callable]   # (net, node, c_in, c_out) -> {param: (shape, std)}
    apply: Callable            # (net, node, params, inputs) -> output
    #: (net, node) -> the layer's static data, made once in numpy (a filter expansion, φ as a
    #: jnp function) and read back by ``apply`` with ``net.prepared(node)``
    prepare: Optional[Callable] = None
    #: (net, node, input channel counts) -> the output channel count of a layer without
    #: weights (default: its first input's); weight layers have the network's width
    channels: Optional[Callable] = None


#: The finite layers every family has (registered with ``family=None``), and each family's own.
COMMON_FINITE_LAYERS: Dict[str, FiniteLayer] = {}
FAMILY_FINITE_LAYERS: Dict[Family, Dict[str, FiniteLayer]] = {}


def finite_layer(kind: str, family: Optional[Family] = None):
    """Register the decorated class's ``init`` (optional: a layer without weights has none) and
    ``apply`` for ``kind`` of ``family`` (``None``: of every family)."""
    def register(cls):
        table = COMMON_FINITE_LAYERS if family is None \
            else FAMILY_FINITE_LAYERS.setdefault(family, {})
        if kind in table or kind in COMMON_FINITE_LAYERS:
            raise KernelcError(f"finite layer '{kind}' registered twice")
        table[kind] = FiniteLayer(kind, getattr(cls, "init", None), cls.apply,
                                  getattr(cls, "prepare", None), getattr(cls, "channels", None))
        return cls
    return register


def finite_layers(family: Family) -> Dict[str, FiniteLayer]:
    """The finite layers of ``family``: its own and the common ones (complete once
    :mod:`kernelc.network` is imported, which imports every family's network module)."""
    return {**COMMON_FINITE_LAYERS, **FAMILY_FINITE_LAYERS.get(family, {})}


# -- helpers ------------------------------------------------------------------------------------
def weight_params(net, node, shape, fan_in):
    """{"W": (shape, std), "b": ((D,), std)}: N(0,1) (ntk) or N(0, σ_w²/fan_in) and N(0, σ_b²)
    (standard); no "b" when σ_b = 0. The network draws all of them in one go."""
    hp = net.hp(node)
    standard = net.parameterization == "standard"
    params = {"W": (tuple(shape), hp["W_std"] / math.sqrt(fan_in) if standard else 1.0)}
    if hp["b_std"] > 0:
        params["b"] = ((shape[-1],), hp["b_std"] if standard else 1.0)
    return params


def affine_output(net, node, params, lin, fan_in):
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


@finite_layer("dense")
class Dense:
    """z = σ_w/√n Σ_i ω_i x_i + σ_b β on vectors (N, n). Weights ω: (n, D)."""

    @staticmethod
    def init(net, node, c_in, c_out):
        return weight_params(net, node, (c_in, c_out), c_in)

    @staticmethod
    def apply(net, node, params, ins):
        import jax.numpy as jnp
        from jax import lax
        x = ins[0]
        W = params["W"].astype(x.dtype)
        lin = jnp.matmul(x, W, precision=lax.Precision.HIGHEST)
        return affine_output(net, node, params, lin, W.shape[0])


# -- parameter-free layers ----------------------------------------------------------------------
def phi_function(phi):
    """φ as a jnp function: kernelc's guarded JAX printer on the rule's sympy φ (our own tree,
    never user text), evaluated over the helpers of kernelc.runtime.maps."""
    namespace: Dict[str, Any] = maps.namespace("jax")
    source = f"def _phi(x):\n    return {jax_code(phi, {X: 'x'})}\n"
    exec(compile(source, "<kernelc:phi>", "exec"), namespace)  # noqa: S102 - generated code
    fn = namespace["_phi"]

    def apply(x):
        import jax.numpy as jnp
        y = fn(x)
        return jnp.broadcast_to(jnp.asarray(y, x.dtype), x.shape)
    return apply


@finite_layer("nonlinearity")
class Nonlinearity:
    """φ elementwise (translated from the rule's sympy φ by kernelc's JAX printer)."""

    @staticmethod
    def prepare(net, node):
        return phi_function(net.hp(node)["map"].phi)

    @staticmethod
    def apply(net, node, params, ins):
        x = ins[0]
        t = net.out_type(node)
        y = net.prepared(node)(x)
        if t.domain == "vector":
            return y
        return net.mask(y, t.shape, t.domain == "group")


@finite_layer("sum")
class Sum:
    """Residual join: the sum of the branch outputs."""

    @staticmethod
    def channels(net, node, ins):
        if len(set(ins)) != 1:
            data = net.typed.node(node)
            names = [net.name(i) for i in net.typed.inputs(node)]
            raise ShapeError(f"the branches of {data.name} have different channel counts "
                             f"{dict(zip(names, ins))}; a residual sum needs equal widths",
                             data.span)
        return ins[0]

    @staticmethod
    def apply(net, node, params, ins):
        out = ins[0]
        for other in ins[1:]:
            out = out + other
        return out


@finite_layer("concat")
class Concat:
    """Channel concatenation of the branch outputs."""

    channels = staticmethod(lambda net, node, ins: sum(ins))

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


__all__ = ["COMMON_FINITE_LAYERS", "FAMILY_FINITE_LAYERS", "FiniteLayer", "affine_output",
           "finite_layer", "finite_layers", "weight_params"]
