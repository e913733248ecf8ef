"""The layer graph: unrolled repeats, fan-out/fan-in nodes of blocks, identity nodes for empty
branches, acyclicity, and deterministic node ids and names."""
from __future__ import annotations

import networkx as nx
import pytest

from kernelc.errors import SpecError
from kernelc.frontend import check, parse_spec
from kernelc.frontend.graph import MAX_NODES, build_graph

from .conftest import P4_HEADER, SPEC_DIR


def graph_of(text: str):
    return build_graph(parse_spec(text))


def kinds(lg) -> list:
    return [lg.node(n)["kind"] for n in lg.order()]


def names(lg) -> list:
    return [lg.node(n)["name"] for n in lg.order()]


def snapshot(lg):
    """Everything deterministic about a layer graph (the hp arrays compared as lists)."""
    nodes = []
    for n in sorted(lg.graph.nodes):
        data = lg.node(n)
        hp = {k: (v.tolist() if hasattr(v, "tolist") else getattr(v, "name", v))
              for k, v in data["hp"].items()}
        nodes.append((n, data["kind"], data["name"], repr(sorted(hp.items())),
                      (data["span"].line, data["span"].column), data.get("inputs")))
    return nodes, sorted(lg.graph.edges), lg.input_node, lg.output_node


# -- repeat --------------------------------------------------------------------------------------

def test_repeat_is_unrolled():
    lg = graph_of(P4_HEADER + "lift\nrepeat 3 { gconv relu }\ngroup_pool\n")
    assert lg.graph.number_of_nodes() == 1 + 1 + 3 * 2 + 1
    assert names(lg) == ["input", "lift1", "gconv1", "relu1", "gconv2", "relu2", "gconv3",
                         "relu3", "group_pool1"]
    # a chain: every node has one predecessor and one successor
    assert all(lg.graph.in_degree(n) <= 1 and lg.graph.out_degree(n) <= 1 for n in lg.graph)


def test_nested_repeats_multiply():
    lg = graph_of(P4_HEADER + "lift\nrepeat 2 { repeat 3 { gconv } relu }\n")
    assert kinds(lg).count("gconv") == 6 and len(lg.graph) == 2 + 2 * (3 + 1)
    assert names(lg)[-1] == "relu2"


def test_repeat_copies_have_their_own_hyperparameter_dicts():
    lg = graph_of(P4_HEADER + "lift\nrepeat 2 { gconv(W_std=2) }\n")
    a, b = (n for n in lg.order() if lg.node(n)["kind"] == "gconv")
    assert lg.node(a)["hp"] == lg.node(b)["hp"]
    assert lg.node(a)["hp"] is not lg.node(b)["hp"]
    assert lg.node(a)["span"] == lg.node(b)["span"]  # both point at the same source text


def test_repeat_limit():
    with pytest.raises(SpecError) as info:
        graph_of(P4_HEADER + "lift\nrepeat 5000 {\n  gconv relu gconv\n}\n")
    assert info.value.message == f"this repeat unrolls to more than {MAX_NODES} layers"
    assert (info.value.span.line, info.value.span.column) == (5, 1)


# -- blocks ---------------------------------------------------------------------------------------

def test_residual_becomes_fanout_and_sum():
    lg = graph_of(P4_HEADER + "lift\nresidual {\n  branch { gconv }\n"
                  "  branch { gconv(size=1) relu gconv }\n}\ngroup_pool\n")
    by_name = {lg.node(n)["name"]: n for n in lg.graph}
    fan, total = by_name["fanout1"], by_name["sum1"]
    assert lg.node(fan)["kind"] == "fanout" and lg.node(total)["kind"] == "sum"
    assert lg.inputs(fan) == [by_name["lift1"]]
    assert lg.successors(fan) == sorted([by_name["gconv1"], by_name["gconv2"]])
    # the fan-in keeps the branch order in 'inputs'
    assert lg.node(total)["inputs"] == (by_name["gconv1"], by_name["gconv3"])
    assert lg.inputs(total) == [by_name["gconv1"], by_name["gconv3"]]
    assert lg.successors(total) == [by_name["group_pool1"]]
    assert lg.output_node == by_name["group_pool1"]


def test_concat_inputs_follow_the_branches():
    # the fan-in's 'inputs' (not the node ids) define the branch order: check it against the text
    lg = graph_of(P4_HEADER + "lift\nconcat {\n  branch { gconv(width=1) gconv(width=2) }\n"
                  "  branch { gconv(width=3) }\n  branch { }\n}\n")
    cat = next(n for n in lg.graph if lg.node(n)["kind"] == "concat")
    ends = lg.node(cat)["inputs"]
    assert [lg.node(e)["hp"].get("width") for e in ends[:2]] == [2, 3]
    assert lg.node(ends[2])["kind"] == "identity"
    assert lg.inputs(cat) == list(ends)


def test_residual_without_branches_has_an_identity_shortcut():
    lg = graph_of(P4_HEADER + "lift\nresidual { gconv relu gconv }\n")
    assert kinds(lg) == ["input", "lift", "fanout", "gconv", "nonlinearity", "gconv",
                         "identity", "sum"]
    ident = next(n for n in lg.graph if lg.node(n)["kind"] == "identity")
    fan = next(n for n in lg.graph if lg.node(n)["kind"] == "fanout")
    total = next(n for n in lg.graph if lg.node(n)["kind"] == "sum")
    assert lg.inputs(ident) == [fan] and lg.successors(ident) == [total]
    assert lg.node(total)["inputs"][1] == ident
    assert lg.node(ident)["name"] == "identity1"


def test_two_empty_branches_need_two_identity_nodes():
    # parallel edges fanout -> sum are impossible in a DiGraph: identities keep branches apart
    lg = graph_of(P4_HEADER + "lift\nconcat { branch { } branch { } }\n")
    cat = next(n for n in lg.graph if lg.node(n)["kind"] == "concat")
    a, b = lg.node(cat)["inputs"]
    assert a != b and {lg.node(a)["kind"], lg.node(b)["kind"]} == {"identity"}
    assert lg.graph.in_degree(cat) == 2
    assert check(P4_HEADER + "lift(width=2)\nconcat { branch { } branch { } }\n"
                 ).output_type.channels == 4


def test_user_identity_layer_and_structural_identity_get_distinct_names():
    lg = graph_of(P4_HEADER + "lift\nidentity\nresidual { gconv }\n")
    assert [(lg.node(n)["kind"], lg.node(n)["name"]) for n in lg.order()
            if "identity" in lg.node(n)["name"]] == [("nonlinearity", "identity1"),
                                                     ("identity", "identity2")]


def test_nested_blocks():
    lg = graph_of(P4_HEADER + "lift\nrepeat 2 {\n  residual {\n    branch { concat { branch { gconv } "
                  "branch { gconv } } }\n    branch { }\n  }\n}\n")
    assert kinds(lg).count("fanout") == 4 and kinds(lg).count("concat") == 2
    assert kinds(lg).count("sum") == 2 and kinds(lg).count("identity") == 2


# -- structure ------------------------------------------------------------------------------------

def test_every_spec_graph_is_a_dag_with_one_source_and_one_sink(spec_path):
    lg = build_graph(parse_spec(spec_path.read_text(), str(spec_path)))
    g = lg.graph
    assert nx.is_directed_acyclic_graph(g)
    assert [n for n in g if g.in_degree(n) == 0] == [lg.input_node] == ["n000"]
    assert [n for n in g if g.out_degree(n) == 0] == [lg.output_node]
    assert nx.descendants(g, lg.input_node) == set(g) - {lg.input_node}
    order = lg.order()
    position = {n: i for i, n in enumerate(order)}
    assert all(position[u] < position[v] for u, v in g.edges)
    # ids are n000, n001, ... in creation (source) order, and names are unique
    assert sorted(g) == [f"n{i:03d}" for i in range(len(g))]
    assert len({lg.node(n)["name"] for n in g}) == len(g)
    for n in g:
        data = lg.node(n)
        assert {"kind", "name", "hp", "span"} <= set(data)
        if data["kind"] in ("sum", "concat"):
            assert sorted(data["inputs"]) == sorted(g.predecessors(n))
        else:
            assert g.in_degree(n) <= 1


def test_p4_residual_structure():
    lg = build_graph(parse_spec((SPEC_DIR / "p4_residual.kc").read_text()))
    assert len(lg.graph) == 19
    assert kinds(lg).count("gconv") == 4 and kinds(lg).count("sum") == 2
    assert kinds(lg).count("identity") == 2 and kinds(lg).count("fanout") == 2
    assert lg.order() == [f"n{i:03d}" for i in range(19)]


def test_node_ids_and_names_are_deterministic():
    text = (SPEC_DIR / "p4_residual.kc").read_text()
    first, second = graph_of(text), graph_of(text)
    assert snapshot(first) == snapshot(second)
    assert names(first) == names(second)
    t1, t2 = check(text), check(text)
    assert [(n, t1.node(n).out) for n in t1.order()] == \
        [(n, t2.node(n).out) for n in t2.order()]


def test_every_spec_builds_identically_twice(spec_path):
    text = spec_path.read_text()
    assert snapshot(graph_of(text)) == snapshot(graph_of(text))


def test_order_breaks_ties_by_source_order():
    lg = graph_of(P4_HEADER + "lift\nconcat {\n  branch { gconv relu }\n  branch { gconv erf }\n}\n")
    assert names(lg) == ["input", "lift1", "fanout1", "gconv1", "relu1", "gconv2", "erf1",
                         "concat1"]


def test_spans_of_structural_nodes_point_at_their_block():
    lg = graph_of(P4_HEADER + "lift\n\nresidual { gconv }\n")
    for n in lg.graph:
        if lg.node(n)["kind"] in ("fanout", "identity", "sum"):
            assert (lg.node(n)["span"].line, lg.node(n)["span"].column) == (6, 1)
    assert lg.node(lg.input_node)["span"].line == 3  # the input declaration
