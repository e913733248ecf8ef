"""Conjugate-gradient kernel regression (kernelc.methods.solvers) against the dense solve, on an
in-memory and on a memory-mapped Gram matrix, and its refusals."""
import re

import numpy as np
import pytest

from kernelc.errors import InputError
from kernelc.methods import solvers
from kernelc.methods.predict import (ConjugateGradientRegressor, GradientFlowPredictor,
                                     kernel_regression)
from kernelc.methods.solvers import SolverError, pivoted_cholesky, solve_regularised


def gram(n, seed=0):
    """A relu-like Gram matrix: arc-cosine kernel of random inputs (fast-decaying spectrum)."""
    x = np.random.default_rng(seed).normal(size=(n, 6))
    norms = np.linalg.norm(x, axis=1)
    cos = np.clip(x @ x.T / np.outer(norms, norms), -1, 1)
    theta = np.arccos(cos)
    return np.outer(norms, norms) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)


@pytest.fixture(scope="module")
def problem():
    k = gram(300)
    y = np.random.default_rng(1).normal(size=(300, 3))
    return k, y


def test_cg_agrees_with_the_dense_solve(problem):
    k, y = problem
    shift = 1e-4 * np.mean(np.diag(k))
    dense = np.linalg.solve(k + shift * np.eye(len(k)), y)
    result = solve_regularised(k, y, shift, tol=1e-8, rank=50)
    np.testing.assert_allclose(result.alpha, dense, rtol=1e-5, atol=1e-6 * np.abs(dense).max())
    assert result.residuals.max() <= 1e-8 and 0 < result.iterations < 300
    assert result.passes == result.iterations + 1  # one read of K per iteration, one check


def test_the_preconditioner_saves_iterations(problem):
    k, y = problem
    shift = 1e-4 * np.mean(np.diag(k))
    plain = solve_regularised(k, y, shift, tol=1e-6, rank=0, max_iter=5000)
    preconditioned = solve_regularised(k, y, shift, tol=1e-6, rank=50)
    assert preconditioned.iterations * 3 < plain.iterations


def test_a_memory_mapped_gram_matrix_is_read_by_blocks(problem, tmp_path):
    k, y = problem
    on_disk = np.lib.format.open_memmap(tmp_path / "ntk.npy", "w+", np.float32, k.shape)
    on_disk[:] = k
    on_disk.flush()
    k32 = np.load(tmp_path / "ntk.npy", mmap_mode="r")
    shift = 1e-3 * np.mean(np.diag(k32))
    dense = np.linalg.solve(np.asarray(k32, np.float64) + shift * np.eye(len(k)), y[:, 0])
    out = solve_regularised(k32, y[:, 0], shift, tol=1e-7, rank=40, rows=64)
    np.testing.assert_allclose(out.alpha, dense, rtol=1e-5, atol=1e-6 * np.abs(dense).max())


def test_pivoted_cholesky_is_exact_at_full_rank():
    k = gram(40, seed=3) + 1e-6 * np.eye(40)
    low = pivoted_cholesky(k, 40, rel_tol=0)
    np.testing.assert_allclose(low @ low.T, k, atol=1e-9 * np.abs(k).max())


def test_an_unconverged_solve_is_refused_with_how_far_it_got(problem):
    k, y = problem
    with pytest.raises(SolverError, match=r"reached a relative residual of .* after 2 "
                                          r"iterations \(tolerance 1e-10\); raise the "
                                          r"preconditioner rank \(now 0\)"):
        solve_regularised(k, y, 1e-6, tol=1e-10, rank=0, max_iter=2)


def test_bad_arguments_are_refused(problem):
    k, y = problem
    with pytest.raises(InputError, match="need a positive ridge"):
        solve_regularised(k, y, 0.0)
    with pytest.raises(InputError, match="the targets have 299 rows but the kernel has 300"):
        solve_regularised(k, y[:-1], 1.0)
    with pytest.raises(InputError, match="solver must be 'auto', 'dense' or 'cg'"):
        kernel_regression(k, k[:5], y, solver="lu")


def test_auto_takes_cg_above_the_dense_limit(problem, monkeypatch):
    k, y = problem
    dense = kernel_regression(k[:250, :250], k[250:, :250], y[:250], 1e-4, solver="dense")
    monkeypatch.setattr(solvers, "DENSE_LIMIT", 100)
    calls = []
    original = solvers.solve_regularised
    monkeypatch.setattr(solvers, "solve_regularised",
                        lambda *a, **kw: calls.append(1) or original(*a, **kw))
    auto = kernel_regression(k[:250, :250], k[250:, :250], y[:250], 1e-4, tol=1e-9)
    assert calls == [1]
    np.testing.assert_allclose(auto, dense, rtol=1e-5, atol=1e-6 * np.abs(dense).max())


def test_the_cg_regressor_gives_the_dense_predictions_and_nngp_posterior(problem):
    k, y = problem
    train, test = slice(0, 250), slice(250, 260)
    kt, ks = k[train, train], k[test, train]
    nngp = 0.5 * kt
    kss = 0.5 * np.diag(k)[test]
    dense = GradientFlowPredictor(kt, y[train], nngp_train_train=nngp, diag_reg=1e-3)
    cg = ConjugateGradientRegressor(kt, y[train], nngp_train_train=nngp, diag_reg=1e-3,
                                    tol=1e-10, rank=50)
    want, got = dense.mean(ks), cg.mean(ks)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-7 * np.abs(want).max())
    want, got = dense.nngp_posterior(0.5 * ks, kss), cg.nngp_posterior(0.5 * ks, kss)
    np.testing.assert_allclose(got.mean, want.mean, rtol=0, atol=1e-7 * np.abs(want.mean).max())
    np.testing.assert_allclose(got.var, want.var, rtol=0, atol=1e-7 * kss.max())
    assert cg.nngp_posterior(0.5 * ks).var is None  # the mean alone: no solve for variances
    assert len(cg.solves) == 3 and all(r.residuals.max() <= 1e-10 for r in cg.solves)


def test_the_cg_regressor_refuses_what_it_cannot_solve(problem):
    k, y = problem
    with pytest.raises(InputError, match=r"the conjugate-gradient solver needs a positive ridge "
                                         r"\(diag_reg > 0, CLI --reg\): its convergence rests"):
        ConjugateGradientRegressor(k, y, diag_reg=0.0)
    with pytest.raises(InputError, match="y_train has 299 rows but k_train_train has 300"):
        ConjugateGradientRegressor(k, y[:-1])
    cg = ConjugateGradientRegressor(k, y, rank=50)
    with pytest.raises(InputError, match="nngp_posterior needs the NNGP training kernel"):
        cg.nngp_posterior(k[:3])
    cg = ConjugateGradientRegressor(k, y, nngp_train_train=k, rank=50)
    with pytest.raises(InputError, match=r"nngp_test_test must be the \(3,\) prior variances, "
                                         r"got \(2,\)"):
        cg.nngp_posterior(k[:3], np.ones(2))


def test_a_kernel_that_is_not_a_square_array_is_refused_before_the_solve():
    # solve_regularised itself, and the regressor in front of it (which once failed with
    # AttributeError on a list and numpy's ValueError on a 1-D array)
    with pytest.raises(InputError, match=r"the training kernel must be square, got shape \(3, 4\)"):
        solve_regularised(np.ones((3, 4)), np.ones(3), 1.0)
    for k in (np.ones(3), np.ones((3, 4))):
        with pytest.raises(InputError, match=rf"k_train_train must be square \(n, n\), got shape "
                                             rf"{re.escape(str(k.shape))}"):
            ConjugateGradientRegressor(k, np.ones(3))
        with pytest.raises(InputError, match=r"k_train_train must be square"):
            kernel_regression(k, np.ones((1, 3)), np.ones(3), solver="cg")
    lst = [[2.0, 0.0], [0.0, 2.0]]
    np.testing.assert_allclose(ConjugateGradientRegressor(lst, [1.0, 1.0], diag_reg=1e-3, tol=1e-10)
                               .mean(np.eye(2)), 1 / (2 + 2e-3))
    with pytest.raises(InputError, match=r"k_train_train is not a numeric array"):
        ConjugateGradientRegressor([["a", "b"], ["c", "d"]], [1.0, 1.0])


def test_the_cg_path_checks_its_training_kernels_and_options_first():
    """The CG path keeps arrays (memory-mapped ones too) unread; their values, dtype and symmetry
    (sampled) and the solver's options are now checked before a solve, which had ended in a
    raw ValueError of scipy, or a message about the ridge for a NaN kernel."""
    rng = np.random.default_rng(0)
    f = rng.normal(size=(8, 12))
    k, y, ks = f @ f.T + 0.1, rng.normal(size=8), rng.normal(size=(2, 8))

    def refused(match, kk=k, **kw):
        with pytest.raises(InputError, match=match):
            ConjugateGradientRegressor(kk, y, **kw)
    refused(r"k_train_train contains NaN or inf values \(in rows 0\.\.\.7\)",
            np.where(k > 1, np.nan, k))
    refused(r"k_train_train must hold real numbers, got dtype <U1", np.full((8, 8), "a"))
    refused(r"k_train_train must hold real numbers, got dtype complex128", k + 1j)
    refused(r"k_train_train is not symmetric: \|K\[", k + np.triu(np.ones((8, 8)), 1))
    refused(r"k_train_train has a mean diagonal -\S+ <= 0; it is not a valid kernel", -k)
    refused(r"k_train_train has no training points", k[:0, :0])
    refused(r"nngp_train_train has shape \(7, 7\), expected \(8, 8\)", nngp_train_train=k[:7, :7])
    refused(r"tol must be a number in \(0, 1\), got 'x'", tol="x")
    refused(r"rank \(of the preconditioner\) must be an integer >= 0, got 1\.5", rank=1.5)
    refused(r"max_iter must be an integer >= 0 or None, got 'x'", max_iter="x")
    # a list as the NNGP kernel (its .ndim was read: AttributeError) is taken as an array
    post = ConjugateGradientRegressor(k, y, nngp_train_train=k.tolist()).nngp_posterior(ks)
    assert np.allclose(post.mean, ks @ np.linalg.solve(k + 1e-4 * np.mean(np.diag(k)) *
                                                       np.eye(8), y), rtol=1e-5)
