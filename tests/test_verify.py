"""kernelc.verify: the Monte Carlo report, its table/plot/JSON, and the CLI body."""
import argparse
import json
import sys

import numpy as np
import pytest

import kernelc
from kernelc.errors import InputError, KernelcError
from kernelc.verify import (add_verify_parser, fit_slope, parse_widths, relative_error,
                            verify, verify_command)

SPEC = """network tiny
group p4
input 4 x 4 channels 1
lift(size=3, W_std=1.4, b_std=0.1)
relu
group_pool
dense(2)
"""


@pytest.fixture(scope="module")
def compiled():
    return kernelc.compile(SPEC)


@pytest.fixture(scope="module")
def report(compiled):
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 1))
    return verify(compiled, x, widths=(4, 16), samples=8, seed=1, progress=False)


def test_report_contents(report):
    assert report.widths == [4, 16] and report.samples == 8 and report.n_inputs == 2
    for r in report.results:
        assert 0 <= r.nngp_error and r.nngp_ci[0] <= r.nngp_ci[1]
        assert r.ntk_ci[0] <= r.ntk_ci[1] and r.ntk_single_ci[0] <= r.ntk_single_ci[1]
        assert r.ntk_single_error >= r.ntk_error * 0.5  # one network is no better than 8
        assert r.nngp_readout_ci[0] <= r.nngp_readout_ci[1]
    assert set(report.slopes) == {"nngp", "nngp_readout", "nngp_single", "ntk", "ntk_single"}
    assert np.asarray(report.analytic["ntk"]).shape == (2, 2)
    text = report.table()
    assert "width" in text and "NTK 1-net" in text and "NNGP readout-avg" in text
    assert "slope" in text
    assert text.count("\n") >= 6


def test_plot_and_json(report, tmp_path):
    png = tmp_path / "v.png"
    report.plot(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report.to_json(tmp_path / "v.json")
    data = json.loads((tmp_path / "v.json").read_text())
    assert data["widths"] == [4, 16] and len(data["results"]) == 2
    again = type(report).from_json(tmp_path / "v.json")
    assert again.table() == report.table() and again.results[0] == report.results[0]


def test_plot_without_matplotlib(report, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(KernelcError, match="plotting needs matplotlib"):
        report.plot(tmp_path / "no.png")


def test_cli_body(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="kernelc")
    add_verify_parser(parser.add_subparsers(dest="command"))
    spec = tmp_path / "tiny.kc"
    spec.write_text(SPEC)
    np.savez(tmp_path / "x.npz", x=np.random.default_rng(3).normal(size=(2, 4, 4, 1)))
    args = parser.parse_args(["verify", str(spec), "--widths", "4", "--samples", "3",
                              "--data", str(tmp_path / "x.npz"), "--json",
                              str(tmp_path / "r.json"), "--quiet"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "kernelc verify: tiny" in out and "report written" in out
    assert json.loads((tmp_path / "r.json").read_text())["n_inputs"] == 2
    bad = parser.parse_args(["verify", str(spec), "--data", str(tmp_path / "x.npz")])
    bad.data = str(tmp_path / "missing.npz")
    with pytest.raises(InputError, match="data file not found"):
        verify_command(bad)
    # the hardened reader: a missing key names what is there, a pickle is refused unloaded
    np.savez(tmp_path / "wrong.npz", images=np.zeros((2, 4, 4, 1)))
    bad.data = str(tmp_path / "wrong.npz")
    with pytest.raises(InputError, match="no array 'x' in .*available: images"):
        verify_command(bad)
    np.savez(tmp_path / "obj.npz", x=np.array([{"a": 1}], dtype=object))
    bad.data = str(tmp_path / "obj.npz")
    with pytest.raises(InputError, match="without pickle"):
        verify_command(bad)


def test_errors_and_helpers(compiled):
    with pytest.raises(InputError):
        parse_widths("8,x")
    assert parse_widths("8, 32,128") == [8, 32, 128]
    with pytest.raises(InputError, match="samples"):
        verify(compiled, np.zeros((2, 4, 4, 1)), widths=(4,), samples=1)
    on_g = kernelc.compile(SPEC.replace("group_pool\ndense(2)\n", ""))
    with pytest.raises(KernelcError, match="vector outputs"):
        verify(on_g, np.zeros((2, 4, 4, 1)), widths=(4,), samples=2)
    assert fit_slope([1, 4, 16], [1.0, 0.5, 0.25]) == pytest.approx(-0.5)
    assert fit_slope([4], [0.1]) is None
    exact = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert relative_error(np.array([1.1, 0.0, 2.0]), np.array([1.0, 0.0, 2.0])) == \
        pytest.approx(0.1 / 3) and exact.shape == (2, 2)


@pytest.mark.slow
def test_ntk_error_falls_with_width():
    compiled = kernelc.compile(SPEC.replace("channels 1", "channels 2"))
    x = np.random.default_rng(0).normal(size=(2, 4, 4, 2))
    rep = verify(compiled, x, widths=(8, 32, 128, 512), samples=16, progress=False)
    assert -0.8 < rep.slopes["ntk_single"] < -0.3
    assert -0.8 < rep.slopes["nngp_single"] < -0.3
    assert rep.results[-1].ntk_error < rep.results[0].ntk_error


def test_argument_messages(compiled):
    x = np.zeros((2, 4, 4, 1))
    with pytest.raises(InputError, match=r"widths must be positive integers, got \[4, 0\]"):
        verify(compiled, x, widths=(4, 0), samples=2)
    with pytest.raises(InputError, match=r"samples must be an integer ≥ 2 \(errors need a spread\), "
                                         r"got 1"):
        verify(compiled, x, widths=(4,), samples=1)
    with pytest.raises(InputError, match=r"--widths takes comma-separated integers like 8,32,128, "
                                         r"got '8,x'"):
        parse_widths("8,x")
    with pytest.raises(InputError, match=r"--widths takes positive integers, got '8,0'"):
        parse_widths("8,0")


@pytest.mark.parametrize("argv, message", [
    (["--widths", "8,0"], "--widths takes positive integers, got '8,0'"),
    (["--x", "images"], "--x chooses an array of --data; --random draws its inputs"),
    (["--random", "0"], "--random needs at least one input, got 0"),
])
def test_cli_input_options(tmp_path, capsys, argv, message):
    from kernelc.cli import main
    spec = tmp_path / "tiny.kc"
    spec.write_text(SPEC)
    code = main(["verify", str(spec)] + argv)
    err = capsys.readouterr().err
    assert code == 2 and err.strip() == "input error: " + message
