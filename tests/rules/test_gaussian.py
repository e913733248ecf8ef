"""Isserlis moments against Gauss-Hermite quadrature (exact for polynomials) in numpy."""
import math

import numpy as np
import pytest
import sympy
from hypothesis import given, settings
from hypothesis import strategies as st

from kernelc.rules.gaussian import gaussian_moment, polynomial_kernel

k11, k22 = sympy.symbols("k11 k22", positive=True)
k12 = sympy.Symbol("k12", real=True)


def gh_moment(a, b, K11, K12, K22, n=30):
    """E[u^a v^b] by n x n probabilists' Gauss-Hermite: exact for a + b <= 2n - 1."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    w = w / math.sqrt(2 * math.pi)
    L = np.linalg.cholesky(np.array([[K11, K12], [K12, K22]]))
    z1, z2 = z[:, None], z[None, :]
    u = L[0, 0] * z1
    v = L[1, 0] * z1 + L[1, 1] * z2
    return float(np.sum(w[:, None] * w[None, :] * u**a * v**b))


def test_known_moments():
    assert gaussian_moment(2, 2, k11, k12, k22) == sympy.expand(k11 * k22 + 2 * k12**2)
    assert gaussian_moment(4, 0, k11, k12, k22) == 3 * k11**2
    assert gaussian_moment(1, 1, k11, k12, k22) == k12
    assert gaussian_moment(3, 0, k11, k12, k22) == 0
    assert gaussian_moment(2, 1, k11, k12, k22) == 0
    assert gaussian_moment(0, 0, k11, k12, k22) == 1
    assert gaussian_moment(3, 1, k11, k12, k22) == 3 * k11 * k12


@settings(max_examples=30, deadline=None)
@given(a=st.integers(0, 7), b=st.integers(0, 7), rho=st.floats(-0.99, 0.99),
       s1=st.floats(0.2, 2.0), s2=st.floats(0.2, 2.0))
def test_moments_equal_quadrature(a, b, rho, s1, s2):
    K11, K22, K12 = s1 * s1, s2 * s2, rho * s1 * s2
    exact = float(gaussian_moment(a, b, k11, k12, k22).subs({k11: K11, k12: K12, k22: K22}))
    assert exact == pytest.approx(gh_moment(a, b, K11, K12, K22), rel=1e-9, abs=1e-9)


def test_moment_symmetry():
    swapped = gaussian_moment(3, 5, k22, k12, k11)
    assert sympy.expand(gaussian_moment(5, 3, k11, k12, k22) - swapped) == 0


def test_polynomial_kernel_x_squared_and_cubic():
    assert polynomial_kernel([0, 0, 1], k11, k12, k22) == sympy.expand(k11 * k22 + 2 * k12**2)
    coeffs = [1, -2, 0, sympy.Rational(1, 2)]
    K = polynomial_kernel(coeffs, k11, k12, k22)
    lam = (0.8, -0.3, 1.7)
    want = sum(ci * cj * gh_moment(i, j, *lam) for i, ci in enumerate(coeffs)
               for j, cj in enumerate(coeffs))
    assert float(K.subs(dict(zip((k11, k12, k22), lam)))) == pytest.approx(float(want), rel=1e-10)


def test_negative_order_rejected():
    with pytest.raises(ValueError):
        gaussian_moment(-1, 2, k11, k12, k22)
