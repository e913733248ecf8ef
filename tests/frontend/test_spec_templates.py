"""Specs as templates: ``with_constants`` (override ``let`` values) and ``with_feature_input``
(an input line from the data's width), used by kernelc.sklearn; each error with its message."""
from __future__ import annotations

import pytest

from kernelc.errors import SpecError, SpecSyntaxError
from kernelc.frontend import check, parse_spec
from kernelc.frontend.parser import read_spec_text, with_constants, with_feature_input

TEXT = ("network n; group Z2; input 4 x 4 channels 1\nlet ws = sqrt(2)  # a comment\n"
        "let b=0.1;let k = 3\nflatten; dense(k, W_std=ws, b_std=b)\n")


def test_with_constants_replaces_only_the_values():
    out = with_constants(TEXT, {"ws": 2.5, "k": 8, "b": -1e-5})
    assert out == ("network n; group Z2; input 4 x 4 channels 1\nlet ws = 2.5  # a comment\n"
                   "let b=-1e-05;let k = 8\nflatten; dense(k, W_std=ws, b_std=b)\n")
    assert dict(parse_spec(out).constants) == {"ws": 2.5, "b": -1e-05, "k": 8}
    assert with_constants(TEXT, {}) is TEXT


def test_with_constants_errors():
    with pytest.raises(SpecError) as info:
        with_constants(TEXT, {"w": 1.0})
    assert info.value.message == "constant 'w' is not defined by a 'let' in the spec"
    assert info.value.expected == ["b", "k", "ws"]
    assert info.value.suggestion == "did you mean 'ws'?"
    with pytest.raises(SpecError) as info:
        with_constants(TEXT, {"zz": 1.0})
    assert info.value.suggestion == "add 'let zz = ...' to the spec and use it"
    for bad in (float("inf"), True, "1.0"):
        with pytest.raises(SpecError) as info:
            with_constants(TEXT, {"ws": bad})
        assert info.value.message == f"constant 'ws' must be a finite real number, got {bad!r}"
    with pytest.raises(SpecSyntaxError) as info:
        with_constants("group Z2 )", {"a": 1})
    assert str(info.value).startswith("<spec>:1:10: syntax error: unexpected ')'")


def test_with_feature_input_inserts_one_site_of_the_lattice():
    out = with_feature_input("network n; group Z2; let a = 1\nflatten; dense(1, W_std=a)", 5)
    assert out == "network n; group Z2; let a = 1\ninput 1 x 1 channels 5; flatten; dense(1, W_std=a)"
    assert check(out).summary().startswith("n: group Z2 (|H|=1), input 1×1×5")
    out = with_feature_input("group Z1 = trivial 1\nconv(1)\nflatten\ndense(2)", 3)
    assert "input 1 channels 3; conv(1)" in out and check(out)
    out = with_feature_input("group c = generators [[-1,0],[0,1]]\nlift(1)\ngroup_pool\ndense(1)", 2)
    assert "input 1 x 1 channels 2; lift(1)" in out and check(out)
    declared = "group p4\ninput 4 x 4 channels 2\nlift\ngroup_pool\ndense(1)"
    assert with_feature_input(declared, 7) is declared


def test_with_feature_input_keeps_error_lines():
    with pytest.raises(SpecError) as info:
        check(with_feature_input("group Z2\nflatten\ngcnov\n", 3))
    assert (info.value.span.line, info.value.message) == (3, "unknown layer 'gcnov'")


def test_with_feature_input_errors():
    with pytest.raises(SpecError) as info:
        with_feature_input("group SO3\nflatten\ndense(1)", 3)
    assert info.value.message == ("a spec without an 'input' line takes feature vectors, which "
                                  "need a group acting on a box of sites; group SO3 (so3 family) "
                                  "takes a sphere input: declare it with an 'input' line "
                                  "(docs/dsl.md)")
    assert (info.value.span.line, info.value.span.column) == (1, 1)
    with pytest.raises(SpecError) as info:
        with_feature_input("group Z2\nflatten\ndense(1)", 0)
    assert info.value.message == "the number of input features must be a positive integer, got 0"


def test_read_spec_text(tmp_path):
    path = tmp_path / "a.kc"
    path.write_text(TEXT)
    assert read_spec_text(str(tmp_path / "a")) == (TEXT, str(path))
    assert read_spec_text(TEXT) == (TEXT, "<spec>")
