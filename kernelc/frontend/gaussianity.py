"""Gaussianity as part of the signal type: which signals a nonlinearity may take.

The kernel maps of a nonlinearity (arc-cosine, erf, Gauss–Hermite, ...) compute
E[φ(u)φ(v)] for a *centred Gaussian* pre-activation (u, v) ~ N(0, Λ). At infinite width that
holds for the output of a weight layer (a sum over infinitely many independent channels, CLT)
and for linear maps of such a signal, and it fails after a nonlinearity, for the raw input and
for sums that include either. Every edge of the typed graph therefore carries a :class:`Law`:

==================  ====================================================================
law                 the signal is ...
==================  ====================================================================
``Gaussian(n)``     a centred Gaussian process whose kernel is the value of node ``n``
``InputData()``     the input itself (fixed data: no kernel map applies to it)
``Activation(n,c)``  φ_c∘…∘φ_1(u), elementwise, with u = Gaussian(n): consecutive
                    nonlinearities compose into one (φ₂∘φ₁), whose map the rules derive
``Concatenation``   channel blocks, block b a fraction w_b of the channels with its own law;
                    a nonlinearity acts on each block: K⁺ = Σ_b w_b E_{Λ_b}[φφ]
``NonGaussian(r)``  anything else (r says why): a nonlinearity on it is refused
==================  ====================================================================

The transfer rules are keyed by what a layer *is*, not by its name: a layer kind registered
with ``category="weight"`` makes its output Gaussian whatever its input; one with
``category="pool"`` is a linear map (Gaussian in, Gaussian out; a pooled activation is a sum of
dependent non-Gaussian terms and stays non-Gaussian); the structural nodes (input, fan-out,
identity, sum, concat, nonlinearity) have their rules in :data:`STRUCTURAL_LAWS`.

Why a residual sum of Gaussian branches is Gaussian: the branches of a ``residual`` block are
jointly Gaussian (all but at most one end in a weight layer with fresh independent weights, which
the type checker enforces), so their sum is Gaussian with the sum of the branch kernels. A sum
with a post-activation branch (``relu; residual {...}``) is not, and neither is a nonlinearity
of it: that is the pre-activation form's reason to exist.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Sequence

from ..errors import KernelcError, ShapeError
from ..rules.nonlinearities import compose  # the rules table derives composed maps
from ..ir.laws import (Activation, Concatenation, Gaussian, InputData, Law, NonGaussian,  # noqa: F401
                       concat_weights)


# -- transfer rules ----------------------------------------------------------------------------
def _where(data) -> str:
    return f"'{data.name}' (line {data.span.line})"


def weight_layer_law(data, ins: Sequence[Law], node: str) -> Law:
    """A weight layer with infinitely many independent input channels: its output is Gaussian
    whatever its input (only the input's second moments, i.e. its kernel, enter)."""
    return Gaussian(node)


def linear_map_law(data, ins: Sequence[Law], node: str) -> Law:
    """A fixed linear map (pooling, flatten): Gaussian in, Gaussian out. A pooled activation is
    a sum of dependent non-Gaussian terms per channel, so it is not Gaussian."""
    law = ins[0]
    if isinstance(law, Gaussian):
        return Gaussian(node)
    if isinstance(law, (InputData, NonGaussian)):
        return law
    if isinstance(law, Concatenation):
        return NonGaussian(f"{_where(data)} pools a concatenation; the per-branch kernels a "
                           "nonlinearity would need are not kept through pooling",
                           "apply the nonlinearity before the pooling layer, or put a weight "
                           "layer between")
    return NonGaussian(f"{_where(data)} is a linear map of post-activation features; per "
                       "channel it is a sum of dependent non-Gaussian terms, which is not "
                       "Gaussian",
                       "apply the nonlinearity before pooling, or put a weight layer (dense) "
                       "between the pooling and the nonlinearity")


#: Law transfer by layer-kind category (``LayerKind.category``).
CATEGORY_LAWS: Dict[str, Callable] = {"weight": weight_layer_law, "pool": linear_map_law}


def _input_law(tg, node, data, ins):
    return InputData()


def _pass_through(tg, node, data, ins):
    return ins[0]


def _sum_law(tg, node, data, ins):
    """Σ_b of jointly Gaussian branches is Gaussian; any other branch makes the sum not."""
    if all(isinstance(law, Gaussian) for law in ins):
        return Gaussian(node)
    bad = next(law for law in ins if not isinstance(law, Gaussian))
    what = {Activation: "the output of a nonlinearity", InputData: "the raw input",
            Concatenation: "a concatenation"}.get(type(bad), "a non-Gaussian signal")
    return NonGaussian(f"the residual block at line {data.span.line} adds {what} "
                       "(a post-activation residual), which is not Gaussian",
                       "use the pre-activation form: keep the nonlinearities inside the "
                       "residual branch, e.g. residual { relu; gconv; relu; gconv }, and "
                       "put no nonlinearity right before the block")


def _concat_law(tg, node, data, ins):
    """Each branch keeps its own law; nested concatenations are flattened."""
    widths = [tg.node(i).out.channels for i in tg.inputs(node)]
    weights, parts = [], []
    for w, law in zip(concat_weights(widths), ins):
        if isinstance(law, Concatenation):
            weights += [w * v for v in law.weights]
            parts += list(law.parts)
        else:
            weights.append(w)
            parts.append(law)
    return Concatenation(tuple(weights), tuple(parts))


def _nonlinearity_law(tg, node, data, ins):
    return apply_nonlinearity(ins[0], node, data)


def apply_nonlinearity(law: Law, node: str, data) -> Law:
    """The law after nonlinearity ``node``, or a :class:`ShapeError` saying why it is refused."""
    if isinstance(law, Gaussian):
        return Activation(law.node, (node,), data.hp["map"])
    if isinstance(law, Activation):  # φ₂∘φ₁: one composed nonlinearity of the same Gaussian
        try:
            composed = compose(data.hp["map"], law.map,
                               max(data.hp["degree"], law.map.quad_degree))
        except KernelcError as exc:
            raise ShapeError(exc.message, data.span, suggestion=exc.suggestion) from None
        return Activation(law.source, law.chain + (node,), composed)
    if isinstance(law, Concatenation):
        return Concatenation(law.weights, tuple(apply_nonlinearity(p, node, data)
                                                for p in law.parts))
    if isinstance(law, InputData):
        raise ShapeError(f"this nonlinearity ({data.name}) is applied to the raw input; the "
                         "kernel maps of a "
                         "nonlinearity assume a Gaussian pre-activation, and fixed input data "
                         "is not one", data.span,
                         suggestion="put a weight layer (lift, conv or dense) before it")
    raise ShapeError(f"this nonlinearity ({data.name}) needs a Gaussian pre-activation, but "
                     f"its input is not Gaussian: {law.reason}", data.span,
                     suggestion=law.suggestion)


#: Law transfer of the structural node kinds (those without an entry in the layer tables).
STRUCTURAL_LAWS: Dict[str, Callable] = {
    "input": _input_law,
    "fanout": _pass_through,
    "identity": _pass_through,
    "nonlinearity": _nonlinearity_law,
    "sum": _sum_law,
    "concat": _concat_law,
}


def node_law(tg, node: str, kind_category: Optional[str], ins: Sequence[Law]) -> Law:
    """The law of ``node``'s output from its inputs' laws (table look-ups only)."""
    data = tg.node(node)
    rule = STRUCTURAL_LAWS.get(data.kind)
    if rule is not None:
        return rule(tg, node, data, ins)
    return CATEGORY_LAWS[kind_category](data, ins, node)


__all__ = ["Law", "Gaussian", "InputData", "Activation", "Concatenation", "NonGaussian",
           "CATEGORY_LAWS", "STRUCTURAL_LAWS", "node_law", "apply_nonlinearity",
           "concat_weights"]
