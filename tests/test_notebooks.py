"""kernelc in a notebook: a one-line repr, Markdown and LaTeX displays, progress that shows in
Jupyter (tqdm.auto when installed), plots that leave matplotlib's backend alone."""
import sys

import numpy as np
import pytest

import kernelc
from kernelc.runtime import driver

SPEC = "network tiny\ngroup p4\ninput 3 x 3 channels 1\nlift(size=3)\nrelu\ngroup_pool\ndense(1)\n"


@pytest.fixture(scope="module")
def net():
    return kernelc.compile(SPEC)


def test_repr_is_one_short_line(net):
    assert repr(net) == ("<CompiledKernel tiny: group p4, input 3×3×1, 4 layers, "
                         "output vector[1], NNGP+NTK>")


class _Stream:
    """Stands in for a stream that is not a terminal."""

    def __init__(self):
        self.text = []

    def write(self, text):
        self.text.append(text)

    def flush(self):
        pass

    def isatty(self):
        return False


def test_progress_uses_tqdm_when_installed(net, monkeypatch):
    tqdm_auto = pytest.importorskip("tqdm.auto")
    made = []

    class Recording(tqdm_auto.tqdm):
        def __init__(self, *args, **kwargs):
            made.append(kwargs)
            kwargs["file"] = _Stream()
            super().__init__(*args, **kwargs)
    monkeypatch.setattr(tqdm_auto, "tqdm", Recording)
    x = np.random.default_rng(0).normal(size=(3, 3, 3, 1))
    net.kernel_fn(x, get="nngp", progress=True, check_precision=False)
    assert [m["desc"] for m in made] == ["kernelc: diagonal", "kernelc: Gram tiles"]


def test_progress_falls_back_to_the_text_bar_without_tqdm(net, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    x = np.random.default_rng(0).normal(size=(3, 3, 3, 1))
    net.kernel_fn(x, get="nngp", progress=True, check_precision=False)
    err = capsys.readouterr().err
    assert "kernelc: Gram tiles [" in err and "1/1" in err


def test_progress_shows_by_default_in_a_jupyter_kernel(monkeypatch):
    """ipykernel's stream is not a terminal: the default used to be silent there."""
    pytest.importorskip("tqdm.auto")
    stream = type("OutStream", (_Stream,), {"__module__": "ipykernel.iostream"})()
    monkeypatch.setattr(sys, "stderr", stream)
    assert driver.in_notebook()
    bar = driver.Progress(3, "kernelc: Gram tiles")
    assert bar.enabled and bar.bar is not None and bar.bar.delay == 2.0
    bar.bar.close()
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    assert not driver.Progress(3, "kernelc: Gram tiles").enabled  # no text bar in a notebook


def test_plot_curves_leaves_the_backend_alone(tmp_path):
    matplotlib = pytest.importorskip("matplotlib")
    from kernelc.methods.tasks import plot_curves
    before = matplotlib.get_backend()
    matplotlib.use("svg")  # a notebook's backend, say
    try:
        records = [{"spec": "tiny", "test_set": "test", "kernel": "ntk", "t": None, "size": s,
                    "accuracy": a} for s, a in ((2, 0.5), (4, 0.75))]
        out = plot_curves(records, tmp_path / "curve", "classification")
        assert out.exists() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
