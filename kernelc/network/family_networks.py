"""Each family's finite network: the class and its table of finite layers.

Importing the families' ``network`` modules here registers their layers
(:func:`kernelc.network.layers.finite_layer`) and network classes
(:func:`kernelc.network.build.register_network`); :func:`network` and :func:`build` ask them.
"""
from __future__ import annotations

from ..families import family_of
from ..families.lattice import network as lattice_network  # noqa: F401 - registers the layers
from ..families.so3 import network as so3_network  # noqa: F401 - registers the layers
from ..families.steerable import network as steerable_network  # noqa: F401 - registers the layers
from .build import FAMILY_NETWORKS, FiniteNetwork, typed_graph


def network(obj) -> FiniteNetwork:
    """The finite network of a TypedGraph, CompiledKernel, Spec, spec path or text: an instance
    of the class its group's family registered (:data:`~kernelc.network.build.FAMILY_NETWORKS`)."""
    typed = typed_graph(obj)
    return FAMILY_NETWORKS[family_of(typed.group)](typed)


def build(obj):
    """``(init_fn, apply_fn)`` of the finite-width network of ``obj`` (a TypedGraph, or anything
    :func:`network` accepts). ``init_fn(key, input_shape=None, width=None, dtype="float32")`` ->
    params; ``apply_fn(params, x)`` -> outputs."""
    net = network(obj)
    return net.init, net.apply
