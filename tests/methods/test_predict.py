"""Gradient-flow mean, kernel regression and NNGP posterior on small random Gram matrices."""
import numpy as np
import pytest
import scipy.linalg

from kernelc.errors import InputError
from kernelc.methods import GradientFlowPredictor, predict


def _gram(n_train=12, n_test=5, d=20, seed=0):
    """A well-conditioned PSD Gram pair from random features (d > n so K is full rank)."""
    rng = np.random.default_rng(seed)
    f = rng.normal(size=(n_train + n_test, d)) / np.sqrt(d)
    k = f @ f.T + 0.1  # + constant: like a bias term
    y = rng.normal(size=(n_train, 3))
    return k[:n_train, :n_train], k[n_train:, :n_train], k[n_train:, n_train:], y


def test_t0_gives_zeros():
    k, ks, _, y = _gram()
    assert np.array_equal(predict(k, ks, y, t=0.0), np.zeros((5, 3)))


def test_large_t_approaches_kernel_regression():
    k, ks, _, y = _gram()
    exact = ks @ np.linalg.solve(k, y)
    assert np.allclose(predict(k, ks, y), exact, atol=1e-10)
    assert np.max(np.abs(predict(k, ks, y, t=1e6) - exact)) < 1e-8


def test_array_of_times_monotone_and_shapes():
    k, ks, _, y = _gram()
    p = GradientFlowPredictor(k, y)
    times = np.array([0.0, 0.1, 1.0, 10.0, 100.0, np.inf])
    out = p.mean(ks, times)
    assert out.shape == (6, 5, 3)
    # On the training set the residual y − f_t = e^{−Θt} y shrinks monotonically in norm.
    train = p.mean(k, times)
    res = [np.linalg.norm(y - f) for f in train]
    assert all(a > b for a, b in zip(res, res[1:]))
    assert np.allclose(out[-1], p.mean(ks, np.inf))
    # 1-D targets keep a 1-D trailing shape.
    p1 = GradientFlowPredictor(k, y[:, 0])
    assert p1.mean(ks, 2.0).shape == (5,) and p1.mean(ks, times).shape == (6, 5)


@pytest.mark.parametrize("t", [0.01, 0.5, 3.0])
def test_matches_expm(t):
    k, ks, _, y = _gram()
    direct = ks @ np.linalg.solve(k, (np.eye(len(k)) - scipy.linalg.expm(-k * t)) @ y)
    assert np.allclose(predict(k, ks, y, t=t), direct, rtol=1e-9, atol=1e-12)


def test_interpolates_training_data():
    k, _, _, y = _gram()
    assert np.allclose(predict(k, k, y), y, atol=1e-9)


def test_diag_reg_is_relative_ridge():
    k, ks, _, y = _gram()
    reg = 0.1
    ridge = ks @ np.linalg.solve(k + reg * np.mean(np.diag(k)) * np.eye(len(k)), y)
    assert np.allclose(predict(k, ks, y, diag_reg=reg), ridge)
    absolute = GradientFlowPredictor(k, y, diag_reg=reg, diag_reg_absolute_scale=True).mean(ks)
    assert np.allclose(absolute, ks @ np.linalg.solve(k + reg * np.eye(len(k)), y))
    # Regularisation stops interpolation and shrinks the fit.
    fit = predict(k, k, y, diag_reg=reg)
    assert not np.allclose(fit, y) and np.linalg.norm(fit) < np.linalg.norm(y)


def test_singular_kernel_uses_pseudo_inverse():
    rng = np.random.default_rng(1)
    f = rng.normal(size=(10, 3))  # rank 3 < n = 10
    k = f @ f.T
    y = rng.normal(size=10)
    p = GradientFlowPredictor(k, y)
    assert p.n_dropped == 7
    assert np.allclose(p.mean(k), k @ np.linalg.pinv(k, rcond=1e-10) @ y)
    assert np.all(np.isfinite(p.mean(k, [1.0, 1e8, np.inf])))


def test_nngp_posterior():
    k, ks, kss, y = _gram()
    p = GradientFlowPredictor(k, y, nngp_train_train=k)
    post = p.nngp_posterior(ks, np.diag(kss))
    assert np.allclose(post.mean, ks @ np.linalg.solve(k, y))
    assert post.var.shape == (5,) and np.all(post.var >= 0) and post.jitter == 0.0
    full = p.nngp_posterior(ks, kss)
    assert np.allclose(np.diag(full.cov), post.var)
    assert np.all(np.linalg.eigvalsh(full.cov) > -1e-10)
    at_train = p.nngp_posterior(k, np.diag(k))
    assert np.allclose(at_train.var, 0.0, atol=1e-9) and np.allclose(at_train.mean, y)


def test_nngp_jitter_reported_for_singular_kernel():
    f = np.random.default_rng(2).normal(size=(6, 2))
    k = f @ f.T
    post = GradientFlowPredictor(k, np.ones(6), nngp_train_train=k).nngp_posterior(k[:2], np.diag(k)[:2])
    assert post.jitter > 0 and "jitter" in post.warnings[0]


def test_ntk_gp_covariance_reduces_to_nngp_when_kernels_equal():
    # With Θ = K the NTK-GP covariance at t = ∞ equals the GP posterior covariance.
    k, ks, kss, y = _gram()
    p = GradientFlowPredictor(k, y, nngp_train_train=k)
    cov = p.ntk_gp_covariance(ks, ks, kss)
    assert np.allclose(cov, p.nngp_posterior(ks, kss).cov, atol=1e-10)
    assert np.allclose(p.ntk_gp_covariance(ks, ks, np.diag(kss)), np.diag(cov), atol=1e-10)


# ---------------------------------------------------------------- errors
def _err(match, fn, *a, **kw):
    with pytest.raises(InputError, match=match):
        fn(*a, **kw)


def test_error_shape_mismatch():
    k, ks, _, y = _gram()
    _err(r"k_test_train must be 2-D with shape \(m, 12\).*got \(5, 11\)", predict, k, ks[:, :11], y)
    _err(r"y_train has 11 rows but k_train_train has 12", predict, k, ks, y[:11])
    _err(r"k_train_train must be square \(n, n\), got shape \(12, 11\)", predict, k[:, :11], ks, y)
    _err(r"reshape\(1, -1\)", predict, k, ks[0], y)  # 1-D test row
    _err(r"must be 2-D with shape \(m, 12\)", predict, k, ks[0], y)


def test_error_nan_in_kernel_and_targets():
    k, ks, _, y = _gram()
    bad = k.copy(); bad[3, 4] = bad[4, 3] = np.nan
    _err(r"k_train_train contains 2 NaN/inf value\(s\); first is NaN at index \(3, 4\)", predict, bad, ks, y)
    badt = ks.copy(); badt[0, 0] = np.inf
    _err(r"k_test_train contains 1 NaN/inf", predict, k, badt, y)
    yb = y.copy(); yb[2, 1] = np.nan
    _err(r"y_train contains 1 NaN/inf value\(s\); first is NaN at index \(2, 1\)", predict, k, ks, yb)


def test_error_too_few_points():
    _err(r"k_train_train has 1 training point\(s\); at least 2 are needed", predict, [[1.0]], [[1.0]], [1.0])


def test_error_negative_or_nan_time():
    k, ks, _, y = _gram()
    _err(r"training time t must be >= 0, got -1", predict, k, ks, y, t=-1.0)
    _err(r"training time t must be >= 0, got -2", predict, k, ks, y, t=[1.0, -2.0])
    _err(r"t contains NaN", predict, k, ks, y, t=np.nan)


def test_error_non_symmetric():
    k, ks, _, y = _gram()
    bad = k.copy(); bad[0, 1] += 0.5
    _err(r"k_train_train is not symmetric: \|K\[\d,\d\] - K\[\d,\d\]\| = 0.5", predict, bad, ks, y)


def test_error_regularisation_and_not_psd():
    k, ks, _, y = _gram()
    _err(r"diag_reg must be finite and >= 0, got -0.1", predict, k, ks, y, diag_reg=-0.1)
    _err(r"not positive semi-definite.*increase diag_reg", predict, k - 2 * np.eye(len(k)), ks, y)
    _err(r"nngp_posterior needs the NNGP training kernel", GradientFlowPredictor(k, y).nngp_posterior, ks, ks[:, 0])
    p = GradientFlowPredictor(k, y, nngp_train_train=np.diag(np.r_[-1.0, np.ones(11)]))
    _err(r"not positive definite even with jitter.*diag_reg > 0", p.nngp_posterior, ks, ks[:, 0])
    p = GradientFlowPredictor(k, y, nngp_train_train=k)
    _err(r"nngp_test_test must be the diagonal \(5,\) or the full \(5, 5\)", p.nngp_posterior, ks, np.ones(4))


# -- negative eigenvalues (kernelc.runtime.psd): the ridge is chosen to cover them -----------------
def _indefinite(n=12, low=-1e-3, seed=3):
    x = np.random.default_rng(seed).normal(size=(n, 4))
    k = x @ x.T + np.eye(n)
    w, v = np.linalg.eigh(k)
    return k - (w[0] - low) * np.outer(v[:, 0], v[:, 0])  # λ_min -> low


def test_a_ridge_below_a_negative_eigenvalue_is_raised_with_a_warning():
    from kernelc.errors import IndefiniteKernelWarning
    from kernelc.methods.predict import RIDGE_MARGIN
    k = _indefinite()
    y = np.arange(12.0)
    reg = 1e-6  # × mean diag ≈ 5e-6, below |λ_min| = 1e-3
    with pytest.warns(IndefiniteKernelWarning, match=r"negative eigenvalue -0\.001 .* raised to"):
        pred = GradientFlowPredictor(k, y, diag_reg=reg)
    assert pred.ridge == pytest.approx(RIDGE_MARGIN * 1e-3)
    expected = k @ np.linalg.solve(k + pred.ridge * np.eye(12), y)
    np.testing.assert_allclose(pred.mean(k), expected, rtol=1e-9, atol=1e-9)


def test_a_ridge_that_covers_the_negative_eigenvalue_is_kept():
    import warnings
    k = _indefinite(low=-1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pred = GradientFlowPredictor(k, np.ones(12), diag_reg=1e-4)
    assert pred.ridge == pytest.approx(1e-4 * np.mean(np.diag(k)))


def test_error_missing_or_non_numeric_arrays():
    k, ks, _, y = _gram()
    _err(r"^input error: y_train is missing$", predict, k, ks, None)
    _err(r"k_train_train is not a numeric array \(", predict, [["a", "b"], ["c", "d"]], ks, y)
    _err(r"y_train must be 1-D or 2-D, got shape \(12, 3, 1\)", predict, k, ks, y[..., None])


def test_error_bad_reg_rcond_and_times():
    k, ks, _, y = _gram()
    _err(r"diag_reg must be a number, got 'big'", predict, k, ks, y, diag_reg="big")
    _err(r"rcond must be in \[0, 1\), got 1\.5", GradientFlowPredictor, k, y, rcond=1.5)
    _err(r"t must be a number or a 1-D array of numbers, got 'soon'", predict, k, ks, y, t="soon")
    _err(r"t must be a scalar or 1-D array of times, got shape \(2, 1\)", predict, k, ks, y,
         t=[[1.0], [2.0]])


def test_error_nngp_kernels_that_do_not_match():
    k, ks, kss, y = _gram()
    _err(r"nngp_train_train has shape \(11, 11\), expected \(12, 12\)", GradientFlowPredictor,
         k, y, nngp_train_train=k[:11, :11])
    _err(r"ntk_gp_covariance needs the NNGP training kernel: pass nngp_train_train=",
         GradientFlowPredictor(k, y).ntk_gp_covariance, ks, ks, kss)
    p = GradientFlowPredictor(k, y, nngp_train_train=k)
    _err(r"nngp_test_train has 4 test rows but k_test_train has 5", p.ntk_gp_covariance,
         ks, ks[:4], kss)
    _err(r"nngp_test_test must be \(5,\) or \(5, 5\), got \(4,\)", p.ntk_gp_covariance,
         ks, ks, np.ones(4))


def test_error_complex_arrays_are_refused_not_cast():
    k, ks, _, y = _gram()
    # np.asarray(..., float64) dropped the imaginary part with a warning only
    _err(r"k_test_train must hold real numbers, got a complex array", predict, k, ks + 1j, y)
    _err(r"y_train must hold real numbers, got a complex array", predict, k, ks, y + 0j)
    _err(r"rcond must be in \[0, 1\), got 'x'", GradientFlowPredictor, k, y, rcond="x")
