"""The predict / fit CLI: gradient-flow predictions through the whole path, and user errors."""
import json

import numpy as np
import pytest

import kernelc
from kernelc.cli import main
from kernelc.errors import InputError
from kernelc.methods.commands import (infer_task, learning_curve, parse_sizes, parse_times,
                                      prepare_inputs)

SPEC = """network tiny_{name}
group {group}
input 5 x 5 channels 1
{first}(size=3, W_std=1.4, b_std=0.1)
relu
{pool}
dense(3)
"""
CNN = SPEC.format(name="cnn", group="Z2", first="conv", pool="avg_pool\nflatten")
P4 = SPEC.format(name="p4", group="p4", first="lift", pool="group_pool")


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    x = (rng.random((14, 5, 5)) * 255).astype(np.uint8)
    y = rng.integers(0, 3, 14).astype(np.uint8)
    paths = {"cnn": tmp_path / "cnn.kc", "p4": tmp_path / "p4.kc", "data": tmp_path / "d.npz",
             "dir": tmp_path}
    paths["cnn"].write_text(CNN)
    paths["p4"].write_text(P4)
    np.savez(paths["data"], x_train=x[:10], y_train=y[:10], x_test=x[10:], y_test=y[10:])
    return {k: str(v) for k, v in paths.items()}


def _err(capsys, argv):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2, err
    return err


def test_predict_t0_zero_and_large_t_is_kernel_regression(files, capsys, tmp_path):
    out = str(tmp_path / "pred.npz")
    rc = main(["predict", files["cnn"], "--train", files["data"], "--t", "0,1e9,inf",
               "--reg", "0", "--dtype", "float64", "--out", out, "--save-kernels"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "classification" in text and "accuracy=" in text and "t=     inf" in text
    p = np.load(out)
    f = p["ntk_mean"]
    assert f.shape == (3, 4, 3) and p["t"].tolist() == [0.0, 1e9, np.inf]
    assert np.array_equal(f[0], np.zeros((4, 3)))                 # t = 0: the zero-mean prior
    assert np.allclose(f[1], f[2], rtol=0, atol=1e-8)              # t -> inf approaches ...
    d = np.load(files["data"])                                     # ... kernel regression
    k, ks = p["ntk_train_train"], p["ntk_test_train"]
    assert k.shape == (10, 10) and ks.shape == (4, 10) and k.dtype == np.float64
    assert np.linalg.eigvalsh(k)[0] > 1e-8 * np.linalg.eigvalsh(k)[-1]  # a well-posed solve
    y = np.full((10, 3), -1 / 3)
    y[np.arange(10), d["y_train"]] += 1
    assert np.allclose(f[2], ks @ np.linalg.solve(k, y), rtol=0, atol=1e-8)
    assert p["ntk_class"].shape == (3, 4) and p["y_test"].tolist() == d["y_test"].tolist()


def test_fit_two_specs_json_and_plot(files, capsys, tmp_path):
    js, png = tmp_path / "r.json", tmp_path / "r.png"
    rc = main(["fit", files["cnn"], files["p4"], "--train", files["data"], "--test", files["data"],
               "--sizes", "4,10", "--t", "1,inf", "--limit-test", "3", "--json", str(js),
               "--plot", str(png)])
    text = capsys.readouterr().out
    assert rc == 0, text
    res = json.loads(js.read_text())
    assert png.stat().st_size > 1000
    assert res["task"] == "classification" and res["sizes"] == [4, 10] and res["n_test"] == {"test": 3}
    assert set(res["specs"]) == {"tiny_cnn", "tiny_p4"}
    recs = res["results"]
    assert len(recs) == 2 * 2 * 3  # specs × sizes × (NTK t=1, NTK t=inf, NNGP)
    assert {(r["kernel"], r["t"]) for r in recs} == {("ntk", "1"), ("ntk", "inf"), ("nngp", "posterior")}
    assert all(0 <= r["accuracy"] <= 1 for r in recs)
    assert "tiny_p4 — test set 'test'" in text


def test_cli_wrong_keys(files, capsys, tmp_path):
    err = _err(capsys, ["fit", files["cnn"], "--train", files["data"], "--x", "images"])
    assert "no array 'images'" in err and "available: x_test, x_train, y_test, y_train" in err
    err = _err(capsys, ["predict", files["cnn"], "--train", files["data"], "--y", "y_trian"])
    assert "did you mean 'y_train'" in err
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros((4, 5, 5)), b=np.arange(4))
    err = _err(capsys, ["fit", files["cnn"], "--train", str(other), "--test", str(other)])
    assert "no train inputs" in err and "'x' or 'x_train'" in err and "pass --x KEY" in err
    nolab = tmp_path / "nolab.npz"
    np.savez(nolab, x=np.zeros((4, 5, 5)))
    err = _err(capsys, ["predict", files["cnn"], "--train", str(nolab), "--test", str(nolab)])
    assert "no train targets" in err


def test_cli_mismatched_shapes(files, capsys, tmp_path):
    big = tmp_path / "big.npz"
    np.savez(big, x_train=np.zeros((6, 28, 28), np.uint8), y_train=np.arange(6) % 2,
             x_test=np.zeros((2, 28, 28), np.uint8), y_test=np.arange(2))
    err = _err(capsys, ["fit", files["cnn"], files["p4"], "--train", str(big)])
    assert "have shape (28, 28) per sample, but spec 'tiny_cnn' takes 5×5 with 1 channel(s)" in err
    assert "pass --crop 25 --pool 5 to crop/pool the 28×28 images to 5×5" in err
    chw = tmp_path / "chw.npz"
    np.savez(chw, x=np.zeros((6, 3, 5, 5)), y=np.arange(6) % 2)
    spec3 = tmp_path / "rgb.kc"
    spec3.write_text(CNN.replace("channels 1", "channels 3"))
    err = _err(capsys, ["predict", str(spec3), "--train", str(chw), "--test", str(chw)])
    assert "channel axis looks first" in err
    odd = tmp_path / "odd.npz"
    np.savez(odd, x_train=np.zeros((6, 5, 5)), y_train=np.arange(6) % 2,
             x_test=np.zeros((2, 4, 4)), y_test=np.arange(2))
    err = _err(capsys, ["predict", files["cnn"], "--train", str(odd)])
    assert "have shape (5, 5) per sample but test inputs" in err
    lab = tmp_path / "lab.npz"
    np.savez(lab, x=np.zeros((6, 5, 5)), y=np.arange(5))
    err = _err(capsys, ["predict", files["cnn"], "--train", str(lab), "--test", str(lab)])
    assert "'x' has 6 samples but 'y' has 5" in err


def test_cli_nans(files, capsys, tmp_path):
    bad = tmp_path / "nan.npz"
    x = np.zeros((6, 5, 5))
    x[2, 1, 1] = np.nan
    np.savez(bad, x_train=x, y_train=np.arange(6) % 2, x_test=np.zeros((2, 5, 5)), y_test=np.arange(2))
    err = _err(capsys, ["fit", files["cnn"], "--train", str(bad)])
    assert "array 'x_train'" in err and "1 NaN/inf" in err
    ybad = tmp_path / "ynan.npz"
    np.savez(ybad, x=np.zeros((3, 5, 5)), y=np.array([1.0, np.nan, 0.0]))
    err = _err(capsys, ["predict", files["cnn"], "--train", str(ybad), "--test", str(ybad)])
    assert "array 'y'" in err and "NaN" in err


def test_cli_too_small_training_sets(files, capsys, tmp_path):
    err = _err(capsys, ["fit", files["cnn"], "--train", files["data"], "--sizes", "1,4"])
    assert "training-set size 1 is too small" in err and "at least 2" in err
    err = _err(capsys, ["fit", files["cnn"], "--train", files["data"], "--sizes", "4,50"])
    assert "training-set size 50 is larger than the 10 training examples available" in err
    one = tmp_path / "one.npz"
    np.savez(one, x=np.zeros((1, 5, 5)), y=np.array([1]))
    err = _err(capsys, ["predict", files["cnn"], "--train", str(one), "--test", files["data"]])
    assert "has 1 example(s); at least 2 are needed" in err
    err = _err(capsys, ["fit", files["cnn"], "--train", files["data"], "--t", "-1"])
    assert "t must be >= 0" in err
    err = _err(capsys, ["fit", files["cnn"], "--train", files["data"], "--limit-test", "0"])
    assert "--limit-test must be >= 1" in err


def test_helpers():
    assert parse_times("0, 1e3,inf") == [0.0, 1000.0, np.inf]
    assert parse_sizes("8,4,8", 10) == [4, 8]
    assert parse_sizes(None, 8000) == [125, 250, 500, 1000]
    with pytest.raises(InputError, match="at least 2 are needed"):
        parse_sizes(None, 1)
    assert infer_task(np.array([0, 2, 1])) == "classification"
    assert infer_task(np.array([0.5, 2.0])) == "regression"
    assert infer_task(np.array([0.0, 1.0]), "classification") == "classification"
    net = kernelc.compile(CNN)
    x = prepare_inputs(np.full((2, 5, 5), 255, np.uint8), net)
    assert x.shape == (2, 5, 5, 1) and x.max() == 1.0


def test_learning_curve_regression_on_given_grams():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(9, 20))
    k = f @ f.T / 20 + 0.1
    y = f[:, 0]
    grams = {"train": {"ntk": k[:6, :6], "nngp": k[:6, :6]}, "test": {"ntk": k[6:, :6], "nngp": k[6:, :6]}}
    recs = learning_curve(grams, infer_task(y), y[:6], {"test": y[6:]}, [3, 6], [0.0, np.inf], reg=0.0)
    assert {r["size"] for r in recs} == {3, 6}
    zero = [r for r in recs if r["t"] == "0"][0]
    assert zero["mae"] == pytest.approx(np.mean(np.abs(y[6:])))   # t = 0 predicts zeros
    assert all(set(r) >= {"mae", "rmse"} for r in recs)


def test_fit_refuses_the_map_switch_where_it_changes_nothing(files, capsys, tmp_path):
    """(predict --fast-maps: test_predict_by_conjugate_gradients_on_gram_matrices_on_disk)"""
    sin = tmp_path / "sin.kc"
    sin.write_text(CNN.replace("relu", "sin"))
    err = _err(capsys, ["fit", str(sin), "--train", files["data"], "--exact-maps"])
    assert "--exact-maps chooses how the relu, leaky_relu (α ≥ 0), erf and gelu kernel maps " \
           "take their arc-cosine or arcsine, but tiny_cnn has none of them (its maps: sin)" in err


def test_predict_by_conjugate_gradients_on_gram_matrices_on_disk(files, capsys, tmp_path,
                                                                 monkeypatch):
    """--solver auto takes cg above the (lowered) size threshold; the training kernels come
    memory-mapped from --gram-dir; the predictions agree with the dense solve of the same
    kernels. (One predict run also checks --fast-maps: the polynomial arc-cosine is traced
    in float64.)"""
    import importlib
    from kernelc.runtime import maps
    from kernelc.methods import solvers
    # (kernelc.methods.predict as an attribute is the package's function predict)
    predict = importlib.import_module("kernelc.methods.predict")
    monkeypatch.setattr(solvers, "DENSE_LIMIT", 5)
    read = []

    class Recording(predict.ConjugateGradientRegressor):
        def __init__(self, k, *args, **kwargs):
            read.append(type(k))
            super().__init__(k, *args, **kwargs)
    monkeypatch.setattr(predict, "ConjugateGradientRegressor", Recording)
    out, grams = tmp_path / "p.npz", tmp_path / "grams"
    before = sum(maps._FAST_ANGLE_CALLS.values())
    rc = main(["predict", files["cnn"], "--train", files["data"], "--dtype", "float64",
               "--fast-maps", "--gram-dir", str(grams), "--cg-tol", "1e-10", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert sum(maps._FAST_ANGLE_CALLS.values()) > before
    assert "solver: conjugate gradients, " in text and "relative residual ≤ " in text
    assert read == [np.memmap]  # the training NTK as kernel_fn(out=) left it on disk
    p = np.load(out)
    k = {g: np.load(grams / "train" / f"{g}.npy", mmap_mode="r") for g in ("ntk",)}
    ks = {g: np.load(grams / "test" / f"{g}.npy") for g in ("ntk",)}
    d = np.load(files["data"])
    y = np.full((10, 3), -1 / 3)
    y[np.arange(10), d["y_train"]] += 1
    kk = np.asarray(k["ntk"], np.float64)
    dense = ks["ntk"] @ np.linalg.solve(kk + 1e-4 * np.mean(np.diag(kk)) * np.eye(10), y)
    np.testing.assert_allclose(p["ntk_mean"][0], dense, rtol=0, atol=1e-7 * np.abs(dense).max())


def _synthetic_grams(n_train, n_test, seed=0):
    """compute_grams' result for arc-cosine kernels of random vectors (no network compiled)."""
    x = np.random.default_rng(seed).normal(size=(n_train + n_test, 6))
    norms = np.linalg.norm(x, axis=1)
    cos = np.clip(x @ x.T / np.outer(norms, norms), -1, 1)
    theta = np.arccos(cos)
    k = np.outer(norms, norms) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    part = {"nngp": k, "ntk": 2 * k}
    return {"train": {g: v[:n_train, :n_train] for g, v in part.items()},
            "test": {g: v[n_train:, :n_train] for g, v in part.items()}}, 0.0


def test_an_unconverged_cg_solve_is_a_cli_error_with_its_residual(files, capsys, monkeypatch):
    import kernelc.methods.commands as commands
    monkeypatch.setattr(commands, "compute_grams", lambda *a, **kw: _synthetic_grams(10, 4))
    err = _err(capsys, ["predict", files["cnn"], "--train", files["data"], "--solver", "cg",
                        "--cg-rank", "0", "--cg-max-iter", "1", "--cg-tol", "1e-12",
                        "--out", str(files["dir"] + "/p.npz")])
    assert err.startswith("solver error: conjugate gradients reached a relative residual of ")
    assert "after 1 iterations (tolerance 1e-12); raise the preconditioner rank (now 0)" in err


def test_fit_by_conjugate_gradients_agrees_with_the_dense_solver(files, capsys, monkeypatch):
    import kernelc.methods.commands as commands
    monkeypatch.setattr(commands, "compute_grams", lambda *a, **kw: _synthetic_grams(10, 4))
    res = {}
    for solver in ("dense", "cg"):
        js = files["dir"] + f"/{solver}.json"
        rc = main(["fit", files["cnn"], "--train", files["data"], "--sizes", "5,10",
                   "--task", "regression", "--solver", solver, "--json", js]
                  + ["--cg-tol", "1e-10"] * (solver == "cg"))
        assert rc == 0, capsys.readouterr().err
        res[solver] = json.loads(open(js).read())
    assert res["cg"]["solver"] == "cg"
    cg, dense = res["cg"]["results"], res["dense"]["results"]
    assert [(r["kernel"], r["size"]) for r in cg] == [(r["kernel"], r["size"]) for r in dense]
    np.testing.assert_allclose([r["mae"] for r in cg], [r["mae"] for r in dense], rtol=1e-6)


@pytest.mark.parametrize("argv, message", [
    (["--solver", "dense", "--cg-rank", "10"],
     "input error: --cg-rank set the conjugate-gradient solve, but the dense solver is used "
     "(--solver dense): add --solver cg or drop --cg-rank"),
    (["--cg-tol", "1e-8"],
     "input error: --cg-tol set the conjugate-gradient solve, but the dense solver is used "
     "(--solver auto takes it for 10 ≤ 20000 training examples): add --solver cg or drop "
     "--cg-tol"),
    (["--solver", "cg", "--t", "1,inf"],
     "input error: the conjugate-gradient solver gives kernel regression (t = inf) only, not "
     "--t 1: the dense solver's eigendecomposition gives finite times (--solver dense)"),
    (["--solver", "cg", "--reg", "0"],
     "input error: the conjugate-gradient solver needs a positive --reg (its convergence rests "
     "on the ridge), got 0"),
    (["--solver", "cg", "--cg-tol", "1"], "input error: --cg-tol must be in (0, 1), got 1"),
    (["--solver", "cg", "--cg-rank", "-1"], "input error: --cg-rank must be ≥ 0, got -1"),
    (["--solver", "cg", "--cg-max-iter", "0"], "input error: --cg-max-iter must be ≥ 1, got 0"),
])
def test_solver_options_are_refused_where_they_cannot_apply(files, capsys, argv, message):
    err = _err(capsys, ["predict", files["cnn"], "--train", files["data"]] + argv)
    assert err.strip() == message


def test_auto_names_itself_when_it_takes_cg_for_finite_times(files, capsys, monkeypatch):
    from kernelc.methods import solvers
    monkeypatch.setattr(solvers, "DENSE_LIMIT", 4)
    err = _err(capsys, ["fit", files["cnn"], "--train", files["data"], "--sizes", "5,10",
                        "--t", "2"])
    assert err.strip() == (
        "input error: the conjugate-gradient solver (--solver auto takes it above 4 training "
        "examples) gives kernel regression (t = inf) only, not --t 2: the dense solver's "
        "eigendecomposition gives finite times (--solver dense)")


def test_learning_curve_by_cg_refuses_finite_times():
    grams, _ = _synthetic_grams(8, 3)
    y = np.arange(8) % 2
    with pytest.raises(InputError, match=r"the conjugate-gradient solver \(training size 8\) "
                                         r"gives kernel regression \(t = inf\) only, not t = 1$"):
        learning_curve(grams, "classification", y, {"test": np.arange(3) % 2}, [8],
                       [1.0, np.inf], solver={"solver": "cg"})
    recs = learning_curve(grams, "classification", y, {"test": np.arange(3) % 2}, [8],
                          [np.inf], solver={"solver": "cg", "tol": 1e-8})
    assert [(r["kernel"], r["t"]) for r in recs] == [("ntk", "inf"), ("nngp", "posterior")]


# -- error messages of the helpers and options (before any kernel is computed) ------------
@pytest.mark.parametrize("argv, message", [
    (["--t", "1,soon"], "--t must be numbers or 'inf' separated by commas, got 'soon'"),
    (["--t", ","], "--t is empty"),
    (["--sizes", "4,x"], "--sizes must be integers separated by commas, got '4,x'"),
    (["--sizes", ","], "--sizes is empty"),
])
def test_cli_unreadable_times_and_sizes(files, capsys, argv, message):
    err = _err(capsys, ["fit", files["cnn"], "--train", files["data"]] + argv)
    assert err.strip() == "input error: " + message


def test_cli_missing_test_data_and_mismatched_targets(files, capsys, tmp_path):
    only = tmp_path / "only_train.npz"
    np.savez(only, x_train=np.zeros((4, 5, 5)), y_train=np.arange(4) % 2)
    err = _err(capsys, ["fit", files["cnn"], "--train", str(only)])
    assert err.strip() == (f"input error: no test data: pass --test FILE.npz (the training file {only} "
                           "has no 'x_test' array)")
    two = tmp_path / "two_d.npz"
    np.savez(two, x=np.zeros((2, 5, 5)), y=np.zeros((2, 3)))
    err = _err(capsys, ["fit", files["cnn"], "--train", files["data"], "--test", str(two)])
    assert "training targets 'y_train' have shape (10,) but test targets 'y' have (2, 3)" in err


def test_python_fit_refuses_a_bad_task_and_bad_regression_targets(files):
    from kernelc.methods.commands import fit
    x = np.zeros((4, 5, 5, 1))
    with pytest.raises(InputError, match=r"task must be auto, classification or regression, "
                                         r"got 'clasification'"):
        fit([files["cnn"]], x, np.arange(4), {}, {}, [2], task="clasification")
    with pytest.raises(InputError, match=r"regression targets must be numeric, got dtype <U1"):
        fit([files["cnn"]], x, np.array(list("abcd")), {}, {}, [2], task="regression")
    with pytest.raises(InputError, match=r"regression targets must be \(N,\) or \(N, k\), got shape "
                                         r"\(4, 1, 1\)"):
        fit([files["cnn"]], x, np.zeros((4, 1, 1)), {}, {}, [2], task="regression")


def test_time_in_mean_diag_units_needs_a_positive_diagonal():
    # predict calls it on the computed NTK before any solve (an all-zero NTK: zero inputs, no bias)
    from kernelc.methods.commands import time_scale
    with pytest.raises(InputError, match=r"the training NTK has mean diagonal 0, so time in units of "
                                         r"1/mean diag Θ is undefined; use raw time \(--t-unit raw\)"):
        time_scale(np.zeros((3, 3)))
    assert time_scale(np.zeros((3, 3)), "raw") == 1.0


def test_plot_without_matplotlib_says_what_to_install(monkeypatch, tmp_path):
    import sys
    from kernelc.errors import KernelcError
    from kernelc.methods.tasks import plot_curves
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    with pytest.raises(KernelcError, match=r"--plot needs matplotlib \(pip install matplotlib\)"):
        plot_curves([], tmp_path / "c.png", "classification")


@pytest.mark.parametrize("argv, message", [
    (["--limit", "2"], "--limit takes the first N inputs of --data; with random inputs give their "
                       "number: --random N"),
    (["--random", "0"], "--random needs at least one input"),
])
def test_cli_augment_random_input_options(files, capsys, argv, message):
    err = _err(capsys, ["augment", files["cnn"], "--group", "p4"] + argv)
    assert err.strip() == "input error: " + message
