"""AST -> layer graph (stage 2): a networkx DiGraph of layer nodes.

``repeat`` blocks are unrolled (each copy has its own weights); ``residual``/``concat`` blocks
become a ``fanout`` node, one chain per branch, and a ``sum``/``concat`` fan-in node whose
``inputs`` attribute keeps the branch order. An empty branch is an ``identity`` node, so the
graph never needs parallel edges. Node ids are ``n000, n001, ...`` in source order, which makes
every later stage deterministic.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import networkx as nx

from ..errors import KernelcError, SpecError, did_you_mean
from ..rules.nonlinearities import MAX_POLY_DEGREE, NONLINEARITIES, kernel_map
from .ast import Branches, Layer, Repeat, Spec, Word
from .parser import CONSTANTS as EXPRESSION_CONSTANTS, FUNCTIONS as EXPRESSION_FUNCTIONS
from ..families import Family
from .family_kinds import families_with_kind, layer_kinds, spec_family
from .layers import resolve_hyperparameters

#: Most nodes an unrolled layer graph may have (``repeat 99999999 {...}`` would never finish).
MAX_NODES = 10_000


@dataclass
class LayerGraph:
    """The layer graph of a spec; node attributes: kind, name, hp, span (and ``out`` once typed)."""

    spec: Spec
    graph: nx.DiGraph
    input_node: str
    output_node: str

    def order(self) -> List[str]:
        """Nodes in a deterministic topological order (source order breaks ties)."""
        return list(nx.lexicographical_topological_sort(self.graph))

    def node(self, n: str) -> Dict[str, Any]:
        return self.graph.nodes[n]

    def inputs(self, n: str) -> List[str]:
        data = self.graph.nodes[n]
        return list(data["inputs"]) if "inputs" in data else sorted(self.graph.predecessors(n))

    def successors(self, n: str) -> List[str]:
        return sorted(self.graph.successors(n))


def layer_names(family: Family) -> List[str]:
    """Every name a layer statement may use: the family's layer table plus the nonlinearities."""
    return sorted(set(layer_kinds(family)) | set(NONLINEARITIES))


#: What the nonlinearities with arguments take (every other one takes none); all of them also
#: take ``degree=``, the Gauss–Hermite points per axis of a quadrature map.
NONLINEARITY_ARGUMENTS = {
    "leaky_relu": "one positional number, the negative slope, as in leaky_relu(0.1)",
    "poly": "the coefficients c0, c1, ..., cn as positional numbers, as in poly(0, 1, 0.5)",
    "phi": "one positional expression in x, as in phi(x * sigmoid(x))",
}


def _phi_hint(word: str) -> Optional[str]:
    """For a layer named after an expression function (tanh, softplus, sigmoid...): how to
    write it as ``phi(...)``."""
    if word not in EXPRESSION_FUNCTIONS:
        return None
    example = f"phi({word}(0, x))" if word in ("max", "min") else f"phi({word}(x))"
    return (f"'{word}' is an expression function, not a layer: write {example} for the "
            "elementwise nonlinearity (any expression in x works, e.g. phi(x * sigmoid(x)))")


def build_graph(spec: Spec) -> LayerGraph:
    family = spec_family(spec)
    kinds = layer_kinds(family)
    defined_names = tuple(name for name, _ in spec.constants) + tuple(EXPRESSION_CONSTANTS)
    g = nx.DiGraph()
    counter = [0]
    names: Dict[str, int] = {}

    def add(kind: str, span, hp=None, label=None, **extra) -> str:
        if counter[0] >= MAX_NODES:  # a flat list of layers counts too, not only repeat
            raise SpecError(f"the network has more than {MAX_NODES} layers (after unrolling "
                            "repeat blocks and adding the branch nodes); this one is past it",
                            span)
        nid = f"n{counter[0]:03d}"
        counter[0] += 1
        base = label or kind
        names[base] = names.get(base, 0) + 1
        g.add_node(nid, kind=kind, name=f"{base}{names[base]}" if kind != "input" else "input",
                   hp=hp or {}, span=span, **extra)
        return nid

    def sequence(statements, prev: str) -> str:
        for st in statements:
            if isinstance(st, Layer):
                nid = layer_node(st)
                g.add_edge(prev, nid)
                prev = nid
            elif isinstance(st, Repeat):
                if counter[0] + st.count * _unrolled_size(st.body) > MAX_NODES:
                    raise SpecError(f"this repeat unrolls to more than {MAX_NODES} layers",
                                    st.span)
                for _ in range(st.count):
                    prev = sequence(st.body, prev)
            elif isinstance(st, Branches):
                fan = add("fanout", st.span)
                g.add_edge(prev, fan)
                ends = []
                for body in st.branches:
                    start = fan
                    if not body:
                        start = add("identity", st.span)
                        g.add_edge(fan, start)
                    ends.append(sequence(body, start) if body else start)
                join = add(st.combine, st.span, inputs=tuple(ends))
                for e in ends:
                    g.add_edge(e, join)
                prev = join
            else:  # pragma: no cover - the parser only makes these three
                raise SpecError(f"unknown statement {st!r}")
        return prev

    def layer_node(layer: Layer) -> str:
        kind = kinds.get(layer.kind)
        if kind is not None:
            return add(layer.kind, layer.span,
                       resolve_hyperparameters(layer, kind, defined_names))
        if layer.kind in NONLINEARITIES or layer.kind == "phi":
            return add("nonlinearity", layer.span, nonlinearity_hp(layer, defined_names),
                       label=layer.kind)
        valid = layer_names(family)
        if families_with_kind(layer.kind):  # another family's kind
            raise SpecError(f"layer '{layer.kind}' is not defined for the {spec.group.name} "
                            "family", layer.span, expected=valid)
        raise SpecError(f"unknown layer '{layer.kind}'", layer.span, expected=valid,
                        suggestion=_phi_hint(layer.kind) or did_you_mean(layer.kind, valid))

    inp = add("input", spec.input.span)
    out = sequence(spec.body, inp)
    if not nx.is_directed_acyclic_graph(g):  # impossible by construction; checked anyway
        raise KernelcError("internal error: the layer graph has a cycle")
    return LayerGraph(spec, g, inp, out)


def _unrolled_size(statements) -> int:
    """Number of graph nodes ``statements`` unroll to (at least 1, counted without building)."""
    total = 0
    for st in statements:
        if isinstance(st, Repeat):
            total += st.count * _unrolled_size(st.body)
        elif isinstance(st, Branches):
            total += 2 + sum(_unrolled_size(b) for b in st.branches)
        else:
            total += 1
    return max(total, 1)


def _degree_bound(expr, x) -> int:
    """An upper bound on the degree in ``x`` of a polynomial expression, without expanding it."""
    if expr == x:
        return 1
    if expr.is_Pow and expr.exp.is_Integer:
        return _degree_bound(expr.base, x) * abs(int(expr.exp))
    if expr.is_Mul:
        return sum(_degree_bound(a, x) for a in expr.args)
    return max((_degree_bound(a, x) for a in expr.args), default=0)


def nonlinearity_hp(layer: Layer, defined_names: tuple = ()) -> Dict[str, Any]:
    """Resolve an elementwise layer to its kernel map (rules table lookup, checked here).

    ``defined_names``: the names a value may use (``let`` constants, pi, e), suggested when an
    argument is an undefined name."""
    import sympy
    for arg in layer.args:
        if isinstance(arg.value, Word):
            takes = NONLINEARITY_ARGUMENTS.get(layer.kind, "no arguments")
            listing = ", ".join(defined_names) if defined_names else "none"
            raise SpecError(f"unknown name '{arg.value.name}': '{layer.kind}' takes {takes} "
                            f"(defined names: {listing})", arg.span,
                            suggestion=did_you_mean(arg.value.name, defined_names))
    positional = tuple(a.value for a in layer.args if a.name is None)
    named = {a.name: a for a in layer.args if a.name is not None}
    unknown = set(named) - {"degree"}
    if unknown:
        bad = named[sorted(unknown)[0]]
        takes = NONLINEARITY_ARGUMENTS.get(layer.kind, "no arguments")
        raise SpecError(f"'{layer.kind}' has no hyperparameter '{bad.name}': it takes {takes}, "
                        "and optionally degree= (Gauss–Hermite points per axis)", bad.span,
                        suggestion=did_you_mean(bad.name, ["degree"]))
    degree = named["degree"].value if "degree" in named else 32
    if not isinstance(degree, int) or not 2 <= degree <= 200:
        raise SpecError("'degree' (Gauss–Hermite points per axis) must be an integer in 2..200",
                        named["degree"].span)
    expr = None
    if layer.kind == "phi":
        if len(positional) != 1 or not isinstance(positional[0], (sympy.Expr, int, float)):
            raise SpecError("phi takes one expression in x, e.g. phi(x * sigmoid(x))", layer.span)
        expr = sympy.sympify(positional[0]) if isinstance(positional[0], (int, float)) \
            else positional[0]  # a number or a tree we built ourselves, never user text
        positional = ()
        if expr.is_polynomial(*expr.free_symbols) and \
                _degree_bound(expr, next(iter(expr.free_symbols), None)) > MAX_POLY_DEGREE:
            raise SpecError(f"phi(...) is a polynomial of degree above {MAX_POLY_DEGREE}; "
                            "its exact kernel would take too long", layer.span)
    elif layer.kind == "poly" and len(positional) > MAX_POLY_DEGREE + 1:
        raise SpecError(f"poly(...) takes at most {MAX_POLY_DEGREE + 1} coefficients "
                        f"(degree {MAX_POLY_DEGREE})", layer.span)
    elif any(isinstance(v, sympy.Expr) for v in positional):
        raise SpecError(f"'{layer.kind}' takes numbers; use phi(...) for an expression in x",
                        layer.span)
    try:
        kmap = kernel_map(layer.kind, positional, expr=expr, quad_degree=degree)
    except KernelcError as exc:
        if exc.span is not None:
            raise
        raise SpecError(exc.message, layer.span, expected=exc.expected,
                        suggestion=exc.suggestion) from None
    return {"map": kmap, "degree": degree}
