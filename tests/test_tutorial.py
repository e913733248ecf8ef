"""docs/tutorial.md runs end to end: its spec, every kernelc command and its Python block, in a
scratch folder, with the sizes below made small (each substitution must match the tutorial's
text exactly, so a changed tutorial fails here instead of running at full size)."""
import contextlib
import io
import re
from pathlib import Path

import pytest

from kernelc.cli import main

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"

#: tutorial text -> what the test runs instead (the full sizes take minutes)
SMALLER = {
    "--limit 200": "--limit 6",
    "--sizes 50,100,200,400": "--sizes 5,10 --limit-test 8",
    "--limit 8": "--limit 3",
    '["x_train"][:100]': '["x_train"][:12]',
    '["y_train"][:100]': '["y_train"][:12]',
    '["x_test"][:50]': '["x_test"][:5]',
    '["y_test"][:50]': '["y_test"][:5]',
}


def _blocks(text, language):
    return re.findall(rf"```{language}\n(.*?)```", text, re.S)


@pytest.fixture(scope="module")
def tutorial():
    text = TUTORIAL.read_text()
    for full in SMALLER:
        assert full in text, f"the tutorial no longer says {full!r}: update SMALLER"
    for full, small in SMALLER.items():
        text = text.replace(full, small)
    return text


@pytest.fixture(scope="module")
def folder(tmp_path_factory, tutorial):
    """A scratch folder with the tutorial's spec and links to the repository's docs/ and
    specs/ (the commands read docs/tutorial/mnist_7x7.npz and specs/mnist_cnn.kc)."""
    path = tmp_path_factory.mktemp("tutorial")
    (path / "docs").symlink_to(ROOT / "docs")
    (path / "specs").symlink_to(ROOT / "specs")
    spec, = _blocks(tutorial, "kc")
    (path / "my_p4.kc").write_text(spec)
    return path


def _commands(tutorial):
    """The kernelc command lines of the bash blocks (installation and shell set-up excluded)."""
    return [line.split()[1:] for block in _blocks(tutorial, "bash")
            for line in block.splitlines() if line.startswith("kernelc ")]


def test_the_tutorial_commands_run(tutorial, folder, monkeypatch):
    monkeypatch.chdir(folder)
    outputs = {}
    commands = _commands(tutorial)
    assert [c[0] for c in commands] == ["check", "explain", "kernel", "fit", "augment"]
    for argv in commands:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(argv)
        assert status == 0, (argv, err.getvalue()[-2000:])
        outputs[argv[0]] = out.getvalue()
    assert outputs["check"].startswith("OK  my_p4: group p4")
    assert "identit" in outputs["explain"].lower()
    assert (folder / "k_test.npz").is_file()
    assert (folder / "learning_curve.png").is_file() and (folder / "learning_curve.json").is_file()
    assert "AGREE" in outputs["augment"]


def test_the_tutorial_python_runs(tutorial, folder, monkeypatch):
    monkeypatch.chdir(folder)
    code, = _blocks(tutorial, "python")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(TUTORIAL), "exec"), {"__name__": "tutorial"})
    accuracy = float(re.search(r"NTK test accuracy: ([0-9.]+)", out.getvalue()).group(1))
    assert 0.0 <= accuracy <= 1.0


def test_the_tutorial_plot_is_committed():
    assert (ROOT / "docs" / "tutorial" / "learning_curve.png").is_file()
