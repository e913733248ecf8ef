"""The command line: every subcommand of the front end and compiler, with its outputs and errors."""
import numpy as np
import pytest

from kernelc.cli import main

SPEC = "specs/p2_small.kc"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_prints_one_line_summary(capsys):
    code, out, _ = run(capsys, "check", SPEC)
    assert code == 0
    assert out.startswith("OK  p2_small: group p2 (|H|=2), input 12×12×2, 6 layers")


def test_check_reports_errors_with_position(capsys, tmp_path):
    bad = tmp_path / "bad.kc"
    bad.write_text("group p4\ninput 8 x 8 channels 1\ngcnov(size=3)\n")
    code, _, err = run(capsys, "check", str(bad))
    assert code == 2
    assert f"{bad}:3:1: error: unknown layer 'gcnov'" in err
    assert "did you mean 'gconv'" in err
    assert "Traceback" not in err


def test_missing_spec_file(capsys):
    code, _, err = run(capsys, "check", "no/such/file.kc")
    assert code == 2 and "no such spec file: no/such/file.kc" in err


def test_graph_text_and_dot(capsys):
    code, out, _ = run(capsys, "graph", SPEC)
    assert code == 0 and "lift1" in out and "group_pool1" in out and "vector[1]" in out
    code, out, _ = run(capsys, "graph", SPEC, "--format", "dot")
    assert out.startswith('digraph "p2_small"') and "n000 -> n001;" in out


def test_groups_lists_builtins_and_details(capsys):
    code, out, _ = run(capsys, "groups")
    assert code == 0
    for name, order in (("p4m", "8"), ("O", "24"), ("p6", "6")):
        assert any(line.split()[:2] == [name, order] for line in out.splitlines())
    code, out, _ = run(capsys, "groups", "p4")
    assert "order 4" in out and "abelian: True" in out


def test_groups_unknown_name_suggests(capsys):
    code, _, err = run(capsys, "groups", "p4n")
    assert code == 2 and "unknown group 'p4n'" in err and "p4" in err


def test_explain_shows_formulas_identities_and_cost(capsys):
    code, out, _ = run(capsys, "explain", SPEC, "--n", "100")
    assert code == 0
    assert "(R) right invariance: applied" in out
    assert "K̃⁺(t, t', q)" in out
    assert "Cost for an N = 100 Gram matrix" in out and "tile:" in out
    code, out, _ = run(capsys, "explain", SPEC, "--latex")
    assert "\\sum_{y \\in S}" in out
    code, out, _ = run(capsys, "explain", SPEC, "--markdown")
    assert out.startswith("# kernelc explain") and "$" in out
    code, out, _ = run(capsys, "explain", SPEC, "--no-identities")
    assert "(R) right invariance: declined — switched off" in out


def test_compile_writes_module(capsys, tmp_path):
    target = tmp_path / "m.py"
    code, out, _ = run(capsys, "compile", SPEC, "-o", str(target))
    assert code == 0 and target.read_text().startswith('"""Exact infinite-width')


def test_kernel_random_and_npz(capsys, tmp_path):
    out_file = tmp_path / "k.npz"
    code, out, _ = run(capsys, "kernel", SPEC, "--random", "3", "--out", str(out_file))
    assert code == 0 and "nngp (3×3)" in out
    grams = np.load(out_file)
    assert grams["ntk"].shape == (3, 3)
    data = tmp_path / "x.npz"
    np.savez(data, images=np.random.default_rng(0).normal(size=(2, 12, 12, 2)))
    code, out, _ = run(capsys, "kernel", SPEC, "--data", str(data), "--x", "images",
                       "--get", "nngp")
    assert code == 0 and "nngp (2×2)" in out


def test_kernel_bad_key_and_shape(capsys, tmp_path):
    data = tmp_path / "x.npz"
    np.savez(data, images=np.zeros((2, 5, 5, 2)))
    code, _, err = run(capsys, "kernel", SPEC, "--data", str(data), "--x", "imgs")
    assert code == 2 and "imgs" in err and "images" in err
    code, _, err = run(capsys, "kernel", SPEC, "--data", str(data), "--x", "images")
    assert code == 2 and "takes 12×12 with 2 channel(s), i.e. (N, 12, 12, 2)" in err
    assert "the images are 5×5, the spec's input is 12×12: or use a spec with 'input 5 x 5" in err


def test_kernel_memory_refusal(capsys):
    code, _, err = run(capsys, "kernel", SPEC, "--random", "4", "--max-memory", "1kB")
    assert code == 2 and "more than the budget" in err


MLP = ("network mlp\ngroup Z2\ninput 4 x 1 channels 1\nflatten\ndense(8, W_std=1.4, b_std=0.1)\n"
       "{}\ndense(1)\n")


def test_kernel_fast_and_exact_maps_switch_the_traced_arc_cosine(capsys, tmp_path):
    """--fast-maps traces the polynomial arc-cosine in float64 too (by default float64 takes
    atan2), --exact-maps takes atan2 in float32 too (by default float32 takes the polynomial);
    counted at trace time: every run compiles its own passes. The two kernels agree to float32
    accuracy (the float64 agreement within 1e-13: tests/runtime/test_fast_maps.py)."""
    from kernelc.runtime import maps
    spec = tmp_path / "mlp.kc"
    spec.write_text(MLP.format("relu"))
    traced, grams = {}, {}
    for dtype, flag in (("float64", "--fast-maps"), ("float32", "--exact-maps")):
        before = sum(maps._FAST_ANGLE_CALLS.values())
        out = tmp_path / f"{dtype}.npz"
        code, _, err = run(capsys, "kernel", str(spec), "--random", "6", "--dtype", dtype, flag,
                           "--out", str(out))
        assert code == 0, err
        traced[flag] = sum(maps._FAST_ANGLE_CALLS.values()) - before
        grams[flag] = dict(np.load(out))
    assert traced["--fast-maps"] > 0 and traced["--exact-maps"] == 0
    for name in ("nngp", "ntk"):
        fast, exact = grams["--fast-maps"][name], grams["--exact-maps"][name]
        scale = np.sqrt(np.outer(np.diag(fast), np.diag(fast)))
        assert np.max(np.abs(fast - exact) / scale) < 2e-6, name


def test_fast_maps_flags_are_refused_where_they_change_nothing(capsys, tmp_path):
    spec = tmp_path / "sin.kc"
    spec.write_text(MLP.format("sin"))
    for flag in ("--fast-maps", "--exact-maps"):
        code, _, err = run(capsys, "kernel", str(spec), "--random", "2", flag)
        assert code == 2 and err.strip() == (
            f"input error: {flag} chooses how the relu, leaky_relu (α ≥ 0), erf and gelu kernel "
            f"maps take their arc-cosine or arcsine, but mlp has none of them (its maps: sin), so "
            f"the flag changes nothing: drop {flag}")
    with pytest.raises(SystemExit):  # argparse: one or the other
        run(capsys, "kernel", str(spec), "--random", "2", "--fast-maps", "--exact-maps")
    assert "argument --exact-maps: not allowed with argument --fast-maps" in \
        capsys.readouterr().err


def test_so3_spec_through_the_cli(capsys, tmp_path):
    """An SO(3) spec goes through check, explain, compile and kernel like a lattice one."""
    code, out, _ = run(capsys, "check", "specs/so3_qm9.kc")
    assert code == 0 and "group SO3 (continuous), input S² band 4 (grid 8×8)×10" in out
    code, out, _ = run(capsys, "explain", "specs/so3_qm9.kc", "--n", "100")
    assert code == 0
    assert "(R) right invariance: applied — all 2 lift/gconv filters cover the whole" in out
    assert "K̃⁺(q) = σ_b² + σ_w²·Π_L(K̃(q))" in out
    # the accuracy-driven default grids (issue 13): the grid, why, its estimate and its cost
    assert "grid B = 19: aliasing estimate 2.0e-05" in out and "grid values per pair" in out
    code, out, _ = run(capsys, "kernel", "specs/so3_qm9.kc", "--random", "3", "--get", "ntk")
    assert code == 0 and "ntk (3×3)" in out
