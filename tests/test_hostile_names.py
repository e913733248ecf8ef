"""Hostile spec file names and network names never run code, and never break the generated
module: kernelc.codegen.emit escapes them, kernelc.api.check_generated_source vets the module
before it is executed, and every CLI command that compiles exits cleanly."""
import ast
import dataclasses
import glob
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import kernelc
from kernelc.api import check_generated_source, load_module
from kernelc.cli import main
from kernelc.codegen.emit import _doc, _printable
from kernelc.errors import GeneratedCodeError
from kernelc.frontend.parser import parse_spec

ROOT = Path(__file__).resolve().parents[1]
KERNELC = Path(sys.executable).with_name("kernelc")

TINY = """network tiny
group Z2
input 3 x 3 channels 1
conv(size=3, W_std=1.4, b_std=0.1, padding=same)
relu
avg_pool
flatten
dense(2)
"""

# Each creates a file named PWNED in the working directory if its text ever runs as code.
PAYLOAD = '__import__("pathlib").Path("PWNED").touch()'
HOSTILE = {
    "triple_quote": f'net""";{PAYLOAD};""".kc',
    "shell": 'net""";__import__("os").system("echo pwned > PWNED");""".kc',
    "single_quotes": f"net''';{PAYLOAD};'''.kc",
    "backslash_x": "bad\\x.kc",
    "trailing_backslash": "bad\\.kc",
    "backslash_quote": 'a\\""";' + PAYLOAD + ';"""\\.kc',
    "newline": f"a\n{PAYLOAD}\n#.kc",
    "newline_docstring": f'a\n""";{PAYLOAD}\n""".kc',
    "carriage_return": f'a\r""";{PAYLOAD}\r""".kc',
    "unicode_separators": f'a\u2028""";{PAYLOAD}\u2029\x85""".kc',
    "form_feed_vtab": f'a\x0b\x0c""";{PAYLOAD}""".kc',
    "escape_sequence": "e\x1b[31mvil\u202e.kc",
    "unicode_escape": 'u\\N{x}\\u12"""' + PAYLOAD + '""".kc',
}


@pytest.fixture(scope="module")
def tiny_derivation():
    from kernelc.compiler.derive import derive
    from kernelc.frontend.infer import check
    return derive(check(parse_spec(TINY)))


def _plain_docstring(source):
    tree = ast.parse(source)
    first = tree.body[0]
    assert isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
    return first.value.value


# -- the escaping itself --------------------------------------------------------------------------
@pytest.mark.parametrize("text", ["\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029", "\x00",
                                  "\x1b", "\u202e", "\ud800", "\t"])
def test_printable_escapes_line_breaks_and_controls(text):
    out = _printable(f"a{text}b")
    assert out.isprintable() and len(out.splitlines()) == 1 and out != f"a{text}b"
    assert out.startswith("a\\") and out.endswith("b")


def test_printable_keeps_ordinary_text():
    for text in ("p4_histology.kc", "K̃⁺[t,t'](q) = σ_w²/|S| Σ_{y∈S} K0", "× — ρ", "😀", "a\\b"):
        assert _printable(text) == text


def test_doc_cannot_close_a_docstring():
    for text in HOSTILE.values():
        body = _doc(text)
        source = f'"""x {body} y"""\n'
        tree = ast.parse(source)
        assert len(tree.body) == 1
        assert tree.body[0].value.value == f"x {_printable(text)} y"


# -- the generated module ------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_emitted_module_with_hostile_source_name(key, tiny_derivation, tmp_path, monkeypatch):
    from kernelc.codegen.emit import emit_module
    monkeypatch.chdir(tmp_path)
    name = HOSTILE[key]
    source = emit_module(tiny_derivation, name)
    check_generated_source(source)
    doc = _plain_docstring(source)
    assert f"from {_printable(name)}; do not edit" in doc
    module = load_module(source, "hostile")
    assert module.__doc__ == doc
    assert not (tmp_path / "PWNED").exists()


def test_hostile_network_name_in_a_spec_object(tmp_path, monkeypatch):
    """Spec objects built in Python are not held to the grammar's NAME rule."""
    monkeypatch.chdir(tmp_path)
    spec = dataclasses.replace(parse_spec(TINY), name=f"x'\"\"\";{PAYLOAD};\"\"\"\n# \u2028")
    net = kernelc.compile(spec, source_name=HOSTILE["newline_docstring"])
    assert "network 'x'\\\"\\\"\\\";" in net.source
    assert net.module.__doc__.startswith("Exact infinite-width NNGP and NTK kernels of the "
                                         "network 'x'\"\"\";")
    assert net(np.ones((1, 3, 3, 1)), get="nngp").shape == (1, 1)
    assert not (tmp_path / "PWNED").exists()


def test_api_compile_of_a_hostile_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / HOSTILE["triple_quote"]
    path.write_text(TINY)
    net = kernelc.compile(path)
    assert _printable(path.name) in net.module.__doc__
    assert not (tmp_path / "PWNED").exists()


# -- the safety check of generated modules --------------------------------------------------------
def test_every_generated_module_passes_the_check():
    files = sorted(glob.glob(str(ROOT / "generated" / "*.py")))
    assert files
    for f in files:
        check_generated_source(Path(f).read_text(), f)


def test_a_freshly_compiled_module_passes_the_check():
    net = kernelc.compile(TINY)
    assert isinstance(check_generated_source(net.source), ast.Module)


DOC = '"""A generated module."""\n'
REJECTED = {
    "top-level call": (DOC + "import os\nos.system('echo pwned > PWNED')\n",
                       "top-level line 3: statement \"os.system('echo pwned > PWNED')\""),
    "call in an assignment": (DOC + "X = __import__('os')\n", "top-level line 2: assignment X ="),
    "import subprocess": (DOC + "import subprocess\n", "line 2: import of subprocess"),
    "import inside a function": (DOC + "def f():\n    import shutil\n",
                                 "line 3: import of shutil"),
    "relative import": (DOC + "from . import api\n", "line 2: import from ."),
    "other from-import": (DOC + "from os import system\n", "line 2: import from os"),
    "eval in a function": (DOC + "def f(x):\n    return eval(x)\n", "line 3: use of eval"),
    "open in a function": (DOC + "def f():\n    return open('x')\n", "line 3: use of open"),
    "os.system in a function": (DOC + "import os\ndef f():\n    os.system('ls')\n",
                                "line 4: use of os.system"),
    "dunder escape": (DOC + "def f():\n    return ().__class__.__subclasses__()\n",
                      "use of .__subclasses__"),
    "decorator": (DOC + "import os\n@os.system\ndef f():\n    pass\n",
                  "top-level line 4: decorator @os.system"),
    "decorator arguments": (DOC + "import functools\n@functools.lru_cache(print('x'))\n"
                            "def f():\n    pass\n", "decorator @functools.lru_cache(print('x'))"),
    "default value": (DOC + "def f(x=print('x')):\n    pass\n", "default value print('x') of f()"),
    "annotation": (DOC + "def f(x: print('x')):\n    pass\n", "annotation print('x') of f()"),
    "metaclass": (DOC + "class A(metaclass=type):\n    pass\n", "class A(metaclass=type)"),
    "class body call": (DOC + "class A:\n    print('x')\n", "statement \"print('x')\""),
    "broad except": (DOC + "try:\n    import jax\nexcept Exception:\n    pass\n",
                     "try/except other than 'except ImportError'"),
    "if at top level": (DOC + "if True:\n    pass\n", "statement 'if True:'"),
    "second docstring expression": (DOC + "'''x'''.format()\n", "statement"),
}


@pytest.mark.parametrize("key", sorted(REJECTED))
def test_check_rejects(key):
    source, message = REJECTED[key]
    with pytest.raises(GeneratedCodeError) as info:
        check_generated_source(source, "<m>")
    text = str(info.value)
    assert text.startswith("internal error: the generated module <m> has ")
    assert message in text
    assert "which kernelc never emits; refusing to run it (this is a bug in kernelc" in text


def test_check_rejects_a_module_without_docstring_or_not_parsing():
    with pytest.raises(GeneratedCodeError, match="does not start with its docstring"):
        check_generated_source("import os\n", "<m>")
    with pytest.raises(GeneratedCodeError, match=r"does not parse \(line 1: .*truncated"):
        check_generated_source('"""bad \\x."""\n', "<m>")
    with pytest.raises(GeneratedCodeError, match="does not parse"):
        check_generated_source('"""a"""\nx = 1\x00\n', "<m>")


def test_load_module_runs_nothing_that_fails_the_check(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(GeneratedCodeError, match="top-level"):
        load_module(f'"""x"""\n{PAYLOAD}\n', "m")
    assert not (tmp_path / "PWNED").exists()


# -- every CLI command that compiles -------------------------------------------------------------
def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _hostile_spec(tmp_path, key, text=TINY):
    path = tmp_path / HOSTILE[key]
    path.write_text(text)
    return path


@pytest.mark.parametrize("key", sorted(HOSTILE))
def test_cli_compile_and_explain(key, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = _hostile_spec(tmp_path, key)
    code, out, err = _cli(capsys, "compile", spec, "-o", tmp_path / "m.py")
    assert code == 0, err
    assert out.startswith(f"wrote {tmp_path / 'm.py'} (")
    check_generated_source((tmp_path / "m.py").read_text())
    code, out, err = _cli(capsys, "explain", spec)
    assert code == 0 and "Traceback" not in err and "(R) right invariance" in out
    assert not (tmp_path / "PWNED").exists()


def test_cli_compile_default_output_name(tmp_path, monkeypatch, capsys):
    """Without -o the module goes to generated/<file stem>.py, whatever the stem."""
    monkeypatch.chdir(tmp_path)
    spec = _hostile_spec(tmp_path, "newline_docstring")
    code, out, err = _cli(capsys, "compile", spec)
    assert code == 0, err
    target = tmp_path / "generated" / (spec.stem + ".py")
    assert target.is_file() and not (tmp_path / "PWNED").exists()


@pytest.mark.parametrize("key", ["triple_quote", "newline_docstring", "unicode_separators",
                                 "backslash_x"])
def test_cli_kernel(key, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, err = _cli(capsys, "kernel", _hostile_spec(tmp_path, key), "--random", "2")
    assert code == 0, err
    assert "nngp (2×2)" in out and not (tmp_path / "PWNED").exists()


def test_cli_verify_and_fit(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = _hostile_spec(tmp_path, "triple_quote")
    code, out, err = _cli(capsys, "verify", spec, "--widths", "2", "--samples", "2", "--quiet")
    assert code == 0, err
    assert "kernelc verify: tiny" in out
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.normal(size=(4, 3, 3, 1)), y_train=[0, 1, 0, 1],
             x_test=rng.normal(size=(2, 3, 3, 1)), y_test=[0, 1])
    code, out, err = _cli(capsys, "fit", spec, "--train", tmp_path / "d.npz", "--sizes", "2,4")
    assert code == 0, err
    assert "tiny — test set 'test'" in out
    assert not (tmp_path / "PWNED").exists()


def test_cli_verify_with_a_newline_in_the_name_is_clean(tmp_path, monkeypatch, capsys):
    """verify reads its spec argument like the API does (a str with a newline is spec text):
    either way it ends with a clean diagnostic, never a traceback or code execution."""
    monkeypatch.chdir(tmp_path)
    spec = _hostile_spec(tmp_path, "newline_docstring")
    code, out, err = _cli(capsys, "verify", spec, "--widths", "2", "--samples", "2", "--quiet")
    assert code in (0, 2) and "Traceback" not in err
    assert not (tmp_path / "PWNED").exists()


def test_cli_error_in_a_hostile_file_is_a_clean_diagnostic(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    spec = _hostile_spec(tmp_path, "escape_sequence", TINY.replace("relu", "relux"))
    code, out, err = _cli(capsys, "compile", spec, "-o", tmp_path / "m.py")
    assert code == 2 and "Traceback" not in err
    assert "e\\x1b[31mvil\\u202e.kc:5:1: error: unknown layer 'relux'" in err
    assert "\x1b" not in err and not (tmp_path / "m.py").exists()


def test_the_reported_reproducer(tmp_path):
    """The original report: the real console script, the mnist_cnn spec, a name that shells out."""
    name = HOSTILE["shell"]
    (tmp_path / name).write_text((ROOT / "specs" / "mnist_cnn.kc").read_text())
    exe = [str(KERNELC)] if KERNELC.exists() else [sys.executable, "-m", "kernelc.cli"]
    proc = subprocess.run(exe + ["compile", name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "PWNED").exists()
    module = tmp_path / "generated" / (Path(name).stem + ".py")
    check_generated_source(module.read_text())


@pytest.mark.parametrize("source, message", [
    ("import os as o\n", "line 2: import of os as o"),
    ("import os\ndef f():\n    o = os\n", "line 4: use of os other than os.<attribute>"),
    ("import sys\ndef f():\n    return getattr(sys, 'modules')\n",
     "line 4: use of sys other than sys.<attribute>"),
    ("import sys\ndef f():\n    return sys.modules\n", "line 4: use of sys.modules"),
])
def test_check_rejects_renamed_os_and_sys(source, message):
    with pytest.raises(GeneratedCodeError, match=message.replace(".", r"\.")):
        check_generated_source(DOC + source, "<m>")
