"""One data path for every command (issue 12, finding 8): the same options (--x, --limit, --crop,
--pool) and the same errors in kernel, fit, predict, verify and augment; CLI users see flags,
Python users parameters; wrong-size images get the crop/pool that would fit; --t means the same
time in predict, fit and augment.

Each spec is compiled once for the module (the CLI compiles on every call; ``compile_once``
caches by file), and the data are a handful of tiny images.
"""
import json
from types import SimpleNamespace

import numpy as np
import pytest

import kernelc
import kernelc.api
from kernelc.cli import main
from kernelc.errors import InputError
from kernelc.methods.data import (ImagePreprocessing, fitting_options, load_arrays,
                                  prepare_images)
from kernelc.methods.tasks import time_scale

SPEC7 = """network tiny7
group Z2
input 7 x 7 channels 1
conv(size=3, W_std=1.4, b_std=0.1, padding=same)
relu
avg_pool
flatten
dense(3)
"""
CLI_FLAGS = ("--crop", "--pool")


@pytest.fixture(scope="module")
def compile_once():
    """kernelc.api.compile, cached by spec file for this module."""
    real, cache = kernelc.api.compile, {}

    def cached(spec, *args, **kwargs):
        key = (str(spec), args, tuple(sorted(kwargs.items())))
        if key not in cache:
            cache[key] = real(spec, *args, **kwargs)
        return cache[key]
    kernelc.api.compile = cached
    yield cached
    kernelc.api.compile = real


@pytest.fixture(scope="module")
def folder(tmp_path_factory, compile_once):
    """tiny7.kc and 28×28 uint8 digits-like data (train/test/x2/float copies)."""
    path = tmp_path_factory.mktemp("data_path")
    (path / "tiny7.kc").write_text(SPEC7)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=(9, 28, 28)).astype(np.uint8)
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2])
    np.savez(path / "d28.npz", x_train=x[:6], y_train=y[:6], x_test=x[6:], y_test=y[6:],
             images=x[:3], other=x[3:6], floats=x[:3].astype(np.float64))
    small = _crop21_pool3(x)
    np.savez(path / "d7.npz", x_train=small[:6], y_train=y[:6], x_test=small[6:],
             y_test=y[6:], images=small[:3])
    return path


def _crop21_pool3(x):
    """The benchmark's downsampling, by hand: centre 21×21 (rows/columns 3..23), 3×3 means."""
    c = x[:, 3:24, 3:24].astype(np.float64) / 255.0
    return c.reshape(len(c), 7, 3, 7, 3).mean(axis=(2, 4))


def run(capsys, folder, monkeypatch, *argv):
    monkeypatch.chdir(folder)
    code = main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


# -- the preprocessing itself ----------------------------------------------------------------
def test_crop_then_pool_matches_the_benchmark_downsampling():
    x = np.random.default_rng(1).integers(0, 256, size=(2, 28, 28)).astype(np.uint8)
    spec_input = SimpleNamespace(shape=(7, 7), channels=1, domain="box")
    want = _crop21_pool3(x)[..., None]
    for crop in ("21", "3:24,3:24", "21,21", 21, ((3, 24), (3, 24))):
        got = prepare_images(x, spec_input, "x", ImagePreprocessing.parse(crop, 3))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-15)
    pooled = prepare_images(x, spec_input, "x", ImagePreprocessing.parse(None, 4))
    np.testing.assert_allclose(pooled[..., 0], (x / 255.0).reshape(2, 7, 4, 7, 4).mean((2, 4)),
                               rtol=0, atol=1e-15)
    # channels last and rectangular crops: per-axis entries, the channel axis untouched
    rgb = np.random.default_rng(2).normal(size=(2, 10, 12, 3))
    out = ImagePreprocessing.parse("4,6", 2).apply(rgb, 2)
    np.testing.assert_allclose(out, rgb[:, 3:7, 3:9].reshape(2, 2, 2, 3, 2, 3).mean((2, 4)))


@pytest.mark.parametrize("crop,pool,message", [
    (None, 3, "--pool 3: x are 28×28, not divisible by 3; crop to a multiple of 3 first, "
              "e.g. --crop 27 --pool 3"),
    ("20", 3, "--pool 3: x are 20×20 after --crop 20, not divisible by 3; crop to a multiple "
              "of 3 first, e.g. --crop 18 --pool 3"),
    ("30", None, "--crop 30: x are 28×28, smaller than 30"),
    ("3:30", None, "--crop: the range 3:30 reaches past the 28 pixels of x (28×28)"),
    ("5:5", None, "--crop: the pixel range 5:5 is empty or negative"),
    ("1,2,3", None, "--crop: 3 entries for x with 2 spatial axes (28×28)"),
    ("a", None, "--crop: crop sizes must be whole numbers, got 'a'"),
    ("", None, "--crop: give a size (21), sizes per axis (21,24) or pixel ranges (3:24,3:24)"),
    (None, 0, "--pool: the pooling factor must be a whole number ≥ 1, got 0"),
])
def test_preprocessing_refusals_name_the_option(crop, pool, message):
    x = np.zeros((1, 28, 28), np.uint8)
    spec_input = SimpleNamespace(shape=(7, 7), channels=1, domain="box")
    with pytest.raises(InputError) as info:
        prepare_images(x, spec_input, "x", ImagePreprocessing.parse(crop, pool, CLI_FLAGS))
    assert message in str(info.value)


def test_preprocessing_refuses_sphere_inputs_and_python_names_its_parameters():
    sphere = SimpleNamespace(shape=(8, 8), channels=10, domain="sphere")
    with pytest.raises(InputError, match="crop/pool crop and pool images on a box; spec 'm' "
                                         "takes signals on the sphere"):
        prepare_images(np.zeros((1, 8, 8, 10)), sphere, "x", ImagePreprocessing.parse(None, 2),
                       "m")
    with pytest.raises(InputError, match=r"pool=3: x are 28×28, not divisible by 3; crop to a "
                                         r"multiple of 3 first, e.g. crop=27, pool=3"):
        prepare_images(np.zeros((1, 28, 28)), SimpleNamespace(shape=(7, 7), channels=1),
                       "x", ImagePreprocessing.parse(None, 3))


def test_fitting_options():
    cli = ImagePreprocessing.parse(None, None, CLI_FLAGS)
    assert fitting_options((28, 28), (7, 7), cli) == ["--pool 4", "--crop 21 --pool 3"]
    assert fitting_options((28, 28), (14, 14), cli) == ["--pool 2", "--crop 14"]
    assert fitting_options((28, 30), (7, 7), cli) == ["--crop 28 --pool 4"]
    assert fitting_options((5, 5), (7, 7), cli) == []
    assert fitting_options((28, 28), (7, 7)) == ["pool=4", "crop=21, pool=3"]
    with pytest.raises(InputError, match=r"pass pool=4 or crop=21, pool=3 \(kernelc.methods.data."
                                         r"ImagePreprocessing\) to crop/pool the 28×28 images"):
        prepare_images(np.zeros((1, 28, 28)), SimpleNamespace(shape=(7, 7), channels=1), "x")



def test_images_that_fit_as_stored_are_told_to_drop_crop_and_pool():
    # 12×12 images for a 12×12 spec, shrunk by --crop/--pool: the hint named no option and read
    # "...the spec's input is 12×12: or use a spec with ..."
    spec = SimpleNamespace(shape=(12, 12), channels=2)
    cli = ImagePreprocessing.parse("9", 3, CLI_FLAGS)
    with pytest.raises(InputError, match=r"the images are 3×3, the spec's input is 12×12: leave "
                                         r"out --crop/--pool \(the 12×12 images fit as stored\), "
                                         r"or use a spec with 'input 3 x 3 channels 2'"):
        prepare_images(np.zeros((1, 12, 12, 2)), spec, "x", cli)
    with pytest.raises(InputError, match=r"leave out crop/pool \(the 12×12 images fit"):
        prepare_images(np.zeros((1, 12, 12, 2)), spec, "x", ImagePreprocessing.parse(None, 2))

# -- CLI users see flags, Python users parameters ------------------------------------------------
def test_missing_keys_name_the_flag_on_the_command_line(folder, capsys, monkeypatch):
    code, _, err = run(capsys, folder, monkeypatch, "kernel", "tiny7.kc", "--data", "d28.npz")
    assert code == 2 and "no array 'x' in d28.npz" in err and "pass --x KEY to choose one" in err
    assert "x_key=" not in err
    code, _, err = run(capsys, folder, monkeypatch, "kernel", "tiny7.kc", "--data", "d28.npz",
                       "--x", "images", "--x2", "zzz")
    assert code == 2 and "no array 'zzz'" in err and "pass --x2 KEY to choose one" in err
    code, _, err = run(capsys, folder, monkeypatch, "verify", "tiny7.kc", "--data", "d28.npz",
                       "--quiet")
    assert code == 2 and "pass --x KEY to choose one" in err and "x_key=" not in err
    with pytest.raises(InputError, match="pass x_key= to choose one"):
        load_arrays(folder / "d28.npz")


# -- kernel: wrong sizes get a hint; --crop/--pool apply to x and x2 alike ---------------------
def test_kernel_on_wrong_size_images_suggests_crop_and_pool(folder, capsys, monkeypatch):
    code, _, err = run(capsys, folder, monkeypatch, "kernel", "tiny7.kc", "--data", "d28.npz",
                       "--x", "images")
    assert code == 2
    assert "have shape (28, 28) per sample, but spec 'tiny7' takes 7×7" in err
    assert "pass --pool 4 or --crop 21 --pool 3 to crop/pool the 28×28 images to 7×7" in err
    code, _, err = run(capsys, folder, monkeypatch, "kernel", "tiny7.kc", "--data", "d28.npz",
                       "--x", "images", "--crop", "14")
    assert code == 2 and "(after crop 14)" in err
    assert "pass --pool 4 or --crop 21 --pool 3 to crop/pool the 28×28 images" in err


def test_kernel_crop_pool_equals_downsampled_data(folder, capsys, monkeypatch):
    code, out, err = run(capsys, folder, monkeypatch, "kernel", "tiny7.kc", "--data", "d28.npz",
                         "--x", "images", "--x2", "other", "--crop", "21", "--pool", "3",
                         "--dtype", "float64", "--out", "k28.npz")
    assert code == 0, err
    assert "images: crop 21, then 3×3 average pooling -> 7×7" in out
    code, _, err = run(capsys, folder, monkeypatch, "kernel", "tiny7.kc", "--data", "d7.npz",
                       "--x", "x_train", "--limit", "6", "--dtype", "float64", "--out", "k7.npz")
    assert code == 0, err
    k28, k7 = np.load(folder / "k28.npz"), np.load(folder / "k7.npz")
    for g in ("nngp", "ntk"):  # --x images are x_train[:3], --x2 other are x_train[3:6]
        np.testing.assert_allclose(k28[g], k7[g][:3, 3:6], rtol=1e-12)


def test_kernel_one_dtype_policy_for_x_and_x2(folder, capsys, monkeypatch):
    code, _, err = run(capsys, folder, monkeypatch, "kernel", "tiny7.kc", "--data", "d28.npz",
                       "--x", "images", "--x2", "floats", "--pool", "4")
    assert code == 2 and "--x (uint8) and --x2 (float64) have different dtypes" in err


def test_crop_pool_refused_for_random_inputs(folder, capsys, monkeypatch):
    for command in (["kernel", "tiny7.kc"], ["verify", "tiny7.kc", "--quiet"],
                    ["augment", "tiny7.kc", "--group", "p4"]):
        code, _, err = run(capsys, folder, monkeypatch, *command, "--random", "2",
                           "--crop", "5", "--pool", "2")
        assert code == 2 and "--crop and --pool preprocess images read with --data" in err


# -- verify: the data options of kernel -------------------------------------------------------
def test_verify_takes_x_limit_crop_pool(folder, capsys, monkeypatch):
    code, out, err = run(capsys, folder, monkeypatch, "verify", "tiny7.kc", "--data", "d28.npz",
                         "--x", "x_test", "--limit", "2", "--crop", "21", "--pool", "3",
                         "--widths", "4", "--samples", "2", "--quiet", "--json", "v.json")
    assert code == 0, err
    report = json.loads((folder / "v.json").read_text())
    assert report["n_inputs"] == 2
    small = np.load(folder / "d7.npz")["x_test"][:2]
    exact = kernelc.api.compile(folder / "tiny7.kc").kernel_fn(small, get="nngp",
                                                                dtype="float64")
    np.testing.assert_allclose(report["analytic"]["nngp"], exact, rtol=1e-12)


# -- predict / fit / augment: train and test alike; one time unit --------------------------------
def test_predict_preprocesses_train_and_test_alike(folder, capsys, monkeypatch):
    args = ["--t", "0.5,inf", "--reg", "0", "--dtype", "float64", "--save-kernels"]
    code, out, err = run(capsys, folder, monkeypatch, "predict", "tiny7.kc", "--train",
                         "d28.npz", "--crop", "21", "--pool", "3", "--out", "p28.npz", *args)
    assert code == 0, err
    assert "images: crop 21, then 3×3 average pooling" in out
    assert "times t in units of 1/mean diag Θ" in out
    code, _, err = run(capsys, folder, monkeypatch, "predict", "tiny7.kc", "--train", "d7.npz",
                       "--out", "p7.npz", *args)
    assert code == 0, err
    p28, p7 = np.load(folder / "p28.npz"), np.load(folder / "p7.npz")
    for key in ("ntk_train_train", "ntk_test_train", "ntk_mean"):
        np.testing.assert_allclose(p28[key], p7[key], rtol=1e-10, atol=1e-12)


def test_predict_time_is_in_units_of_the_mean_ntk_diagonal(folder, capsys, monkeypatch):
    base = ["predict", "tiny7.kc", "--train", "d7.npz", "--reg", "0", "--dtype", "float64"]
    code, _, err = run(capsys, folder, monkeypatch, *base, "--t", "2", "--save-kernels",
                       "--out", "scaled.npz")
    assert code == 0, err
    scaled = np.load(folder / "scaled.npz")
    raw_t = 2 / np.mean(np.diag(scaled["ntk_train_train"]))
    assert str(scaled["t_unit"]) == "mean-diag" and scaled["t"].tolist() == [2.0]
    np.testing.assert_allclose(scaled["t_raw"], [raw_t], rtol=1e-12)
    code, _, err = run(capsys, folder, monkeypatch, *base, "--t", repr(float(raw_t)),
                       "--t-unit", "raw", "--out", "raw.npz")
    assert code == 0, err
    raw = np.load(folder / "raw.npz")
    assert str(raw["t_unit"]) == "raw"
    np.testing.assert_allclose(raw["ntk_mean"], scaled["ntk_mean"], rtol=1e-10)
    assert time_scale(np.diag([1.0, 3.0])) == 0.5 and time_scale(np.eye(2), "raw") == 1.0
    with pytest.raises(InputError, match="time_unit must be one of mean-diag, raw"):
        time_scale(np.eye(2), "seconds")


def test_fit_records_the_time_unit_and_preprocesses(folder, capsys, monkeypatch):
    code, out, err = run(capsys, folder, monkeypatch, "fit", "tiny7.kc", "--train", "d28.npz",
                         "--pool", "4", "--sizes", "3,6", "--t", "1,inf", "--dtype", "float64",
                         "--json", "f.json")
    assert code == 0, err
    assert "images: 4×4 average pooling" in out and "units of 1/mean diag Θ" in out
    res = json.loads((folder / "f.json").read_text())
    assert res["t_unit"] == "mean-diag" and res["t"] == ["1", "inf"]


def test_augment_time_units_and_data_options(folder, capsys, monkeypatch):
    import kernelc.methods.augment as augment
    seen = {}

    def check_augmentation(*args, **kwargs):  # the wiring only: the check itself is test_augment's
        seen.update(kwargs)
        return augment.AugmentationReport("c", "g", "p4", 4, 1, 1e-8, "float64", kwargs["times"],
                                          {"ntk": {"train": 0.0}}, time_unit=kwargs["time_unit"],
                                          time_scale=0.25)
    monkeypatch.setattr(augment, "check_augmentation", check_augmentation)
    common = ["augment", "tiny7.kc", "--group", "p4", "--check", "tiny7.kc", "--random", "2"]
    code, out, err = run(capsys, folder, monkeypatch, *common, "--t", "1,inf")
    assert code == 0, err
    assert seen["times"] == [1.0, np.inf] and seen["time_unit"] == "mean-diag"
    assert "(times t in units of 1/mean diag Θ = 0.25)" in out
    code, out, err = run(capsys, folder, monkeypatch, *common, "--t", "0.5", "--t-unit", "raw")
    assert seen["times"] == [0.5] and seen["time_unit"] == "raw"
    assert "(raw gradient-flow times t)" in out
    code, _, err = run(capsys, folder, monkeypatch, "augment", "tiny7.kc", "--group", "p4",
                       "--random", "2", "--t", "1")
    assert code == 2 and "--t sets the training times of --check" in err
    code, out, err = run(capsys, folder, monkeypatch, "augment", "tiny7.kc", "--group", "p4",
                         "--data", "d28.npz", "--x", "images", "--limit", "2", "--crop", "21",
                         "--pool", "3", "--out", "aug.npz")
    assert code == 0, err
    assert np.load(folder / "aug.npz")["ntk"].shape == (2, 2)


def test_preprocessing_refusals_of_python_values_and_too_few_axes():
    with pytest.raises(InputError, match=r"crop=: a crop size must be ≥ 1, got 0"):
        ImagePreprocessing.parse(crop=0)
    with pytest.raises(InputError, match=r"crop=: cannot read 1\.5 as a size or a \(start, stop\) "
                                         r"range"):
        ImagePreprocessing.parse(crop=(1.5,))
    box = SimpleNamespace(shape=(7, 7), channels=1)
    with pytest.raises(InputError, match=r"x have shape \(28,\) per sample: fewer than the 2 "
                                         r"spatial axes to crop or pool"):
        prepare_images(np.zeros((1, 28)), box, "x", ImagePreprocessing.parse(crop=14))
    with pytest.raises(InputError, match=r"x have shape \(28,\) per sample: fewer than the 2 "
                                         r"spatial axes to pool"):
        ImagePreprocessing.parse(pool=2).pooled(np.zeros((1, 28)), 2, "x")


def test_prepare_images_refuses_complex_and_empty_inputs():
    box = SimpleNamespace(shape=(2, 2), channels=1)
    with pytest.raises(InputError, match=r"x must be real numbers, got dtype complex128"):
        prepare_images(np.zeros((1, 2, 2), complex), box, "x")
    with pytest.raises(InputError, match=r"x holds no samples \(shape \(0, 2, 2\)\)"):
        prepare_images(np.zeros((0, 2, 2)), box, "x")
