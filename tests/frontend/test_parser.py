"""The grammar and the AST builder: every shipped spec, each language feature, and round trips
through the canonical printer (``parse_spec(unparse(ast)) == ast``, spans excluded)."""
from __future__ import annotations

import dataclasses
import math

import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelc.errors import SpecError
from kernelc.frontend import Spec, parse_spec
from kernelc.frontend.ast import Argument, Branches, GroupDecl, InputDecl, Layer, Repeat, Word
from kernelc.frontend import parser
from kernelc.frontend.parser import X
from kernelc.frontend.unparse import unparse, unparse_expr

from .conftest import P4_HEADER, SPEC_PATHS, strip_spans


def parse(text: str) -> Spec:
    return parse_spec(text, "t.kc")


def body(text: str):
    """The statements of ``text`` put after a p4 header."""
    return parse(P4_HEADER + text).body


def roundtrip(spec: Spec) -> Spec:
    again = parse(unparse(spec))
    assert strip_spans(again) == strip_spans(spec), unparse(spec)
    return again


def layer_kinds(statements):
    out = []
    for st_ in statements:
        if isinstance(st_, Layer):
            out.append(st_.kind)
        elif isinstance(st_, Repeat):
            out.append(("repeat", st_.count, layer_kinds(st_.body)))
        else:
            out.append((st_.combine, tuple(tuple(layer_kinds(b)) for b in st_.branches)))
    return out


# -- the shipped specs ---------------------------------------------------------------------------

def test_specs_directory_is_not_empty():
    assert len(SPEC_PATHS) >= 8


def test_every_spec_parses_and_round_trips(spec_path):
    spec = parse_spec(spec_path.read_text(), str(spec_path))
    assert isinstance(spec, Spec) and spec.body
    assert spec.filename == str(spec_path)
    assert spec.source == spec_path.read_text()
    assert spec.name.isidentifier()
    again = roundtrip(spec)
    # and the printed text is a fixed point of parse -> unparse
    assert unparse(again) == unparse(spec)


def test_spans_point_into_the_source(spec_path):
    text = spec_path.read_text()
    lines = text.split("\n")
    spec = parse_spec(text, str(spec_path))

    def walk(statements):
        for st_ in statements:
            yield st_
            if isinstance(st_, Repeat):
                yield from walk(st_.body)
            elif isinstance(st_, Branches):
                for b in st_.branches:
                    yield from walk(b)

    for st_ in walk(spec.body):
        span = st_.span
        assert span.filename == str(spec_path)
        assert span.source_line == lines[span.line - 1]
        word = st_.kind if isinstance(st_, Layer) else \
            "repeat" if isinstance(st_, Repeat) else ("residual" if st_.combine == "sum" else "concat")
        assert span.source_line[span.column - 1:].startswith(word)
        if isinstance(st_, Layer):
            for arg in st_.args:
                assert arg.span.line == span.line and arg.span.column > span.column


def test_p4_histology_ast():
    spec = parse_spec((SPEC_PATHS[0].parent / "p4_histology.kc").read_text())
    assert spec.name == "p4_histology"
    assert spec.group == GroupDecl("p4", None, "square", spec.group.span)
    assert spec.input.shape == (32, 32) and spec.input.channels == 3
    assert spec.parameterization == "ntk"
    assert spec.constants == (("ws", math.sqrt(2)),)
    assert layer_kinds(spec.body) == ["lift", "relu", "gconv", "relu", "group_pool", "dense",
                                      "relu", "dense"]
    lift = spec.body[0]
    assert lift.args == (
        Argument("size", 3, lift.args[0].span), Argument("W_std", math.sqrt(2), lift.args[1].span),
        Argument("b_std", 0.05, lift.args[2].span), Argument("padding", Word("same"), lift.args[3].span))
    assert spec.body[-1].args[0].name is None and spec.body[-1].args[0].value == 9


# -- header features ---------------------------------------------------------------------------

def test_comments_hash_and_slashes():
    spec = parse("# a comment\nnetwork n  // trailing\ngroup p4 # here too\n"
                 "input 8 x 8 channels 1\n// whole line\nlift # after a layer\nrelu // and here\n")
    assert spec.name == "n" and layer_kinds(spec.body) == ["lift", "relu"]


def test_semicolons_and_newlines_are_optional():
    one_line = parse("network n group p4 input 8 x 8 channels 1 lift; relu; gconv(3) relu")
    many = parse("network n\ngroup p4\ninput 8 x 8 channels 1\nlift\nrelu\ngconv(3)\nrelu\n")
    assert strip_spans(one_line) == strip_spans(many)
    assert layer_kinds(body("repeat 2 { lift; relu };\nresidual { gconv };")) == [
        ("repeat", 2, ["lift", "relu"]), ("sum", (("gconv",), ()))]


def test_constants_with_expressions():
    spec = parse(P4_HEADER + "let a = sqrt(2)*0.5\nlet b = a * 2 + 1\nlet c = -pi / 4\n"
                 "let d = 2 ** 3\nlet f = e ^ 0\nlift(W_std=a, b_std=b - 1)\n")
    values = dict(spec.constants)
    assert values["a"] == pytest.approx(math.sqrt(2) * 0.5, rel=1e-15)
    assert values["b"] == pytest.approx(math.sqrt(2) + 1, rel=1e-15)
    assert values["c"] == pytest.approx(-math.pi / 4, rel=1e-15)
    assert values["d"] == 8 and values["f"] == 1
    lift = spec.body[0]
    assert lift.args[0].value == pytest.approx(math.sqrt(2) / 2, rel=1e-15)
    assert lift.args[1].value == pytest.approx(math.sqrt(2), rel=1e-15)
    assert isinstance(lift.args[0].value, float)
    roundtrip(spec)


def test_integer_expressions_stay_integers():
    (dense,) = body("dense(2 * 5)")
    assert dense.args[0].value == 10 and isinstance(dense.args[0].value, int)
    (dense,) = body("dense(-3)")
    assert dense.args[0].value == -3


@given(st.floats(min_value=1e-300, max_value=1e300, allow_nan=False, allow_infinity=False))
@settings(max_examples=150, deadline=None)
def test_float_literals_are_the_nearest_double(value):
    (lift,) = body(f"lift(W_std={value!r})")
    assert lift.args[0].value == value


def test_parameterization_and_default_name():
    spec = parse_spec("group p4\ninput 8 x 8 channels 1\nparameterization standard\nlift\n",
                      "specs/my_net.kc")
    assert spec.parameterization == "standard" and spec.name == "my_net"
    assert parse_spec("group p4\ninput 8 x 8 channels 1\nlift\n").name == "network"
    roundtrip(spec)


def test_user_group_with_generators():
    spec = parse("group c2v = generators [[-1,0],[0,1]], [[1,0],[0,-1]]\n"
                 "input 10 x 14 channels 1\nlift\n")
    g = spec.group
    assert (g.name, g.lattice, g.dim) == ("c2v", "square", 2)
    assert g.generators == (((-1, 0), (0, 1)), ((1, 0), (0, -1)))
    roundtrip(spec)


def test_user_group_on_the_hexagonal_lattice():
    spec = parse("group h6 = hexagonal generators [[0,-1],[1,1]]\ninput 9 x 9 channels 1\nlift\n")
    assert spec.group.lattice == "hexagonal" and spec.group.generators == (((0, -1), (1, 1)),)
    assert parse("group s = square generators [[0,-1],[1,0]]\ninput 9 x 9 channels 1\nlift\n"
                 ).group.lattice == "square"
    roundtrip(spec)


def test_trivial_user_group_and_3d_input():
    spec = parse("group Z4d = trivial 3\ninput 4 x 5 x 6 channels 2\nconv(3)\n")
    assert spec.group == GroupDecl("Z4d", (), "square", spec.group.span, 3)
    assert spec.input == InputDecl((4, 5, 6), 2, spec.input.span)
    roundtrip(spec)


def test_one_to_four_axis_inputs():
    for dims in ([7], [7, 8], [3, 4, 5], [2, 3, 4, 5]):
        spec = parse("group Z = trivial %d\ninput %s channels 1\nconv\n"
                     % (len(dims), " x ".join(map(str, dims))))
        assert spec.input.shape == tuple(dims)
    with pytest.raises(SpecError, match="5 spatial axes"):
        parse("group Z2\ninput 2 x 2 x 2 x 2 x 2 channels 1\nconv\n")


# -- statements -------------------------------------------------------------------------------

def test_repeat_block():
    (rep,) = body("repeat 3 {\n  gconv(size=3)\n  relu\n}")
    assert isinstance(rep, Repeat) and rep.count == 3
    assert layer_kinds(rep.body) == ["gconv", "relu"]
    assert layer_kinds(body("repeat 2 { repeat 2 { relu } gconv }")) == [
        ("repeat", 2, [("repeat", 2, ["relu"]), "gconv"])]


def test_residual_without_branches_is_body_plus_identity():
    (res,) = body("residual { gconv relu gconv }")
    assert isinstance(res, Branches) and res.combine == "sum"
    assert len(res.branches) == 2 and res.branches[1] == ()
    assert layer_kinds(res.branches[0]) == ["gconv", "relu", "gconv"]


def test_residual_with_branches():
    (res,) = body("residual {\n  branch { gconv }\n  branch { gconv(size=1) relu gconv }\n}")
    assert res.combine == "sum"
    assert layer_kinds(res.branches[0]) == ["gconv"]
    assert layer_kinds(res.branches[1]) == ["gconv", "relu", "gconv"]
    (empty,) = body("residual { branch { gconv } branch { } }")
    (plain,) = body("residual { gconv }")
    assert strip_spans(empty) == strip_spans(plain)


def test_concat_block():
    (cat,) = body("concat {\n  branch { gconv(width=2) }\n  branch { gconv(width=3) relu }\n"
                  "  branch { }\n}")
    assert cat.combine == "concat" and len(cat.branches) == 3
    assert layer_kinds(cat.branches[2]) == []
    with pytest.raises(SpecError, match="at least two branches"):
        body("concat { branch { gconv } }")


def test_positional_arguments():
    dense, gconv, lift = body("dense(10)\ngconv(3)\nlift(5, W_std=2)")
    assert dense.args == (Argument(None, 10, dense.args[0].span),)
    assert gconv.args[0].name is None and gconv.args[0].value == 3
    assert [(a.name, a.value) for a in lift.args] == [(None, 5), ("W_std", 2)]


def test_values_words_lists_tuples():
    (layer,) = body("gconv(padding=valid, rotations=[0, 2], support=[(0,0), (1,0), (-1, 0)])")
    hp = {a.name: a.value for a in layer.args}
    assert hp["padding"] == Word("valid")
    assert hp["rotations"] == (0, 2)
    assert hp["support"] == ((0, 0), (1, 0), (-1, 0))
    (layer,) = body("gconv(rotations=[], support=[[0,0]])")
    assert layer.args[0].value == () and layer.args[1].value == ((0, 0),)


def test_bare_layers_and_empty_parentheses():
    a = body("relu\ngroup_pool")
    b = body("relu()\ngroup_pool()")
    assert strip_spans(a) == strip_spans(b)
    assert all(layer.args == () for layer in a)


def test_phi_keeps_a_sympy_expression():
    (_, phi) = body("lift\nphi(x * sigmoid(x), degree=24)")
    expr = phi.args[0].value
    assert isinstance(expr, sympy.Expr) and expr.free_symbols == {X}
    assert sympy.simplify(expr - X / (1 + sympy.exp(-X))) == 0
    assert phi.args[1] == Argument("degree", 24, phi.args[1].span)
    assert unparse_expr(expr) in ("x/(exp(-x) + 1)", "x/(1 + exp(-x))")


def test_phi_expression_syntax():
    cases = {
        "x**2 - x/2": X**2 - X / 2,
        "x^3": X**3,
        "-x**2": -(X**2),
        "abs(x) + max(x, 0) + min(x, 0)": sympy.Abs(X) + sympy.Max(X, 0) + sympy.Min(X, 0),
        "tanh(x) * e": sympy.tanh(X) * sympy.E,
        "sin(pi * x)": sympy.sin(sympy.pi * X),
        "softplus(x)": sympy.log(1 + sympy.exp(X)),
        "erf(x / sqrt(2))": sympy.erf(X / sympy.sqrt(2)),
    }
    for text, expected in cases.items():
        (_, phi) = body(f"lift\nphi({text})")
        assert phi.args[0].value == expected, text


def test_x_is_only_a_variable_inside_positional_arguments():
    with pytest.raises(SpecError, match="unknown name 'x'") as info:
        body("lift(W_std=x)")
    assert "only allowed inside phi" in info.value.suggestion


def test_roundtrip_of_a_spec_using_every_construct():
    text = """
network everything  // a comment
group c2v = generators [[-1, 0], [0, 1]], [[1, 0], [0, -1]]
input 10 x 14 channels 3
parameterization standard
let ws = sqrt(2) * 0.5
let depth = 2

lift(3, W_std=ws, b_std=0.1, padding=same, width=4)
leaky_relu(0.2); relu
repeat 2 {
  residual { gconv(size=3, W_std=ws) relu gconv(1, rotations=[0, 1]) }
  residual {
    branch { gconv(support=[(0,0), (1,0), (-1,0), (0,1), (0,-1)]) }
    branch { gconv(3, rotations=identity) }
  }
}
concat {
  branch { gconv(width=2) }
  branch { }
  branch { gconv(padding=circular) erf }
}
phi(x * sigmoid(x) + 0.25 * x**2, degree=24)
poly(0, 1, 0.5)
avg_pool
group_pool
dense(16, W_std=1.5)
gelu
dense(1)
"""
    spec = parse(text)
    assert spec.name == "everything" and spec.parameterization == "standard"
    again = roundtrip(spec)
    assert unparse(again) == unparse(spec)


def test_unparse_output_is_readable():
    spec = parse(P4_HEADER + "lift(W_std=1.5)\nrepeat 2 { residual { gconv relu } }\n"
                 "concat { branch { gconv } branch { } }\ngroup_pool\ndense(10)\n")
    assert unparse(spec) == (
        "network t\ngroup p4\ninput 8 x 8 channels 1\nparameterization ntk\n\n"
        "lift(W_std=1.5)\n"
        "repeat 2 {\n  residual {\n    gconv\n    relu\n  }\n}\n"
        "concat {\n  branch {\n    gconv\n  }\n  branch {\n  }\n}\n"
        "group_pool\ndense(10)\n")


# -- generated round trips -----------------------------------------------------------------------

_NUMBER = st.one_of(st.integers(-50, 50),
                    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
_VALUE = st.recursive(
    st.one_of(_NUMBER, st.sampled_from([Word("same"), Word("valid"), Word("all")])),
    lambda inner: st.lists(inner, max_size=3).map(tuple), max_leaves=6)
_ARGS = st.lists(st.tuples(st.sampled_from([None, "size", "W_std", "padding", "support"]),
                           _VALUE), max_size=3)
_LAYER = st.tuples(st.sampled_from(["lift", "gconv", "relu", "dense", "my_layer"]), _ARGS).map(
    lambda t: Layer(t[0], tuple(Argument(n, v, None) for n, v in t[1]), None))


def _statement(children):
    return st.one_of(
        st.tuples(st.integers(1, 4), children).map(lambda t: Repeat(t[0], tuple(t[1]), None)),
        st.lists(children, min_size=1, max_size=3).map(
            lambda bs: Branches("sum", tuple(tuple(b) for b in bs), None)),
        st.lists(children, min_size=2, max_size=3).map(
            lambda bs: Branches("concat", tuple(tuple(b) for b in bs), None)))


_BODY = st.recursive(st.lists(_LAYER, max_size=3),
                     lambda children: st.lists(st.one_of(_LAYER, _statement(children)),
                                               min_size=1, max_size=3),
                     max_leaves=10).filter(bool)


@given(_BODY, st.sampled_from([GroupDecl("p4", None, "square", None),
                               GroupDecl("Z3d", (), "square", None, 3),
                               GroupDecl("h", (((0, -1), (1, 1)),), "hexagonal", None, 2)]),
       st.lists(st.floats(-10, 10, allow_nan=False), max_size=2))
@settings(max_examples=150, deadline=None)
def test_generated_asts_round_trip(statements, group, constants):
    spec = Spec(name="gen", group=group, input=InputDecl((5, 6), 2, None),
                parameterization="ntk",
                constants=tuple((f"c{i}", v) for i, v in enumerate(constants)),
                body=tuple(statements))
    assert strip_spans(parse(unparse(spec))) == strip_spans(spec)


P4_TEXT = next(p for p in SPEC_PATHS if p.name == "p4_histology.kc").read_text()


@pytest.fixture
def fresh_parser():
    """parser._lark built anew inside the test, and anew again after it (it is lru-cached)."""
    parser._lark.cache_clear()
    yield
    parser._lark.cache_clear()


def test_the_built_parser_is_kept_in_the_users_cache_folder(tmp_path, monkeypatch, fresh_parser):
    monkeypatch.setenv("KERNELC_CACHE_DIR", str(tmp_path / "kc"))
    assert parser.parser_cache_dir() == tmp_path / "kc"
    first = parse_spec(P4_TEXT)
    (cached,) = (tmp_path / "kc").glob("parser-*.cache")
    assert cached.read_bytes().split(b"\n", 1)[0]  # lark's digest of the grammar heads it
    parser._lark.cache_clear()
    assert parse_spec(P4_TEXT) == first  # the second process's parser: loaded from the file
    # a damaged file is rebuilt, not trusted
    cached.write_bytes(b"not lark's\n")
    parser._lark.cache_clear()
    assert parse_spec(P4_TEXT) == first
    assert cached.read_bytes().split(b"\n", 1)[0] != b"not lark's"


def test_no_cache_where_the_folder_cannot_be_made(tmp_path, monkeypatch, fresh_parser):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("KERNELC_CACHE_DIR", str(blocker / "kc"))
    assert parser.parser_cache_dir() is None
    assert parse_spec(P4_TEXT).name == "p4_histology"


def test_the_printer_refuses_what_has_no_spec_syntax():
    """A Spec built by hand (not by the parser) may hold values the language cannot write."""
    from kernelc.frontend.unparse import unparse_value
    with pytest.raises(TypeError, match="^booleans have no spec syntax$"):
        unparse_value(True)
    spec = parse(P4_HEADER + "lift\n")
    bad = dataclasses.replace(spec, body=spec.body + ("relu",))
    with pytest.raises(TypeError, match=r"^not a statement: 'relu'$"):
        unparse(bad)
