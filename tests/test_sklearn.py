"""kernelc.sklearn: the estimators and the Gaussian-process kernel against scikit-learn's
conventions (check_estimator), GridSearchCV over a spec constant, a Pipeline, and
GaussianProcessRegressor agreeing with kernelc's own predictor. Skipped without scikit-learn.

Two tiny specs: MLP (no input line: feature vectors of any width, so every scikit-learn check
gets its own number of features) and P4 (a 3×3 image, p4 group convolution) for flattened and
shaped image inputs. Each distinct spec text compiles once per process (the estimators' cache).
"""
from __future__ import annotations

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.3")

from sklearn.gaussian_process import GaussianProcessRegressor  # noqa: E402
from sklearn.gaussian_process.kernels import WhiteKernel  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from kernelc.errors import KernelcError, MissingDependencyError, SpecError  # noqa: E402
from kernelc.methods.predict import GradientFlowPredictor  # noqa: E402
from kernelc.sklearn import (EstimatorInputError, EstimatorNotFittedError,  # noqa: E402
                             EstimatorTypeError, KernelClassifier, KernelcKernel,
                             KernelRegressor, compiled_network)

#: A one-hidden-layer erf network on feature vectors; W_std = ws changes the kernel's shape
#: (erf is not homogeneous), so a search over ws has something to select.
MLP = ("network mlp; group Z2; let ws = 1.5\n"
       "flatten; dense(8, W_std=ws, b_std=0.3); erf; dense(1, W_std=ws)\n")
#: A p4 network on 3×3 single-channel images.
P4 = ("network p4_tiny\ngroup p4\ninput 3 x 3 channels 1\nlet ws = 1.4\n"
      "lift(size=3, W_std=ws, b_std=0.1)\nrelu\ngroup_pool\ndense(1)\n")


def regression_data(n=24, m=8, d=4, seed=0):
    rng = np.random.default_rng(seed)
    x, xt = rng.normal(size=(n, d)), rng.normal(size=(m, d))
    f = lambda a: np.sin(2 * a[:, 0]) + a[:, 1] ** 2 - a[:, 2]  # noqa: E731
    return x, f(x), xt, f(xt)


# -- scikit-learn's estimator checks ------------------------------------------------------------

@pytest.mark.parametrize("estimator", [
    # the regressor's run is ~16 s (its fit/predict paths are also in the fast tests below)
    pytest.param(KernelRegressor(MLP), marks=pytest.mark.slow),
    pytest.param(KernelClassifier(MLP), marks=pytest.mark.slow)],  # ~9 s
    ids=["KernelRegressor", "KernelClassifier"])
def test_check_estimator(estimator):
    from sklearn.utils.estimator_checks import check_estimator
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if tuple(int(p) for p in sklearn.__version__.split(".")[:2]) < (1, 6):
            check_estimator(estimator)  # raises on the first failed check
            return
        results = check_estimator(estimator, on_fail=None, on_skip=None)
    failed = [(r["check_name"], repr(r["exception"])) for r in results if r["status"] == "failed"]
    assert not failed, failed
    # skipped only for what this environment lacks (pandas, the array API), never by request
    skipped = {r["check_name"]: str(r["exception"]) for r in results if r["status"] == "skipped"}
    assert all("not installed" in why or "SCIPY_ARRAY_API" in why
               for why in skipped.values()), skipped
    assert sum(r["status"] == "passed" for r in results) >= 45


# -- fit / predict / score ----------------------------------------------------------------------

def test_regressor_is_kernelc_predictor_on_kernelc_kernels():
    x, y, xt, _ = regression_data()
    est = KernelRegressor(MLP, t=3.0, ridge=1e-3).fit(x, y)
    net = compiled_network(MLP, n_features=4)
    shaped, shaped_t = x.reshape(-1, 1, 1, 4), xt.reshape(-1, 1, 1, 4)
    theta = net.kernel_fn(shaped, None, "ntk", dtype="float64")
    cross = net.kernel_fn(shaped_t, shaped, "ntk", dtype="float64")
    want = GradientFlowPredictor(theta, y, diag_reg=1e-3).mean(cross, 3.0)
    np.testing.assert_allclose(est.predict(xt), want, rtol=1e-12)
    assert est.n_features_in_ == 4 and est.X_fit_.shape == (24, 1, 1, 4)
    assert "input 1 x 1 channels 4; " in est.spec_text_


def test_infinite_time_is_the_limit_and_nngp_differs():
    x, y, xt, yt = regression_data()
    at_inf = KernelRegressor(MLP).fit(x, y).predict(xt)
    late = KernelRegressor(MLP, t=1e9).fit(x, y).predict(xt)
    np.testing.assert_allclose(late, at_inf, rtol=1e-6, atol=1e-9)
    assert np.all(KernelRegressor(MLP, t=0.0).fit(x, y).predict(xt) == 0)
    nngp = KernelRegressor(MLP, kernel="nngp").fit(x, y)
    assert not np.allclose(nngp.predict(xt), at_inf)
    assert nngp.score(xt, yt) > 0.3


def test_flattened_and_shaped_images_agree():
    rng = np.random.default_rng(1)
    x, xt = rng.normal(size=(10, 3, 3, 1)), rng.normal(size=(4, 3, 3, 1))
    y = x[:, 1, 1, 0] + x.mean(axis=(1, 2, 3))
    shaped = KernelRegressor(P4).fit(x, y)
    flat = KernelRegressor(P4).fit(x.reshape(10, -1), y)
    np.testing.assert_allclose(flat.predict(xt.reshape(4, -1)), shaped.predict(xt), rtol=1e-12)
    # single-channel images may omit the channel axis
    np.testing.assert_allclose(shaped.predict(xt[..., 0]), shaped.predict(xt), rtol=1e-12)
    # p4-invariant: a rotated image gets the same prediction
    np.testing.assert_allclose(shaped.predict(np.rot90(xt, axes=(1, 2))), shaped.predict(xt),
                               rtol=1e-9)


def test_classifier_labels_and_decision_function():
    x, y, xt, yt = regression_data()
    labels = np.where(y > np.median(y), "high", "low")
    clf = KernelClassifier(MLP).fit(x, labels)
    assert list(clf.classes_) == ["high", "low"]
    scores = clf.decision_function(xt)
    assert scores.shape == (8,)
    assert list(clf.predict(xt)) == list(np.where(scores > 0, "low", "high"))
    assert clf.score(x, labels) == 1.0  # interpolates its training set (ridge 1e-4)
    three = KernelClassifier(MLP).fit(x, np.digitize(y, np.quantile(y, [0.33, 0.66])))
    assert three.decision_function(xt).shape == (8, 3)


def test_fitted_estimator_pickles():
    x, y, xt, _ = regression_data()
    est = KernelRegressor(MLP).fit(x, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(xt), est.predict(xt))


def test_each_spec_text_compiles_once(monkeypatch):
    import kernelc.api
    import kernelc.sklearn as ks
    compiled = []
    real = kernelc.api.compile
    monkeypatch.setattr(kernelc.api, "compile", lambda spec: compiled.append(1) or real(spec))
    monkeypatch.setattr(ks, "_COMPILED", type(ks._COMPILED)())
    x, y, _, _ = regression_data()
    for _ in range(3):
        KernelRegressor(MLP, constants={"ws": 0.7}).fit(x, y)
    assert len(compiled) == 1
    KernelRegressor(MLP, constants={"ws": 0.8}).fit(x, y)
    KernelRegressor(MLP, constants={"ws": 0.8}).fit(x[:, :3], y)  # 3 features: another input
    assert len(compiled) == 3


# -- hyperparameters: GridSearchCV over a spec constant, set_params -----------------------------

def test_grid_search_over_w_std_selects_a_value():
    x, y, _, _ = regression_data(n=30)
    grid = [0.3, 1.0, 3.0]
    search = GridSearchCV(KernelRegressor(MLP), {"constants__ws": grid}, cv=3).fit(x, y)
    scores = search.cv_results_["mean_test_score"]
    assert np.ptp(scores) > 0.01  # W_std changes the kernel's shape, not only its scale
    assert search.best_params_ == {"constants__ws": grid[int(np.argmax(scores))]}
    assert search.best_estimator_.constants == {"ws": search.best_params_["constants__ws"]}
    assert f"let ws = {float(search.best_params_['constants__ws'])!r}" in \
        search.best_estimator_.spec_text_


def test_set_params_of_a_constant_makes_a_new_dict():
    given = {"ws": 1.0}
    est = KernelRegressor(MLP, constants=given)
    assert est.get_params()["constants__ws"] == 1.0
    assert "constants__ws" not in est.get_params(deep=False)
    est.set_params(constants__ws=2.0, ridge=1e-2)
    assert est.constants == {"ws": 2.0} and est.ridge == 1e-2 and given == {"ws": 1.0}


def test_set_params_of_a_constant_needs_a_dict():
    est = KernelRegressor(MLP, constants=[1.0])
    err = _error(SpecError, est.set_params, constants__ws=2.0)
    assert err.message == "constants must be a dict of spec constant names to numbers, got [1.0]"


def test_a_kernel_without_a_positive_eigenvalue_is_an_input_error():
    linear = "network lin; group Z2; flatten; dense(1)"  # no bias: K = x·x'/d, zero at x = 0
    err = _error(EstimatorInputError, KernelRegressor(linear).fit, np.zeros((3, 2)), np.ones(3))
    assert err.message == ("k_train_train has no positive eigenvalue; it is not a valid NTK Gram "
                           "matrix")


def test_pipeline_with_a_scaler():
    x, y, xt, yt = regression_data()
    pipe = make_pipeline(StandardScaler(), KernelRegressor(MLP, ridge=1e-3)).fit(x, y)
    assert pipe.predict(xt).shape == (8,)
    assert pipe.score(xt, yt) > 0.3


# -- the Gaussian-process kernel -----------------------------------------------------------------

def test_gaussian_process_regressor_agrees_with_the_nngp_estimator():
    x, y, xt, _ = regression_data()
    ridge = 1e-3
    kernel = KernelcKernel(MLP)
    # kernelc's ridge is relative to the mean diagonal; GaussianProcessRegressor's alpha is absolute
    alpha = ridge * kernel.diag(x).mean()
    gpr = GaussianProcessRegressor(kernel=kernel, alpha=alpha, optimizer=None).fit(x, y)
    est = KernelRegressor(MLP, kernel="nngp", ridge=ridge).fit(x, y)
    np.testing.assert_allclose(gpr.predict(xt), est.predict(xt), rtol=1e-8, atol=1e-10)
    mean, std = gpr.predict(xt, return_std=True)
    assert std.shape == (8,) and np.all(std >= 0)
    np.testing.assert_allclose(kernel.diag(xt), np.diag(kernel(xt)), rtol=1e-12)


def test_kernel_has_no_tunable_hyperparameters_but_sums_optimise():
    kernel = KernelcKernel(MLP)
    assert kernel.hyperparameters == [] and kernel.theta.shape == (0,)
    assert not kernel.is_stationary() and kernel.requires_vector_input
    assert repr(kernel) == "KernelcKernel('<spec text>', kernel='nngp')"
    x, y, _, _ = regression_data(n=12)
    gram, grad = kernel(x, eval_gradient=True)
    assert gram.shape == (12, 12) and grad.shape == (12, 12, 0)
    noisy = GaussianProcessRegressor(kernel=kernel + WhiteKernel(0.5), random_state=0).fit(x, y)
    assert noisy.kernel_.k2.noise_level != 0.5  # the white noise was fitted, the spec kept


def test_ntk_kernel_and_cross_kernel():
    x, _, xt, _ = regression_data()
    kernel = KernelcKernel(MLP, kernel="ntk")
    net = compiled_network(MLP, n_features=4)
    want = net.kernel_fn(xt.reshape(-1, 1, 1, 4), x.reshape(-1, 1, 1, 4), "ntk", dtype="float64")
    np.testing.assert_allclose(kernel(xt, x), want, rtol=1e-12)


# -- errors: each with its message ---------------------------------------------------------------

def _error(cls, fn, *args, **kwargs) -> KernelcError:
    with pytest.raises(cls) as info:
        fn(*args, **kwargs)
    assert isinstance(info.value, KernelcError)
    return info.value


@pytest.mark.parametrize("params,message", [
    ({"kernel": "rbf"}, "kernel must be 'ntk' or 'nngp', got 'rbf'"),
    ({"dtype": "float16"}, "dtype must be 'float32' or 'float64', got 'float16'"),
    ({"ridge": -1.0}, "ridge must be a finite number >= 0, got -1.0"),
    ({"t": -1.0}, "t must be a number >= 0 (or None for t = ∞), got -1.0"),
    ({"t": 1.0, "kernel": "nngp"}, "t applies to the NTK (gradient-flow time); the NNGP posterior "
                                   "mean has none: leave t=None with kernel='nngp'"),
    # np.complex128 is an np.number: its imaginary part was dropped by float() (a ComplexWarning)
    ({"ridge": np.complex128(1e-3 + 1j)},
     "ridge must be a finite number >= 0, got np.complex128(0.001+1j)"),
    ({"t": np.complex128(2 + 1j)}, "t must be a number >= 0 (or None for t = ∞), got "
                                   "np.complex128(2+1j)"),
    # an int beyond float64: OverflowError inside math.isfinite
    ({"ridge": 10 ** 400}, f"ridge must be a finite number >= 0, got {10 ** 400!r}"),
])
def test_bad_parameters_are_refused_in_fit(params, message):
    x, y, _, _ = regression_data()
    est = KernelRegressor(MLP, **params)  # the constructor stores them unchanged
    assert all(getattr(est, k) == v for k, v in params.items())
    err = _error(EstimatorInputError, est.fit, x, y)
    assert isinstance(err, ValueError) and err.message == message


def test_spec_and_constant_errors():
    x, y, _, _ = regression_data()
    err = _error(SpecError, KernelRegressor(3).fit, x, y)
    assert err.message == "spec must be spec text or the path of a .kc file, got int"
    err = _error(SpecError, KernelRegressor(MLP, constants=[1.0]).fit, x, y)
    assert err.message == "constants must be a dict of spec constant names to numbers, got [1.0]"
    err = _error(SpecError, KernelRegressor(MLP, constants={"wss": 1.0}).fit, x, y)
    assert err.message == "constant 'wss' is not defined by a 'let' in the spec"
    assert err.suggestion == "did you mean 'ws'?" and err.expected == ["ws"]
    err = _error(SpecError, KernelRegressor(MLP, constants={"ws": float("nan")}).fit, x, y)
    assert err.message == "constant 'ws' must be a finite real number, got nan"
    box = "network box\ngroup Z2\ninput 2 x 2 channels 1\nconv(1)\n"
    err = _error(SpecError, KernelRegressor(box).fit, np.ones((3, 4)), np.arange(3.0))
    assert err.message == ("spec 'box' ends in Z^2 box 2×2 ×∞, not a vector of outputs; end it "
                           "with group_pool/flatten and dense(k) to use it as an estimator or "
                           "kernel")


def test_data_errors():
    x, y, xt, _ = regression_data()
    err = _error(EstimatorInputError, KernelRegressor(MLP).fit, x[:1], y[:1])
    assert err.message == "KernelRegressor needs at least 2 training samples, got 1 sample"
    err = _error(EstimatorInputError, KernelClassifier(MLP).fit, x, np.zeros(len(x), int))
    assert err.message == "KernelClassifier needs at least 2 classes, got 1 class (0)"
    err = _error(EstimatorNotFittedError, KernelRegressor(MLP).predict, xt)
    assert err.message.startswith("This KernelRegressor instance is not fitted yet.")
    fitted = KernelRegressor(MLP).fit(x, y)
    err = _error(EstimatorInputError, fitted.predict, xt[:, :3])
    assert err.message == "X has 3 features, but KernelRegressor is expecting 4 features as input"
    bad = x.copy()
    bad[2, 1] = np.nan
    err = _error(EstimatorInputError, KernelRegressor(MLP).fit, bad, y)
    assert "Input X contains NaN" in err.message
    objects = x.astype(object)
    objects[0, 0] = {"a": 1}
    err = _error(EstimatorTypeError, KernelRegressor(MLP).fit, objects, y)
    assert "argument must be a string or a real number" in err.message
    dates = np.arange(len(x)).astype("datetime64[D]")  # scikit-learn's y_numeric lets them by
    err = _error(EstimatorInputError, KernelRegressor(MLP).fit, x, dates)
    assert err.message == "y must be real numbers for a regression, got dtype datetime64[D]"
    err = _error(EstimatorInputError, KernelRegressor(P4).fit, np.ones((4, 5)), np.arange(4.0))
    assert err.message == ("X of KernelRegressor have shape (5,) per sample, but spec 'p4_tiny' "
                           "takes 3×3 with 1 channel(s), i.e. (N, 3, 3, 1); or flattened, shape "
                           "(N, 9)")


def test_set_params_refuses_unknown_and_nested_names():
    # scikit-learn's ValueError (with the whole repr, spec text included) and, for NAME__SUB of a
    # parameter that is a string, an AttributeError from inside scikit-learn
    est = KernelRegressor(MLP)
    err = _error(EstimatorInputError, est.set_params, ridge=1.0, ridgee=1.0)
    assert err.message == "invalid parameter 'ridgee' for KernelRegressor"
    assert err.suggestion == "did you mean 'ridge'?" and "constants" in err.expected
    assert est.ridge != 1.0  # nothing set
    err = _error(EstimatorInputError, KernelClassifier(MLP).set_params, kernel__x=1)
    assert err.message == ("invalid parameter 'kernel__x' for KernelClassifier: kernel has no "
                           "parameters of its own")
    err = _error(EstimatorInputError, KernelcKernel(MLP).set_params, foo=1)
    assert err.message == "invalid parameter 'foo' for KernelcKernel"
    err = _error(EstimatorInputError, KernelcKernel(MLP).set_params, constants__ws=1.0)
    assert err.message == ("invalid parameter 'constants__ws' for KernelcKernel: constants has no "
                           "parameters of its own")
    assert KernelcKernel(MLP).set_params(kernel="ntk").kernel == "ntk"


def test_score_errors():
    # scikit-learn's metrics raised their ValueError as it was
    x, y, xt, yt = regression_data()
    fitted = KernelRegressor(MLP).fit(x, y)
    err = _error(EstimatorInputError, fitted.score, xt, y)
    assert err.message == ("score(X, y): Found input variables with inconsistent numbers of "
                           "samples: [24, 8]")
    err = _error(EstimatorInputError, fitted.score, xt, np.full(8, np.nan))
    assert err.message == "score(X, y): Input contains NaN."
    err = _error(EstimatorTypeError, fitted.score, xt, np.array([{"a": 1}] * 8, dtype=object))
    assert err.message == ("score(X, y): float() argument must be a string or a real number, not "
                           "'dict'")
    clf = KernelClassifier(MLP).fit(x, np.where(y > 0, "a", "b"))
    err = _error(EstimatorInputError, clf.score, xt, np.arange(8))
    assert err.message.startswith("score(X, y): Mix of label input types (string and number)")
    _error(EstimatorNotFittedError, KernelClassifier(MLP).score, xt, yt)  # passes unchanged


def test_kernel_errors():
    x = np.ones((3, 4))
    err = _error(EstimatorInputError, KernelcKernel(MLP), x, x, eval_gradient=True)
    assert err.message == "Gradient can only be evaluated when Y is None."
    err = _error(EstimatorInputError, KernelcKernel(MLP), x, np.ones((2, 5)))
    assert err.message == "Y has 5 features, but KernelcKernel is expecting 4 features as input"
    err = _error(EstimatorInputError, KernelcKernel(MLP, kernel="rbf"), x)
    assert err.message == "kernel must be 'ntk' or 'nngp', got 'rbf'"
    err = _error(EstimatorInputError, KernelcKernel(MLP, dtype="float16").diag, x)
    assert err.message == "dtype must be 'float32' or 'float64', got 'float16'"
    # x·x' beyond float64: the erf NNGP came back as ±W_std², a GP/regressor predicted 0
    err = _error(EstimatorInputError, KernelcKernel(MLP), x * 1e200)
    assert err.message == ("X has values too large for float64: the sum of squares of a sample "
                           "overflows (largest |value| 1e+200); scale them down")
    fitted = KernelRegressor(MLP, kernel="nngp").fit(regression_data()[0], regression_data()[1])
    err = _error(EstimatorInputError, fitted.predict, np.full((2, 4), 1e160))
    assert err.message.startswith("X has values too large for float64")


def test_importing_kernelc_does_not_import_sklearn():
    code = "import sys, kernelc; kernelc.compile; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def test_missing_scikit_learn_is_a_clear_error(monkeypatch):
    for name in [m for m in sys.modules if m == "sklearn" or m.startswith("sklearn.")]:
        monkeypatch.setitem(sys.modules, name, None)  # "import sklearn..." now fails
    monkeypatch.delitem(sys.modules, "kernelc.sklearn")  # restored after the test
    with pytest.raises(MissingDependencyError) as info:
        import kernelc.sklearn  # noqa: F401
    assert isinstance(info.value, ImportError)
    assert info.value.message == ("kernelc.sklearn needs scikit-learn (>= 1.3), which is not "
                                  "installed")
    assert info.value.suggestion == ("pip install 'kernelc[sklearn]'  (or: pip install "
                                     "'scikit-learn>=1.3')")
