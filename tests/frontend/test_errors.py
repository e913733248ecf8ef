"""Every kind of spec error: class, message, line AND column, and the suggestion where there is one.

The small specs below start with a three-line p4 header, so the first layer is on line 4.
"""
from __future__ import annotations

import pytest

from kernelc.errors import (GroupError, KernelcError, ShapeError, SourceSpan, SpecError,
                            SpecSyntaxError)
from kernelc.frontend import check

from .conftest import P4_HEADER as H


def error_of(text: str, cls=KernelcError) -> KernelcError:
    with pytest.raises(KernelcError) as info:
        check(text)
    err = info.value
    assert type(err) is cls, f"{type(err).__name__}: {err}"
    return err


def assert_error(text, cls, message, line, column, *, suggestion=None, length=None,
                 in_message=False):
    """``check(text)`` raises exactly ``cls`` with this message (or a part of it), at line:column."""
    err = error_of(text, cls)
    if in_message:
        assert message in err.message, err.message
    else:
        assert err.message == message, err.message
    assert err.span is not None, "the error has no span"
    assert (err.span.line, err.span.column) == (line, column), str(err)
    assert err.span.source_line == text.split("\n")[line - 1]
    if length is not None:
        assert err.span.length == length
    if suggestion is None:
        assert err.suggestion is None, err.suggestion
    else:
        assert err.suggestion == suggestion, err.suggestion
    # the rendering: location, kind, message, then the source line and a caret under the span
    rendered = str(err).split("\n")
    assert rendered[0] == f"<spec>:{line}:{column}: {cls.kind}: {err.message}"
    assert rendered[1] == "    " + err.span.source_line
    assert rendered[2] == "    " + " " * (column - 1) + "^" * err.span.length
    if suggestion:
        assert rendered[-1] == suggestion
    return err


# -- syntax errors --------------------------------------------------------------------------------

def test_unclosed_brace():
    text = H + "lift\nrepeat 2 {\n  gconv(size=3)\n"
    err = assert_error(text, SpecSyntaxError, "unexpected end of file", 6, 16,
                       suggestion="a '{' block is not closed")
    assert "'}'" in err.expected
    assert "expected one of: " in str(err) and "'}'" in str(err)


def test_unclosed_branch_brace():
    text = H + "lift\nconcat {\n  branch { gconv }\n  branch { gconv\n}\n"
    assert_error(text, SpecSyntaxError, "unexpected end of file", 8, 2,
                 suggestion="a '{' block is not closed")


def test_missing_close_parenthesis():
    err = assert_error(H + "lift(size=3\nrelu\n", SpecSyntaxError, "unexpected 'relu'", 5, 1,
                       length=4)
    assert set(err.expected) == {"')'", "','"}
    err = assert_error(H + "lift(size=3", SpecSyntaxError, "unexpected end of file", 4, 12)
    assert "')'" in err.expected


def test_stray_character():
    assert_error(H + "lift(size=3) @\nrelu\n", SpecSyntaxError, "unexpected character '@'",
                 4, 14, length=1)
    assert_error(H + "lift(size=3, W_std=1.4$)\n", SpecSyntaxError,
                 "unexpected character '$'", 4, 23)


def test_misspelt_keyword_channels():
    err = assert_error("network t\ngroup p4\ninput 8 x 8 chanels 1\nlift\n", SpecSyntaxError,
                       "unexpected 'chanels'", 3, 13, length=7,
                       suggestion="did you mean 'channels'?")
    assert "'channels'" in err.expected and "'x'" in err.expected
    assert str(err) == (
        "<spec>:3:13: syntax error: unexpected 'chanels'\n"
        "    input 8 x 8 chanels 1\n"
        "                ^^^^^^^\n"
        "expected one of: 'channels', 'x'\n"
        "did you mean 'channels'?")


def test_misspelt_keyword_generators():
    assert_error("group g = genrators [[1,0],[0,1]]\ninput 8 x 8 channels 1\nlift\n",
                 SpecSyntaxError, "unexpected 'genrators'", 1, 11,
                 suggestion="did you mean 'generators'?")


def test_syntax_error_in_a_file_names_the_file(tmp_path):
    path = tmp_path / "bad.kc"
    path.write_text(H + "lift(\n")
    with pytest.raises(SpecSyntaxError) as info:
        check(str(path))
    assert info.value.span.filename == str(path)
    assert str(info.value).startswith(f"{path}:4:6: syntax error: unexpected end of file")


# -- names: layers, groups, hyperparameters, constants --------------------------------------------

def test_unknown_layer_suggests_gconv():
    text = H + "lift\ngcnov(size=3)\n"
    err = assert_error(text, SpecError, "unknown layer 'gcnov'", 5, 1, length=13,
                       suggestion="did you mean 'gconv' or 'conv'?")
    assert {"gconv", "lift", "relu", "dense", "group_pool"} <= set(err.expected)
    lines = str(err).split("\n")
    assert lines[3].startswith("expected one of: ")
    listed = " ".join(lines[3:-1])  # the whole list, wrapped, never cut off with "..."
    assert "..." not in listed and all(name in listed for name in err.expected)


def test_unknown_layer_without_a_close_name():
    assert_error(H + "lift\nzzzzzz\n", SpecError, "unknown layer 'zzzzzz'", 5, 1)


@pytest.mark.parametrize("name,suggestion", [
    ("p5", None), ("p4n", "did you mean 'p4' or 'p4m'?"), ("p6m", "did you mean 'p6' or 'p4m'?")])
def test_unknown_group(name, suggestion):
    text = f"network t\ngroup {name}\ninput 8 x 8 channels 1\nlift\n"
    err = assert_error(text, SpecError, f"unknown group '{name}'", 2, 1, suggestion=suggestion)
    assert set(err.expected) == {"O", "SO3", "Z2", "Z3", "p2", "p4", "p4m", "p6", "C8", "D8", "C16",
                                 "D16"}


def test_unknown_hyperparameter():
    err = assert_error(H + "lift(size=3, W_sdt=1.0)\n", SpecError,
                       "'lift' has no hyperparameter 'W_sdt'", 4, 14, length=9,
                       suggestion="did you mean 'W_std' or 'b_std'?")
    assert set(err.expected) == {"size", "support", "W_std", "b_std", "padding", "width"}
    assert_error(H + "lift\nrelu(degre=8)\n", SpecError, "'relu' has no hyperparameter 'degre': "
                 "it takes no arguments, and optionally degree= (Gauss–Hermite points per axis)",
                 5, 6, suggestion="did you mean 'degree'?")


def test_duplicate_hyperparameter():
    assert_error(H + "lift(size=3, size=5)\n", SpecError, "hyperparameter 'size' given twice",
                 4, 14, length=6)
    # a positional argument fills 'size' too
    assert_error(H + "lift\ngconv(3, size=5)\n", SpecError, "hyperparameter 'size' given twice",
                 5, 10)


def test_too_many_positional_arguments():
    assert_error(H + "lift\ngroup_pool\ndense(1, 2)\n", SpecError,
                 "'dense' takes 1 positional argument(s); name the others", 6, 10)
    assert_error(H + "lift(W_std=1, 3)\n", SpecError,
                 "'lift' takes 1 positional argument(s); name the others", 4, 15)


def test_bad_padding_value_suggests_same():
    err = assert_error(H + "lift(size=3, padding=sam)\n", SpecError,
                       "bad value for 'padding' of 'lift': expected same, valid or circular",
                       4, 14, suggestion="did you mean 'same'?")
    assert err.expected == ["circular", "same", "valid"]


def test_bad_values():
    assert_error(H + "lift(size=-3)\n", SpecError,
                 "bad value for 'size' of 'lift': expected a positive integer", 4, 6)
    assert_error(H + "lift(size=2.5)\n", SpecError,
                 "bad value for 'size' of 'lift': expected a positive integer", 4, 6)
    assert_error(H + "lift(W_std=-1)\n", SpecError,
                 "bad value for 'W_std' of 'lift': expected a number ≥ 0", 4, 6)
    assert_error(H + "lift(b_std=same)\n", SpecError,
                 "unknown name 'same': 'b_std' of 'lift' takes a number or a name defined with "
                 "'let' (defined names: pi, e)", 4, 6, suggestion="define it first: let same = ...")
    assert_error(H + "lift\ngconv(rotations=al)\n", SpecError,
                 "bad value for 'rotations' of 'gconv': expected 'all', 'identity' or a list of "
                 "element indices (see `kernelc groups`)", 5, 7, suggestion="did you mean 'all'?")
    assert_error(H + "lift(support=[(0,0),(0,0)])\n", SpecError,
                 "bad value for 'support' of 'lift': the support lists an offset twice", 4, 6)
    assert_error(H + "lift\ngconv(rotations=[0, 7])\n", ShapeError,
                 "rotation index 7 is out of range: p4 has 4 elements (0..3)", 5, 1)
    assert_error(H + "lift\nphi(x**2, degree=1)\n", SpecError,
                 "'degree' (Gauss–Hermite points per axis) must be an integer in 2..200", 5, 11)
    assert_error("network t\ngroup p4\ninput 8 x 8 channels 1\nparameterization ntx\nlift\n",
                 SpecError, "unknown parameterization 'ntx'", 4, 18,
                 suggestion="did you mean 'ntk'?")


def test_unknown_constant_in_an_expression():
    assert_error(H + "let a = sqrt(2)*wz\nlift\n", SpecError,
                 "unknown name 'wz' in an expression", 4, 17, length=2)
    assert_error(H + "let ws = sqrt(2)\nlift(W_std=2*wss)\n", SpecError,
                 "unknown name 'wss' in an expression", 5, 14, suggestion="did you mean 'ws'?")
    assert_error(H + "lift(W_std=sqr(2))\n", SpecError, "unknown function 'sqr'", 4, 12,
                 suggestion="did you mean 'sqrt'?")


def test_expression_errors():
    assert_error(H + "let a = 1/(2-2)\nlift\n", SpecError, "division by zero", 4, 9)
    assert_error(H + "lift(W_std=sqrt(-1))\n", SpecError,
                 "expression does not evaluate to a finite real number", 4, 12)
    # sqrt(a, b) used to pass b as sympy's 'evaluate' flag; max() used to be -oo
    assert_error(H + "lift(W_std=sqrt(1, 2))\n", SpecError,
                 "wrong number of arguments to 'sqrt'", 4, 12)
    assert_error(H + "lift(W_std=max())\n", SpecError, "wrong number of arguments to 'max'", 4, 12)
    assert_error(H + "lift(W_std=max(1, sqrt(-1)))\n", SpecError,
                 "invalid arguments to 'max': The argument 'I' is not comparable.", 4, 12)
    assert_error(H + "lift(W_std=exp(-exp(10**300)))\n", SpecError,  # sympy's evalf gives up
                 "expression does not evaluate to a number", 4, 12)
    assert_error(H + "let a = [1, 2]\nlift\n", SpecError, "constant 'a' must be a number", 4, 9)
    assert_error(H + "let a = 1\nlet a = 2\nlift\n", SpecError,
                 "constant 'a' is defined twice", 5, 5)
    assert_error(H + "lift\nphi(y * x)\n", SpecError, "unknown name 'y' in an expression", 5, 5)
    assert_error(H + "lift\nrelu(x)\n", SpecError,
                 "'relu' takes numbers; use phi(...) for an expression in x", 5, 1)


# -- typing: domains ------------------------------------------------------------------------------

def test_gconv_before_any_lift():
    assert_error(H + "gconv(size=3)\n", ShapeError,
                 "'gconv' before any 'lift': the signal is still on the input box", 4, 1,
                 length=13, suggestion="start the group part with lift(...)")


def test_lift_of_a_signal_already_on_the_group():
    assert_error(H + "lift\nrelu\nlift(size=3)\n", ShapeError,
                 "'lift' on a signal that is already on G; use 'gconv' here", 6, 1)


def test_dense_on_group_features():
    assert_error(H + "lift\nrelu\ndense(10)\n", ShapeError,
                 "'dense' needs an invariant vector, but gets the group G", 6, 1,
                 suggestion="add group_pool (invariant) or flatten before dense")
    assert_error("group Z2\ninput 8 x 8 channels 1\nconv\ndense(10)\n", ShapeError,
                 "'dense' needs an invariant vector, but gets the input box (Z^d)", 4, 1,
                 suggestion="add group_pool (invariant) or flatten before dense")


def test_group_pool_on_a_box_signal():
    assert_error(H + "group_pool\n", ShapeError,
                 "'group_pool' needs a signal on G, but gets the input box (Z^d)", 4, 1,
                 suggestion="group_pool follows lift/gconv layers")


def test_other_domain_errors():
    assert_error(H + "lift\nconv\n", ShapeError,
                 "'conv' is the plain convolution on the box; on G use 'gconv'", 5, 1)
    assert_error(H + "lift\ngroup_pool\navg_pool\n", ShapeError,
                 "'avg_pool' needs a spatial signal, but gets an invariant vector", 6, 1)
    assert_error(H + "lift\ngroup_pool\nflatten\n", ShapeError,
                 "'flatten' of a vector does nothing; remove it", 6, 1)
    assert_error("network t\ngroup p4\ninput 8 x 8 x 8 channels 1\nlift\n", ShapeError,
                 "group p4 acts on Z^2, but the input box has 3 axes", 3, 1)


# -- typing: symmetry -----------------------------------------------------------------------------

def test_even_filter_size_with_p4():
    assert_error(H + "lift(size=4)\n", ShapeError,
                 "even filter size 4 cannot be invariant under p4; use an odd size", 4, 1,
                 length=12)
    # with the trivial group an even filter is fine
    check("group Z2\ninput 8 x 8 channels 1\nconv(size=4)\n")


def test_non_square_box_with_p4():
    err = assert_error("network t\ngroup p4\ninput 8 x 10 channels 1\nlift\n", ShapeError,
                       "the 8 x 10 box is not invariant under p4", 3, 1, in_message=True)
    assert "use a square box" in err.message
    # c2v (reflections only) does accept a rectangle
    check("group c2v = generators [[-1,0],[0,1]], [[1,0],[0,-1]]\ninput 8 x 10 channels 1\nlift\n")


def test_hexagonal_box_must_be_odd_and_square():
    assert_error("group p6\ninput 8 x 8 channels 1\nlift\n", ShapeError,
                 "a hexagonal domain for p6 needs an odd square box (n x n, n odd), got 8 x 8",
                 2, 1)


def test_explicit_support_not_invariant():
    text = H + "lift(support=[(0,0),(1,0)])\n"
    err = assert_error(text, ShapeError, "the filter support is not invariant under the point "
                       "group of p4; (R) and equivariance need ρ(h)S = S", 4, 1,
                       suggestion="use an odd, centred size=k or a symmetric support")
    assert err.span.length == len("lift(support=[(0,0),(1,0)])")
    # on gconv too, and for p4m a C4-invariant but not mirror-invariant support
    assert_error(H + "lift\ngconv(support=[(0,0),(1,0)])\n", ShapeError,
                 "the filter support is not invariant", 5, 1, in_message=True,
                 suggestion="use an odd, centred size=k or a symmetric support")
    pinwheel = "[(0,0),(1,0),(0,1),(-1,0),(0,-1),(2,1),(-1,2),(-2,-1),(1,-2)]"
    check(H + f"lift(support={pinwheel})\n")  # C4-invariant
    assert_error(f"group p4m\ninput 8 x 8 channels 1\nlift(support={pinwheel})\n", ShapeError,
                 "the filter support is not invariant under the point group of p4m", 3, 1,
                 in_message=True, suggestion="use an odd, centred size=k or a symmetric support")


def test_invariant_explicit_support_is_accepted():
    tg = check(H + "lift(support=[(0,0),(1,0),(0,1),(-1,0),(0,-1)])\n")
    lift = tg.node("n001")
    assert sorted(map(tuple, lift.hp["support"].tolist())) == [
        (-1, 0), (0, -1), (0, 0), (0, 1), (1, 0)]


def test_support_with_the_wrong_dimension():
    assert_error(H + "lift(support=[(0,0,0)])\n", ShapeError,
                 "support offsets have 3 coordinates, the domain has 2", 4, 1)


def test_valid_padding_errors():
    assert_error("network t\ngroup p4\ninput 3 x 3 channels 1\nlift(size=5, padding=valid)\n",
                 ShapeError, "valid padding shrinks the 3×3 box to nothing", 4, 1)
    assert_error("group p6\ninput 9 x 9 channels 1\nlift(padding=valid)\n", ShapeError,
                 "valid padding is not supported on hexagonal domains; use same", 3, 1)


# -- typing: blocks -------------------------------------------------------------------------------

def test_concat_branches_of_different_shapes():
    text = H + "lift\nconcat {\n  branch { gconv(size=3, padding=valid) }\n  branch { gconv(size=3) }\n}\n"
    assert_error(text, ShapeError, "the branches of this concat block disagree: "
                 "G (|H|=4) on box 6×6 ×∞ vs G (|H|=4) on box 8×8 ×∞", 5, 1)


def test_residual_branches_of_different_shapes():
    text = H + "lift\nresidual {\n  gconv(size=3, padding=valid)\n}\n"
    assert_error(text, ShapeError, "the branches of this sum block disagree: "
                 "G (|H|=4) on box 6×6 ×∞ vs G (|H|=4) on box 8×8 ×∞", 5, 1)
    text = H + "lift\nresidual {\n  branch { gconv }\n  branch { group_pool }\n}\n"
    assert_error(text, ShapeError, "the branches of this sum block disagree: "
                 "G (|H|=4) on box 8×8 ×∞ vs vector[∞]", 5, 1)


def test_residual_with_two_non_parametric_branches():
    message = ("at most one branch of a residual block may end without a weight layer "
               "(lift/gconv/conv/dense); otherwise the branches are correlated and the kernel "
               "is not the sum of branch kernels")
    assert_error(H + "lift\nresidual {\n  branch { relu }\n  branch { }\n}\n", ShapeError,
                 message, 5, 1)
    assert_error(H + "lift\nresidual { gconv relu }\n", ShapeError, message, 5, 1)
    assert_error(H + "lift\nresidual { }\n", ShapeError, message, 5, 1)
    check(H + "lift\nresidual { branch { gconv } branch { relu } }\n")


def test_concat_needs_two_branches():
    assert_error(H + "lift\nconcat { branch { gconv } }\n", SpecError,
                 "concat needs at least two branches", 5, 1)


def test_repeat_needs_a_positive_count():
    assert_error(H + "repeat 0 { lift }\n", SpecError, "repeat needs a count of at least 1", 4, 8)


# -- groups ---------------------------------------------------------------------------------------

def test_group_closure_exceeding_1000_elements():
    text = "network t\ngroup big = generators [[1,1],[0,1]]\ninput 8 x 8 channels 1\nlift\n"
    assert_error(text, GroupError, "group 'big': closure exceeds 1000 elements; the generators "
                 "must generate a finite group (rotations/reflections of the lattice)", 2, 1,
                 length=len("group big = generators [[1,1],[0,1]]"))


def test_non_integer_generator():
    text = "group g = generators [[0.5,0],[0,1]]\ninput 8 x 8 channels 1\nlift\n"
    assert_error(text, GroupError, "group 'g': generator entries must be integers, got 0.5; "
                 "point-group matrices act on Z^d", 1, 24, length=3)


def test_generator_with_determinant_not_one():
    text = "group g = generators [[2,0],[0,1]]\ninput 8 x 8 channels 1\nlift\n"
    assert_error(text, GroupError, "group 'g': generator 1 [[2,0],[0,1]] has determinant 2; it "
                 "must be ±1 so that its inverse is an integer matrix", 1, 1)
    text = "group g = generators [[0,-1],[1,0]], [[1,1],[1,1]]\ninput 8 x 8 channels 1\nlift\n"
    assert_error(text, GroupError, "group 'g': generator 2 [[1,1],[1,1]] has determinant 0",
                 1, 1, in_message=True)


def test_generator_shapes():
    assert_error("group g = generators [[1,0],[0,1]], [[1]]\ninput 8 x 8 channels 1\nlift\n",
                 GroupError, "group 'g': generator 2 has shape 1 x 1; expected 2 x 2", 1, 1)
    assert_error("group g = hexagonal generators [[1,0,0],[0,1,0],[0,0,1]]\n"
                 "input 8 x 8 x 8 channels 1\nlift\n", GroupError,
                 "group 'g': a hexagonal lattice is 2-dimensional, got dim 3", 1, 1)
    assert_error("group g = generators [[-1]]\ninput 9 x 9 channels 1\nlift\n", ShapeError,
                 "group g acts on Z^1, but the input box has 2 axes", 2, 1)


def test_trivial_group_dimension():
    assert_error("group Z = trivial 5\ninput 8 channels 1\nconv\n", SpecError,
                 "a trivial group needs dimension 1..4, got 5", 1, 1)


# -- declarations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("first,second,key", [
    ("group p4", "group p4m", "group"),
    ("group p4", "group g = trivial 2", "group"),
    ("input 8 x 8 channels 1", "input 9 x 9 channels 1", "input"),
    ("input 8 x 8 channels 1", "input sphere bandlimit 4 channels 1", "input"),
    ("network a", "network b", "network"),
    ("parameterization ntk", "parameterization standard", "parameterization"),
])
def test_declared_twice(first, second, key):
    base = {"group": "group p4", "input": "input 8 x 8 channels 1"}
    lines = [first, second] + [v for k, v in base.items() if k != key]
    text = "\n".join(lines) + "\nlift\n"
    assert_error(text, SpecError, f"'{key}' is declared twice "
                 "(first at line 1)", 2, 1)


def test_missing_group():
    assert_error("network t\ninput 8 x 8 channels 1\nlift\n", SpecError,
                 "the spec declares no group (add e.g. 'group p4' or 'group Z2')", 1, 1,
                 suggestion="every spec starts with: network NAME / group G / input H x W channels C")


def test_missing_input():
    assert_error("network t\ngroup p4\nlift\n", SpecError,
                 "the spec declares no input (add e.g. 'input 32 x 32 channels 3')", 1, 1)


def test_missing_layers():
    assert_error("network t\ngroup p4\ninput 8 x 8 channels 1\n", SpecError,
                 "the spec has no layers", 1, 1)
    err = error_of("", SpecError)
    assert err.message.startswith("the spec declares no group")


def test_input_sizes():
    assert_error("group p4\ninput 0 x 8 channels 1\nlift\n", SpecError,
                 "input sizes and channels must be positive", 2, 1)
    assert_error("group p4\ninput 1024 x 1024 channels 1\nlift\n", SpecError,
                 "the input box has 1048576 sites; at most 262144 are supported", 2, 1)


def test_header_after_layers_is_an_error():
    err = error_of(H + "lift\nlet a = 2\n", SpecSyntaxError)
    assert (err.span.line, err.span.column) == (5, 7)


# -- the error objects ---------------------------------------------------------------------------

def test_every_error_class_is_a_kernelc_error():
    for cls in (SpecSyntaxError, SpecError, ShapeError, GroupError):
        assert issubclass(cls, KernelcError)
    assert issubclass(ShapeError, SpecError)


def test_render_without_span_or_source():
    assert str(SpecError("boom")) == "error: boom"
    err = ShapeError("bad", SourceSpan(2, 3, 2, "f.kc"), expected=["b", "a", "a"],
                     suggestion="did you mean 'a'?")
    assert err.expected == ["a", "b"]
    assert str(err) == "f.kc:2:3: type error: bad\nexpected one of: a, b\ndid you mean 'a'?"


def test_valid_padding_with_off_centre_support_is_refused():
    from kernelc.errors import ShapeError
    from kernelc.frontend import check
    spec = "group Z2\ninput 5 x 5 channels 1\nconv(support=[(1,0),(1,1)], padding=valid)\nflatten\ndense(1)"
    with pytest.raises(ShapeError, match="valid padding needs a support whose bounding box "
                                         "contains the offset 0") as info:
        check(spec)
    assert info.value.span.line == 3


# -- windowed avg_pool(size=, stride=) ------------------------------------------------------------

def test_windowed_avg_pool_bad_values():
    """size and stride are positive integers; the error points at the argument."""
    for arg, col, name in (("size=0", 10, "size"), ("size=1.5", 10, "size"), ("0", 10, "size"),
                           ("size=2, stride=0", 18, "stride"),
                           ("size=2, stride=-1", 18, "stride"),
                           ("size=2, stride=1.5", 18, "stride")):
        assert_error(H + f"lift\navg_pool({arg})\n", SpecError,
                     f"bad value for '{name}' of 'avg_pool': expected a positive integer", 5, col)


def test_windowed_avg_pool_window_larger_than_the_box():
    assert_error("network t\ngroup Z2\ninput 4 x 6 channels 1\nconv\navg_pool(size=5)\n",
                 ShapeError, "the window size=5 does not fit the 4×6 box (n = 4 on axis 0; "
                 "windows are not padded)", 5, 1, suggestion="use size ≤ 4")
    # after a global pool the box has one site
    assert_error(H + "lift\navg_pool\navg_pool(2)\n", ShapeError,
                 "the window size=2 does not fit the 1×1 box (n = 1 on axis 0; windows are not "
                 "padded)", 6, 1, suggestion="use size ≤ 1")


def test_windowed_avg_pool_stride_without_size():
    assert_error(H + "lift\navg_pool(stride=2)\n", SpecError,
                 "'avg_pool' with stride= needs a window size=; without size= it is the global "
                 "mean over all positions", 5, 1, suggestion="avg_pool(size=2, stride=2)")


def test_windowed_avg_pool_on_a_vector():
    assert_error(H + "lift\ngroup_pool\navg_pool(size=2)\n", ShapeError,
                 "'avg_pool' needs a spatial signal, but gets an invariant vector", 6, 1)


def test_windowed_avg_pool_on_the_hexagonal_lattice():
    assert_error("network t\ngroup p6\ninput 5 x 5 channels 1\nlift\navg_pool(size=2)\n",
                 ShapeError, "windowed 'avg_pool' (size=) needs a square lattice; p6 lives on "
                 "the hexagonal lattice, whose domain has no square windows", 5, 1,
                 suggestion="use the global avg_pool (no size=) or group_pool")


def test_windowed_avg_pool_on_so3():
    """The SO(3) family has no spatial grid to window: its layer table has no avg_pool."""
    err = assert_error("network t\ngroup SO3\ninput sphere bandlimit 2 channels 1\nlift\n"
                       "avg_pool(size=2, stride=2)\ngroup_pool\n", SpecError,
                       "layer 'avg_pool' is not defined for the SO3 family", 5, 1,
                       suggestion=None)
    assert "avg_pool" not in err.expected and "group_pool" in err.expected


# -- the remaining error paths of the front end, each with its message -------------------------

@pytest.mark.parametrize("value, type_name", [(42, "int"), (b"network t", "bytes"),
                                              (None, "NoneType")])
def test_a_spec_that_is_not_text_is_refused_by_name(value, type_name):
    """Not str(value) parsed as spec text (which said "unexpected '42'" for 42, "the spec declares
    no group" for None): the type is named, through check, compile, load_spec and parse_spec."""
    import kernelc
    from kernelc.frontend import load_spec, parse_spec

    message = ("a spec must be spec text, the path of a .kc file or a parsed Spec, got "
               + type_name)
    for entry in (check, kernelc.compile, load_spec):
        with pytest.raises(SpecError) as info:
            entry(value)
        assert type(info.value) is SpecError and info.value.message == message
    with pytest.raises(SpecError, match=f"^error: a spec must be text, got {type_name}$"):
        parse_spec(value)


def test_a_spec_past_the_line_limit_is_refused_before_parsing():
    from kernelc.frontend.parser import MAX_LINES
    text = H + "relu\n" * (MAX_LINES - 2)
    err = error_of(text, SpecError)
    assert err.message == (f"the spec is too long ({MAX_LINES + 1} lines, {len(text)} characters; "
                           f"at most {MAX_LINES} lines and 2000000 characters)")
    assert (err.span.line, err.span.column) == (MAX_LINES + 1, 1)
    assert err.suggestion == "use repeat N { ... } for long stacks of layers"


def test_an_input_box_of_five_axes():
    assert_error("group p4\ninput 2 x 2 x 2 x 2 x 2 channels 1\nlift\n", SpecError,
                 "inputs of 5 spatial axes are not supported (1..4)", 2, 1)


@pytest.mark.parametrize("band, channels", [(0, 1), (2, 0)])
def test_a_sphere_input_of_band_or_channels_zero(band, channels):
    assert_error(f"group SO3\ninput sphere bandlimit {band} channels {channels}\nlift\n",
                 SpecError, "the band limit and channels of a sphere input must be positive",
                 2, 1)


def test_a_power_beyond_4096_bits():
    assert_error(H + "lift(W_std=2^5000)\n", SpecError,
                 "the number is too large (more than 4096 bits)", 4, 12, length=6)
    assert_error(H + "lift\nphi(x * 10**2000)\n", SpecError,
                 "the number is too large (more than 4096 bits)", 5, 9)


def test_generator_entries_beyond_int64():
    """det ±1 with an entry past int64: numpy's closure overflowed (OverflowError)."""
    text = "group g = generators [[1, 99999999999999999999], [0, 1]]\ninput 4 x 4 channels 1\nconv\n"
    assert_error(text, GroupError, "group 'g': generator entries are too large", 1, 1)


def test_a_phi_nested_past_the_recursion_limit_of_sympy():
    """Deep enough for sympy's rules to recurse past Python's limit, not for the parser."""
    err = error_of(H + "lift\nphi(" + "sin(" * 150 + "x" + ")" * 150 + ")\ngroup_pool\n",
                   SpecError)
    assert err.message == "the spec is nested too deeply (blocks or expressions)"


def test_a_flat_list_past_the_node_limit(monkeypatch):
    """A flat list of layers counts as well as repeat blocks (the limit lowered to 5 here: the
    real 10,000 layers take seconds to parse)."""
    from kernelc.frontend import graph
    monkeypatch.setattr(graph, "MAX_NODES", 5)
    assert_error(H + "lift\n" + "relu\n" * 5, SpecError,
                 "the network has more than 5 layers (after unrolling repeat blocks and adding "
                 "the branch nodes); this one is past it", 8, 1)


@pytest.mark.parametrize("layer", ["phi", "phi(x, x)", "phi([1, 2])"])
def test_phi_without_exactly_one_expression(layer):
    assert_error(H + f"lift\n{layer}\n", SpecError,
                 "phi takes one expression in x, e.g. phi(x * sigmoid(x))", 5, 1)


def test_a_rule_error_gets_the_span_of_its_layer():
    """kernel_map raises without a span; the graph builder puts the layer's on it."""
    assert_error(H + "lift\npoly\n", SpecError,
                 "poly needs at least one numeric coefficient c0, c1, ..., cn", 5, 1,
                 suggestion="e.g. poly(0, 1, 0.5) for x + x**2/2")


@pytest.mark.parametrize("support, message", [
    ("1", "expected a list of integer offsets like [(0,0), (1,0)]"),
    ("[]", "expected a list of integer offsets like [(0,0), (1,0)]"),
    ("[(0.5, 0)]", "offsets must be integers"),
    ("[(0, 0), (1,)]", "all offsets need the same number of coordinates"),
    ("[(0, 0), (1048577, 0)]", "offsets must lie within ±1048576"),
])
def test_bad_filter_supports(support, message):
    assert_error(H + f"lift(support={support})\n", SpecError,
                 f"bad value for 'support' of 'lift': {message}", 4, 6)


def test_rotations_listing_an_element_twice():
    assert_error(H + "lift\ngconv(rotations=[1, 1])\n", SpecError,
                 "bad value for 'rotations' of 'gconv': an element is listed twice", 5, 7)


def test_valid_padding_with_an_invariant_off_centre_support():
    """{(0,0), (0,1)} is invariant under the mirror x -> -x but not centred on axis 1."""
    text = ("group m = generators [[-1, 0], [0, 1]]\ninput 6 x 6 channels 1\n"
            "lift(support=[(0, 0), (0, 1)], padding=valid)\n")
    assert_error(text, ShapeError,
                 "valid padding with an off-centre support breaks the box symmetry", 3, 1)


def test_so3_gconv_after_the_group_pool():
    assert_error("group SO3\ninput sphere bandlimit 2 channels 1\nlift\ngroup_pool\ngconv\n",
                 ShapeError, "'gconv' takes a signal on SO(3), but gets an invariant vector", 5, 1)


def test_a_spec_text_with_a_syntax_error_and_constants_or_features():
    """The sklearn front door edits spec text before parsing it; its syntax errors keep their
    place too."""
    from kernelc.frontend.parser import with_constants, with_feature_input
    text = "group Z1 = trivial 1\nlet a = 1\nconv(W_std=a\n"
    for edit in (lambda: with_constants(text, {"a": 2}), lambda: with_feature_input(text, 3)):
        with pytest.raises(SpecSyntaxError) as info:
            edit()
        err = info.value
        assert err.message == "unexpected end of file" and "')'" in err.expected
        assert (err.span.line, err.span.column) == (3, 13)


def test_registering_a_layer_kind_wrongly():
    """The registration decorators of family authors refuse before they change a table."""
    from kernelc.families import family_of
    from kernelc.frontend.layers import COMMON_KINDS, graph_defaults, input_type, layer_kind
    from kernelc.groups import get_group

    with pytest.raises(KernelcError, match="^error: layer kind 'k': unknown category 'linear'"):
        layer_kind("k", category="linear")
    name = "dense"
    assert name in COMMON_KINDS  # else the call below would register a new kind
    with pytest.raises(KernelcError, match=f"^error: layer kind '{name}' registered twice$"):
        layer_kind(name)(lambda t, hp, group, layer: t)
    lattice, so3 = family_of(get_group("p4")), family_of(get_group("SO3"))
    with pytest.raises(KernelcError, match=f"^error: the input of family '{lattice.name}' is "
                                           "typed twice$"):
        input_type(lattice)(lambda decl, group: None)
    with pytest.raises(KernelcError, match=f"^error: the graph defaults of family '{so3.name}' "
                                           "are set twice$"):
        graph_defaults(so3)(lambda layers: {})
