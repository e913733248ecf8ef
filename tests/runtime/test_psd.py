"""Positive semi-definiteness checks of Gram matrices (kernelc.runtime.psd)."""
import warnings

import numpy as np
import pytest

from kernelc.errors import IndefiniteKernelWarning, KernelcWarning
from kernelc.runtime import psd


def _gram(n=40, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, 8))
    return x @ x.T + 0.1 * np.eye(n)


def test_a_psd_gram_matrix_passes_silently():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert psd.check_gram(_gram(), "float64") is None


def test_an_indefinite_gram_matrix_is_reported_with_its_numbers():
    k = _gram()
    w, v = np.linalg.eigh(k)
    k = k - (w[0] + 1e-3) * np.outer(v[:, 0], v[:, 0])  # lowest eigenvalue -> -1e-3
    with pytest.warns(IndefiniteKernelWarning, match=r"1 eigenvalue\(s\) below .* the lowest "
                      r"-0\.001 against λ_max") as rec:
        low, high, count = psd.check_gram(k, "float64")
    assert issubclass(rec[0].category, KernelcWarning)
    assert low == pytest.approx(-1e-3, rel=1e-6) and high == pytest.approx(w[-1]) and count == 1


def test_round_off_and_the_dtype_tolerance_are_not_reported():
    k = _gram()
    w, v = np.linalg.eigh(k)
    k = k - (w[0] + 1e-7 * w[-1]) * np.outer(v[:, 0], v[:, 0])  # -1e-7 λ_max: within 1e-6
    assert psd.check_gram(k, "float64") is None
    k = _gram()
    k = k - (w[0] + 1e-5 * w[-1]) * np.outer(v[:, 0], v[:, 0])  # -1e-5 λ_max
    assert psd.check_gram(k, "float32") is None  # float32 allows 1e-4
    with pytest.warns(IndefiniteKernelWarning):
        psd.check_gram(k, "float64")
    assert psd.psd_threshold(10, "float64") == 1e-6  # n·eps below the dtype tolerance
    assert psd.psd_threshold(10 ** 4, "float32") == pytest.approx(10 ** 4 * 2.0 ** -23)


def test_skipped_for_non_square_and_large_matrices():
    assert psd.check_gram(np.zeros((3, 4)), "float64") is None
    assert psd.check_gram(-np.eye(5), "float64", max_checked=4) is None
