"""The spec-language pitfalls of issue 12 (finding 7), each with the message a user now gets.

Every case failed on the code before the fix: ';' after a header line was a syntax error, an
undefined name as a number said "expected a number", ``leaky_relu(alpha=...)`` listed only
``degree``, ``tanh`` as a layer had no hint and the list of layers ended in "...", and a spec path
without ``.kc`` was parsed as spec text (or not found by the CLI).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from kernelc.cli import main
from kernelc.errors import SpecError, SpecSyntaxError
from kernelc.frontend import check, load_spec, parse_spec
from kernelc.frontend.parser import looks_like_spec_path

from .conftest import strip_spans
from .test_errors import assert_error

#: A plain-CNN header with one constant; the first layer is on line 5.
HEADER = "network t\ngroup Z2\ninput 4 x 4 channels 1\nlet ws = 1.4\n"
SPECS = Path(__file__).resolve().parents[2] / "specs"


# -- ';' separates header lines, layers, blocks and branches (docs/dsl.md) -----------------------

def test_semicolons_separate_header_lines():
    one_line = parse_spec("network t; group Z2; input 4 x 4 channels 1; let ws = 1.4; "
                          "conv(3, W_std=ws); relu; flatten; dense(1);")
    lines = parse_spec(HEADER + "conv(3, W_std=ws)\nrelu\nflatten\ndense(1)\n")
    assert strip_spans(one_line) == strip_spans(lines)


def test_semicolons_after_branches():
    text = HEADER + ("conv(3)\nconcat { branch { conv(3) }; branch { conv(3); relu }; }\n"
                     "flatten; dense(1)\n")
    assert check(text).summary().startswith("t: group Z2")


def test_a_doubled_semicolon_is_still_an_error():
    assert_error("network t;; group Z2\n", SpecSyntaxError, "unexpected ';'", 1, 11)


# -- an undefined name where a number belongs ---------------------------------------------------

def test_undefined_name_as_a_number_says_unknown_name():
    assert_error(HEADER + "conv(3, W_std=zz)\nflatten\ndense(1)\n", SpecError,
                 "unknown name 'zz': 'W_std' of 'conv' takes a number or a name defined with "
                 "'let' (defined names: ws, pi, e)", 5, 9, suggestion="define it first: let zz = ...")


def test_undefined_name_close_to_a_constant_suggests_it():
    assert_error(HEADER + "conv(3, W_std=wss)\nflatten\ndense(1)\n", SpecError,
                 "unknown name 'wss': 'W_std' of 'conv' takes a number or a name defined with "
                 "'let' (defined names: ws, pi, e)", 5, 9, suggestion="did you mean 'ws'?")
    # an integer parameter, positional
    assert_error("network t\ngroup Z2\ninput 4 x 4 channels 1\nflatten\ndense(nn)\n", SpecError,
                 "unknown name 'nn': 'width' of 'dense' takes a number or a name defined with "
                 "'let' (defined names: pi, e)", 5, 7, suggestion="define it first: let nn = ...")


def test_undefined_name_as_a_nonlinearity_argument():
    assert_error(HEADER + "conv(3)\nleaky_relu(wz)\nflatten\ndense(1)\n", SpecError,
                 "unknown name 'wz': 'leaky_relu' takes one positional number, the negative "
                 "slope, as in leaky_relu(0.1) (defined names: ws, pi, e)", 6, 12)


# -- what a nonlinearity takes --------------------------------------------------------------------

def test_leaky_relu_names_its_parameters():
    err = assert_error(HEADER + "conv(3)\nleaky_relu(alpha=0.1)\nflatten\ndense(1)\n", SpecError,
                       "'leaky_relu' has no hyperparameter 'alpha': it takes one positional "
                       "number, the negative slope, as in leaky_relu(0.1), and optionally "
                       "degree= (Gauss–Hermite points per axis)", 6, 12, length=9)
    assert "expected one of" not in str(err)


def test_a_nonlinearity_without_arguments_says_so():
    assert_error(HEADER + "conv(3)\nrelu(alpha=0.1)\nflatten\ndense(1)\n", SpecError,
                 "'relu' has no hyperparameter 'alpha': it takes no arguments, and optionally "
                 "degree= (Gauss–Hermite points per axis)", 6, 6)


# -- expression functions as layers, and the full list of layers ---------------------------------

@pytest.mark.parametrize("name,example", [("tanh", "phi(tanh(x))"), ("softplus", "phi(softplus(x))"),
                                          ("sigmoid", "phi(sigmoid(x))"), ("max", "phi(max(0, x))")])
def test_expression_function_as_a_layer_suggests_phi(name, example):
    err = assert_error(HEADER + f"conv(3)\n{name}\nflatten\ndense(1)\n", SpecError,
                       f"unknown layer '{name}'", 6, 1,
                       suggestion=f"'{name}' is an expression function, not a layer: write "
                                  f"{example} for the elementwise nonlinearity (any expression in "
                                  "x works, e.g. phi(x * sigmoid(x)))")
    assert "phi" in err.expected


def test_the_suggested_phi_compiles():
    assert check(HEADER + "conv(3)\nphi(tanh(x))\nflatten\ndense(1)\n").summary()


def test_unknown_layer_lists_every_layer():
    err = assert_error(HEADER + "conv(3)\ngcnov\n", SpecError, "unknown layer 'gcnov'", 6, 1,
                       suggestion="did you mean 'gconv' or 'conv'?")
    lines = str(err).split("\n")
    listing = " ".join(line.strip() for line in lines[3:-1])  # wrapped over several lines
    assert listing.startswith("expected one of: ")
    listed = listing[len("expected one of: "):].split(", ")
    assert listed == err.expected  # all of them: nothing cut off with "..."
    assert {"abs", "avg_pool", "conv", "dense", "flatten", "gconv", "group_pool", "leaky_relu",
            "lift", "phi", "poly", "relu", "sin"} <= set(listed)


# -- paths: a spec file named without .kc, and files that do not exist ---------------------------

def test_a_spec_path_without_its_extension_reads_the_file():
    spec = load_spec(str(SPECS / "p2_small"))
    assert spec.name == "p2_small" and spec.filename == str(SPECS / "p2_small.kc")
    assert load_spec(SPECS / "p2_small").filename == str(SPECS / "p2_small.kc")


@pytest.mark.parametrize("text,is_path", [
    ("specs/p4_histology", True), ("no/such/file.kc", True), ("nope/x", True), ("x.kc", True),
    ("network n; group Z2; input 4 channels 1; let a = 1/2; flatten; dense(1, W_std=a)", False),
    ("group Z2 input 4 x 4 channels 1 flatten dense // a/b", False),
    ("group Z2\ninput 4 x 4 channels 1\nflatten\ndense\n", False)])
def test_looks_like_spec_path(text, is_path):
    assert looks_like_spec_path(text) is is_path


def test_a_missing_spec_file_is_named_with_the_nearest_one():
    with pytest.raises(SpecError) as info:
        load_spec(str(SPECS / "p2_smal"))
    assert info.value.message == f"no such spec file: {SPECS / 'p2_smal'}"
    assert info.value.suggestion.startswith(f"did you mean '{SPECS / 'p2_small.kc'}'")
    with pytest.raises(SpecError) as info:
        load_spec("no/such/file.kc")
    assert info.value.message == "no such spec file: no/such/file.kc"
    assert info.value.suggestion == "the folder no/such does not exist"


def test_a_folder_is_not_a_spec_file(tmp_path):
    (tmp_path / "a.kc").write_text(HEADER + "flatten\ndense(1)\n")
    with pytest.raises(SpecError) as info:
        load_spec(str(tmp_path))
    assert info.value.message == f"no such spec file: {tmp_path} is a folder"
    assert info.value.suggestion == f"spec files in it: {tmp_path / 'a.kc'}"


def test_cli_check_without_the_extension(capsys, monkeypatch):
    monkeypatch.chdir(SPECS.parent)
    assert main(["check", "specs/p2_small"]) == 0
    assert capsys.readouterr().out.startswith("OK  p2_small: group p2")
    assert main(["check", "specs/p2_smal"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no such spec file: specs/p2_smal\n"
                          "did you mean 'specs/p2_small.kc'")


def test_a_byte_order_mark_is_read_as_utf8(tmp_path):
    # Windows editors start UTF-8 files with one: it was "unexpected character '\ufeff'" at 1:1
    path = tmp_path / "bom.kc"
    path.write_bytes(b"\xef\xbb\xbf" + (HEADER + "flatten\ndense(1)\n").encode())
    assert load_spec(path).input.shape == load_spec(HEADER + "flatten\ndense(1)\n").input.shape


@pytest.mark.skipif(os.name != "posix", reason="symbolic links and /dev/null")
def test_a_dangling_link_or_a_device_is_not_called_missing(tmp_path):
    (tmp_path / "gone.kc").symlink_to(tmp_path / "nowhere.kc")
    with pytest.raises(SpecError) as info:  # suggested 'did you mean gone.kc?', itself
        load_spec(tmp_path / "gone.kc")
    assert info.value.message == (f"no such spec file: {tmp_path / 'gone.kc'} is a link to "
                                  f"{tmp_path / 'nowhere.kc'}, which does not exist")
    assert info.value.suggestion is None
    with pytest.raises(SpecError) as info:
        load_spec(Path("/dev/null"))
    assert info.value.message == "cannot read spec file /dev/null: not a regular file"
