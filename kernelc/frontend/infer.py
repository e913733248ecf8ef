"""Layer graph -> typed graph (stage 3): every node gets the :class:`SignalType` of its output.

The walk is a loop over nodes in topological order with a table look-up per node kind; the
typing rules of the layer kinds live in :mod:`kernelc.frontend.layers`, the structural ones
(input, fan-out, fan-in, elementwise) in :data:`STRUCTURAL` below.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import networkx as nx

from ..errors import GroupError, KernelcError, ShapeError, SourceSpan, SpecError
from ..families import family_of, family_of_input
from ..groups import LatticeGroup, get_group
from .ast import GroupDecl, Spec
from .gaussianity import node_law
from .graph import LayerGraph, build_graph
from .family_kinds import graph_defaults, input_types, layer_kinds
from .parser import load_spec
from .types import SignalType


@dataclass(frozen=True)
class Node:
    """One typed layer of the network, what every later stage reads: its ``kind`` (a layer
    kind, "nonlinearity", or a structural kind: input, fanout, identity, sum, concat), its
    ``name`` in messages and generated code (relu2), its hyperparameters ``hp`` (read-only),
    its ``span`` in the spec, its output type ``out`` (with the signal's law) and its
    ``inputs`` in order (the branches of a concat)."""

    id: str
    kind: str
    name: str
    hp: Mapping[str, Any]
    span: SourceSpan
    out: Optional[SignalType]
    inputs: Tuple[str, ...]


@dataclass(frozen=True)
class TypedGraph:
    """The typed network: the spec, the resolved group, and its :class:`Node` values by id
    over a frozen graph of their connections. Built by :func:`infer_types` from the layer
    graph (which it leaves as it was); nothing changes it afterwards."""

    spec: Spec
    group: object  # a group of one of the families (kernelc.families)
    nodes: Mapping[str, Node]
    graph: nx.DiGraph  # frozen: edges only
    input_node: str
    output_node: str
    topological_order: Tuple[str, ...]

    def order(self) -> List[str]:
        """Nodes in a deterministic topological order (source order breaks ties)."""
        return list(self.topological_order)

    def node(self, n: str) -> Node:
        return self.nodes[n]

    def inputs(self, n: str) -> List[str]:
        return list(self.nodes[n].inputs)

    def successors(self, n: str) -> List[str]:
        return sorted(self.graph.successors(n))

    @property
    def output_type(self) -> SignalType:
        return self.nodes[self.output_node].out

    @property
    def input_type(self) -> SignalType:
        return self.nodes[self.input_node].out

    def summary(self) -> str:
        spec, group = self.spec, self.group
        n_layers = sum(1 for n in self.order()
                       if self.nodes[n].kind not in ("input", "fanout", "identity"))
        family = family_of(group)
        return (f"{spec.name}: group {group.name} ({family.order_text(group)}), "
                f"input {family.describe_input(self.input_type)}, {n_layers} layers, "
                f"output {self.output_type}, {spec.parameterization} parameterization")


def resolve_group(decl: GroupDecl) -> LatticeGroup:
    if decl.generators is None:
        return get_group(decl.name, span=decl.span)
    try:
        return LatticeGroup.from_generators(decl.name, decl.dim, decl.generators,
                                            lattice=decl.lattice)
    except KernelcError as exc:
        raise type(exc)(exc.message, decl.span, suggestion=exc.suggestion) from None
    except OverflowError:  # entries beyond int64
        raise GroupError(f"group '{decl.name}': generator entries are too large", decl.span) from None


def _input(tg, node, ins):
    spec, group = tg.spec, tg.group
    family = family_of(group)
    if spec.input.domain != family.input_domain:
        message, suggestion = family.input_mismatch(group, family_of_input(spec.input.domain))
        raise ShapeError(message, spec.input.span, suggestion=suggestion)
    return input_types(family)(spec.input, group)


def _same_as_input(tg, node, ins):
    return ins[0]


def _elementwise(tg, node, ins):
    return ins[0]


def _fan_in(tg, node, ins):
    data = tg.node(node)
    first = ins[0]
    for other in ins[1:]:
        if (other.domain, other.shape) != (first.domain, first.shape):
            raise ShapeError(f"the branches of this {data.kind} block disagree: "
                             f"{first} vs {other}", data.span)
    if data.kind == "sum":
        _check_independent_branches(tg, node)
        return SignalType(first.domain, first.shape, first.channels, first.group_order)
    widths = [t.channels for t in ins]
    total = sum(widths) if all(w is not None for w in widths) else None
    return SignalType(first.domain, first.shape, total, first.group_order)


def _check_independent_branches(tg, node):
    """A sum's kernel is the sum of branch kernels only if branch outputs are uncorrelated,
    which holds when all but at most one branch end in a layer with fresh zero-mean weights."""
    g = tg
    kinds = layer_kinds(family_of(tg.group))
    not_parametric = [i for i in g.inputs(node)
                      if g.node(i).kind not in kinds or not kinds[g.node(i).kind].parametric]
    if len(not_parametric) > 1:
        raise ShapeError("at most one branch of a residual block may end without a weight "
                         "layer (lift/gconv/conv/dense); otherwise the branches are correlated "
                         "and the kernel is not the sum of branch kernels",
                         g.node(node).span)


STRUCTURAL: Dict[str, Callable] = {
    "input": _input,
    "fanout": _same_as_input,
    "identity": _same_as_input,
    "nonlinearity": _elementwise,
    "sum": _fan_in,
    "concat": _fan_in,
}


def infer_types(layers: LayerGraph, group: LatticeGroup) -> TypedGraph:
    """The :class:`TypedGraph` of a layer graph: each node, in topological order, gets its
    output type from its kind's typing rule (or a structural rule) and the law of its signal
    (frontend.gaussianity); ``layers`` is not modified."""
    order = tuple(layers.order())
    nodes: Dict[str, Node] = {}
    graph = nx.DiGraph()
    graph.add_nodes_from(order)
    graph.add_edges_from(layers.graph.edges())
    nx.freeze(graph)  # its connections only; the node values are the Nodes
    tg = TypedGraph(layers.spec, group, nodes, graph, layers.input_node, layers.output_node,
                    order)  # filled node by node below; read by the rules for earlier nodes
    family = family_of(group)
    kinds = layer_kinds(family)
    # defaults that depend on the whole graph (the SO(3) grids), before any node is typed
    completed = graph_defaults(family, layers)
    for node in order:
        data = layers.node(node)
        hp = dict(data["hp"])  # a typing rule may complete it (e.g. avg_pool's stride)
        hp.update(completed.get(node, {}))
        nodes[node] = Node(node, data["kind"], data["name"], MappingProxyType(hp), data["span"],
                           None, tuple(layers.inputs(node)))
        ins = [nodes[i].out for i in layers.inputs(node)]
        rule = STRUCTURAL.get(data["kind"])
        category = None
        if rule is not None:
            out = rule(tg, node, ins)
        else:
            kind = kinds[data["kind"]]
            category = kind.category
            if kind.parametric and layers.spec.parameterization == "standard" \
                    and ins[0].channels is None:
                raise ShapeError(f"the standard parameterization needs the width of the layer "
                                 f"feeding {data['name']}: add width=N to it", data["span"])
            out = kind.infer(ins[0], hp, group, _LayerView(data))
        # the signal's law (Gaussian or not) from the kind's category or structural rule; a
        # nonlinearity on a signal the kernel maps cannot take exactly is refused here
        nodes[node] = dataclasses.replace(
            nodes[node], out=dataclasses.replace(
                out, law=node_law(tg, node, category, [t.law for t in ins])))
    return dataclasses.replace(tg, nodes=MappingProxyType(nodes))


class _LayerView:
    """What a typing rule sees of a node: its kind and span (the AST Layer interface)."""

    def __init__(self, data):
        self.kind = data["kind"]
        self.span = data["span"]


def check(spec_or_path: Union[str, Path, Spec]) -> TypedGraph:
    """Parse (if needed), build the layer graph and infer types: the front end in one call."""
    spec = spec_or_path if isinstance(spec_or_path, Spec) else load_spec(spec_or_path)
    group = resolve_group(spec.group)
    family = family_of(group)
    if spec.group.generators is None and spec.input.domain == family.input_domain:
        input_types(family)(spec.input, group)  # a wrong input box before any layer's error
    try:
        return infer_types(build_graph(spec), group)
    except RecursionError:  # deeply nested blocks, or a deeply nested phi(...) in sympy
        raise SpecError("the spec is nested too deeply (blocks or expressions)",
                        spec.span) from None


__all__ = ["Node", "TypedGraph", "check", "infer_types", "resolve_group", "SpecError"]
